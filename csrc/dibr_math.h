// Shared math of the DIB-R kernels: compiled as plain C++ by the CPU driver and as
// __host__ __device__ code by nvcc, so the CPU tests exercise every line the GPU runs.
//
// The numerics follow render_core/_torch_ref.py operation by operation (same operand order,
// no fused multiply-adds: the drivers build with -ffp-contract=off / --fmad=false), so the
// native backends agree with the torch reference to the last bit wherever the transcendental
// functions are not involved.
#pragma once

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__CUDACC__)
#define DIBR_HD __host__ __device__ __forceinline__
#else
#define DIBR_HD inline
#endif

namespace dibr {

typedef unsigned long long u64;

constexpr int TILE = 8;                  // tile side in pixels (8x8 = 64 pixels, 2 warps)
constexpr int TILE_PIX = TILE * TILE;    // pixels per tile
constexpr u64 KEY_BG = ~0ull;            // z-buffer key of an empty pixel (above every face)
constexpr float W_EPS = 1e-6f;           // reject faces with a vertex at w <= W_EPS
constexpr float AREA_EPS_PX = 1e-6f;     // cull faces below this projected area (pixels^2)
constexpr double MIN_X = 1e-20;          // lower bound on d/sigma: log(1 - exp(-x)) finite
constexpr double LEN2_MIN = 1e-30;       // clamp of a segment's squared length (zero edges)

// ---------------------------------------------------------------------------------------------
// Atomics: the one place where the two drivers differ inside a kernel body. On the device these
// are real atomics. On the host they are plain read-modify-writes: the CPU driver only runs a
// body that uses them where one thread owns every written location (a tile's pixels, or a
// serial loop), which is also what makes the CPU results independent of thread scheduling.
// The one exception is atomic_set_flag, whose result (an OR) does not depend on the order.
// ---------------------------------------------------------------------------------------------
DIBR_HD void atomic_min_u64(u64* p, u64 v) {
#if defined(__CUDA_ARCH__)
  atomicMin(p, v);
#else
  if (v < *p) *p = v;
#endif
}

DIBR_HD int atomic_fetch_inc(int* p) {
#if defined(__CUDA_ARCH__)
  return atomicAdd(p, 1);
#else
  return (*p)++;
#endif
}

// Set a flag that concurrent writers only ever set (never clear): a plain store on the
// device, a relaxed atomic store on the host (so parallel CPU threads may share a flag).
DIBR_HD void atomic_set_flag(bool* p) {
#if defined(__CUDA_ARCH__)
  *p = true;
#else
  __atomic_store_n(p, true, __ATOMIC_RELAXED);
#endif
}

template <typename T>
DIBR_HD void atomic_add(T* p, T v) {
#if defined(__CUDA_ARCH__)
  atomicAdd(p, v);
#else
  *p += v;
#endif
}

// ---------------------------------------------------------------------------------------------
// Scalar helpers, overloaded so one template serves float32 and float64.
// ---------------------------------------------------------------------------------------------
DIBR_HD float m_exp(float x) { return expf(x); }
DIBR_HD double m_exp(double x) { return exp(x); }
DIBR_HD float m_expm1(float x) { return expm1f(x); }
DIBR_HD double m_expm1(double x) { return expm1(x); }
DIBR_HD float m_log(float x) { return logf(x); }
DIBR_HD double m_log(double x) { return log(x); }
DIBR_HD float m_sqrt(float x) { return sqrtf(x); }
DIBR_HD double m_sqrt(double x) { return sqrt(x); }

// log(1 - exp(-x)) for x > 0: accurate both for tiny x (log x) and large x (-exp(-x)).
// Above x = 1/2, exp(-x) < 0.61 and 1 - exp(-x) suffers no cancellation, so the (much
// cheaper) exp gives the same 1 - exp(-x) as expm1 to within a rounding or two.
template <typename T>
DIBR_HD T log1m_exp_neg(T x) {
  return x > (T)0.5 ? m_log((T)1 - m_exp(-x)) : m_log(-m_expm1(-x));
}

// Map a float to 32 bits whose unsigned order is the float order (-0 sorts just below +0).
DIBR_HD uint32_t orderable_bits(float z) {
  uint32_t u;
#if defined(__CUDA_ARCH__)
  u = __float_as_uint(z);
#else
  memcpy(&u, &z, sizeof(u));
#endif
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// Z-buffer key: nearest depth first, then the lower face index (deterministic ties).
DIBR_HD u64 depth_key(float z, uint32_t face) {
  return ((u64)orderable_bits(z) << 32) | (u64)face;
}

// Pixel centre in NDC, computed exactly as the reference does in float32:
// x = (j + 0.5) * (2/W) - 1 and y = 1 - (i + 0.5) * (2/H), each product rounded.
template <typename T>
DIBR_HD T pixel_x(int j, T two_over_w) {
  return ((T)j + (T)0.5) * two_over_w - (T)1;
}
template <typename T>
DIBR_HD T pixel_y(int i, T two_over_h) {
  return (T)1 - ((T)i + (T)0.5) * two_over_h;
}

// ---------------------------------------------------------------------------------------------
// Homogeneous edge functions (visibility). For clip vertices V_k = (x, y, w), row k of the
// coefficients is V_{k+1} x V_{k+2}; at pixel (px, py) e_k = px*E_k0 + py*E_k1 + E_k2.
// ---------------------------------------------------------------------------------------------
DIBR_HD void homogeneous_edges(const float v[3][3], float e[3][3]) {
  for (int k = 0; k < 3; ++k) {
    const float* a = v[(k + 1) % 3];
    const float* b = v[(k + 2) % 3];
    e[k][0] = a[1] * b[2] - a[2] * b[1];
    e[k][1] = a[2] * b[0] - a[0] * b[2];
    e[k][2] = a[0] * b[1] - a[1] * b[0];
  }
}

DIBR_HD float edge_eval(const float* ek, float px, float py) {
  return (px * ek[0] + py * ek[1]) + ek[2];
}

// ---------------------------------------------------------------------------------------------
// Point-triangle squared distance in 2D (soft silhouette) and its gradient.
// ---------------------------------------------------------------------------------------------
template <typename T>
DIBR_HD T cross2(T ux, T uy, T vx, T vy) {
  return ux * vy - uy * vx;
}

// Inside test of point p in triangle t = (ax, ay, bx, by, cx, cy); edges inclusive, and a
// zero-area triangle has no inside.
template <typename T>
DIBR_HD bool point_in_triangle(T px, T py, const T* t) {
  const T e0 = cross2(t[2] - t[0], t[3] - t[1], px - t[0], py - t[1]);
  const T e1 = cross2(t[4] - t[2], t[5] - t[3], px - t[2], py - t[3]);
  const T e2 = cross2(t[0] - t[4], t[1] - t[5], px - t[4], py - t[5]);
  const T area2 = cross2(t[2] - t[0], t[3] - t[1], t[4] - t[0], t[5] - t[1]);
  // Non-short-circuit operators: branch-free, so a row of pixels vectorizes.
  const bool pos = (e0 >= 0) & (e1 >= 0) & (e2 >= 0);
  const bool neg = (e0 <= 0) & (e1 <= 0) & (e2 <= 0);
  return (area2 != (T)0) & (pos | neg);
}

// Squared distance from p to segment a-b (projection parameter clamped to [0, 1]; the squared
// length is clamped to LEN2_MIN so a zero-length edge measures the distance to its point).
template <typename T>
DIBR_HD T seg_dist2(T px, T py, T ax, T ay, T bx, T by) {
  const T abx = bx - ax, aby = by - ay;
  const T len2 = abx * abx + aby * aby;
  const T den = len2 < (T)LEN2_MIN ? (T)LEN2_MIN : len2;
  T t = ((px - ax) * abx + (py - ay) * aby) / den;
  t = t < (T)0 ? (T)0 : (t > (T)1 ? (T)1 : t);
  const T rx = px - (ax + t * abx), ry = py - (ay + t * aby);
  return rx * rx + ry * ry;
}

// seg_dist2 and its gradient w.r.t. a and b (for an upstream gradient of 1), written as the
// reverse-mode chain of exactly the operations above, as torch autograd would differentiate
// them: clamp(t, 0, 1) passes the gradient for 0 <= t <= 1 inclusive, clamp(len2, min) for
// len2 >= LEN2_MIN, so degenerate edges give the same (finite) gradients as the reference.
template <typename T>
DIBR_HD T seg_dist2_grad(T px, T py, T ax, T ay, T bx, T by, T ga[2], T gb[2]) {
  const T abx = bx - ax, aby = by - ay;
  const T apx = px - ax, apy = py - ay;
  const T len2 = abx * abx + aby * aby;
  const T den = len2 < (T)LEN2_MIN ? (T)LEN2_MIN : len2;
  const T t0 = (apx * abx + apy * aby) / den;
  const T t = t0 < (T)0 ? (T)0 : (t0 > (T)1 ? (T)1 : t0);
  const T rx = px - (ax + t * abx), ry = py - (ay + t * aby);
  // d = r.r, r = p - q, q = a + t ab.
  const T gqx = -(T)2 * rx, gqy = -(T)2 * ry;
  T gax = gqx, gay = gqy;
  T gabx = t * gqx, gaby = t * gqy;
  const T gt = gqx * abx + gqy * aby;
  const T gt0 = (t0 >= (T)0 && t0 <= (T)1) ? gt : (T)0;
  // t0 = num / den, num = ap.ab.
  const T gnum = gt0 / den;
  const T gden = -gt0 * (t0 / den);
  gax -= gnum * abx;
  gay -= gnum * aby;
  gabx += gnum * apx;
  gaby += gnum * apy;
  const T glen2 = len2 >= (T)LEN2_MIN ? gden : (T)0;
  gabx += (T)2 * abx * glen2;
  gaby += (T)2 * aby * glen2;
  ga[0] = gax - gabx;
  ga[1] = gay - gaby;
  gb[0] = gabx;
  gb[1] = gaby;
  return rx * rx + ry * ry;
}

// Weights torch.minimum gives its two operands in the backward pass (a tie splits evenly).
template <typename T>
DIBR_HD void min_weights(T a, T b, T* wa, T* wb) {
  *wa = a < b ? (T)1 : (a == b ? (T)0.5 : (T)0);
  *wb = b < a ? (T)1 : (a == b ? (T)0.5 : (T)0);
}

// Distance (outside the triangle) from p to triangle t: min over the three edges.
template <typename T>
DIBR_HD T tri_dist2(T px, T py, const T* t) {
  const T s0 = seg_dist2(px, py, t[0], t[1], t[2], t[3]);
  const T s1 = seg_dist2(px, py, t[2], t[3], t[4], t[5]);
  const T s2 = seg_dist2(px, py, t[4], t[5], t[0], t[1]);
  const T m = s0 < s1 ? s0 : s1;
  return m < s2 ? m : s2;
}

// tri_dist2 and its gradient g[6] w.r.t. (ax, ay, bx, by, cx, cy), for p outside the triangle
// (inside, the reference's distance is the constant 0 and its gradient is 0). Returns false,
// leaving d and g unset, when the distance is not below cut2: the three distances come first
// (seg_dist2 computes them exactly as seg_dist2_grad does), and only the edges that
// torch.minimum gives a nonzero weight are differentiated.
template <typename T>
DIBR_HD bool tri_dist2_grad_within(T px, T py, const T* t, T cut2, T* d, T g[6]) {
  const T s0 = seg_dist2(px, py, t[0], t[1], t[2], t[3]);
  const T s1 = seg_dist2(px, py, t[2], t[3], t[4], t[5]);
  const T s2 = seg_dist2(px, py, t[4], t[5], t[0], t[1]);
  const T m = s0 < s1 ? s0 : s1;
  const T dd = m < s2 ? m : s2;
  if (!(dd < cut2)) return false;
  T w0, w1, w01, w2;
  min_weights(s0, s1, &w0, &w1);
  min_weights(m, s2, &w01, &w2);
  w0 *= w01;
  w1 *= w01;
  T g0a[2] = {0, 0}, g0b[2] = {0, 0}, g1a[2] = {0, 0}, g1b[2] = {0, 0};
  T g2a[2] = {0, 0}, g2b[2] = {0, 0};
  if (w0 != (T)0) seg_dist2_grad(px, py, t[0], t[1], t[2], t[3], g0a, g0b);
  if (w1 != (T)0) seg_dist2_grad(px, py, t[2], t[3], t[4], t[5], g1a, g1b);
  if (w2 != (T)0) seg_dist2_grad(px, py, t[4], t[5], t[0], t[1], g2a, g2b);
  for (int c = 0; c < 2; ++c) {
    g[0 + c] = w0 * g0a[c] + w2 * g2b[c];
    g[2 + c] = w0 * g0b[c] + w1 * g1a[c];
    g[4 + c] = w1 * g1b[c] + w2 * g2a[c];
  }
  *d = dd;
  return true;
}

}  // namespace dibr
