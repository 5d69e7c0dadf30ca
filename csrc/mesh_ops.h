// Host drivers of the per-step mesh ops (mesh_kernels.h): area-weighted vertex normals and the
// three mesh regularisers (uniform Laplacian, normal consistency, edge length), forward and
// analytic backward. CPU only; each op is a few serial O(V + F) loops, which at fitting sizes
// (thousands of faces) cost far less than the torch compositions' dispatches and autograd
// nodes. Serial loops in a fixed order: results do not depend on the number of threads.
//
// Conventions: vertices [B,V,3] contiguous float/double; faces [F,3], edges [E,2] (i < j) and
// face pairs [P,2] int64, as render_core/_topology.py caches them; degree [V] of the vertices'
// dtype (unique edges per vertex). Every index must be in range (checked by the callers).
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "mesh_kernels.h"

namespace dibr {

// Shape, dtype and layout of an index tensor. The index values are not checked here (a pass
// over them costs as much as an op): as for the other kernels, the callers guarantee them
// (render_core._native.mesh_module checks the faces; edges and pairs derive from them).
inline void mesh_check_index(const at::Tensor& idx, int64_t cols, const char* what) {
  TORCH_CHECK(idx.dim() == 2 && idx.size(1) == cols && idx.scalar_type() == at::kLong &&
                  idx.is_contiguous() && idx.device().is_cpu(),
              what, " must be a contiguous CPU int64 tensor [N,", cols, "]");
}

// The vertices as a contiguous [B,V,3] tensor (any leading dims flattened into B).
inline at::Tensor mesh_flat_vertices(const at::Tensor& verts) {
  TORCH_CHECK(verts.dim() >= 2 && verts.size(-1) == 3 && verts.device().is_cpu(),
              "vertices must be a CPU tensor [...,V,3]");
  return verts.reshape({-1, verts.size(-2), 3}).contiguous();
}

// (normals [B,V,3], summed [B,V,3]): each vertex sums its faces' cross products (corner 0 of
// every face, then corner 1, then corner 2, as the torch index_add), then normalises.
inline std::vector<at::Tensor> mesh_vertex_normals_forward(const at::Tensor& verts_in,
                                                           const at::Tensor& faces, double eps) {
  const at::Tensor verts = mesh_flat_vertices(verts_in);
  const int64_t B = verts.size(0), V = verts.size(1), F = faces.size(0);
  mesh_check_index(faces, 3, "faces");
  at::Tensor summed = at::zeros_like(verts), normals = at::empty_like(verts);
  AT_DISPATCH_FLOATING_TYPES(verts.scalar_type(), "vertex_normals_forward", [&] {
    using T = scalar_t;
    const int64_t* f = faces.data_ptr<int64_t>();
    const T eps2 = (T)(eps * eps);
    std::vector<T> cross(3 * F);
    for (int64_t b = 0; b < B; ++b) {
      const T* v = verts.data_ptr<T>() + b * V * 3;
      T* s = summed.data_ptr<T>() + b * V * 3;
      T* n = normals.data_ptr<T>() + b * V * 3;
      for (int64_t i = 0; i < F; ++i) {
        T e1[3], e2[3];
        mesh_face_cross(v, f + 3 * i, e1, e2, &cross[3 * i]);
      }
      for (int k = 0; k < 3; ++k)
        for (int64_t i = 0; i < F; ++i) mesh_add3(s + 3 * f[3 * i + k], &cross[3 * i]);
      for (int64_t j = 0; j < V; ++j) {
        const T r = mesh_rnorm(s + 3 * j, eps2);
        for (int k = 0; k < 3; ++k) n[3 * j + k] = s[3 * j + k] * r;
      }
    }
  });
  return {normals.view(verts_in.sizes()), summed.view(verts_in.sizes())};
}

// grad_vertices [B,V,3] of the normals' gradient grad [B,V,3].
inline at::Tensor mesh_vertex_normals_backward(const at::Tensor& verts_in,
                                               const at::Tensor& faces, const at::Tensor& summed,
                                               const at::Tensor& grad, double eps) {
  const at::Tensor verts = mesh_flat_vertices(verts_in);
  const int64_t B = verts.size(0), V = verts.size(1), F = faces.size(0);
  mesh_check_index(faces, 3, "faces");
  TORCH_CHECK(summed.sizes() == verts_in.sizes() && grad.sizes() == verts_in.sizes(),
              "summed and grad must match the vertices");
  const at::Tensor g_in = grad.to(verts.scalar_type()).reshape(verts.sizes()).contiguous();
  const at::Tensor s_in = summed.reshape(verts.sizes()).contiguous();
  at::Tensor out = at::zeros_like(verts);
  AT_DISPATCH_FLOATING_TYPES(verts.scalar_type(), "vertex_normals_backward", [&] {
    using T = scalar_t;
    const int64_t* f = faces.data_ptr<int64_t>();
    const T eps2 = (T)(eps * eps);
    std::vector<T> gs(3 * V);
    for (int64_t b = 0; b < B; ++b) {
      const T* v = verts.data_ptr<T>() + b * V * 3;
      const T* s = s_in.data_ptr<T>() + b * V * 3;
      const T* g = g_in.data_ptr<T>() + b * V * 3;
      T* gv = out.data_ptr<T>() + b * V * 3;
      for (int64_t j = 0; j < V; ++j)
        mesh_normalize_backward(s + 3 * j, mesh_rnorm(s + 3 * j, eps2), g + 3 * j, &gs[3 * j]);
      for (int64_t i = 0; i < F; ++i) {
        const int64_t* fi = f + 3 * i;
        T e1[3], e2[3], cr[3], gc[3], ga[3], gb[3], gcc[3];
        mesh_face_cross(v, fi, e1, e2, cr);
        for (int k = 0; k < 3; ++k)
          gc[k] = gs[3 * fi[0] + k] + gs[3 * fi[1] + k] + gs[3 * fi[2] + k];
        mesh_cross_backward(e1, e2, gc, ga, gb, gcc);
        mesh_add3(gv + 3 * fi[0], ga);
        mesh_add3(gv + 3 * fi[1], gb);
        mesh_add3(gv + 3 * fi[2], gcc);
      }
    }
  });
  return out.view(verts_in.sizes());
}

// Bits of the ``want`` argument of the regulariser ops.
constexpr int64_t MESH_LAPLACIAN = 1, MESH_NORMAL = 2, MESH_EDGE = 4;

struct MeshTopo {
  const int64_t *f, *e, *p;
  int64_t V, F, E, P, n_connected;
};

inline MeshTopo mesh_topo(const at::Tensor& verts, const at::Tensor& faces,
                          const at::Tensor& edges, const at::Tensor& pairs,
                          const at::Tensor& degree, int64_t n_connected) {
  MeshTopo t{};
  t.V = verts.size(1);
  mesh_check_index(faces, 3, "faces");
  mesh_check_index(edges, 2, "edges");
  mesh_check_index(pairs, 2, "pairs");
  TORCH_CHECK(degree.dim() == 1 && degree.size(0) == t.V && degree.is_contiguous() &&
                  degree.scalar_type() == verts.scalar_type(),
              "degree must be a contiguous [V] tensor of the vertices' dtype");
  t.f = faces.data_ptr<int64_t>(), t.e = edges.data_ptr<int64_t>(), t.p = pairs.data_ptr<int64_t>();
  t.F = faces.size(0), t.E = edges.size(0), t.P = pairs.size(0), t.n_connected = n_connected;
  return t;
}

// Uniform Laplacian offsets o = v - (sum of neighbours) / max(degree, 1) of one mesh.
template <typename T>
void mesh_laplacian_offsets(const T* v, const T* deg, const MeshTopo& t, T* o) {
  for (int64_t k = 0; k < 3 * t.V; ++k) o[k] = T(0);
  for (int64_t k = 0; k < t.E; ++k) {
    const int64_t i = t.e[2 * k], j = t.e[2 * k + 1];
    mesh_add3(o + 3 * i, v + 3 * j);
    mesh_add3(o + 3 * j, v + 3 * i);
  }
  for (int64_t i = 0; i < t.V; ++i) {
    const T d = deg[i] < T(1) ? T(1) : deg[i];
    for (int k = 0; k < 3; ++k) o[3 * i + k] = v[3 * i + k] - o[3 * i + k] / d;
  }
}

template <typename T>
T mesh_norm3(const T* x) {
  return m_sqrt(x[0] * x[0] + x[1] * x[1] + x[2] * x[2]);
}

// Per mesh, what the backward pass reuses: the Laplacian offsets [V,3], the faces' unit
// normals [F,3] and their 1 / sqrt(|cross|^2 + eps^2) [F] (only the wanted terms' parts).
inline int64_t mesh_saved_size(const MeshTopo& t) { return 3 * t.V + 4 * t.F; }

// Four tensors: (laplacian, normal consistency, edge length) of the batch as 0-d tensors, 0 for
// the ones not wanted or without terms (no connected vertex, no face pair, no edge), and the
// saved state [B, 3V + 4F] that the backward pass takes back.
inline std::vector<at::Tensor> mesh_regularizers_forward(const at::Tensor& verts_in,
                                                         const at::Tensor& faces,
                                                         const at::Tensor& edges,
                                                         const at::Tensor& pairs,
                                                         const at::Tensor& degree,
                                                         int64_t n_connected, int64_t want,
                                                         double eps) {
  const at::Tensor verts = mesh_flat_vertices(verts_in);
  const MeshTopo t = mesh_topo(verts, faces, edges, pairs, degree, n_connected);
  const int64_t B = verts.size(0), S = mesh_saved_size(t);
  const bool do_lap = (want & MESH_LAPLACIAN) && t.n_connected > 0;
  const bool do_normal = (want & MESH_NORMAL) && t.P > 0, do_edge = (want & MESH_EDGE) && t.E > 0;
  at::Tensor lap_t = at::zeros({}, verts.options()), normal_t = at::zeros({}, verts.options());
  at::Tensor edge_t = at::zeros({}, verts.options());
  at::Tensor saved = at::empty({B, S}, verts.options());
  AT_DISPATCH_FLOATING_TYPES(verts.scalar_type(), "mesh_regularizers_forward", [&] {
    using T = scalar_t;
    const T eps2 = (T)(eps * eps);
    const T* deg = degree.data_ptr<T>();
    double lap = 0, normal = 0, edge = 0;
    for (int64_t b = 0; b < B; ++b) {
      const T* v = verts.data_ptr<T>() + b * t.V * 3;
      T* off = saved.data_ptr<T>() + b * S;
      T* nrm = off + 3 * t.V;
      T* rn = nrm + 3 * t.F;
      if (do_lap) {
        mesh_laplacian_offsets(v, deg, t, off);
        for (int64_t i = 0; i < t.V; ++i)
          if (deg[i] > T(0)) lap += mesh_norm3(off + 3 * i);
      }
      if (do_normal) {
        for (int64_t i = 0; i < t.F; ++i) {
          T e1[3], e2[3], cr[3];
          mesh_face_cross(v, t.f + 3 * i, e1, e2, cr);
          const T r = mesh_rnorm(cr, eps2);
          rn[i] = r;
          for (int k = 0; k < 3; ++k) nrm[3 * i + k] = cr[k] * r;
        }
        for (int64_t k = 0; k < t.P; ++k) {
          const T* na = nrm + 3 * t.p[2 * k];
          const T* nb = nrm + 3 * t.p[2 * k + 1];
          normal += T(1) - (na[0] * nb[0] + na[1] * nb[1] + na[2] * nb[2]);
        }
      }
      if (do_edge) {
        for (int64_t k = 0; k < t.E; ++k) {
          const T* a = v + 3 * t.e[2 * k];
          const T* c = v + 3 * t.e[2 * k + 1];
          const T d0 = a[0] - c[0], d1 = a[1] - c[1], d2 = a[2] - c[2];
          edge += d0 * d0 + d1 * d1 + d2 * d2;
        }
      }
    }
    if (do_lap) lap_t.fill_((T)(lap / double(B * t.n_connected)));
    if (do_normal) normal_t.fill_((T)(normal / double(B * t.P)));
    if (do_edge) edge_t.fill_((T)(edge / double(B * t.E)));
  });
  return {lap_t, normal_t, edge_t, saved};
}

// grad_vertices (the vertices' shape) of the upstream gradients of the forward's three losses,
// given the forward's saved state.
inline at::Tensor mesh_regularizers_backward(const at::Tensor& verts_in, const at::Tensor& faces,
                                             const at::Tensor& edges, const at::Tensor& pairs,
                                             const at::Tensor& degree, int64_t n_connected,
                                             int64_t want, const at::Tensor& saved_in,
                                             double g_lap, double g_normal, double g_edge) {
  const at::Tensor verts = mesh_flat_vertices(verts_in);
  const MeshTopo t = mesh_topo(verts, faces, edges, pairs, degree, n_connected);
  const int64_t B = verts.size(0), S = mesh_saved_size(t);
  TORCH_CHECK(saved_in.dim() == 2 && saved_in.size(0) == B && saved_in.size(1) == S &&
                  saved_in.scalar_type() == verts.scalar_type(),
              "saved must be the forward pass's [B, 3V + 4F] state");
  const at::Tensor saved = saved_in.contiguous();
  const bool do_lap = (want & MESH_LAPLACIAN) && t.n_connected > 0;
  const bool do_normal = (want & MESH_NORMAL) && t.P > 0, do_edge = (want & MESH_EDGE) && t.E > 0;
  at::Tensor out = at::zeros_like(verts);
  AT_DISPATCH_FLOATING_TYPES(verts.scalar_type(), "mesh_regularizers_backward", [&] {
    using T = scalar_t;
    const T* deg = degree.data_ptr<T>();
    std::vector<T> go(do_lap ? 3 * t.V : 0), gn(do_normal ? 3 * t.F : 0);
    for (int64_t b = 0; b < B; ++b) {
      const T* v = verts.data_ptr<T>() + b * t.V * 3;
      const T* off = saved.data_ptr<T>() + b * S;
      const T* nrm = off + 3 * t.V;
      const T* rn = nrm + 3 * t.F;
      T* gv = out.data_ptr<T>() + b * t.V * 3;
      if (do_lap) {
        // d|o_i|/do_i = o_i / |o_i| (0 at o_i = 0); o_i = v_i - sum_j v_j / d_i.
        const T c = (T)(g_lap / double(B * t.n_connected));
        for (int64_t i = 0; i < t.V; ++i) {
          const T* oi = off + 3 * i;
          const T len = mesh_norm3(oi);
          const T s = (deg[i] > T(0) && len > T(0)) ? c / len : T(0);
          const T d = deg[i] < T(1) ? T(1) : deg[i];
          for (int k = 0; k < 3; ++k) {
            const T gk = oi[k] * s;
            gv[3 * i + k] += gk;
            go[3 * i + k] = gk / d;
          }
        }
        for (int64_t k = 0; k < t.E; ++k) {
          const int64_t i = t.e[2 * k], j = t.e[2 * k + 1];
          for (int q = 0; q < 3; ++q) {
            gv[3 * j + q] -= go[3 * i + q];
            gv[3 * i + q] -= go[3 * j + q];
          }
        }
      }
      if (do_normal) {
        const T c = (T)(g_normal / double(B * t.P));
        for (int64_t k = 0; k < 3 * t.F; ++k) gn[k] = T(0);
        for (int64_t k = 0; k < t.P; ++k) {
          const int64_t a = t.p[2 * k], bb = t.p[2 * k + 1];
          for (int q = 0; q < 3; ++q) {
            gn[3 * a + q] -= c * nrm[3 * bb + q];
            gn[3 * bb + q] -= c * nrm[3 * a + q];
          }
        }
        for (int64_t i = 0; i < t.F; ++i) {
          const int64_t* fi = t.f + 3 * i;
          T e1[3], e2[3], cr[3], gs[3], ga[3], gb[3], gc[3];
          mesh_face_cross(v, fi, e1, e2, cr);
          mesh_unit_backward(nrm + 3 * i, rn[i], &gn[3 * i], gs);
          mesh_cross_backward(e1, e2, gs, ga, gb, gc);
          mesh_add3(gv + 3 * fi[0], ga);
          mesh_add3(gv + 3 * fi[1], gb);
          mesh_add3(gv + 3 * fi[2], gc);
        }
      }
      if (do_edge) {
        const T c = (T)(2.0 * g_edge / double(B * t.E));
        for (int64_t k = 0; k < t.E; ++k) {
          const int64_t i = t.e[2 * k], j = t.e[2 * k + 1];
          for (int q = 0; q < 3; ++q) {
            const T d = c * (v[3 * i + q] - v[3 * j + q]);
            gv[3 * i + q] += d;
            gv[3 * j + q] -= d;
          }
        }
      }
    }
  });
  return out.view(verts_in.sizes());
}

}  // namespace dibr
