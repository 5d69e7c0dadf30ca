"""The built-in demo scene: a colourful procedural blob seen from a few views, a sphere to fit.

Everything is generated here (deterministically, in well under a second); nothing is
downloaded. The targets are rendered with render_core itself, so the problem is solvable
exactly and a new user sees the sphere reshape within seconds.
"""

from __future__ import annotations

import math

import numpy as np
import torch

import render_core as rc
from render_core.fit import FitConfig, TargetView

DEMO_VIEWS = ((0.0, 15.0), (72.0, -10.0), (144.0, 30.0), (216.0, 0.0), (288.0, -25.0),
              (36.0, 60.0))
"""(azimuth, elevation) of the demo targets, degrees."""
DEMO_DISTANCE = 3.2
DEMO_FOV = 45.0


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    i = np.floor(h * 6.0).astype(int) % 6
    f = h * 6.0 - np.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = np.zeros((len(h), 3))
    for k, (r, g, b) in enumerate(table):
        sel = i == k
        out[sel] = np.stack([r[sel], g[sel], b[sel]], -1)
    return out


def demo_object(subdivisions: int = 4) -> rc.Mesh:
    """A lumpy, stretched, rainbow-striped sphere (vertex colours, linear)."""
    base = rc.icosphere(subdivisions=subdivisions)
    d = base.vertices.double().numpy()
    d = d / np.linalg.norm(d, axis=1, keepdims=True)
    x, y, z = d[:, 0], d[:, 1], d[:, 2]
    # Three smooth lobes plus a gentle stretch: far enough from a sphere to watch it move,
    # smooth enough for a few hundred steps of silhouette fitting.
    r = 1.0 + 0.55 * np.exp(-6 * ((x - 0.8) ** 2 + y**2 + (z - 0.3) ** 2)) \
        + 0.5 * np.exp(-6 * ((x + 0.5) ** 2 + (y - 0.7) ** 2 + z**2)) \
        + 0.45 * np.exp(-6 * (x**2 + (y + 0.6) ** 2 + (z + 0.7) ** 2))
    v = d * r[:, None] * np.array([1.15, 0.8, 0.95])
    hue = (np.arctan2(x, z) / (2 * math.pi)) % 1.0
    stripes = 0.75 + 0.25 * np.sign(np.sin(5 * math.pi * y))
    srgb = _hsv_to_rgb(hue, np.full_like(hue, 0.75), stripes)
    colors = rc.srgb_to_linear(srgb.astype(np.float32))
    return rc.Mesh(torch.from_numpy(v.astype(np.float32)), base.faces,
                   vertex_colors=torch.from_numpy(colors))


def demo_scene(resolution: int = 128, start_subdivisions: int = 3):
    """``(start mesh, targets, config)`` of the demo: an icosphere and six rendered views."""
    obj = demo_object()
    az = [a for a, _ in DEMO_VIEWS]
    el = [e for _, e in DEMO_VIEWS]
    cams = rc.Camera.orbit(az, el, DEMO_DISTANCE, fov=DEMO_FOV)
    # A sharper silhouette than the fit uses: the targets are "photos".
    out = rc.Renderer(resolution, shading="vertex_color", sigma=1e-5).render(obj, cams)
    rgb = rc.linear_to_srgb(out.rgb.clamp(0, 1)).numpy()
    mask = out.frags.mask.float().numpy()
    targets = [
        TargetView(rgb[i], mask[i], az[i], el[i], DEMO_DISTANCE, DEMO_FOV, f"demo view {i + 1}")
        for i in range(len(DEMO_VIEWS))
    ]
    start = rc.icosphere(subdivisions=start_subdivisions)
    return start, targets, FitConfig(resolution=64)
