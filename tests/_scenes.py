"""Test scenes shared by several test files: random clip-space vertices (the native-backend
tests) and orbit-camera fit problems (test_fit, test_views_per_step)."""

from __future__ import annotations

import torch

import render_core as rc
from render_core.fit import TargetView


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
