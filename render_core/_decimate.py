"""Topology-preserving quadric edge collapse, vectorised in rounds (private; numpy, CPU).

Every round collapses a set of edges whose neighbourhoods do not overlap, so the collapses are
independent and can be done at once:

- cost: the Garland-Heckbert quadric error (area-weighted face planes summed per vertex) of
  the best point on the edge;
- selection: among the cheapest edges (a fraction per round), an edge is taken when it has the
  lowest (seeded random) priority among all edges touching any face around either endpoint;
  two taken edges then share no face, and no endpoint of one is a neighbour of an endpoint of
  the other; a few passes fill the gaps;
- safety: the link condition (the endpoints have exactly the two opposite vertices as common
  neighbours), so the mesh stays a closed 2-manifold of the same genus; and no face around the
  edge may flip or collapse to zero area. Rejected edges are not tried again.

The input must be a closed, consistently oriented 2-manifold; so is the output.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def _face_quadrics(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    a, b, c = (verts[faces[:, k]] for k in range(3))
    n = np.cross(b - a, c - a)
    area2 = np.linalg.norm(n, axis=1, keepdims=True)
    n = n / np.maximum(area2, 1e-300)
    plane = np.concatenate([n, -(n * a).sum(1, keepdims=True)], 1)  # [F,4]
    return 0.5 * area2[:, :, None] * plane[:, :, None] * plane[:, None, :]  # [F,4,4]


_PACK = [(0, 0), (0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 3), (2, 2), (2, 3), (3, 3)]


def _vertex_quadrics(verts, faces) -> np.ndarray:
    """Per-vertex quadrics [V,10]: the upper triangle of the symmetric 4x4 (see ``_PACK``)."""
    qf = _face_quadrics(verts, faces)
    idx = faces.reshape(-1)
    cols = [np.bincount(idx, np.repeat(qf[:, r, c], 3), verts.shape[0]) for r, c in _PACK]
    return np.stack(cols, 1)


def _edge_costs(verts, q, edges):
    """Best point on each edge (t in [0,1]) under the summed quadric; returns (pos, cost)."""
    qa, qb, qc, qd, qe, qf, qg, qh, qi, qj = (q[edges[:, 0]] + q[edges[:, 1]]).T
    p = verts[edges[:, 0]]
    d = verts[edges[:, 1]] - p
    x, y, z = p.T
    dx, dy, dz = d.T
    m0 = qa * dx + qb * dy + qc * dz  # (Q d) rows
    m1 = qb * dx + qe * dy + qf * dz
    m2 = qc * dx + qf * dy + qh * dz
    m3 = qd * dx + qg * dy + qi * dz
    aa = dx * m0 + dy * m1 + dz * m2  # d'Qd
    bb = x * m0 + y * m1 + z * m2 + m3  # p'Qd
    cc = (qa * x * x + qe * y * y + qh * z * z + qj
          + 2 * (qb * x * y + qc * x * z + qd * x + qf * y * z + qg * y + qi * z))  # p'Qp
    t = np.clip(np.where(aa > 1e-300, -bb / np.maximum(aa, 1e-300), 0.5), 0.0, 1.0)
    cost = cc + 2 * t * bb + t * t * aa
    return p + t[:, None] * d, np.maximum(cost, 0.0)


def decimate(verts: np.ndarray, faces: np.ndarray, target: int, max_rounds: int = 200,
             cheapest: float = 0.3):
    """Collapse edges of a closed manifold mesh until it has at most ``target`` faces (or no
    edge can be collapsed safely). Each round only considers the ``cheapest`` fraction of the
    edges, so the order stays close to the sequential greedy one. Returns new
    ``(verts [V',3] float64, faces [F',3] int64)``."""
    verts = np.array(verts, np.float64)
    faces = np.array(faces, np.int64)
    q = _vertex_quadrics(verts, faces)
    banned = np.zeros(0, np.int64)
    big = np.iinfo(np.int64).max
    rng = np.random.default_rng(0)  # deterministic
    for _ in range(max_rounds):
        nf, nv = faces.shape[0], verts.shape[0]
        if nf <= target:
            break
        e_all = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
        edges = e_all[e_all[:, 0] < e_all[:, 1]]  # closed and oriented: each edge once
        keys = edges[:, 0] * nv + edges[:, 1]
        pos, cost = _edge_costs(verts, q, edges)
        if banned.size:
            cost[np.isin(keys, banned)] = np.inf
        finite = np.isfinite(cost)
        if not finite.any():
            break
        # Priorities among the cheapest edges are random: ranked by cost, a smooth cost field
        # has few local minima and the rounds would collapse few edges each.
        limit = np.quantile(cost[finite], cheapest)
        rank = rng.permutation(len(keys)).astype(np.int64)
        rank[~finite | (cost > limit)] = big
        chosen = _independent_edges(faces, nv, edges, rank)
        if chosen.size == 0:
            break
        ok = _link_ok(faces, nv, edges[chosen]) & _no_flip(verts, faces, edges[chosen],
                                                            pos[chosen])
        banned = np.concatenate([banned, keys[chosen[~ok]]])
        chosen = chosen[ok]
        if chosen.size == 0:
            continue
        excess = (nf - target) // 2 + 1  # each collapse removes two faces
        if chosen.size > excess:
            chosen = chosen[np.argsort(cost[chosen], kind="stable")[:excess]]
        faces, touched = _collapse(verts, faces, q, edges[chosen], pos[chosen])
        # A rejected edge is retried once its neighbourhood has changed.
        if banned.size:
            banned = banned[~(touched[banned // nv] | touched[banned % nv])]
    used = np.zeros(verts.shape[0], bool)
    used[faces.reshape(-1)] = True
    new_id = np.cumsum(used) - 1
    return verts[used], new_id[faces]


def _independent_edges(faces, nv, edges, rank, passes: int = 4):
    """Edges (ids) whose neighbourhoods (faces around either endpoint) are pairwise disjoint,
    picked as local minima of ``rank`` (``int64 max`` = not eligible) in a few passes."""
    big = np.iinfo(np.int64).max
    blocked = np.zeros(nv, bool)
    picked = []
    for _ in range(passes):
        r = np.where(blocked[edges[:, 0]] | blocked[edges[:, 1]], big, rank)
        if not (r < big).any():
            break
        vbest = np.full(nv, big, np.int64)
        np.minimum.at(vbest, edges[:, 0], r)
        np.minimum.at(vbest, edges[:, 1], r)
        fbest = vbest[faces].min(1)
        vregion = np.full(nv, big, np.int64)
        for k in range(3):
            np.minimum.at(vregion, faces[:, k], fbest)
        win = np.nonzero((r < big) & (vregion[edges[:, 0]] == r) & (vregion[edges[:, 1]] == r))[0]
        if win.size == 0:
            break
        picked.append(win)
        ends = np.zeros(nv, bool)
        ends[edges[win].reshape(-1)] = True
        region = ends[faces].any(1)
        blocked[faces[region].reshape(-1)] = True
    return np.concatenate(picked) if picked else np.zeros(0, np.int64)


def _link_ok(faces, nv, e):
    """Link condition on a closed manifold: exactly two common neighbours (and not both
    endpoints of valence 3, which would flatten a tetrahedron)."""
    f = faces
    rows = np.concatenate([f[:, 0], f[:, 1], f[:, 2], f[:, 1], f[:, 2], f[:, 0]])
    cols = np.concatenate([f[:, 1], f[:, 2], f[:, 0], f[:, 0], f[:, 1], f[:, 2]])
    adj = sp.csr_matrix((np.ones(rows.size, np.int32), (rows, cols)), shape=(nv, nv))
    adj.data[:] = 1
    common = np.asarray(adj[e[:, 0]].multiply(adj[e[:, 1]]).sum(1)).ravel()
    deg = np.diff(adj.indptr)
    not_tetra = (deg[e[:, 0]] > 3) | (deg[e[:, 1]] > 3)
    return (common == 2) & not_tetra


def _no_flip(verts, faces, e, pos, min_cos=0.2):
    """No face around a collapsed edge may flip, turn more than ~78°, or lose its area."""
    nv = verts.shape[0]
    owner = np.full(nv, -1, np.int64)
    owner[e[:, 0]] = np.arange(len(e))
    owner[e[:, 1]] = np.arange(len(e))
    fo = owner[faces]  # [F,3]
    touched = (fo >= 0).any(1)
    ft = faces[touched]
    fot = fo[touched]
    eid = fot.max(1)  # regions are disjoint: one edge per touched face
    is_a = ft == e[eid, 0][:, None]
    is_b = ft == e[eid, 1][:, None]
    removed = is_a.any(1) & is_b.any(1)
    old = verts[ft]
    new = np.where((is_a | is_b)[:, :, None], pos[eid][:, None, :], old)
    n_old = np.cross(old[:, 1] - old[:, 0], old[:, 2] - old[:, 0])
    n_new = np.cross(new[:, 1] - new[:, 0], new[:, 2] - new[:, 0])
    lo_ = np.linalg.norm(n_old, axis=1)
    ln = np.linalg.norm(n_new, axis=1)
    cos = (n_old * n_new).sum(1) / np.maximum(lo_ * ln, 1e-300)
    bad_face = ~removed & ((cos < min_cos) | (ln <= 1e-12 * np.maximum(lo_, 1e-300)))
    bad = np.zeros(len(e), bool)
    bad[eid[bad_face]] = True
    return ~bad


def _collapse(verts, faces, q, e, pos):
    """Collapse edges ``e`` [K,2] (b onto a, moved to ``pos``) in place in ``verts`` and ``q``;
    vertex b stays as an unused row. Returns the new faces and the mask of vertices whose
    neighbourhood changed."""
    a, b = e[:, 0], e[:, 1]
    verts[a] = pos
    q[a] += q[b]
    ends = np.zeros(verts.shape[0], bool)
    ends[e.reshape(-1)] = True
    touched = np.zeros(verts.shape[0], bool)
    touched[faces[ends[faces].any(1)].reshape(-1)] = True
    remap = np.arange(verts.shape[0])
    remap[b] = a
    faces = remap[faces]
    f0, f1, f2 = faces.T
    keep = (f0 != f1) & (f1 != f2) & (f0 != f2)
    return faces[keep], touched
