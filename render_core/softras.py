"""SoftRas (Liu et al. 2019, "Soft Rasterizer"): a second rendering and gradient model.

Every face near a pixel contributes: a probability map ``D = sigmoid(delta d^2 / sigma)`` of the
pixel centre's signed squared distance to the face's boundary, a silhouette
``A = 1 - prod_j (1 - D_j)`` and colours aggregated with a depth softmax (``gamma``) against a
background weight ``e^{eps/gamma}``. Unlike DIB-R, occlusion edges inside the foreground are
soft too, so colour losses move geometry everywhere. See ``_softras_ref.py`` for the numerics
(the torch backend) and ``csrc/softras_kernels.h`` for the native kernels (cpu, cuda).
"""

from __future__ import annotations

import torch

from . import _build, _softras_ref
from ._native import SOFTRAS_MAX_CHANNELS, native_softras
from ._torch_ref import W_EPS, iso_xy, valid_faces
from ._validate import check_resolution
from .rasterize import DEFAULT_SIGMA, _check

DEFAULT_GAMMA = 1e-4
"""Default SoftRas depth-softmax temperature (the paper's value)."""
DEFAULT_EPS = 1e-3
"""Default SoftRas background weight exponent (the paper's value)."""


def softras(
    clip: torch.Tensor,
    faces: torch.Tensor,
    colors: torch.Tensor,
    resolution,
    sigma: float = DEFAULT_SIGMA,
    gamma: float = DEFAULT_GAMMA,
    eps: float = DEFAULT_EPS,
    background=0.0,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Render with SoftRas: soft probability maps aggregated into colour and silhouette.

    Args:
        clip: [B,V,4] (or [V,4]) float32/float64 clip-space vertices; differentiable.
        faces: [F,3] int vertex indices.
        colors: [V,C] or [B,V,C] per-vertex attributes (colours) of clip's dtype,
            interpolated with the clamped screen-space barycentrics; differentiable.
        resolution: ``(H, W)`` or int.
        sigma: sharpness, squared isotropic-NDC units (as :func:`soft_silhouette`); > 0.
            As sigma -> 0 the silhouette becomes the hard coverage mask.
        gamma: depth-softmax temperature (> 0); small: the nearest face dominates.
        eps: background weight exponent (the background's "depth" in the softmax).
        background: float or C values: the background colour.
        backend: ``"auto"`` (the native kernel of the tensors' device when built, else
            torch), ``"torch"``, ``"cpu"`` or ``"cuda"``. The native kernels take up to 4
            channels and a constant background; more channels, or a background that requires
            grad, go through the torch reference whatever the backend.
    Returns:
        (rgb [B,H,W,C], alpha [B,H,W]), differentiable w.r.t. ``clip`` and ``colors`` (and
        ``background`` on the torch path).
    """
    clip, faces = _check(clip, faces)
    h, w = check_resolution(resolution)
    if not sigma > 0 or not gamma > 0:
        raise ValueError(f"sigma and gamma must be positive, got {sigma}, {gamma}")
    name = _build.resolve_backend(backend, clip.device)
    if colors.dim() == 2:
        colors = colors.unsqueeze(0)
    if colors.dim() != 3 or colors.shape[1] != clip.shape[1]:
        raise ValueError(f"colors must be [V,C] or [B,V,C] with V = {clip.shape[1]}")
    colors = colors.to(clip.dtype).expand(clip.shape[0], -1, -1)
    bg = torch.as_tensor(background, dtype=clip.dtype, device=clip.device)
    if bg.dim() > 1 or bg.numel() not in (1, colors.shape[-1]):
        raise ValueError(f"background must be a float or {colors.shape[-1]} values")
    native = name != "torch" and colors.shape[-1] <= SOFTRAS_MAX_CHANNELS
    if not native or bg.requires_grad:
        return _softras_ref.softras(
            clip, faces, colors, h, w, float(sigma), float(gamma), float(eps), background
        )
    wv = clip[..., 3]
    zn = (1 - clip[..., 2] / torch.where(wv > W_EPS, wv, torch.ones_like(wv))) / 2
    valid = valid_faces(clip.detach()[:, faces])
    return native_softras(
        name, iso_xy(clip, h, w), zn, colors, valid, faces, bg.expand(colors.shape[-1]), h, w,
        float(sigma), float(gamma), float(eps),
    )
