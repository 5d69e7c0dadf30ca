// Host-side orchestration of the fused Lambertian shading of covered pixels
// (shade_kernels.h), written once for both devices through the Exec policy of raster_ops.h.
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <vector>

#include "shade_kernels.h"

namespace dibr {

#define DIBR_SHADE_BODY(Name, fn)                                \
  struct Name {                                                  \
    template <class P>                                           \
    static DIBR_HD void run(int64_t i, const P& p) { fn(i, p); } \
  };
DIBR_SHADE_BODY(ShadeLight, shade_light_body)
DIBR_SHADE_BODY(ShadeForward, shade_forward_body)
DIBR_SHADE_BODY(ShadeBackward, shade_backward_body)
DIBR_SHADE_BODY(ShadeParamGrads, shade_param_body)
#undef DIBR_SHADE_BODY

// The inputs of both passes. `scalars` are (intensity, ambient, kd), each a tensor of one value
// or one per image (`slots` of them) or none, then `values` holds its constant.
struct ShadeInputs {
  at::Tensor attrs, dir;
  std::optional<at::Tensor> bidx;
  std::vector<std::optional<at::Tensor>> scalars;
  std::vector<double> values;
  int64_t slots;
  double eps;
};

inline void check_shade_inputs(const ShadeInputs& in) {
  TORCH_CHECK(in.attrs.dim() == 2 && in.attrs.size(1) == 6,
              "attrs must be [P,6]: colour and normal");
  TORCH_CHECK(in.dir.scalar_type() == in.attrs.scalar_type(),
              "attrs and the light direction must share one dtype");
  TORCH_CHECK(in.scalars.size() == 3 && in.values.size() == 3, "three shading scalars");
  TORCH_CHECK(in.slots >= 1, "slots must be positive");
  TORCH_CHECK(in.dir.dim() == 2 && in.dir.size(1) == 3 &&
                  (in.dir.size(0) == 1 || in.dir.size(0) == in.slots),
              "the light direction must be [1,3] or [slots,3]");
  TORCH_CHECK(in.slots == 1 || in.bidx.has_value(), "per-image parameters need bidx");
  if (in.bidx) {
    TORCH_CHECK(in.bidx->dim() == 1 && in.bidx->size(0) == in.attrs.size(0) &&
                    in.bidx->scalar_type() == at::kLong,
                "bidx must be int64 [P]");
  }
  for (const auto& s : in.scalars) {
    if (!s) continue;
    TORCH_CHECK(s->scalar_type() == in.attrs.scalar_type(), "shading scalars: attrs' dtype");
    TORCH_CHECK(s->numel() == 1 || s->numel() == in.slots,
                "a shading scalar has one value or one per image");
  }
}

template <typename T>
ShadeScalar<T> shade_scalar(const std::optional<at::Tensor>& t, double value) {
  ShadeScalar<T> s{};
  s.ptr = t ? t->data_ptr<T>() : nullptr;
  s.value = (T)value;
  s.n = t ? t->numel() : 1;
  return s;
}

template <typename T>
ShadeParams<T> shade_params(const ShadeInputs& in) {
  ShadeParams<T> p{};
  p.attrs = in.attrs.data_ptr<T>();
  p.bidx = in.bidx ? in.bidx->data_ptr<int64_t>() : nullptr;
  p.dir = in.dir.data_ptr<T>();
  p.nd = in.dir.size(0);
  p.intensity = shade_scalar<T>(in.scalars[0], in.values[0]);
  p.ambient = shade_scalar<T>(in.scalars[1], in.values[1]);
  p.kd = shade_scalar<T>(in.scalars[2], in.values[2]);
  p.P = in.attrs.size(0);
  p.slots = in.bidx ? in.slots : 1;
  p.eps2 = (T)(in.eps * in.eps);
  return p;
}

inline ShadeInputs shade_inputs(const at::Tensor& attrs, const std::optional<at::Tensor>& bidx, const at::Tensor& dir,
                                const std::optional<at::Tensor>& intensity,
                                const std::optional<at::Tensor>& ambient,
                                const std::optional<at::Tensor>& kd,
                                const std::vector<double>& values, int64_t slots, double eps) {
  auto c = [](const std::optional<at::Tensor>& t) -> std::optional<at::Tensor> {
    if (!t) return std::nullopt;
    return t->contiguous();
  };
  ShadeInputs in{attrs.contiguous(), dir.reshape({-1, 3}).contiguous(),
                 c(bidx), {c(intensity), c(ambient), c(kd)}, values, slots, eps};
  check_shade_inputs(in);
  return in;
}

// (lit [P,3], the saved state: aux [P,2] and the unit light directions [nd,3]).
template <class Exec>
std::vector<at::Tensor> shade_forward(const ShadeInputs& in) {
  at::Tensor out = at::empty({in.attrs.size(0), 3}, in.attrs.options());
  at::Tensor aux = at::empty({in.attrs.size(0), 2}, in.attrs.options());
  at::Tensor light = at::empty_like(in.dir);
  AT_DISPATCH_FLOATING_TYPES(in.attrs.scalar_type(), "shade_forward", [&] {
    ShadeParams<scalar_t> p = shade_params<scalar_t>(in);
    p.light = light.data_ptr<scalar_t>();
    p.aux = aux.data_ptr<scalar_t>();
    p.out = out.data_ptr<scalar_t>();
    Exec::template launch_serial<ShadeLight>(p.nd, p);
    Exec::template launch<ShadeForward>((p.P + SHADE_CHUNK - 1) / SHADE_CHUNK, p);
  });
  return {out, aux, light};
}

// Given the forward pass's saved (aux, light):
// (grad_attrs [P,6], grad_dir (dir's shape), grad_intensity,
// grad_ambient, grad_kd (each its scalar's shape; undefined for a constant)). The parameters'
// gradients are computed only when `param_grads` is set (else all undefined).
template <class Exec>
std::vector<at::Tensor> shade_backward(const ShadeInputs& in, const at::Tensor& dir_in,
                                       const std::vector<at::Tensor>& saved,
                                       const at::Tensor& grad_in, bool param_grads) {
  TORCH_CHECK(saved.size() == 2, "the forward pass's (aux, light)");
  const at::Tensor aux = saved[0].contiguous(), light = saved[1].contiguous();
  TORCH_CHECK(aux.dim() == 2 && aux.size(0) == in.attrs.size(0) && aux.size(1) == 2 &&
                  light.sizes() == in.dir.sizes(),
              "saved state does not match the inputs");
  const at::Tensor grad = grad_in.to(in.attrs.scalar_type()).contiguous();
  TORCH_CHECK(grad.dim() == 2 && grad.size(0) == in.attrs.size(0) && grad.size(1) == 3,
              "grad must match the output [P,3]");
  at::Tensor grad_attrs = at::empty_like(in.attrs);
  std::vector<at::Tensor> out = {grad_attrs, at::Tensor(), at::Tensor(), at::Tensor(),
                                 at::Tensor()};
  AT_DISPATCH_FLOATING_TYPES(in.attrs.scalar_type(), "shade_backward", [&] {
    ShadeParams<scalar_t> p = shade_params<scalar_t>(in);
    const int64_t chunks = (p.P + SHADE_CHUNK - 1) / SHADE_CHUNK;
    at::Tensor partial = at::zeros({chunks, p.slots, SHADE_SLOTS},
                                   in.attrs.options().dtype(at::kDouble));
    p.light = const_cast<scalar_t*>(light.data_ptr<scalar_t>());
    p.aux = const_cast<scalar_t*>(aux.data_ptr<scalar_t>());
    p.grad = grad.data_ptr<scalar_t>();
    p.grad_attrs = grad_attrs.data_ptr<scalar_t>();
    p.partial = partial.data_ptr<double>();
    Exec::template launch<ShadeBackward>(chunks, p);
    if (!param_grads) return;
    out[1] = at::empty(dir_in.sizes(), in.dir.options());
    p.grad_dir = out[1].data_ptr<scalar_t>();
    scalar_t** grads[3] = {&p.grad_intensity, &p.grad_ambient, &p.grad_kd};
    for (int j = 0; j < 3; ++j) {
      if (!in.scalars[j]) continue;
      out[2 + j] = at::empty(in.scalars[j]->sizes(), in.attrs.options());
      *grads[j] = out[2 + j].data_ptr<scalar_t>();
    }
    Exec::template launch_serial<ShadeParamGrads>(1, p);
  });
  return out;
}

}  // namespace dibr
