"""Fused versions of per-pixel chains a fit step runs every step, for speed; the public ops they
replace stay as they are for users who compose their own pipeline.

``image_losses`` is the soft IoU of the silhouette and the L1 distance of the sRGB-encoded
render to the sRGB target (the Fitter's two image terms) in one native pass over the pixels,
forward and backward, instead of about 20 full-image torch ops and their autograd graph. It
equals ``(losses.iou(alpha, t_mask), losses.l1(linear_to_srgb(rgb.clamp(0, 1)), t_rgb))`` up
to the rounding of the sums (tested against that composition, values and gradients); the torch
backend, other shapes or differentiable targets use that composition itself. Asked for
``counts``, it also gives the pixel counts of the hard IoU (``losses.hard_iou``, the metric a fit
step reports), counted by the same native pass; :func:`hard_iou_of_counts` turns them into
exactly the value ``losses.hard_iou`` gives.
"""

from __future__ import annotations

import torch

from . import _build
from ._native import native_image_losses
from .color import linear_to_srgb
from .losses import iou, l1


def reference_image_losses(rgb: torch.Tensor, alpha: torch.Tensor, t_rgb: torch.Tensor,
                           t_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The public composition :func:`image_losses` fuses."""
    return iou(alpha, t_mask), l1(linear_to_srgb(rgb.clamp(0.0, 1.0)), t_rgb)


def hard_counts(alpha: torch.Tensor, t_mask: torch.Tensor) -> torch.Tensor:
    """[B,2] int64 (intersection, union) pixel counts of ``alpha > 0.5`` and ``t_mask > 0.5``
    ([B,H,W] each), as ``losses.hard_iou`` counts them."""
    a, t = alpha.detach() > 0.5, t_mask > 0.5
    return torch.stack([torch.count_nonzero((a & t).flatten(1), dim=1),
                        torch.count_nonzero((a | t).flatten(1), dim=1)], 1)


def hard_iou_of_counts(counts: torch.Tensor) -> float:
    """``losses.hard_iou`` from its pixel counts [B,2] (intersection, union; exact integers of
    any dtype): the same float32 arithmetic, so the same value."""
    c = counts.float()
    return float((c[:, 0] / c[:, 1].clamp(min=1)).mean())


def image_losses(rgb: torch.Tensor, alpha: torch.Tensor, t_rgb: torch.Tensor,
                 t_mask: torch.Tensor, backend: str = "auto", counts: bool = False
                 ) -> tuple[torch.Tensor, ...]:
    """(soft IoU loss, sRGB L1 loss) of a render against its targets.

    Args:
        rgb: [B,H,W,3] linear render (clamped to [0, 1] before encoding); differentiable.
        alpha: [B,H,W] soft silhouette; differentiable.
        t_rgb: [B,H,W,3] sRGB target; t_mask: [B,H,W] target mask (constants).
        backend: as for the rasterizer; the native kernels serve ``"cpu"``/``"cuda"``.
        counts: also return the hard IoU's pixel counts.
    Returns:
        Two 0-d tensors, as :func:`reference_image_losses`; with ``counts`` a third, the [B,2]
        (intersection, union) pixel counts of :func:`hard_counts` (not differentiable; exact
        integers, in the render's float dtype from the native pass), for
        :func:`hard_iou_of_counts`.
    """
    name = _build.resolve_backend(backend, rgb.device)
    fusable = (
        name != "torch"
        and rgb.dim() == 4 and rgb.shape[-1] == 3
        and alpha.shape == rgb.shape[:3] and t_rgb.shape == rgb.shape
        and t_mask.shape == alpha.shape
        and rgb.dtype in (torch.float32, torch.float64)
        and alpha.dtype == rgb.dtype == t_rgb.dtype == t_mask.dtype
        and not (t_rgb.requires_grad or t_mask.requires_grad)
    )
    if not fusable:
        losses = reference_image_losses(rgb, alpha, t_rgb, t_mask)
        return (*losses, hard_counts(alpha, t_mask)) if counts else losses
    out = native_image_losses(name, rgb, alpha, t_rgb, t_mask)
    return out if counts else out[:2]
