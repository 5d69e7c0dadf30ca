// CPU driver: runs the shared kernel bodies with at::parallel_for.
//
// Determinism: every CPU result is independent of the number of threads and their schedule.
// Binning runs in face order within each image (images in parallel), so bins come out in
// ascending face order; visibility gives each tile's pixels to one thread; the soft forward
// pass is a per-pixel sum in face order, its backward pass writes one slot per (tile, face)
// pair (from the forward's saved pixel-face pairs where it saved them) and reduces the slots
// per vertex in a fixed order. The fragment ops' backward passes sum each face's pixels in
// ascending order, then each vertex's corners in ascending order (serial counting sorts group
// them).
#include <ATen/Parallel.h>

#include <optional>

#include "aa_ops.h"
#include "frag_ops.h"
#include "loss_ops.h"
#include "mesh_ops.h"
#include "nmr_ops.h"
#include "raster_ops.h"
#include "shade_ops.h"
#include "softras_ops.h"

namespace dibr {

struct CpuExec {
  static constexpr bool kAtomicAdds = false;  // host atomic_add is a plain add
  static constexpr bool kTilePerIndex = true;  // tile bodies: a whole tile per index

  template <class Body, class P>
  static void launch(int64_t n, const P& p) {
    at::parallel_for(0, n, 256, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) Body::run(i, p);
    });
  }

  template <class Body, class P>
  static void launch_serial(int64_t n, const P& p) {
    for (int64_t i = 0; i < n; ++i) Body::run(i, p);
  }

  // One tile's entries on one thread: the host atomic_min of the z-buffer needs exactly that.
  template <class Body, class P>
  static void launch_tiles(int64_t tiles, const at::Tensor& tile_off, const P& p) {
    const int64_t* off = tile_off.data_ptr<int64_t>();
    at::parallel_for(0, tiles, 4, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t)
        for (int64_t k = off[t]; k < off[t + 1]; ++k) Body::run(k, p);
    });
  }

  static at::Tensor finish_bins(const at::Tensor& entries) { return entries; }  // already sorted
};

at::Tensor vis_forward_cpu(const at::Tensor& clip, const at::Tensor& faces, int64_t h,
                           int64_t w) {
  TORCH_CHECK(clip.device().is_cpu() && faces.device().is_cpu(), "expected CPU tensors");
  return vis_forward<CpuExec>(clip, faces, h, w);
}

std::vector<at::Tensor> soft_forward_cpu(const at::Tensor& xy, const at::Tensor& valid,
                                         const at::Tensor& faces, int64_t h, int64_t w,
                                         double sigma, double cut2) {
  TORCH_CHECK(xy.device().is_cpu(), "expected CPU tensors");
  return soft_forward<CpuExec>(xy, valid, faces, h, w, sigma, cut2, false);
}

// The same, also saving the pixel-face pairs within the cutoff, for a backward pass that then
// reads them instead of measuring every pair again (the forward of a fit step).
std::vector<at::Tensor> soft_forward_pairs_cpu(const at::Tensor& xy, const at::Tensor& valid,
                                               const at::Tensor& faces, int64_t h, int64_t w,
                                               double sigma, double cut2) {
  TORCH_CHECK(xy.device().is_cpu(), "expected CPU tensors");
  return soft_forward<CpuExec>(xy, valid, faces, h, w, sigma, cut2, true);
}

// Either forward, with the coverage given ([B,H,W] bool, e.g. the hard rasterizer's mask).
std::vector<at::Tensor> soft_forward_covered_cpu(const at::Tensor& xy, const at::Tensor& valid,
                                                 const at::Tensor& faces,
                                                 const at::Tensor& covered, int64_t h,
                                                 int64_t w, double sigma, double cut2,
                                                 bool save_pairs) {
  TORCH_CHECK(xy.device().is_cpu(), "expected CPU tensors");
  return soft_forward<CpuExec>(xy, valid, faces, h, w, sigma, cut2, save_pairs, covered);
}

// Frees the soft silhouette's kept pair buffers (see pair_buffer); the bytes they spanned. Also
// drops the fragment ops' grouping memos (the tensors they keep).
int64_t release_buffers_cpu() {
  clear_frag_memos();
  return release_pair_buffers();
}

at::Tensor soft_backward_cpu(const at::Tensor& grad_alpha, const at::Tensor& xy,
                             const at::Tensor& faces, const std::vector<at::Tensor>& saved,
                             int64_t h, int64_t w, double sigma, double cut2,
                             bool deterministic) {
  TORCH_CHECK(xy.device().is_cpu(), "expected CPU tensors");
  return soft_backward<CpuExec>(grad_alpha, xy, faces, saved, h, w, sigma, cut2,
                                deterministic);
}

std::vector<at::Tensor> bary_forward_cpu(const at::Tensor& clip, const at::Tensor& faces,
                                         const at::Tensor& face_idx) {
  TORCH_CHECK(clip.device().is_cpu() && face_idx.device().is_cpu(), "expected CPU tensors");
  return bary_forward<CpuExec>(clip, faces, face_idx);
}

at::Tensor bary_backward_cpu(const at::Tensor& clip, const at::Tensor& faces,
                             const at::Tensor& face_idx, const std::optional<at::Tensor>& gb,
                             const std::optional<at::Tensor>& gd) {
  TORCH_CHECK(clip.device().is_cpu(), "expected CPU tensors");
  return bary_backward<CpuExec>(clip, faces, face_idx, gb.value_or(at::Tensor()),
                                gd.value_or(at::Tensor()), true);
}

at::Tensor interp_forward_cpu(const at::Tensor& attr, const at::Tensor& faces,
                              const at::Tensor& face_idx, const at::Tensor& bary) {
  TORCH_CHECK(attr.device().is_cpu() && face_idx.device().is_cpu(), "expected CPU tensors");
  return interp_forward<CpuExec>(attr, faces, face_idx, bary);
}

std::vector<at::Tensor> interp_backward_cpu(const at::Tensor& attr, const at::Tensor& faces,
                                            const at::Tensor& face_idx, const at::Tensor& bary,
                                            const at::Tensor& grad_out) {
  TORCH_CHECK(attr.device().is_cpu(), "expected CPU tensors");
  return interp_backward<CpuExec>(attr, faces, face_idx, bary, grad_out, true);
}

std::vector<at::Tensor> image_loss_forward_cpu(const at::Tensor& rgb,
                                               const at::Tensor& alpha,
                                               const at::Tensor& t_rgb,
                                               const at::Tensor& t_mask) {
  TORCH_CHECK(rgb.device().is_cpu(), "expected CPU tensors");
  return image_loss_forward<CpuExec>(rgb, alpha, t_rgb, t_mask);
}

std::vector<at::Tensor> image_loss_backward_cpu(const at::Tensor& rgb, const at::Tensor& alpha,
                                                const at::Tensor& t_rgb,
                                                const at::Tensor& t_mask, const at::Tensor& out,
                                                const at::Tensor& enc, const at::Tensor& grad) {
  TORCH_CHECK(rgb.device().is_cpu(), "expected CPU tensors");
  return image_loss_backward<CpuExec>(rgb, alpha, t_rgb, t_mask, out, enc, grad);
}

// Edge antialiasing: forward and colour gradient are per-pixel gathers; the vertex gradient
// goes through per-pair slots summed per vertex in a fixed order (no atomics on the host).
at::Tensor aa_forward_cpu(const at::Tensor& color, const at::Tensor& face_idx,
                          const at::Tensor& depth, const at::Tensor& clip,
                          const at::Tensor& faces, const at::Tensor& topo) {
  TORCH_CHECK(color.device().is_cpu() && clip.device().is_cpu(), "expected CPU tensors");
  return aa_forward<CpuExec>(color, face_idx, depth, clip, faces, topo);
}

std::vector<at::Tensor> aa_backward_cpu(const at::Tensor& color, const at::Tensor& face_idx,
                                        const at::Tensor& depth, const at::Tensor& clip,
                                        const at::Tensor& faces, const at::Tensor& topo,
                                        const at::Tensor& grad_out) {
  TORCH_CHECK(color.device().is_cpu() && clip.device().is_cpu(), "expected CPU tensors");
  return aa_backward<CpuExec>(color, face_idx, depth, clip, faces, topo, grad_out, true);
}

// NMR gradient: one index per (image, face, corner, axis), each writing its own entry.
at::Tensor nmr_backward_cpu(const at::Tensor& color, const at::Tensor& face_idx,
                            const at::Tensor& depth, const at::Tensor& xy, const at::Tensor& z,
                            const at::Tensor& valid, const at::Tensor& grad_out) {
  TORCH_CHECK(color.device().is_cpu() && xy.device().is_cpu(), "expected CPU tensors");
  return nmr_backward<CpuExec>(color, face_idx, depth, xy, z, valid, grad_out);
}

// SoftRas: the forward pass is a per-pixel gather; the backward pass writes one slot per bin
// entry and sums them per vertex in a fixed order (no atomics on the host).
std::vector<at::Tensor> softras_forward_cpu(const at::Tensor& xy, const at::Tensor& zn,
                                            const at::Tensor& color, const at::Tensor& valid,
                                            const at::Tensor& faces, const at::Tensor& bg,
                                            int64_t h, int64_t w, double sigma, double gamma,
                                            double eps, double cut2) {
  TORCH_CHECK(xy.device().is_cpu() && color.device().is_cpu(), "expected CPU tensors");
  return sr_forward<CpuExec>(xy, zn, color, valid, faces, bg, h, w, sigma, gamma, eps, cut2);
}

std::vector<at::Tensor> softras_backward_cpu(const at::Tensor& grad_rgb,
                                             const at::Tensor& grad_alpha, const at::Tensor& xy,
                                             const at::Tensor& zn, const at::Tensor& color,
                                             const at::Tensor& valid, const at::Tensor& faces,
                                             const at::Tensor& bg,
                                             const std::vector<at::Tensor>& saved, int64_t h,
                                             int64_t w, double sigma, double gamma, double eps,
                                             double cut2) {
  TORCH_CHECK(xy.device().is_cpu() && color.device().is_cpu(), "expected CPU tensors");
  return sr_backward<CpuExec>(grad_rgb, grad_alpha, xy, zn, color, valid, faces, bg, saved, h,
                              w, sigma, gamma, eps, cut2, true);
}

// Fused Lambertian shading of covered pixels: the forward pass is per pixel; the backward pass
// runs fixed chunks of pixels, whose per-image parameter sums one serial pass adds in order.
std::vector<at::Tensor> shade_forward_cpu(const at::Tensor& attrs,
                                          const std::optional<at::Tensor>& bidx,
                                          const at::Tensor& dir,
                                          const std::optional<at::Tensor>& intensity,
                                          const std::optional<at::Tensor>& ambient,
                                          const std::optional<at::Tensor>& kd,
                                          const std::vector<double>& values, int64_t slots,
                                          double eps) {
  TORCH_CHECK(attrs.device().is_cpu(), "expected CPU tensors");
  return shade_forward<CpuExec>(
      shade_inputs(attrs, bidx, dir, intensity, ambient, kd, values, slots, eps));
}

std::vector<at::Tensor> shade_backward_cpu(
    const at::Tensor& attrs, const std::optional<at::Tensor>& bidx,
    const at::Tensor& dir, const std::optional<at::Tensor>& intensity,
    const std::optional<at::Tensor>& ambient, const std::optional<at::Tensor>& kd,
    const std::vector<double>& values, int64_t slots, double eps,
    const std::vector<at::Tensor>& saved, const at::Tensor& grad, bool param_grads) {
  TORCH_CHECK(attrs.device().is_cpu(), "expected CPU tensors");
  return shade_backward<CpuExec>(
      shade_inputs(attrs, bidx, dir, intensity, ambient, kd, values, slots, eps), dir,
      saved, grad, param_grads);
}

// Mesh ops (vertex normals, regularisers): serial loops in a fixed order (mesh_ops.h).
std::vector<at::Tensor> vertex_normals_forward_cpu(const at::Tensor& verts,
                                                   const at::Tensor& faces, double eps) {
  return mesh_vertex_normals_forward(verts, faces, eps);
}

at::Tensor vertex_normals_backward_cpu(const at::Tensor& verts, const at::Tensor& faces,
                                       const at::Tensor& summed, const at::Tensor& grad,
                                       double eps) {
  return mesh_vertex_normals_backward(verts, faces, summed, grad, eps);
}

std::vector<at::Tensor> mesh_reg_forward_cpu(const at::Tensor& verts, const at::Tensor& faces,
                                             const at::Tensor& edges, const at::Tensor& pairs,
                                             const at::Tensor& degree, int64_t n_connected,
                                             int64_t want, double eps) {
  return mesh_regularizers_forward(verts, faces, edges, pairs, degree, n_connected, want, eps);
}

at::Tensor mesh_reg_backward_cpu(const at::Tensor& verts, const at::Tensor& faces,
                                 const at::Tensor& edges, const at::Tensor& pairs,
                                 const at::Tensor& degree, int64_t n_connected, int64_t want,
                                 const at::Tensor& saved, double g_lap, double g_normal,
                                 double g_edge) {
  return mesh_regularizers_backward(verts, faces, edges, pairs, degree, n_connected, want, saved,
                                    g_lap, g_normal, g_edge);
}

}  // namespace dibr
