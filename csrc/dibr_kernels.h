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

// The intersection of two boxes (empty when they do not meet).
DIBR_HD PixBox box_intersect(const PixBox& a, const PixBox& b) {
  return PixBox{a.j0 > b.j0 ? a.j0 : b.j0, a.j1 < b.j1 ? a.j1 : b.j1,
                a.i0 > b.i0 ? a.i0 : b.i0, a.i1 < b.i1 ? a.i1 : b.i1};
}

// A face's screen triangle for the soft kernels: ``t`` gets the three corners (x, y) from
// ``xy`` [B,V,2] and the triangle's bounding box (xmin, xmax, ymin, ymax) after them; ``x``,
// ``y`` get the corners in NDC (for pixel_box). ``n`` = b * F + f.
template <typename T>
DIBR_HD void gather_triangle(int64_t n, const T* xy, const int64_t* faces, int64_t F, int64_t V,
                             int H, int W, T* t, double* x, double* y) {
  const int64_t b = n / F, f = n % F;
  for (int k = 0; k < 3; ++k) {
    const T* v = xy + (b * V + faces[f * 3 + k]) * 2;
    t[2 * k] = v[0];
    t[2 * k + 1] = v[1];
    x[k] = (double)v[0] * ((double)H / W);  // back to NDC for the pixel box
    y[k] = (double)v[1];
  }
  for (int c = 0; c < 2; ++c) {
    const T a = t[c], b2 = t[2 + c], c2 = t[4 + c];
    const T lo = a < b2 ? a : b2, hi = a > b2 ? a : b2;
    t[6 + 2 * c] = lo < c2 ? lo : c2;
    t[7 + 2 * c] = hi > c2 ? hi : c2;
  }
}

// The pixels of tile (row ti, column tj).
DIBR_HD PixBox tile_box(int ti, int tj) {
  return PixBox{tj * TILE, tj * TILE + TILE - 1, ti * TILE, ti * TILE + TILE - 1};
}

// A bin entry key t*N + n decoded: tile t (image b, tile row ti, column tj) and face n.
struct BinEntry {
  int64_t t, n;
  int b, ti, tj;
};

DIBR_HD BinEntry decode_entry(int64_t key, int B, int F, int tx, int ty) {
  const int64_t nfaces = (int64_t)B * F;
  BinEntry e;
  e.t = key / nfaces;
  e.n = key % nfaces;
  const int tiles = tx * ty;
  e.b = (int)(e.t / tiles);
  const int tl = (int)(e.t % tiles);
  e.ti = tl / tx;
  e.tj = tl % tx;
  return e;
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
  float zmin;     // below the NDC depth z/w of every fragment (CPU tile body's depth cull)
  float ccw;      // 1 where the face is counter-clockwise on screen, else 0 (CPU bins' order)
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
  fd.ccw = cross > 0.0f ? 1.0f : 0.0f;
  homogeneous_edges(v, fd.e);
  float zlo = 0.0f, zabs = 0.0f;
  for (int k = 0; k < 3; ++k) {
    fd.z[k] = z[k];
    fd.w[k] = v[k][2];
    const float r = z[k] / v[k][2];
    zlo = k == 0 || r < zlo ? r : zlo;
    zabs = fabsf(r) > zabs ? fabsf(r) : zabs;
  }
  // A fragment's depth num_z / num_w is a convex combination of the vertices' z/w (the edge
  // functions share a sign inside and w > 0), up to the roundings of the three-term sums and
  // the quotient (a few ulps of max |z/w|): a margin of ~130 ulps of it, and a tiny absolute one
  // for results near zero, keeps zmin below every fragment's computed depth.
  const float zmin = zlo - (8e-6f * zabs + 1e-12f);
  fd.zmin = zmin == zmin ? zmin : -INFINITY;  // inf - inf: no bound
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
  const BinEntry en = decode_entry(p.entries[e], p.B, p.F, p.tx, p.ty);
  const PixBox c = box_intersect(p.box[en.n], tile_box(en.ti, en.tj));
  vis_raster_span(p.fdata[en.n], (uint32_t)(en.n % p.F), c.i0, c.i1, c.j0, c.j1,
                  p.zbuf + (int64_t)en.b * p.H * p.W, p.W, p);
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

}  // namespace dibr
