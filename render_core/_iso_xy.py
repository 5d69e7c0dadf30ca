"""``_torch_ref.iso_xy`` as one autograd node, for the native paths' per-step glue.

The composition ``where(|w| > W_EPS, w, W_EPS)``, ``clip[..., :2] / safe``, ``* scale`` runs
four autograd nodes plus two slice backward passes that each fill a ``[B,V,4]`` tensor of
zeros and add it into ``clip``'s gradient. :func:`iso_xy` computes the same forward values
with the same ops, and its backward pass evaluates the formulas autograd applies to that
composition (``mul``: ``g * scale``; ``div``: ``g / safe`` and the sum over x and y of
``-g * ((xy / safe) / safe)``; ``where``: the latter where ``|w| > W_EPS``, else 0), in the
same order, into one ``[B,V,4]`` gradient: the same values, bit for bit. Where every ``w``
is kept (on the CPU, checked once) the ``where`` is skipped, and for a square image the scale
of 1 (``x * 1.0`` is ``x``).
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
        # Every w kept (the usual case, tested on the CPU only: no device sync): where() would
        # return wv itself, value for value.
        if clip.device.type == "cpu" and bool(keep.all()):
            safe, keep = wv, None
        else:
            safe = torch.where(keep, wv, torch.full_like(wv, W_EPS))
        xy = clip[..., :2] / safe
        # (x * 1.0 is x, bit for bit: a square image needs no scale.)
        scale = None if w == h else torch.tensor([w / h, 1.0], dtype=clip.dtype,
                                                  device=clip.device)
        ctx.keep, ctx.scale = keep, scale
        ctx.save_for_backward(safe, xy)
        return xy if scale is None else xy * scale

    @staticmethod
    @once_differentiable
    def backward(ctx, g):  # type: ignore[override]
        safe, xy = ctx.saved_tensors
        if ctx.scale is not None:
            g = g * ctx.scale
        # xy is clip[..., :2] / safe as autograd saves it; (xy / safe) is its (self / other) /
        # other.
        g_w = (-g * (xy / safe)).sum(-1, keepdim=True)
        if ctx.keep is not None:
            g_w = torch.where(ctx.keep, g_w, 0)
        out = g.new_empty(*g.shape[:-1], 4)
        torch.div(g, safe, out=out[..., :2])
        out[..., 2].zero_()
        out[..., 3:].copy_(g_w)
        # Autograd sums the two slices' gradients (each zero outside its slice): + 0 turns a
        # -0 into +0 as that sum does, and changes nothing else.
        return out.add_(0.0), None, None


def iso_xy(clip: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``_torch_ref.iso_xy(clip, h, w)`` [B,V,2] (the same values and gradient) in one autograd
    node; differentiable once (the native ops' backward passes are not differentiable either).
    Where ``clip`` needs no gradient it is the reference itself."""
    if not (clip.requires_grad and torch.is_grad_enabled()):
        from ._torch_ref import iso_xy as ref

        return ref(clip, h, w)
    return _IsoXY.apply(clip, h, w)
