// Host-side orchestration of the fused image losses (loss_kernels.h), written once for both
// devices through the Exec policy of raster_ops.h.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <type_traits>
#include <vector>

#include "loss_cpu.h"
#include "loss_kernels.h"

namespace dibr {

#define DIBR_LOSS_BODY(Name, fn)                                 \
  struct Name {                                                  \
    template <class P>                                           \
    static DIBR_HD void run(int64_t i, const P& p) { fn(i, p); } \
  };
DIBR_LOSS_BODY(LossRow, loss_row_body)
DIBR_LOSS_BODY(LossTotal, loss_total_body)
DIBR_LOSS_BODY(LossBackward, loss_backward_body)
DIBR_LOSS_BODY(LossBackwardRow, loss_backward_row_body)
#undef DIBR_LOSS_BODY

template <typename T>
ImageLossParams<T> image_loss_params(const at::Tensor& rgb, const at::Tensor& alpha,
                                     const at::Tensor& t_rgb, const at::Tensor& t_mask) {
  TORCH_CHECK(rgb.dim() == 4 && rgb.size(3) == 3, "rgb must be [B,H,W,3]");
  TORCH_CHECK(alpha.sizes() == rgb.sizes().slice(0, 3), "alpha must be [B,H,W]");
  TORCH_CHECK(t_rgb.sizes() == rgb.sizes() && t_mask.sizes() == alpha.sizes(),
              "targets must match the render's shapes");
  ImageLossParams<T> p{};
  p.rgb = rgb.data_ptr<T>();
  p.alpha = alpha.data_ptr<T>();
  p.t_rgb = t_rgb.data_ptr<T>();
  p.t_mask = t_mask.data_ptr<T>();
  p.B = (int)rgb.size(0), p.H = (int)rgb.size(1), p.W = (int)rgb.size(2);
  return p;
}

// ([2 + 4B]: the iou loss, the l1 loss, then each image's (intersection, union), then each
// image's hard (intersection, union) pixel counts; the sRGB-encoded render [B,H,W,3], which
// the backward pass takes back).
template <class Exec>
std::vector<at::Tensor> image_loss_forward(const at::Tensor& rgb_in, const at::Tensor& alpha_in,
                              const at::Tensor& t_rgb_in, const at::Tensor& t_mask_in) {
  const at::Tensor rgb = rgb_in.contiguous(), alpha = alpha_in.contiguous();
  const at::Tensor t_rgb = t_rgb_in.contiguous(), t_mask = t_mask_in.contiguous();
  at::Tensor out, enc = at::empty_like(rgb);
  AT_DISPATCH_FLOATING_TYPES(rgb.scalar_type(), "image_loss_forward", [&] {
    ImageLossParams<scalar_t> p = image_loss_params<scalar_t>(rgb, alpha, t_rgb, t_mask);
    at::Tensor rows = at::empty({(int64_t)p.B * p.H, 5}, rgb.options().dtype(at::kDouble));
    out = at::empty({2 + 4 * (int64_t)p.B}, rgb.options());
    p.rows = rows.data_ptr<double>();
    p.out = out.data_ptr<scalar_t>();
    p.enc = enc.data_ptr<scalar_t>();
    Exec::template launch<LossRow>((int64_t)p.B * p.H, p);
    Exec::template launch<LossTotal>(1, p);
  });
  return {out, enc};
}

// The host's vector pass over every row where it applies (float32 on an AVX2 host); false
// where the caller runs the row bodies.
template <typename T>
bool loss_backward_host(const ImageLossParams<T>& p) {
#if defined(LOSS_SIMD)
  if constexpr (std::is_same<T, float>::value) {
    if (cpu_has_avx2()) {
      at::parallel_for(0, (int64_t)p.B * p.H, 256,
                       [&](int64_t r0, int64_t r1) { loss_backward_rows_simd(r0, r1, p); });
      return true;
    }
  }
#endif
  (void)p;
  return false;
}

// (grad_rgb [B,H,W,3], grad_alpha [B,H,W]) for upstream grad [2] of (iou, l1), given the
// forward pass's two outputs.
template <class Exec>
std::vector<at::Tensor> image_loss_backward(const at::Tensor& rgb_in, const at::Tensor& alpha_in,
                                            const at::Tensor& t_rgb_in,
                                            const at::Tensor& t_mask_in, const at::Tensor& out,
                                            const at::Tensor& enc_in, const at::Tensor& grad_in) {
  const at::Tensor rgb = rgb_in.contiguous(), alpha = alpha_in.contiguous();
  const at::Tensor t_rgb = t_rgb_in.contiguous(), t_mask = t_mask_in.contiguous();
  const at::Tensor grad = grad_in.to(rgb.scalar_type()).contiguous();
  const at::Tensor sums = out.contiguous(), enc = enc_in.contiguous();
  at::Tensor grad_rgb = at::empty_like(rgb), grad_alpha = at::empty_like(alpha);
  AT_DISPATCH_FLOATING_TYPES(rgb.scalar_type(), "image_loss_backward", [&] {
    ImageLossParams<scalar_t> p = image_loss_params<scalar_t>(rgb, alpha, t_rgb, t_mask);
    p.out = const_cast<scalar_t*>(sums.data_ptr<scalar_t>());
    p.enc = const_cast<scalar_t*>(enc.data_ptr<scalar_t>());
    p.grad = grad.data_ptr<scalar_t>();
    p.grad_rgb = grad_rgb.data_ptr<scalar_t>();
    p.grad_alpha = grad_alpha.data_ptr<scalar_t>();
    if constexpr (Exec::kTilePerIndex) {  // a CPU thread takes whole rows
      if (loss_backward_host(p)) return;
      Exec::template launch<LossBackwardRow>((int64_t)p.B * p.H, p);
    } else {
      Exec::template launch<LossBackward>((int64_t)p.B * p.H * p.W, p);
    }
  });
  return {grad_rgb, grad_alpha};
}

}  // namespace dibr
