"""NMR (Kato, Ushiku, Harada 2018, "Neural 3D Mesh Renderer"): the approximate rasterisation
gradient, a third rendering/gradient model (``Renderer(model="nmr")``).

The forward pass is the hard rasteriser's image, unchanged. The backward pass gives every edge
of the mesh -- silhouette and occlusion edges alike -- a gradient: for each pixel and each face
corner's screen x and y, the colour change dI the pixel would see when moving the corner makes
an edge of its face sweep over the pixel centre, divided by the distance dx the corner must move
(the paper's linear interpolation of the step), kept only when the move would lower the loss
(dP . dI < 0 with dP the upstream gradient). A pixel outside the face is covered by moving the
corner one way; a pixel inside it is uncovered by moving it either way, and both count. The
rule and its numerics are in ``_nmr_ref.py``; the native kernel is ``csrc/nmr_kernels.h``.

Pixel (row i, col j) has its centre at NDC ``x = 2(j+0.5)/W - 1``, ``y = 1 - 2(i+0.5)/H``.
"""

from __future__ import annotations

import torch

from . import _build
from . import _nmr_ref as nmr_ref
from . import _torch_ref as torch_ref
from ._native import native_nmr_grad
from ._validate import check_image_op_args
from .rasterize import Fragments


class _NmrEdges(torch.autograd.Function):
    """Identity on the image; the NMR sweep gradient for the face corners' screen positions."""

    @staticmethod
    def forward(ctx, color, xy, face_idx, depth, z, valid, name):  # type: ignore[override]
        ctx.name = name
        ctx.save_for_backward(color, xy, face_idx, depth, z, valid)
        return color.clone()

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        color, xy, face_idx, depth, z, valid = ctx.saved_tensors
        grad_xy = None
        if ctx.needs_input_grad[1]:
            args = (color.detach(), face_idx, depth, xy.detach(), z, valid, grad_out.contiguous())
            if ctx.name == "torch":
                grad_xy = nmr_ref.nmr_grad_xy(*args)
            else:
                grad_xy = native_nmr_grad(ctx.name, *args)
        return grad_out, grad_xy, None, None, None, None, None


def nmr_edges(
    color: torch.Tensor,
    frags: Fragments,
    clip: torch.Tensor,
    faces: torch.Tensor,
    backend: str = "auto",
) -> torch.Tensor:
    """Give a hard-rasterised image the NMR approximate rasterisation gradient.

    Returns ``color`` unchanged; in the backward pass ``color`` receives its gradient as it is
    (so colours, textures and lights keep their ordinary interpolation gradients) and ``clip``
    additionally receives, through the projected corners of every face, the NMR sweep gradient:
    for image b, face f, corner k, axis x or y and every pixel p on a row (for x) or column (for
    y) the face spans --

    * p outside f: moving the corner by t covers p first (t the nearest such move). If f would
      be nearer there than p's fragment (background: always), I_after is the colour of f's
      pixel on that line nearest p (which must show f; else nothing: f is occluded there, and
      a line whose span holds no pixel centre gives nothing);
    * p inside f and showing it: moving the corner by t < 0 and by t > 0 uncovers p; I_after
      is the colour of the pixel just past f's span on the side f leaves from (nothing past
      the image border);

    each adding ``(dP . dI) / t`` to dL/d(corner) when ``dP . dI < 0``, with dI = I_after - I[p]
    over all C channels and dP = dL/dcolor[p]. Faces are independent (each face's corner moves
    alone, as in the paper); a vertex sums its faces' corners.

    Args:
        color: [B,H,W,C] float32/float64 rendered image (stack ``rgb`` and the hard alpha as
            channels to give silhouette losses the gradient too); differentiable.
        frags: the :class:`Fragments` of ``rasterize(clip, faces, (H, W))``: ``face_idx`` and
            ``depth`` are used (not differentiated).
        clip: [B,V,4] (or [V,4], or batch 1 broadcast to B) clip-space vertices, cast to
            ``color``'s dtype; differentiable (x, y and w through the projection).
        faces: [F,3] int vertex indices.
        backend: ``"auto"``, ``"torch"``, ``"cpu"`` or ``"cuda"``; every tensor on the
            backend's device.
    Returns:
        [B,H,W,C]: ``color``, with the NMR backward pass.
    """
    face_idx, depth, clip, faces = check_image_op_args(color, frags, clip, faces)
    if faces.shape[0] == 0:
        return color
    if int(faces.min()) < 0 or int(faces.max()) >= clip.shape[1]:
        raise ValueError(f"face indices must lie in [0, {clip.shape[1] - 1}]")
    name = _build.resolve_backend(backend, color.device)
    h, w = color.shape[1], color.shape[2]
    fv = clip[:, faces]  # [B,F,3,4]
    valid = torch_ref.valid_faces(fv.detach())
    safe = torch.where(valid[..., None, None], fv, torch.ones_like(fv))
    xy = nmr_ref.screen_xy(safe, h, w)  # [B,F,3,2], differentiable
    z = (safe[..., 2] / safe[..., 3]).detach()
    return _NmrEdges.apply(color, xy, face_idx.long(), depth.detach().to(color.dtype), z, valid,
                           name)
