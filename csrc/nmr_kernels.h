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

// The cone test of one pixel (see _nmr_ref._sweep): S and R (s0 = S/D, r0 = R/D) decide
// whether the pixel is inside; the interval [lo, hi] of covering moves is computed on demand.
template <typename T>
struct NmrCone {
  T d1c, d2c, dd, ss, rr;
  bool ok, inside;
};

template <typename T>
DIBR_HD void nmr_cone(T mf, T lf, T vu, T vc, T au, T ac, T bu, T bc, NmrCone<T>* o) {
  const T d1u = mf - au, d1c = lf - ac;
  const T d2u = mf - bu, d2c = lf - bc;
  const T dd = d1u * d2c - d1c * d2u;
  const T qu = vu - mf, qc = vc - lf;
  o->ss = qu * d2c - qc * d2u;
  o->rr = d1u * qc - d1c * qu;
  o->ok = dd != (T)0;
  const bool pos = dd > (T)0;
  const bool s_ok = o->ss == (T)0 || ((o->ss > (T)0) == pos);
  const bool r_ok = o->rr == (T)0 || ((o->rr > (T)0) == pos);
  o->inside = o->ok && s_ok && r_ok;
  o->d1c = d1c, o->d2c = d2c, o->dd = dd;
}

// The interval [lo, hi] of moves t that keep the pixel covered, which constraint bounds each
// end, and whether it is empty. inv1 = 1/d1c, inv2 = 1/d2c (1 where zero), per line.
template <typename T>
struct NmrRange {
  T lo, hi;
  bool lo_is_s, hi_is_s, empty;
};

template <typename T>
DIBR_HD void nmr_range(const NmrCone<T>& c, T inv1, T inv2, NmrRange<T>* o) {
  const bool pos = c.dd > (T)0;
  const bool s_ok = c.ss == (T)0 || ((c.ss > (T)0) == pos);
  const bool r_ok = c.rr == (T)0 || ((c.rr > (T)0) == pos);
  const bool sig_pos = c.d2c != (T)0 && ((c.d2c > (T)0) == pos);
  const bool sig_neg = c.d2c != (T)0 && ((c.d2c > (T)0) != pos);
  const bool rho_pos = c.d1c != (T)0 && ((c.d1c > (T)0) != pos);
  const bool rho_neg = c.d1c != (T)0 && ((c.d1c > (T)0) == pos);
  const T inf = (T)INFINITY;
  const T bs = -c.ss * inv2, br = c.rr * inv1;
  const T lo_s = sig_pos ? bs : -inf, hi_s = sig_neg ? bs : inf;
  const T lo_r = rho_pos ? br : -inf, hi_r = rho_neg ? br : inf;
  o->lo = lo_s >= lo_r ? lo_s : lo_r;
  o->hi = hi_s <= hi_r ? hi_s : hi_r;
  o->lo_is_s = lo_s >= lo_r;
  o->hi_is_s = hi_s <= hi_r;
  o->empty = (c.d2c == (T)0 && !s_ok) || (c.d1c == (T)0 && !r_ok) || o->lo > o->hi;
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
      if (m_lo > m_hi) continue;  // no pixel centre inside: nothing to bring, nothing to uncover
      // Outside pixels take their colour from the span's ends and need the face shown there;
      // inside ones need it shown on the span. Pixels that cannot pass are not visited.
      const bool lo_shows = p.face_idx[nmr_pixel(p, b, axis, l, m_lo)] == f;
      const bool hi_shows = p.face_idx[nmr_pixel(p, b, axis, l, m_hi)] == f;
      bool shows = lo_shows || hi_shows;
      for (int m = m_lo + 1; m < m_hi && !shows; ++m)
        shows = p.face_idx[nmr_pixel(p, b, axis, l, m)] == f;
      if (!shows) continue;
      const int m_first = lo_shows ? 0 : m_lo, m_last = hi_shows ? nu - 1 : m_hi;
      const T d1c = lt - ac, d2c = lt - bc;
      const T inv1 = (T)1 / (d1c != (T)0 ? d1c : (T)1);
      const T inv2 = (T)1 / (d2c != (T)0 ? d2c : (T)1);
      for (int m = m_first; m <= m_last; ++m) {
        const int64_t q = nmr_pixel(p, b, axis, l, m);
        bool any = false;  // no upstream gradient: every dP . dI is 0, nothing is kept
        for (int ch = 0; ch < p.C && !any; ++ch) any = p.grad_out[q * p.C + ch] != (T)0;
        if (!any) continue;
        nmr_cone((T)m, lt, vu, vc, au, ac, bu, bc, &cn);
        if (!cn.ok) continue;
        const int64_t fq = p.face_idx[q];
        T contrib = (T)0;
        NmrRange<T> rg;
        if (!cn.inside) {
          // p outside: the first crossing, drawn if nearer, the colour from the span's end.
          const bool before = m < m_lo, after = m > m_hi;
          if (!(before || after) || m_lo > m_hi) continue;
          const int64_t src = nmr_pixel(p, b, axis, l, before ? m_lo : m_hi);
          if (p.face_idx[src] != f) continue;
          const T g = nmr_gdot(p, src, q);
          if (!(g < (T)0)) continue;
          nmr_range(cn, inv1, inv2, &rg);
          if (rg.empty || !(rg.lo > (T)0 || rg.hi < (T)0)) continue;
          const T t = rg.lo > (T)0 ? rg.lo : rg.hi;
          const T s = (cn.ss + t * cn.d2c) / cn.dd;
          const T r = (cn.rr - t * cn.d1c) / cn.dd;
          const T alpha = (T)1 / ((T)1 + s + r);
          const T zx = (alpha * zv + (s * alpha) * za) + (r * alpha) * zb;
          if (!(fq < 0 || zx < p.depth[q])) continue;
          contrib = contrib + g / t;
        } else {
          // p inside and showing the face: both ways out, the colour past the span's end.
          if (fq != f) continue;
          nmr_range(cn, inv1, inv2, &rg);
          if (rg.empty) continue;
          for (int side = 0; side < 2; ++side) {
            const T tend = side == 0 ? rg.lo : rg.hi;
            const bool fin = side == 0 ? tend < (T)0 : tend > (T)0;
            if (!fin || !isfinite(tend)) continue;
            const bool is_s = side == 0 ? rg.lo_is_s : rg.hi_is_s;
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
