"""Vectorised edge collapse, split and flip on closed, consistently oriented triangle meshes.

Private to :mod:`render_core.remesh`. Every function works on whole tensors (``torch.unique``,
``scatter_reduce``, ``index_add_``): no Python loop runs over vertices, edges or faces, so the
same code runs on CPU and CUDA tensors.

Conventions: half-edge ``h = 3 f + i`` goes from ``faces[f, i]`` to ``faces[f, (i + 1) % 3]``;
its opposite corner is ``faces[f, (i + 2) % 3]``. Each vertex carries a *source table*: up to K
input-vertex indices ``src [V,K]`` and weights ``w [V,K]`` such that the vertex's attributes are
``sum_k w[:, k] * attr_in[src[:, k]]``. A collapse or split concatenates the tables of the two
endpoints with weight 1/2 each, so K doubles per operation that changes anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

#: no face a collapse or flip creates may have a quality (1 = equilateral) below this
MIN_QUALITY = 0.02
#: a collapse may turn no surviving face's normal by more than this angle
MAX_COLLAPSE_ANGLE_DEG = 60.0
#: faces below this quality are "slivers": their shortest edge becomes a collapse candidate
SLIVER_QUALITY = 0.1
#: faces with area below AREA_RATIO * (mean min_length of its corners)^2 are collapse candidates
AREA_RATIO = 0.5
#: selection rounds of one collapse pass (each checks the locally best remaining candidates)
COLLAPSE_ROUNDS = 3


class RemeshError(ValueError):
    """The mesh or an argument cannot be remeshed; the message names the problem."""


@dataclass
class Topology:
    """Edges of a closed manifold mesh: ``edges [E,2]`` (lower index first, sorted by key),
    ``keys [E]`` (``lo * V + hi``, ascending), ``he_edge [3F]`` (edge of each half-edge),
    ``edge_he [E,2]`` (its two half-edges), ``valence [V]``, and per half-edge its origin
    ``he_from``, end ``he_to`` and opposite corner ``he_opp`` (all [3F])."""

    edges: torch.Tensor
    keys: torch.Tensor
    he_edge: torch.Tensor
    edge_he: torch.Tensor
    valence: torch.Tensor
    he_from: torch.Tensor
    he_to: torch.Tensor
    he_opp: torch.Tensor


def topology(faces: torch.Tensor, nv: int, check: bool = False) -> Topology:
    """Edge structure of ``faces [F,3]``; with ``check`` raise :class:`RemeshError` unless the
    surface is closed, edge-manifold and consistently oriented."""
    frm = faces.reshape(-1)
    to = faces.roll(-1, 1).reshape(-1)
    lo, hi = torch.minimum(frm, to), torch.maximum(frm, to)
    key = lo * nv + hi
    keys, inv, counts = torch.unique(key, return_inverse=True, return_counts=True)
    if check:
        n_multi = int((counts > 2).sum())
        if n_multi:
            raise RemeshError(f"the mesh is not manifold: {n_multi} edges belong to 3+ faces")
        n_open = int((counts == 1).sum())
        if n_open:
            raise RemeshError(
                f"the mesh has a boundary: {n_open} edges belong to a single face; remeshing "
                "needs a closed (watertight) surface"
            )
    h = torch.arange(len(frm), device=faces.device)
    ne = len(keys)
    edge_he = torch.stack((
        torch.full((ne,), len(frm), dtype=torch.long, device=faces.device).scatter_reduce_(
            0, inv, h, "amin"),
        torch.full((ne,), -1, dtype=torch.long, device=faces.device).scatter_reduce_(
            0, inv, h, "amax"),
    ), 1)
    if check:
        n_bad = int((frm[edge_he[:, 0]] != to[edge_he[:, 1]]).sum())
        if n_bad:
            raise RemeshError(
                f"the mesh is not consistently oriented: {n_bad} edges are traversed in the "
                "same direction by both of their faces"
            )
    first = edge_he[:, 0]
    edges = torch.stack((lo[first], hi[first]), dim=1)
    valence = torch.bincount(edges.reshape(-1), minlength=nv)
    opp = faces.roll(1, 1).reshape(-1)
    return Topology(edges, keys, inv, edge_he, valence, frm, to, opp)


def count_vertex_fans(faces: torch.Tensor, topo: Topology) -> int:
    """Number of corner fans (cycles of faces around a vertex); equals the number of
    referenced vertices exactly when every vertex is manifold. Pointer jumping: O(F log F)."""
    nh = faces.numel()
    twin = torch.empty(nh, dtype=torch.long, device=faces.device)
    twin[topo.edge_he[:, 0]] = topo.edge_he[:, 1]
    twin[topo.edge_he[:, 1]] = topo.edge_he[:, 0]
    h = torch.arange(nh, device=faces.device)
    prev = h.view(-1, 3).roll(1, 1).reshape(-1)
    nxt = twin[prev]  # next outgoing half-edge around the same origin vertex
    label = h.clone()
    for _ in range(max(1, math.ceil(math.log2(max(nh, 2)))) + 1):
        new = torch.minimum(label, label[nxt])
        if torch.equal(new, label):  # min over 2^k steps == over 2^(k+1): the cycle's min
            break
        label = new
        nxt = nxt[nxt]
    return int((label == h).sum())


def face_normals(v: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Un-normalised normals ``[F,3]`` (length = twice the area) and quality ``[F]``:
    ``4 sqrt(3) area / sum(edge^2)``, 1 for an equilateral triangle, 0 for a degenerate one."""
    p = v[faces]
    return _normal_quality(p[:, 0], p[:, 1], p[:, 2])


def _normal_quality(p0, p1, p2) -> tuple[torch.Tensor, torch.Tensor]:
    n = torch.linalg.cross(p1 - p0, p2 - p0)
    sq = ((p1 - p0) ** 2 + (p2 - p1) ** 2 + (p0 - p2) ** 2).sum(-1)
    q = 2.0 * math.sqrt(3.0) * n.norm(dim=-1) / sq.clamp_min(torch.finfo(v_dtype(p0)).tiny)
    return n, q


def v_dtype(t: torch.Tensor) -> torch.dtype:
    return t.dtype if t.is_floating_point() else torch.float32


def _ranges(starts: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat indices ``starts[k] + 0..counts[k]-1`` for all k, and the owner k of each."""
    owner = torch.repeat_interleave(torch.arange(len(counts), device=counts.device), counts)
    offset = torch.cumsum(counts, 0) - counts
    flat = torch.arange(int(counts.sum()), device=counts.device) - offset[owner] + starts[owner]
    return flat, owner


def _expand(src, w, rows_a, rows_b, new_rows=None):
    """Source tables after merging ``rows_a``/``rows_b`` pairs: into ``rows_a`` (collapse,
    ``new_rows`` None) or into appended rows (split)."""
    src2 = torch.cat((src, src), 1)
    w2 = torch.cat((w, torch.zeros_like(w)), 1)
    merged_src = torch.cat((src[rows_a], src[rows_b]), 1)
    merged_w = torch.cat((w[rows_a], w[rows_b]), 1) * 0.5
    if new_rows is None:
        src2[rows_a] = merged_src
        w2[rows_a] = merged_w
        return src2, w2
    return torch.cat((src2, merged_src)), torch.cat((w2, merged_w))


def _rank(priority: torch.Tensor) -> torch.Tensor:
    """0..n-1, higher for higher priority; ties go to the later index (stable sort)."""
    order = torch.argsort(priority, stable=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order), device=order.device)
    return rank


def collapse(v, faces, src, w, lim, topo: Topology):
    """One round of short-edge collapses. ``lim [V,2]`` holds per-vertex (min, max) lengths.

    Candidates: edges shorter than the mean ``min`` of their endpoints, and the shortest edge of
    every face that is tiny, a sliver, or flipped against its vertices' normals. A candidate
    (a, b) is valid when: a and b share exactly the two opposite vertices (link condition), no
    vertex ends with valence < 3, and every surviving face around a or b, with a and b merged
    at their midpoint, keeps a normal within ``MAX_COLLAPSE_ANGLE_DEG`` of its old one, a
    quality >= ``MIN_QUALITY`` (or no lower than the worst of them had) and edges no longer
    than the mean ``max`` of their endpoints.
    In up to ``COLLAPSE_ROUNDS`` rounds, the candidates with no higher-priority (or accepted)
    candidate at graph distance < 2 are checked and the valid ones accepted; the rest wait for
    a later pass. So the chosen collapses touch disjoint sets of faces and are checked exactly.
    The lower index survives with the mean of both endpoints.
    Returns ``(v, faces, src, w, lim, count)``.
    """
    nv, nf = v.shape[0], faces.shape[0]
    a, b = topo.edges[:, 0], topo.edges[:, 1]
    length = (v[a] - v[b]).norm(dim=-1)
    tmin = 0.5 * (lim[a, 0] + lim[b, 0])
    priority = (1.0 - length / tmin).clamp_min(0.0)
    n, q = face_normals(v, faces)
    vn = torch.zeros_like(v)
    for k in range(3):
        vn.index_add_(0, faces[:, k], n)
    ref = vn[faces].sum(1)
    fmin = lim[faces, 0].mean(1)
    bad = (0.5 * n.norm(dim=-1) < AREA_RATIO * fmin**2) | (q < SLIVER_QUALITY)
    bad |= (n * ref).sum(-1) < 0
    face_edges = topo.he_edge.view(nf, 3)
    shortest = face_edges.gather(1, length[face_edges].argmin(1, keepdim=True))[:, 0]
    forced = torch.zeros_like(priority).index_fill_(0, shortest[bad], 1.0)
    priority = priority + forced
    cand = (priority > 0).nonzero().squeeze(1)
    if len(cand) == 0:
        return v, faces, src, w, lim, 0
    val = topo.valence
    o0 = topo.he_opp[topo.edge_he[cand, 0]]
    o1 = topo.he_opp[topo.edge_he[cand, 1]]
    cand = cand[(val[a[cand]] + val[b[cand]] >= 7) & (val[o0] >= 4) & (val[o1] >= 4)]
    # closed manifold: the outgoing half-edges of a vertex are its corners, as many as its
    # valence, and their ends are its neighbours
    corner_of = torch.argsort(topo.he_from, stable=True)
    vstart = torch.cumsum(val, 0) - val
    geo = (v, faces, lim, n, q, topo, corner_of, vstart)
    # Rounds: pick the locally best candidates (at graph distance >= 2 from each other and
    # from those already accepted), check only those, keep the valid ones, drop the invalid.
    rank = _rank(priority[cand])
    top = len(cand)
    accepted = torch.zeros(len(cand), dtype=torch.bool, device=v.device)
    pending = torch.ones(len(cand), dtype=torch.bool, device=v.device)
    for _ in range(COLLAPSE_ROUNDS):
        if not bool(pending.any()):
            break
        live = accepted | pending
        r = torch.where(accepted, top, rank)
        r = torch.where(live, r, -1)
        ca, cb = a[cand], b[cand]
        r1 = torch.full((nv,), -1, dtype=torch.long, device=v.device)
        r1.scatter_reduce_(0, torch.cat((ca, cb)), torch.cat((r, r)), "amax")
        r2 = r1.clone()
        r2.scatter_reduce_(0, a, r1[b], "amax")
        r2.scatter_reduce_(0, b, r1[a], "amax")
        blocked = torch.maximum(r2[ca], r2[cb]) > r
        win = (pending & ~blocked).nonzero().squeeze(1)  # blocked ones wait a round
        valid = _collapse_valid(cand[win], a, b, geo)
        accepted[win[valid]] = True
        pending[win] = False
    sel = cand[accepted]
    if len(sel) == 0:
        return v, faces, src, w, lim, 0
    wa, wb = a[sel], b[sel]

    dest = torch.arange(nv, device=v.device)
    dest[wb] = wa
    f2 = dest[faces]
    alive = (f2[:, 0] != f2[:, 1]) & (f2[:, 1] != f2[:, 2]) & (f2[:, 2] != f2[:, 0])
    f2 = f2[alive]
    v2 = v.clone()
    v2[wa] = 0.5 * (v[wa] + v[wb])
    lim2 = lim.clone()
    lim2[wa] = 0.5 * (lim[wa] + lim[wb])
    src2, w2 = _expand(src, w, wa, wb)
    keep_v = torch.ones(nv, dtype=torch.bool, device=v.device)
    keep_v[wb] = False
    new_index = torch.cumsum(keep_v, 0) - 1
    return v2[keep_v], new_index[f2], src2[keep_v], w2[keep_v], lim2[keep_v], len(wa)


def split(v, faces, src, w, lim, topo: Topology, max_new: int | None = None):
    """Split every edge longer than the mean ``max`` of its endpoints at its midpoint (the
    ``max_new`` relatively longest ones if that many is given). A face with one, two or three
    split edges becomes two, three or four faces of the same orientation. The new vertices are
    appended, in edge-key order, with the mean of the two endpoints.
    Returns ``(v, faces, src, w, lim, count)``."""
    nv, nf = v.shape[0], faces.shape[0]
    a, b = topo.edges[:, 0], topo.edges[:, 1]
    ratio = (v[a] - v[b]).norm(dim=-1) / (0.5 * (lim[a, 1] + lim[b, 1]))
    long = ratio > 1.0
    if max_new is not None and int(long.sum()) > max_new:
        long = torch.zeros_like(long)
        if max_new > 0:
            long[torch.topk(ratio, max_new).indices] = True
    sel = long.nonzero().squeeze(1)
    ns = len(sel)
    if ns == 0:
        return v, faces, src, w, lim, 0
    new_id = torch.full((len(a),), -1, dtype=torch.long, device=v.device)
    new_id[sel] = torch.arange(nv, nv + ns, device=v.device)
    side = new_id[topo.he_edge].view(nf, 3)  # vertex on edge (c_i, c_i+1), -1 if none
    is_split = side >= 0
    shrunk = torch.where(is_split, side, faces)
    child = torch.stack((faces, side, shrunk.roll(1, 1)), dim=-1)  # [F, i, 3]
    f2 = torch.cat((shrunk, child[is_split]))
    ea, eb = a[sel], b[sel]
    v2 = torch.cat((v, 0.5 * (v[ea] + v[eb])))
    lim2 = torch.cat((lim, 0.5 * (lim[ea] + lim[eb])))
    src2, w2 = _expand(src, w, ea, eb, new_rows=True)
    return v2, f2, src2, w2, lim2, ns


def flip(v, faces, lim, topo: Topology):
    """Flip edges whose flip lowers the sum of squared valence deviations from 6, largest gain
    first, with disjoint quads. A flip of edge (x, y) with opposite corners o0, o1 needs
    valence(x), valence(y) >= 4, no existing edge o0-o1, a new edge no longer than the mean
    ``max`` of o0 and o1, two new faces of quality >= ``MIN_QUALITY`` whose normals each agree
    (positive dot product) with the old pair's mean unit normal. Vertices never change.
    Returns ``(faces, count)``."""
    nv = v.shape[0]
    h0, h1 = topo.edge_he[:, 0], topo.edge_he[:, 1]
    x, y = topo.he_from[h0], topo.he_to[h0]
    o0, o1 = topo.he_opp[h0], topo.he_opp[h1]
    val = topo.valence
    gain = val[x] + val[y] - val[o0] - val[o1] - 2
    cand = ((gain > 0) & (val[x] >= 4) & (val[y] >= 4) & (o0 != o1)).nonzero().squeeze(1)
    if len(cand) == 0:
        return faces, 0
    x, y, o0, o1, gain = x[cand], y[cand], o0[cand], o1[cand], gain[cand]
    key = torch.minimum(o0, o1) * nv + torch.maximum(o0, o1)
    pos = torch.searchsorted(topo.keys, key).clamp_max(len(topo.keys) - 1)
    ok = topo.keys[pos] != key
    ok &= (v[o0] - v[o1]).norm(dim=-1) <= 0.5 * (lim[o0, 1] + lim[o1, 1])
    px, py, p0, p1 = v[x], v[y], v[o0], v[o1]
    n_a, _ = _normal_quality(px, py, p0)
    n_b, _ = _normal_quality(py, px, p1)
    tiny = torch.finfo(v_dtype(v)).tiny
    mean_n = n_a / n_a.norm(dim=-1, keepdim=True).clamp_min(tiny)
    mean_n = mean_n + n_b / n_b.norm(dim=-1, keepdim=True).clamp_min(tiny)
    for pa, pb, pc in ((px, p1, p0), (p1, py, p0)):
        n_new, q_new = _normal_quality(pa, pb, pc)
        ok &= ((n_new * mean_n).sum(-1) > 0) & (q_new >= MIN_QUALITY)
    sel = ok.nonzero().squeeze(1)
    if len(sel) == 0:
        return faces, 0
    quad = torch.stack((x, y, o0, o1), 1)[sel]
    rank = _rank(gain[sel].to(v.dtype))
    r = torch.full((nv,), -1, dtype=torch.long, device=v.device)
    r.scatter_reduce_(0, quad.reshape(-1), rank.repeat_interleave(4), "amax")
    win = r[quad].amax(1) == rank
    quad = quad[win]
    e = cand[sel[win]]
    f2 = faces.clone()
    f2[topo.edge_he[e, 0] // 3] = quad[:, [0, 3, 2]]
    f2[topo.edge_he[e, 1] // 3] = quad[:, [3, 1, 2]]
    return f2, len(e)


def _collapse_valid(cand, a, b, geo) -> torch.Tensor:
    """Link, geometry and length checks of the collapses ``cand`` (edge indices, pairwise at
    graph distance >= 2, so each is checked on the unchanged mesh); [C] bool."""
    v, faces, lim, n, q, topo, corner_of, vstart = geo
    nv = v.shape[0]
    val = topo.valence
    ca, cb = a[cand], b[cand]
    nc = len(cand)
    ok = torch.ones(nc, dtype=torch.bool, device=v.device)
    if nc == 0:
        return ok
    # link condition: a and b have exactly two common neighbours
    nbr = topo.he_to[corner_of]
    ends = torch.cat((ca, cb))
    flat, owner = _ranges(vstart[ends], val[ends])
    owner = owner % nc
    pair = owner * nv + nbr[flat]
    uniq_pairs, pc = torch.unique(pair, return_counts=True)
    common = torch.bincount(uniq_pairs[pc == 2] // nv, minlength=nc)
    ok &= common == 2

    # geometry of every surviving face around a or b, after the merge
    fid = corner_of[flat] // 3
    fv = faces[fid]
    is_a = fv == ca[owner, None]
    is_b = fv == cb[owner, None]
    keep = ~(is_a.any(1) & is_b.any(1))
    fid, fv, owner, merged = fid[keep], fv[keep], owner[keep], (is_a | is_b)[keep]
    mid = 0.5 * (v[ca] + v[cb])
    p_new = torch.where(merged[..., None], mid[owner, None, :], v[fv])
    n_new, q_new = _normal_quality(p_new[:, 0], p_new[:, 1], p_new[:, 2])
    n_old = n[fid]
    cos = math.cos(math.radians(MAX_COLLAPSE_ANGLE_DEG))
    turned = (n_new * n_old).sum(-1) < cos * n_new.norm(dim=-1) * n_old.norm(dim=-1)
    e_len = (p_new - p_new.roll(-1, 1)).norm(dim=-1)
    lim_mid = 0.5 * (lim[ca, 1] + lim[cb, 1])
    vmax = torch.where(merged, lim_mid[owner, None], lim[fv, 1])
    e_max = 0.5 * (vmax + vmax.roll(-1, 1))
    touches = merged | merged.roll(-1, 1)
    too_long = (touches & (e_len > e_max)).any(1)
    # quality: no new face below MIN_QUALITY, unless none of the old ones was above it either
    worst_old = torch.full((nc,), float("inf"), dtype=q.dtype, device=q.device)
    worst_old.scatter_reduce_(0, owner, q[fid], "amin")
    floor = torch.clamp(worst_old, max=MIN_QUALITY)[owner]
    fail = turned | (q_new < floor) | too_long
    ok &= torch.bincount(owner[fail], minlength=nc) == 0

    return ok
