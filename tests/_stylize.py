"""Helpers of the style-transfer / DeepDream tests: a tiny fake VGG file, held-out metrics."""

from __future__ import annotations

import numpy as np
import torch
import trimesh

from render_core.features import VGG_BLOCKS, _conv_indices

HELD_OUT_SEED = 987654  # views no fit step draws (steps draw [seed, step])


def fake_vgg_state_dict(variant: str = "VGG-16", width: int = 6, seed: int = 0) -> dict:
    """torchvision's VGG key layout with tiny widths (``width``·1, ·1, ·2, ·2, ·2 channels per
    block) and random weights, plus the classifier keys a real file has."""
    g = torch.Generator().manual_seed(seed)
    sd, c_in = {}, 3
    for b, block in enumerate(_conv_indices(VGG_BLOCKS[variant])):
        c_out = width * (1 if b < 2 else 2)
        for n in block:
            sd[f"features.{n}.weight"] = torch.randn(c_out, c_in, 3, 3, generator=g) * (
                2.0 / (9 * c_in)) ** 0.5
            sd[f"features.{n}.bias"] = torch.randn(c_out, generator=g) * 0.05
            c_in = c_out
    for n, (o, i) in zip((0, 3, 6), ((8, c_in), (8, 8), (5, 8)), strict=True):
        sd[f"classifier.{n}.weight"] = torch.randn(o, i, generator=g)
        sd[f"classifier.{n}.bias"] = torch.zeros(o)
    return sd


def held_out(fitter, count: int = 6) -> tuple[float, float]:
    """(the objective's raw value, hard silhouette IoU against the start) on ``count`` views
    drawn from a seed no step uses, for the fit's current mesh."""
    return fitter.objective.held_out(fitter, HELD_OUT_SEED, count)


def reloaded(path) -> trimesh.Trimesh:
    """An exported mesh read back with trimesh, vertices merged (as a checker would)."""
    m = trimesh.load(str(path), force="mesh", process=True)
    m.merge_vertices(merge_tex=True, merge_norm=True)
    return m


def is_manifold(m: trimesh.Trimesh) -> bool:
    """Every edge shared by exactly two faces, consistently wound, no degenerate face."""
    return bool(m.is_watertight and m.is_winding_consistent
                and (m.area_faces > 0).all() and np.isfinite(m.vertices).all())
