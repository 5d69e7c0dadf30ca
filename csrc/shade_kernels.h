// Kernel bodies of the fused Lambertian shading of a render's covered pixels
// (render_core/_fused.py, lambertian_covered), written once for both drivers:
//   lit = color * (ambient + intensity * kd * relu(safe_normalize(N) . safe_normalize(D)))
// per covered pixel, with the numerics of the torch composition in render_core.shading
// (safe_normalize: x / sqrt(|x|^2 + eps^2); relu: a zero cosine passes no gradient). The
// light's direction D [1 or B, 3] and the scalars (intensity, ambient, kd: a constant, one
// value, or one per image) are looked up per pixel through the pixel's image index.
//
// The backward pass runs one index per fixed-size chunk of pixels (never depending on the
// thread count): the per-pixel gradients of the colour and the normal, and the chunk's
// per-image sums of the parameters' gradients in double, which one serial index then sums per
// parameter in a fixed order (chunks, then images). No atomics.
#pragma once

#include "dibr_math.h"

namespace dibr {

constexpr int SHADE_SLOTS = 6;  // per image: d ambient, d intensity, d kd, d l (unit light, 3)
constexpr int64_t SHADE_CHUNK = 1024;

template <typename T>
struct ShadeScalar {
  const T* ptr;  // [n] values (n = 1: shared by every image, else one per image), or null
  T value;       // the constant when ptr is null
  int64_t n;

  DIBR_HD T at(int64_t b) const { return ptr ? ptr[n == 1 ? 0 : b] : value; }
};

template <typename T>
struct ShadeParams {
  const T* color;         // [P,3] base colour
  const T* normal;        // [P,3] interpolated normals (not unit)
  const int64_t* bidx;    // [P] each pixel's image, or null when every parameter is shared
  const T* dir;           // [nd,3] light direction (not unit), nd = 1 or the batch
  int64_t nd;
  ShadeScalar<T> intensity, ambient, kd;
  int64_t P;
  int64_t slots;          // images the parameters distinguish (1 when bidx is null)
  T eps2;                 // eps^2 of safe_normalize
  T* out;                 // [P,3] forward
  const T* grad;          // [P,3] backward: upstream gradient
  T* grad_color;          // [P,3]
  T* grad_normal;         // [P,3]
  double* partial;        // [chunks, slots, SHADE_SLOTS]
  T* grad_dir;            // [nd,3] or null
  T* grad_intensity;      // [n] or null (likewise ambient, kd)
  T* grad_ambient;
  T* grad_kd;
};

DIBR_HD float m_rsqrt(float x) { return 1.0f / sqrtf(x); }
DIBR_HD double m_rsqrt(double x) { return 1.0 / sqrt(x); }

// The per-pixel quantities both passes need.
template <typename T>
struct ShadeLocal {
  int64_t b;   // parameter slot (the pixel's image, or 0)
  T N[3], r;   // normal and 1/sqrt(|N|^2 + eps^2)
  T l[3];      // unit light direction
  T cos;       // n . l before the relu
  T ik;        // intensity * kd
  T f;         // ambient + ik * relu(cos)
};

template <typename T>
DIBR_HD ShadeLocal<T> shade_local(int64_t i, const ShadeParams<T>& p) {
  ShadeLocal<T> s;
  s.b = p.bidx ? p.bidx[i] : 0;
  const T* D = p.dir + 3 * (p.nd == 1 ? 0 : s.b);
  const T sd = m_rsqrt((D[0] * D[0] + D[1] * D[1] + D[2] * D[2]) + p.eps2);
  for (int k = 0; k < 3; ++k) {
    s.N[k] = p.normal[3 * i + k];
    s.l[k] = D[k] * sd;
  }
  s.r = m_rsqrt((s.N[0] * s.N[0] + s.N[1] * s.N[1] + s.N[2] * s.N[2]) + p.eps2);
  s.cos = (s.N[0] * s.r) * s.l[0] + (s.N[1] * s.r) * s.l[1] + (s.N[2] * s.r) * s.l[2];
  const T relu = s.cos > (T)0 ? s.cos : (T)0;
  s.ik = p.intensity.at(s.b) * p.kd.at(s.b);
  s.f = p.ambient.at(s.b) + s.ik * relu;
  return s;
}

// Forward (one index per pixel).
template <typename T>
DIBR_HD void shade_forward_body(int64_t i, const ShadeParams<T>& p) {
  const ShadeLocal<T> s = shade_local(i, p);
  for (int k = 0; k < 3; ++k) p.out[3 * i + k] = p.color[3 * i + k] * s.f;
}

// Backward (one index per chunk of SHADE_CHUNK pixels).
template <typename T>
DIBR_HD void shade_backward_body(int64_t c, const ShadeParams<T>& p) {
  const int64_t end = (c + 1) * SHADE_CHUNK < p.P ? (c + 1) * SHADE_CHUNK : p.P;
  double* part = p.partial + c * p.slots * SHADE_SLOTS;
  for (int64_t i = c * SHADE_CHUNK; i < end; ++i) {
    const ShadeLocal<T> s = shade_local(i, p);
    const T* g = p.grad + 3 * i;
    const T* col = p.color + 3 * i;
    T gf = (T)0;
    for (int k = 0; k < 3; ++k) {
      p.grad_color[3 * i + k] = g[k] * s.f;
      gf += g[k] * col[k];
    }
    const T relu = s.cos > (T)0 ? s.cos : (T)0;
    double* q = part + s.b * SHADE_SLOTS;
    q[0] += (double)gf;
    q[1] += (double)(gf * p.kd.at(s.b) * relu);
    q[2] += (double)(gf * p.intensity.at(s.b) * relu);
    // relu passes the gradient where cos > 0 only.
    const T gc = s.cos > (T)0 ? gf * s.ik : (T)0;
    T gn[3], dot = (T)0;
    for (int k = 0; k < 3; ++k) {
      gn[k] = gc * s.l[k];
      dot += gn[k] * s.N[k];
      q[3 + k] += (double)(gc * (s.N[k] * s.r));
    }
    // d/dN of N r(N): g r - N r^3 (g . N).
    const T r3 = s.r * s.r * s.r;
    for (int k = 0; k < 3; ++k) p.grad_normal[3 * i + k] = gn[k] * s.r - s.N[k] * r3 * dot;
  }
}

// The parameters' gradients (one index): chunk sums in chunk order, per image or over all.
template <typename T>
DIBR_HD double shade_sum(const ShadeParams<T>& p, int64_t chunks, int64_t n, int64_t slot,
                         int j) {
  double acc = 0;
  for (int64_t c = 0; c < chunks; ++c) {
    const double* part = p.partial + c * p.slots * SHADE_SLOTS;
    if (n == 1) {
      for (int64_t b = 0; b < p.slots; ++b) acc += part[b * SHADE_SLOTS + j];
    } else {
      acc += part[slot * SHADE_SLOTS + j];
    }
  }
  return acc;
}

template <typename T>
DIBR_HD void shade_param_body(int64_t, const ShadeParams<T>& p) {
  const int64_t chunks = (p.P + SHADE_CHUNK - 1) / SHADE_CHUNK;
  const ShadeScalar<T>* scalars[3] = {&p.ambient, &p.intensity, &p.kd};
  T* grads[3] = {p.grad_ambient, p.grad_intensity, p.grad_kd};
  for (int j = 0; j < 3; ++j) {
    if (!grads[j]) continue;
    for (int64_t k = 0; k < scalars[j]->n; ++k)
      grads[j][k] = (T)shade_sum(p, chunks, scalars[j]->n, k, j);
  }
  if (!p.grad_dir) return;
  for (int64_t k = 0; k < p.nd; ++k) {
    // d/dD of D s(D) for the summed gradient G of the unit direction: G s - D s^3 (G . D).
    const T* D = p.dir + 3 * k;
    const double dd = (double)((D[0] * D[0] + D[1] * D[1] + D[2] * D[2]) + p.eps2);
    const double sd = 1.0 / sqrt(dd);
    double G[3], dot = 0;
    for (int a = 0; a < 3; ++a) {
      G[a] = shade_sum(p, chunks, p.nd, k, 3 + a);
      dot += G[a] * (double)D[a];
    }
    for (int a = 0; a < 3; ++a)
      p.grad_dir[3 * k + a] = (T)(G[a] * sd - (double)D[a] * sd * sd * sd * dot);
  }
}

}  // namespace dibr
