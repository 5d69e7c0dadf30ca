// Kernel bodies, each written once as a function of (index, params struct). The CUDA driver
// wraps every body in a one-line __global__ kernel; the CPU driver calls the same function for
// each index inside at::parallel_for (or a serial loop where noted).
//
// Layout shared by all kernels:
// * "face" n in [0, N), N = B*F, is face n % F of image n / F (images share the faces array);
// * "tile" t in [0, B*TY*TX) is tile (t % (TY*TX)) of image t / (TY*TX), TILE x TILE pixels;
// * the bin of a tile is a sorted run of int64 entry keys t*N + n in entries[tile_off[t] ..
//   tile_off[t+1]), ascending in n (count -> exclusive scan -> fill, then sorted on the GPU);
// * a face's "pairs" are the tiles of its tile box, numbered row-major from pair_off[n]: the
//   deterministic backward writes one slot per pair and reduces the slots in that fixed order.
#pragma once

#include "dibr_math.h"

namespace dibr {

// Inclusive pixel box of a face; empty (j0 > j1) for rejected faces.
struct PixBox {
  int j0, j1, i0, i1;
};

DIBR_HD PixBox empty_box() { return PixBox{0, -1, 0, -1}; }

// Conservative pixel box of three NDC points, grown by grow_px and one more pixel so that
// rounding never drops a pixel the exact test accepts (as the reference's boxes).
DIBR_HD PixBox pixel_box(const double* x, const double* y, int H, int W, double grow_px) {
  double cmin = 1e300, cmax = -1e300, rmin = 1e300, rmax = -1e300;
  const double big = (double)(H > W ? H : W) + 8.0;
  for (int k = 0; k < 3; ++k) {
    double c = (x[k] + 1.0) * (W / 2.0) - 0.5, r = (1.0 - y[k]) * (H / 2.0) - 0.5;
    c = c != c ? -big : (c < -big ? -big : (c > big ? big : c));  // NaN -> off screen
    r = r != r ? -big : (r < -big ? -big : (r > big ? big : r));
    cmin = c < cmin ? c : cmin;
    cmax = c > cmax ? c : cmax;
    rmin = r < rmin ? r : rmin;
    rmax = r > rmax ? r : rmax;
  }
  PixBox b;
  b.j0 = (int)ceil(cmin - grow_px) - 1;
  b.j1 = (int)floor(cmax + grow_px) + 1;
  b.i0 = (int)ceil(rmin - grow_px) - 1;
  b.i1 = (int)floor(rmax + grow_px) + 1;
  b.j0 = b.j0 < 0 ? 0 : b.j0;
  b.i0 = b.i0 < 0 ? 0 : b.i0;
  b.j1 = b.j1 > W - 1 ? W - 1 : b.j1;
  b.i1 = b.i1 > H - 1 ? H - 1 : b.i1;
  if (b.j0 > b.j1 || b.i0 > b.i1) return empty_box();
  return b;
}

DIBR_HD int box_tiles(const PixBox& b) {
  if (b.j0 > b.j1) return 0;
  return (b.j1 / TILE - b.j0 / TILE + 1) * (b.i1 / TILE - b.i0 / TILE + 1);
}

// ------------------------------------------------------------------------------------------
// Binning: faces -> tiles.
// ------------------------------------------------------------------------------------------
struct BinParams {
  const PixBox* box;      // [N] pixel box of each face (empty if rejected)
  int64_t nfaces;         // N = B*F, faces of all images
  int faces_per_image;    // F
  int tx, ty;             // tiles per image row (TX) and column (TY)
  int* tile_count;        // [B*TY*TX] count pass: entries per tile (zeroed by the driver)
  int* tile_cursor;       // [B*TY*TX] fill pass: next free slot, starts at the tile offset
  int64_t* entries;       // [P] fill pass: entry keys t*N + n
};

DIBR_HD int64_t tile_of(const BinParams& p, int64_t n, int ti, int tj) {
  return (n / p.faces_per_image) * (int64_t)p.tx * p.ty + (int64_t)ti * p.tx + tj;
}

// Count pass (one index per face). On the CPU it runs serially (see atomic_fetch_inc).
DIBR_HD void bin_count_body(int64_t n, const BinParams& p) {
  const PixBox b = p.box[n];
  if (b.j0 > b.j1) return;
  for (int ti = b.i0 / TILE; ti <= b.i1 / TILE; ++ti)
    for (int tj = b.j0 / TILE; tj <= b.j1 / TILE; ++tj)
      atomic_fetch_inc(&p.tile_count[tile_of(p, n, ti, tj)]);
}

// Fill pass (one index per face). Serial on the CPU, so each bin comes out in ascending face
// order; on the GPU the order within a bin depends on scheduling and the driver sorts.
DIBR_HD void bin_fill_body(int64_t n, const BinParams& p) {
  const PixBox b = p.box[n];
  if (b.j0 > b.j1) return;
  for (int ti = b.i0 / TILE; ti <= b.i1 / TILE; ++ti)
    for (int tj = b.j0 / TILE; tj <= b.j1 / TILE; ++tj) {
      const int64_t t = tile_of(p, n, ti, tj);
      p.entries[atomic_fetch_inc(&p.tile_cursor[t])] = t * p.nfaces + n;
    }
}

// ------------------------------------------------------------------------------------------
// Visibility (z-buffer), float32 like the reference.
// ------------------------------------------------------------------------------------------
struct VisFace {
  float e[3][3];  // homogeneous edge coefficients, row k = V_{k+1} x V_{k+2}
  float z[3];     // clip z of the vertices
  float w[3];     // clip w of the vertices
};

struct VisParams {
  const float* clip;        // [B,V,4] clip-space vertices, contiguous
  const int64_t* faces;     // [F,3] vertex indices
  int B, V, F, H, W;        // batch, vertices, faces per image, image height and width
  int tx, ty;               // tiles per image row and column
  float two_over_w;         // float32(2/W): pixel pitch in NDC x (as the reference rounds it)
  float two_over_h;         // float32(2/H): pixel pitch in NDC y
  float half_w, half_h;     // float32(W/2), float32(H/2): NDC -> pixel scale of the area cull
  VisFace* fdata;           // [N] setup output: edge functions and depths
  PixBox* box;              // [N] setup output: pixel box (empty when the face is rejected)
  const int64_t* entries;   // [P] binned (tile, face) entries, see the header comment
  const int64_t* tile_off;  // [B*TY*TX+1] start of each tile's entries (tile body)
  u64* zbuf;                // [B*H*W] nearest key per pixel, initialised to KEY_BG (GPU)
  int64_t* face_idx;        // [B*H*W] finalize output: face index or -1
};

// Setup (one index per face): reject faces with w <= W_EPS or non-finite coordinates, cull
// slivers below AREA_EPS_PX pixels^2, compute edge functions and the pixel box.
DIBR_HD void vis_setup_body(int64_t n, const VisParams& p) {
  const int b = (int)(n / p.F), f = (int)(n % p.F);
  float v[3][3], z[3];
  bool ok = true;
  for (int k = 0; k < 3; ++k) {
    const float* c = p.clip + ((int64_t)b * p.V + p.faces[(int64_t)f * 3 + k]) * 4;
    v[k][0] = c[0];
    v[k][1] = c[1];
    v[k][2] = c[3];
    z[k] = c[2];
    ok = ok && c[3] > W_EPS && isfinite(c[0]) && isfinite(c[1]) && isfinite(c[2]) &&
         isfinite(c[3]);
  }
  p.box[n] = empty_box();
  if (!ok) return;
  float nx[3], ny[3];
  for (int k = 0; k < 3; ++k) {
    nx[k] = v[k][0] / v[k][2];
    ny[k] = v[k][1] / v[k][2];
  }
  const float cross = (nx[1] - nx[0]) * (ny[2] - ny[0]) - (ny[1] - ny[0]) * (nx[2] - nx[0]);
  const float area = 0.5f * cross * p.half_w * p.half_h;
  if (!(fabsf(area) >= AREA_EPS_PX)) return;
  VisFace& fd = p.fdata[n];
  homogeneous_edges(v, fd.e);
  for (int k = 0; k < 3; ++k) {
    fd.z[k] = z[k];
    fd.w[k] = v[k][2];
  }
  const double dx[3] = {nx[0], nx[1], nx[2]}, dy[3] = {ny[0], ny[1], ny[2]};
  p.box[n] = pixel_box(dx, dy, p.H, p.W, 0.0);
}

// Fragment of a face at pixel centre (px, py): true with its NDC depth *z when the pixel is
// inside (edges inclusive, the sign of the edge sum decides the orientation) and -1 <= z <= 1.
// Branch-free, so the CPU tile loop over a row of pixels vectorizes; when num_w == 0 the
// quotient is inf/NaN and the result false, as in the reference.
DIBR_HD bool vis_fragment(const VisFace& fd, float px, float py, float* z) {
  const float e0 = edge_eval(fd.e[0], px, py);
  const float e1 = edge_eval(fd.e[1], px, py);
  const float e2 = edge_eval(fd.e[2], px, py);
  const float den = (e0 + e1) + e2;
  const bool pos = (e0 >= 0) & (e1 >= 0) & (e2 >= 0) & (den > 0);
  const bool neg = (e0 <= 0) & (e1 <= 0) & (e2 <= 0) & (den < 0);
  const float num_w = (e0 * fd.w[0] + e1 * fd.w[1]) + e2 * fd.w[2];
  const float num_z = (e0 * fd.z[0] + e1 * fd.z[1]) + e2 * fd.z[2];
  const float zz = num_z / num_w;
  *z = zz;
  return (pos | neg) & (num_w != 0) & (zz >= -1.0f) & (zz <= 1.0f);
}

// Depth-test one face on the pixels [i0, i1] x [j0, j1] of the global z-buffer of one image.
DIBR_HD void vis_raster_span(const VisFace& fd, uint32_t face, int i0, int i1, int j0, int j1,
                             u64* zb, int stride, const VisParams& p) {
  for (int i = i0; i <= i1; ++i) {
    const float py = pixel_y(i, p.two_over_h);
    u64* row = zb + (int64_t)i * stride;
    for (int j = j0; j <= j1; ++j) {
      float z;
      if (vis_fragment(fd, pixel_x(j, p.two_over_w), py, &z))
        atomic_min_u64(row + j, depth_key(z, face));
    }
  }
}

// Raster (one index per bin entry, GPU): depth-test the face on the pixels of its tile; entries
// of one tile meet in the global z-buffer's atomicMin, and vis_finalize_body reads it out.
DIBR_HD void vis_raster_body(int64_t e, const VisParams& p) {
  const int64_t key = p.entries[e];
  const int64_t nfaces = (int64_t)p.B * p.F;
  const int64_t t = key / nfaces, n = key % nfaces;
  const int tiles = p.tx * p.ty;
  const int b = (int)(t / tiles), tl = (int)(t % tiles);
  const int ti = tl / p.tx, tj = tl % p.tx;
  const PixBox bx = p.box[n];
  const int i0 = ti * TILE > bx.i0 ? ti * TILE : bx.i0;
  const int i1 = ti * TILE + TILE - 1 < bx.i1 ? ti * TILE + TILE - 1 : bx.i1;
  const int j0 = tj * TILE > bx.j0 ? tj * TILE : bx.j0;
  const int j1 = tj * TILE + TILE - 1 < bx.j1 ? tj * TILE + TILE - 1 : bx.j1;
  vis_raster_span(p.fdata[n], (uint32_t)(n % p.F), i0, i1, j0, j1,
                  p.zbuf + (int64_t)b * p.H * p.W, p.W, p);
}

// Finalize (one index per pixel, GPU): key -> face index.
DIBR_HD void vis_finalize_body(int64_t q, const VisParams& p) {
  const u64 k = p.zbuf[q];
  p.face_idx[q] = k == KEY_BG ? -1 : (int64_t)(k & 0xFFFFFFFFull);
}

// Signed 32-bit depth order: the order of orderable_bits (so of the keys' high words), as a
// signed integer compare (-0 sorts just below +0); INT32_MAX is above every finite depth.
DIBR_HD int32_t depth_order(float z) {
  const int32_t s = (int32_t)(orderable_bits(z) ^ 0x80000000u);
  return s;
}

// Raster + finalize of a whole tile (one index per tile, CPU): the tile's bin against a
// TILE x TILE z-buffer of its own, then its face indices. The bin is in ascending face order,
// so a later face only wins by being strictly nearer: the same minimum of the 64-bit keys
// (depth, face) as the per-entry body, kept as a 32-bit depth order and a face index.
DIBR_HD void vis_tile_body(int64_t t, const VisParams& p) {
  const int tiles = p.tx * p.ty;
  const int b = (int)(t / tiles), tl = (int)(t % tiles);
  const int oi = (tl / p.tx) * TILE, oj = (tl % p.tx) * TILE;
  int32_t zo[TILE_PIX], fi[TILE_PIX];
  for (int l = 0; l < TILE_PIX; ++l) {
    zo[l] = 0x7FFFFFFF;
    fi[l] = -1;
  }
  float px[TILE];
  for (int c = 0; c < TILE; ++c) px[c] = pixel_x(oj + c, p.two_over_w);
  const int64_t nfaces = (int64_t)p.B * p.F, base = t * nfaces;
  const int64_t e1 = p.tile_off[t + 1];
  for (int64_t e = p.tile_off[t]; e < e1; ++e) {
    const int64_t n = p.entries[e] - base;
    const PixBox bx = p.box[n];
    const VisFace fd = p.fdata[n];
    const int32_t face = (int32_t)(n - (int64_t)b * p.F);
    const int i0 = oi > bx.i0 ? oi : bx.i0;
    const int i1 = oi + TILE - 1 < bx.i1 ? oi + TILE - 1 : bx.i1;
    const int c0 = bx.j0 - oj, c1 = bx.j1 - oj;
    for (int i = i0; i <= i1; ++i) {
      const float py = pixel_y(i, p.two_over_h);
      int32_t* zr = zo + (i - oi) * TILE;
      int32_t* fr = fi + (i - oi) * TILE;
      for (int c = 0; c < TILE; ++c) {
        float z;
        const bool ok = vis_fragment(fd, px[c], py, &z) & (c >= c0) & (c <= c1);
        const int32_t k = depth_order(z);
        const bool win = ok & (k < zr[c]);
        zr[c] = win ? k : zr[c];
        fr[c] = win ? face : fr[c];
      }
    }
  }
  const int ni = p.H - oi < TILE ? p.H - oi : TILE, nj = p.W - oj < TILE ? p.W - oj : TILE;
  for (int i = 0; i < ni; ++i) {
    int64_t* out = p.face_idx + ((int64_t)b * p.H + oi + i) * p.W + oj;
    for (int j = 0; j < nj; ++j) out[j] = fi[i * TILE + j];
  }
}

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
  PixBox* inner;            // [N] setup output: pixel box of the triangle itself (covered pass)
  const int64_t* entries;   // [P] binned (tile, face) entries
  const int64_t* tile_off;  // [B*TY*TX+1] start of each tile's entries
  const int64_t* pair_off;  // [N] first pair slot of each face (backward)
  T* s;                     // [B*H*W] forward: sum of log(1 - p_j) over uncovered pixels
  T* alpha;                 // [B*H*W] forward output
  bool* covered;            // [B*H*W] forward: pixel inside some valid face (alpha = 1)
  PixBox* tile_open;        // [B*TY*TX] forward: box of each tile's uncovered pixels (empty:
                            //   the backward pass skips the tile)
  const T* grad_alpha;      // [B*H*W] backward: upstream gradient
  T* grad_xy;               // [B,V,2] backward (atomic mode): accumulated gradient
  T* pair_grad;             // [P,6] backward (deterministic mode): per pair vertex gradients
  bool atomic_grad;         // backward: add into grad_xy with atomics instead of pair_grad
  const int64_t* vert_ptr;  // [V+1] gather: start of each vertex's corners in vert_corner
  const int64_t* vert_corner;  // [3F] gather: corners f*3+k of each vertex, ascending
};

constexpr int TRI = 10;  // scalars per face in SoftParams::tri

// Setup (one index per face): gather the triangle, grow its pixel box by the cutoff.
template <typename T>
DIBR_HD void soft_setup_body(int64_t n, const SoftParams<T>& p) {
  const int b = (int)(n / p.F), f = (int)(n % p.F);
  T* t = p.tri + n * TRI;
  double x[3], y[3];
  for (int k = 0; k < 3; ++k) {
    const T* v = p.xy + ((int64_t)b * p.V + p.faces[(int64_t)f * 3 + k]) * 2;
    t[2 * k] = v[0];
    t[2 * k + 1] = v[1];
    x[k] = (double)v[0] * ((double)p.H / p.W);  // back to NDC for the pixel box
    y[k] = (double)v[1];
  }
  for (int c = 0; c < 2; ++c) {
    const T a = t[c], b2 = t[2 + c], c2 = t[4 + c];
    const T lo = a < b2 ? a : b2, hi = a > b2 ? a : b2;
    t[6 + 2 * c] = lo < c2 ? lo : c2;
    t[7 + 2 * c] = hi > c2 ? hi : c2;
  }
  p.box[n] = p.valid[n] ? pixel_box(x, y, p.H, p.W, p.grow_px) : empty_box();
  p.inner[n] = p.valid[n] ? pixel_box(x, y, p.H, p.W, 0.0) : empty_box();
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

// Covered pass (one index per bin entry): mark the tile's pixels inside the face. The CPU runs
// a tile's entries on one thread; on the GPU concurrent writers only ever store `true`.
template <typename T>
DIBR_HD void soft_covered_body(int64_t e, const SoftParams<T>& p) {
  const int64_t key = p.entries[e];
  const int64_t nfaces = (int64_t)p.B * p.F;
  const int64_t t = key / nfaces, n = key % nfaces;
  const int tiles = p.tx * p.ty;
  const int b = (int)(t / tiles), tl = (int)(t % tiles);
  const int ti = tl / p.tx, tj = tl % p.tx;
  const PixBox bx = p.inner[n];
  const int i0 = ti * TILE > bx.i0 ? ti * TILE : bx.i0;
  const int i1 = ti * TILE + TILE - 1 < bx.i1 ? ti * TILE + TILE - 1 : bx.i1;
  const int j0 = tj * TILE > bx.j0 ? tj * TILE : bx.j0;
  const int j1 = tj * TILE + TILE - 1 < bx.j1 ? tj * TILE + TILE - 1 : bx.j1;
  const T* tri = p.tri + n * TRI;
  for (int i = i0; i <= i1; ++i) {
    const T py = pixel_y(i, p.two_over_h);
    const int64_t row = ((int64_t)b * p.H + i) * p.W;
    for (int j = j0; j <= j1; ++j) {
      const T px = pixel_x(j, p.two_over_w) * p.iso_scale;
      if (point_in_triangle(px, py, tri)) p.covered[row + j] = true;
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

// Open pixels (one index per tile): the box of the tile's uncovered pixels, so the backward
// pass skips the entries of fully covered tiles (most of a mesh's interior) at once, and the
// covered rows and columns of the others.
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

// log(1 - p) of a face at pixel (px, py), p = exp(-d / sigma): false when the face does not
// count there (d >= cut2, checked first against its bounding box). Shared by both forward
// bodies, so the per-pixel sums are the same on both devices.
template <typename T>
DIBR_HD bool soft_log_term(T px, T py, const T* tri, const SoftParams<T>& p, T* log_q,
                           const EdgeBound<T>* eb = nullptr) {
  if (beyond_cutoff(px, py, tri, p.cut2)) return false;
  if (eb && beyond_edges(px, py, *eb)) return false;
  const T d = tri_dist2(px, py, tri);
  if (!(d < p.cut2)) return false;
  T x = d / p.sigma;
  x = x < (T)MIN_X ? (T)MIN_X : x;
  *log_q = log1m_exp_neg(x);
  return true;
}

// Forward (one index per pixel, tile-major), after the covered pass: a gather over the
// pixel's bin, so no atomics and the sum runs in ascending face order on both devices (the
// reference's order, too). Covered pixels are 1 whatever the sum: their log/exp terms are
// never evaluated.
template <typename T>
DIBR_HD void soft_forward_body(int64_t q, const SoftParams<T>& p) {
  int64_t t;
  int b, i, j;
  if (!tile_pixel(q, p, &t, &b, &i, &j)) return;
  const int64_t pix = ((int64_t)b * p.H + i) * p.W + j;
  if (p.covered[pix]) {
    p.s[pix] = 0;
    p.alpha[pix] = 1;
    return;
  }
  const T px = pixel_x(j, p.two_over_w) * p.iso_scale, py = pixel_y(i, p.two_over_h);
  const int64_t nfaces = (int64_t)p.B * p.F, e0 = p.tile_off[t], e1 = p.tile_off[t + 1];
  T s = 0;
  for (int64_t e = e0; e < e1; ++e) {
    const int64_t n = p.entries[e] - t * nfaces;
    const T* tri = p.tri + n * TRI;
    T log_q;
    if (in_box(p.box[n], i, j) && soft_log_term(px, py, tri, p, &log_q)) s += log_q;
  }
  const T a = s == 0 ? -s : -m_expm1(s);  // expm1(0) is 0: most of the image
  p.s[pix] = s;
  p.alpha[pix] = a < 0 ? (T)0 : (a > 1 ? (T)1 : a);
}

// Covered pass, open count and forward pass of a whole tile (one index per tile, CPU): the
// same per-pixel results as soft_covered_body, soft_open_body and soft_forward_body, with the
// loops turned inside out (a face's setup is read once per tile, and only the pixels of its
// box are visited); each pixel still sums its faces in ascending order.
template <typename T>
DIBR_HD void soft_tile_forward_body(int64_t t, const SoftParams<T>& p) {
  const int tiles = p.tx * p.ty;
  const int b = (int)(t / tiles), tl = (int)(t % tiles);
  const int oi = (tl / p.tx) * TILE, oj = (tl % p.tx) * TILE;
  const int ni = p.H - oi < TILE ? p.H - oi : TILE, nj = p.W - oj < TILE ? p.W - oj : TILE;
  const int64_t nfaces = (int64_t)p.B * p.F, base = t * nfaces;
  const int64_t e0 = p.tile_off[t], e1 = p.tile_off[t + 1];
  T px[TILE], s[TILE_PIX];
  bool cov[TILE_PIX];
  for (int c = 0; c < TILE; ++c) px[c] = pixel_x(oj + c, p.two_over_w) * p.iso_scale;
  for (int l = 0; l < TILE_PIX; ++l) {
    cov[l] = false;
    s[l] = 0;
  }
  for (int64_t e = e0; e < e1; ++e) {
    const int64_t n = p.entries[e] - base;
    const PixBox bx = p.inner[n];
    const int i0 = oi > bx.i0 ? oi : bx.i0, i1 = oi + ni - 1 < bx.i1 ? oi + ni - 1 : bx.i1;
    const int j0 = oj > bx.j0 ? oj : bx.j0, j1 = oj + nj - 1 < bx.j1 ? oj + nj - 1 : bx.j1;
    const T* tri = p.tri + n * TRI;
    for (int i = i0; i <= i1; ++i) {
      const T py = pixel_y(i, p.two_over_h);
      bool* row = cov + (i - oi) * TILE - oj;
      for (int j = j0; j <= j1; ++j) row[j] = row[j] | point_in_triangle(px[j - oj], py, tri);
    }
  }
  PixBox o = empty_box();
  for (int i = 0; i < ni; ++i)
    for (int j = 0; j < nj; ++j)
      if (!cov[i * TILE + j]) box_add(&o, oi + i, oj + j);
  if (o.j0 <= o.j1) {
    for (int64_t e = e0; e < e1; ++e) {
      const int64_t n = p.entries[e] - base;
      const PixBox bx = p.box[n];
      const int i0 = o.i0 > bx.i0 ? o.i0 : bx.i0, i1 = o.i1 < bx.i1 ? o.i1 : bx.i1;
      const int j0 = o.j0 > bx.j0 ? o.j0 : bx.j0, j1 = o.j1 < bx.j1 ? o.j1 : bx.j1;
      T tri[TRI];
      for (int k = 0; k < TRI; ++k) tri[k] = p.tri[n * TRI + k];
      EdgeBound<T> eb;
      edge_bound(tri, p.cut2, p.iso_scale, &eb);
      for (int i = i0; i <= i1; ++i) {
        const T py = pixel_y(i, p.two_over_h);
        if (row_beyond_cutoff(py, tri, p.cut2)) continue;
        for (int j = j0; j <= j1; ++j) {
          const int l = (i - oi) * TILE + (j - oj);
          T log_q;
          if (!cov[l] && soft_log_term(px[j - oj], py, tri, p, &log_q, &eb)) s[l] += log_q;
        }
      }
    }
  }
  for (int i = 0; i < ni; ++i) {
    const int64_t row = ((int64_t)b * p.H + oi + i) * p.W + oj;
    for (int j = 0; j < nj; ++j) {
      const int l = i * TILE + j;
      p.covered[row + j] = cov[l];
      if (cov[l]) {
        p.s[row + j] = 0;
        p.alpha[row + j] = 1;
      } else {
        const T a = s[l] == 0 ? -s[l] : -m_expm1(s[l]);  // expm1(0) is 0: most of the image
        p.s[row + j] = s[l];
        p.alpha[row + j] = a < 0 ? (T)0 : (a > 1 ? (T)1 : a);
      }
    }
  }
  p.tile_open[t] = o;
}

// Backward (one index per bin entry): dA/dd_k = -exp(S - L_k - x_k) / sigma for the
// uncovered pixels of the entry's tile, chained through the distance gradient to the face's
// three vertices, summed over the tile's pixels in row-major order. Then either one atomic add
// per vertex (GPU default: the order of those adds, hence the last bits, varies run to run) or
// one write to the entry's own pair slot (CPU, and GPU deterministic mode).
template <typename T>
DIBR_HD void soft_backward_body(int64_t e, const SoftParams<T>& p) {
  const int64_t key = p.entries[e];
  const int64_t nfaces = (int64_t)p.B * p.F;
  const int64_t t = key / nfaces, n = key % nfaces;
  const int tiles = p.tx * p.ty;
  const int b = (int)(t / tiles), tl = (int)(t % tiles);
  const int ti = tl / p.tx, tj = tl % p.tx;
  const PixBox bx = p.box[n];
  // Only the box of the tile's uncovered pixels (inside the tile) can contribute; an empty box
  // means nothing to do, and a pair slot stays at its initial 0.
  const PixBox o = p.tile_open[t];
  if (o.j0 > o.j1) return;
  const int i0 = o.i0 > bx.i0 ? o.i0 : bx.i0, i1 = o.i1 < bx.i1 ? o.i1 : bx.i1;
  const int j0 = o.j0 > bx.j0 ? o.j0 : bx.j0, j1 = o.j1 < bx.j1 ? o.j1 : bx.j1;
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
      // exp(S - L) * exp(-x) as one exp: the exponent is at most ~ln(1/eps) + |S| in size.
      const T coeff = -m_exp((p.s[pix] - log1m_exp_neg(x)) - x) / p.sigma * g;
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
    const int64_t slot = p.pair_off[n] + (int64_t)(ti - bx.i0 / TILE) *
                                             (bx.j1 / TILE - bx.j0 / TILE + 1) +
                         (tj - bx.j0 / TILE);
    for (int k = 0; k < 6; ++k) p.pair_grad[slot * 6 + k] = acc[k];
  }
}

// Deterministic reduction (one index per (image, vertex)): sum the pair slots of every corner
// of the vertex, corners in ascending order, a face's pairs in row-major tile order.
template <typename T>
DIBR_HD void soft_gather_body(int64_t q, const SoftParams<T>& p) {
  const int b = (int)(q / p.V), v = (int)(q % p.V);
  T gx = 0, gy = 0;
  for (int64_t c = p.vert_ptr[v]; c < p.vert_ptr[v + 1]; ++c) {
    const int64_t corner = p.vert_corner[c];
    const int64_t n = (int64_t)b * p.F + corner / 3;
    const int k = (int)(corner % 3);
    const int64_t s0 = p.pair_off[n], s1 = s0 + box_tiles(p.box[n]);
    for (int64_t s = s0; s < s1; ++s) {
      gx += p.pair_grad[s * 6 + 2 * k];
      gy += p.pair_grad[s * 6 + 2 * k + 1];
    }
  }
  p.grad_xy[q * 2] = gx;
  p.grad_xy[q * 2 + 1] = gy;
}

}  // namespace dibr
