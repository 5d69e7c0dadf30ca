// Host-side orchestration of the kernels, written once for both devices: allocation, binning
// (count -> exclusive scan -> fill) and the order of kernel launches. A driver supplies an
// `Exec` policy with
//   launch<Body>(n, params)         run Body::run(i, params) for every i in [0, n)
//   launch_serial<Body>(n, params)  the same, in index order on one thread on the CPU
//   launch_tiles<Body>(tiles, tile_off, params)  every bin entry, one tile per CPU thread
//   finish_bins(entries)            make each tile's entries ascending (sort on the GPU)
//   kAtomicAdds                     whether atomic_add is a real atomic (the GPU)
//   kTilePerIndex                   visibility and soft forward: one whole tile per index (CPU)
//                                   instead of one bin entry or pixel per index (GPU)
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <vector>

#include "group_ops.h"
#include "soft_cpu.h"
#include "soft_kernels.h"
#include "vis_cpu.h"

namespace dibr {

#define DIBR_BODY(Name, fn)                                    \
  struct Name {                                                \
    template <class P>                                         \
    static DIBR_HD void run(int64_t i, const P& p) { fn(i, p); } \
  };
DIBR_BODY(BinCount, bin_count_body)
DIBR_BODY(BinFill, bin_fill_body)
DIBR_BODY(VisSetup, vis_setup_body)
DIBR_BODY(VisRaster, vis_raster_body)
DIBR_BODY(VisFinalize, vis_finalize_body)
DIBR_BODY(VisTile, vis_tile_body)
DIBR_BODY(SoftSetup, soft_setup_body)
DIBR_BODY(SoftCover, soft_cover_body)
DIBR_BODY(SoftBandCount, soft_band_count_body)
DIBR_BODY(SoftBandFill, soft_band_fill_body)
DIBR_BODY(SoftOpen, soft_open_body)
DIBR_BODY(SoftForward, soft_forward_body)
DIBR_BODY(SoftBackward, soft_backward_body)
DIBR_BODY(SoftSavedBackward, soft_saved_backward_body)
DIBR_BODY(SoftGather, soft_gather_body)
#undef DIBR_BODY

struct Bins {
  at::Tensor entries;   // [P] int64 keys t*N + n, tile-major, ascending faces within a tile
  at::Tensor tile_off;  // [T+1] int64 start of each tile's entries
};

inline PixBox* boxes(const at::Tensor& box) { return reinterpret_cast<PixBox*>(box.data_ptr<int>()); }

// A binning pass over every face: in face order within an image (so each bin comes out in
// ascending face order), the images in parallel on the CPU (their tiles are disjoint); the GPU
// sorts the bins afterwards.
template <class Exec, class Body, class P>
void launch_per_image(int64_t nimages, int64_t per_image, const P& p) {
  if constexpr (Exec::kTilePerIndex) {
    at::parallel_for(0, nimages, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t n = b0 * per_image; n < b1 * per_image; ++n) Body::run(n, p);
    });
  } else {
    Exec::template launch_serial<Body>(nimages * per_image, p);
  }
}

// Faces -> tiles of their (already computed) pixel boxes.
template <class Exec>
Bins make_bins(const at::Tensor& box, int B, int F, int tx, int ty) {
  const int64_t nf = (int64_t)B * F, ntiles = (int64_t)B * tx * ty;
  auto iopt = box.options().dtype(at::kInt);
  at::Tensor count = at::zeros({ntiles}, iopt);
  BinParams bp{boxes(box), nf, F, tx, ty, count.data_ptr<int>(), nullptr, nullptr};
  launch_per_image<Exec, BinCount>(B, F, bp);
  at::Tensor tile_off = at::zeros({ntiles + 1}, box.options().dtype(at::kLong));
  tile_off.slice(0, 1).copy_(count.cumsum(0));
  const int64_t total = tile_off[ntiles].item<int64_t>();
  TORCH_CHECK(total < std::numeric_limits<int>::max(),
              "render_core: too many (tile, face) pairs (", total, "); lower the resolution");
  at::Tensor cursor = tile_off.slice(0, 0, ntiles).to(at::kInt);
  at::Tensor entries = at::empty({total}, box.options().dtype(at::kLong));
  bp.tile_cursor = cursor.data_ptr<int>();
  bp.entries = entries.data_ptr<int64_t>();
  launch_per_image<Exec, BinFill>(B, F, bp);
  return Bins{Exec::finish_bins(entries), tile_off};
}

inline int tiles_along(int pixels) { return (pixels + TILE - 1) / TILE; }

// Nearest face per pixel: [B,V,4] float32, [F,3] int64 -> [B,H,W] int64 (-1 = none).
template <class Exec>
at::Tensor vis_forward(const at::Tensor& clip_in, const at::Tensor& faces_in, int64_t h,
                       int64_t w) {
  TORCH_CHECK(clip_in.dim() == 3 && clip_in.size(2) == 4, "clip must be [B,V,4]");
  const at::Tensor clip = clip_in.to(at::kFloat).contiguous();
  const at::Tensor faces = faces_in.to(at::kLong).contiguous();
  const int B = (int)clip.size(0), V = (int)clip.size(1), F = (int)faces.size(0);
  const int H = (int)h, W = (int)w, tx = tiles_along(W), ty = tiles_along(H);
  const int64_t nf = (int64_t)B * F;
  VisParams p;
  p.clip = clip.data_ptr<float>();
  p.faces = faces.data_ptr<int64_t>();
  p.B = B, p.V = V, p.F = F, p.H = H, p.W = W, p.tx = tx, p.ty = ty;
  p.two_over_w = (float)(2.0 / W);
  p.two_over_h = (float)(2.0 / H);
  p.half_w = (float)(W / 2.0);
  p.half_h = (float)(H / 2.0);
  at::Tensor fdata = at::empty({nf, (int64_t)(sizeof(VisFace) / sizeof(float))},
                               clip.options());
  at::Tensor box = at::empty({nf, 4}, clip.options().dtype(at::kInt));
  p.fdata = reinterpret_cast<VisFace*>(fdata.data_ptr<float>());
  p.box = boxes(box);
  at::Tensor face_idx = at::empty({(int64_t)B, H, W}, clip.options().dtype(at::kLong));
  p.face_idx = face_idx.data_ptr<int64_t>();
  if constexpr (Exec::kTilePerIndex) {
    TORCH_CHECK(vis_run_cpu(p),
                "render_core: too many (tile, face) pairs in one image; lower the resolution");
  } else {
    Exec::template launch<VisSetup>(nf, p);
    Bins bins = make_bins<Exec>(box, B, F, tx, ty);
    p.entries = bins.entries.data_ptr<int64_t>();
    p.tile_off = bins.tile_off.data_ptr<int64_t>();
    // KEY_BG is all ones: the int64 -1 pattern.
    at::Tensor zbuf = at::full({(int64_t)B, H, W}, -1, clip.options().dtype(at::kLong));
    p.zbuf = reinterpret_cast<u64*>(zbuf.data_ptr<int64_t>());
    Exec::template launch_tiles<VisRaster>((int64_t)B * tx * ty, bins.tile_off, p);
    Exec::template launch<VisFinalize>((int64_t)B * H * W, p);
  }
  return face_idx;
}

// Saved state of a soft-silhouette forward pass, reused by its backward pass; a CPU forward
// asked to save its pairs appends kPairSpan and kPairs.
enum SoftSaved {
  kAlpha, kS, kCovered, kTri, kBox, kEntries, kTileOff, kBandOff, kTileOpen, kExpS, kNumSaved,
  kPairSpan = kNumSaved, kPairs, kNumSavedPairs
};

template <typename T>
SoftParams<T> soft_params(const at::Tensor& xy, const at::Tensor& faces, int64_t h, int64_t w,
                          double sigma, double cut2) {
  SoftParams<T> p{};
  p.xy = xy.data_ptr<T>();
  p.faces = faces.data_ptr<int64_t>();
  p.B = (int)xy.size(0), p.V = (int)xy.size(1), p.F = (int)faces.size(0);
  p.H = (int)h, p.W = (int)w, p.tx = tiles_along(p.W), p.ty = tiles_along(p.H);
  p.two_over_w = (T)(2.0 / w);
  p.two_over_h = (T)(2.0 / h);
  p.iso_scale = (T)((double)w / (double)h);
  p.sigma = (T)sigma;
  p.cut2 = (T)cut2;
  p.grow_px = std::sqrt(cut2) * (double)h / 2.0;
  return p;
}

// The buffer of the saved pairs: the last one again once nothing else holds it (the previous
// step's backward pass is done), so a fit's steps reuse memory already mapped instead of
// faulting in tens to hundreds of megabytes each (at 256x256 with 20k faces, ~45k page faults
// and ~40 ms a step); a new one otherwise. One kept per scalar type, of any size the forward
// takes (at most kMaxPairBytes, below), until release_pair_buffers().
constexpr int64_t kMaxPairBytes = int64_t(512) << 20;

struct KeptPairs {
  std::mutex mu;
  at::Tensor buf[2];  // float32, float64
};

inline KeptPairs& kept_pairs() {
  static KeptPairs* k = new KeptPairs();  // never destroyed: no teardown-order issues
  return *k;
}

inline at::Tensor pair_buffer(int64_t rows, const at::TensorOptions& opt) {
  const int64_t row_bytes = PAIR * (int64_t)at::elementSize(at::typeMetaToScalarType(opt.dtype()));
  const int64_t want = std::max(rows, std::min(rows + rows / 4, kMaxPairBytes / row_bytes));
  KeptPairs& kp = kept_pairs();
  std::lock_guard<std::mutex> lock(kp.mu);
  at::Tensor& k = kp.buf[opt.dtype() == at::kDouble ? 1 : 0];
  if (k.defined() && k.storage().use_count() == 1 && k.size(0) >= rows)
    return k.narrow(0, 0, rows);
  k = at::Tensor();  // let go of the old one before mapping the new one
  k = at::empty({want, PAIR}, opt);
  return k.narrow(0, 0, rows);
}

// Drops the kept pair buffers (memory still used by a live graph is freed with it); returns
// the bytes the kept buffers spanned.
inline int64_t release_pair_buffers() {
  KeptPairs& kp = kept_pairs();
  std::lock_guard<std::mutex> lock(kp.mu);
  int64_t bytes = 0;
  for (at::Tensor& k : kp.buf) {
    if (k.defined()) bytes += k.numel() * (int64_t)k.element_size();
    k = at::Tensor();
  }
  return bytes;
}

// The CPU forward that also saves its pixel-face pairs (soft_tile_forward_impl<T, true>):
// each tile writes its records into its own stretch of one buffer, as long as the tile's
// bound (soft_tile_bound), so the tiles run in any order on any thread and nothing is copied
// (the rest of each stretch is left unwritten). Returns {pair_span [P,3] int64, pairs
// [Q,PAIR]}, or nothing (and no forward run) where the buffer would exceed kMaxPairBytes: the
// pairs grow with the square of the cutoff radius in pixels (a fixed sigma at a higher
// resolution), and the kept buffer would hold that memory (or where B*H*W, which the records
// hold as int32 pixel indices, reaches 2^31); the caller then runs the plain forward, whose
// backward measures the pairs again.
template <class Exec, typename T>
std::vector<at::Tensor> soft_forward_save_pairs(SoftParams<T>& p, int64_t ntiles,
                                                int64_t nentries, const at::TensorOptions& opt) {
  at::Tensor base = at::empty({ntiles + 1}, opt.dtype(at::kLong));
  int64_t* bo = base.data_ptr<int64_t>();
  bo[0] = 0;
  for (int64_t t = 0; t < ntiles; ++t)  // the fill pass's soft_tile_bound, where it counted
    bo[t + 1] = bo[t] + (p.tile_room ? p.tile_room[t] : soft_tile_bound(t, p));
  if (bo[ntiles] * PAIR * (int64_t)sizeof(T) > kMaxPairBytes ||
      (int64_t)p.B * p.H * p.W > std::numeric_limits<int32_t>::max())
    return {};
  at::Tensor span = at::empty({nentries, 3}, opt.dtype(at::kLong));
  at::Tensor pairs = pair_buffer(bo[ntiles], opt);
  p.pairs = pairs.data_ptr<T>();
  int64_t* sp = span.data_ptr<int64_t>();
  at::parallel_for(0, ntiles, 4, [&](int64_t tb, int64_t te) {
    soft_tiles_forward<T, true>(tb, te, p, bo, sp);
  });
  return {span, pairs};
}

// alpha [B,H,W] and the state its backward needs (indexed by SoftSaved). `covered_in`, where
// defined, is the [B,H,W] coverage (pixels inside some valid face) the caller already has, e.g.
// from the hard rasterizer, in place of the coverage pass.
template <class Exec>
std::vector<at::Tensor> soft_forward(const at::Tensor& xy_in, const at::Tensor& valid_in,
                                     const at::Tensor& faces_in, int64_t h, int64_t w,
                                     double sigma, double cut2, bool save_pairs = false,
                                     const at::Tensor& covered_in = at::Tensor()) {
  TORCH_CHECK(xy_in.dim() == 3 && xy_in.size(2) == 2, "xy must be [B,V,2]");
  TORCH_CHECK(xy_in.scalar_type() == at::kFloat || xy_in.scalar_type() == at::kDouble,
              "xy must be float32 or float64");
  const at::Tensor xy = xy_in.contiguous();
  const at::Tensor valid = valid_in.to(at::kBool).contiguous();
  const at::Tensor faces = faces_in.to(at::kLong).contiguous();
  std::vector<at::Tensor> out(kNumSaved);
  AT_DISPATCH_FLOATING_TYPES(xy.scalar_type(), "soft_forward", [&] {
    SoftParams<scalar_t> p = soft_params<scalar_t>(xy, faces, h, w, sigma, cut2);
    const int64_t nf = (int64_t)p.B * p.F, ntiles = (int64_t)p.B * p.tx * p.ty;
    p.valid = valid.data_ptr<bool>();
    at::Tensor tri = at::empty({nf, TRI}, xy.options());
    at::Tensor box = at::empty({nf, 4}, xy.options().dtype(at::kInt));
    const bool given = covered_in.defined();
    at::Tensor inner = given ? at::Tensor() : at::empty({nf, 4}, xy.options().dtype(at::kInt));
    p.tri = tri.data_ptr<scalar_t>();
    p.box = boxes(box);
    p.inner = given ? nullptr : boxes(inner);
    // Coverage (unless given), then the box of each tile's uncovered pixels.
    at::Tensor covered;
    at::Tensor tile_open = at::empty({ntiles, 4}, xy.options().dtype(at::kInt));
    p.tile_open = boxes(tile_open);
    if (given) {
      TORCH_CHECK(covered_in.dim() == 3 && covered_in.size(0) == p.B && covered_in.size(1) == p.H &&
                      covered_in.size(2) == p.W && covered_in.device() == xy.device(),
                  "covered must be [B,H,W] on the device of xy");
      covered = covered_in.to(at::kBool).contiguous();
      p.covered = covered.data_ptr<bool>();
    } else {
      covered = at::zeros({(int64_t)p.B, p.H, p.W}, xy.options().dtype(at::kBool));
      p.covered = covered.data_ptr<bool>();
    }
    if constexpr (Exec::kTilePerIndex) {
      if (given) {  // setup and open boxes are independent: one parallel region for both
        at::parallel_for(0, nf + ntiles, 128, [&](int64_t i0, int64_t i1) {
          if (i0 < nf) soft_setups(i0, std::min(i1, nf), p);
          if (i1 > nf) soft_opens(std::max(i0, nf) - nf, i1 - nf, p);
        });
      } else {
        at::parallel_for(0, nf, 128, [&](int64_t n0, int64_t n1) { soft_setups(n0, n1, p); });
        at::parallel_for(0, nf, 256, [&](int64_t n0, int64_t n1) { soft_covers(n0, n1, p); });
        at::parallel_for(0, ntiles, 64, [&](int64_t t0, int64_t t1) { soft_opens(t0, t1, p); });
      }
    } else {
      Exec::template launch<SoftSetup>(nf, p);
      if (!given) Exec::template launch<SoftCover>(nf, p);
      Exec::template launch<SoftOpen>(ntiles, p);
    }
    // Band bins: count -> exclusive scans (per tile, and per face for the pair slots) -> fill.
    auto iopt = xy.options().dtype(at::kInt), lopt = xy.options().dtype(at::kLong);
    at::Tensor tile_count = at::zeros({ntiles}, iopt);
    at::Tensor face_count = at::empty({nf}, iopt);
    p.tile_count = tile_count.data_ptr<int>();
    p.face_count = face_count.data_ptr<int>();
    at::Tensor tile_off, band_off, entries, cursor, tile_room, entry_rank;
    if constexpr (Exec::kTilePerIndex) {
      // An image's tiles and faces are its own: each image counts and scans its bins in one
      // parallel region, and after a scan over the images, fills them (faces in order:
      // ascending bins) straight into the joint entries in another (the same entries as a
      // global scan), only the faces that have band tiles.
      const int64_t tiles = (int64_t)p.tx * p.ty;
      tile_off = at::empty({ntiles + 1}, lopt);
      band_off = at::empty({nf + 1}, lopt);
      cursor = at::empty({ntiles}, iopt);
      if (save_pairs) {
        tile_room = at::zeros({ntiles}, lopt);
        p.tile_room = tile_room.data_ptr<int64_t>();
      }
      int64_t* to = tile_off.data_ptr<int64_t>();
      int* cur = cursor.data_ptr<int>();
      p.tile_cursor = cur;
      std::vector<int64_t> image_entries(p.B + 1, 0);
      at::parallel_for(0, p.B, 1, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
          for (int64_t n = b * p.F; n < (b + 1) * p.F; ++n) soft_band_count_body(n, p);
          int64_t k = 0;
          for (int64_t t = b * tiles; t < (b + 1) * tiles; ++t) {
            to[t] = k;
            k += p.tile_count[t];
          }
          image_entries[b + 1] = k;
        }
      });
      for (int b = 0; b < p.B; ++b) {
        TORCH_CHECK(image_entries[b + 1] < std::numeric_limits<int>::max(),
                    "render_core: too many (tile, face) pairs; lower the resolution");
        image_entries[b + 1] += image_entries[b];
      }
      const int64_t total = image_entries[p.B];
      TORCH_CHECK(total < std::numeric_limits<int>::max(),
                  "render_core: too many (tile, face) pairs (", total, "); lower the resolution");
      entries = at::empty({total}, lopt);
      p.entries_out = entries.data_ptr<int64_t>();
      if (save_pairs) {
        entry_rank = at::empty({total}, iopt);
        p.entry_rank = entry_rank.data_ptr<int>();
      }
      at::parallel_for(0, p.B, 1, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
          for (int64_t t = b * tiles; t < (b + 1) * tiles; ++t) {
            to[t] += image_entries[b];
            cur[t] = (int)to[t];
          }
          for (int64_t n = b * p.F; n < (b + 1) * p.F; ++n)
            if (p.face_count[n]) soft_band_fill_body(n, p);
        }
      });
      to[ntiles] = total;
      int64_t* bo = band_off.data_ptr<int64_t>();
      const int* fc = p.face_count;
      bo[0] = 0;
      for (int64_t n = 0; n < nf; ++n) bo[n + 1] = bo[n] + fc[n];
    } else {
      launch_per_image<Exec, SoftBandCount>(p.B, p.F, p);
      tile_off = at::zeros({ntiles + 1}, lopt);
      tile_off.slice(0, 1).copy_(tile_count.cumsum(0));
      band_off = at::zeros({nf + 1}, lopt);
      band_off.slice(0, 1).copy_(face_count.cumsum(0));
      const int64_t total = tile_off[ntiles].item<int64_t>();
      TORCH_CHECK(total < std::numeric_limits<int>::max(),
                  "render_core: too many (tile, face) pairs (", total, "); lower the resolution");
      cursor = tile_off.slice(0, 0, ntiles).to(at::kInt);
      entries = at::empty({total}, lopt);
      p.tile_cursor = cursor.data_ptr<int>();
      p.entries_out = entries.data_ptr<int64_t>();
      launch_per_image<Exec, SoftBandFill>(p.B, p.F, p);
    }
    entries = Exec::finish_bins(entries);
    at::Tensor alpha = at::empty({(int64_t)p.B, p.H, p.W}, xy.options());
    at::Tensor s = at::empty({(int64_t)p.B, p.H, p.W}, xy.options());
    at::Tensor exp_s = at::empty_like(s);
    p.entries = entries.data_ptr<int64_t>();
    p.tile_off = tile_off.data_ptr<int64_t>();
    p.band_off = band_off.data_ptr<int64_t>();
    p.s = s.data_ptr<scalar_t>();
    p.exp_s = exp_s.data_ptr<scalar_t>();
    p.alpha = alpha.data_ptr<scalar_t>();
    out = {alpha, s, covered, tri, box, entries, tile_off, band_off, tile_open, exp_s};
    if constexpr (Exec::kTilePerIndex) {
      std::vector<at::Tensor> pairs;
      if (save_pairs)
        pairs = soft_forward_save_pairs<Exec>(p, ntiles, entries.size(0), xy.options());
      if (!pairs.empty()) {
        out.insert(out.end(), pairs.begin(), pairs.end());
      } else {
        at::parallel_for(0, ntiles, 4, [&](int64_t tb, int64_t te) {
          soft_tiles_forward<scalar_t, false>(tb, te, p, nullptr, nullptr);
        });
      }
    } else {
      Exec::template launch<SoftForward>(ntiles * TILE_PIX, p);
    }
  });
  return out;
}

// grad_xy [B,V,2] of sum(grad_alpha * alpha). Deterministic (fixed summation order) unless the
// executor has real atomics and `deterministic` is false.
template <class Exec>
at::Tensor soft_backward(const at::Tensor& grad_alpha_in, const at::Tensor& xy_in,
                         const at::Tensor& faces_in, const std::vector<at::Tensor>& saved,
                         int64_t h, int64_t w, double sigma, double cut2, bool deterministic) {
  TORCH_CHECK((int)saved.size() == kNumSaved || (int)saved.size() == kNumSavedPairs,
              "soft_backward: bad saved state");
  const bool from_pairs = (int)saved.size() == kNumSavedPairs;
  const at::Tensor xy = xy_in.contiguous();
  const at::Tensor faces = faces_in.to(at::kLong).contiguous();
  const at::Tensor grad_alpha = grad_alpha_in.to(xy.scalar_type()).contiguous();
  at::Tensor grad_xy = at::zeros_like(xy);
  AT_DISPATCH_FLOATING_TYPES(xy.scalar_type(), "soft_backward", [&] {
    SoftParams<scalar_t> p = soft_params<scalar_t>(xy, faces, h, w, sigma, cut2);
    const at::Tensor& entries = saved[kEntries];
    p.tri = saved[kTri].data_ptr<scalar_t>();
    p.box = boxes(saved[kBox]);
    p.entries = entries.data_ptr<int64_t>();
    p.tile_off = saved[kTileOff].data_ptr<int64_t>();
    p.band_off = saved[kBandOff].data_ptr<int64_t>();
    p.s = saved[kS].data_ptr<scalar_t>();
    p.exp_s = saved[kExpS].data_ptr<scalar_t>();
    p.covered = saved[kCovered].data_ptr<bool>();
    p.tile_open = boxes(saved[kTileOpen]);
    p.grad_alpha = grad_alpha.data_ptr<scalar_t>();
    p.grad_xy = grad_xy.data_ptr<scalar_t>();
    p.atomic_grad = Exec::kAtomicAdds && !deterministic;
    at::Tensor pair_grad, vert_ptr, vert_corner;
    if (!p.atomic_grad) {
      pair_grad = at::empty({entries.size(0), 6}, xy.options());  // every slot written
      p.pair_grad = pair_grad.data_ptr<scalar_t>();
    }
    if (from_pairs) {
      p.pair_span = saved[kPairSpan].data_ptr<int64_t>();
      p.pairs = saved[kPairs].data_ptr<scalar_t>();
      Exec::template launch<SoftSavedBackward>(entries.size(0), p);
    } else {
      Exec::template launch<SoftBackward>(entries.size(0), p);
    }
    if (!p.atomic_grad) {
      // Corners of each vertex in ascending order (a counting sort of the flattened faces).
      Groups corners = group_by<Exec>(faces, p.V, faces.numel() > 0 ? faces.numel() : 1, 0);
      vert_ptr = corners.off;
      vert_corner = corners.items;
      p.vert_ptr = vert_ptr.data_ptr<int64_t>();
      p.vert_corner = vert_corner.data_ptr<int64_t>();
      Exec::template launch<SoftGather>((int64_t)p.B * p.V, p);
    }
  });
  return grad_xy;
}

}  // namespace dibr
