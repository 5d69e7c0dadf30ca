"""Pure-PyTorch reference ops: z-buffer visibility, perspective-correct barycentrics, the DIB-R
soft silhouette and attribute interpolation (the ``torch`` backend).

These are the oracle the native backends are tested against, and the fallback when no native
backend is built. They never form a pixels x faces tensor: every face enumerates only the pixels
of its screen bounding box (grown by the soft-mask cutoff for the silhouette), and the resulting
(face, pixel) pairs are processed in chunks of bounded size, so memory grows with covered area.

The numerics here are the contract the native kernels reproduce (see ``csrc/dibr_math.h``):

* Visibility: a face is rejected when any vertex has ``w <= W_EPS`` or its projected area is
  below ``AREA_EPS_PX`` square pixels. A pixel centre p = (px, py) in NDC is inside when the
  homogeneous edge functions ``e_k = (px, py, 1) . (V_{k+1} x V_{k+2})`` (V = (x, y, w) in clip
  space) all have the sign of their sum (edges inclusive). Its depth is
  ``z = sum(e_k z_k) / sum(e_k w_k)`` (NDC), kept when -1 <= z <= 1. The nearest fragment wins
  through a 64-bit key ``(orderable_bits(z) << 32) | face``: ties go to the lower face index,
  which makes the result independent of evaluation order.
* Soft silhouette: distances are squared 2D distances in *isotropic NDC* (x scaled by W/H so a
  pixel is 2/H wide in both axes; equal to NDC for square images) from the pixel centre to the
  projected triangle (0 inside). Every face with ``d < cutoff2 = sigma*ln(1/SOFT_EPS)`` counts;
  ``A = 1 - exp(sum_j log(1 - exp(-d_j/sigma)))``, and A = 1 exactly on covered pixels.
"""

from __future__ import annotations

import math

import torch

W_EPS = 1e-6  # faces with a vertex at w <= W_EPS (at or behind the eye plane) are rejected
AREA_EPS_PX = 1e-6  # faces whose projected area is below this many square pixels are culled
SOFT_EPS = 1e-5  # faces whose soft-mask probability is below SOFT_EPS at a pixel are skipped
MIN_X = 1e-20  # lower bound on d/sigma so log(1 - exp(-x)) stays finite on an edge
CHUNK_PAIRS = 1 << 21  # (face, pixel) pairs processed at once: bounds peak memory
AA_MAX_WALK = 8  # antialias: faces followed along a pixel pair before giving up

_KEY_BG = torch.iinfo(torch.int64).max


def cutoff2(sigma: float, eps: float = SOFT_EPS) -> float:
    """Squared cutoff radius (isotropic NDC units) beyond which a face's p_j < eps."""
    return sigma * math.log(1.0 / eps)


def pixel_centers(h: int, w: int, dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    """NDC x of each column [W] and y of each row [H] (row 0 at the top)."""
    xs = (torch.arange(w, dtype=dtype, device=device) + 0.5) * (2.0 / w) - 1.0
    ys = 1.0 - (torch.arange(h, dtype=dtype, device=device) + 0.5) * (2.0 / h)
    return xs, ys


def face_vertices(clip: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Gather clip-space vertices per face: [B,V,4], [F,3] -> [B,F,3,4]."""
    return clip[:, faces]


def valid_faces(fv: torch.Tensor) -> torch.Tensor:
    """[B,F] mask of faces with every vertex in front of the eye plane (w > W_EPS)."""
    return (fv[..., 3] > W_EPS).all(-1) & torch.isfinite(fv).all(-1).all(-1)


def valid_faces_of(clip: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """``valid_faces(face_vertices(clip, faces))`` without gathering the [B,F,3,4] corners:
    each vertex is tested once ([B,V]) and a face is valid when its three vertices are.

    On the CPU, a finite sum of ``clip`` (so every value finite: NaN and inf propagate) and a
    least ``w`` above ``W_EPS`` (a NaN minimum fails) make every face valid without the test
    per vertex and the gather per face; otherwise (also where finite values overflow the sum)
    the test runs."""
    if clip.device.type == "cpu" and clip.numel() and faces.shape[0]:
        if math.isfinite(float(clip.sum())) and float(clip[..., 3].amin()) > W_EPS:
            return torch.ones(clip.shape[0], faces.shape[0], dtype=torch.bool)
    ok = (clip[..., 3] > W_EPS) & torch.isfinite(clip).all(-1)
    return ok[:, faces].all(-1)


def _pixel_boxes(xy_ndc: torch.Tensor, valid: torch.Tensor, h: int, w: int, grow_px: float):
    """Inclusive pixel bounding boxes [N] x4 (j0, j1, i0, i1) of projected faces [N,3,2].

    Boxes are grown by ``grow_px`` plus one pixel so that rounding never drops a pixel whose
    centre the exact test would accept; invalid faces get empty boxes.
    """
    x = xy_ndc[..., 0].detach()
    y = xy_ndc[..., 1].detach()
    # Column/row coordinates of the vertices (pixel centres sit at integers).
    cx = (x + 1) * (w / 2) - 0.5
    ry = (1 - y) * (h / 2) - 0.5
    big = float(max(h, w) + 8)
    cx = torch.nan_to_num(cx, nan=-big).clamp(-big, big)
    ry = torch.nan_to_num(ry, nan=-big).clamp(-big, big)
    j0 = torch.ceil(cx.min(-1).values - grow_px).long() - 1
    j1 = torch.floor(cx.max(-1).values + grow_px).long() + 1
    i0 = torch.ceil(ry.min(-1).values - grow_px).long() - 1
    i1 = torch.floor(ry.max(-1).values + grow_px).long() + 1
    j0 = j0.clamp(min=0)
    i0 = i0.clamp(min=0)
    j1 = j1.clamp(max=w - 1)
    i1 = i1.clamp(max=h - 1)
    nw = (j1 - j0 + 1).clamp(min=0)
    nh = (i1 - i0 + 1).clamp(min=0)
    count = torch.where(valid, nw * nh, torch.zeros_like(nw))
    return j0, i0, nw, count


def _pair_chunks(count: torch.Tensor, limit: int = CHUNK_PAIRS):
    """Yield (start, end) ranges of faces whose pixel-pair totals stay near ``limit``."""
    n = count.shape[0]
    if n == 0:
        return
    cum = torch.cumsum(count, 0)
    total = int(cum[-1])
    if total == 0:
        return
    start = 0
    while start < n:
        before = int(cum[start - 1]) if start > 0 else 0
        end = int(torch.searchsorted(cum, torch.tensor(before + limit), right=True))
        end = max(end, start + 1)
        if int(cum[end - 1]) > before:
            yield start, end
        start = end


def _expand_pairs(j0, i0, nw, count, start, end):
    """(face, row, col) of every pixel in the boxes of faces [start, end)."""
    c = count[start:end]
    local_face = torch.repeat_interleave(torch.arange(end - start, device=c.device), c)
    offsets = torch.cumsum(c, 0) - c
    k = torch.arange(local_face.shape[0], device=c.device) - offsets[local_face]
    face = local_face + start
    width = nw[face]
    col = j0[face] + k % width
    row = i0[face] + k // width
    return face, row, col


def orderable_bits(z: torch.Tensor) -> torch.Tensor:
    """Map float32 values to int64 keys whose integer order is the float order."""
    u = z.to(torch.float32).contiguous().view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    neg = u >= 0x80000000
    return torch.where(neg, u ^ 0xFFFFFFFF, u | 0x80000000)


def homogeneous_edges(fv: torch.Tensor) -> torch.Tensor:
    """Per-face edge-function coefficients [...,3,3]: row k is V_{k+1} x V_{k+2}, V=(x,y,w)."""
    v = fv[..., [0, 1, 3]]
    v1 = v.roll(-1, dims=-2)
    v2 = v.roll(-2, dims=-2)
    return torch.cross(v1, v2, dim=-1)


def projected_area_px(fv: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Signed area of projected faces [...] in square pixels (positive = counter-clockwise)."""
    ndc = fv[..., :2] / fv[..., 3:4]
    a, b, c = ndc[..., 0, :], ndc[..., 1, :], ndc[..., 2, :]
    cross = (b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (
        c[..., 0] - a[..., 0]
    )
    return 0.5 * cross * (w / 2) * (h / 2)


def visibility(clip: torch.Tensor, faces: torch.Tensor, h: int, w: int):
    """Z-buffer: nearest face per pixel. Returns (face_idx [B,H,W] int64, -1 = none).

    Not differentiable (barycentrics are recomputed from ``face_idx`` by the caller).
    """
    clip = clip.detach().to(torch.float32)
    bsz = clip.shape[0]
    nf = faces.shape[0]
    fv = face_vertices(clip, faces)  # [B,F,3,4]
    valid = valid_faces(fv)
    area = projected_area_px(fv, h, w)
    valid = valid & (area.abs() >= AREA_EPS_PX)
    fv = fv.reshape(bsz * nf, 3, 4)
    valid = valid.reshape(-1)
    safe_w = torch.where(valid[:, None], fv[..., 3], torch.ones_like(fv[..., 3]))
    ndc = fv[..., :2] / safe_w[..., None]
    j0, i0, nw, count = _pixel_boxes(ndc, valid, h, w, 0.0)
    edges = homogeneous_edges(fv)  # [BF,3,3]
    xs, ys = pixel_centers(h, w, torch.float32, clip.device)
    keys = torch.full((bsz * h * w,), _KEY_BG, dtype=torch.int64, device=clip.device)
    for start, end in _pair_chunks(count):
        face, row, col = _expand_pairs(j0, i0, nw, count, start, end)
        px, py = xs[col], ys[row]
        e = edges[face]  # [P,3,3]
        ek = px[:, None] * e[..., 0] + py[:, None] * e[..., 1] + e[..., 2]  # [P,3]
        den = ek.sum(-1)
        inside = ((ek >= 0).all(-1) & (den > 0)) | ((ek <= 0).all(-1) & (den < 0))
        f = fv[face]
        num_z = (ek * f[..., 2]).sum(-1)
        num_w = (ek * f[..., 3]).sum(-1)
        z = num_z / torch.where(num_w != 0, num_w, torch.ones_like(num_w))
        ok = inside & (num_w != 0) & (z >= -1) & (z <= 1)
        if not bool(ok.any()):
            continue
        b = face // nf
        pix = (b * h + row) * w + col
        # Shift the unsigned 32-bit depth key into signed range first: int64 comparison then
        # equals the unsigned order of (orderable_bits << 32 | face) used by the native kernels.
        key = ((orderable_bits(z) - 0x80000000) << 32) | (face % nf)
        keys.scatter_reduce_(0, pix[ok], key[ok], reduce="amin")
    face_idx = torch.where(keys == _KEY_BG, torch.full_like(keys, -1), keys & 0xFFFFFFFF)
    return face_idx.view(bsz, h, w)


def barycentrics(clip: torch.Tensor, faces: torch.Tensor, face_idx: torch.Tensor):
    """Perspective-correct barycentrics and NDC depth for given pixel faces.

    Args:
        clip: [B,V,4] clip-space vertices (any float dtype, differentiable).
        faces: [F,3] int64.
        face_idx: [B,H,W] int64, -1 for background.
    Returns:
        bary [B,H,W,3] (saturated to [0,1], summing to 1; 0 on background) and depth [B,H,W]
        (NDC z/w; 1 on background), both differentiable w.r.t. ``clip``.
    """
    bsz, h, w = face_idx.shape
    if faces.shape[0] == 0:
        zero = clip.sum() * 0  # keeps the graph so callers can always backpropagate
        return clip.new_zeros(bsz, h, w, 3) + zero, clip.new_ones(bsz, h, w) + zero
    # Edge functions once per face (O(F)), then one gather per covered pixel (O(pixels)):
    # background pixels cost nothing and the backward pass is a scatter over faces.
    fv = face_vertices(clip, faces)  # [Bc,F,3,4]
    edges = homogeneous_edges(fv)  # [Bc,F,3,3]
    flat = face_idx.reshape(-1)
    sel = (flat >= 0).nonzero().squeeze(1)
    f = flat[sel]
    b = sel // (h * w) if clip.shape[0] > 1 else torch.zeros_like(sel)
    i = (sel // w) % h
    j = sel % w
    xs, ys = pixel_centers(h, w, clip.dtype, clip.device)
    e = edges[b, f]  # [N,3,3]
    ek = xs[j, None] * e[..., 0] + ys[i, None] * e[..., 1] + e[..., 2]  # [N,3]
    den = ek.sum(-1, keepdim=True)
    den = torch.where(den != 0, den, torch.ones_like(den))
    bn = (ek / den).clamp(0.0, 1.0)
    # Renormalise after saturation; sums are >= 1 - 2*eps so this never divides by ~0.
    bn = bn / bn.sum(-1, keepdim=True).clamp(min=1e-12)
    v = fv[b, f]  # [N,3,4]
    num_z = (bn * v[..., 2]).sum(-1)
    num_w = (bn * v[..., 3]).sum(-1)
    zn = num_z / torch.where(num_w != 0, num_w, torch.ones_like(num_w))
    bary = clip.new_zeros(bsz * h * w, 3).index_put((sel,), bn).view(bsz, h, w, 3)
    depth = clip.new_ones(bsz * h * w).index_put((sel,), zn).view(bsz, h, w)
    return bary, depth


def iso_xy(clip: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Projected 2D positions [B,V,2] in isotropic NDC (x scaled by W/H); differentiable."""
    wv = clip[..., 3:4]
    safe = torch.where(wv.abs() > W_EPS, wv, torch.full_like(wv, W_EPS))
    xy = clip[..., :2] / safe
    scale = torch.tensor([w / h, 1.0], dtype=clip.dtype, device=clip.device)
    return xy * scale


def point_triangle_dist2(p: torch.Tensor, tri: torch.Tensor):
    """Squared distance [P] from points [P,2] to triangles [P,3,2]; 0 inside. Also `inside`.

    Edges count as inside. Degenerate (zero-area) triangles have no inside and measure the
    distance to their segments; a zero-length edge falls back to the point distance.
    """
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]

    def cross2(u, v):
        return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]

    e0 = cross2(b - a, p - a)
    e1 = cross2(c - b, p - b)
    e2 = cross2(a - c, p - c)
    area2 = cross2(b - a, c - a)
    inside = (area2 != 0) & (
        ((e0 >= 0) & (e1 >= 0) & (e2 >= 0)) | ((e0 <= 0) & (e1 <= 0) & (e2 <= 0))
    )

    def seg(p, a, b):
        ab = b - a
        len2 = (ab * ab).sum(-1)
        t = ((p - a) * ab).sum(-1) / len2.clamp(min=1e-30)
        t = t.clamp(0.0, 1.0)
        q = a + t[:, None] * ab
        return ((p - q) ** 2).sum(-1)

    d = torch.minimum(torch.minimum(seg(p, a, b), seg(p, b, c)), seg(p, c, a))
    d = torch.where(inside, torch.zeros_like(d), d)
    return d, inside


class _SoftPairs:
    """The (face, pixel) pairs of a soft-silhouette evaluation, enumerated chunk by chunk."""

    def __init__(self, xy, valid, faces, h, w, sigma, eps):
        self.bsz, self.nf = valid.shape
        self.h, self.w, self.sigma = h, w, sigma
        self.faces = faces
        self.cut2 = cutoff2(sigma, eps)
        tri = xy.detach()[:, faces].reshape(self.bsz * self.nf, 3, 2)  # isotropic NDC
        ndc = tri.clone()
        ndc[..., 0] = ndc[..., 0] * (h / w)
        grow_px = math.sqrt(self.cut2) * h / 2
        self.box = _pixel_boxes(ndc, valid.reshape(-1), h, w, grow_px)
        xs, ys = pixel_centers(h, w, xy.dtype, xy.device)
        self.xs, self.ys = xs * (w / h), ys

    def chunks(self):
        j0, i0, nw, count = self.box
        for start, end in _pair_chunks(count):
            face, row, col = _expand_pairs(j0, i0, nw, count, start, end)
            b = face // self.nf
            pix = (b * self.h + row) * self.w + col
            p = torch.stack([self.xs[col], self.ys[row]], -1)
            yield b, face % self.nf, pix, p

    def distances(self, xy, b, f, p):
        tri = xy[b[:, None], self.faces[f]]  # [P,3,2]
        return point_triangle_dist2(p, tri)


def _log1m_exp_neg(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(-x)) for x > 0, accurate for small and large x."""
    return torch.log(-torch.expm1(-x))


class SoftSilhouette(torch.autograd.Function):
    """alpha = 1 - prod_j (1 - exp(-d_j / sigma)), forward and backward chunked.

    The backward pass recomputes the distances of each chunk with autograd and weights them by
    dA/dd_k = -exp(S - L_k) * exp(-d_k/sigma) / sigma, where S = sum_j L_j and
    L_k = log(1 - exp(-d_k/sigma)): the product over the other faces is formed in log space, so
    no (1 - p_k) that has rounded to 0 is ever divided by.
    """

    @staticmethod
    def forward(ctx, xy, valid, faces, h, w, sigma, eps):
        pairs = _SoftPairs(xy, valid, faces, h, w, sigma, eps)
        npix = pairs.bsz * h * w
        s = torch.zeros(npix, dtype=xy.dtype, device=xy.device)
        covered = torch.zeros(npix, dtype=torch.bool, device=xy.device)
        with torch.no_grad():
            for b, f, pix, p in pairs.chunks():
                d, inside = pairs.distances(xy, b, f, p)
                keep = d < pairs.cut2
                covered[pix[inside]] = True
                x = (d[keep] / sigma).clamp(min=MIN_X)
                s.index_add_(0, pix[keep], _log1m_exp_neg(x))
        alpha = torch.where(covered, torch.ones_like(s), (-torch.expm1(s)).clamp(0.0, 1.0))
        ctx.save_for_backward(xy, valid, faces, s, covered)
        ctx.dims = (h, w, sigma, eps)
        return alpha.view(pairs.bsz, h, w)

    @staticmethod
    def backward(ctx, grad_alpha):
        xy, valid, faces, s, covered = ctx.saved_tensors
        h, w, sigma, eps = ctx.dims
        grad_xy = torch.zeros_like(xy)
        if not ctx.needs_input_grad[0]:
            return (None,) * 7
        g = grad_alpha.reshape(-1)
        pairs = _SoftPairs(xy, valid, faces, h, w, sigma, eps)
        for b, f, pix, p in pairs.chunks():
            active = (~covered[pix]) & (g[pix] != 0)
            if not bool(active.any()):
                continue
            b, f, pix, p = b[active], f[active], pix[active], p[active]
            with torch.enable_grad():
                xy_leaf = xy.detach().requires_grad_(True)
                d, _ = pairs.distances(xy_leaf, b, f, p)
                keep = (d < pairs.cut2).detach()
                x = (d.detach() / sigma).clamp(min=MIN_X)
                lk = _log1m_exp_neg(x)
                coeff = -torch.exp(s[pix] - lk) * torch.exp(-x) / sigma * g[pix]
                coeff = torch.where(keep, coeff, torch.zeros_like(coeff))
                (gx,) = torch.autograd.grad((d * coeff).sum(), xy_leaf)
            grad_xy += gx
        return grad_xy, None, None, None, None, None, None


def interpolate_attributes(
    attr: torch.Tensor, bary: torch.Tensor, faces: torch.Tensor, face_idx: torch.Tensor
) -> torch.Tensor:
    """sum_k bary_k attr[faces[face_idx, k]]: attr [V,C] or [B,V,C] (batch 1 or B, checked by
    the caller), bary [B,H,W,3], faces [F,3] integer indices into attr, face_idx [B,H,W]
    (-1 = background) -> [B,H,W,C], 0 on background; autograd differentiates it w.r.t.
    ``attr`` and ``bary``.
    """
    bsz = face_idx.shape[0]
    vidx = faces.long()[face_idx.clamp(min=0)]  # [B,H,W,3]
    if attr.dim() == 2:
        gathered = attr[vidx]
    else:
        bidx = torch.arange(bsz, device=attr.device).view(bsz, 1, 1, 1)
        if attr.shape[0] == 1:
            bidx = torch.zeros_like(bidx)
        gathered = attr[bidx, vidx]
    return (bary.unsqueeze(-1).to(gathered.dtype) * gathered).sum(-2)


def _aa_screen(clip: torch.Tensor, h: int, w: int):
    """Column X and row Y [B,V] of each vertex (pixel centres at integers); differentiable."""
    wv = clip[..., 3]
    safe = torch.where(wv > W_EPS, wv, torch.ones_like(wv))
    return (clip[..., 0] / safe + 1) * (0.5 * w) - 0.5, (1 - clip[..., 1] / safe) * (0.5 * h) - 0.5


def _aa_silhouette(clip: torch.Tensor, faces: torch.Tensor, topo: torch.Tensor) -> torch.Tensor:
    """[B,F,3] bool: edge k (vertex k to k+1) of face f has no usable neighbour, or its
    neighbour winds the other way on screen (faces away where f faces the eye, or back)."""
    v = clip.detach()[:, faces][..., [0, 1, 3]]  # [B,F,3,(x,y,w)]
    x, y, wv = v.unbind(-1)
    det = (
        x[..., 0] * (y[..., 1] * wv[..., 2] - wv[..., 1] * y[..., 2])
        - y[..., 0] * (x[..., 1] * wv[..., 2] - wv[..., 1] * x[..., 2])
    ) + wv[..., 0] * (x[..., 1] * y[..., 2] - y[..., 1] * x[..., 2])
    valid = (wv > W_EPS).all(-1)
    nb = topo.clamp(min=0)
    dn, vn = det[:, nb], valid[:, nb]  # [B,F,3]
    same = ((det[..., None] > 0) & (dn > 0)) | ((det[..., None] < 0) & (dn < 0))
    return (topo < 0) | ~vn | ~same


def antialias(color, face_idx, depth, clip, faces, topo):
    """Edge antialiasing: color [B,H,W,C], face_idx [B,H,W], depth [B,H,W] (not
    differentiated), clip [B,V,4], faces [F,3], topo [F,3] (neighbour across edge k, -1 none)
    -> [B,H,W,C], differentiable w.r.t. color and clip through autograd.

    For each horizontal (pixel 0 left) and vertical (pixel 0 on top) pair whose faces differ,
    the nearer fragment (smaller depth; background is farthest; ties to pixel 0) is the front
    one. From its face the segment between the two centres is followed: the first edge
    (order 0, 1, 2; not the one it came in by) that straddles the pair's line (half-open: one
    end <= the line's coordinate, the other above) and crosses it at s in [0, 1] (pixels from
    pixel 0's centre) is its exit. A silhouette exit ends the search; any other leads into the
    neighbour, for at most AA_MAX_WALK faces. A silhouette exit blends only when the edge runs
    more across the pair than along it (|dQ| <= |dP| for horizontal pairs, < for vertical
    ones), so each edge moves colour in one direction only and its gradient counts the area
    it sweeps once. Then pixel 0 gets (0.5 - s)(c1 - c0) when
    s < 0.5, pixel 1 gets (s - 0.5)(c0 - c1) otherwise, from the input colours.
    """
    bsz, h, w, nc = color.shape
    X, Y = _aa_screen(clip, h, w)
    sil = _aa_silhouette(clip, faces, topo)
    fid, z = face_idx.reshape(-1), depth.detach().reshape(-1)
    flat = color.reshape(-1, nc)
    out = flat
    q = torch.arange(fid.shape[0], device=fid.device)
    b, i, j = q // (h * w), (q // w) % h, q % w
    for vertical in (False, True):
        q0 = q[i < h - 1] if vertical else q[j < w - 1]
        q1 = q0 + (w if vertical else 1)
        keep = fid[q0] != fid[q1]
        q0, q1 = q0[keep], q1[keep]
        bb = b[q0]
        line, base = (j[q0], i[q0]) if vertical else (i[q0], j[q0])
        P, Q = (X, Y) if vertical else (Y, X)  # P across the line, Q along it
        front0 = (fid[q0] >= 0) & ((fid[q1] < 0) | (z[q0] <= z[q1]))
        cur = torch.where(front0, fid[q0], fid[q1])
        prev = torch.full_like(cur, -2)
        alive = torch.ones_like(front0)
        found = torch.zeros_like(front0)
        s = torch.zeros(q0.shape, dtype=color.dtype, device=color.device)
        for _ in range(AA_MAX_WALK):
            pick = torch.full_like(cur, -1)
            s_pick = torch.zeros_like(s)
            dom_pick = torch.zeros_like(found)
            for k in range(3):
                va, vb = faces[cur, k], faces[cur, (k + 1) % 3]
                pa, pb, qa, qb = P[bb, va], P[bb, vb], Q[bb, va], Q[bb, vb]
                straddle = (pa <= line) != (pb <= line)
                d = torch.where(straddle, pb - pa, torch.ones_like(pa))
                sk = (qa + (line - pa) / d * (qb - qa)) - base
                ok = straddle & (sk >= 0) & (sk <= 1) & (topo[cur, k] != prev) & (pick < 0)
                # An edge more along the pair than across it is the other direction's.
                dom = (
                    (qb - qa).abs() < (pb - pa).abs()
                    if vertical
                    else ((qb - qa).abs() <= (pb - pa).abs())
                )
                pick = torch.where(ok, k, pick)
                s_pick = torch.where(ok, sk, s_pick)
                dom_pick = torch.where(ok, dom, dom_pick)
            alive = alive & (pick >= 0)
            kk = pick.clamp(min=0)
            edge_sil = sil[bb, cur, kk]
            s = torch.where(alive & edge_sil & dom_pick, s_pick, s)
            found = found | (alive & edge_sil & dom_pick)
            alive = alive & ~edge_sil
            prev = torch.where(alive, cur, prev)
            cur = torch.where(alive, topo[cur, kk], cur)
        recv0 = found & (s < 0.5)
        recv1 = found & ~(s < 0.5)
        c0, c1 = flat[q0], flat[q1]
        d0 = (0.5 - s[recv0])[:, None] * (c1[recv0] - c0[recv0])
        d1 = (s[recv1] - 0.5)[:, None] * (c0[recv1] - c1[recv1])
        out = out.index_add(0, q0[recv0], d0).index_add(0, q1[recv1], d1)
    return out.view(bsz, h, w, nc)
