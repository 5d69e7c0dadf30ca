// Host-side orchestration of the fragment ops (frag_kernels.h), written once for both devices
// with the same `Exec` policy as raster_ops.h.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <type_traits>
#include <vector>

#include "cpu_range.h"
#include "frag_cpu.h"
#include "frag_kernels.h"
#include "group_ops.h"

namespace dibr {

#define DIBR_FRAG_BODY(Name, fn)                                 \
  struct Name {                                                  \
    template <class P>                                           \
    static DIBR_HD void run(int64_t i, const P& p) { fn(i, p); } \
  };
DIBR_FRAG_BODY(BaryForward, bary_forward_body)
DIBR_FRAG_BODY(BaryBackwardAtomic, bary_backward_atomic_body)
DIBR_FRAG_BODY(BaryFaceSum, bary_face_body)
DIBR_FRAG_BODY(InterpForward, interp_forward_body)
DIBR_FRAG_BODY(InterpBackwardPixel, interp_backward_pixel_body)
DIBR_FRAG_BODY(InterpFace, interp_face_body)
DIBR_FRAG_BODY(VertGather, vert_gather_body)
#undef DIBR_FRAG_BODY

// Memos of the groupings below (group_by_memo): one for pixels by face, shared by the two
// backward passes of a step, and one for corners by vertex per op.
inline GroupMemo& pixel_memo() {
  static GroupMemo m;
  return m;
}
inline GroupMemo& corner_memo(int op) {
  static GroupMemo m[2];
  return m[op];
}
inline void clear_frag_memos() {
  pixel_memo().clear();
  corner_memo(0).clear();
  corner_memo(1).clear();
}

// Pixels grouped by face n = b*F + face_idx (background left out).
template <class Exec>
Groups pixels_by_face(const at::Tensor& face_idx, int64_t B, int64_t F) {
  const int64_t hw = B ? face_idx.numel() / B : 1;
  return group_by_memo<Exec>(pixel_memo(), face_idx, B * F, hw, F);
}

// Corners f*3+k of each of V vertices, ascending (memo `op`: 0 barycentrics, 1 interpolation).
template <class Exec>
Groups corners_by_vertex(const at::Tensor& faces, int64_t V, int op) {
  return group_by_memo<Exec>(corner_memo(op), faces, V, faces.numel() > 0 ? faces.numel() : 1,
                             0);
}

// Sum per-face corner sums [B*F,3,D] into [BA,V,D] in a fixed order.
template <class Exec, typename T>
void gather_vertices(const at::Tensor& face_grad, const at::Tensor& faces, int B, int BA,
                     int V, int F, int D, at::Tensor& out, int op) {
  Groups g = corners_by_vertex<Exec>(faces, V, op);
  VertGatherParams<T> vp{face_grad.data_ptr<T>(), g.off.data_ptr<int64_t>(),
                         g.items.data_ptr<int64_t>(), B, BA, V, F, D, out.data_ptr<T>()};
  Exec::template launch<VertGather>((int64_t)BA * V, vp);
}

#if !defined(__CUDACC__)
// Host loops of the barycentrics passes, with a clone for x86-64 hosts with AVX2 and FMA (the
// explicit fma of diff_of_products becomes one instruction; -ffp-contract=off still keeps
// every other operation as written, so the same bits).
#if defined(__x86_64__) && defined(__GNUC__)
#define FRAG_AVX2_CLONE 1
#endif

// Forward of pixels [q0, q1): a face is set up once for a run of pixels of the same face.
template <typename T>
inline void bary_forward_range(int64_t q0, int64_t q1, const BaryParams<T>& p) {
  int64_t last = -1;
  BaryFace<T> fc;
  for (int64_t q = q0; q < q1; ++q) {
    const int64_t f = p.face_idx[q];
    if (f < 0) {
      bary_forward_background(q, p);
      continue;
    }
    int i, j;
    const int b = pixel_of(q, p, &i, &j);
    const int64_t n = (int64_t)b * p.F + f;
    if (n != last) {
      bary_face_setup(p, b, f, &fc);
      last = n;
    }
    bary_forward_pixel(q, p, fc);
  }
}

template <typename T>
inline void bary_face_range(int64_t n0, int64_t n1, const BaryParams<T>& p) {
  for (int64_t n = n0; n < n1; ++n) bary_face_body(n, p);
}

#if defined(FRAG_AVX2_CLONE)
template <typename T>
__attribute__((target("avx2,fma"), flatten)) void bary_forward_range_avx2(
    int64_t q0, int64_t q1, const BaryParams<T>& p) {
  bary_forward_range(q0, q1, p);
}

template <typename T>
__attribute__((target("avx2,fma"), flatten)) void bary_face_range_avx2(int64_t n0, int64_t n1,
                                                                       const BaryParams<T>& p) {
  bary_face_range(n0, n1, p);
}

#endif

template <typename T>
void bary_forward_host(int64_t n, const BaryParams<T>& p) {
  at::parallel_for(0, n, 2048, [&](int64_t q0, int64_t q1) {
#if defined(FRAG_AVX2_CLONE)
    if (cpu_has_avx2_fma()) return bary_forward_range_avx2(q0, q1, p);
#endif
    bary_forward_range(q0, q1, p);
  });
}

template <typename T>
void bary_face_sums_host(int64_t n, const BaryParams<T>& p) {
  at::parallel_for(0, n, 256, [&](int64_t n0, int64_t n1) {
#if defined(FRAG_BARY_SIMD)
    if constexpr (std::is_same<T, float>::value) {
      if (cpu_has_avx2_fma()) return bary_face_range_simd(n0, n1, p);
    }
#endif
#if defined(FRAG_AVX2_CLONE)
    if (cpu_has_avx2_fma()) return bary_face_range_avx2(n0, n1, p);
#endif
    bary_face_range(n0, n1, p);
  });
}
#endif  // !__CUDACC__

template <typename T>
BaryParams<T> bary_params(const at::Tensor& clip, const at::Tensor& faces,
                          const at::Tensor& face_idx) {
  BaryParams<T> p{};
  p.clip = clip.data_ptr<T>();
  p.faces = faces.data_ptr<int64_t>();
  p.face_idx = face_idx.data_ptr<int64_t>();
  p.B = (int)face_idx.size(0), p.V = (int)clip.size(1), p.F = (int)faces.size(0);
  p.H = (int)face_idx.size(1), p.W = (int)face_idx.size(2);
  p.two_over_w = (T)(2.0 / p.W);
  p.two_over_h = (T)(2.0 / p.H);
  return p;
}

inline void check_frag_inputs(const at::Tensor& clip, const at::Tensor& faces,
                              const at::Tensor& face_idx) {
  TORCH_CHECK(clip.dim() == 3 && clip.size(2) == 4, "clip must be [B,V,4]");
  TORCH_CHECK(face_idx.dim() == 3 && face_idx.size(0) == clip.size(0),
              "face_idx must be [B,H,W] with the batch of clip");
  TORCH_CHECK(faces.dim() == 2 && faces.size(1) == 3, "faces must be [F,3]");
  TORCH_CHECK(clip.scalar_type() == at::kFloat || clip.scalar_type() == at::kDouble,
              "clip must be float32 or float64");
}

// bary [B,H,W,3] and depth [B,H,W] of each pixel's face.
template <class Exec>
std::vector<at::Tensor> bary_forward(const at::Tensor& clip_in, const at::Tensor& faces_in,
                                     const at::Tensor& face_idx_in) {
  check_frag_inputs(clip_in, faces_in, face_idx_in);
  const at::Tensor clip = clip_in.contiguous();
  const at::Tensor faces = faces_in.to(at::kLong).contiguous();
  const at::Tensor face_idx = face_idx_in.to(at::kLong).contiguous();
  const int64_t B = face_idx.size(0), H = face_idx.size(1), W = face_idx.size(2);
  at::Tensor bary = at::empty({B, H, W, 3}, clip.options());
  at::Tensor depth = at::empty({B, H, W}, clip.options());
  AT_DISPATCH_FLOATING_TYPES(clip.scalar_type(), "bary_forward", [&] {
    BaryParams<scalar_t> p = bary_params<scalar_t>(clip, faces, face_idx);
    p.bary = bary.data_ptr<scalar_t>();
    p.depth = depth.data_ptr<scalar_t>();
#if !defined(__CUDACC__)
    if constexpr (!Exec::kAtomicAdds) {
      bary_forward_host(B * H * W, p);
      return;
    }
#endif
    Exec::template launch<BaryForward>(B * H * W, p);
  });
  return {bary, depth};
}

// grad_clip [B,V,4] from the gradients of bary (or undefined) and depth (or undefined).
template <class Exec>
at::Tensor bary_backward(const at::Tensor& clip_in, const at::Tensor& faces_in,
                         const at::Tensor& face_idx_in, const at::Tensor& grad_bary_in,
                         const at::Tensor& grad_depth_in, bool deterministic) {
  check_frag_inputs(clip_in, faces_in, face_idx_in);
  const at::Tensor clip = clip_in.contiguous();
  const at::Tensor faces = faces_in.to(at::kLong).contiguous();
  const at::Tensor face_idx = face_idx_in.to(at::kLong).contiguous();
  const auto dt = clip.scalar_type();
  const at::Tensor grad_bary =
      grad_bary_in.defined() ? grad_bary_in.to(dt).contiguous() : at::Tensor();
  const at::Tensor grad_depth =
      grad_depth_in.defined() ? grad_depth_in.to(dt).contiguous() : at::Tensor();
  at::Tensor grad_clip = at::zeros_like(clip);
  const int64_t B = face_idx.size(0), F = faces.size(0), V = clip.size(1);
  if (F == 0 || (!grad_bary.defined() && !grad_depth.defined())) return grad_clip;
  AT_DISPATCH_FLOATING_TYPES(dt, "bary_backward", [&] {
    BaryParams<scalar_t> p = bary_params<scalar_t>(clip, faces, face_idx);
    p.grad_bary = grad_bary.defined() ? grad_bary.data_ptr<scalar_t>() : nullptr;
    p.grad_depth = grad_depth.defined() ? grad_depth.data_ptr<scalar_t>() : nullptr;
    p.grad_clip = grad_clip.data_ptr<scalar_t>();
    if (Exec::kAtomicAdds && !deterministic) {
      Exec::template launch<BaryBackwardAtomic>(face_idx.numel(), p);
      return;
    }
    Groups px = pixels_by_face<Exec>(face_idx, B, F);
    at::Tensor face_grad = at::empty({B * F, 3, 4}, clip.options());
    p.face_grad = face_grad.data_ptr<scalar_t>();
    p.pix_off = px.off.data_ptr<int64_t>();
    p.pix = px.items.data_ptr<int64_t>();
#if !defined(__CUDACC__)
    if constexpr (!Exec::kAtomicAdds) {
      bary_face_sums_host(B * F, p);
    } else {
      Exec::template launch<BaryFaceSum>(B * F, p);
    }
#else
    Exec::template launch<BaryFaceSum>(B * F, p);
#endif
    gather_vertices<Exec, scalar_t>(face_grad, faces, (int)B, (int)B, (int)V, (int)F, 4,
                                    grad_clip, 0);
  });
  return grad_clip;
}

template <typename T>
InterpParams<T> interp_params(const at::Tensor& attr, const at::Tensor& faces,
                              const at::Tensor& face_idx, const at::Tensor& bary) {
  InterpParams<T> p{};
  p.attr = attr.data_ptr<T>();
  p.faces = faces.data_ptr<int64_t>();
  p.face_idx = face_idx.data_ptr<int64_t>();
  p.bary = bary.data_ptr<T>();
  p.B = (int)face_idx.size(0), p.BA = (int)attr.size(0), p.V = (int)attr.size(1);
  p.F = (int)faces.size(0), p.C = (int)attr.size(2);
  p.HW = face_idx.size(1) * face_idx.size(2);
  return p;
}

inline void check_interp_inputs(const at::Tensor& attr, const at::Tensor& faces,
                                const at::Tensor& face_idx, const at::Tensor& bary) {
  TORCH_CHECK(attr.dim() == 3, "attr must be [BA,V,C]");
  TORCH_CHECK(face_idx.dim() == 3, "face_idx must be [B,H,W]");
  TORCH_CHECK(attr.size(0) == 1 || attr.size(0) == face_idx.size(0),
              "attr batch must be 1 or that of face_idx");
  TORCH_CHECK(bary.dim() == 4 && bary.size(3) == 3 && bary.size(0) == face_idx.size(0) &&
                  bary.size(1) == face_idx.size(1) && bary.size(2) == face_idx.size(2),
              "bary must be [B,H,W,3] like face_idx");
  TORCH_CHECK(bary.scalar_type() == attr.scalar_type(), "bary and attr must share a dtype");
  TORCH_CHECK(faces.dim() == 2 && faces.size(1) == 3 && faces.size(0) > 0,
              "faces must be [F,3] with F > 0");
}

// out [B,H,W,C] = sum_k bary_k attr[faces[face_idx, k]] (0 on background).
template <class Exec>
at::Tensor interp_forward(const at::Tensor& attr_in, const at::Tensor& faces_in,
                          const at::Tensor& face_idx_in, const at::Tensor& bary_in) {
  check_interp_inputs(attr_in, faces_in, face_idx_in, bary_in);
  const at::Tensor attr = attr_in.contiguous(), bary = bary_in.contiguous();
  const at::Tensor faces = faces_in.to(at::kLong).contiguous();
  const at::Tensor face_idx = face_idx_in.to(at::kLong).contiguous();
  at::Tensor out = at::empty({face_idx.size(0), face_idx.size(1), face_idx.size(2),
                              attr.size(2)}, attr.options());
  AT_DISPATCH_FLOATING_TYPES(attr.scalar_type(), "interp_forward", [&] {
    InterpParams<scalar_t> p = interp_params<scalar_t>(attr, faces, face_idx, bary);
    p.out = out.data_ptr<scalar_t>();
    Exec::template launch<InterpForward>(face_idx.numel(), p);
  });
  return out;
}

// {grad_attr [BA,V,C], grad_bary [B,H,W,3]}.
template <class Exec>
std::vector<at::Tensor> interp_backward(const at::Tensor& attr_in, const at::Tensor& faces_in,
                                        const at::Tensor& face_idx_in,
                                        const at::Tensor& bary_in,
                                        const at::Tensor& grad_out_in, bool deterministic) {
  check_interp_inputs(attr_in, faces_in, face_idx_in, bary_in);
  const at::Tensor attr = attr_in.contiguous(), bary = bary_in.contiguous();
  const at::Tensor faces = faces_in.to(at::kLong).contiguous();
  const at::Tensor face_idx = face_idx_in.to(at::kLong).contiguous();
  const at::Tensor grad_out = grad_out_in.to(attr.scalar_type()).contiguous();
  at::Tensor grad_attr = at::zeros_like(attr);
  at::Tensor grad_bary = at::empty_like(bary);
  const int64_t B = face_idx.size(0), F = faces.size(0);
  AT_DISPATCH_FLOATING_TYPES(attr.scalar_type(), "interp_backward", [&] {
    InterpParams<scalar_t> p = interp_params<scalar_t>(attr, faces, face_idx, bary);
    p.grad_out = grad_out.data_ptr<scalar_t>();
    p.grad_bary = grad_bary.data_ptr<scalar_t>();
    p.grad_attr = grad_attr.data_ptr<scalar_t>();
    const bool atomic = Exec::kAtomicAdds && !deterministic;
    at::Tensor face_grad;
    if (!atomic) {
      face_grad = at::empty({B * F, 3, attr.size(2)}, attr.options());
      p.face_grad = face_grad.data_ptr<scalar_t>();
    }
    Exec::template launch<InterpBackwardPixel>(face_idx.numel(), p);
    if (atomic) return;
    Groups px = pixels_by_face<Exec>(face_idx, B, F);
    p.pix_off = px.off.data_ptr<int64_t>();
    p.pix = px.items.data_ptr<int64_t>();
    Exec::template launch<InterpFace>(B * F, p);
    gather_vertices<Exec, scalar_t>(face_grad, faces, (int)B, p.BA, p.V, (int)F, p.C,
                                    grad_attr, 1);
  });
  return {grad_attr, grad_bary};
}

}  // namespace dibr
