// Kernel bodies of the fragment ops that follow visibility: perspective-correct barycentrics
// and NDC depth of each pixel's face, attribute interpolation, and their analytic backward
// passes. Written once for both drivers, like the bodies of dibr_kernels.h.
//
// Forward passes are one index per pixel. Backward passes reduce into vertices either with
// atomics (GPU default, one index per pixel) or deterministically (CPU, GPU deterministic
// mode): one index per face sums its pixels in ascending order (pixels grouped by face with
// group_ops.h), then one index per vertex sums its corners' face sums in ascending order.
//
// The forward numerics follow render_core/rasterize.py (barycentrics) and interpolate.py
// operation by operation; the backward passes are the reverse-mode chains of those operations
// with torch's conventions at the kinks (clamp passes its bounds, where() guards block).
#pragma once

#include "dibr_math.h"

namespace dibr {

constexpr double BARY_SUM_MIN = 1e-12;  // clamp of the saturated barycentrics' sum

template <typename T>
struct BaryParams {
  const T* clip;             // [B,V,4] clip-space vertices, contiguous
  const int64_t* faces;      // [F,3] vertex indices
  const int64_t* face_idx;   // [B,H,W] face of each pixel, -1 on background
  int B, V, F, H, W;         // batch, vertices, faces, image height and width
  T two_over_w, two_over_h;  // T(2/W), T(2/H): pixel pitch in NDC as the reference rounds it
  T* bary;                   // [B,H,W,3] forward output (0 on background)
  T* depth;                  // [B,H,W] forward output (1 on background)
  const T* grad_bary;        // [B,H,W,3] backward: upstream gradient of bary
  const T* grad_depth;       // [B,H,W] backward: upstream gradient of depth
  T* grad_clip;              // [B,V,4] backward output (atomic mode: accumulated)
  T* face_grad;              // [B*F,3,4] deterministic backward: per-face sums
  const int64_t* pix_off;    // [B*F+1] deterministic backward: pixels of face n are ...
  const int64_t* pix;        //   ... pix[pix_off[n] .. pix_off[n+1]), ascending
};

// A face's clip vertices and edge coefficients, set up once per face where a body can.
template <typename T>
struct BaryFace {
  T v[3][4];  // clip vertices (x, y, z, w)
  T e[3][3];  // edge coefficients: row k is V_{k+1} x V_{k+2} with V = (x, y, w)
};

// Everything the forward pass computes at one pixel, kept for the backward chain.
template <typename T>
struct BaryEval {
  T px, py;   // pixel centre in NDC
  T ek[3];    // edge functions
  T den0;     // their sum; den = den0, or 1 where den0 == 0
  T r[3];     // ek / den
  T c[3];     // clamp(r, 0, 1)
  T sum;      // c0 + c1 + c2; sc = max(sum, BARY_SUM_MIN)
  T bn[3];    // c / sc: the barycentrics
  T num_z, num_w;  // sum bn*z, sum bn*w; depth = num_z / (num_w, or 1 where it is 0)
};

// a*b - c*d as torch's CPU cross product rounds it: fma(a, b, -(c*d)). The edge coefficients
// cancel heavily (a few ulps of the products are ~1e-5 of the result near a face's edges), so
// the same rounding as the reference matters; fma is exact and portable (host and device).
DIBR_HD float diff_of_products(float a, float b, float c, float d) { return fmaf(a, b, -(c * d)); }
DIBR_HD double diff_of_products(double a, double b, double c, double d) {
  return fma(a, b, -(c * d));
}

template <typename T>
DIBR_HD void bary_face_setup(const BaryParams<T>& p, int b, int64_t f, BaryFace<T>* fc) {
  for (int k = 0; k < 3; ++k) {
    const T* c = p.clip + ((int64_t)b * p.V + p.faces[f * 3 + k]) * 4;
    for (int a = 0; a < 4; ++a) fc->v[k][a] = c[a];
  }
  for (int k = 0; k < 3; ++k) {
    const T* a = fc->v[(k + 1) % 3];
    const T* b2 = fc->v[(k + 2) % 3];
    fc->e[k][0] = diff_of_products(a[1], b2[3], a[3], b2[1]);
    fc->e[k][1] = diff_of_products(a[3], b2[0], a[0], b2[3]);
    fc->e[k][2] = diff_of_products(a[0], b2[1], a[1], b2[0]);
  }
}

// Image b, row i, column j of pixel q (one 64-bit division, the rest in 32 bits).
template <typename T>
DIBR_HD int pixel_of(int64_t q, const BaryParams<T>& p, int* i, int* j) {
  const int64_t hw = (int64_t)p.H * p.W;
  const int64_t b = q / hw;
  const int r = (int)(q - b * hw);
  *i = r / p.W;
  *j = r - *i * p.W;
  return (int)b;
}

template <typename T>
DIBR_HD void bary_eval(const BaryParams<T>& p, const BaryFace<T>& fc, int64_t q,
                       BaryEval<T>* e) {
  int i, j;
  pixel_of(q, p, &i, &j);
  e->px = pixel_x(j, p.two_over_w);
  e->py = pixel_y(i, p.two_over_h);
  for (int k = 0; k < 3; ++k) e->ek[k] = (e->px * fc.e[k][0] + e->py * fc.e[k][1]) + fc.e[k][2];
  e->den0 = (e->ek[0] + e->ek[1]) + e->ek[2];
  const T den = e->den0 != (T)0 ? e->den0 : (T)1;
  for (int k = 0; k < 3; ++k) {
    e->r[k] = e->ek[k] / den;
    e->c[k] = e->r[k] < (T)0 ? (T)0 : (e->r[k] > (T)1 ? (T)1 : e->r[k]);
  }
  e->sum = (e->c[0] + e->c[1]) + e->c[2];
  const T sc = e->sum < (T)BARY_SUM_MIN ? (T)BARY_SUM_MIN : e->sum;
  for (int k = 0; k < 3; ++k) e->bn[k] = e->c[k] / sc;
  e->num_z = (e->bn[0] * fc.v[0][2] + e->bn[1] * fc.v[1][2]) + e->bn[2] * fc.v[2][2];
  e->num_w = (e->bn[0] * fc.v[0][3] + e->bn[1] * fc.v[1][3]) + e->bn[2] * fc.v[2][3];
}

// Forward of covered pixel q, whose face is set up in fc.
template <typename T>
DIBR_HD void bary_forward_pixel(int64_t q, const BaryParams<T>& p, const BaryFace<T>& fc) {
  BaryEval<T> e;
  bary_eval(p, fc, q, &e);
  for (int k = 0; k < 3; ++k) p.bary[q * 3 + k] = e.bn[k];
  p.depth[q] = e.num_z / (e.num_w != (T)0 ? e.num_w : (T)1);
}

template <typename T>
DIBR_HD void bary_forward_background(int64_t q, const BaryParams<T>& p) {
  for (int k = 0; k < 3; ++k) p.bary[q * 3 + k] = 0;
  p.depth[q] = 1;
}

// Forward (one index per pixel).
template <typename T>
DIBR_HD void bary_forward_body(int64_t q, const BaryParams<T>& p) {
  const int64_t f = p.face_idx[q];
  if (f < 0) {
    bary_forward_background(q, p);
    return;
  }
  int i, j;
  BaryFace<T> fc;
  bary_face_setup(p, pixel_of(q, p, &i, &j), f, &fc);
  bary_forward_pixel(q, p, fc);
}

// Gradient g[3][4] of one covered pixel w.r.t. its face's clip vertices (x, y, z, w).
template <typename T>
DIBR_HD void bary_pixel_grad(int64_t q, const BaryFace<T>& fc, const BaryParams<T>& p,
                             T g[3][4]) {
  BaryEval<T> e;
  bary_eval(p, fc, q, &e);
  for (int k = 0; k < 3; ++k)
    for (int a = 0; a < 4; ++a) g[k][a] = 0;
  // depth = num_z / nw
  const T gd = p.grad_depth ? p.grad_depth[q] : (T)0;
  // Reciprocals instead of the reference's divisions: a few roundings apart, far below the
  // gradient tolerance, and several times cheaper.
  const T inv_nw = (T)1 / (e.num_w != (T)0 ? e.num_w : (T)1);
  const T g_numz = gd * inv_nw;
  const T g_numw = e.num_w != (T)0 ? -g_numz * (e.num_z * inv_nw) : (T)0;
  T g_bn[3];
  for (int k = 0; k < 3; ++k) {
    g_bn[k] = (p.grad_bary ? p.grad_bary[q * 3 + k] : (T)0) +
              (g_numz * fc.v[k][2] + g_numw * fc.v[k][3]);
    g[k][2] = g_numz * e.bn[k];
    g[k][3] = g_numw * e.bn[k];
  }
  // bn = c / sc
  const T inv_sc = (T)1 / (e.sum < (T)BARY_SUM_MIN ? (T)BARY_SUM_MIN : e.sum);
  T g_sc = 0, g_r[3];
  for (int k = 0; k < 3; ++k) g_sc -= g_bn[k] * e.bn[k];
  g_sc = e.sum >= (T)BARY_SUM_MIN ? g_sc * inv_sc : (T)0;
  // c = clamp(r, 0, 1): the gradient passes on [0, 1], bounds included
  for (int k = 0; k < 3; ++k) {
    const T g_c = g_bn[k] * inv_sc + g_sc;
    g_r[k] = (e.r[k] >= (T)0 && e.r[k] <= (T)1) ? g_c : (T)0;
  }
  // r = ek / den
  const T inv_den = (T)1 / (e.den0 != (T)0 ? e.den0 : (T)1);
  T g_den = 0;
  for (int k = 0; k < 3; ++k) g_den -= g_r[k] * e.r[k];
  g_den = e.den0 != (T)0 ? g_den * inv_den : (T)0;
  // ek = P . (A x C) for A = V_{k+1}, C = V_{k+2}, P = (px, py, 1), V = (x, y, w):
  // d/dA = C x P, d/dC = P x A.
  for (int k = 0; k < 3; ++k) {
    const T g_e = g_r[k] * inv_den + g_den;
    const int ka = (k + 1) % 3, kc = (k + 2) % 3;
    const T ax = fc.v[ka][0], ay = fc.v[ka][1], aw = fc.v[ka][3];
    const T cx = fc.v[kc][0], cy = fc.v[kc][1], cw = fc.v[kc][3];
    // C x P = (cy - cw py, cw px - cx, cx py - cy px)
    g[ka][0] += g_e * (cy - cw * e.py);
    g[ka][1] += g_e * (cw * e.px - cx);
    g[ka][3] += g_e * (cx * e.py - cy * e.px);
    // P x A = (py aw - ay, ax - px aw, px ay - py ax)
    g[kc][0] += g_e * (e.py * aw - ay);
    g[kc][1] += g_e * (ax - e.px * aw);
    g[kc][3] += g_e * (e.px * ay - e.py * ax);
  }
}

// Backward, atomic mode (one index per pixel, GPU): add into grad_clip.
template <typename T>
DIBR_HD void bary_backward_atomic_body(int64_t q, const BaryParams<T>& p) {
  const int64_t f = p.face_idx[q];
  if (f < 0) return;
  int i, j;
  const int b = pixel_of(q, p, &i, &j);
  BaryFace<T> fc;
  bary_face_setup(p, b, f, &fc);
  T g[3][4];
  bary_pixel_grad(q, fc, p, g);
  for (int k = 0; k < 3; ++k) {
    T* out = p.grad_clip + ((int64_t)b * p.V + p.faces[f * 3 + k]) * 4;
    for (int a = 0; a < 4; ++a) atomic_add(out + a, g[k][a]);
  }
}

// Backward, deterministic mode (one index per face n of all images): its pixels in order.
template <typename T>
DIBR_HD void bary_face_body(int64_t n, const BaryParams<T>& p) {
  T acc[3][4] = {{0, 0, 0, 0}, {0, 0, 0, 0}, {0, 0, 0, 0}};
  const int64_t s0 = p.pix_off[n], s1 = p.pix_off[n + 1];
  BaryFace<T> fc;
  if (s1 > s0) bary_face_setup(p, (int)(n / p.F), n % p.F, &fc);
  for (int64_t s = s0; s < s1; ++s) {
#if !defined(__CUDA_ARCH__)
    if (s + 4 < s1 && p.grad_bary) __builtin_prefetch(p.grad_bary + p.pix[s + 4] * 3);
#endif
    T g[3][4];
    bary_pixel_grad(p.pix[s], fc, p, g);
    for (int k = 0; k < 3; ++k)
      for (int a = 0; a < 4; ++a) acc[k][a] += g[k][a];
  }
  for (int k = 0; k < 3; ++k)
    for (int a = 0; a < 4; ++a) p.face_grad[(n * 3 + k) * 4 + a] = acc[k][a];
}

// ------------------------------------------------------------------------------------------
// Attribute interpolation: out = sum_k bary_k attr[faces[f, k]].
// ------------------------------------------------------------------------------------------
template <typename T>
struct InterpParams {
  const T* attr;            // [BA,V,C] attributes (BA = 1: shared by the batch, or B)
  const int64_t* faces;     // [F,3] indices into attr (rasterized faces or e.g. face_uvs)
  const int64_t* face_idx;  // [B,H,W] face of each pixel, -1 on background
  const T* bary;            // [B,H,W,3] barycentrics
  int B, BA, V, F, C;       // batch, attr batch, attr rows, faces, channels
  int64_t HW;               // pixels per image
  T* out;                   // [B,H,W,C] forward output (0 on background)
  const T* grad_out;        // [B,H,W,C] backward: upstream gradient
  T* grad_bary;             // [B,H,W,3] backward output (0 on background)
  T* grad_attr;             // [BA,V,C] backward output (atomic mode: accumulated)
  T* face_grad;             // [B*F,3,C] deterministic backward: per-face sums
  const int64_t* pix_off;   // [B*F+1] deterministic backward: pixels of face n, ascending
  const int64_t* pix;
};

template <typename T>
DIBR_HD const T* attr_row(const InterpParams<T>& p, int64_t q, int64_t f, int k) {
  const int64_t ba = p.BA == 1 ? 0 : q / p.HW;
  return p.attr + (ba * p.V + p.faces[f * 3 + k]) * p.C;
}

// Forward (one index per pixel).
template <typename T>
DIBR_HD void interp_forward_body(int64_t q, const InterpParams<T>& p) {
  T* o = p.out + q * p.C;
  const int64_t f = p.face_idx[q];
  if (f < 0) {
    for (int c = 0; c < p.C; ++c) o[c] = 0;
    return;
  }
  const T b0 = p.bary[q * 3], b1 = p.bary[q * 3 + 1], b2 = p.bary[q * 3 + 2];
  const T *a0 = attr_row(p, q, f, 0), *a1 = attr_row(p, q, f, 1), *a2 = attr_row(p, q, f, 2);
  for (int c = 0; c < p.C; ++c) o[c] = (b0 * a0[c] + b1 * a1[c]) + b2 * a2[c];
}

// Backward to bary (one index per pixel); in atomic mode also adds into grad_attr.
template <typename T>
DIBR_HD void interp_backward_pixel_body(int64_t q, const InterpParams<T>& p) {
  const int64_t f = p.face_idx[q];
  if (f < 0) {
    for (int k = 0; k < 3; ++k) p.grad_bary[q * 3 + k] = 0;
    return;
  }
  const T* g = p.grad_out + q * p.C;
  for (int k = 0; k < 3; ++k) {
    const T* a = attr_row(p, q, f, k);
    T s = 0;
    for (int c = 0; c < p.C; ++c) s += g[c] * a[c];
    p.grad_bary[q * 3 + k] = s;
  }
  if (p.grad_attr == nullptr || p.face_grad != nullptr) return;
  const int64_t ba = p.BA == 1 ? 0 : q / p.HW;
  for (int k = 0; k < 3; ++k) {
    const T bk = p.bary[q * 3 + k];
    T* out = p.grad_attr + (ba * p.V + p.faces[f * 3 + k]) * p.C;
    for (int c = 0; c < p.C; ++c) atomic_add(out + c, bk * g[c]);
  }
}

// Backward to attr, deterministic mode (one index per face n of all images): per corner,
// sum_pixels bary_k * grad_out, pixels in ascending order.
// Up to this many channels, interp_face_body sums in local accumulators (the same additions in
// the same order, without reloading sums through a pointer that might alias the inputs).
constexpr int INTERP_LOCAL_C = 8;

template <typename T>
DIBR_HD void interp_face_body(int64_t n, const InterpParams<T>& p) {
  const int64_t s0 = p.pix_off[n], s1 = p.pix_off[n + 1];
  if (p.C <= INTERP_LOCAL_C) {
    T loc[3 * INTERP_LOCAL_C];
    const int C = p.C;
    for (int l = 0; l < 3 * C; ++l) loc[l] = 0;
    for (int64_t s = s0; s < s1; ++s) {
      const int64_t q = p.pix[s];
#if !defined(__CUDA_ARCH__)
      if (s + 4 < s1) {  // the pixels of a face are scattered over the images: fetch ahead
        __builtin_prefetch(p.grad_out + p.pix[s + 4] * C);
        __builtin_prefetch(p.bary + p.pix[s + 4] * 3);
      }
#endif
      const T* g = p.grad_out + q * C;
      for (int k = 0; k < 3; ++k) {
        const T bk = p.bary[q * 3 + k];
        for (int c = 0; c < C; ++c) loc[k * C + c] += bk * g[c];
      }
    }
    T* out = p.face_grad + n * 3 * C;
    for (int l = 0; l < 3 * C; ++l) out[l] = loc[l];
    return;
  }
  T* acc = p.face_grad + n * 3 * p.C;
  for (int l = 0; l < 3 * p.C; ++l) acc[l] = 0;
  for (int64_t s = s0; s < s1; ++s) {
    const int64_t q = p.pix[s];
    const T* g = p.grad_out + q * p.C;
    for (int k = 0; k < 3; ++k) {
      const T bk = p.bary[q * 3 + k];
      for (int c = 0; c < p.C; ++c) acc[k * p.C + c] += bk * g[c];
    }
  }
}

// ------------------------------------------------------------------------------------------
// Deterministic reduction of per-face corner sums into vertices.
// ------------------------------------------------------------------------------------------
template <typename T>
struct VertGatherParams {
  const T* face_grad;          // [B*F,3,D] per-face corner sums
  const int64_t* corner_off;   // [V+1] corners f*3+k of vertex v are ...
  const int64_t* corner;       //   ... corner[corner_off[v] .. corner_off[v+1]), ascending
  int B, BA, V, F, D;          // images, output batch (1: sum over images, or B), rows, width
  T* out;                      // [BA,V,D] output
};

// One index per output row (ba, v): images in order, then the vertex's corners in order.
template <typename T>
DIBR_HD void vert_gather_body(int64_t q, const VertGatherParams<T>& p) {
  const int ba = (int)(q / p.V), v = (int)(q % p.V);
  const int b0 = p.BA == 1 ? 0 : ba, b1 = p.BA == 1 ? p.B : ba + 1;
  if (p.D <= INTERP_LOCAL_C) {  // local sums: the same additions in the same order
    T acc[INTERP_LOCAL_C];
    const int D = p.D;
    for (int d = 0; d < D; ++d) acc[d] = 0;
    for (int b = b0; b < b1; ++b)
      for (int64_t s = p.corner_off[v]; s < p.corner_off[v + 1]; ++s) {
        const int64_t c = p.corner[s];
        const T* g = p.face_grad + (((int64_t)b * p.F + c / 3) * 3 + c % 3) * D;
        for (int d = 0; d < D; ++d) acc[d] += g[d];
      }
    for (int d = 0; d < D; ++d) p.out[q * D + d] = acc[d];
    return;
  }
  T* o = p.out + q * p.D;
  for (int d = 0; d < p.D; ++d) o[d] = 0;
  for (int b = b0; b < b1; ++b)
    for (int64_t s = p.corner_off[v]; s < p.corner_off[v + 1]; ++s) {
      const int64_t c = p.corner[s];
      const T* g = p.face_grad + (((int64_t)b * p.F + c / 3) * 3 + c % 3) * p.D;
      for (int d = 0; d < p.D; ++d) o[d] += g[d];
    }
}

}  // namespace dibr
