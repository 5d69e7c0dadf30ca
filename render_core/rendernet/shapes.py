"""Seeded procedural training shapes: furniture grammars, random CSG, superquadrics.

Every generator takes a ``numpy.random.Generator`` and returns a watertight ``trimesh.Trimesh``
normalised by :func:`normalize` (bounding box centred at the origin, farthest vertex at
radius ``RADIUS``), so that any rotation of the shape stays inside the voxel cube [-1,1]^3 and
inside an orthographic view volume of half-height 1. ``make_shape(seed)`` is the one entry point
the data pipeline uses: the same seed always gives the same mesh.

Parts are fused with manifold3d booleans when it is installed (no interior faces, so creases at
part junctions are real geometry for the contour target); without it the parts are simply
concatenated, which the winding-number voxelizer still handles.
"""

from __future__ import annotations

import numpy as np
import trimesh

try:  # optional: exact booleans for CSG and for fusing furniture parts
    import manifold3d as _mf
except ImportError:  # pragma: no cover - exercised only without the extra
    _mf = None

RADIUS = 0.92
"""Distance of the farthest vertex from the origin after normalisation (leaves a voxel margin)."""

KINDS = ("chair", "table", "shelf", "csg", "superquadric")


def normalize(mesh: trimesh.Trimesh, radius: float = RADIUS) -> trimesh.Trimesh:
    """Centre the bounding box at the origin and scale the farthest vertex to ``radius``."""
    v = np.asarray(mesh.vertices, dtype=np.float64)
    v = v - 0.5 * (v.min(0) + v.max(0))
    v = v * (radius / max(np.linalg.norm(v, axis=1).max(), 1e-9))
    return trimesh.Trimesh(v, np.asarray(mesh.faces), process=True)


# ---------------------------------------------------------------------------------------------
# parts: boxes and cylinders, as manifolds when possible
# ---------------------------------------------------------------------------------------------


class _Part:
    """A primitive as (manifold or trimesh); both expose the few ops the grammars need."""

    def __init__(self, kind: str, size, center, segments: int = 24):
        sx, sy, sz = (float(s) for s in size)
        cx, cy, cz = (float(c) for c in center)
        self.kind = kind
        if _mf is not None:
            if kind == "box":
                m = _mf.Manifold.cube([sx, sy, sz], True)
            else:  # cylinder along +Y with diameter sx (x) and sz (z)
                m = _mf.Manifold.cylinder(sy, 0.5, 0.5, segments, True)
                m = m.rotate([-90.0, 0.0, 0.0]).scale([sx, 1.0, sz])
            self.m = m.translate([cx, cy, cz])
        else:
            if kind == "box":
                t = trimesh.creation.box([sx, sy, sz])
            else:
                t = trimesh.creation.cylinder(radius=0.5, height=sy, sections=segments)
                t.apply_transform(trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0]))
                t.apply_scale([sx, 1.0, sz])
            t.apply_translation([cx, cy, cz])
            self.m = t


def _fuse(parts: list[_Part]) -> trimesh.Trimesh:
    if _mf is not None:
        u = _mf.Manifold.batch_boolean([p.m for p in parts], _mf.OpType.Add)
        return _manifold_to_trimesh(u)
    return trimesh.util.concatenate([p.m for p in parts])


def _manifold_to_trimesh(m) -> trimesh.Trimesh:
    mesh = m.to_mesh()
    return trimesh.Trimesh(np.asarray(mesh.vert_properties)[:, :3], np.asarray(mesh.tri_verts))


def _leg(rng: np.random.Generator, w: float, h: float, cx: float, cz: float, y0: float,
         round_leg: bool) -> _Part:
    return _Part("cyl" if round_leg else "box", (w, h, w), (cx, y0 + h / 2, cz))


# ---------------------------------------------------------------------------------------------
# grammars
# ---------------------------------------------------------------------------------------------


def chair(rng: np.random.Generator) -> trimesh.Trimesh:
    """Seat, four legs (boxes or cylinders), a back (solid or slats), optional arms."""
    sw, sd = rng.uniform(0.8, 1.3), rng.uniform(0.8, 1.3)
    st, lh = rng.uniform(0.06, 0.16), rng.uniform(0.6, 1.1)
    lw, rnd = rng.uniform(0.06, 0.14), bool(rng.random() < 0.4)
    parts = [_Part("box", (sw, st, sd), (0, lh + st / 2, 0))]
    ix, iz = sw / 2 - lw / 2 - rng.uniform(0, 0.08), sd / 2 - lw / 2 - rng.uniform(0, 0.08)
    for sx in (-1, 1):
        for sz in (-1, 1):
            parts.append(_leg(rng, lw, lh, sx * ix, sz * iz, 0.0, rnd))
    bh, bt = rng.uniform(0.5, 1.2), rng.uniform(0.05, 0.12)
    y_top = lh + st
    if rng.random() < 0.5:
        parts.append(_Part("box", (sw, bh, bt), (0, y_top + bh / 2, -sd / 2 + bt / 2)))
    else:  # slats between two posts and a top rail
        pw = rng.uniform(0.06, 0.12)
        for sx in (-1, 1):
            parts.append(_Part("box", (pw, bh, bt), (sx * (sw / 2 - pw / 2), y_top + bh / 2,
                                                     -sd / 2 + bt / 2)))
        parts.append(_Part("box", (sw, 0.12, bt), (0, y_top + bh - 0.06, -sd / 2 + bt / 2)))
        n = int(rng.integers(1, 5))
        for k in range(n):
            x = -sw / 2 + pw + (k + 1) * (sw - 2 * pw) / (n + 1)
            parts.append(_Part("box", (0.06, bh, bt * 0.8), (x, y_top + bh / 2, -sd / 2 + bt / 2)))
    if rng.random() < 0.35:  # arms
        ah = rng.uniform(0.2, 0.4)
        for sx in (-1, 1):
            parts.append(_Part("box", (0.08, 0.06, sd * 0.9), (sx * (sw / 2 - 0.04), y_top + ah,
                                                               0.0)))
            parts.append(_Part("box", (0.06, ah, 0.06), (sx * (sw / 2 - 0.04), y_top + ah / 2,
                                                         sd * 0.4)))
    return _fuse(parts)


def table(rng: np.random.Generator) -> trimesh.Trimesh:
    """A box or round top on four legs, a pedestal, or two slab ends; optional lower shelf."""
    tw, td = rng.uniform(1.0, 2.2), rng.uniform(0.7, 1.4)
    tt, lh = rng.uniform(0.05, 0.14), rng.uniform(0.6, 1.2)
    round_top = bool(rng.random() < 0.3)
    if round_top:
        td = tw = rng.uniform(1.0, 1.6)
    parts = [_Part("cyl" if round_top else "box", (tw, tt, td), (0, lh + tt / 2, 0))]
    style = rng.choice(["legs", "pedestal", "slabs"], p=[0.6, 0.2, 0.2])
    if style == "legs":
        lw, rnd = rng.uniform(0.06, 0.16), bool(rng.random() < 0.5)
        f = 0.35 if round_top else 0.5
        for sx in (-1, 1):
            for sz in (-1, 1):
                parts.append(_leg(rng, lw, lh, sx * (tw * f - lw), sz * (td * f - lw), 0.0, rnd))
        if rng.random() < 0.35:
            parts.append(_Part("box", (tw * 0.8, 0.05, td * 0.8), (0, lh * 0.3, 0)))
    elif style == "pedestal":
        pw = rng.uniform(0.12, 0.3)
        parts.append(_Part("cyl", (pw, lh, pw), (0, lh / 2, 0)))
        parts.append(_Part("cyl", (tw * 0.5, 0.06, td * 0.5), (0, 0.03, 0)))
    else:
        st = rng.uniform(0.06, 0.14)
        for sx in (-1, 1):
            parts.append(_Part("box", (st, lh, td * 0.9), (sx * (tw / 2 - st), lh / 2, 0)))
    return _fuse(parts)


def shelf(rng: np.random.Generator) -> trimesh.Trimesh:
    """Two sides, a top and bottom, 1-4 shelves, optional back panel and dividers."""
    w, h, d = rng.uniform(0.6, 1.6), rng.uniform(0.8, 2.0), rng.uniform(0.3, 0.7)
    t = rng.uniform(0.04, 0.1)
    parts = [_Part("box", (t, h, d), (sx * (w / 2 - t / 2), h / 2, 0)) for sx in (-1, 1)]
    n = int(rng.integers(1, 5))
    for k in range(n + 2):
        y = t / 2 + k * (h - t) / (n + 1)
        parts.append(_Part("box", (w, t, d), (0, y, 0)))
    if rng.random() < 0.5:
        parts.append(_Part("box", (w, h, t * 0.6), (0, h / 2, -d / 2 + t * 0.3)))
    if rng.random() < 0.3:
        parts.append(_Part("box", (t, h, d), (rng.uniform(-0.2, 0.2) * w, h / 2, 0)))
    return _fuse(parts)


def csg(rng: np.random.Generator) -> trimesh.Trimesh:
    """Random booleans of boxes, spheres and cylinders (union, difference, intersection)."""
    if _mf is None:
        return superquadric(rng)
    M = _mf.Manifold

    def prim():
        k = rng.integers(3)
        s = rng.uniform(0.4, 1.2, size=3)
        if k == 0:
            m = M.cube(list(s), True)
        elif k == 1:
            m = M.sphere(0.5, 48).scale(list(s))
        else:
            m = M.cylinder(1.0, 0.5, 0.5, 40, True).scale(list(s))
        m = m.rotate(list(rng.uniform(-180, 180, size=3)))
        return m.translate(list(rng.uniform(-0.45, 0.45, size=3)))

    for _ in range(10):  # retry until a non-degenerate solid survives the booleans
        shape = prim()
        for _ in range(int(rng.integers(2, 6))):
            op = rng.choice(["add", "sub", "int"], p=[0.5, 0.38, 0.12])
            other = prim()
            cand = shape + other if op == "add" else shape - other if op == "sub" else shape ^ other
            if not cand.is_empty() and cand.volume() > 0.05:
                shape = cand
        if not shape.is_empty() and shape.volume() > 0.05:
            return _manifold_to_trimesh(shape)
    return _manifold_to_trimesh(M.sphere(0.6, 48))


def superquadric(rng: np.random.Generator, n_u: int = 48, n_v: int = 24) -> trimesh.Trimesh:
    """A superellipsoid |x/a|^(2/e2)... with random exponents, axes and orientation."""
    e1, e2 = rng.uniform(0.2, 2.0, size=2)
    a = rng.uniform(0.4, 1.0, size=3)

    def f(w, e):  # signed power keeps the octant
        return np.sign(w) * np.abs(w) ** e

    eta = np.linspace(-np.pi / 2, np.pi / 2, n_v + 1)[1:-1]
    om = np.linspace(-np.pi, np.pi, n_u, endpoint=False)
    E, O = np.meshgrid(eta, om, indexing="ij")
    x = a[0] * f(np.cos(E), e1) * f(np.cos(O), e2)
    y = a[1] * f(np.cos(E), e1) * f(np.sin(O), e2)
    z = a[2] * f(np.sin(E), e1) * np.ones_like(O)
    verts = np.concatenate([np.stack([x, y, z], -1).reshape(-1, 3),
                            [[0, 0, -a[2]], [0, 0, a[2]]]])
    faces = []
    rows = n_v - 1
    for i in range(rows - 1):
        for j in range(n_u):
            p, q = i * n_u + j, i * n_u + (j + 1) % n_u
            faces += [[p, q, q + n_u], [p, q + n_u, p + n_u]]
    south, north = rows * n_u, rows * n_u + 1
    for j in range(n_u):
        faces.append([south, (j + 1) % n_u, j])
        faces.append([north, (rows - 1) * n_u + j, (rows - 1) * n_u + (j + 1) % n_u])
    m = trimesh.Trimesh(verts, np.asarray(faces), process=True)
    m.fix_normals()
    m.apply_transform(trimesh.transformations.random_rotation_matrix(rng.random(3)))
    return m


_GEN = {"chair": chair, "table": table, "shelf": shelf, "csg": csg, "superquadric": superquadric}


def make_shape(seed: int, kind: str | None = None) -> tuple[trimesh.Trimesh, str]:
    """The normalised shape of ``seed`` (kind drawn from the seed unless given) -> (mesh, kind)."""
    rng = np.random.default_rng([seed, 0x52454E44])  # namespaced so seeds don't alias other uses
    if kind is None:
        kind = str(rng.choice(KINDS, p=[0.22, 0.22, 0.16, 0.22, 0.18]))
    mesh = _GEN[kind](rng)
    if kind in ("chair", "table", "shelf") and rng.random() < 0.15:
        # a few furniture pieces lie on a side so "up" is not a given for the network
        mesh.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [0, 0, 1]))
    return normalize(mesh), kind
