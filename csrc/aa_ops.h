// Host-side orchestration of edge antialiasing (aa_kernels.h), written once for both devices
// with the same `Exec` policy as raster_ops.h and frag_ops.h.
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "aa_kernels.h"
#include "group_ops.h"

namespace dibr {

#define DIBR_AA_BODY(Name, fn)                                   \
  struct Name {                                                  \
    template <class P>                                           \
    static DIBR_HD void run(int64_t i, const P& p) { fn(i, p); } \
  };
DIBR_AA_BODY(AAForward, aa_forward_body)
DIBR_AA_BODY(AAGradColor, aa_grad_color_body)
DIBR_AA_BODY(AAGradClip, aa_grad_clip_body)
DIBR_AA_BODY(AAGather, aa_gather_body)
#undef DIBR_AA_BODY

struct AAInputs {
  at::Tensor color, face_idx, depth, clip, faces, topo;
};

inline AAInputs aa_inputs(const at::Tensor& color, const at::Tensor& face_idx,
                          const at::Tensor& depth, const at::Tensor& clip,
                          const at::Tensor& faces, const at::Tensor& topo) {
  TORCH_CHECK(color.dim() == 4, "color must be [B,H,W,C]");
  TORCH_CHECK(color.scalar_type() == at::kFloat || color.scalar_type() == at::kDouble,
              "color must be float32 or float64");
  TORCH_CHECK(face_idx.dim() == 3 && face_idx.size(0) == color.size(0) &&
                  face_idx.size(1) == color.size(1) && face_idx.size(2) == color.size(2),
              "face_idx must be [B,H,W] like color");
  TORCH_CHECK(depth.sizes() == face_idx.sizes(), "depth must be [B,H,W] like face_idx");
  TORCH_CHECK(clip.dim() == 3 && clip.size(2) == 4 && clip.size(0) == color.size(0),
              "clip must be [B,V,4] with the batch of color");
  TORCH_CHECK(faces.dim() == 2 && faces.size(1) == 3 && topo.sizes() == faces.sizes(),
              "faces and topology must be [F,3]");
  const auto dt = color.scalar_type();
  return AAInputs{color.contiguous(),         face_idx.to(at::kLong).contiguous(),
                  depth.to(dt).contiguous(),  clip.to(dt).contiguous(),
                  faces.to(at::kLong).contiguous(), topo.to(at::kLong).contiguous()};
}

template <typename T>
AAParams<T> aa_params(const AAInputs& in) {
  AAParams<T> p{};
  p.color = in.color.data_ptr<T>();
  p.face_idx = in.face_idx.data_ptr<int64_t>();
  p.depth = in.depth.data_ptr<T>();
  p.clip = in.clip.data_ptr<T>();
  p.faces = in.faces.data_ptr<int64_t>();
  p.topo = in.topo.data_ptr<int64_t>();
  p.B = (int)in.color.size(0), p.H = (int)in.color.size(1), p.W = (int)in.color.size(2);
  p.C = (int)in.color.size(3), p.V = (int)in.clip.size(1), p.F = (int)in.faces.size(0);
  p.half_w = (T)(0.5 * p.W);
  p.half_h = (T)(0.5 * p.H);
  return p;
}

// out [B,H,W,C]: colours blended across silhouette edges.
template <class Exec>
at::Tensor aa_forward(const at::Tensor& color, const at::Tensor& face_idx,
                      const at::Tensor& depth, const at::Tensor& clip, const at::Tensor& faces,
                      const at::Tensor& topo) {
  const AAInputs in = aa_inputs(color, face_idx, depth, clip, faces, topo);
  at::Tensor out = at::empty_like(in.color);
  AT_DISPATCH_FLOATING_TYPES(in.color.scalar_type(), "aa_forward", [&] {
    AAParams<scalar_t> p = aa_params<scalar_t>(in);
    p.out = out.data_ptr<scalar_t>();
    Exec::template launch<AAForward>(in.face_idx.numel(), p);
  });
  return out;
}

// {grad_color [B,H,W,C], grad_clip [B,V,4]}.
template <class Exec>
std::vector<at::Tensor> aa_backward(const at::Tensor& color, const at::Tensor& face_idx,
                                    const at::Tensor& depth, const at::Tensor& clip,
                                    const at::Tensor& faces, const at::Tensor& topo,
                                    const at::Tensor& grad_out_in, bool deterministic) {
  const AAInputs in = aa_inputs(color, face_idx, depth, clip, faces, topo);
  const at::Tensor grad_out = grad_out_in.to(in.color.scalar_type()).contiguous();
  TORCH_CHECK(grad_out.sizes() == in.color.sizes(), "grad_out must be shaped like color");
  at::Tensor grad_color = at::empty_like(in.color);
  at::Tensor grad_clip = at::zeros_like(in.clip);
  const int64_t B = in.color.size(0), HW = in.color.size(1) * in.color.size(2);
  const int64_t V = in.clip.size(1), npairs = B * 2 * HW;
  AT_DISPATCH_FLOATING_TYPES(in.color.scalar_type(), "aa_backward", [&] {
    AAParams<scalar_t> p = aa_params<scalar_t>(in);
    p.grad_out = grad_out.data_ptr<scalar_t>();
    p.grad_color = grad_color.data_ptr<scalar_t>();
    p.grad_clip = grad_clip.data_ptr<scalar_t>();
    Exec::template launch<AAGradColor>(B * HW, p);
    if (Exec::kAtomicAdds && !deterministic) {
      Exec::template launch<AAGradClip>(npairs, p);
      return;
    }
    at::Tensor slot_grad = at::zeros({npairs * 2, 4}, in.clip.options());
    at::Tensor slot_vert = at::empty({npairs * 2}, in.face_idx.options());
    p.slot_grad = slot_grad.data_ptr<scalar_t>();
    p.slot_vert = slot_vert.data_ptr<int64_t>();
    Exec::template launch<AAGradClip>(npairs, p);
    // Slot s belongs to image s / (4*H*W); its key is b*V + vertex.
    Groups g = group_by<Exec>(slot_vert, B * V, 4 * HW, V);
    p.grp_off = g.off.data_ptr<int64_t>();
    p.grp = g.items.data_ptr<int64_t>();
    Exec::template launch<AAGather>(B * V, p);
  });
  return {grad_color, grad_clip};
}

}  // namespace dibr
