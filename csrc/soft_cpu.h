// CPU-only soft-silhouette passes (the CPU driver runs them; nvcc still parses this header
// through raster_ops.h, so device builds see plain-loop fallbacks or, for the tile forward
// that the GPU driver never instantiates, an empty body): the forward of whole tiles,
// optionally saving each pixel-face pair for the backward (soft_saved_backward_body), the
// face setup and the coverage pass, a tile row of pixels at a time as 8-lane vectors, through
// cpu_range's AVX2 clones where the host has AVX2. Every lane is an exact IEEE operation of the
// scalar code in soft_kernels.h and dibr_math.h (no fused multiply-adds: the build uses
// -ffp-contract=off), so the results are the same bits as the shared bodies'.
#pragma once

#include <string.h>

#include "cpu_range.h"
#include "soft_kernels.h"

namespace dibr {

// Squared distances (tri_dist2) from the TILE pixels (px[q], py) of a tile row to triangle t,
// operation for operation as tri_dist2 computes them (so the same bits), all columns at once:
// with GCC's vector extensions on the host (lanes are exact IEEE operations), a plain loop in
// device code.
#if !defined(__CUDACC__)
template <typename T>
struct RowVec {
  typedef T type __attribute__((vector_size(TILE * sizeof(T))));
};

template <typename T, typename V = typename RowVec<T>::type>
__attribute__((always_inline)) inline void seg_dist2_row(const V& px, T py, T ax, T ay, T bx,
                                                         T by, V* out) {
  const T abx = bx - ax, aby = by - ay;
  const T len2 = abx * abx + aby * aby;
  const T den = len2 < (T)LEN2_MIN ? (T)LEN2_MIN : len2;
  const T pay = (py - ay) * aby;
  V t = ((px - ax) * abx + pay) / den;
  const V zero = V{} + (T)0, one = V{} + (T)1;
  t = t < zero ? zero : (t > one ? one : t);
  const V rx = px - (ax + t * abx);
  const V ry = py - (ay + t * aby);
  *out = rx * rx + ry * ry;
}
#endif

#if defined(__CUDACC__)
#define SOFT_ROW_INLINE DIBR_HD
#else
#define SOFT_ROW_INLINE __attribute__((always_inline)) inline  // into the AVX2 clone below
#endif

#if !defined(__CUDACC__)
// seg_dist2_grad for a row of pixels (lanes of px): the same operations, lane by lane.
template <typename T, typename V = typename RowVec<T>::type>
__attribute__((always_inline)) inline void seg_dist2_grad_row(const V& px, T py, T ax, T ay,
                                                              T bx, T by, V* d, V ga[2],
                                                              V gb[2]) {
  const T abx = bx - ax, aby = by - ay;
  const V apx = px - ax;
  const T apy = py - ay;
  const T len2 = abx * abx + aby * aby;
  const T den = len2 < (T)LEN2_MIN ? (T)LEN2_MIN : len2;
  const V zero = V{} + (T)0, one = V{} + (T)1;
  const V t0 = (apx * abx + apy * aby) / den;
  const V t = t0 < zero ? zero : (t0 > one ? one : t0);
  const V rx = px - (ax + t * abx), ry = py - (ay + t * aby);
  const V gqx = -(T)2 * rx, gqy = -(T)2 * ry;
  V gax = gqx, gay = gqy;
  V gabx = t * gqx, gaby = t * gqy;
  const V gt = gqx * abx + gqy * aby;
  const V gt0 = (t0 >= zero) & (t0 <= one) ? gt : zero;
  const V gnum = gt0 / den;
  const V gden = -gt0 * (t0 / den);
  gax -= gnum * abx;
  gay -= gnum * aby;
  gabx += gnum * apx;
  gaby += gnum * apy;
  const V glen2 = len2 >= (T)LEN2_MIN ? gden : zero;
  gabx += (T)2 * abx * glen2;
  gaby += (T)2 * aby * glen2;
  ga[0] = gax - gabx;
  ga[1] = gay - gaby;
  gb[0] = gabx;
  gb[1] = gaby;
  *d = rx * rx + ry * ry;
}

// tri_dist2_grad_within for a row of pixels: g[k][q] is the gradient of lane q (valid where
// its distance is below the cutoff), bit for bit what the scalar function gives (an edge that
// torch.minimum gives no weight contributes exactly +0 there, as the scalar one's zeros do).
template <typename T>
SOFT_ROW_INLINE void tri_dist2_grad_row(const T* pxs, T py, const T* t, T g[6][TILE]) {
  typedef typename RowVec<T>::type V;
  V px;
  memcpy(&px, pxs, sizeof(V));
  V s0, s1, s2, g0a[2], g0b[2], g1a[2], g1b[2], g2a[2], g2b[2];
  seg_dist2_grad_row<T>(px, py, t[0], t[1], t[2], t[3], &s0, g0a, g0b);
  seg_dist2_grad_row<T>(px, py, t[2], t[3], t[4], t[5], &s1, g1a, g1b);
  seg_dist2_grad_row<T>(px, py, t[4], t[5], t[0], t[1], &s2, g2a, g2b);
  const V zero = V{} + (T)0, one = V{} + (T)1, half = V{} + (T)0.5;
  const V m = s0 < s1 ? s0 : s1;
  V w0 = s0 < s1 ? one : (s0 == s1 ? half : zero);
  V w1 = s1 < s0 ? one : (s0 == s1 ? half : zero);
  const V w01 = m < s2 ? one : (m == s2 ? half : zero);
  const V w2 = s2 < m ? one : (m == s2 ? half : zero);
  w0 *= w01;
  w1 *= w01;
  for (int c = 0; c < 2; ++c) {
    g0a[c] = w0 != zero ? g0a[c] : zero;
    g0b[c] = w0 != zero ? g0b[c] : zero;
    g1a[c] = w1 != zero ? g1a[c] : zero;
    g1b[c] = w1 != zero ? g1b[c] : zero;
    g2a[c] = w2 != zero ? g2a[c] : zero;
    g2b[c] = w2 != zero ? g2b[c] : zero;
    const V r0 = w0 * g0a[c] + w2 * g2b[c];
    const V r1 = w0 * g0b[c] + w1 * g1a[c];
    const V r2 = w1 * g1b[c] + w2 * g2a[c];
    memcpy(g[c], &r0, sizeof(V));
    memcpy(g[2 + c], &r1, sizeof(V));
    memcpy(g[4 + c], &r2, sizeof(V));
  }
}
#endif

#if !defined(__CUDACC__)
// Bit q set where lane q of a row comparison holds.
template <typename M>
__attribute__((always_inline)) inline unsigned row_bits(const M& m) {
#if defined(__SSE2__)
  if constexpr (sizeof(m[0]) == 4) {  // the sign bits of the two 4-lane halves
    typedef float F4 __attribute__((vector_size(16)));
    F4 h[2];
    memcpy(h, &m, sizeof(h));
    return (unsigned)__builtin_ia32_movmskps(h[0]) | (unsigned)__builtin_ia32_movmskps(h[1]) << 4;
  } else {
    typedef double D2 __attribute__((vector_size(16)));
    D2 h[4];
    memcpy(h, &m, sizeof(h));
    return (unsigned)__builtin_ia32_movmskpd(h[0]) | (unsigned)__builtin_ia32_movmskpd(h[1]) << 2 |
           (unsigned)__builtin_ia32_movmskpd(h[2]) << 4 | (unsigned)__builtin_ia32_movmskpd(h[3]) << 6;
  }
#else
  unsigned bits = 0;
  for (int q = 0; q < TILE; ++q) bits |= (m[q] ? 1u : 0u) << q;
  return bits;
#endif
}
#endif

// Forward pass of a whole tile (CPU), after coverage and binning: the same per-pixel results
// as soft_forward_body, with the loops turned inside out (a face's setup is read once per
// tile, and only the open pixels of its box are visited); each pixel still multiplies its
// faces' 1 - p in ascending order. A tile row is one 8-lane vector: its distances (and, with
// Save, their gradients) for all columns at once, then a bit mask of the columns that count
// (in the face's box, uncovered, d < cut2), whose set bits are walked in ascending order, so
// no branch per column. With Save, each pair within the cutoff also gets a PAIR record in
// p.pairs from record rec0 on (room for every open pixel of the entries' boxes:
// soft_tile_bound), and entry e's records are pair_span[3e] ... pair_span[3e+1] - 1, its pair
// slot (band_slot) pair_span[3e+2]. Host only: the GPU driver runs soft_forward_body.
#if !defined(__CUDACC__)
template <typename T, bool Save>
__attribute__((always_inline)) inline void soft_tile_forward_impl(int64_t t, const SoftParams<T>& p,
                                                                  int64_t rec0,
                                                                  int64_t* pair_span) {
  typedef typename RowVec<T>::type V;
  const int tiles = p.tx * p.ty;
  const int b = (int)(t / tiles), tl = (int)(t % tiles);
  const int oi = (tl / p.tx) * TILE, oj = (tl % p.tx) * TILE;
  const int ni = p.H - oi < TILE ? p.H - oi : TILE, nj = p.W - oj < TILE ? p.W - oj : TILE;
  const int64_t nfaces = (int64_t)p.B * p.F, base = t * nfaces;
  const int64_t e0 = p.tile_off[t], e1 = p.tile_off[t + 1];
  const int64_t pix0 = ((int64_t)b * p.H + oi) * p.W + oj;  // the tile's first pixel
  const PixBox o = p.tile_open[t];
  T pxs[TILE], s[TILE_PIX];
  unsigned open[TILE];  // bit q of row i: pixel (oi + i, oj + q) is on the image, uncovered
  int64_t written = 0;
  for (int c = 0; c < TILE; ++c) pxs[c] = pixel_x(oj + c, p.two_over_w) * p.iso_scale;
  V px;
  memcpy(&px, pxs, sizeof(V));
  for (int i = 0; i < TILE; ++i) {
    open[i] = 0;
    for (int j = 0; j < TILE; ++j) {
      if (i < ni && j < nj && !p.covered[pix0 + (int64_t)i * p.W + j]) open[i] |= 1u << j;
      s[i * TILE + j] = 1;  // the product of the pixel's 1 - p
    }
  }
  const V cut2 = V{} + p.cut2, min_x = V{} + (T)MIN_X;
  for (int64_t e = e0; e < e1; ++e) {
    const int64_t n = p.entries[e] - base;
    const PixBox c = box_intersect(o, p.box[n]);
    const int64_t first = written;
    if (c.j0 <= c.j1) {
      T tri[TRI];
      for (int k = 0; k < TRI; ++k) tri[k] = p.tri[n * TRI + k];
      // Columns [j0, j1] of the box, as bits of the tile's columns.
      const unsigned cols = (2u << (c.j1 - oj)) - (1u << (c.j0 - oj));
      for (int i = c.i0; i <= c.i1; ++i) {
        const unsigned want = open[i - oi] & cols;
        if (!want) continue;
        const T py = pixel_y(i, p.two_over_h);
        if (row_beyond_cutoff(py, tri, p.cut2)) continue;
        // The distances as tri_dist2 computes them (soft_keep_term's cheap bounds only ever
        // skip pairs that fail d < cut2, so they are left out here), and x = d / sigma.
        V s0, s1, s2;
        seg_dist2_row<T>(px, py, tri[0], tri[1], tri[2], tri[3], &s0);
        seg_dist2_row<T>(px, py, tri[2], tri[3], tri[4], tri[5], &s1);
        seg_dist2_row<T>(px, py, tri[4], tri[5], tri[0], tri[1], &s2);
        const V m = s0 < s1 ? s0 : s1;
        const V d = m < s2 ? m : s2;
        unsigned k = want & row_bits(d < cut2);
        if (!k) continue;
        const V xq = d / p.sigma;
        const V x = xq < min_x ? min_x : xq;
        T grow[6][TILE];
        if constexpr (Save) tri_dist2_grad_row(pxs, py, tri, grow);
        const int l0 = (i - oi) * TILE;
        do {
          const int q = __builtin_ctz(k);
          k &= k - 1;
          T ex, om;
          soft_p_terms(x[q], &ex, &om);
          s[l0 + q] *= om;
          if constexpr (Save) {
            T* r = const_cast<T*>(p.pairs) + (rec0 + written) * PAIR;
            pair_put_pixel(r, (int32_t)(pix0 + (int64_t)(i - oi) * p.W + q));
            r[PAIR_X] = x[q];
            r[PAIR_R] = ex / om;  // soft_pair_ratio(x)
            for (int g = 0; g < 6; ++g) r[PAIR_G + g] = grow[g][q];
            ++written;
          }
        } while (k);
      }
    }
    if constexpr (Save) {
      pair_span[3 * e] = rec0 + first;
      pair_span[3 * e + 1] = rec0 + written;
      pair_span[3 * e + 2] = p.band_off[n] + p.entry_rank[e];
    }
  }
  for (int i = 0; i < ni; ++i) {
    const int64_t row = pix0 + (int64_t)i * p.W;
    for (int j = 0; j < nj; ++j) {
      const int l = i * TILE + j;
      if (!(open[i] >> j & 1u)) {
        p.s[row + j] = 0;
        p.exp_s[row + j] = 1;
        p.alpha[row + j] = 1;
      } else {
        soft_pixel_out(p, row + j, s[l]);
      }
    }
  }
}
#endif

// The forward of tiles [t0, t1) (CPU; with Save, tile t's records from rec0[t] on), through
// cpu_range's AVX2 clone where the host has it: a tile row's distances take one 8-lane
// instruction per operation, the same IEEE operations, hence the same bits. Never
// instantiated for the GPU (its driver runs soft_forward_body): nvcc sees an empty body.
template <typename T, bool Save>
void soft_tiles_forward(int64_t t0, int64_t t1, const SoftParams<T>& p, const int64_t* rec0,
                        int64_t* pair_span) {
#if !defined(__CUDACC__)
  cpu_range(t0, t1, [&](int64_t t) {
    soft_tile_forward_impl<T, Save>(t, p, Save ? rec0[t] : 0, pair_span);
  });
#endif
}

// Setup of faces [n0, n1) (CPU): soft_setup_body, through cpu_range's AVX2 clone where the
// host has it (so the pixel boxes' ceil and floor are single rounding instructions: the same
// values).
template <typename T>
void soft_setups(int64_t n0, int64_t n1, const SoftParams<T>& p) {
#if !defined(__CUDACC__)
  cpu_range(n0, n1, [&](int64_t n) { soft_setup_body(n, p); });
#else
  for (int64_t n = n0; n < n1; ++n) soft_setup_body(n, p);
#endif
}

// Coverage of faces [n0, n1) (CPU): soft_cover_body, a row of up to TILE pixels at a time with
// the edge functions as 8-lane vectors (the same operations as point_in_triangle: the same
// flags); an AVX2 clone where the host has it.
template <typename T>
SOFT_ROW_INLINE void soft_cover_row_impl(int64_t n, const SoftParams<T>& p) {
#if !defined(__CUDACC__)
  typedef typename RowVec<T>::type V;
  typedef decltype(V{} < V{}) M;
  const PixBox c = p.inner[n];
  if (c.j0 > c.j1) return;
  const int b = (int)(n / p.F);
  const T* t = p.tri + n * TRI;
  const T ux0 = t[2] - t[0], uy0 = t[3] - t[1];
  const T ux1 = t[4] - t[2], uy1 = t[5] - t[3];
  const T ux2 = t[0] - t[4], uy2 = t[1] - t[5];
  const bool area = cross2(t[2] - t[0], t[3] - t[1], t[4] - t[0], t[5] - t[1]) != (T)0;
  if (!area) return;  // a zero-area triangle has no inside
  const V zero = V{} + (T)0;
  for (int j0 = c.j0; j0 <= c.j1; j0 += TILE) {
    T xs[TILE];
    for (int q = 0; q < TILE; ++q) xs[q] = pixel_x(j0 + q, p.two_over_w) * p.iso_scale;
    V px;
    memcpy(&px, xs, sizeof(V));
    const V vx0 = px - t[0], vx1 = px - t[2], vx2 = px - t[4];
    const int nq = c.j1 - j0 + 1 < TILE ? c.j1 - j0 + 1 : TILE;
    for (int i = c.i0; i <= c.i1; ++i) {
      const T py = pixel_y(i, p.two_over_h);
      // cross2(u, v) = ux * vy - uy * vx, v = p - vertex
      const V e0 = ux0 * (py - t[1]) - uy0 * vx0;
      const V e1 = ux1 * (py - t[3]) - uy1 * vx1;
      const V e2 = ux2 * (py - t[5]) - uy2 * vx2;
      const M in = ((e0 >= zero) & (e1 >= zero) & (e2 >= zero)) |
                   ((e0 <= zero) & (e1 <= zero) & (e2 <= zero));
      bool* row = p.covered + ((int64_t)b * p.H + i) * p.W + j0;
      for (int q = 0; q < nq; ++q)
        if (in[q]) atomic_set_flag(row + q);
    }
  }
#else
  soft_cover_body(n, p);
#endif
}

template <typename T>
void soft_covers(int64_t n0, int64_t n1, const SoftParams<T>& p) {
#if !defined(__CUDACC__)
  cpu_range(n0, n1, [&](int64_t n) { soft_cover_row_impl(n, p); });
#else
  for (int64_t n = n0; n < n1; ++n) soft_cover_row_impl(n, p);
#endif
}

// Open boxes of tiles [t0, t1) (CPU): soft_open_body, a row of the coverage at a time instead
// of a division per pixel (box_add is a min/max: the same box in any order).
template <typename T>
void soft_opens(int64_t t0, int64_t t1, const SoftParams<T>& p) {
  const int tiles = p.tx * p.ty;
  for (int64_t t = t0; t < t1; ++t) {
    const int b = (int)(t / tiles), tl = (int)(t % tiles);
    const int oi = (tl / p.tx) * TILE, oj = (tl % p.tx) * TILE;
    const int ni = p.H - oi < TILE ? p.H - oi : TILE, nj = p.W - oj < TILE ? p.W - oj : TILE;
    PixBox o = empty_box();
    for (int i = 0; i < ni; ++i) {
      const bool* row = p.covered + ((int64_t)b * p.H + oi + i) * p.W + oj;
      for (int j = 0; j < nj; ++j)
        if (!row[j]) box_add(&o, oi + i, oj + j);
    }
    p.tile_open[t] = o;
  }
}

// Room soft_tile_forward_impl<T, true> may need for tile t: open pixels of its entries' boxes.
template <typename T>
DIBR_HD int64_t soft_tile_bound(int64_t t, const SoftParams<T>& p) {
  const int64_t nfaces = (int64_t)p.B * p.F, base = t * nfaces;
  const PixBox o = p.tile_open[t];
  int64_t k = 0;
  for (int64_t e = p.tile_off[t]; e < p.tile_off[t + 1]; ++e) {
    const PixBox c = box_intersect(o, p.box[p.entries[e] - base]);
    if (c.j0 <= c.j1 && c.i0 <= c.i1) k += (int64_t)(c.j1 - c.j0 + 1) * (c.i1 - c.i0 + 1);
  }
  return k;
}

}  // namespace dibr
