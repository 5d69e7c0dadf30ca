// Kernel bodies of edge antialiasing (render_core/antialias.py): written once for both drivers.
//
// A pair is two adjacent pixels, q0 and q1 = q0 + 1 (horizontal) or q0 + W (vertical). When
// their faces differ, the nearer fragment's face is searched for a silhouette edge (no
// neighbour, or a neighbour winding the other way on screen) that crosses the segment between
// the two centres at s in [0, 1] pixels from q0. The pixel whose centre is nearer the edge
// takes |s - 1/2| of the other's colour. The numerics follow _torch_ref.antialias operation
// by operation, so both backends take the same branches.
//
// Forward and the colour gradient are gathers, one index per pixel over its four pairs (each
// pair is evaluated from both of its pixels): no atomics. The vertex gradient is one index
// per pair: atomic adds into the two edge vertices (GPU default), or two slots per pair that
// are summed per vertex in a fixed order (CPU, GPU deterministic mode).
#pragma once

#include "dibr_math.h"

namespace dibr {

constexpr double AA_W_EPS = 1e-6;  // a vertex at w <= AA_W_EPS is behind the eye (reference)
constexpr int AA_MAX_WALK = 8;     // faces followed along a pixel pair before giving up

template <typename T>
struct AAParams {
  const T* color;           // [B,H,W,C] shaded colours
  const int64_t* face_idx;  // [B,H,W] face of each pixel, -1 on background
  const T* depth;           // [B,H,W] NDC depth of each pixel's fragment (1 on background)
  const T* clip;            // [B,V,4] clip-space vertices
  const int64_t* faces;     // [F,3] vertex indices
  const int64_t* topo;      // [F,3] face across edge k (vertex k to k+1), -1 none
  int B, H, W, C, V, F;     // batch, image size, channels, vertices, faces
  T half_w, half_h;         // T(W/2), T(H/2)
  T* out;                   // [B,H,W,C] forward output
  const T* grad_out;        // [B,H,W,C] backward: upstream gradient
  T* grad_color;            // [B,H,W,C] backward output
  T* grad_clip;             // [B,V,4] backward output (atomic mode: accumulated)
  T* slot_grad;             // [B*2*H*W*2,4] deterministic mode: the two vertices' gradients
  int64_t* slot_vert;       // [B*2*H*W*2] deterministic mode: their vertex (-1: none)
  const int64_t* grp_off;   // [B*V+1] deterministic gather: slots of vertex n are ...
  const int64_t* grp;       //   ... grp[grp_off[n] .. grp_off[n+1]), ascending
};

// What one pair evaluates to, with what the backward pass needs.
template <typename T>
struct AAPair {
  bool active;         // an edge was found: the pair blends
  int64_t q0, q1;      // the two pixels (q0 left or top)
  T s;                 // crossing, pixels from q0's centre
  int64_t va, vb;      // the edge's vertices (within the image's batch entry)
  T pa, pb, qa, qb;    // their coordinates across (p) and along (q) the pair's line
  T line;              // the line's coordinate across (row or column index)
};

// Column X (vertical=false picks X along) and row Y of vertex v of image b, as the reference.
template <typename T>
DIBR_HD void aa_screen(const AAParams<T>& p, int b, int64_t v, T* X, T* Y) {
  const T* c = p.clip + ((int64_t)b * p.V + v) * 4;
  const T w = c[3] > (T)AA_W_EPS ? c[3] : (T)1;
  *X = (c[0] / w + (T)1) * p.half_w - (T)0.5;
  *Y = ((T)1 - c[1] / w) * p.half_h - (T)0.5;
}

// Orientation of face f on screen (determinant of its (x, y, w) rows) and its validity.
template <typename T>
DIBR_HD T aa_det(const AAParams<T>& p, int b, int64_t f, bool* valid) {
  const T* c[3];
  for (int k = 0; k < 3; ++k) c[k] = p.clip + ((int64_t)b * p.V + p.faces[f * 3 + k]) * 4;
  *valid = c[0][3] > (T)AA_W_EPS && c[1][3] > (T)AA_W_EPS && c[2][3] > (T)AA_W_EPS;
  const T x0 = c[0][0], x1 = c[1][0], x2 = c[2][0];
  const T y0 = c[0][1], y1 = c[1][1], y2 = c[2][1];
  const T w0 = c[0][3], w1 = c[1][3], w2 = c[2][3];
  return (x0 * (y1 * w2 - w1 * y2) - y0 * (x1 * w2 - w1 * x2)) + w0 * (x1 * y2 - y1 * x2);
}

// Is edge k of face f (orientation det_f) a silhouette edge?
template <typename T>
DIBR_HD bool aa_silhouette(const AAParams<T>& p, int b, int64_t f, int k, T det_f) {
  const int64_t nb = p.topo[f * 3 + k];
  if (nb < 0) return true;
  bool valid;
  const T dn = aa_det(p, b, nb, &valid);
  const bool same = (det_f > (T)0 && dn > (T)0) || (det_f < (T)0 && dn < (T)0);
  return !valid || !same;
}

// Evaluate the pair of pixel (b, i, j) and its right (vertical=false) or lower neighbour:
// from the front face, follow the segment between the centres across non-silhouette edges
// (at most AA_MAX_WALK faces) until it leaves through a silhouette edge.
template <typename T>
DIBR_HD void aa_pair(const AAParams<T>& p, int b, int i, int j, bool vertical, AAPair<T>* e) {
  e->active = false;
  e->q0 = ((int64_t)b * p.H + i) * p.W + j;
  e->q1 = vertical ? e->q0 + p.W : e->q0 + 1;
  const int64_t f0 = p.face_idx[e->q0], f1 = p.face_idx[e->q1];
  if (f0 == f1) return;
  const bool front0 = f0 >= 0 && (f1 < 0 || p.depth[e->q0] <= p.depth[e->q1]);
  int64_t cur = front0 ? f0 : f1, prev = -2;
  const T line = (T)(vertical ? j : i), base = (T)(vertical ? i : j);
  for (int step = 0; step < AA_MAX_WALK; ++step) {
    int pick = -1;
    for (int k = 0; k < 3 && pick < 0; ++k) {
      if (p.topo[cur * 3 + k] == prev) continue;
      const int64_t va = p.faces[cur * 3 + k], vb = p.faces[cur * 3 + (k + 1) % 3];
      T xa, ya, xb, yb;
      aa_screen(p, b, va, &xa, &ya);
      aa_screen(p, b, vb, &xb, &yb);
      const T pa = vertical ? xa : ya, pb = vertical ? xb : yb;
      const T qa = vertical ? ya : xa, qb = vertical ? yb : xb;
      if ((pa <= line) == (pb <= line)) continue;
      const T s = (qa + (line - pa) / (pb - pa) * (qb - qa)) - base;
      if (!(s >= (T)0 && s <= (T)1)) continue;
      pick = k;
      e->s = s, e->va = va, e->vb = vb;
      e->pa = pa, e->pb = pb, e->qa = qa, e->qb = qb, e->line = line;
    }
    if (pick < 0) return;
    bool valid;
    if (aa_silhouette(p, b, cur, pick, aa_det(p, b, cur, &valid))) {
      // An edge more along the pair than across it belongs to the other direction's pairs.
      const T dq = e->qb - e->qa, dp = e->pb - e->pa;
      const T adq = dq < (T)0 ? -dq : dq, adp = dp < (T)0 ? -dp : dp;
      e->active = vertical ? adq < adp : adq <= adp;
      return;
    }
    prev = cur;
    cur = p.topo[cur * 3 + pick];
  }
}

// The pairs of pixel q in the reference's summation order: with the right neighbour (q is
// pixel 0), the left one (q is pixel 1), the lower one (0), the upper one (1). Returns how
// many exist; side[k] is q's role in pair k.
template <typename T>
DIBR_HD int aa_pairs_of(const AAParams<T>& p, int64_t q, AAPair<T> pr[4], int side[4]) {
  const int64_t hw = (int64_t)p.H * p.W;
  const int b = (int)(q / hw);
  const int r = (int)(q - b * hw);
  const int i = r / p.W, j = r - i * p.W;
  int n = 0;
  if (j < p.W - 1) aa_pair(p, b, i, j, false, &pr[n]), side[n++] = 0;
  if (j > 0) aa_pair(p, b, i, j - 1, false, &pr[n]), side[n++] = 1;
  if (i < p.H - 1) aa_pair(p, b, i, j, true, &pr[n]), side[n++] = 0;
  if (i > 0) aa_pair(p, b, i - 1, j, true, &pr[n]), side[n++] = 1;
  return n;
}

// Forward: out[q] = color[q] + the contributions of the pairs where q receives.
template <typename T>
DIBR_HD void aa_forward_body(int64_t q, const AAParams<T>& p) {
  AAPair<T> pr[4];
  int side[4];
  const int n = aa_pairs_of(p, q, pr, side);
  T* o = p.out + q * p.C;
  for (int c = 0; c < p.C; ++c) o[c] = p.color[q * p.C + c];
  for (int k = 0; k < n; ++k) {
    const AAPair<T>& e = pr[k];
    const bool recv0 = e.s < (T)0.5;
    if (!e.active || recv0 != (side[k] == 0)) continue;
    const T* c0 = p.color + e.q0 * p.C;
    const T* c1 = p.color + e.q1 * p.C;
    for (int c = 0; c < p.C; ++c)
      o[c] = o[c] + (recv0 ? ((T)0.5 - e.s) * (c1[c] - c0[c]) : (e.s - (T)0.5) * (c0[c] - c1[c]));
  }
}

// Colour gradient: the receiving pixel keeps 1 - a of its own colour and takes a of the other.
template <typename T>
DIBR_HD void aa_grad_color_body(int64_t q, const AAParams<T>& p) {
  AAPair<T> pr[4];
  int side[4];
  const int n = aa_pairs_of(p, q, pr, side);
  T* gc = p.grad_color + q * p.C;
  const T* g = p.grad_out + q * p.C;
  for (int c = 0; c < p.C; ++c) gc[c] = g[c];
  for (int k = 0; k < n; ++k) {
    const AAPair<T>& e = pr[k];
    if (!e.active) continue;
    const bool recv0 = e.s < (T)0.5;
    const T a = recv0 ? (T)0.5 - e.s : e.s - (T)0.5;
    if (recv0 == (side[k] == 0)) {
      for (int c = 0; c < p.C; ++c) gc[c] -= a * g[c];
    } else {
      const T* gr = p.grad_out + (recv0 ? e.q0 : e.q1) * p.C;
      for (int c = 0; c < p.C; ++c) gc[c] += a * gr[c];
    }
  }
}

// d(screen X, Y)/d(clip) of vertex v, chained onto (gX, gY): (gx, gy, 0, gw).
template <typename T>
DIBR_HD void aa_clip_grad(const AAParams<T>& p, int b, int64_t v, T gX, T gY, T out[4]) {
  const T* c = p.clip + ((int64_t)b * p.V + v) * 4;
  const bool ok = c[3] > (T)AA_W_EPS;
  const T w = ok ? c[3] : (T)1;
  out[0] = gX * p.half_w / w;
  out[1] = -gY * p.half_h / w;
  out[2] = 0;
  out[3] = ok ? (-gX * p.half_w * c[0] + gY * p.half_h * c[1]) / (w * w) : (T)0;
}

// Vertex gradient of pair k (k = (b*2 + vertical)*H*W + i*W + j).
template <typename T>
DIBR_HD void aa_grad_clip_body(int64_t k, const AAParams<T>& p) {
  const int64_t hw = (int64_t)p.H * p.W;
  const int b = (int)(k / (2 * hw));
  const int64_t r = k - (int64_t)b * 2 * hw;
  const bool vertical = r >= hw;
  const int rr = (int)(vertical ? r - hw : r);
  const int i = rr / p.W, j = rr - i * p.W;
  AAPair<T> e;
  e.active = false;
  if (vertical ? i < p.H - 1 : j < p.W - 1) aa_pair(p, b, i, j, vertical, &e);
  if (p.slot_vert) p.slot_vert[2 * k] = -1, p.slot_vert[2 * k + 1] = -1;
  if (!e.active) return;
  const int64_t qr = e.s < (T)0.5 ? e.q0 : e.q1;
  T gs = 0;
  for (int c = 0; c < p.C; ++c)
    gs += p.grad_out[qr * p.C + c] * (p.color[e.q0 * p.C + c] - p.color[e.q1 * p.C + c]);
  if (gs == (T)0) return;
  // s = qa + r (qb - qa) - base with r = (line - pa) / (pb - pa).
  const T d = e.pb - e.pa, rr2 = (e.line - e.pa) / d, dq = e.qb - e.qa;
  const T g_qa = gs * ((T)1 - rr2), g_qb = gs * rr2;
  const T g_pa = gs * dq * (rr2 - (T)1) / d, g_pb = -gs * dq * rr2 / d;
  T ga[4], gb[4];
  aa_clip_grad(p, b, e.va, vertical ? g_pa : g_qa, vertical ? g_qa : g_pa, ga);
  aa_clip_grad(p, b, e.vb, vertical ? g_pb : g_qb, vertical ? g_qb : g_pb, gb);
  if (p.slot_vert) {
    p.slot_vert[2 * k] = e.va, p.slot_vert[2 * k + 1] = e.vb;
    for (int c = 0; c < 4; ++c) p.slot_grad[8 * k + c] = ga[c], p.slot_grad[8 * k + 4 + c] = gb[c];
    return;
  }
  T* oa = p.grad_clip + ((int64_t)b * p.V + e.va) * 4;
  T* ob = p.grad_clip + ((int64_t)b * p.V + e.vb) * 4;
  for (int c = 0; c < 4; ++c) atomic_add(oa + c, ga[c]), atomic_add(ob + c, gb[c]);
}

// Deterministic gather: vertex n = b*V + v sums its slots in ascending order.
template <typename T>
DIBR_HD void aa_gather_body(int64_t n, const AAParams<T>& p) {
  T acc[4] = {0, 0, 0, 0};
  for (int64_t s = p.grp_off[n]; s < p.grp_off[n + 1]; ++s)
    for (int c = 0; c < 4; ++c) acc[c] += p.slot_grad[p.grp[s] * 4 + c];
  for (int c = 0; c < 4; ++c) p.grad_clip[n * 4 + c] = acc[c];
}

}  // namespace dibr
