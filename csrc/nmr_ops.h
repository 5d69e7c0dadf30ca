// Host-side orchestration of the NMR gradient (nmr_kernels.h), written once for both devices
// with the same `Exec` policy as the other ops.
#pragma once

#include <ATen/ATen.h>

#include "nmr_kernels.h"

namespace dibr {

struct NmrGrad {
  template <class P>
  static DIBR_HD void run(int64_t i, const P& p) { nmr_grad_body(i, p); }
};

// grad_xy [B,F,3,2]: dL/d(screen X, Y) of every face corner by the NMR sweep rule.
template <class Exec>
at::Tensor nmr_backward(const at::Tensor& color_in, const at::Tensor& face_idx_in,
                        const at::Tensor& depth_in, const at::Tensor& xy_in,
                        const at::Tensor& z_in, const at::Tensor& valid_in,
                        const at::Tensor& grad_out_in) {
  TORCH_CHECK(color_in.dim() == 4, "color must be [B,H,W,C]");
  const auto dt = color_in.scalar_type();
  TORCH_CHECK(dt == at::kFloat || dt == at::kDouble, "color must be float32 or float64");
  const int64_t B = color_in.size(0), H = color_in.size(1), W = color_in.size(2);
  TORCH_CHECK(face_idx_in.dim() == 3 && face_idx_in.size(0) == B && face_idx_in.size(1) == H &&
                  face_idx_in.size(2) == W,
              "face_idx must be [B,H,W] like color");
  TORCH_CHECK(depth_in.sizes() == face_idx_in.sizes(), "depth must be [B,H,W]");
  TORCH_CHECK(xy_in.dim() == 4 && xy_in.size(0) == B && xy_in.size(2) == 3 && xy_in.size(3) == 2,
              "xy must be [B,F,3,2]");
  const int64_t F = xy_in.size(1);
  TORCH_CHECK(z_in.dim() == 3 && z_in.size(0) == B && z_in.size(1) == F && z_in.size(2) == 3,
              "z must be [B,F,3]");
  TORCH_CHECK(valid_in.dim() == 2 && valid_in.size(0) == B && valid_in.size(1) == F,
              "valid must be [B,F]");
  TORCH_CHECK(grad_out_in.sizes() == color_in.sizes(), "grad_out must be shaped like color");
  const at::Tensor color = color_in.contiguous();
  const at::Tensor face_idx = face_idx_in.to(at::kLong).contiguous();
  const at::Tensor depth = depth_in.to(dt).contiguous();
  const at::Tensor xy = xy_in.to(dt).contiguous();
  const at::Tensor z = z_in.to(dt).contiguous();
  const at::Tensor valid = valid_in.to(at::kBool).contiguous();
  const at::Tensor grad_out = grad_out_in.to(dt).contiguous();
  at::Tensor grad_xy = at::zeros_like(xy);
  AT_DISPATCH_FLOATING_TYPES(dt, "nmr_backward", [&] {
    NmrParams<scalar_t> p{};
    p.color = color.data_ptr<scalar_t>();
    p.face_idx = face_idx.data_ptr<int64_t>();
    p.depth = depth.data_ptr<scalar_t>();
    p.xy = xy.data_ptr<scalar_t>();
    p.z = z.data_ptr<scalar_t>();
    p.valid = valid.data_ptr<bool>();
    p.grad_out = grad_out.data_ptr<scalar_t>();
    p.B = (int)B, p.H = (int)H, p.W = (int)W, p.C = (int)color.size(3), p.F = (int)F;
    p.grad_xy = grad_xy.data_ptr<scalar_t>();
    Exec::template launch<NmrGrad>(B * F * 6, p);
  });
  return grad_xy;
}

}  // namespace dibr
