"""Edge antialiasing with visibility gradients: ``antialias`` and ``antialias_topology``.

The DIB-R foreground is a hard step wherever one part of a mesh occludes another: the colours
on both sides carry gradients, the position of the step carries none. ``antialias`` (the idea
of the analytic antialiasing of Laine et al. 2020, written for this project) looks at every
pair of horizontally or vertically adjacent pixels whose faces differ, finds the silhouette
edge of the nearer face that crosses between the two pixel centres, and blends the two colours
by the area the edge cuts off. The blend weight is a function of the edge's two projected
vertices, so the colour difference across the step pulls those vertices in clip space.

Pixel (row i, col j) has its centre at NDC ``x = 2(j+0.5)/W - 1``, ``y = 1 - 2(i+0.5)/H``.
"""

from __future__ import annotations

import torch

from . import _build
from . import _torch_ref as torch_ref
from ._native import native_antialias
from ._validate import check_faces, check_image_op_args
from .rasterize import Fragments


def antialias_topology(faces: torch.Tensor) -> torch.Tensor:
    """The face across each edge, for :func:`antialias`: [F,3] int64 on the faces' device.

    Entry (f, k) is the face that shares edge k of face f (from vertex ``faces[f,k]`` to
    ``faces[f,(k+1)%3]``) and runs it the other way (consistent winding), or -1 when the edge
    is a boundary, is shared by more than two faces, or joins faces of opposite winding. It
    depends on ``faces`` only: compute it once per mesh and pass it to every call.
    """
    faces = check_faces(faces)
    nf = faces.shape[0]
    out = torch.full((nf, 3), -1, dtype=torch.int64, device=faces.device)
    if nf == 0:
        return out
    a = faces.reshape(-1)
    b = faces.roll(-1, dims=1).reshape(-1)
    nv = int(faces.max()) + 1
    key = torch.minimum(a, b) * nv + torch.maximum(a, b)
    order = torch.argsort(key, stable=True)
    sk = key[order]
    first = torch.ones_like(sk, dtype=torch.bool)
    first[1:] = sk[1:] != sk[:-1]
    group = torch.cumsum(first.long(), 0) - 1
    count = torch.bincount(group)[group]
    pos = torch.arange(sk.shape[0], device=faces.device)
    partner = torch.where(first, pos + 1, pos - 1).clamp(0, sk.shape[0] - 1)
    me, other = order, order[partner]
    ok = (count == 2) & (a[me] == b[other]) & (a[me] != b[me]) & (me // 3 != other // 3)
    flat = out.view(-1)
    flat[me[ok]] = other[ok] // 3
    return out


def antialias(
    color: torch.Tensor,
    frags: Fragments,
    clip: torch.Tensor,
    faces: torch.Tensor,
    topology: torch.Tensor | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Blend colours across silhouette edges by their analytic coverage (visibility gradients).

    For each pair of horizontally or vertically adjacent pixels whose faces differ (background
    included), the nearer of the two fragments (smaller ``frags.depth``; background is the
    farthest; ties go to the left/top pixel) is the front one. A silhouette edge of the front
    face is one with no neighbour in ``topology``, or whose neighbour winds the other way on
    screen (faces away). The first one (edge order 0, 1, 2) that crosses the segment between
    the two pixel centres, at a distance ``s`` in [0, 1] pixels from the left/top centre,
    blends the pair: the pixel whose centre is nearer the edge takes ``|s - 1/2|`` of the other
    pixel's colour. Contributions are computed from the input colours and summed per pixel.

    Args:
        color: [B,H,W,C] float32/float64 shaded image (any C); differentiable.
        frags: the :class:`Fragments` of ``rasterize(clip, faces, (H, W))``: ``face_idx``
            [B,H,W] and ``depth`` [B,H,W] are used (not differentiated).
        clip: [B,V,4] (or [V,4], or batch 1 broadcast to B) clip-space vertices, cast to
            ``color``'s dtype; differentiable: each blended pair sends its gradient to the two
            vertices of its edge (x, y and w).
        faces: [F,3] int vertex indices.
        topology: :func:`antialias_topology` of ``faces`` (computed here when None).
        backend: ``"auto"``, ``"torch"``, ``"cpu"`` or ``"cuda"``; every tensor on the
            backend's device.
    Returns:
        [B,H,W,C] of ``color``'s dtype; equal to ``color`` away from silhouette edges.
    """
    face_idx, depth, clip, faces = check_image_op_args(color, frags, clip, faces)
    if topology is None:
        topology = antialias_topology(faces)
    topology = torch.as_tensor(topology, device=clip.device).long()
    if topology.shape != faces.shape:
        raise ValueError(f"topology must be [F,3] like faces, got {tuple(topology.shape)}")
    if faces.shape[0] == 0:
        return color
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= clip.shape[1]):
        raise ValueError(f"face indices must lie in [0, {clip.shape[1] - 1}]")
    name = _build.resolve_backend(backend, color.device)
    face_idx = face_idx.long()
    depth = depth.detach().to(color.dtype)
    if name == "torch":
        return torch_ref.antialias(color, face_idx, depth, clip, faces, topology)
    return native_antialias(name, color, face_idx, depth, clip, faces, topology)
