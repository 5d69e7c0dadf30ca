"""Test scenes shared by several test files: random clip-space vertices (the native-backend
tests) and orbit-camera fit problems (test_fit, test_views_per_step)."""

from __future__ import annotations

import numpy as np
import torch

import render_core as rc
from render_core.fit import DEFAULT_LIGHT, TargetView


def orbit_targets(mesh: rc.Mesh, views, res: int = 32) -> list[TargetView]:
    """Hard-rasterised targets of ``mesh`` from orbit cameras ``views`` ((azimuth, elevation)
    pairs, distance 3, fov 50)."""
    cams = rc.Camera.orbit([a for a, _ in views], [e for _, e in views], 3.0, fov=50.0)
    out = rc.Renderer(res, sigma=1e-5).render(mesh, cams)
    rgb = rc.linear_to_srgb(out.rgb.clamp(0, 1)).numpy()
    mask = out.frags.mask.float().numpy()
    return [TargetView(rgb[i], mask[i], a, e, 3.0, 50.0) for i, (a, e) in enumerate(views)]


def stretched_sphere() -> rc.Mesh:
    """An icosphere stretched to 1.3 x 0.8 x 1, coloured by its position: a fit's target."""
    sphere = rc.icosphere(subdivisions=2)
    v = sphere.vertices * torch.tensor([1.3, 0.8, 1.0])
    return rc.Mesh(v, sphere.faces, vertex_colors=(sphere.vertices * 0.5 + 0.5).clamp(0, 1))


def random_clip(g: torch.Generator, bsz: int, nv: int) -> torch.Tensor:
    """Random clip-space vertices [B,V,4] drawn from ``g``: many overlapping layers near the
    centre, w in [0.5, 2) and z spread beyond the depth range [-w, w]."""
    clip = torch.empty(bsz, nv, 4)
    clip[..., :2] = torch.randn(bsz, nv, 2, generator=g) * 0.6
    clip[..., 3] = torch.rand(bsz, nv, generator=g) * 1.5 + 0.5
    clip[..., 2] = (torch.rand(bsz, nv, generator=g) * 2.4 - 1.2) * clip[..., 3]
    clip[..., :2] *= clip[..., 3:4]
    return clip


def lit_spiral_problem(gt: rc.Mesh, res: int = 32, n_views: int = 8, dist: float = 2.7,
                       fov: float = 50.0):
    """The lit shape task in small: ``gt`` rendered Lambertian under the Fitter's own light
    (direction, intensity 0.8, ambient 0.3: the known light) from ``n_views`` cameras on a
    spiral (azimuth by the golden angle, elevation -30..60), and the visual hull of the masks.
    Returns ``(gt, targets, hull)``."""
    k = np.arange(n_views)
    az, el = (k * 137.5) % 360.0, np.linspace(-30.0, 60.0, n_views)
    cams = rc.Camera.orbit(torch.tensor(az, dtype=torch.float32),
                           torch.tensor(el, dtype=torch.float32), dist, fov=fov)
    light = rc.DirectionalLight(torch.tensor(DEFAULT_LIGHT), intensity=0.8, ambient=0.3)
    out = rc.Renderer(res, shading="lambertian", sigma=1e-5).render(gt, cams, light=light)
    rgb = rc.linear_to_srgb(out.rgb.clamp(0, 1)).numpy()
    mask = out.frags.mask.float().numpy()
    targets = [TargetView(rgb[i], mask[i], float(az[i]), float(el[i]), dist, fov)
               for i in range(n_views)]
    hull = rc.visual_hull(torch.from_numpy(mask), cams, resolution=48, faces=800)
    return gt, targets, hull
