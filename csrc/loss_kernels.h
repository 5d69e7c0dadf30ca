// Kernel bodies of the fused image losses of a fit step (render_core/_fused.py), written once
// for both drivers: the soft IoU of the silhouette against the target mask (DIB-R eq. 12) and
// the L1 distance of the sRGB-encoded render, clamped to [0, 1], to the sRGB target (eq. 13),
// with the numerics of the torch composition iou(alpha, m) and
// l1(linear_to_srgb(rgb.clamp(0, 1)), t) up to the order of the sums (accumulated in double
// here, in a fixed order: rows, then the rows of each image, then the images). The same pass
// counts each image's hard intersection and union (alpha > 0.5 against mask > 0.5), the fit's
// reported IoU metric (losses.hard_iou), so that needs no pass of its own.
#pragma once

#include "dibr_math.h"

namespace dibr {

constexpr double SRGB_LINEAR_THRESHOLD = 0.0031308;  // render_core.color._LINEAR_THRESHOLD
constexpr double SRGB_SLOPE = 12.92;
constexpr double SRGB_A = 0.055;
constexpr double SRGB_GAMMA = 2.4;
constexpr double IOU_EPS = 1e-6;  // render_core.losses._IOU_EPS

template <typename T>
struct ImageLossParams {
  const T* rgb;      // [B,H,W,3] linear render
  const T* alpha;    // [B,H,W] soft silhouette
  const T* t_rgb;    // [B,H,W,3] sRGB target
  const T* t_mask;   // [B,H,W] target mask
  int B, H, W;
  double* rows;      // [B*H,5] forward: per row sum |srgb - t|, sum a m, sum (a + m - a m),
                     // and the hard counts: #(a > .5 and m > .5), #(a > .5 or m > .5)
  T* enc;            // [B,H,W,3] forward output, backward input: the sRGB-encoded render
  T* out;            // [2 + 4B] forward: iou loss, l1 loss, then per image (inter, union),
                     // then per image the hard (intersection, union) pixel counts
  const T* grad;     // [2] backward: upstream gradients of (iou loss, l1 loss)
  T* grad_rgb;       // [B,H,W,3] backward
  T* grad_alpha;     // [B,H,W] backward
};

DIBR_HD float m_pow(float x, float e) { return powf(x, e); }
DIBR_HD double m_pow(double x, double e) { return pow(x, e); }

// sRGB encoding of x in [0, 1] (as linear_to_srgb: the linear segment up to the threshold).
template <typename T>
DIBR_HD T srgb_encode(T x) {
  if (x <= (T)SRGB_LINEAR_THRESHOLD) return x * (T)SRGB_SLOPE;
  return (T)(1.0 + SRGB_A) * m_pow(x, (T)(1.0 / SRGB_GAMMA)) - (T)SRGB_A;
}

// Its derivative at x, given y = srgb_encode(x): the slope of the branch torch.where picks,
// (1 + A) x^(1/g - 1) / g = (y + A) / (g x) on the curve (x above the threshold, so x > 0).
template <typename T>
DIBR_HD T srgb_slope(T x, T y) {
  if (x <= (T)SRGB_LINEAR_THRESHOLD) return (T)SRGB_SLOPE;
  return (y + (T)SRGB_A) / ((T)SRGB_GAMMA * x);
}

// Row sums (one index per image row).
template <typename T>
DIBR_HD void loss_row_body(int64_t r, const ImageLossParams<T>& p) {
  double l1 = 0, inter = 0, uni = 0;
  int64_t hard_inter = 0, hard_uni = 0;
  const int64_t px0 = r * p.W;
  for (int j = 0; j < p.W; ++j) {
    const int64_t q = px0 + j;
    for (int c = 0; c < 3; ++c) {
      T x = p.rgb[q * 3 + c];
      x = x < (T)0 ? (T)0 : (x > (T)1 ? (T)1 : x);
      const T y = srgb_encode(x);
      p.enc[q * 3 + c] = y;
      const T d = y - p.t_rgb[q * 3 + c];
      l1 += (double)(d < 0 ? -d : d);
    }
    const T a = p.alpha[q], m = p.t_mask[q];
    inter += (double)(a * m);
    uni += (double)((a + m) - a * m);
    const bool ha = a > (T)0.5, hm = m > (T)0.5;
    hard_inter += (ha && hm) ? 1 : 0;
    hard_uni += (ha || hm) ? 1 : 0;
  }
  double* row = p.rows + r * 5;
  row[0] = l1;
  row[1] = inter;
  row[2] = uni;
  row[3] = (double)hard_inter;
  row[4] = (double)hard_uni;
}

// Totals (one index, run once): per image intersection and union, then both losses.
template <typename T>
DIBR_HD void loss_total_body(int64_t, const ImageLossParams<T>& p) {
  double l1 = 0, iou = 0;
  for (int b = 0; b < p.B; ++b) {
    double inter = 0, uni = 0, hard_inter = 0, hard_uni = 0;  // the counts are exact in double
    for (int i = 0; i < p.H; ++i) {
      const double* row = p.rows + ((int64_t)b * p.H + i) * 5;
      l1 += row[0];
      inter += row[1];
      uni += row[2];
      hard_inter += row[3];
      hard_uni += row[4];
    }
    p.out[2 + 2 * b] = (T)inter;
    p.out[3 + 2 * b] = (T)uni;
    p.out[2 + 2 * p.B + 2 * b] = (T)hard_inter;
    p.out[3 + 2 * p.B + 2 * b] = (T)hard_uni;
    iou += 1.0 - (inter + IOU_EPS) / (uni + IOU_EPS);
  }
  p.out[0] = (T)(iou / p.B);
  p.out[1] = (T)(l1 / ((double)p.B * p.H * p.W * 3));
}

// Backward: d iou / d alpha, and d l1 / d rgb through the sRGB curve and the clamp (torch's
// clamp passes the gradient on [0, 1] inclusive; |d| has slope 0 at 0). The factors shared by
// an image's pixels, then one pixel.
template <typename T>
struct LossBackwardImage {
  T gi, inter, uni, uni2, nb, scale;
};

template <typename T>
DIBR_HD LossBackwardImage<T> loss_backward_image(int b, const ImageLossParams<T>& p) {
  LossBackwardImage<T> k;
  k.gi = p.grad[0];
  k.inter = p.out[2 + 2 * b] + (T)IOU_EPS;
  k.uni = p.out[3 + 2 * b] + (T)IOU_EPS;
  k.uni2 = k.uni * k.uni;
  k.nb = (T)p.B;
  k.scale = p.grad[1] / (T)((double)p.B * p.H * p.W * 3);
  return k;
}

template <typename T>
DIBR_HD void loss_backward_pixel(int64_t q, const LossBackwardImage<T>& k,
                                 const ImageLossParams<T>& p) {
  const T m = p.t_mask[q];
  // loss = mean_b (1 - I/U): dI/da = m, dU/da = 1 - m.
  p.grad_alpha[q] = -k.gi * ((m * k.uni - k.inter * ((T)1 - m)) / k.uni2) / k.nb;
  for (int c = 0; c < 3; ++c) {
    const T x0 = p.rgb[q * 3 + c];
    const T x = x0 < (T)0 ? (T)0 : (x0 > (T)1 ? (T)1 : x0);
    const T y = p.enc[q * 3 + c];
    const T d = y - p.t_rgb[q * 3 + c];
    const T sgn = d > 0 ? (T)1 : (d < 0 ? (T)-1 : (T)0);
    const T pass = (x0 >= (T)0 && x0 <= (T)1) ? (T)1 : (T)0;
    p.grad_rgb[q * 3 + c] = k.scale * sgn * srgb_slope(x, y) * pass;
  }
}

// One index per pixel (the GPU's launch).
template <typename T>
DIBR_HD void loss_backward_body(int64_t q, const ImageLossParams<T>& p) {
  loss_backward_pixel(q, loss_backward_image((int)(q / ((int64_t)p.H * p.W)), p), p);
}

// One index per image row (the CPU's launch): the image's factors once per row, not a 64-bit
// division and a reload of every factor per pixel. The same values.
template <typename T>
DIBR_HD void loss_backward_row_body(int64_t r, const ImageLossParams<T>& p) {
  const LossBackwardImage<T> k = loss_backward_image((int)(r / p.H), p);
  for (int64_t q = r * p.W; q < (r + 1) * p.W; ++q) loss_backward_pixel(q, k, p);
}

}  // namespace dibr
