"""Random test scenes shared by the native-backend tests (test_native, test_native_frags)."""

from __future__ import annotations

import torch


def random_clip(g: torch.Generator, bsz: int, nv: int) -> torch.Tensor:
    """Random clip-space vertices [B,V,4] drawn from ``g``: many overlapping layers near the
    centre, w in [0.5, 2) and z spread beyond the depth range [-w, w]."""
    clip = torch.empty(bsz, nv, 4)
    clip[..., :2] = torch.randn(bsz, nv, 2, generator=g) * 0.6
    clip[..., 3] = torch.rand(bsz, nv, generator=g) * 1.5 + 0.5
    clip[..., 2] = (torch.rand(bsz, nv, generator=g) * 2.4 - 1.2) * clip[..., 3]
    clip[..., :2] *= clip[..., 3:4]
    return clip
