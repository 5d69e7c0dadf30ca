// Kernel body of the NMR approximate rasterisation gradient (render_core/nmr.py), written once
// for both drivers. One index per (image, face, corner, axis): it walks the lines (rows for a
// corner moving along X, columns for Y) the face spans and every pixel on them, and writes
// dL/d(screen coordinate) of that corner: no two indices write the same place, no atomics.
// The numerics follow render_core/_nmr_ref.py expression by expression (see its docstring for
// the rule), so both backends take the same branches.
#pragma once

#include "dibr_math.h"

namespace dibr {

template <typename T>
struct NmrParams {
  const T* color;           // [B,H,W,C] rendered image (rgb and alpha stacked)
  const int64_t* face_idx;  // [B,H,W] face of each pixel, -1 on background
  const T* depth;           // [B,H,W] NDC depth of each pixel's fragment
  const T* xy;              // [B,F,3,2] screen column X and row Y of each face corner
  const T* z;               // [B,F,3] NDC depth of each face corner
  const bool* valid;        // [B,F] faces in front of the eye
  const T* grad_out;        // [B,H,W,C] upstream gradient dL/dcolor
  int B, H, W, C, F;
  T* grad_xy;  // [B,F,3,2] output
};

// The pixel at (line l, position m along it) of image b, for the corner's axis.
template <typename T>
DIBR_HD int64_t nmr_pixel(const NmrParams<T>& p, int b, int axis, int l, int m) {
  return axis == 0 ? ((int64_t)b * p.H + l) * p.W + m : ((int64_t)b * p.H + m) * p.W + l;
}

// What the cone test gives for one pixel (see _nmr_ref._sweep).
template <typename T>
struct NmrCone {
  bool ok, inside, empty, lo_is_s, hi_is_s;
  T d1c, d2c, dd, s0, r0, sig, rho, lo, hi;
};

template <typename T>
DIBR_HD void nmr_cone(T mf, T lf, T vu, T vc, T au, T ac, T bu, T bc, NmrCone<T>* o) {
  const T d1u = mf - au, d1c = lf - ac;
  const T d2u = mf - bu, d2c = lf - bc;
  const T dd = d1u * d2c - d1c * d2u;
  o->ok = dd != (T)0;
  const T ds = o->ok ? dd : (T)1;
  const T qu = vu - mf, qc = vc - lf;
  const T s0 = (qu * d2c - qc * d2u) / ds;
  const T r0 = (d1u * qc - d1c * qu) / ds;
  const T sig = d2c / ds;
  const T rho = -d1c / ds;
  const T inf = (T)INFINITY;
  const T bs = -s0 / (sig != (T)0 ? sig : (T)1);
  const T br = -r0 / (rho != (T)0 ? rho : (T)1);
  const T lo_s = sig > (T)0 ? bs : -inf, hi_s = sig < (T)0 ? bs : inf;
  const T lo_r = rho > (T)0 ? br : -inf, hi_r = rho < (T)0 ? br : inf;
  o->lo = lo_s >= lo_r ? lo_s : lo_r;
  o->hi = hi_s <= hi_r ? hi_s : hi_r;
  o->lo_is_s = lo_s >= lo_r;
  o->hi_is_s = hi_s <= hi_r;
  o->empty = (sig == (T)0 && s0 < (T)0) || (rho == (T)0 && r0 < (T)0) || o->lo > o->hi;
  o->inside = o->ok && s0 >= (T)0 && r0 >= (T)0;
  o->d1c = d1c, o->d2c = d2c, o->dd = dd, o->s0 = s0, o->r0 = r0, o->sig = sig, o->rho = rho;
}

// (I[after] - I[q]) . dP[q] for pixels q and after of one image.
template <typename T>
DIBR_HD T nmr_gdot(const NmrParams<T>& p, int64_t after, int64_t q) {
  const T* ia = p.color + after * p.C;
  const T* iq = p.color + q * p.C;
  const T* g = p.grad_out + q * p.C;
  T s = (T)0;
  for (int c = 0; c < p.C; ++c) s = s + (ia[c] - iq[c]) * g[c];
  return s;
}

template <typename T>
DIBR_HD void nmr_grad_body(int64_t n, const NmrParams<T>& p) {
  const int axis = (int)(n % 2);
  const int k = (int)((n / 2) % 3);
  const int64_t bf = n / 6;
  const int b = (int)(bf / p.F);
  const int64_t f = bf - (int64_t)b * p.F;
  T acc = (T)0;
  if (p.valid[bf]) {
    const T* c = p.xy + bf * 6;
    const T* zc3 = p.z + bf * 3;
    const int ka = (k + 1) % 3, kb = (k + 2) % 3;
    const int ui = axis, ci = 1 - axis;
    const T vu = c[k * 2 + ui], vc = c[k * 2 + ci], zv = zc3[k];
    const T au = c[ka * 2 + ui], ac = c[ka * 2 + ci], za = zc3[ka];
    const T bu = c[kb * 2 + ui], bc = c[kb * 2 + ci], zb = zc3[kb];
    const int nc = axis == 0 ? p.H : p.W, nu = axis == 0 ? p.W : p.H;
    const T cmin = fmin(fmin(vc, ac), bc), cmax = fmax(fmax(vc, ac), bc);
    const T umin = fmin(fmin(vu, au), bu), umax = fmax(fmax(vu, au), bu);
    const T l0 = fmax(ceil(cmin), (T)0), l1 = fmin(floor(cmax), (T)(nc - 1));
    // Pixels whose centre can be inside: the face's box along the line, one pixel grown.
    const T m0 = fmax(floor(umin) - (T)1, (T)0), m1 = fmin(ceil(umax) + (T)1, (T)(nu - 1));
    for (T lt = l0; lt <= l1; lt = lt + (T)1) {
      const int l = (int)lt;
      int m_lo = nu, m_hi = -1;
      NmrCone<T> cn;
      if (m0 <= m1) {
        for (int m = (int)m0; m <= (int)m1; ++m) {
          nmr_cone((T)m, lt, vu, vc, au, ac, bu, bc, &cn);
          if (cn.inside) {
            if (m < m_lo) m_lo = m;
            m_hi = m;
          }
        }
      }
      for (int m = 0; m < nu; ++m) {
        nmr_cone((T)m, lt, vu, vc, au, ac, bu, bc, &cn);
        if (!cn.ok) continue;
        const int64_t q = nmr_pixel(p, b, axis, l, m);
        const int64_t fq = p.face_idx[q];
        T contrib = (T)0;
        if (!cn.inside) {
          // p outside: the first crossing, drawn if nearer, the colour from the span's end.
          if (cn.empty || !(cn.lo > (T)0 || cn.hi < (T)0)) continue;
          const T t = cn.lo > (T)0 ? cn.lo : cn.hi;
          const T s = cn.s0 + t * cn.sig;
          const T r = cn.r0 + t * cn.rho;
          const T alpha = (T)1 / ((T)1 + s + r);
          const T zx = (alpha * zv + (s * alpha) * za) + (r * alpha) * zb;
          const bool front = fq < 0 || zx < p.depth[q];
          const bool before = m < m_lo, after = m > m_hi;
          if (!front || !(before || after) || m_lo > m_hi) continue;
          const int64_t src = nmr_pixel(p, b, axis, l, before ? m_lo : m_hi);
          if (p.face_idx[src] != f) continue;
          const T g = nmr_gdot(p, src, q);
          if (g < (T)0) contrib = contrib + g / t;
        } else {
          // p inside and showing the face: both ways out, the colour past the span's end.
          if (cn.empty || fq != f) continue;
          for (int side = 0; side < 2; ++side) {
            const T tend = side == 0 ? cn.lo : cn.hi;
            const bool fin = side == 0 ? tend < (T)0 : tend > (T)0;
            if (!fin || !isfinite(tend)) continue;
            const bool is_s = side == 0 ? cn.lo_is_s : cn.hi_is_s;
            const bool neg = is_s ? ((cn.d2c > (T)0) == (cn.dd < (T)0))
                                  : ((cn.d1c > (T)0) == (cn.dd > (T)0));
            const int col = neg ? m_lo - 1 : m_hi + 1;
            if (col < 0 || col >= nu) continue;
            const T g = nmr_gdot(p, nmr_pixel(p, b, axis, l, col), q);
            if (g < (T)0) contrib = contrib + g / tend;
          }
        }
        acc = acc + contrib;
      }
    }
  }
  p.grad_xy[n] = acc;
}

}  // namespace dibr
