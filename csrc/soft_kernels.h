// Soft-silhouette kernel bodies (DIB-R eq. 5-6), float32 or float64, written once for both
// drivers like the visibility bodies in dibr_kernels.h (same layout of faces, tiles and bins).
//
// The band: a covered pixel (inside some valid face) has alpha exactly 1 and no gradient, so the
// soft product only matters on the uncovered pixels within the cutoff of some face. The passes:
// coverage (per face, over its own pixel box; skipped where the caller gives the coverage, e.g.
// the hard rasterizer's mask of the same render); the box of each tile's uncovered pixels (its
// "open" box); band bins: a face goes into a tile only where its cutoff-grown box meets the
// tile's open box (so fully covered tiles, most of a mesh's interior, have empty bins); the
// forward product and the backward pass over the band bins only. The per-pixel products run
// over the same faces in the same (ascending) order as a walk over every face's grown box
// would, so the result is the same to the last bit. The product of the 1 - p_j is formed
// directly (one log per pixel for S, not one per face): in float32 its error against float64
// is that of the reference's sum of logs (both ~1e-6 at 128^2 with 5,120 faces). The CPU's
// whole-tile forward (which can also save each pixel-face pair for soft_saved_backward_body)
// and its vectorized coverage pass are in soft_cpu.h.
#pragma once

#include "dibr_kernels.h"

namespace dibr {

// ------------------------------------------------------------------------------------------
// Soft silhouette, float32 or float64 (scalar_t = T).
// ------------------------------------------------------------------------------------------
template <typename T>
struct SoftParams {
  const T* xy;              // [B,V,2] isotropic NDC positions (x scaled by W/H), contiguous
  const bool* valid;        // [B,F] faces with every vertex in front of the eye (w > W_EPS)
  const int64_t* faces;     // [F,3] vertex indices
  int B, V, F, H, W;        // batch, vertices, faces per image, image height and width
  int tx, ty;               // tiles per image row and column
  T two_over_w, two_over_h; // T(2/W), T(2/H): pixel pitch in NDC as the reference rounds it
  T iso_scale;              // T(W/H): NDC x -> isotropic x
  T sigma;                  // softness, squared isotropic-NDC units
  T cut2;                   // squared cutoff radius: faces with d >= cut2 are skipped
  double grow_px;           // cutoff radius in pixels, grows the face boxes
  T* tri;                   // [N,TRI] setup output: three isotropic 2D vertices, then their
                            //   bounding box (xmin, xmax, ymin, ymax) for a cheap distance bound
  PixBox* box;              // [N] setup output: pixel box grown by the cutoff (empty: skip)
  PixBox* inner;            // [N] setup output: pixel box of the triangle itself (coverage;
                            //   null where the caller gives the coverage)
  const int64_t* entries;   // [P] band bins: (tile, face) entries, tile-major, faces ascending
  const int64_t* tile_off;  // [B*TY*TX+1] start of each tile's entries
  const int64_t* band_off;  // [N+1] first pair slot of each face (its band tiles, row-major)
  int* tile_count;          // [B*TY*TX] band count pass: entries per tile (zeroed)
  int* face_count;          // [N] band count pass: band tiles per face
  int* tile_cursor;         // [B*TY*TX] band fill pass: next free slot of each tile
  int64_t* entries_out;     // [P] band fill pass: entry keys t*N + n
  int64_t* tile_room;       // [B*TY*TX] band fill pass (CPU, where not null): open pixels of
                            //   each tile's entries' boxes (soft_tile_bound), zeroed
  int* entry_rank;          // [P] band fill pass (CPU, where not null): each entry's place
                            //   among its face's band tiles (row-major), so band_off[n] + it
                            //   is the entry's pair slot (band_slot)
  T* s;                     // [B*H*W] forward: log(prod_j (1 - p_j)) over uncovered pixels
  T* exp_s;                 // [B*H*W] forward: prod_j (1 - p_j), for the backward coefficients
  T* alpha;                 // [B*H*W] forward output
  bool* covered;            // [B*H*W] forward: pixel inside some valid face (alpha = 1)
  PixBox* tile_open;        // [B*TY*TX] forward: box of each tile's uncovered pixels (empty:
                            //   no band entries in the tile)
  const T* grad_alpha;      // [B*H*W] backward: upstream gradient
  T* grad_xy;               // [B,V,2] backward (atomic mode): accumulated gradient
  T* pair_grad;             // [P,6] backward (deterministic mode): per pair vertex gradients
  bool atomic_grad;         // backward: add into grad_xy with atomics instead of pair_grad
  const int64_t* vert_ptr;  // [V+1] gather: start of each vertex's corners in vert_corner
  const int64_t* vert_corner;  // [3F] gather: corners f*3+k of each vertex, ascending
  const int64_t* pair_span;  // [P,3] saved pairs (CPU): records [first, end) of each entry,
                             //   then its pair slot (band_slot)
  const T* pairs;            // [Q,PAIR] saved pairs (CPU): records of the forward, see below
};

constexpr int TRI = 10;  // scalars per face in SoftParams::tri

// A saved pixel-face pair (CPU forward with gradients wanted): everything the backward needs
// of a face within the cutoff of an uncovered pixel, so the backward neither tests nor
// measures again. Records of one band entry are contiguous, pixels in row-major order.
constexpr int PAIR = 9;   // scalars per record:
constexpr int PAIR_P = 0;   // the pixel's index in [B,H,W], an int32 in the scalar's bytes
constexpr int PAIR_X = 1;   // x = max(d / sigma, MIN_X)
constexpr int PAIR_R = 2;   // p / (1 - p), p = exp(-x)
constexpr int PAIR_G = 3;   // dd/d(vertex coordinates), 6 scalars

// The pixel index of a record, stored as the bits of an int32 (any B*H*W below 2^31; the
// driver saves no pairs beyond that).
template <typename T>
DIBR_HD void pair_put_pixel(T* r, int32_t pix) {
  T v = 0;
  memcpy(&v, &pix, sizeof(pix));
  r[PAIR_P] = v;
}

template <typename T>
DIBR_HD int32_t pair_pixel(const T* r) {
  int32_t pix;
  memcpy(&pix, r + PAIR_P, sizeof(pix));
  return pix;
}

// Setup (one index per face): gather the triangle, grow its pixel box by the cutoff.
template <typename T>
DIBR_HD void soft_setup_body(int64_t n, const SoftParams<T>& p) {
  T* t = p.tri + n * TRI;
  double x[3], y[3];
  gather_triangle(n, p.xy, p.faces, p.F, p.V, p.H, p.W, t, x, y);
  p.box[n] = p.valid[n] ? pixel_box(x, y, p.H, p.W, p.grow_px) : empty_box();
  if (p.inner) p.inner[n] = p.valid[n] ? pixel_box(x, y, p.H, p.W, 0.0) : empty_box();
}

// A face certainly beyond the cutoff from p: its bounding box already is (with a margin far
// above rounding, so the exact test below decides every borderline face).
template <typename T>
DIBR_HD bool beyond_cutoff(T px, T py, const T* t, T cut2) {
  const T dx = px < t[6] ? t[6] - px : (px > t[7] ? px - t[7] : (T)0);
  const T dy = py < t[8] ? t[8] - py : (py > t[9] ? py - t[9] : (T)0);
  return dx * dx + dy * dy > cut2 * (T)1.001;
}

// A second cheap bound, set up once per face and tile: outside a triangle, the distance to it
// is at least the distance beyond any of its edge lines. Row k holds the unit outward normal
// and offset of edge k (zeros for an unusable edge: zero length, zero area, non-finite), so
// nx*px + ny*py - c is the signed distance beyond it; a face is skipped where that exceeds
// `lim`, the cutoff radius plus a margin far above the rounding of those evaluations (which
// grows with the size of the coordinates), so the exact test below decides every borderline
// pair exactly as before.
template <typename T>
struct EdgeBound {
  T nx[3], ny[3], c[3], lim;
};

template <typename T>
DIBR_HD void edge_bound(const T* t, T cut2, T iso_scale, EdgeBound<T>* eb) {
  const T area2 = cross2(t[2] - t[0], t[3] - t[1], t[4] - t[0], t[5] - t[1]);
  const T sgn = area2 > 0 ? (T)1 : (area2 < 0 ? (T)-1 : (T)0);
  T big = iso_scale;
  for (int k = 0; k < 3; ++k) {
    const T ax = t[2 * k], ay = t[2 * k + 1];
    const T bx = t[(2 * k + 2) % 6], by = t[(2 * k + 3) % 6];
    const T abx = bx - ax, aby = by - ay;
    const T len = m_sqrt(abx * abx + aby * aby);
    const bool ok = sgn != (T)0 && len > (T)0 && len < (T)INFINITY;
    eb->nx[k] = ok ? sgn * aby / len : (T)0;
    eb->ny[k] = ok ? -sgn * abx / len : (T)0;
    eb->c[k] = ok ? eb->nx[k] * ax + eb->ny[k] * ay : (T)0;
    const T m = (ax < 0 ? -ax : ax) + (ay < 0 ? -ay : ay);
    big = m > big ? m : big;
  }
  eb->lim = m_sqrt(cut2 * (T)1.001) + (T)1e-5 * ((T)1 + big);
}

template <typename T>
DIBR_HD bool beyond_edges(T px, T py, const EdgeBound<T>& eb) {
  const T d0 = (eb.nx[0] * px + eb.ny[0] * py) - eb.c[0];
  const T d1 = (eb.nx[1] * px + eb.ny[1] * py) - eb.c[1];
  const T d2 = (eb.nx[2] * px + eb.ny[2] * py) - eb.c[2];
  return (d0 > eb.lim) | (d1 > eb.lim) | (d2 > eb.lim);
}

// A whole row py beyond the cutoff: beyond_cutoff holds at every pixel of the row.
template <typename T>
DIBR_HD bool row_beyond_cutoff(T py, const T* t, T cut2) {
  const T dy = py < t[8] ? t[8] - py : (py > t[9] ? py - t[9] : (T)0);
  return dy * dy > cut2 * (T)1.001;
}

// Pixel of tile-major index q (64 consecutive indices per tile); false if off the image.
template <typename P>
DIBR_HD bool tile_pixel(int64_t q, const P& p, int64_t* t, int* b, int* i, int* j) {
  *t = q / TILE_PIX;
  const int l = (int)(q % TILE_PIX), tiles = p.tx * p.ty;
  *b = (int)(*t / tiles);
  const int tl = (int)(*t % tiles);
  *i = (tl / p.tx) * TILE + l / TILE;
  *j = (tl % p.tx) * TILE + l % TILE;
  return *i < p.H && *j < p.W;
}

DIBR_HD bool in_box(const PixBox& b, int i, int j) {
  return i >= b.i0 && i <= b.i1 && j >= b.j0 && j <= b.j1;
}

// Coverage (one index per face): mark the pixels of the face's box inside it. Concurrent
// writers (faces sharing a pixel, on any device) only ever set the flag.
template <typename T>
DIBR_HD void soft_cover_body(int64_t n, const SoftParams<T>& p) {
  const PixBox c = p.inner[n];
  if (c.j0 > c.j1) return;
  const int b = (int)(n / p.F);
  T tri[6];
  for (int k = 0; k < 6; ++k) tri[k] = p.tri[n * TRI + k];
  for (int i = c.i0; i <= c.i1; ++i) {
    const T py = pixel_y(i, p.two_over_h);
    bool* row = p.covered + ((int64_t)b * p.H + i) * p.W;
    for (int j = c.j0; j <= c.j1; ++j) {
      const T px = pixel_x(j, p.two_over_w) * p.iso_scale;
      if (point_in_triangle(px, py, tri)) atomic_set_flag(row + j);
    }
  }
}

// Grow box o (empty to start with) by pixel (i, j).
DIBR_HD void box_add(PixBox* o, int i, int j) {
  if (o->j0 > o->j1) {
    *o = PixBox{j, j, i, i};
    return;
  }
  o->j0 = j < o->j0 ? j : o->j0;
  o->j1 = j > o->j1 ? j : o->j1;
  o->i0 = i < o->i0 ? i : o->i0;
  o->i1 = i > o->i1 ? i : o->i1;
}

// Open pixels (one index per tile): the box of the tile's uncovered pixels, so the band bins
// leave out fully covered tiles (most of a mesh's interior) and the faces that only meet a
// tile's covered rows and columns.
template <typename T>
DIBR_HD void soft_open_body(int64_t t, const SoftParams<T>& p) {
  PixBox o = empty_box();
  for (int l = 0; l < TILE_PIX; ++l) {
    int64_t tt;
    int b, i, j;
    if (tile_pixel(t * TILE_PIX + l, p, &tt, &b, &i, &j) &&
        !p.covered[((int64_t)b * p.H + i) * p.W + j])
      box_add(&o, i, j);
  }
  p.tile_open[t] = o;
}

// Tile index of image b's tile (ti, tj).
template <typename P>
DIBR_HD int64_t soft_tile(const P& p, int b, int ti, int tj) {
  return ((int64_t)b * p.ty + ti) * p.tx + tj;
}

// Whether face n (grown box bx) is binned into tile (ti, tj) of its image b: its box meets the
// tile's open box.
template <typename P>
DIBR_HD bool in_band(const P& p, const PixBox& bx, int b, int ti, int tj) {
  const PixBox c = box_intersect(bx, p.tile_open[soft_tile(p, b, ti, tj)]);
  return c.j0 <= c.j1 && c.i0 <= c.i1;
}

// Band count pass (one index per face; serial on the CPU): entries per tile, tiles per face.
template <typename T>
DIBR_HD void soft_band_count_body(int64_t n, const SoftParams<T>& p) {
  const PixBox bx = p.box[n];
  const int b = (int)(n / p.F);
  int count = 0;
  if (bx.j0 <= bx.j1)
    for (int ti = bx.i0 / TILE; ti <= bx.i1 / TILE; ++ti)
      for (int tj = bx.j0 / TILE; tj <= bx.j1 / TILE; ++tj)
        if (in_band(p, bx, b, ti, tj)) {
          atomic_fetch_inc(&p.tile_count[soft_tile(p, b, ti, tj)]);
          ++count;
        }
  p.face_count[n] = count;
}

// Band fill pass (one index per face): serial on the CPU, so each bin comes out in ascending
// face order; on the GPU the driver sorts the keys.
template <typename T>
DIBR_HD void soft_band_fill_body(int64_t n, const SoftParams<T>& p) {
  const PixBox bx = p.box[n];
  if (bx.j0 > bx.j1) return;
  const int b = (int)(n / p.F);
  const int64_t nfaces = (int64_t)p.B * p.F;
  int rank = 0;
  for (int ti = bx.i0 / TILE; ti <= bx.i1 / TILE; ++ti)
    for (int tj = bx.j0 / TILE; tj <= bx.j1 / TILE; ++tj)
      if (in_band(p, bx, b, ti, tj)) {
        const int64_t t = soft_tile(p, b, ti, tj);
        const int at = atomic_fetch_inc(&p.tile_cursor[t]);
        p.entries_out[at] = t * nfaces + n;
        if (p.entry_rank) p.entry_rank[at] = rank++;
        if (p.tile_room) {  // serial per image on the CPU: plain adds
          const PixBox c = box_intersect(bx, p.tile_open[t]);
          p.tile_room[t] += (int64_t)(c.j1 - c.j0 + 1) * (c.i1 - c.i0 + 1);
        }
      }
}

// Pair slot of face n in tile (ti, tj), one of its band tiles: band_off[n] plus the number of
// its band tiles before it in row-major order (the order the gather sums them in).
template <typename T>
DIBR_HD int64_t band_slot(const SoftParams<T>& p, int64_t n, int b, int ti, int tj) {
  const PixBox bx = p.box[n];
  int64_t k = p.band_off[n];
  for (int i = bx.i0 / TILE; i <= ti; ++i)
    for (int j = bx.j0 / TILE; j <= bx.j1 / TILE; ++j) {
      if (i == ti && j == tj) return k;
      k += in_band(p, bx, b, i, j) ? 1 : 0;
    }
  return k;
}

// 1 - p of a face at pixel (px, py), p = exp(-d / sigma) (soft_p_terms): false when the face
// does not count there (d >= cut2, checked first against its bounding box).
template <typename T>
DIBR_HD bool soft_keep_term(T px, T py, const T* tri, const SoftParams<T>& p, T* keep);

// A pixel's outputs from the product of its faces' 1 - p (1 where none counts): alpha =
// 1 - prod, exp_s = prod and s = log(prod), one log per pixel instead of one per face (and
// none where no face counts: most of the image). Shared by both forward passes.
template <typename T>
DIBR_HD void soft_pixel_out(const SoftParams<T>& p, int64_t pix, T prod) {
  const T a = (T)1 - prod;
  p.s[pix] = prod == (T)1 ? (T)0 : m_log(prod);
  p.exp_s[pix] = prod;
  p.alpha[pix] = a < 0 ? (T)0 : (a > 1 ? (T)1 : a);
}

// Forward (one index per pixel, tile-major), after the covered pass: a gather over the
// pixel's bin, so no atomics and the product runs in ascending face order on both devices.
// Covered pixels are 1 whatever the product: their terms are never evaluated.
template <typename T>
DIBR_HD void soft_forward_body(int64_t q, const SoftParams<T>& p) {
  int64_t t;
  int b, i, j;
  if (!tile_pixel(q, p, &t, &b, &i, &j)) return;
  const int64_t pix = ((int64_t)b * p.H + i) * p.W + j;
  if (p.covered[pix]) {
    p.s[pix] = 0;
    p.exp_s[pix] = 1;
    p.alpha[pix] = 1;
    return;
  }
  const T px = pixel_x(j, p.two_over_w) * p.iso_scale, py = pixel_y(i, p.two_over_h);
  const int64_t nfaces = (int64_t)p.B * p.F, e0 = p.tile_off[t], e1 = p.tile_off[t + 1];
  T prod = 1;
  for (int64_t e = e0; e < e1; ++e) {
    const int64_t n = p.entries[e] - t * nfaces;
    const T* tri = p.tri + n * TRI;
    T keep;
    if (in_box(p.box[n], i, j) && soft_keep_term(px, py, tri, p, &keep)) prod *= keep;
  }
  soft_pixel_out(p, pix, prod);
}

// exp(-x) and 1 - exp(-x), x > 0, each as accurately as its size allows: above x = 1/2 the
// (much cheaper) exp, below it expm1 (1 - exp(-x) cancels). Shared by the forward's product
// of 1 - p and the pair weight below, so both see the same two values.
template <typename T>
DIBR_HD void soft_p_terms(T x, T* e, T* om) {
  if (x > (T)0.5) {
    *e = m_exp(-x);
    *om = (T)1 - *e;
  } else {
    *om = -m_expm1(-x);
    *e = (T)1 - *om;
  }
}

// exp(S - L) * exp(-x) = prod_{j != k} (1 - p_j) * p_k for a face with p_k = exp(-x) at a pixel
// with S = sum_j log(1 - p_j), L = log(1 - p_k): exp(S) * p_k / (1 - p_k), with exp(S) (the product
// itself) from the forward pass and r = p_k / (1 - p_k) (soft_pair_ratio), so one exp (or expm1)
// per pair instead of exp, log and exp, and none where the forward saved r. Where exp(S) is near
// underflow (S < -60) the terms are recombined in the exponent instead.
template <typename T>
DIBR_HD bool soft_keep_term(T px, T py, const T* tri, const SoftParams<T>& p, T* keep) {
  if (beyond_cutoff(px, py, tri, p.cut2)) return false;
  const T d = tri_dist2(px, py, tri);
  if (!(d < p.cut2)) return false;
  T x = d / p.sigma;
  x = x < (T)MIN_X ? (T)MIN_X : x;
  T e;
  soft_p_terms(x, &e, keep);
  return true;
}

template <typename T>
DIBR_HD T soft_pair_ratio(T x) {
  T e, om;
  soft_p_terms(x, &e, &om);
  return e / om;
}

template <typename T>
DIBR_HD T soft_pair_weight_r(T x, T r, T s, T exp_s) {
  if (s < (T)-60) return m_exp((s - log1m_exp_neg(x)) - x);
  return exp_s * r;
}

template <typename T>
DIBR_HD T soft_pair_weight(T x, T s, T exp_s) {
  if (s < (T)-60) return m_exp((s - log1m_exp_neg(x)) - x);
  return exp_s * soft_pair_ratio(x);
}

// Backward (one index per band entry): dA/dd_k = -exp(S - L_k - x_k) / sigma for the
// uncovered pixels of the entry's tile, chained through the distance gradient to the face's
// three vertices, summed over the tile's pixels in row-major order. Then either one atomic add
// per vertex (GPU default: the order of those adds, hence the last bits, varies run to run) or
// one write to the entry's own pair slot (CPU, and GPU deterministic mode).
template <typename T>
DIBR_HD void soft_backward_body(int64_t e, const SoftParams<T>& p) {
  const BinEntry en = decode_entry(p.entries[e], p.B, p.F, p.tx, p.ty);
  const int64_t t = en.t, n = en.n;
  const int b = en.b, ti = en.ti, tj = en.tj;
  // Only the box of the tile's uncovered pixels (inside the tile) can contribute; the band
  // bins hold only faces whose box meets it.
  const PixBox c = box_intersect(p.tile_open[t], p.box[n]);
  const int i0 = c.i0, i1 = c.i1, j0 = c.j0, j1 = c.j1;
  T tri[TRI], acc[6] = {0, 0, 0, 0, 0, 0};
  for (int k = 0; k < TRI; ++k) tri[k] = p.tri[n * TRI + k];
  EdgeBound<T> eb;
  edge_bound(tri, p.cut2, p.iso_scale, &eb);
  for (int i = i0; i <= i1; ++i) {
    const T py = pixel_y(i, p.two_over_h);
    if (row_beyond_cutoff(py, tri, p.cut2)) continue;
    const int64_t row = ((int64_t)b * p.H + i) * p.W;
    for (int j = j0; j <= j1; ++j) {
      const int64_t pix = row + j;
      const T g = p.grad_alpha[pix];
      if (p.covered[pix] || g == 0) continue;
      const T px = pixel_x(j, p.two_over_w) * p.iso_scale;
      if (beyond_cutoff(px, py, tri, p.cut2) || beyond_edges(px, py, eb)) continue;
      T gd[6], d;
      if (!tri_dist2_grad_within(px, py, tri, p.cut2, &d, gd)) continue;
      T x = d / p.sigma;
      x = x < (T)MIN_X ? (T)MIN_X : x;
      const T coeff = -soft_pair_weight(x, p.s[pix], p.exp_s[pix]) / p.sigma * g;
      for (int k = 0; k < 6; ++k) acc[k] += coeff * gd[k];
    }
  }
  if (p.atomic_grad) {
    const int f = (int)(n % p.F);
    for (int k = 0; k < 3; ++k) {
      T* g = p.grad_xy + ((int64_t)b * p.V + p.faces[(int64_t)f * 3 + k]) * 2;
      atomic_add(g, acc[2 * k]);
      atomic_add(g + 1, acc[2 * k + 1]);
    }
  } else {
    const int64_t slot = band_slot(p, n, b, ti, tj);
    for (int k = 0; k < 6; ++k) p.pair_grad[slot * 6 + k] = acc[k];
  }
}

// Backward from the saved pairs (one index per band entry, CPU): the same sums as
// soft_backward_body, term for term and in the same order, read from the forward's records
// (which also give the pixels and the entry's pair slot: nothing to decode or search).
template <typename T>
DIBR_HD void soft_saved_backward_body(int64_t e, const SoftParams<T>& p) {
  const int64_t* span = p.pair_span + 3 * e;
  T acc[6] = {0, 0, 0, 0, 0, 0};
  for (int64_t q = span[0]; q < span[1]; ++q) {
    const T* r = p.pairs + q * PAIR;
    const int64_t pix = pair_pixel(r);
    const T g = p.grad_alpha[pix];
    if (g == 0) continue;
    const T w = soft_pair_weight_r(r[PAIR_X], r[PAIR_R], p.s[pix], p.exp_s[pix]);
    const T coeff = -w / p.sigma * g;
    for (int k = 0; k < 6; ++k) acc[k] += coeff * r[PAIR_G + k];
  }
  if (p.atomic_grad) {
    const BinEntry en = decode_entry(p.entries[e], p.B, p.F, p.tx, p.ty);
    const int f = (int)(en.n % p.F);
    for (int k = 0; k < 3; ++k) {
      T* gp = p.grad_xy + ((int64_t)en.b * p.V + p.faces[(int64_t)f * 3 + k]) * 2;
      atomic_add(gp, acc[2 * k]);
      atomic_add(gp + 1, acc[2 * k + 1]);
    }
  } else {
    for (int k = 0; k < 6; ++k) p.pair_grad[span[2] * 6 + k] = acc[k];
  }
}

// Deterministic reduction (one index per (image, vertex)): sum the pair slots of every corner
// of the vertex, corners in ascending order, a face's band tiles in row-major order.
template <typename T>
DIBR_HD void soft_gather_body(int64_t q, const SoftParams<T>& p) {
  const int b = (int)(q / p.V), v = (int)(q % p.V);
  T gx = 0, gy = 0;
  for (int64_t c = p.vert_ptr[v]; c < p.vert_ptr[v + 1]; ++c) {
    const int64_t corner = p.vert_corner[c];
    const int64_t n = (int64_t)b * p.F + corner / 3;
    const int k = (int)(corner % 3);
    const int64_t s0 = p.band_off[n], s1 = p.band_off[n + 1];
    for (int64_t s = s0; s < s1; ++s) {
      gx += p.pair_grad[s * 6 + 2 * k];
      gy += p.pair_grad[s * 6 + 2 * k + 1];
    }
  }
  p.grad_xy[q * 2] = gx;
  p.grad_xy[q * 2 + 1] = gy;
}

}  // namespace dibr
