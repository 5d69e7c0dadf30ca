// CPU-only visibility pass (the CPU driver runs it; nvcc still parses this header through
// raster_ops.h, so device builds see the shared body): vis_tile_body with a tile row of pixels
// as 8-lane vectors (GCC's vector extensions), with an AVX2 clone picked at run time. Every
// lane is the same IEEE operation as the scalar vis_fragment / depth_order (no fused
// multiply-adds: the build uses -ffp-contract=off), so each pixel gets the same face.
//
// Two shortcuts that cannot change a result: a row whose pixels are all outside the face (or
// outside its box) skips the depth division, and a face whose nearest possible depth (VisFace::
// zmin, a conservative bound) is behind every pixel of an already fully covered tile is
// skipped (a face only wins a pixel by being strictly nearer, or as near and lower).
//
// vis_run_cpu drives it: setup, per-image bins (front faces first, so that the faces behind
// meet covered tiles), tiles, in as few parallel regions as the split allows.
#pragma once

#include <string.h>

#include "cpu_range.h"
#include "dibr_kernels.h"

#if !defined(__CUDACC__)
#include <ATen/Parallel.h>

#include <vector>
#endif

namespace dibr {

#if !defined(__CUDACC__)
typedef float VisRow __attribute__((vector_size(TILE * sizeof(float))));
typedef int32_t VisRowI __attribute__((vector_size(TILE * sizeof(int32_t))));

// Whether any lane is set: two halvings as 64-bit lanes, then one scalar test.
__attribute__((always_inline)) inline bool vis_any(VisRowI m) {
  typedef int64_t V4 __attribute__((vector_size(TILE * sizeof(int32_t))));
  V4 a;
  memcpy(&a, &m, sizeof(a));
  a |= __builtin_shuffle(a, V4{2, 3, 0, 1});
  a |= __builtin_shuffle(a, V4{1, 0, 3, 2});
  return a[0] != 0;
}

// depth_order of every lane: orderable_bits(z) ^ 0x80000000 as a signed integer, i.e. the bits
// of z where z >= 0 (sign bit clear) and bits ^ 0x7FFFFFFF where the sign bit is set.
__attribute__((always_inline)) inline VisRowI vis_depth_order(VisRow z) {
  VisRowI s;
  memcpy(&s, &z, sizeof(s));
  return s ^ ((s >> 31) & 0x7FFFFFFF);
}

// Bins of one image for the CPU tile pass: the faces f of tile tl of the image are
// ent[off[tl] .. off[tl+1]) (make_bins' entries as image-local face indices), the
// counter-clockwise (front) faces first, in ascending order, then the others in descending
// order: in a closed mesh the faces behind come after the tile is covered, where the depth
// cull skips them (the tile pass breaks depth ties by the lower face, so any order gives the
// same face indices).
struct VisImageBins {
  std::vector<int32_t> off;  // [TY*TX+1]
  std::vector<int32_t> front, back;  // fill cursors
  std::vector<int32_t> ent;
  bool overflow = false;     // more than INT32_MAX entries: ent not filled
};

__attribute__((always_inline)) inline void vis_tile_impl(int64_t t, const VisParams& p,
                                                         const VisImageBins* bins) {
  const int tiles = p.tx * p.ty;
  const int b = (int)(t / tiles), tl = (int)(t % tiles);
  const int oi = (tl / p.tx) * TILE, oj = (tl % p.tx) * TILE;
  VisRowI zo[TILE], fi[TILE];
  for (int r = 0; r < TILE; ++r) {
    zo[r] = VisRowI{} + 0x7FFFFFFF;
    fi[r] = VisRowI{} - 1;
  }
  VisRow px;
  VisRowI col;
  for (int c = 0; c < TILE; ++c) {
    px[c] = pixel_x(oj + c, p.two_over_w);
    col[c] = oj + c;
  }
  // Farthest depth order in the tile: INT32_MAX until every pixel is covered, then kept up to
  // date after each face that wins a pixel.
  int32_t zmax = 0x7FFFFFFF;
  const VisImageBins& bn = bins[b];
  const int32_t* ent = bn.ent.data();
  const VisFace* fdata = p.fdata + (int64_t)b * p.F;
  const PixBox* box = p.box + (int64_t)b * p.F;
  const int32_t e1 = bn.off[tl + 1];
  const VisRow zero = VisRow{} + 0.0f;
  for (int32_t e = bn.off[tl]; e < e1; ++e) {
    const int32_t face = ent[e];
    if (e + 4 < e1) __builtin_prefetch(&fdata[ent[e + 4]]);
    const VisFace& fd = fdata[face];
    if (depth_order(fd.zmin) > zmax) continue;
    const PixBox bx = box[face];
    const int i0 = oi > bx.i0 ? oi : bx.i0;
    const int i1 = oi + TILE - 1 < bx.i1 ? oi + TILE - 1 : bx.i1;
    const VisRowI incol = (col >= bx.j0) & (col <= bx.j1);
    VisRowI won = VisRowI{};
    for (int i = i0; i <= i1; ++i) {
      const float py = pixel_y(i, p.two_over_h);
      const VisRow ev0 = px * fd.e[0][0] + py * fd.e[0][1] + fd.e[0][2];
      const VisRow ev1 = px * fd.e[1][0] + py * fd.e[1][1] + fd.e[1][2];
      const VisRow ev2 = px * fd.e[2][0] + py * fd.e[2][1] + fd.e[2][2];
      const VisRow den = (ev0 + ev1) + ev2;
      const VisRowI pos = (ev0 >= zero) & (ev1 >= zero) & (ev2 >= zero) & (den > zero);
      const VisRowI neg = (ev0 <= zero) & (ev1 <= zero) & (ev2 <= zero) & (den < zero);
      const VisRowI in = (pos | neg) & incol;
      if (!vis_any(in)) continue;
      const VisRow num_w = (ev0 * fd.w[0] + ev1 * fd.w[1]) + ev2 * fd.w[2];
      const VisRow num_z = (ev0 * fd.z[0] + ev1 * fd.z[1]) + ev2 * fd.z[2];
      const VisRow zz = num_z / num_w;
      const VisRowI ok = in & (num_w != zero) & (zz >= zero - 1.0f) & (zz <= zero + 1.0f);
      VisRowI& zr = zo[i - oi];
      VisRowI& fr = fi[i - oi];
      const VisRowI k = vis_depth_order(zz);
      const VisRowI win = ok & ((k < zr) | ((k == zr) & (face < fr)));
      zr = win ? k : zr;
      fr = win ? VisRowI{} + face : fr;
      won |= win;
    }
    if (vis_any(won)) {
      VisRowI m = zo[0];
      for (int r = 1; r < TILE; ++r) m = zo[r] > m ? zo[r] : m;
      int32_t mx = m[0];
      for (int c = 1; c < TILE; ++c) mx = m[c] > mx ? m[c] : mx;
      zmax = mx;
    }
  }
  const int ni = p.H - oi < TILE ? p.H - oi : TILE, nj = p.W - oj < TILE ? p.W - oj : TILE;
  for (int i = 0; i < ni; ++i) {
    int64_t* out = p.face_idx + ((int64_t)b * p.H + oi + i) * p.W + oj;
    for (int j = 0; j < nj; ++j) out[j] = fi[i][j];
  }
}

// The tiles of a non-empty pixel box: rows ti0..ti1, columns tj0..tj1 (coordinates >= 0, so
// the divisions are shifts); small where it spans at most 2 x 2 tiles.
struct VisTileSpan {
  int ti0, ti1, tj0, tj1;
  bool small() const { return ti1 - ti0 <= 1 && tj1 - tj0 <= 1; }
};

inline VisTileSpan tile_span(const PixBox& bx) {
  return VisTileSpan{(int)((unsigned)bx.i0 / TILE), (int)((unsigned)bx.i1 / TILE),
                     (int)((unsigned)bx.j0 / TILE), (int)((unsigned)bx.j1 / TILE)};
}

// Bins of image b from its faces' pixel boxes: count, exclusive scan, fill in face order (front
// faces from a tile's start up, the others from its end down). A face of at most 2 x 2 tiles
// (nearly all of them) visits its four corner tiles without branches, the repeats masked
// (adding 0, or storing to the spare slot past the end): the loops' trip counts and the
// orientations vary from face to face unpredictably.
inline void vis_bin_image(int b, const VisParams& p, VisImageBins& bins) {
  const int tiles = p.tx * p.ty;
  bins.off.assign(tiles + 1, 0);
  int32_t* off = bins.off.data();
  const int tx = p.tx;
  const PixBox* box = p.box + (int64_t)b * p.F;
  for (int f = 0; f < p.F; ++f) {
    const PixBox bx = box[f];
    if (bx.j0 > bx.j1) continue;
    const VisTileSpan s = tile_span(bx);
    int32_t* o = off + 1 + s.ti0 * tx + s.tj0;
    if (s.small()) {
      const int di = (s.ti1 - s.ti0) * tx, dj = s.tj1 - s.tj0;
      o[0] += 1;
      o[dj] += dj;
      o[di] += di != 0;
      o[di + dj] += (di != 0) & dj;
      continue;
    }
    for (int ti = s.ti0; ti <= s.ti1; ++ti)
      for (int tj = s.tj0; tj <= s.tj1; ++tj) ++off[ti * tx + tj + 1];
  }
  int64_t total = 0;
  for (int t = 1; t <= tiles; ++t) {
    total += off[t];
    off[t] = (int32_t)total;
  }
  bins.overflow = total >= 0x7FFFFFFF - 1;
  if (bins.overflow) return;
  bins.ent.resize(total + 1);  // + the spare slot
  bins.front.assign(off, off + tiles);
  bins.back.assign(off + 1, off + tiles + 1);
  int32_t* ent = bins.ent.data();
  const int32_t spare = (int32_t)total;
  const VisFace* fdata = p.fdata + (int64_t)b * p.F;
  for (int f = 0; f < p.F; ++f) {
    const PixBox bx = box[f];
    if (bx.j0 > bx.j1) continue;
    // Front faces store at the cursor and advance it, the others step it back and store there.
    const bool front = fdata[f].ccw != 0.0f;
    int32_t* cur = front ? bins.front.data() : bins.back.data();
    const int32_t pre = front ? 0 : -1, step = front ? 1 : -1;
    const VisTileSpan s = tile_span(bx);
    if (s.small()) {
      int32_t* c = cur + s.ti0 * tx + s.tj0;
      const int di = (s.ti1 - s.ti0) * tx, dj = s.tj1 - s.tj0;
      const int32_t m[4] = {1, dj, di != 0, (di != 0) & dj};
      const int d[4] = {0, dj, di, di + dj};
      for (int k = 0; k < 4; ++k) {
        int32_t& ck = c[d[k]];
        ent[m[k] ? ck + pre : spare] = f;
        ck += m[k] * step;
      }
      continue;
    }
    for (int ti = s.ti0; ti <= s.ti1; ++ti)
      for (int tj = s.tj0; tj <= s.tj1; ++tj) {
        int32_t& c = cur[ti * tx + tj];
        c += pre;
        ent[c] = f;
        c += 1 + pre;
      }
  }
}

// Tiles [t0, t1) of the visibility pass (CPU), from the images' bins, through cpu_range's
// AVX2 clone where the host has it.
inline void vis_tiles(int64_t t0, int64_t t1, const VisParams& p, const VisImageBins* bins) {
  cpu_range(t0, t1, [&](int64_t t) { vis_tile_impl(t, p, bins); });
}

// Setup of faces [n0, n1) (CPU): vis_setup_body, through cpu_range's AVX2 clone where the host
// has it (the pixel box's ceil and floor become single rounding instructions; the same values).
inline void vis_setups(int64_t n0, int64_t n1, const VisParams& p) {
  cpu_range(n0, n1, [&](int64_t n) { vis_setup_body(n, p); });
}

// The CPU visibility pass after the driver's allocations: setup, per-image bins, tiles. Each
// parallel region wakes the pool's other threads (passive waits: tens of microseconds each),
// so where the images split evenly over the threads (the static split at::parallel_for makes:
// the same tiles per thread as a split over all tiles) one region does an image at a time from
// setup to face indices; otherwise setup (over faces where there are fewer images than
// threads) and bins in one region, the tiles in a second. False where an image has more than
// INT32_MAX (tile, face) pairs (face_idx then unwritten).
inline bool vis_run_cpu(const VisParams& p) {
  const int64_t tiles = (int64_t)p.tx * p.ty, nt = at::get_num_threads();
  std::vector<VisImageBins> bins(p.B);
  bool ok = true;
  if (p.B % nt == 0) {
    at::parallel_for(0, p.B, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        vis_setups(b * p.F, (b + 1) * p.F, p);
        vis_bin_image((int)b, p, bins[b]);
        if (!bins[b].overflow) vis_tiles(b * tiles, (b + 1) * tiles, p, bins.data());
      }
    });
  } else {
    const bool by_face = p.B < nt;
    if (by_face) {
      at::parallel_for(0, (int64_t)p.B * p.F, 256,
                       [&](int64_t n0, int64_t n1) { vis_setups(n0, n1, p); });
    }
    at::parallel_for(0, p.B, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        if (!by_face) vis_setups(b * p.F, (b + 1) * p.F, p);
        vis_bin_image((int)b, p, bins[b]);
      }
    });
    for (const VisImageBins& bn : bins) ok = ok && !bn.overflow;
    if (ok) {
      at::parallel_for(0, p.B * tiles, 16,
                       [&](int64_t t0, int64_t t1) { vis_tiles(t0, t1, p, bins.data()); });
    }
  }
  for (const VisImageBins& bn : bins) ok = ok && !bn.overflow;
  return ok;
}
#else
inline bool vis_run_cpu(const VisParams&) { return false; }  // host only: never called here
#endif  // !__CUDACC__

}  // namespace dibr
