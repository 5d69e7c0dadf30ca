"""Attribute interpolation over fragments and bilinear texture sampling.

``interpolate`` validates its inputs and dispatches to the torch reference (``_torch_ref.py``)
or the native op (``_native.py``).
"""

from __future__ import annotations

import torch

from . import _build, _topology
from . import _torch_ref as torch_ref
from ._native import native_interpolate
from .rasterize import Fragments


def interpolate(
    attr: torch.Tensor, frags: Fragments, faces: torch.Tensor, backend: str = "auto"
) -> torch.Tensor:
    """Interpolate per-vertex attributes with the fragments' barycentrics (DIB-R eq. 1).

    Args:
        attr: [V,C] or [B,V,C] float attributes (colours, UVs, normals, positions).
        frags: :class:`Fragments` from :func:`rasterize`, batch B.
        faces: [F,3] int64 indices into ``attr`` (the same faces that were rasterized, or
            per-corner index triples such as ``face_uvs``).
        backend: ``"auto"`` (native kernel for the tensors' device when built, else torch),
            ``"torch"``, ``"cpu"`` or ``"cuda"``; as for :func:`~render_core.rasterize`.
    Returns:
        [B,H,W,C], 0 on background. Differentiable w.r.t. ``attr`` and ``frags.bary``.
    """
    face_idx, bary = frags.face_idx, frags.bary
    name = _build.resolve_backend(backend, attr.device)
    _check_attr(attr, face_idx.shape[0])
    if name != "torch" and attr.dtype in (torch.float32, torch.float64) and faces.shape[0]:
        attr = attr.unsqueeze(0) if attr.dim() == 2 else attr
        faces = _check_native_indices(attr, bary, faces, face_idx)
        return native_interpolate(name, attr, bary.to(attr.dtype), faces, face_idx.long())
    return torch_ref.interpolate_attributes(attr, bary, faces, face_idx)


def _check_attr(attr: torch.Tensor, bsz: int) -> None:
    if attr.dim() not in (2, 3):
        raise ValueError(f"attr must be [V,C] or [B,V,C], got {tuple(attr.shape)}")
    if attr.dim() == 3 and attr.shape[0] not in (1, bsz):
        raise ValueError(f"attr batch {attr.shape[0]} does not match fragments batch {bsz}")


def _check_native_indices(attr, bary, faces, face_idx) -> torch.Tensor:
    """faces as int64, after the checks the torch version gets from indexing (the native
    kernels read out of range instead of raising)."""
    faces = faces.long()
    if faces.dim() != 2 or faces.shape[-1] != 3:
        raise ValueError(f"faces must have shape [F,3], got {tuple(faces.shape)}")
    topo = _topology.cached(faces)  # the rasterized faces: their range is known
    lo, hi = topo.index_range() if topo is not None else (int(v) for v in torch.aminmax(faces))
    if lo < 0 or hi >= attr.shape[1]:
        raise IndexError(f"faces index {attr.shape[1]} attribute rows, found {lo}..{hi}")
    if face_idx.numel() and int(face_idx.max()) >= faces.shape[0]:
        raise IndexError(f"face_idx {int(face_idx.max())} is out of range for {len(faces)} faces")
    if bary.shape != (*face_idx.shape, 3):
        raise ValueError(
            f"bary {tuple(bary.shape)} does not match face_idx {tuple(face_idx.shape)}"
        )
    return faces


def sample_texture(texture: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear texture lookup with clamp-to-edge addressing.

    Args:
        texture: [Ht,Wt,C] or [B,Ht,Wt,C] float. Row 0 is the top of the image.
        uv: [B,H,W,2] float, OBJ convention: u to the right, v up (v=0 is the bottom row);
            texel (row r, col c) has its centre at u=(c+0.5)/Wt, v=1-(r+0.5)/Ht.
    Returns:
        [B,H,W,C], differentiable w.r.t. ``texture`` and ``uv``.
    """
    if texture.dim() == 3:
        texture = texture.unsqueeze(0)
    if texture.dim() != 4:
        raise ValueError(f"texture must be [Ht,Wt,C] or [B,Ht,Wt,C], got {tuple(texture.shape)}")
    bsz = uv.shape[0]
    if texture.shape[0] not in (1, bsz):
        raise ValueError(f"texture batch {texture.shape[0]} does not match uv batch {bsz}")
    _, ht, wt, c = texture.shape
    x = uv[..., 0] * wt - 0.5
    y = (1.0 - uv[..., 1]) * ht - 0.5
    x = x.clamp(0.0, wt - 1.0)
    y = y.clamp(0.0, ht - 1.0)
    x0 = x.detach().floor().clamp(max=max(wt - 2, 0))
    y0 = y.detach().floor().clamp(max=max(ht - 2, 0))
    fx = (x - x0).unsqueeze(-1)
    fy = (y - y0).unsqueeze(-1)
    x0 = x0.long()
    y0 = y0.long()
    x1 = (x0 + 1).clamp(max=wt - 1)
    y1 = (y0 + 1).clamp(max=ht - 1)
    flat = texture.reshape(texture.shape[0], ht * wt, c)
    bidx = torch.arange(bsz, device=uv.device).view(bsz, 1, 1)
    if texture.shape[0] == 1:
        bidx = torch.zeros_like(bidx)

    def tap(yy, xx):
        return flat[bidx, yy * wt + xx]

    top = tap(y0, x0) * (1 - fx) + tap(y0, x1) * fx
    bottom = tap(y1, x0) * (1 - fx) + tap(y1, x1) * fx
    return top * (1 - fy) + bottom * fy
