// SoftRas kernel bodies (Liu et al. 2019; render_core/softras.py), float32 or float64, written
// once for both drivers. The numerics follow render_core/_softras_ref.py:
//
// * per (pixel, face): the signed squared distance x = delta * d (isotropic NDC; d to the
//   nearest edge, delta = +1 inside, edges inclusive), kept when x > -cut2 (an outside face
//   whose probability D = sigmoid(x / sigma) is below SOFT_EPS does not count at all), and
//   the clamped, renormalised screen-space barycentrics that interpolate colour and depth;
// * per pixel: alpha = 1 - exp(sum_j -softplus(x_j / sigma)); colour = (sum_j w_j c_j + w_b bg)
//   / (sum_j w_j + w_b), w_j = D_j exp(z_j / gamma - top), w_b = exp(eps / gamma - top), top
//   the largest exponent of the pixel (so nothing overflows).
//
// Faces are binned into 8x8 tiles by their pixel boxes grown by the cutoff radius (the bins of
// raster_ops.h's make_bins). The forward pass is a gather per pixel over its tile's bin (two
// passes: the exponent maximum, then the sums), no atomics. The backward pass has one index
// per bin entry (tile, face): it recomputes the face's terms at the tile's pixels, chains the
// per-pixel gradients to the face's three vertices (xy, depth, colour) and either adds them
// with atomics (GPU default) or writes them to the entry's own slot, summed per vertex in a
// fixed order afterwards (CPU, GPU deterministic mode).
#pragma once

#include "dibr_kernels.h"

namespace dibr {

constexpr int SR_MAX_C = 4;   // colour channels handled natively
constexpr int SR_TRI = 10;    // scalars per face: 3 isotropic 2D vertices, then their bbox

template <typename T>
struct SRParams {
  const T* xy;              // [B,V,2] isotropic NDC positions (x scaled by W/H)
  const T* zn;              // [B,V] depth (1 - z_ndc) / 2: 1 at the near plane, 0 at the far
  const T* color;           // [B,V,C] vertex colours
  const T* bg;              // [C] background colour
  const bool* valid;        // [B,F] faces with every vertex in front of the eye
  const int64_t* faces;     // [F,3] vertex indices
  int B, V, F, H, W, C;     // batch, vertices, faces, image size, channels (<= SR_MAX_C)
  int tx, ty;               // tiles per image row and column
  T two_over_w, two_over_h; // T(2/W), T(2/H): pixel pitch in NDC
  T iso_scale;              // T(W/H): NDC x -> isotropic x
  T sigma, gamma;           // sharpness (squared isotropic NDC) and depth temperature
  T eps_over_gamma;         // the background's softmax exponent
  T cut2;                   // outside faces with d >= cut2 are skipped
  double grow_px;           // cutoff radius in pixels: grows the face boxes
  T* tri;                   // [N,SR_TRI] setup output
  PixBox* box;              // [N] setup output: pixel box grown by the cutoff (empty: skip)
  const int64_t* entries;   // [P] bins: keys t*N + n, tile-major, faces ascending
  const int64_t* tile_off;  // [B*TY*TX+1] start of each tile's entries
  T* rgb;                   // [B,H,W,C] forward output
  T* alpha;                 // [B,H,W] forward output
  T* top;                   // [B,H,W] forward: the exponent maximum of each pixel
  T* den;                   // [B,H,W] forward: sum_j w_j + w_b
  T* empty;                 // [B,H,W] forward: prod_j (1 - D_j) = 1 - alpha, unrounded
  const T* grad_rgb;        // [B,H,W,C] backward: upstream gradients
  const T* grad_alpha;      // [B,H,W]
  T* grad_xy;               // [B,V,2] backward outputs (atomic mode: accumulated)
  T* grad_zn;               // [B,V]
  T* grad_color;            // [B,V,C]
  T* slot;                  // [P,SLOT] deterministic mode: each entry's vertex gradients
  bool atomic_grad;         // backward: atomics into the outputs instead of slots
  const int64_t* face_ptr;  // [N+1] gather: start of each face's entries in face_entry
  const int64_t* face_entry;   // [P] gather: entry indices grouped by face, ascending
  const int64_t* vert_ptr;     // [V+1] gather: start of each vertex's corners
  const int64_t* vert_corner;  // [3F] gather: corners f*3+k of each vertex, ascending
};

// Scalars of one entry's slot: xy of the 3 vertices, their depths, their colours.
DIBR_HD int sr_slot_size(int C) { return 9 + 3 * C; }

DIBR_HD float m_log1p(float x) { return log1pf(x); }
DIBR_HD double m_log1p(double x) { return log1p(x); }

// Setup (one index per face): the triangle, its bounding box, its grown pixel box.
template <typename T>
DIBR_HD void sr_setup_body(int64_t n, const SRParams<T>& p) {
  T* t = p.tri + n * SR_TRI;
  double x[3], y[3];
  gather_triangle(n, p.xy, p.faces, p.F, p.V, p.H, p.W, t, x, y);
  p.box[n] = p.valid[n] ? pixel_box(x, y, p.H, p.W, p.grow_px) : empty_box();
}

// Pixel of tile-major index q (64 consecutive indices per tile); false if off the image.
template <typename T>
DIBR_HD bool sr_tile_pixel(int64_t q, const SRParams<T>& p, int64_t* t, int* b, int* i, int* j) {
  *t = q / TILE_PIX;
  const int l = (int)(q % TILE_PIX), tiles = p.tx * p.ty;
  *b = (int)(*t / tiles);
  const int tl = (int)(*t % tiles);
  *i = (tl / p.tx) * TILE + l / TILE;
  *j = (tl % p.tx) * TILE + l % TILE;
  return *i < p.H && *j < p.W;
}

// What one face contributes at one pixel.
template <typename T>
struct SRTerm {
  T x;         // signed squared distance delta * d
  bool inside;
  T e[3];      // edge functions (unnormalised barycentrics)
  T area2;     // twice the signed area
  T r[3];      // e / area2 before the clamp
  T bc[3];     // clamped
  T s;         // their sum
  T bary[3];   // renormalised
};

// The face's term at (px, py): false when it does not count there.
template <typename T>
DIBR_HD bool sr_term(T px, T py, const T* t, T cut2, SRTerm<T>* o) {
  // Outside the bounding box grown by the cutoff: outside the triangle and beyond the cutoff
  // (with a margin far above rounding, so the exact test decides every borderline pair).
  const T dx = px < t[6] ? t[6] - px : (px > t[7] ? px - t[7] : (T)0);
  const T dy = py < t[8] ? t[8] - py : (py > t[9] ? py - t[9] : (T)0);
  if (dx * dx + dy * dy > cut2 * (T)1.001) return false;
  const T ax = t[0], ay = t[1], bx = t[2], by = t[3], cx = t[4], cy = t[5];
  o->e[0] = cross2(cx - bx, cy - by, px - bx, py - by);
  o->e[1] = cross2(ax - cx, ay - cy, px - cx, py - cy);
  o->e[2] = cross2(bx - ax, by - ay, px - ax, py - ay);
  o->area2 = cross2(bx - ax, by - ay, cx - ax, cy - ay);
  const bool pos = (o->e[0] >= 0) & (o->e[1] >= 0) & (o->e[2] >= 0);
  const bool neg = (o->e[0] <= 0) & (o->e[1] <= 0) & (o->e[2] <= 0);
  o->inside = (o->area2 != (T)0) & (pos | neg);
  const T d = tri_dist2(px, py, t);
  o->x = o->inside ? d : -d;
  if (!(o->x > -cut2)) return false;
  const T safe = o->area2 != (T)0 ? o->area2 : (T)1;
  o->s = 0;
  for (int k = 0; k < 3; ++k) {
    o->r[k] = o->e[k] / safe;
    o->bc[k] = o->r[k] < (T)0 ? (T)0 : (o->r[k] > (T)1 ? (T)1 : o->r[k]);
    o->s += o->bc[k];
  }
  const T sc = o->s < (T)1e-12 ? (T)1e-12 : o->s;
  for (int k = 0; k < 3; ++k) o->bary[k] = o->bc[k] / sc;
  return true;
}

// sigmoid(x) and softplus(x) = log(1 + e^x) from one exponential, e^{-|x|} (no overflow).
template <typename T>
DIBR_HD void sr_sigmoid_softplus(T x, T* sig, T* sp) {
  const T e = m_exp(x < (T)0 ? x : -x);
  const T inv = (T)1 / ((T)1 + e);
  *sig = x >= (T)0 ? inv : e * inv;
  *sp = (x > (T)0 ? x : (T)0) + m_log1p(e);
}

// Forward (one index per pixel, tile-major): a gather over the pixel's bin, in one pass. The
// softmax's exponent maximum is kept as it goes: when a face raises it, the sums so far are
// rescaled, so the result equals the reference's two-pass one up to rounding.
template <typename T>
DIBR_HD void sr_forward_body(int64_t q, const SRParams<T>& p) {
  int64_t t;
  int b, i, j;
  if (!sr_tile_pixel(q, p, &t, &b, &i, &j)) return;
  const int64_t pix = ((int64_t)b * p.H + i) * p.W + j;
  const T px = pixel_x(j, p.two_over_w) * p.iso_scale, py = pixel_y(i, p.two_over_h);
  const int64_t nfaces = (int64_t)p.B * p.F, e0 = p.tile_off[t], e1 = p.tile_off[t + 1];
  T top = p.eps_over_gamma, s = 0, den = 0, num[SR_MAX_C] = {0, 0, 0, 0};
  for (int64_t e = e0; e < e1; ++e) {
    const int64_t n = p.entries[e] - t * nfaces;
    const PixBox bx = p.box[n];
    if (i < bx.i0 || i > bx.i1 || j < bx.j0 || j > bx.j1) continue;
    SRTerm<T> o;
    if (!sr_term(px, py, p.tri + n * SR_TRI, p.cut2, &o)) continue;
    const int f = (int)(n % p.F);
    T z = 0, col[SR_MAX_C] = {0, 0, 0, 0};
    for (int k = 0; k < 3; ++k) {
      const int64_t v = (int64_t)b * p.V + p.faces[f * 3 + k];
      z += o.bary[k] * p.zn[v];
      for (int c = 0; c < p.C; ++c) col[c] += o.bary[k] * p.color[v * p.C + c];
    }
    const T ez = z / p.gamma;
    if (ez > top) {
      const T r = m_exp(top - ez);
      den *= r;
      for (int c = 0; c < p.C; ++c) num[c] *= r;
      top = ez;
    }
    T D, sp;
    sr_sigmoid_softplus(o.x / p.sigma, &D, &sp);
    s -= sp;
    const T w = D * m_exp(ez - top);
    for (int c = 0; c < p.C; ++c) num[c] += w * col[c];
    den += w;
  }
  const T wb = m_exp(p.eps_over_gamma - top);
  const T dt = den + wb;
  for (int c = 0; c < p.C; ++c) p.rgb[pix * p.C + c] = (num[c] + wb * p.bg[c]) / dt;
  p.alpha[pix] = -m_expm1(s);
  p.empty[pix] = m_exp(s);
  p.top[pix] = top;
  p.den[pix] = dt;
}

// Gradient of the edge function cross(Q - P, X - P) w.r.t. Q and P, times g, added to gq, gp.
template <typename T>
DIBR_HD void sr_cross_grad(T g, T qx, T qy, T pxv, T pyv, T xx, T xy, T* gq, T* gp) {
  const T ux = qx - pxv, uy = qy - pyv, vx = xx - pxv, vy = xy - pyv;
  // cross(u, v) = ux vy - uy vx: d/du = (vy, -vx), d/dv = (-uy, ux).
  gq[0] += g * vy;
  gq[1] -= g * vx;
  gp[0] -= g * vy - g * uy;
  gp[1] -= -g * vx + g * ux;
}

// Backward (one index per bin entry): the face's gradients summed over its tile's pixels.
template <typename T>
DIBR_HD void sr_backward_body(int64_t e, const SRParams<T>& p) {
  const BinEntry en = decode_entry(p.entries[e], p.B, p.F, p.tx, p.ty);
  const int64_t n = en.n;
  const int b = en.b, f = (int)(n % p.F);
  const PixBox c = box_intersect(tile_box(en.ti, en.tj), p.box[n]);
  const T* t = p.tri + n * SR_TRI;
  int64_t v[3];
  T zk[3], ck[3][SR_MAX_C];
  for (int k = 0; k < 3; ++k) {
    v[k] = (int64_t)b * p.V + p.faces[f * 3 + k];
    zk[k] = p.zn[v[k]];
    for (int ch = 0; ch < p.C; ++ch) ck[k][ch] = p.color[v[k] * p.C + ch];
  }
  T gxy[6] = {0, 0, 0, 0, 0, 0}, gz[3] = {0, 0, 0}, gc[3][SR_MAX_C] = {};
  for (int i = c.i0; i <= c.i1; ++i) {
    const T py = pixel_y(i, p.two_over_h);
    for (int j = c.j0; j <= c.j1; ++j) {
      const int64_t pix = ((int64_t)b * p.H + i) * p.W + j;
      const T* grgb = p.grad_rgb + pix * p.C;
      const T galpha = p.grad_alpha[pix];
      // Pixels without a colour gradient (silhouette-only losses) skip the colour path: its
      // terms would all be zero.
      bool colour = false;
      for (int ch = 0; ch < p.C; ++ch) colour |= grgb[ch] != (T)0;
      if (!colour && galpha == (T)0) continue;
      const T px = pixel_x(j, p.two_over_w) * p.iso_scale;
      SRTerm<T> o;
      if (!sr_term(px, py, t, p.cut2, &o)) continue;
      T D, sp;
      sr_sigmoid_softplus(o.x / p.sigma, &D, &sp);
      // d/dx of alpha = 1 - prod(1 - D): prod * D; of the weight w (through D) below.
      T gxs = galpha * p.empty[pix] * D;
      if (colour) {
        const T* rgb = p.rgb + pix * p.C;
        const T dt = p.den[pix];
        T z = 0, col[SR_MAX_C] = {0, 0, 0, 0};
        for (int k = 0; k < 3; ++k) {
          z += o.bary[k] * zk[k];
          for (int ch = 0; ch < p.C; ++ch) col[ch] += o.bary[k] * ck[k][ch];
        }
        const T ez = m_exp(z / p.gamma - p.top[pix]);
        const T w = D * ez;
        T gw = 0;
        for (int ch = 0; ch < p.C; ++ch) gw += grgb[ch] * (col[ch] - rgb[ch]);
        gw /= dt;
        gxs += gw * (D * ((T)1 - D)) * ez;
        const T gzz = gw * w / p.gamma;
        T gcol[SR_MAX_C];
        for (int ch = 0; ch < p.C; ++ch) gcol[ch] = grgb[ch] * w / dt;
        // Interpolation: colour and depth w.r.t. the vertices' values and the barycentrics.
        T gb[3];
        for (int k = 0; k < 3; ++k) {
          gz[k] += o.bary[k] * gzz;
          gb[k] = gzz * zk[k];
          for (int ch = 0; ch < p.C; ++ch) {
            gc[k][ch] += o.bary[k] * gcol[ch];
            gb[k] += gcol[ch] * ck[k][ch];
          }
        }
        // Renormalisation b = bc / max(s, 1e-12), the clamp to [0, 1], then r = e / area2.
        const T sc = o.s < (T)1e-12 ? (T)1e-12 : o.s;
        T gsc = 0;
        for (int k = 0; k < 3; ++k) gsc -= gb[k] * o.bc[k] / (sc * sc);
        const T gs = o.s >= (T)1e-12 ? gsc : (T)0;
        T ge[3], garea = 0;
        const T safe = o.area2 != (T)0 ? o.area2 : (T)1;
        for (int k = 0; k < 3; ++k) {
          const T gbc = gb[k] / sc + gs;
          const T gr = (o.r[k] >= (T)0 && o.r[k] <= (T)1) ? gbc : (T)0;
          ge[k] = gr / safe;
          garea -= gr * o.r[k] / safe;
        }
        if (o.area2 == (T)0) garea = 0;
        T ga[2] = {0, 0}, gbv[2] = {0, 0}, gcv[2] = {0, 0};
        // e0 = cross(c - b, p - b), e1 = cross(a - c, p - c), e2 = cross(b - a, p - a).
        sr_cross_grad(ge[0], t[4], t[5], t[2], t[3], px, py, gcv, gbv);
        sr_cross_grad(ge[1], t[0], t[1], t[4], t[5], px, py, ga, gcv);
        sr_cross_grad(ge[2], t[2], t[3], t[0], t[1], px, py, gbv, ga);
        // area2 = cross(b - a, c - a): as an edge function of Q = b, P = a at X = c, plus the
        // dependence on c itself, d/dc = (-uy, ux) with u = b - a.
        sr_cross_grad(garea, t[2], t[3], t[0], t[1], t[4], t[5], gbv, ga);
        gcv[0] -= garea * (t[3] - t[1]);
        gcv[1] += garea * (t[2] - t[0]);
        gxy[0] += ga[0], gxy[1] += ga[1], gxy[2] += gbv[0], gxy[3] += gbv[1];
        gxy[4] += gcv[0], gxy[5] += gcv[1];
      }
      const T gsigned = gxs / p.sigma;
      // The distance: d = min of the three edges' distances, x = +-d.
      T d, gd[6];
      if (tri_dist2_grad_within(px, py, t, (T)INFINITY, &d, gd)) {
        const T gdd = o.inside ? gsigned : -gsigned;
        for (int k = 0; k < 6; ++k) gxy[k] += gdd * gd[k];
      }
    }
  }
  if (p.atomic_grad) {
    for (int k = 0; k < 3; ++k) {
      atomic_add(p.grad_xy + v[k] * 2, gxy[2 * k]);
      atomic_add(p.grad_xy + v[k] * 2 + 1, gxy[2 * k + 1]);
      atomic_add(p.grad_zn + v[k], gz[k]);
      for (int ch = 0; ch < p.C; ++ch) atomic_add(p.grad_color + v[k] * p.C + ch, gc[k][ch]);
    }
    return;
  }
  T* s = p.slot + e * sr_slot_size(p.C);
  for (int k = 0; k < 6; ++k) s[k] = gxy[k];
  for (int k = 0; k < 3; ++k) {
    s[6 + k] = gz[k];
    for (int ch = 0; ch < p.C; ++ch) s[9 + k * p.C + ch] = gc[k][ch];
  }
}

// Deterministic reduction (one index per (image, vertex)): the slots of every corner of the
// vertex, corners ascending, a face's entries ascending.
template <typename T>
DIBR_HD void sr_gather_body(int64_t q, const SRParams<T>& p) {
  const int b = (int)(q / p.V), vv = (int)(q % p.V);
  const int S = sr_slot_size(p.C);
  T gx = 0, gy = 0, gz = 0, gc[SR_MAX_C] = {0, 0, 0, 0};
  for (int64_t c = p.vert_ptr[vv]; c < p.vert_ptr[vv + 1]; ++c) {
    const int64_t corner = p.vert_corner[c];
    const int64_t n = (int64_t)b * p.F + corner / 3;
    const int k = (int)(corner % 3);
    for (int64_t s = p.face_ptr[n]; s < p.face_ptr[n + 1]; ++s) {
      const T* sl = p.slot + p.face_entry[s] * S;
      gx += sl[2 * k];
      gy += sl[2 * k + 1];
      gz += sl[6 + k];
      for (int ch = 0; ch < p.C; ++ch) gc[ch] += sl[9 + k * p.C + ch];
    }
  }
  p.grad_xy[q * 2] = gx;
  p.grad_xy[q * 2 + 1] = gy;
  p.grad_zn[q] = gz;
  for (int ch = 0; ch < p.C; ++ch) p.grad_color[q * p.C + ch] = gc[ch];
}

}  // namespace dibr
