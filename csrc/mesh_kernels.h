// Per-face and per-vector math of the mesh ops (mesh_ops.h): area-weighted vertex normals and
// the mesh regularisers of render_core/losses.py. Plain inline functions of one face or one
// vector, DIBR_HD so that nvcc parses them too.
//
// The numerics follow the torch compositions they replace (shading._face_cross,
// shading.safe_normalize): the same products in the same order, no fused multiply-adds.
#pragma once

#include "dibr_math.h"

namespace dibr {

// Edges e1 = b - a, e2 = c - a of face f and its unnormalised normal e1 x e2 (twice its area).
template <typename T>
DIBR_HD void mesh_face_cross(const T* v, const int64_t* f, T e1[3], T e2[3], T cr[3]) {
  const T* a = v + 3 * f[0];
  const T* b = v + 3 * f[1];
  const T* c = v + 3 * f[2];
  for (int k = 0; k < 3; ++k) {
    e1[k] = b[k] - a[k];
    e2[k] = c[k] - a[k];
  }
  cr[0] = e1[1] * e2[2] - e1[2] * e2[1];
  cr[1] = e1[2] * e2[0] - e1[0] * e2[2];
  cr[2] = e1[0] * e2[1] - e1[1] * e2[0];
}

// Gradients of a face's corners (a, b, c) from the gradient g of e1 x e2:
// d/de1 = e2 x g, d/de2 = g x e1, a gets minus both.
template <typename T>
DIBR_HD void mesh_cross_backward(const T e1[3], const T e2[3], const T g[3], T ga[3], T gb[3],
                                 T gc[3]) {
  gb[0] = e2[1] * g[2] - e2[2] * g[1];
  gb[1] = e2[2] * g[0] - e2[0] * g[2];
  gb[2] = e2[0] * g[1] - e2[1] * g[0];
  gc[0] = g[1] * e1[2] - g[2] * e1[1];
  gc[1] = g[2] * e1[0] - g[0] * e1[2];
  gc[2] = g[0] * e1[1] - g[1] * e1[0];
  for (int k = 0; k < 3; ++k) ga[k] = -(gb[k] + gc[k]);
}

// 1 / sqrt(|s|^2 + eps2): safe_normalize(s) = s * mesh_rnorm(s, eps2).
template <typename T>
DIBR_HD T mesh_rnorm(const T s[3], T eps2) {
  return T(1) / m_sqrt(s[0] * s[0] + s[1] * s[1] + s[2] * s[2] + eps2);
}

// Gradient of s from the gradient g of n = s * r, r = mesh_rnorm(s): g r - s r^3 (g . s).
template <typename T>
DIBR_HD void mesh_normalize_backward(const T s[3], T r, const T g[3], T gs[3]) {
  const T gdots = g[0] * s[0] + g[1] * s[1] + g[2] * s[2];
  const T c = r * r * r * gdots;
  for (int k = 0; k < 3; ++k) gs[k] = g[k] * r - s[k] * c;
}

// The same from the unit vector n = s * r and r: r (g - n (g . n)).
template <typename T>
DIBR_HD void mesh_unit_backward(const T n[3], T r, const T g[3], T gs[3]) {
  const T gdotn = g[0] * n[0] + g[1] * n[1] + g[2] * n[2];
  for (int k = 0; k < 3; ++k) gs[k] = r * (g[k] - n[k] * gdotn);
}

template <typename T>
DIBR_HD void mesh_add3(T* dst, const T src[3]) {
  dst[0] += src[0];
  dst[1] += src[1];
  dst[2] += src[2];
}

}  // namespace dibr
