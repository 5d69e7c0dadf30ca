// CUDA driver: one thin __global__ wrapper that runs any shared kernel body, and the launch
// policy for raster_ops.h. All the math lives in dibr_math.h, dibr_kernels.h and
// soft_kernels.h, and is what the CPU tests exercise.
//
// Determinism on the GPU: visibility uses atomicMin on 64-bit (depth, face) keys, so its result
// is exact and order-independent. Bins are sorted after the atomic fill, so the soft forward
// pass (a per-pixel gather) sums in ascending face order, bit-identical run to run. The soft
// backward pass by default adds per-(tile, face) partial gradients into the vertices with
// atomicAdd (the order, hence the last bits, varies); in deterministic mode
// (render_core.set_deterministic / torch.use_deterministic_algorithms) it writes them to
// per-pair slots and gathers them per vertex in a fixed order, like the CPU driver.
// The fragment ops (barycentrics, interpolation) follow the same rule: per-pixel atomicAdd
// into the vertices by default, per-face then per-vertex ordered sums in deterministic mode.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <optional>

#include "aa_ops.h"
#include "frag_ops.h"
#include "loss_ops.h"
#include "nmr_ops.h"
#include "raster_ops.h"
#include "softras_ops.h"

namespace dibr {

template <class Body, class P>
__global__ void run_body(int64_t n, P p) {
  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) Body::run(i, p);
}

struct CudaExec {
  static constexpr bool kAtomicAdds = true;
  static constexpr bool kTilePerIndex = false;  // one thread per bin entry or pixel
  static constexpr int kThreads = 128;  // multiple of TILE_PIX: a block holds whole tiles

  template <class Body, class P>
  static void launch(int64_t n, const P& p) {
    if (n <= 0) return;
    const int64_t blocks = (n + kThreads - 1) / kThreads;
    run_body<Body, P><<<(unsigned)blocks, kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(n, p);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }

  // Binning bodies use real atomics on the device; the bin order is fixed by finish_bins.
  template <class Body, class P>
  static void launch_serial(int64_t n, const P& p) {
    launch<Body>(n, p);
  }

  // One thread per bin entry; entries of a tile meet in the z-buffer's atomicMin.
  template <class Body, class P>
  static void launch_tiles(int64_t, const at::Tensor& tile_off, const P& p) {
    launch<Body>(tile_off.numel() ? tile_off[-1].item<int64_t>() : 0, p);
  }

  // Entry keys are t*N + n: sorting them yields tile-major bins with ascending faces.
  static at::Tensor finish_bins(const at::Tensor& entries) {
    return std::get<0>(at::sort(entries, /*stable=*/false, 0, false));
  }
};

at::Tensor vis_forward_cuda(const at::Tensor& clip, const at::Tensor& faces, int64_t h,
                            int64_t w) {
  TORCH_CHECK(clip.is_cuda() && faces.is_cuda(), "expected CUDA tensors");
  const c10::cuda::CUDAGuard guard(clip.device());
  return vis_forward<CudaExec>(clip, faces, h, w);
}

std::vector<at::Tensor> soft_forward_cuda(const at::Tensor& xy, const at::Tensor& valid,
                                          const at::Tensor& faces, int64_t h, int64_t w,
                                          double sigma, double cut2) {
  TORCH_CHECK(xy.is_cuda(), "expected CUDA tensors");
  const c10::cuda::CUDAGuard guard(xy.device());
  return soft_forward<CudaExec>(xy, valid, faces, h, w, sigma, cut2);
}

at::Tensor soft_backward_cuda(const at::Tensor& grad_alpha, const at::Tensor& xy,
                              const at::Tensor& faces, const std::vector<at::Tensor>& saved,
                              int64_t h, int64_t w, double sigma, double cut2,
                              bool deterministic) {
  TORCH_CHECK(xy.is_cuda(), "expected CUDA tensors");
  const c10::cuda::CUDAGuard guard(xy.device());
  return soft_backward<CudaExec>(grad_alpha, xy, faces, saved, h, w, sigma, cut2,
                                 deterministic);
}

std::vector<at::Tensor> bary_forward_cuda(const at::Tensor& clip, const at::Tensor& faces,
                                          const at::Tensor& face_idx) {
  TORCH_CHECK(clip.is_cuda() && face_idx.is_cuda(), "expected CUDA tensors");
  const c10::cuda::CUDAGuard guard(clip.device());
  return bary_forward<CudaExec>(clip, faces, face_idx);
}

at::Tensor bary_backward_cuda(const at::Tensor& clip, const at::Tensor& faces,
                              const at::Tensor& face_idx, const std::optional<at::Tensor>& gb,
                              const std::optional<at::Tensor>& gd, bool deterministic) {
  TORCH_CHECK(clip.is_cuda(), "expected CUDA tensors");
  const c10::cuda::CUDAGuard guard(clip.device());
  return bary_backward<CudaExec>(clip, faces, face_idx, gb.value_or(at::Tensor()),
                                 gd.value_or(at::Tensor()), deterministic);
}

at::Tensor interp_forward_cuda(const at::Tensor& attr, const at::Tensor& faces,
                               const at::Tensor& face_idx, const at::Tensor& bary) {
  TORCH_CHECK(attr.is_cuda() && face_idx.is_cuda(), "expected CUDA tensors");
  const c10::cuda::CUDAGuard guard(attr.device());
  return interp_forward<CudaExec>(attr, faces, face_idx, bary);
}

std::vector<at::Tensor> interp_backward_cuda(const at::Tensor& attr, const at::Tensor& faces,
                                             const at::Tensor& face_idx,
                                             const at::Tensor& bary, const at::Tensor& grad_out,
                                             bool deterministic) {
  TORCH_CHECK(attr.is_cuda(), "expected CUDA tensors");
  const c10::cuda::CUDAGuard guard(attr.device());
  return interp_backward<CudaExec>(attr, faces, face_idx, bary, grad_out, deterministic);
}

std::vector<at::Tensor> image_loss_forward_cuda(const at::Tensor& rgb,
                                                const at::Tensor& alpha,
                                                const at::Tensor& t_rgb,
                                                const at::Tensor& t_mask) {
  TORCH_CHECK(rgb.is_cuda(), "expected CUDA tensors");
  const c10::cuda::CUDAGuard guard(rgb.device());
  return image_loss_forward<CudaExec>(rgb, alpha, t_rgb, t_mask);
}

std::vector<at::Tensor> image_loss_backward_cuda(const at::Tensor& rgb, const at::Tensor& alpha,
                                                 const at::Tensor& t_rgb,
                                                 const at::Tensor& t_mask, const at::Tensor& out,
                                                 const at::Tensor& enc, const at::Tensor& grad) {
  TORCH_CHECK(rgb.is_cuda(), "expected CUDA tensors");
  const c10::cuda::CUDAGuard guard(rgb.device());
  return image_loss_backward<CudaExec>(rgb, alpha, t_rgb, t_mask, out, enc, grad);
}

// Edge antialiasing: per-pixel gathers, and atomicAdd of each pair's vertex gradient by
// default (per-pair slots summed per vertex in deterministic mode).
at::Tensor aa_forward_cuda(const at::Tensor& color, const at::Tensor& face_idx,
                           const at::Tensor& depth, const at::Tensor& clip,
                           const at::Tensor& faces, const at::Tensor& topo) {
  TORCH_CHECK(color.is_cuda() && clip.is_cuda(), "expected CUDA tensors");
  const c10::cuda::CUDAGuard guard(color.device());
  return aa_forward<CudaExec>(color, face_idx, depth, clip, faces, topo);
}

std::vector<at::Tensor> aa_backward_cuda(const at::Tensor& color, const at::Tensor& face_idx,
                                         const at::Tensor& depth, const at::Tensor& clip,
                                         const at::Tensor& faces, const at::Tensor& topo,
                                         const at::Tensor& grad_out, bool deterministic) {
  TORCH_CHECK(color.is_cuda() && clip.is_cuda(), "expected CUDA tensors");
  const c10::cuda::CUDAGuard guard(color.device());
  return aa_backward<CudaExec>(color, face_idx, depth, clip, faces, topo, grad_out,
                               deterministic);
}

// NMR gradient: one thread per (image, face, corner, axis), each writing its own entry
// (deterministic without atomics).
at::Tensor nmr_backward_cuda(const at::Tensor& color, const at::Tensor& face_idx,
                             const at::Tensor& depth, const at::Tensor& xy, const at::Tensor& z,
                             const at::Tensor& valid, const at::Tensor& grad_out) {
  TORCH_CHECK(color.is_cuda() && xy.is_cuda(), "expected CUDA tensors");
  const c10::cuda::CUDAGuard guard(color.device());
  return nmr_backward<CudaExec>(color, face_idx, depth, xy, z, valid, grad_out);
}

// SoftRas: per-pixel gather forward; per-entry backward with atomicAdd into the vertices by
// default (per-entry slots summed per vertex in deterministic mode).
std::vector<at::Tensor> softras_forward_cuda(const at::Tensor& xy, const at::Tensor& zn,
                                             const at::Tensor& color, const at::Tensor& valid,
                                             const at::Tensor& faces, const at::Tensor& bg,
                                             int64_t h, int64_t w, double sigma, double gamma,
                                             double eps, double cut2) {
  TORCH_CHECK(xy.is_cuda() && color.is_cuda(), "expected CUDA tensors");
  const c10::cuda::CUDAGuard guard(xy.device());
  return sr_forward<CudaExec>(xy, zn, color, valid, faces, bg, h, w, sigma, gamma, eps, cut2);
}

std::vector<at::Tensor> softras_backward_cuda(const at::Tensor& grad_rgb,
                                              const at::Tensor& grad_alpha,
                                              const at::Tensor& xy, const at::Tensor& zn,
                                              const at::Tensor& color, const at::Tensor& valid,
                                              const at::Tensor& faces, const at::Tensor& bg,
                                              const std::vector<at::Tensor>& saved, int64_t h,
                                              int64_t w, double sigma, double gamma, double eps,
                                              double cut2, bool deterministic) {
  TORCH_CHECK(xy.is_cuda() && color.is_cuda(), "expected CUDA tensors");
  const c10::cuda::CUDAGuard guard(xy.device());
  return sr_backward<CudaExec>(grad_rgb, grad_alpha, xy, zn, color, valid, faces, bg, saved, h,
                               w, sigma, gamma, eps, cut2, deterministic);
}

}  // namespace dibr
