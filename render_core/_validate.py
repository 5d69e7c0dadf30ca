"""Input checks shared by the ops of render_core (each raises ValueError naming the problem)."""

from __future__ import annotations

import torch

MAX_SIDE = 16384
"""Largest image side, in pixels, that the rasterization ops accept."""


def check_resolution(resolution) -> tuple[int, int]:
    """``(H, W)`` of an int (square) or a pair; ValueError unless both lie in [1, MAX_SIDE]."""
    if isinstance(resolution, int):
        h = w = resolution
    else:
        h, w = (int(r) for r in resolution)
    if h <= 0 or w <= 0 or h > MAX_SIDE or w > MAX_SIDE:
        raise ValueError(
            f"resolution must be between 1 and {MAX_SIDE} pixels a side, got {resolution}"
        )
    return h, w


def check_faces(faces: torch.Tensor, device: torch.device | None = None) -> torch.Tensor:
    """Faces as an [F,3] int64 tensor on ``device`` (default: where they are); ValueError else."""
    if not torch.is_tensor(faces):
        faces = torch.as_tensor(faces)
    if faces.ndim != 2 or faces.shape[-1] != 3:
        raise ValueError(f"faces must have shape [F,3], got {tuple(faces.shape)}")
    if faces.is_floating_point() or faces.is_complex() or faces.dtype == torch.bool:
        raise ValueError(f"faces must be an integer tensor, got {faces.dtype}")
    return faces.to(device=device if device is not None else faces.device, dtype=torch.int64)
