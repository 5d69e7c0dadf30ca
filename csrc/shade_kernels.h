// Kernel bodies of the fused Lambertian shading of a render's covered pixels
// (render_core/_fused.py, lambertian_covered), written once for both drivers:
//   lit = color * (ambient + intensity * kd * relu(safe_normalize(N) . safe_normalize(D)))
// per covered pixel (its colour and interpolated normal side by side in one [P,6] row, as one
// interpolation of the two vertex attributes gives them), with the numerics of the torch composition in render_core.shading
// (safe_normalize: x / sqrt(|x|^2 + eps^2); relu: a zero cosine passes no gradient). The
// light's direction D [1 or B, 3] and the scalars (intensity, ambient, kd: a constant, one
// value, or one per image) are looked up per pixel through the pixel's image index.
//
// The forward pass saves each pixel's 1/|N| and cosine and the unit light directions, so the
// backward pass takes no square roots. Both passes run one index per fixed-size chunk of
// pixels (never depending on the thread count). The backward pass writes the per-pixel
// gradients of the colour and the normal, and each chunk's per-image sums of the parameters'
// gradients in double, which one serial index then sums per parameter in a fixed order
// (chunks, then images). No atomics.
#pragma once

#include "dibr_math.h"

namespace dibr {

constexpr int SHADE_SLOTS = 6;  // per image: d ambient, d intensity, d kd, d l (unit light, 3)
constexpr int64_t SHADE_CHUNK = 64;  // pixels per index of both passes

template <typename T>
struct ShadeScalar {
  const T* ptr;  // [n] values (n = 1: shared by every image, else one per image), or null
  T value;       // the constant when ptr is null
  int64_t n;

  DIBR_HD T at(int64_t b) const { return ptr ? ptr[n == 1 ? 0 : b] : value; }
};

template <typename T>
struct ShadeParams {
  const T* attrs;         // [P,6] base colour, then the interpolated normal (not unit)
  const int64_t* bidx;    // [P] each pixel's image, or null when every parameter is shared
  const T* dir;           // [nd,3] light direction (not unit), nd = 1 or the batch
  int64_t nd;
  ShadeScalar<T> intensity, ambient, kd;
  int64_t P;
  int64_t slots;          // images the parameters distinguish (1 when bidx is null)
  T eps2;                 // eps^2 of safe_normalize
  T* light;               // [nd,3] unit light directions (written first by the forward pass)
  T* aux;                 // [P,2] forward output, backward input: 1/sqrt(|N|^2 + eps^2), cos
  T* out;                 // [P,3] forward
  const T* grad;          // [P,3] backward: upstream gradient
  T* grad_attrs;          // [P,6]
  double* partial;        // [chunks, slots, SHADE_SLOTS]
  T* grad_dir;            // [nd,3] or null
  T* grad_intensity;      // [n] or null (likewise ambient, kd)
  T* grad_ambient;
  T* grad_kd;
};

DIBR_HD float shade_rsqrt(float x) { return 1.0f / sqrtf(x); }
DIBR_HD double shade_rsqrt(double x) { return 1.0 / sqrt(x); }

// The unit light direction of each direction row (one index per row).
template <typename T>
DIBR_HD void shade_light_body(int64_t k, const ShadeParams<T>& p) {
  const T* D = p.dir + 3 * k;
  const T sd = shade_rsqrt((D[0] * D[0] + D[1] * D[1] + D[2] * D[2]) + p.eps2);
  for (int a = 0; a < 3; ++a) p.light[3 * k + a] = D[a] * sd;
}

template <typename T>
DIBR_HD T shade_factor(const ShadeParams<T>& p, int64_t b, T cos) {
  const T relu = cos <= (T)0 ? (T)0 : cos;  // NaN stays NaN, as torch.relu
  return p.ambient.at(b) + (p.intensity.at(b) * p.kd.at(b)) * relu;
}

// The pixels [begin, end) of chunk c.
DIBR_HD void shade_chunk(int64_t c, int64_t P, int64_t* begin, int64_t* end) {
  *begin = c * SHADE_CHUNK;
  *end = *begin + SHADE_CHUNK < P ? *begin + SHADE_CHUNK : P;
}

// Forward (one index per chunk of SHADE_CHUNK pixels): the lit colour, and (r, cos) for the
// backward pass. The parameters are copied to a local first: the stores to the outputs could
// otherwise alias them, and every pixel would load them again.
template <typename T>
DIBR_HD void shade_forward_body(int64_t c, const ShadeParams<T>& params) {
  const ShadeParams<T> p = params;
  int64_t begin, end;
  shade_chunk(c, p.P, &begin, &end);
  for (int64_t i = begin; i < end; ++i) {
    const int64_t b = p.bidx ? p.bidx[i] : 0;
    const T* l = p.light + 3 * (p.nd == 1 ? 0 : b);
    const T* col = p.attrs + 6 * i;
    const T* N = col + 3;
    const T r = shade_rsqrt((N[0] * N[0] + N[1] * N[1] + N[2] * N[2]) + p.eps2);
    const T cos = (N[0] * r) * l[0] + (N[1] * r) * l[1] + (N[2] * r) * l[2];
    const T f = shade_factor(p, b, cos);
    for (int k = 0; k < 3; ++k) p.out[3 * i + k] = col[k] * f;
    p.aux[2 * i] = r;
    p.aux[2 * i + 1] = cos;
  }
}

// Backward (one index per chunk of SHADE_CHUNK pixels). The parameter sums run in registers
// while the pixels' image stays the same (a render's pixels come sorted by image).
template <typename T>
DIBR_HD void shade_backward_body(int64_t c, const ShadeParams<T>& params) {
  const ShadeParams<T> p = params;  // a local copy, as in the forward pass
  int64_t begin, end;
  shade_chunk(c, p.P, &begin, &end);
  double* part = p.partial + c * p.slots * SHADE_SLOTS;
  double acc[SHADE_SLOTS] = {0, 0, 0, 0, 0, 0};
  int64_t cur = -1;
  for (int64_t i = begin; i < end; ++i) {
    const int64_t b = p.bidx ? p.bidx[i] : 0;
    if (b != cur) {
      if (cur >= 0)
        for (int j = 0; j < SHADE_SLOTS; ++j) part[cur * SHADE_SLOTS + j] += acc[j], acc[j] = 0;
      cur = b;
    }
    const T* l = p.light + 3 * (p.nd == 1 ? 0 : b);
    const T* col = p.attrs + 6 * i;
    const T* N = col + 3;
    const T* g = p.grad + 3 * i;
    T* ga = p.grad_attrs + 6 * i;
    const T r = p.aux[2 * i], cos = p.aux[2 * i + 1];
    const T inten = p.intensity.at(b), kd = p.kd.at(b);
    const T relu = cos <= (T)0 ? (T)0 : cos;  // NaN stays NaN, as torch.relu
    const T f = p.ambient.at(b) + (inten * kd) * relu;
    const T gf = (g[0] * col[0] + g[1] * col[1]) + g[2] * col[2];
    for (int k = 0; k < 3; ++k) ga[k] = g[k] * f;
    acc[0] += (double)gf;
    acc[1] += (double)(gf * kd * relu);
    acc[2] += (double)(gf * inten * relu);
    // relu passes the gradient where cos > 0 only.
    const T gc = cos > (T)0 ? gf * (inten * kd) : (T)0;
    const T gn[3] = {gc * l[0], gc * l[1], gc * l[2]};
    const T dot = (gn[0] * N[0] + gn[1] * N[1]) + gn[2] * N[2];
    for (int k = 0; k < 3; ++k) acc[3 + k] += (double)(gc * (N[k] * r));
    // d/dN of N r(N): g r - N r^3 (g . N).
    const T r3 = r * r * r;
    for (int k = 0; k < 3; ++k) ga[3 + k] = gn[k] * r - N[k] * r3 * dot;
  }
  if (cur >= 0)
    for (int j = 0; j < SHADE_SLOTS; ++j) part[cur * SHADE_SLOTS + j] += acc[j];
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
