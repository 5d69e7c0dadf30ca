"""The multi-view shape task of ``benchmarks/shape_fit.py``: the shapes (every mesh of
``assets/meshes/`` plus a torus and a dented sphere, normalised to unit radius), the 20 spiral
views and their targets (:func:`make_problem`), and the scores (Chamfer-L2 and F-score,
the height of a cavity's floor). The methods and the report are in ``shape_fit.py``.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the checkout, not an installed copy
from render_core.camera import Camera  # noqa: E402
from render_core.color import linear_to_srgb  # noqa: E402
from render_core.fit import DEFAULT_LIGHT, FitConfig, TargetView  # noqa: E402
from render_core.large_steps import DEFAULT_LAMBDA  # noqa: E402
from render_core.mesh import Mesh, load_mesh  # noqa: E402
from render_core.primitives import icosphere  # noqa: E402
from render_core.rasterize import rasterize  # noqa: E402
from render_core.renderer import Renderer  # noqa: E402
from render_core.shading import DirectionalLight  # noqa: E402
from render_core.shape_metrics import chamfer_l2, f_score, normalize_unit_radius  # noqa: E402

N_VIEWS, RES, DISTANCE, FOV = 20, 64, 2.7, 50.0
SIGMA = FitConfig().sigma  # the Fitter's soft-silhouette sigma, for every method
GOLDEN_ANGLE = 180.0 * (3.0 - math.sqrt(5.0))
# The known light of the lit task: the Fitter's own directional light (its default direction,
# intensity 0.8, ambient 0.3; render_core.fit.Fitter._light), on a uniform grey albedo.
LIT_LIGHT = DirectionalLight(torch.tensor(DEFAULT_LIGHT), intensity=0.8, ambient=0.3)


@dataclass
class Problem:
    """One benchmark case: what a method may use (masks, cameras, views) and its budget."""

    name: str
    gt: Mesh                  # normalised ground truth (for scoring only)
    cameras: Camera           # [N] orbit cameras
    masks: torch.Tensor       # [N,H,W] float32 0/1 hard silhouettes
    azimuth: np.ndarray       # [N] degrees
    elevation: np.ndarray     # [N] degrees
    targets: list             # [N] TargetView: the masks (white), or the lit renders
    task: str = "silhouette"  # or "rgb"
    iters: int = 300
    refine_iters: int = 150
    views_per_step: int = 2
    seed: int = 0
    lam: float = DEFAULT_LAMBDA
    lr: float = 3e-2
    tune: dict | None = None  # FitConfig overrides for (c): --model, --tune


# --------------------------------------------------------------------------- shapes


def torus(major: float = 0.65, minor: float = 0.3, n_major: int = 64, n_minor: int = 32) -> Mesh:
    """A closed torus around the Y axis, faces counter-clockwise seen from outside."""
    th = np.arange(n_major) * 2 * np.pi / n_major
    ph = np.arange(n_minor) * 2 * np.pi / n_minor
    t, p = np.meshgrid(th, ph, indexing="ij")
    ring = major + minor * np.cos(p)
    v = np.stack([ring * np.cos(t), minor * np.sin(p), ring * np.sin(t)], -1).reshape(-1, 3)
    i, j = np.meshgrid(np.arange(n_major), np.arange(n_minor), indexing="ij")
    a = i * n_minor + j
    b = ((i + 1) % n_major) * n_minor + j
    c = ((i + 1) % n_major) * n_minor + (j + 1) % n_minor
    d = i * n_minor + (j + 1) % n_minor
    f = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3),
                        np.stack([a, c, d], -1).reshape(-1, 3)])
    return _outward(v, f)


def dented_sphere(depth: float = 0.45, width: float = 0.45) -> Mesh:
    """A unit icosphere (5 subdivisions) pushed in around +X by a Gaussian dent: a concavity
    that only the silhouettes grazing it can see."""
    s = icosphere(5)
    v = s.vertices.double().numpy()
    angle = np.arccos(np.clip(v[:, 0], -1, 1))
    v = v * (1 - depth * np.exp(-0.5 * (angle / width) ** 2))[:, None]
    return _outward(v, s.faces.numpy())


def _outward(v: np.ndarray, f: np.ndarray) -> Mesh:
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    if np.einsum("ij,ij->i", a, np.cross(b, c)).sum() < 0:  # negative volume: flip winding
        f = f[:, [0, 2, 1]]
    return Mesh(torch.from_numpy(v.astype(np.float32)), torch.from_numpy(f.astype(np.int64)))


def all_shapes() -> dict[str, Mesh]:
    shapes = {p.stem: load_mesh(p) for p in sorted((ROOT / "assets" / "meshes").glob("*.ply"))}
    shapes["torus"] = torus()
    shapes["dented_sphere"] = dented_sphere()
    return {k: normalize_unit_radius(Mesh(m.vertices, m.faces)) for k, m in shapes.items()}


def make_problem(name: str, gt: Mesh, task: str = "silhouette", **budget) -> Problem:
    """The 20 views of ``gt``: hard masks, and as targets either the masks (``silhouette``)
    or Lambertian renders under :data:`LIT_LIGHT` (``rgb``), both by render_core's rasterizer."""
    k = np.arange(N_VIEWS)
    az = (k * GOLDEN_ANGLE) % 360.0
    el = np.linspace(-30.0, 60.0, N_VIEWS)
    cams = Camera.orbit(torch.tensor(az, dtype=torch.float32),
                        torch.tensor(el, dtype=torch.float32), DISTANCE, fov=FOV)
    clip = cams.to_clip(gt.vertices.expand(N_VIEWS, -1, -1))
    masks = (rasterize(clip, gt.faces, RES).face_idx >= 0).float()
    if task == "rgb":
        out = Renderer(RES, shading="lambertian", sigma=1e-5).render(
            fine_facets(gt), cams, light=LIT_LIGHT)
        images = linear_to_srgb(out.rgb.clamp(0, 1)).numpy()
    else:
        images = np.repeat(masks.numpy()[..., None], 3, axis=3)
    targets = [TargetView(images[i], masks[i].numpy(), float(az[i]), float(el[i]), DISTANCE,
                          FOV) for i in range(N_VIEWS)]
    return Problem(name, gt, cams, masks, az, el, targets, task, **budget)


def fine_facets(mesh: Mesh, max_edge: float = 0.03) -> Mesh:
    """The same surface split into faces with edges under ``max_edge`` (under a pixel at the
    object), for rendering lit targets: the renderer shades with interpolated vertex normals,
    which on a coarse mesh blend a sharp rim or a mug's wall over the whole face and show
    shading no surface has; on the split faces they stay within a sliver of each edge."""
    import trimesh

    v, f = trimesh.remesh.subdivide_to_size(mesh.vertices.double().numpy(), mesh.faces.numpy(),
                                            max_edge=max_edge, max_iter=10)
    return Mesh(torch.from_numpy(v.astype(np.float32)), torch.from_numpy(f.astype(np.int64)))


def start_sphere() -> Mesh:
    return icosphere(4, radius=1.0)


# --------------------------------------------------------------------------- scores


def score(mesh: Mesh, gt: Mesh, samples: int) -> tuple[float, float]:
    return (chamfer_l2(mesh, gt, samples=samples), f_score(mesh, gt, 0.02, samples=samples))


CAVITY_MESHES = ("mug", "vase")
"""Meshes open towards +Y whose cavity no silhouette shows: their rows also print the
height of the cavity's floor (:func:`cavity_floor`)."""


def cavity_floor(mesh: Mesh, radius: float = 0.2, rings: int = 3, per_ring: int = 8) -> float:
    """Mean height of the topmost surface under vertical rays cast down within ``radius``
    of the Y axis (the axis and ``rings`` rings of ``per_ring`` rays): on a mug, its inner
    floor; on a hull that fills the cavity, the cap at the rim."""
    import trimesh

    tm = trimesh.Trimesh(mesh.vertices.double().numpy(), mesh.faces.numpy(), process=False)
    r = np.repeat(np.linspace(0.0, radius, rings + 1)[1:], per_ring)
    a = np.tile(np.arange(per_ring) * 2 * np.pi / per_ring, rings)
    xz = np.concatenate([[[0.0, 0.0]], np.stack([r * np.cos(a), r * np.sin(a)], 1)])
    origins = np.stack([xz[:, 0], np.full(len(xz), 3.0), xz[:, 1]], 1)
    loc, ray, _ = tm.ray.intersects_location(origins, np.tile([0.0, -1.0, 0.0], (len(xz), 1)))
    top = np.full(len(xz), np.nan)
    for y, i in zip(loc[:, 1], ray, strict=True):
        top[i] = y if np.isnan(top[i]) else max(top[i], y)
    return float(np.nanmean(top))
