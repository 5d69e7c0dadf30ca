"""Generate the demo meshes shipped in assets/meshes/ (deterministic; rerun to rebuild them).

    python scripts/make_demo_meshes.py [--out assets/meshes]

Five small watertight meshes with sRGB vertex colours, each centred on its bounding box with
its farthest vertex at radius 0.9 (so the studio's default cameras frame them and RenderNet's
unit ball holds them). They are deliberately unlike RenderNet's training grammar (furniture of
boxes and cylinders, random CSG of primitives, superquadrics): a tube swept along a torus knot,
a lumpy long-eared critter, a mug with a toroidal handle, a low-poly figure of hulled spheres
and a thin-walled vase of revolution.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

RADIUS = 0.9


def _trimesh_of(m):
    import trimesh

    mesh = m.to_mesh()
    return trimesh.Trimesh(np.asarray(mesh.vert_properties)[:, :3], np.asarray(mesh.tri_verts))


def torus_knot(p: int = 2, q: int = 3, n_along: int = 240, n_around: int = 12,
               tube: float = 0.42):
    """A tube of radius ``tube`` swept along the (p, q) torus knot, closed on itself."""
    import trimesh

    t = np.arange(n_along) * (2 * np.pi / n_along)
    r = 2.0 + np.cos(q * t)
    c = np.stack([r * np.cos(p * t), -np.sin(q * t), r * np.sin(p * t)], -1)
    # Frenet frame from periodic central differences, so the tube closes without a seam.
    d1 = (np.roll(c, -1, 0) - np.roll(c, 1, 0)) / 2
    d2 = np.roll(c, -1, 0) - 2 * c + np.roll(c, 1, 0)
    tan = d1 / np.linalg.norm(d1, axis=1, keepdims=True)
    nrm = d2 - (d2 * tan).sum(1, keepdims=True) * tan
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
    bin_ = np.cross(tan, nrm)
    a = np.arange(n_around) * (2 * np.pi / n_around)
    ring = np.cos(a)[None, :, None] * nrm[:, None] + np.sin(a)[None, :, None] * bin_[:, None]
    verts = (c[:, None] + tube * ring).reshape(-1, 3)
    i, j = np.meshgrid(np.arange(n_along), np.arange(n_around), indexing="ij")
    i1, j1 = (i + 1) % n_along, (j + 1) % n_around
    v00, v10 = i * n_around + j, i1 * n_around + j
    v01, v11 = i * n_around + j1, i1 * n_around + j1
    faces = np.concatenate([np.stack([v00, v10, v11], -1).reshape(-1, 3),
                            np.stack([v00, v11, v01], -1).reshape(-1, 3)])
    mesh = trimesh.Trimesh(verts, faces, process=False)
    if mesh.volume < 0:
        mesh.invert()
    hue = np.repeat(t, n_around) / (2 * np.pi)
    return mesh, _palette(hue, [(0.9, 0.35, 0.2), (0.95, 0.8, 0.25), (0.2, 0.55, 0.9)])


def critter(seed: int = 3, subdivisions: int = 4):
    """A star-shaped lumpy body with two long ears: a sphere displaced radially by smooth
    bumps (a bunny-like blob, but no part of any training grammar)."""
    import trimesh

    rng = np.random.default_rng(seed)
    s = trimesh.creation.icosphere(subdivisions=subdivisions)
    d = s.vertices / np.linalg.norm(s.vertices, axis=1, keepdims=True)
    r = np.ones(len(d))
    r *= 1.0 + 0.25 * np.exp(-((d[:, 1] + 0.3) ** 2) / 0.3)  # a wider lower body
    for _ in range(7):  # gentle random lumps
        c = rng.normal(size=3)
        c /= np.linalg.norm(c)
        r += rng.uniform(0.05, 0.15) * np.exp(-np.sum((d - c) ** 2, 1) / rng.uniform(0.1, 0.3))
    for side in (-1.0, 1.0):  # ears: narrow, tall bumps leaning out and back
        c = np.array([0.35 * side, 0.9, -0.25])
        c /= np.linalg.norm(c)
        r += 0.9 * np.exp(-np.sum((d - c) ** 2, 1) / 0.025)
    c = np.array([0.0, 0.35, 1.0])  # a snout
    r += 0.3 * np.exp(-np.sum((d - c / np.linalg.norm(c)) ** 2, 1) / 0.08)
    mesh = trimesh.Trimesh(d * r[:, None], s.faces, process=False)
    shade = np.clip(0.5 + 0.5 * d[:, 1], 0, 1)
    return mesh, _palette(shade, [(0.55, 0.4, 0.3), (0.85, 0.75, 0.6), (0.95, 0.9, 0.85)])


def mug(segments: int = 64):
    """A cylinder hollowed from the top, with a torus handle: exact CSG with manifold3d."""
    import manifold3d as mf

    body = mf.Manifold.cylinder(1.0, 0.5, 0.5, segments, True)
    inner = mf.Manifold.cylinder(1.0, 0.43, 0.43, segments, True).translate([0, 0, 0.08])
    handle = mf.CrossSection.circle(0.065, 16).translate([0.24, 0]).revolve(40)
    handle = handle.rotate([90.0, 0.0, 0.0]).translate([0.5, 0.0, 0.0])  # ring in the xz plane
    m = mf.Manifold.batch_boolean([body, handle], mf.OpType.Add) - inner
    m = m.rotate([-90.0, 0.0, 0.0])  # the mug's axis along +Y, opening up
    mesh = _trimesh_of(m)
    v = mesh.vertices
    handle = (v[:, 0] > 0.52).astype(float)  # red handle, white body
    return mesh, _palette(handle, [(0.92, 0.92, 0.88), (0.8, 0.15, 0.2)])


def figure(segments: int = 12):
    """A low-poly standing figure: head, torso, arms and legs, each the hull of two spheres,
    fused by a union."""
    import manifold3d as mf

    def limb(a, b, ra, rb):
        return mf.Manifold.batch_hull([mf.Manifold.sphere(ra, segments).translate(a),
                                       mf.Manifold.sphere(rb, segments).translate(b)])

    parts = [
        mf.Manifold.sphere(0.32, segments).translate([0.0, 1.55, 0.0]),   # head
        limb([0.0, 1.05, 0.0], [0.0, 0.35, 0.0], 0.38, 0.3),              # torso
        limb([-0.35, 1.05, 0.0], [-0.75, 0.35, 0.15], 0.13, 0.1),         # arms
        limb([0.35, 1.05, 0.0], [0.8, 1.4, 0.1], 0.13, 0.1),
        limb([-0.17, 0.3, 0.0], [-0.3, -0.75, 0.05], 0.16, 0.12),         # legs
        limb([0.17, 0.3, 0.0], [0.3, -0.75, -0.1], 0.16, 0.12),
        limb([-0.3, -0.8, 0.05], [-0.3, -0.85, 0.3], 0.12, 0.1),          # feet
        limb([0.3, -0.8, -0.1], [0.3, -0.85, 0.15], 0.12, 0.1),
    ]
    mesh = _trimesh_of(mf.Manifold.batch_boolean(parts, mf.OpType.Add))
    y = mesh.vertices[:, 1]
    return mesh, _palette((y - y.min()) / np.ptp(y), [(0.2, 0.3, 0.6), (0.3, 0.6, 0.4),
                                                      (0.95, 0.75, 0.55)])


def vase(segments: int = 48, n_profile: int = 32):
    """A thin-walled vase: a wavy profile revolved about Y (open at the top, closed floor)."""
    import manifold3d as mf

    y = np.linspace(0.0, 2.0, n_profile)
    r = 0.35 + 0.3 * np.sin(np.pi * y / 2.4) ** 2 - 0.12 * np.sin(np.pi * y) + 0.06 * (y > 1.7)
    wall, floor = 0.05, 0.08
    outer = list(zip(r, y, strict=True))
    inner = [(ri - wall, yi) for ri, yi in zip(r[::-1], y[::-1], strict=True) if yi > floor]
    poly = [(0.0, 0.0)] + outer + inner + [(0.0, floor)]
    m = mf.CrossSection([poly]).revolve(segments).rotate([-90.0, 0.0, 0.0])
    mesh = _trimesh_of(m)
    h = mesh.vertices[:, 1]
    return mesh, _palette((h - h.min()) / np.ptp(h), [(0.1, 0.35, 0.45), (0.35, 0.7, 0.75),
                                                      (0.95, 0.95, 0.9)])


def _palette(t: np.ndarray, stops: list[tuple[float, float, float]]) -> np.ndarray:
    """Piecewise-linear colour ramp of t in [0,1] (periodic values are wrapped) -> [N,3] sRGB."""
    t = np.mod(np.asarray(t, np.float64), 1.0 + 1e-9)
    x = np.linspace(0, 1, len(stops))
    s = np.asarray(stops)
    return np.stack([np.interp(t, x, s[:, k]) for k in range(3)], -1)


MESHES = {"torus_knot": torus_knot, "critter": critter, "mug": mug, "figure": figure,
          "vase": vase}


def build(name: str):
    """``(vertices [V,3], faces [F,3], srgb colours [V,3])`` of one demo mesh, normalised."""
    mesh, colors = MESHES[name]()
    if len(colors) != len(mesh.vertices):  # trimesh merged vertices: recompute per vertex
        raise RuntimeError(f"{name}: colours lost track of vertices")
    if not mesh.is_watertight:
        raise RuntimeError(f"{name}: not watertight")
    v = np.asarray(mesh.vertices, np.float64)
    v = v - 0.5 * (v.min(0) + v.max(0))
    v *= RADIUS / np.linalg.norm(v, axis=1).max()
    return v, np.asarray(mesh.faces, np.int64), colors


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "assets" / "meshes")
    args = ap.parse_args(argv)
    import render_core as rc

    args.out.mkdir(parents=True, exist_ok=True)
    for name in MESHES:
        v, f, srgb = build(name)
        mesh = rc.Mesh(torch.from_numpy(v).float(), torch.from_numpy(f),
                       vertex_colors=rc.srgb_to_linear(torch.from_numpy(srgb).float()))
        path = args.out / f"{name}.ply"
        rc.save_mesh(mesh, path)
        print(f"{path.name}: {len(v)} vertices, {len(f)} faces, {path.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
