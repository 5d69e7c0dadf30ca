"""``_torch_ref.iso_xy`` as one autograd node, for the native paths' per-step glue.

The composition ``where(|w| > W_EPS, w, W_EPS)``, ``clip[..., :2] / safe``, ``* scale`` runs
four autograd nodes plus two slice backward passes that each fill a ``[B,V,4]`` tensor of
zeros and add it into ``clip``'s gradient. :func:`iso_xy` computes the same forward values
with the same ops, and its backward pass evaluates the formulas autograd applies to that
composition (``mul``: ``g * scale``; ``div``: ``g / safe`` and the sum over x and y of
``-g * ((xy / safe) / safe)``; ``where``: the latter where ``|w| > W_EPS``, else 0), in the
same order, into one ``[B,V,4]`` gradient: the same values, bit for bit (one difference: a
zero gradient component keeps its sign here, where autograd's sum with the other slice's
zeros makes it +0).
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from ._torch_ref import W_EPS


class _IsoXY(torch.autograd.Function):
    @staticmethod
    def forward(ctx, clip, h, w):  # type: ignore[override]
        wv = clip[..., 3:4]
        keep = wv.abs() > W_EPS
        safe = torch.where(keep, wv, torch.full_like(wv, W_EPS))
        xy = clip[..., :2] / safe
        scale = torch.tensor([w / h, 1.0], dtype=clip.dtype, device=clip.device)
        ctx.save_for_backward(clip, keep, safe, scale)
        return xy * scale

    @staticmethod
    @once_differentiable
    def backward(ctx, g):  # type: ignore[override]
        clip, keep, safe, scale = ctx.saved_tensors
        g = g * scale
        g_w = (-g * ((clip[..., :2] / safe) / safe)).sum(-1, keepdim=True)
        g_w = torch.where(keep, g_w, 0)
        return torch.cat([g / safe, torch.zeros_like(g_w), g_w], -1), None, None


def iso_xy(clip: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``_torch_ref.iso_xy(clip, h, w)`` [B,V,2] (the same values and gradient) in one autograd
    node; differentiable once (the native ops' backward passes are not differentiable either).
    Where ``clip`` needs no gradient it is the reference itself."""
    if not (clip.requires_grad and torch.is_grad_enabled()):
        from ._torch_ref import iso_xy as ref

        return ref(clip, h, w)
    return _IsoXY.apply(clip, h, w)
