"""Procedural meshes: icosphere, subdivided cube, UV sphere.

All are closed (watertight: every edge is shared by exactly two faces), centred at the origin,
with faces counter-clockwise seen from outside (outward normals). Returned on the CPU, float32
vertices and int64 faces, no colours.
"""

from __future__ import annotations

import math

import numpy as np

from .mesh import Mesh


def _icosahedron() -> tuple[np.ndarray, np.ndarray]:
    t = (1.0 + math.sqrt(5.0)) / 2.0
    vertices = np.array(
        [
            [-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0],
            [0, -1, t], [0, 1, t], [0, -1, -t], [0, 1, -t],
            [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1],
        ],
        dtype=np.float64,
    )  # fmt: skip
    faces = np.array(
        [
            [0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11],
            [1, 5, 9], [5, 11, 4], [11, 10, 2], [10, 7, 6], [7, 1, 8],
            [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9],
            [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1],
        ],
        dtype=np.int64,
    )  # fmt: skip
    return vertices / np.linalg.norm(vertices, axis=1, keepdims=True), faces


def _subdivide(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split every triangle into four at its edge midpoints (shared midpoints are reused)."""
    a, b, c = faces.T
    edges = np.sort(np.stack([np.stack([a, b], 1), np.stack([b, c], 1), np.stack([c, a], 1)]), 2)
    unique, inverse = np.unique(edges.reshape(-1, 2), axis=0, return_inverse=True)
    mid = len(vertices) + inverse.reshape(3, -1)  # midpoint vertex of ab, bc, ca per face
    ab, bc, ca = mid
    new_vertices = np.concatenate([vertices, vertices[unique].mean(axis=1)])
    # Corner triangles and the centre one keep the parent's winding.
    new_faces = np.concatenate(
        [np.stack(f, 1) for f in ((a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca))]
    )
    return new_vertices, new_faces


def icosphere(subdivisions: int = 3, radius: float = 1.0) -> Mesh:
    """Geodesic sphere: an icosahedron subdivided ``subdivisions`` times, projected to the
    sphere after every step. 20·4^s faces (s=3: 1,280; s=4: 5,120; s=6: 81,920) and
    10·4^s + 2 vertices, all at distance ``radius`` from the origin."""
    if subdivisions < 0:
        raise ValueError(f"subdivisions must be >= 0, got {subdivisions}")
    vertices, faces = _icosahedron()
    for _ in range(subdivisions):
        vertices, faces = _subdivide(vertices, faces)
        vertices /= np.linalg.norm(vertices, axis=1, keepdims=True)
    return Mesh((vertices * radius).astype(np.float32), faces)


def cube(subdivisions: int = 0, size: float = 2.0) -> Mesh:
    """Axis-aligned cube with edge length ``size`` (default spans [-1, 1]^3), each side split
    into an (s+1)×(s+1) grid of quads, two triangles each: 12·(s+1)² faces and
    6·(s+1)² + 2 vertices, shared along the cube's edges."""
    if subdivisions < 0:
        raise ValueError(f"subdivisions must be >= 0, got {subdivisions}")
    n = subdivisions + 1
    grid = np.arange(n + 1)
    gi, gj = np.meshgrid(grid, grid, indexing="ij")  # [n+1, n+1]
    quad = np.arange((n + 1) ** 2).reshape(n + 1, n + 1)
    p00, p10 = quad[:-1, :-1].ravel(), quad[1:, :-1].ravel()
    p11, p01 = quad[1:, 1:].ravel(), quad[:-1, 1:].ravel()
    local_faces = np.concatenate([np.stack([p00, p10, p11], 1), np.stack([p00, p11, p01], 1)])

    points, faces = [], []
    for axis in range(3):
        # (u, v) with e_u × e_v = +e_axis; swapping them on the negative side flips the
        # winding so both sides face outward.
        u, v = (axis + 1) % 3, (axis + 2) % 3
        for side in (1, -1):
            du, dv = (u, v) if side > 0 else (v, u)
            p = np.zeros((gi.size, 3), dtype=np.int64)
            p[:, axis] = n if side > 0 else 0
            p[:, du], p[:, dv] = gi.ravel(), gj.ravel()
            faces.append(local_faces + sum(len(q) for q in points))
            points.append(p)
    # Integer grid coordinates make welding the shared edge vertices exact.
    unique, inverse = np.unique(np.concatenate(points), axis=0, return_inverse=True)
    vertices = (unique / n - 0.5) * size
    return Mesh(vertices.astype(np.float32), inverse.reshape(-1)[np.concatenate(faces)])


def uv_sphere(rings: int = 16, segments: int = 32, radius: float = 1.0) -> Mesh:
    """Latitude/longitude sphere with poles on ±Y and UVs.

    ``rings`` latitude bands and ``segments`` longitude slices: 2 + (rings-1)·segments
    vertices and 2·segments·(rings-1) faces. u = longitude / 360° (0 at +Z, increasing
    towards +X), v = 1 at the north (+Y) pole, 0 at the south pole. Positions are shared
    across the u = 0/1 seam while ``face_uvs`` index separate UVs on each side, so no
    triangle stretches across the whole texture and the mesh stays watertight.
    """
    if rings < 2 or segments < 3:
        raise ValueError(f"need rings >= 2 and segments >= 3, got {rings} and {segments}")
    theta = np.pi * np.arange(1, rings) / rings  # polar angle of each inner ring
    phi = 2.0 * np.pi * np.arange(segments) / segments
    st, ct = np.sin(theta)[:, None], np.cos(theta)[:, None]
    ring_pos = np.stack(
        [st * np.sin(phi), np.broadcast_to(ct, (rings - 1, segments)), st * np.cos(phi)], -1
    ).reshape(-1, 3)
    vertices = np.concatenate([[[0.0, 1.0, 0.0]], ring_pos, [[0.0, -1.0, 0.0]]]) * radius
    north, south = 0, len(vertices) - 1

    # UVs: (rings-1) x (segments+1) grid (column `segments` duplicates column 0 at u = 1),
    # then one UV per pole triangle, centred on its slice.
    gu, gv = np.meshgrid(np.arange(segments + 1) / segments, 1.0 - np.arange(1, rings) / rings)
    centres = (np.arange(segments) + 0.5) / segments
    uvs = np.concatenate(
        [
            np.stack([gu.ravel(), gv.ravel()], 1),
            np.stack([centres, np.ones(segments)], 1),
            np.stack([centres, np.zeros(segments)], 1),
        ]
    )
    uv_north, uv_south = (rings - 1) * (segments + 1), (rings - 1) * (segments + 1) + segments

    k = np.arange(segments)
    k1 = (k + 1) % segments

    def vid(r: np.ndarray | int, col: np.ndarray) -> np.ndarray:  # ring r = 0..rings-2
        return 1 + r * segments + col

    def tid(r: np.ndarray | int, col: np.ndarray) -> np.ndarray:
        return r * (segments + 1) + col

    faces = [np.stack([np.full(segments, north), vid(0, k), vid(0, k1)], 1)]
    face_uvs = [np.stack([uv_north + k, tid(0, k), tid(0, k + 1)], 1)]
    for r in range(rings - 2):  # quads between ring r (above) and r+1 (below)
        a, b, c, d = vid(r, k), vid(r + 1, k), vid(r + 1, k1), vid(r, k1)
        ta, tb, tc, td = tid(r, k), tid(r + 1, k), tid(r + 1, k + 1), tid(r, k + 1)
        faces += [np.stack([a, b, c], 1), np.stack([a, c, d], 1)]
        face_uvs += [np.stack([ta, tb, tc], 1), np.stack([ta, tc, td], 1)]
    last = rings - 2
    faces.append(np.stack([vid(last, k), np.full(segments, south), vid(last, k1)], 1))
    face_uvs.append(np.stack([tid(last, k), uv_south + k, tid(last, k + 1)], 1))
    return Mesh(
        vertices.astype(np.float32),
        np.concatenate(faces),
        uvs=uvs.astype(np.float32),
        face_uvs=np.concatenate(face_uvs),
    )
