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


def check_image_op_args(color, frags, clip, faces):
    """The shared checks of the ops that post-process a shaded image along its edges
    (:func:`render_core.antialias`, :func:`render_core.nmr_edges`): ``color`` [B,H,W,C]
    floating point, ``frags`` of its [B,H,W], ``clip`` [B,V,4] or [V,4] (B = 1 broadcasts),
    ``faces`` [F,3]. Returns ``(face_idx, depth, clip [B,V,4] of color's dtype, faces)``;
    ValueError naming the bad argument."""
    if not torch.is_tensor(color) or not color.is_floating_point() or color.dim() != 4:
        raise ValueError("color must be a floating-point tensor [B,H,W,C]")
    face_idx, depth = frags.face_idx, frags.depth
    if tuple(face_idx.shape) != tuple(color.shape[:3]) or depth.shape != face_idx.shape:
        raise ValueError(
            f"frags of shape {tuple(face_idx.shape)} do not match color {tuple(color.shape)}"
        )
    if not torch.is_tensor(clip) or not clip.is_floating_point():
        raise ValueError("clip must be a floating-point tensor [B,V,4]")
    if clip.dim() == 2:
        clip = clip.unsqueeze(0)
    if clip.dim() != 3 or clip.shape[-1] != 4 or clip.shape[0] not in (1, color.shape[0]):
        raise ValueError(
            f"clip must have shape [B,V,4] with B = {color.shape[0]} or 1, got {tuple(clip.shape)}"
        )
    clip = clip.to(color.dtype).expand(color.shape[0], -1, -1)
    return face_idx, depth, clip, check_faces(faces, clip.device)
