"""Fused versions of per-pixel chains a fit step runs every step, for speed; the public ops they
replace stay as they are for users who compose their own pipeline.

``image_losses`` is the soft IoU of the silhouette and the L1 distance of the sRGB-encoded
render to the sRGB target (the Fitter's two image terms) in one native pass over the pixels,
forward and backward, instead of about 20 full-image torch ops and their autograd graph. It
equals ``(losses.iou(alpha, t_mask), losses.l1(linear_to_srgb(rgb.clamp(0, 1)), t_rgb))`` up
to the rounding of the sums (tested against that composition, values and gradients); the torch
backend, other shapes or differentiable targets use that composition itself. Asked for
``counts``, it also gives the pixel counts of the hard IoU (``losses.hard_iou``, the metric a fit
step reports), counted by the same native pass; ``losses.hard_iou_of_counts`` turns them into
exactly the value ``losses.hard_iou`` gives.

``lambertian_covered`` is the Renderer's Lambertian colour of the covered pixels of a render,
``color * lambertian(normals, light, kd)`` with the light and ``kd`` gathered per pixel by its
image, in one native pass per direction instead of about 20 small torch ops forward and 30
backward (normalisations, dot, relu, products, the per-image gathers and their scatters). It
takes each pixel's colour and normal side by side, ``[P,6]``, as one interpolation of the
vertex colours and normals gives them (and one gradient flows back into it). Tested against
that composition. :func:`lambertian_plan` says whether the op covers a light and material:
directions ``[3]`` / ``[1 or B,3]`` and scalars that are numbers, 0-d, ``[1]`` or ``[B]``, on
the CPU backend; otherwise the Renderer runs the composition, exactly as before.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from . import _build
from ._native import native_image_losses, native_lambertian
from .color import linear_to_srgb
from .losses import hard_counts, hard_iou_of_counts, iou, l1  # noqa: F401 (the counts API of image_losses)
from .shading import _EPS, DirectionalLight


def reference_image_losses(rgb: torch.Tensor, alpha: torch.Tensor, t_rgb: torch.Tensor,
                           t_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The public composition :func:`image_losses` fuses."""
    return iou(alpha, t_mask), l1(linear_to_srgb(rgb.clamp(0.0, 1.0)), t_rgb)


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
        (intersection, union) pixel counts of ``losses.hard_counts`` (not differentiable; exact
        integers, in the render's float dtype from the native pass), for
        ``losses.hard_iou_of_counts``.
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


def _per_image_rows(x: torch.Tensor, batch: int) -> bool | None:
    """Whether a parameter's leading dim picks an image (``batch`` > 1 rows): True, False for
    one row shared by all, None for a row count the composition rejects (it raises)."""
    n = x.shape[0]
    if n == 1:
        return False
    return True if n == batch else None


class LambertianPlan(NamedTuple):
    """The light and ``kd`` of :func:`lambertian_covered`, checked and converted."""

    direction: torch.Tensor  # [3] or [1 or B,3]
    scalars: tuple  # (intensity, ambient, kd): a tensor of 1 or B values, or None (a constant)
    values: list  # the constants
    bidx: torch.Tensor | None  # [P] each pixel's image, where a parameter is per image
    slots: int  # B where a parameter is per image, else 1
    dtype: torch.dtype


def lambertian_plan(light: DirectionalLight, kd, cov, like: torch.Tensor,
                    backend: str = "auto") -> LambertianPlan | None:
    """The parameters of :func:`lambertian_covered` for pixels of ``like``'s dtype and device,
    or None where the op does not cover them (then the caller runs the composition, which also
    raises for bad shapes).

    Args:
        light: :class:`~render_core.shading.DirectionalLight`; ``direction`` [3] or [1 or B,3],
            ``intensity``/``ambient`` numbers or 0-d, [1] or [B] tensors; differentiable.
        kd: diffuse reflectance, a number or such a tensor; differentiable.
        cov: the Renderer's covered pixels (``cov.shape[0]`` the batch B, ``cov.bidx`` [P] each
            pixel's image).
        like: a tensor of the pixels' float dtype (float32/float64) and device.
        backend: as for the rasterizer; the native CPU kernels serve ``"cpu"``.
    """
    dtype, device = like.dtype, like.device
    if dtype not in (torch.float32, torch.float64):
        return None
    if _build.resolve_backend(backend, device) != "cpu":
        return None
    batch = cov.shape[0]
    d = light.direction
    if not torch.is_tensor(d):
        d = torch.as_tensor(d, dtype=dtype, device=device)
    if d.device != device or not (d.ndim in (1, 2) and d.shape[-1] == 3):
        return None
    per_image = d.ndim == 2 and _per_image_rows(d, batch)
    if per_image is None:
        return None
    scalars: list[torch.Tensor | None] = []
    values: list[float] = []
    for x in (light.intensity, light.ambient, kd):
        if not torch.is_tensor(x):
            scalars.append(None)
            values.append(float(x))
            continue
        if x.device != device or x.ndim > 1:
            return None
        if x.ndim == 1:
            rows = _per_image_rows(x, batch)
            if rows is None:
                return None
            per_image = per_image or rows
        scalars.append(x.to(dtype))
        values.append(0.0)
    return LambertianPlan(d.to(dtype), tuple(scalars), values,
                          cov.bidx if per_image else None, batch if per_image else 1, dtype)


def lambertian_covered(color_normals: torch.Tensor, plan: LambertianPlan) -> torch.Tensor:
    """The Lambertian colour [P,3] of a render's covered pixels.

    Args:
        color_normals: [P,6] each covered pixel's base colour, then its interpolated normal,
            of the plan's dtype, on the CPU; differentiable.
        plan: :func:`lambertian_plan` of the light and ``kd``.
    Returns:
        ``color * lambertian(normals, light, kd)`` with every parameter gathered per pixel by
        its image (see :meth:`Renderer._lit`); differentiable w.r.t. the pixels, the light's
        tensors and ``kd``.
    """
    if color_normals.dim() != 2 or color_normals.shape[1] != 6:
        raise ValueError(f"color_normals must be [P,6], got {tuple(color_normals.shape)}")
    if color_normals.dtype != plan.dtype:
        raise ValueError(f"color_normals are {color_normals.dtype}, the plan {plan.dtype}")
    return native_lambertian("cpu", color_normals, plan.direction, plan.scalars, plan.values,
                             plan.bidx, plan.slots, _EPS)
