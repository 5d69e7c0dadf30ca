// CPU-only backward of the fused image losses (float32): loss_backward_row_body with a row's
// values taken 8 (LANES8) at a time as vectors (GCC's vector extensions) in an AVX2 clone. The
// row's colour values are one flat run of 3W numbers whose gradients do not depend on their
// channel, so they vectorize without shuffles. Every lane is the same IEEE operation, in the
// same order, as loss_backward_pixel (both branches of srgb_slope are computed and the one the
// scalar code takes is kept; -ffp-contract=off keeps products and sums apart), so the same bits.
// nvcc never sees this header's code (host-only guard).
#pragma once

#include <string.h>

#include "cpu_range.h"
#include "loss_kernels.h"

namespace dibr {

#if defined(DIBR_AVX2_CLONES)
#define LOSS_SIMD 1

// Rows [r0, r1) of loss_backward_row_body, float32.
__attribute__((target("avx2"))) inline void loss_backward_rows_simd(
    int64_t r0, int64_t r1, const ImageLossParams<float>& p) {
  const F8 zero = F8{} + 0.0f, one = zero + 1.0f;
  const F8 thr = zero + (float)SRGB_LINEAR_THRESHOLD, slope = zero + (float)SRGB_SLOPE;
  const F8 a = zero + (float)SRGB_A, gam = zero + (float)SRGB_GAMMA;
  for (int64_t r = r0; r < r1; ++r) {
    const LossBackwardImage<float> k = loss_backward_image((int)(r / p.H), p);
    // Alpha: one value per pixel.
    const int64_t q0 = r * p.W, q1 = q0 + p.W;
    int64_t q = q0;
    for (; q + LANES8 <= q1; q += LANES8) {
      F8 m;
      memcpy(&m, p.t_mask + q, sizeof(m));
      const F8 ga = -k.gi * ((m * k.uni - k.inter * (one - m)) / k.uni2) / k.nb;
      memcpy(p.grad_alpha + q, &ga, sizeof(ga));
    }
    for (; q < q1; ++q) {
      const float m = p.t_mask[q];
      p.grad_alpha[q] = -k.gi * ((m * k.uni - k.inter * (1.0f - m)) / k.uni2) / k.nb;
    }
    // Colour: 3W values.
    const int64_t e0 = q0 * 3, e1 = q1 * 3;
    int64_t e = e0;
    for (; e + LANES8 <= e1; e += LANES8) {
      F8 x0, y, t;
      memcpy(&x0, p.rgb + e, sizeof(x0));
      memcpy(&y, p.enc + e, sizeof(y));
      memcpy(&t, p.t_rgb + e, sizeof(t));
      const F8 x = x0 < zero ? zero : (x0 > one ? one : x0);
      const F8 d = y - t;
      const F8 sgn = d > zero ? one : (d < zero ? -one : zero);
      const F8 pass = ((x0 >= zero) & (x0 <= one)) ? one : zero;
      const F8 sl = x <= thr ? slope : (y + a) / (gam * x);
      const F8 g = k.scale * sgn * sl * pass;
      memcpy(p.grad_rgb + e, &g, sizeof(g));
    }
    for (; e < e1; ++e) {
      const float x0 = p.rgb[e];
      const float x = x0 < 0.0f ? 0.0f : (x0 > 1.0f ? 1.0f : x0);
      const float y = p.enc[e];
      const float d = y - p.t_rgb[e];
      const float sgn = d > 0 ? 1.0f : (d < 0 ? -1.0f : 0.0f);
      const float pass = (x0 >= 0.0f && x0 <= 1.0f) ? 1.0f : 0.0f;
      p.grad_rgb[e] = k.scale * sgn * srgb_slope(x, y) * pass;
    }
  }
}

#endif

}  // namespace dibr
