"""Silhouette carving on a voxel grid: the projection convention and a coarse-to-fine carve.

Private to :mod:`render_core.visual_hull`. Everything here is float64 torch on the CPU and
not differentiable.

Pixel convention (design.md): pixel (row i, col j), row 0 at the top, has its centre at NDC
``x = 2(j+0.5)/W - 1``, ``y = 1 - 2(i+0.5)/H``. With the continuous coordinates
``u = (x+1)·W/2`` and ``v = (1-y)·H/2`` a point lies in pixel ``(floor(v), floor(u))``.

Each view classifies a point as INSIDE its mask, OUTSIDE (a miss), or UNSEEN (behind the
camera or outside the image: that view has no say). A voxel centre is kept when it is seen by
at least one view and missed by at most ``max_misses``.

The carve is exact (the same answer as testing every voxel centre in every view) but only
looks at voxels near the hull's surface: a block of voxels is projected as the box around its
voxel centres; the pixel rectangle around the box's 8 projected corners holds every centre's
pixel (x/w and y/w are linear-fractional, so their extremes over a box in front of the camera
lie at corners). When that rectangle is all INSIDE, all OUTSIDE or all UNSEEN (counted with
summed-area tables) the view decides the whole block; otherwise the block is split in eight.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

OUTSIDE, INSIDE, UNSEEN, UNDECIDED = 0, 1, 2, 3
_EPS_W = 1e-9
_EPS_PX = 1e-6  # widen the pixel rectangles so float rounding cannot move a centre out


def pixel_coords(clip: torch.Tensor, height, width) -> tuple[torch.Tensor, torch.Tensor]:
    """Continuous pixel coordinates ``(u, v)`` of clip-space points ``clip [...,4]``.

    ``u = (x/w + 1)·W/2`` (columns), ``v = (1 - y/w)·H/2`` (rows, row 0 at the top), so the
    point lies in pixel ``(floor(v), floor(u))`` and pixel (i, j)'s centre is ``(j+0.5, i+0.5)``.
    ``height`` and ``width`` may be ints or tensors broadcasting against ``clip[..., 0]``.
    Points with ``w <= 0`` get meaningless values: test ``w`` first.
    """
    w = clip[..., 3]
    w = torch.where(w.abs() < _EPS_W, torch.full_like(w, _EPS_W), w)
    u = (clip[..., 0] / w + 1.0) * (0.5 * width)
    v = (1.0 - clip[..., 1] / w) * (0.5 * height)
    return u, v


class ViewTables:
    """The N masks packed for vectorised look-ups.

    Each mask [H,W] is padded by one pixel of UNSEEN on every side. ``codes`` holds all padded
    masks' classes back to back; ``sat_in`` / ``sat_seen`` their summed-area tables
    ([Hp+1, Wp+1] each, flattened and concatenated) counting INSIDE and seen pixels.
    """

    def __init__(self, masks: Sequence[torch.Tensor], full: torch.Tensor, zrow: torch.Tensor):
        self.n = len(masks)
        self.full = full  # [N,4,4] float64 world -> clip
        self.zrow = zrow  # [N,4] float64 world -> camera-space z
        hs = torch.tensor([m.shape[0] for m in masks], dtype=torch.long)
        ws = torch.tensor([m.shape[1] for m in masks], dtype=torch.long)
        self.h, self.w = hs, ws
        codes, sat_in, sat_seen = [], [], []
        code_off, sat_off = [0], [0]
        for m in masks:
            c = torch.full((m.shape[0] + 2, m.shape[1] + 2), UNSEEN, dtype=torch.uint8)
            c[1:-1, 1:-1] = m.to(torch.uint8)
            codes.append(c.reshape(-1))
            code_off.append(code_off[-1] + c.numel())
            for table, cls in ((sat_in, c == INSIDE), (sat_seen, c != UNSEEN)):
                s = torch.zeros((c.shape[0] + 1, c.shape[1] + 1), dtype=torch.int64)
                s[1:, 1:] = cls.to(torch.int64).cumsum(0).cumsum(1)
                table.append(s.reshape(-1))
            sat_off.append(sat_off[-1] + (c.shape[0] + 1) * (c.shape[1] + 1))
        self.codes = torch.cat(codes)
        self.sat_in = torch.cat(sat_in)
        self.sat_seen = torch.cat(sat_seen)
        self.code_off = torch.tensor(code_off[:-1], dtype=torch.long)
        self.sat_off = torch.tensor(sat_off[:-1], dtype=torch.long)

    def classify_points(self, points: torch.Tensor, views: torch.Tensor) -> torch.Tensor:
        """Classes (OUTSIDE/INSIDE/UNSEEN, uint8 [P]) of points [P,3] in views [P] (int64) or in
        the one view ``views`` (an int)."""
        hom = torch.cat([points, torch.ones_like(points[:, :1])], 1)
        if isinstance(views, int):  # one view: a plain matrix product
            clip = hom @ self.full[views].T
            z = hom @ self.zrow[views]
            views = torch.full((points.shape[0],), views, dtype=torch.long)
        else:
            clip = torch.einsum("pij,pj->pi", self.full[views], hom)
            z = (self.zrow[views] * hom).sum(1)
        h, w = self.h[views], self.w[views]
        u, v = pixel_coords(clip, h, w)
        front = (clip[:, 3] > _EPS_W) & (z < 0)
        u = torch.where(front, u, torch.full_like(u, -1.0))
        # Padded coordinates: -1 and W both land in the UNSEEN border.
        col = torch.minimum(u.clamp_min(-1.0), w.double()).floor().long() + 1
        row = torch.minimum(v.clamp_min(-1.0), h.double()).floor().long() + 1
        row = torch.where(front, row, torch.zeros_like(row))
        return self.codes[self.code_off[views] + row * (w + 2) + col]

    def classify_boxes(self, lo: torch.Tensor, hi: torch.Tensor, views: torch.Tensor):
        """Classes (uint8 [P], UNDECIDED when the view does not decide) of boxes [lo, hi]."""
        p = lo.shape[0]
        bits = torch.tensor(
            [[(c >> k) & 1 for k in range(3)] for c in range(8)], dtype=torch.bool
        )
        corners = torch.where(bits[None], hi[:, None, :], lo[:, None, :])  # [P,8,3]
        hom = torch.cat([corners, torch.ones_like(corners[..., :1])], 2)
        clip = torch.einsum("pij,pkj->pki", self.full[views], hom)  # [P,8,4]
        z = torch.einsum("pj,pkj->pk", self.zrow[views], hom)
        front = ((clip[..., 3] > _EPS_W) & (z < 0)).all(1)
        behind = (clip[..., 3] <= 0).all(1) | (z >= 0).all(1)
        h, w = self.h[views], self.w[views]
        u, v = pixel_coords(clip, h[:, None], w[:, None])
        u = torch.minimum(u.clamp_min(-2.0), (w + 2).double()[:, None])
        v = torch.minimum(v.clamp_min(-2.0), (h + 2).double()[:, None])
        c0 = _clamp((u.amin(1) - _EPS_PX).floor().long() + 1, w + 1)
        c1 = _clamp((u.amax(1) + _EPS_PX).floor().long() + 1, w + 1)
        r0 = _clamp((v.amin(1) - _EPS_PX).floor().long() + 1, h + 1)
        r1 = _clamp((v.amax(1) + _EPS_PX).floor().long() + 1, h + 1)
        stride = w + 3
        base = self.sat_off[views]

        def count(table: torch.Tensor) -> torch.Tensor:
            a = table[base + (r1 + 1) * stride + c1 + 1] - table[base + r0 * stride + c1 + 1]
            return a - table[base + (r1 + 1) * stride + c0] + table[base + r0 * stride + c0]

        area = (r1 - r0 + 1) * (c1 - c0 + 1)
        n_in, n_seen = count(self.sat_in), count(self.sat_seen)
        out = torch.full((p,), UNDECIDED, dtype=torch.uint8)
        out[front & (n_in == area)] = INSIDE
        out[front & (n_seen == area) & (n_in == 0)] = OUTSIDE
        out[front & (n_seen == 0)] = UNSEEN
        out[behind] = UNSEEN
        return out


def _clamp(x: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    return torch.minimum(x.clamp_min(0), hi)


def carve(
    tables: ViewTables, lo: torch.Tensor, voxel: float, dims: Sequence[int], max_misses: int
) -> torch.Tensor:
    """Occupancy [nx,ny,nz] bool of the voxel centres ``lo + (index + 0.5)·voxel``.

    Coarse-to-fine and exact: the result equals :func:`carve_dense` on the same grid.
    """
    dims_t = torch.tensor(list(dims), dtype=torch.long)
    occ = torch.zeros(tuple(dims), dtype=torch.bool)
    b = 1
    while b * 16 < int(dims_t.max()):
        b *= 2
    n0 = (dims_t + b - 1) // b
    ii = torch.stack(torch.meshgrid(*[torch.arange(int(k)) for k in n0], indexing="ij"), -1)
    corner = ii.reshape(-1, 3) * b  # [C,3] first voxel index of each block
    nc, nv = corner.shape[0], tables.n
    misses = torch.zeros(nc, dtype=torch.long)
    seen = torch.zeros(nc, dtype=torch.long)
    pair_cell = torch.arange(nc).repeat_interleave(nv)
    pair_view = torch.arange(nv).repeat(nc)
    offsets = torch.tensor([[(c >> k) & 1 for k in range(3)] for c in range(8)])
    while corner.shape[0]:
        if b == 1:
            pts = lo + (corner[pair_cell].double() + 0.5) * voxel
            cls = tables.classify_points(pts, pair_view)
        else:
            last = torch.minimum(corner + b, dims_t) - 1
            box_lo = lo + (corner.double() + 0.5) * voxel
            box_hi = lo + (last.double() + 0.5) * voxel
            cls = tables.classify_boxes(box_lo[pair_cell], box_hi[pair_cell], pair_view)
        nc = corner.shape[0]
        misses += torch.bincount(pair_cell[cls == OUTSIDE], minlength=nc)
        seen += torch.bincount(pair_cell[cls <= INSIDE], minlength=nc)
        pending = cls == UNDECIDED
        pair_cell, pair_view = pair_cell[pending], pair_view[pending]
        open_cells = torch.bincount(pair_cell, minlength=nc) > 0
        alive = misses <= max_misses
        full = alive & ~open_cells & (seen > 0)
        _fill(occ, corner[full], b)
        split = alive & open_cells
        if b == 1 or not bool(split.any()):
            break
        # Renumber the split cells, then give each of its pending pairs to all 8 children.
        remap = torch.cumsum(split.long(), 0) - 1
        keep_pair = split[pair_cell]
        pair_cell, pair_view = remap[pair_cell[keep_pair]], pair_view[keep_pair]
        b //= 2
        child = (corner[split][:, None, :] + offsets[None] * b).reshape(-1, 3)
        inside_grid = (child < dims_t).all(1)
        child_id = torch.cumsum(inside_grid.long(), 0) - 1
        pc = (pair_cell[:, None] * 8 + torch.arange(8)[None]).reshape(-1)
        pv = pair_view[:, None].expand(-1, 8).reshape(-1)
        ok = inside_grid[pc]
        pair_cell, pair_view = child_id[pc[ok]], pv[ok]
        misses = misses[split].repeat_interleave(8)[inside_grid]
        seen = seen[split].repeat_interleave(8)[inside_grid]
        corner = child[inside_grid]
    return occ


def _fill(occ: torch.Tensor, corners: torch.Tensor, b: int) -> None:
    """Set the blocks of b³ voxels starting at ``corners`` [C,3] (cropped to the grid)."""
    if not corners.shape[0]:
        return
    if b == 1:
        occ[corners[:, 0], corners[:, 1], corners[:, 2]] = True
        return
    dims = occ.shape
    coarse = torch.zeros(tuple((d + b - 1) // b for d in dims), dtype=torch.bool)
    cb = corners // b
    coarse[cb[:, 0], cb[:, 1], cb[:, 2]] = True
    up = coarse.repeat_interleave(b, 0).repeat_interleave(b, 1).repeat_interleave(b, 2)
    occ |= up[: dims[0], : dims[1], : dims[2]]


def carve_dense(
    tables: ViewTables, lo: torch.Tensor, voxel: float, dims: Sequence[int], max_misses: int
) -> torch.Tensor:
    """Occupancy by testing every voxel centre in every view (the reference for :func:`carve`)."""
    axes = [lo[a] + (torch.arange(int(dims[a]), dtype=torch.float64) + 0.5) * voxel
            for a in range(3)]
    pts = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    misses = torch.zeros(pts.shape[0], dtype=torch.long)
    seen = torch.zeros(pts.shape[0], dtype=torch.long)
    for k in range(tables.n):
        cls = tables.classify_points(pts, k)
        misses += (cls == OUTSIDE).long()
        seen += (cls <= INSIDE).long()
    return ((misses <= max_misses) & (seen > 0)).reshape(tuple(dims))


def classify_grid(tables: ViewTables, pts: torch.Tensor) -> torch.Tensor:
    """Classes [N,P] uint8 of points [P,3] in every view."""
    out = torch.empty((tables.n, pts.shape[0]), dtype=torch.uint8)
    for k in range(tables.n):
        out[k] = tables.classify_points(pts, k)
    return out
