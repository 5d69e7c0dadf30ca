// Host-side orchestration of SoftRas (softras_kernels.h), written once for both devices with
// the `Exec` policy of raster_ops.h: setup, binning (make_bins), forward gather; backward per
// bin entry, then (deterministic mode) a per-vertex gather of the entries' slots.
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <vector>

#include "group_ops.h"
#include "raster_ops.h"
#include "softras_kernels.h"

namespace dibr {

#define DIBR_SR_BODY(Name, fn)                                   \
  struct Name {                                                  \
    template <class P>                                           \
    static DIBR_HD void run(int64_t i, const P& p) { fn(i, p); } \
  };
DIBR_SR_BODY(SRSetup, sr_setup_body)
DIBR_SR_BODY(SRForward, sr_forward_body)
DIBR_SR_BODY(SRBackward, sr_backward_body)
DIBR_SR_BODY(SRGather, sr_gather_body)
#undef DIBR_SR_BODY

// Saved state of a forward pass, reused by the backward pass.
enum SRSaved { kSRRgb, kSRAlpha, kSRTop, kSRDen, kSREmpty, kSRTri, kSRBox, kSREntries,
               kSRTileOff, kSRNumSaved };

struct SRInputs {
  at::Tensor xy, zn, color, valid, faces, bg;
};

inline SRInputs sr_inputs(const at::Tensor& xy, const at::Tensor& zn, const at::Tensor& color,
                          const at::Tensor& valid, const at::Tensor& faces,
                          const at::Tensor& bg) {
  TORCH_CHECK(xy.dim() == 3 && xy.size(2) == 2, "softras: xy must be [B,V,2]");
  TORCH_CHECK(xy.scalar_type() == at::kFloat || xy.scalar_type() == at::kDouble,
              "softras: xy must be float32 or float64");
  const int64_t B = xy.size(0), V = xy.size(1);
  TORCH_CHECK(zn.dim() == 2 && zn.size(0) == B && zn.size(1) == V, "softras: zn must be [B,V]");
  TORCH_CHECK(color.dim() == 3 && color.size(0) == B && color.size(1) == V,
              "softras: color must be [B,V,C]");
  TORCH_CHECK(color.size(2) >= 1 && color.size(2) <= SR_MAX_C, "softras: 1 to ", SR_MAX_C,
              " colour channels natively, got ", color.size(2));
  TORCH_CHECK(faces.dim() == 2 && faces.size(1) == 3, "softras: faces must be [F,3]");
  TORCH_CHECK(valid.dim() == 2 && valid.size(0) == B && valid.size(1) == faces.size(0),
              "softras: valid must be [B,F]");
  TORCH_CHECK(bg.numel() == color.size(2), "softras: background must have C values");
  const auto dt = xy.scalar_type();
  return SRInputs{xy.contiguous(), zn.to(dt).contiguous(), color.to(dt).contiguous(),
                  valid.to(at::kBool).contiguous(), faces.to(at::kLong).contiguous(),
                  bg.to(dt).contiguous().view({-1})};
}

template <typename T>
SRParams<T> sr_params(const SRInputs& in, int64_t h, int64_t w, double sigma, double gamma,
                      double eps, double cut2) {
  SRParams<T> p{};
  p.xy = in.xy.data_ptr<T>();
  p.zn = in.zn.data_ptr<T>();
  p.color = in.color.data_ptr<T>();
  p.bg = in.bg.data_ptr<T>();
  p.valid = in.valid.data_ptr<bool>();
  p.faces = in.faces.data_ptr<int64_t>();
  p.B = (int)in.xy.size(0), p.V = (int)in.xy.size(1), p.F = (int)in.faces.size(0);
  p.H = (int)h, p.W = (int)w, p.C = (int)in.color.size(2);
  p.tx = tiles_along(p.W), p.ty = tiles_along(p.H);
  p.two_over_w = (T)(2.0 / w);
  p.two_over_h = (T)(2.0 / h);
  p.iso_scale = (T)((double)w / (double)h);
  p.sigma = (T)sigma;
  p.gamma = (T)gamma;
  p.eps_over_gamma = (T)(eps / gamma);
  p.cut2 = (T)cut2;
  p.grow_px = std::sqrt(cut2) * (double)h / 2.0;
  return p;
}

// {rgb [B,H,W,C], alpha [B,H,W], then the saved state (SRSaved)}.
template <class Exec>
std::vector<at::Tensor> sr_forward(const at::Tensor& xy, const at::Tensor& zn,
                                   const at::Tensor& color, const at::Tensor& valid,
                                   const at::Tensor& faces, const at::Tensor& bg, int64_t h,
                                   int64_t w, double sigma, double gamma, double eps,
                                   double cut2) {
  const SRInputs in = sr_inputs(xy, zn, color, valid, faces, bg);
  std::vector<at::Tensor> out(kSRNumSaved);
  AT_DISPATCH_FLOATING_TYPES(in.xy.scalar_type(), "softras_forward", [&] {
    SRParams<scalar_t> p = sr_params<scalar_t>(in, h, w, sigma, gamma, eps, cut2);
    const int64_t nf = (int64_t)p.B * p.F, ntiles = (int64_t)p.B * p.tx * p.ty;
    const auto opt = in.xy.options();
    at::Tensor tri = at::empty({nf, SR_TRI}, opt);
    at::Tensor box = at::empty({nf, 4}, opt.dtype(at::kInt));
    p.tri = tri.data_ptr<scalar_t>();
    p.box = boxes(box);
    Exec::template launch<SRSetup>(nf, p);
    Bins bins = make_bins<Exec>(box, p.B, p.F, p.tx, p.ty);
    p.entries = bins.entries.data_ptr<int64_t>();
    p.tile_off = bins.tile_off.data_ptr<int64_t>();
    at::Tensor rgb = at::empty({(int64_t)p.B, p.H, p.W, p.C}, opt);
    at::Tensor alpha = at::empty({(int64_t)p.B, p.H, p.W}, opt);
    at::Tensor top = at::empty_like(alpha), den = at::empty_like(alpha);
    at::Tensor empty = at::empty_like(alpha);
    p.rgb = rgb.data_ptr<scalar_t>();
    p.alpha = alpha.data_ptr<scalar_t>();
    p.top = top.data_ptr<scalar_t>();
    p.den = den.data_ptr<scalar_t>();
    p.empty = empty.data_ptr<scalar_t>();
    Exec::template launch<SRForward>(ntiles * TILE_PIX, p);
    out = {rgb, alpha, top, den, empty, tri, box, bins.entries, bins.tile_off};
  });
  return out;
}

// {grad_xy [B,V,2], grad_zn [B,V], grad_color [B,V,C]}. Deterministic (fixed summation
// order) unless the executor has real atomics and `deterministic` is false.
template <class Exec>
std::vector<at::Tensor> sr_backward(const at::Tensor& grad_rgb_in,
                                    const at::Tensor& grad_alpha_in, const at::Tensor& xy,
                                    const at::Tensor& zn, const at::Tensor& color,
                                    const at::Tensor& valid, const at::Tensor& faces,
                                    const at::Tensor& bg, const std::vector<at::Tensor>& saved,
                                    int64_t h, int64_t w, double sigma, double gamma,
                                    double eps, double cut2, bool deterministic) {
  TORCH_CHECK((int)saved.size() == kSRNumSaved, "softras_backward: bad saved state");
  const SRInputs in = sr_inputs(xy, zn, color, valid, faces, bg);
  const auto dt = in.xy.scalar_type();
  const at::Tensor grad_rgb = grad_rgb_in.to(dt).contiguous();
  const at::Tensor grad_alpha = grad_alpha_in.to(dt).contiguous();
  TORCH_CHECK(grad_rgb.sizes() == saved[kSRRgb].sizes(), "softras: grad_rgb shape");
  TORCH_CHECK(grad_alpha.sizes() == saved[kSRAlpha].sizes(), "softras: grad_alpha shape");
  at::Tensor grad_xy = at::zeros_like(in.xy);
  at::Tensor grad_zn = at::zeros_like(in.zn);
  at::Tensor grad_color = at::zeros_like(in.color);
  AT_DISPATCH_FLOATING_TYPES(dt, "softras_backward", [&] {
    SRParams<scalar_t> p = sr_params<scalar_t>(in, h, w, sigma, gamma, eps, cut2);
    const at::Tensor& entries = saved[kSREntries];
    const int64_t npairs = entries.size(0), nf = (int64_t)p.B * p.F;
    p.tri = saved[kSRTri].data_ptr<scalar_t>();
    p.box = boxes(saved[kSRBox]);
    p.entries = entries.data_ptr<int64_t>();
    p.tile_off = saved[kSRTileOff].data_ptr<int64_t>();
    p.rgb = saved[kSRRgb].data_ptr<scalar_t>();
    p.top = saved[kSRTop].data_ptr<scalar_t>();
    p.den = saved[kSRDen].data_ptr<scalar_t>();
    p.empty = saved[kSREmpty].data_ptr<scalar_t>();
    p.grad_rgb = grad_rgb.data_ptr<scalar_t>();
    p.grad_alpha = grad_alpha.data_ptr<scalar_t>();
    p.grad_xy = grad_xy.data_ptr<scalar_t>();
    p.grad_zn = grad_zn.data_ptr<scalar_t>();
    p.grad_color = grad_color.data_ptr<scalar_t>();
    p.atomic_grad = Exec::kAtomicAdds && !deterministic;
    if (p.atomic_grad) {
      Exec::template launch<SRBackward>(npairs, p);
      return;
    }
    at::Tensor slot = at::empty({npairs, sr_slot_size(p.C)}, in.xy.options());
    p.slot = slot.data_ptr<scalar_t>();
    Exec::template launch<SRBackward>(npairs, p);
    // Entries grouped by face (ascending), corners grouped by vertex (ascending).
    Groups by_face = group_by<Exec>(entries.remainder(nf), nf, npairs > 0 ? npairs : 1, 0);
    Groups corners = group_by<Exec>(in.faces, p.V, in.faces.numel() > 0 ? in.faces.numel() : 1,
                                    0);
    p.face_ptr = by_face.off.data_ptr<int64_t>();
    p.face_entry = by_face.items.data_ptr<int64_t>();
    p.vert_ptr = corners.off.data_ptr<int64_t>();
    p.vert_corner = corners.items.data_ptr<int64_t>();
    Exec::template launch<SRGather>((int64_t)p.B * p.V, p);
  });
  return {grad_xy, grad_zn, grad_color};
}

}  // namespace dibr
