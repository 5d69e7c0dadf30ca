"""The DIB-R rasterization ops: ``rasterize`` (foreground) and ``soft_silhouette`` (background).

``rasterize`` finds the nearest face per pixel with a z-buffer (not differentiable), then
recomputes perspective-correct barycentrics from the three clip space vertices of each pixel's
face, with exact analytic gradients in O(pixels) (DIB-R eq. 1-4). ``soft_silhouette`` is DIB-R
eq. 5-6. This module validates the inputs and dispatches to the torch reference
(``_torch_ref.py``) or the native ops (``_native.py``).

Pixel (row i, col j), row 0 at the top, has its centre at NDC
``x = 2(j+0.5)/W - 1``, ``y = 1 - 2(i+0.5)/H``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from . import _build, _iso_xy, _topology
from . import _torch_ref as torch_ref
from ._native import native_barycentrics, native_soft_silhouette, native_visibility
from ._validate import check_resolution

DEFAULT_SIGMA = 1.0 / 7000.0
"""Default soft-mask sigma, in squared isotropic-NDC units (see :func:`soft_silhouette`)."""


class Fragments(NamedTuple):
    """What the rasterizer hands to shading.

    face_idx [B,H,W] int64: index into ``faces`` of the nearest face, -1 on background.
    bary     [B,H,W,3] float: perspective-correct barycentrics of that face (0 on background),
             differentiable w.r.t. the clip-space vertices.
    depth    [B,H,W] float: NDC depth z/w of the fragment (1 on background), differentiable.
    """

    face_idx: torch.Tensor
    bary: torch.Tensor
    depth: torch.Tensor

    @property
    def mask(self) -> torch.Tensor:
        """[B,H,W] bool: pixels covered by a face."""
        return self.face_idx >= 0


def _check(clip: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if not torch.is_tensor(clip) or not clip.is_floating_point():
        raise ValueError("clip must be a floating-point tensor [B,V,4]")
    if clip.dim() == 2:
        clip = clip.unsqueeze(0)
    if clip.dim() != 3 or clip.shape[-1] != 4:
        raise ValueError(f"clip must have shape [B,V,4], got {tuple(clip.shape)}")
    faces = torch.as_tensor(faces, device=clip.device)
    if faces.dim() != 2 or faces.shape[-1] != 3:
        raise ValueError(f"faces must have shape [F,3], got {tuple(faces.shape)}")
    if faces.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"faces must be an integer tensor, got {faces.dtype}")
    faces = faces.long()
    lo, hi = _topology.of(faces).index_range() if faces.numel() else (0, -1)
    if lo < 0 or hi >= clip.shape[1]:
        raise ValueError(f"face indices must lie in [0, {clip.shape[1] - 1}], found {lo}..{hi}")
    return clip, faces


def rasterize(clip: torch.Tensor, faces: torch.Tensor, resolution, backend: str = "auto"):
    """Rasterize triangles with a z-buffer; DIB-R foreground interpolation weights.

    Args:
        clip: [B,V,4] (or [V,4]) float32/float64 clip-space vertices, any device the backend
            supports. Differentiable: ``bary`` and ``depth`` carry gradients to ``clip``.
        faces: [F,3] int32/int64 vertex indices, shared by the batch.
        resolution: ``(H, W)`` or an int for a square image.
        backend: ``"auto"`` (native kernel for the tensors' device when built, else torch),
            ``"torch"``, ``"cpu"`` or ``"cuda"``.
    Returns:
        :class:`Fragments` with ``face_idx [B,H,W]`` (-1 background), ``bary [B,H,W,3]``,
        ``depth [B,H,W]``.

    Faces with a vertex at or behind the eye plane (w <= 1e-6) and faces whose projected area
    is under 1e-6 square pixels are dropped; fragments outside -1 <= z/w <= 1 are clipped. No
    face orientation is culled. Ties in depth go to the lower face index (deterministic).
    """
    clip, faces = _check(clip, faces)
    h, w = check_resolution(resolution)
    name = _build.resolve_backend(backend, clip.device)
    if faces.shape[0] == 0:
        face_idx = torch.full((clip.shape[0], h, w), -1, dtype=torch.long, device=clip.device)
        bary, depth = torch_ref.barycentrics(clip, faces, face_idx)
    elif name == "torch":
        face_idx = torch_ref.visibility(clip, faces, h, w)
        bary, depth = torch_ref.barycentrics(clip, faces, face_idx)
    else:
        face_idx = native_visibility(name, clip, faces, h, w)
        bary, depth = native_barycentrics(name, clip, faces, face_idx)
    return Fragments(face_idx, bary, depth)


def soft_silhouette(
    clip: torch.Tensor,
    faces: torch.Tensor,
    resolution,
    sigma: float = DEFAULT_SIGMA,
    backend: str = "auto",
    eps: float = torch_ref.SOFT_EPS,
    *,
    covered: torch.Tensor | None = None,
) -> torch.Tensor:
    """DIB-R soft silhouette (eq. 5-6): ``A = 1 - prod_j (1 - exp(-d(p, f_j) / sigma))``.

    ``d`` is the *squared* 2D distance from the pixel centre to the projected triangle, measured
    in isotropic NDC: y in NDC and x scaled by W/H, so one pixel is 2/H wide in both axes (for a
    square image this is plain NDC). ``d = 0`` inside a triangle, so covered pixels get exactly
    1. The default ``sigma = 1/7000`` is the DIB-R reference value: at 256x256 a face pulls with
    p = 0.65 one pixel away, 0.02 three pixels away, and nothing past ~5 pixels; since sigma
    lives in NDC, the mask has the same shape at every resolution.

    Only faces with ``p_j >= eps`` at a pixel count, i.e. within ``r_c = sqrt(sigma ln(1/eps))``
    (chosen by distance, never by index); the product over all faces differs by at most the
    sum of the skipped p_j (each < eps). Faces with a vertex at or behind the eye plane are
    ignored; orientation does not matter.

    Args:
        clip: [B,V,4] (or [V,4]) float32/float64 clip-space vertices; differentiable.
        faces: [F,3] int vertex indices.
        resolution: ``(H, W)`` or int.
        sigma: softness, squared isotropic-NDC units (> 0).
        backend: ``"auto"``, ``"torch"``, ``"cpu"`` or ``"cuda"``.
        eps: probability below which a face is skipped at a pixel (0 < eps < 1).
        covered: optional [B,H,W] (or [H,W]) bool: ``rasterize(clip, faces, resolution).mask``
            of the same arguments, which the native CPU backend then takes as the coverage
            instead of testing every face's pixels again (covered pixels get alpha 1 and no
            gradient). Only where every vertex lies inside the depth range (|z| < 0.999 w), so
            that the rasterizer drops no fragment for its depth; otherwise, and on the other
            backends, it is ignored. The mask and the silhouette's own test then differ at
            most at pixel centres on an edge up to rounding, where alpha is 1 to within far
            less than ``eps`` either way.
    Returns:
        alpha [B,H,W] in [0,1], differentiable w.r.t. ``clip``.
    """
    clip, faces = _check(clip, faces)
    h, w = check_resolution(resolution)
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    if not 0 < eps < 1:
        raise ValueError(f"eps must lie in (0, 1), got {eps}")
    name = _build.resolve_backend(backend, clip.device)
    if faces.shape[0] == 0:
        return clip.new_zeros(clip.shape[0], h, w) + 0 * clip.sum()
    valid = torch_ref.valid_faces_of(clip.detach(), faces)
    if name == "torch":
        xy = torch_ref.iso_xy(clip, h, w)
        return torch_ref.SoftSilhouette.apply(xy, valid, faces, h, w, float(sigma), float(eps))
    xy = _iso_xy.iso_xy(clip, h, w)  # the same values in one autograd node
    if covered is not None:
        covered = _check_covered(covered, clip.shape[0], h, w, clip.device)
        if name != "cpu" or not _in_depth_range(clip):
            covered = None
    return native_soft_silhouette(
        name, xy, valid, faces, h, w, float(sigma), float(eps), covered
    )


def _in_depth_range(clip: torch.Tensor) -> bool:
    """Every vertex strictly inside the depth range, with a margin far above rounding: no
    fragment of a face in front of the eye is dropped for its depth."""
    c = clip.detach()
    return bool((c[..., 2].abs() < 0.999 * c[..., 3]).all())


def _check_covered(covered: torch.Tensor, b: int, h: int, w: int, device) -> torch.Tensor:
    """``covered`` as a [B,H,W] bool tensor, or a clear error."""
    if not isinstance(covered, torch.Tensor) or covered.dtype != torch.bool:
        raise TypeError("soft_silhouette: covered must be a bool tensor")
    if covered.dim() == 2:
        covered = covered.unsqueeze(0)
    if tuple(covered.shape) != (b, h, w):
        raise ValueError(
            f"soft_silhouette: covered must be [{b},{h},{w}] (images, height, width), "
            f"got {list(covered.shape)}"
        )
    if covered.device != device:
        raise ValueError(f"soft_silhouette: covered is on {covered.device}, clip on {device}")
    return covered.detach()


def available_backends() -> list[str]:
    """Backends usable in this process, e.g. ``["torch", "cpu"]``."""
    return _build.available_backends()
