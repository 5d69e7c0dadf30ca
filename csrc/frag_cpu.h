// CPU-only deterministic barycentrics backward (float32): bary_face_body with the pixels of a
// face taken 8 (LANES8) at a time as vectors (GCC's vector extensions) in an AVX2 clone. Every
// lane runs the same IEEE operations in the same order as the scalar bary_eval and
// bary_pixel_grad (no fused multiply-adds: the build uses -ffp-contract=off; the face setup is
// the scalar bary_face_setup), and the per-pixel gradients are then added into the face's sums
// one pixel at a time in ascending order, so every face sum has the same bits as the scalar
// body's. nvcc never sees this header's code (host-only guard).
#pragma once

#include "cpu_range.h"
#include "frag_kernels.h"

namespace dibr {

#if defined(DIBR_AVX2_CLONES)
#define FRAG_BARY_SIMD 1

// Gradients of up to 8 (LANES8) pixels pix[0 .. cnt) of one face (b = its image): g[k*4+a] lane l
// is bary_pixel_grad's g[k][a] of pixel pix[l]; lanes from cnt on repeat pixel pix[0].
__attribute__((always_inline)) inline void bary_grad_lanes(const int64_t* pix, int cnt,
                                                           int64_t first_q, const BaryFace<float>& fc,
                                                           const BaryParams<float>& p,
                                                           F8 g[12]) {
  F8 px, py, gd, gb[3];
  for (int l = 0; l < LANES8; ++l) {
    const int64_t q = pix[l < cnt ? l : 0];
    const int r = (int)(q - first_q);  // pixel within its image
    const int i = r / p.W, j = r - i * p.W;
    px[l] = pixel_x(j, p.two_over_w);
    py[l] = pixel_y(i, p.two_over_h);
    gd[l] = p.grad_depth ? p.grad_depth[q] : 0.0f;
    for (int k = 0; k < 3; ++k) gb[k][l] = p.grad_bary ? p.grad_bary[q * 3 + k] : 0.0f;
  }
  const F8 zero = F8{} + 0.0f, one = zero + 1.0f, smin = zero + (float)BARY_SUM_MIN;
  // bary_eval
  F8 ek[3], r[3], bn[3];
  for (int k = 0; k < 3; ++k) ek[k] = (px * fc.e[k][0] + py * fc.e[k][1]) + fc.e[k][2];
  const F8 den0 = (ek[0] + ek[1]) + ek[2];
  const I8 den_nz = den0 != zero;
  const F8 den = den_nz ? den0 : one;
  F8 c[3];
  for (int k = 0; k < 3; ++k) {
    r[k] = ek[k] / den;
    c[k] = r[k] < zero ? zero : (r[k] > one ? one : r[k]);
  }
  const F8 sum = (c[0] + c[1]) + c[2];
  const F8 sc = sum < smin ? smin : sum;
  for (int k = 0; k < 3; ++k) bn[k] = c[k] / sc;
  const F8 num_z = (bn[0] * fc.v[0][2] + bn[1] * fc.v[1][2]) + bn[2] * fc.v[2][2];
  const F8 num_w = (bn[0] * fc.v[0][3] + bn[1] * fc.v[1][3]) + bn[2] * fc.v[2][3];
  // bary_pixel_grad
  for (int l = 0; l < 12; ++l) g[l] = zero;
  const I8 nw_nz = num_w != zero;
  const F8 inv_nw = one / (nw_nz ? num_w : one);
  const F8 g_numz = gd * inv_nw;
  const F8 g_numw = nw_nz ? -g_numz * (num_z * inv_nw) : zero;
  F8 g_bn[3];
  for (int k = 0; k < 3; ++k) {
    g_bn[k] = gb[k] + (g_numz * fc.v[k][2] + g_numw * fc.v[k][3]);
    g[k * 4 + 2] = g_numz * bn[k];
    g[k * 4 + 3] = g_numw * bn[k];
  }
  const F8 inv_sc = one / (sum < smin ? smin : sum);
  F8 g_sc = zero, g_r[3];
  for (int k = 0; k < 3; ++k) g_sc -= g_bn[k] * bn[k];
  g_sc = sum >= smin ? g_sc * inv_sc : zero;
  for (int k = 0; k < 3; ++k) {
    const F8 g_c = g_bn[k] * inv_sc + g_sc;
    g_r[k] = ((r[k] >= zero) & (r[k] <= one)) ? g_c : zero;
  }
  const F8 inv_den = one / (den_nz ? den0 : one);
  F8 g_den = zero;
  for (int k = 0; k < 3; ++k) g_den -= g_r[k] * r[k];
  g_den = den_nz ? g_den * inv_den : zero;
  for (int k = 0; k < 3; ++k) {
    const F8 g_e = g_r[k] * inv_den + g_den;
    const int ka = (k + 1) % 3, kc = (k + 2) % 3;
    const float ax = fc.v[ka][0], ay = fc.v[ka][1], aw = fc.v[ka][3];
    const float cx = fc.v[kc][0], cy = fc.v[kc][1], cw = fc.v[kc][3];
    g[ka * 4 + 0] += g_e * (cy - cw * py);
    g[ka * 4 + 1] += g_e * (cw * px - cx);
    g[ka * 4 + 3] += g_e * (cx * py - cy * px);
    g[kc * 4 + 0] += g_e * (py * aw - ay);
    g[kc * 4 + 1] += g_e * (ax - px * aw);
    g[kc * 4 + 3] += g_e * (px * ay - py * ax);
  }
}

// bary_face_body of faces [n0, n1), float32.
__attribute__((target("avx2,fma"))) inline void bary_face_range_simd(int64_t n0, int64_t n1,
                                                                    const BaryParams<float>& p) {
  const int64_t hw = (int64_t)p.H * p.W;
  for (int64_t n = n0; n < n1; ++n) {
    float acc[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    const int64_t s0 = p.pix_off[n], s1 = p.pix_off[n + 1];
    if (s1 > s0) {
      const int b = (int)(n / p.F);
      BaryFace<float> fc;
      bary_face_setup(p, b, n % p.F, &fc);
      for (int64_t s = s0; s < s1; s += LANES8) {
        const int cnt = s1 - s < LANES8 ? (int)(s1 - s) : LANES8;
        F8 g[12];
        bary_grad_lanes(p.pix + s, cnt, (int64_t)b * hw, fc, p, g);
        for (int l = 0; l < cnt; ++l)
          for (int a = 0; a < 12; ++a) acc[a] += g[a][l];
      }
    }
    for (int a = 0; a < 12; ++a) p.face_grad[n * 12 + a] = acc[a];
  }
}

#endif

}  // namespace dibr
