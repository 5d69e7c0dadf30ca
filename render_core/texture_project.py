"""Texture from photos: project the target images onto the mesh, where they see it.

A fitted texture starts far better from the photos themselves than from a flat colour: most
texels of a large texture are touched by few render pixels, so gradient descent alone leaves
them where they started. :func:`project_texture` gives every texel the colour the targets show
at its surface point:

1. rasterize the mesh in UV space (:func:`render_core.bake.uv_fragments`): each covered texel
   centre gets its face, its 3D point and its (interpolated vertex) normal;
2. project that point into every target camera (pixel centres as in
   :func:`render_core.rasterize`) and sample the image and mask there (bilinear);
3. keep the views that see it: the renderer's own depth buffer at that pixel (the nearest
   surface, as a distance from the eye) must agree with the texel's distance, and the surface
   must face the camera;
4. blend the views with weights ``(cos(normal, view) * mask) ** sharpness``: a large
   ``sharpness`` approaches "best view per texel", a small one averages views (less noise,
   softer detail). Texels no view sees are reported, so the caller can fill them.

Nothing here is differentiable: it is an initialisation that descent then refines.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from .bake import DEFAULT_DILATION, dilate, uv_fragments
from .camera import Camera
from .color import srgb_to_linear
from .interpolate import interpolate, sample_texture
from .rasterize import rasterize
from .shading import face_normals, safe_normalize, vertex_normals

__all__ = ["Projection", "initial_texture", "project_texture", "texel_coverage_warning"]

# Blend weight of the views: (cos * mask) ** sharpness.
DEFAULT_SHARPNESS = 4.0
# Views seeing the surface at a grazing angle below this cosine are ignored.
MIN_COS = 0.1
# Texels per render pixel above which most texels are seen by no pixel at all.
MAX_TEXELS_PER_PIXEL = 2.0


class Projection(NamedTuple):
    """texture [S,S,3] the blended colours (0 where ``seen`` is False); weight [S,S] the sum
    of the views' blend weights; seen [S,S] bool texels some view sees; covered [S,S] bool
    texels some chart covers."""

    texture: torch.Tensor
    weight: torch.Tensor
    seen: torch.Tensor
    covered: torch.Tensor


def project_texture(vertices: torch.Tensor, faces: torch.Tensor, uvs: torch.Tensor,
                    face_uvs: torch.Tensor, cameras: Camera, images: torch.Tensor,
                    masks: torch.Tensor, size: int, sharpness: float = DEFAULT_SHARPNESS,
                    backend: str = "auto") -> Projection:
    """Project target images onto a mesh's UV texture (best view per texel, softly blended).

    Args:
        vertices: [V,3] float; faces: [F,3] int64; uvs: [T,2] float; face_uvs: [F,3] int64.
        cameras: B cameras (any aspect; the images' own).
        images: [B,H,W,C] float, the colours to put on the texture (e.g. linear targets).
        masks: [B,H,W] float in [0,1], the object's coverage in each image.
        size: texture side in texels.
        sharpness: exponent of the blend weights (>= 0); 0 averages every view that sees a
            texel equally.
    Returns:
        A :class:`Projection`. Not differentiable; on the vertices' device and dtype.
    """
    with torch.no_grad():
        v = vertices.detach()
        n_img, h, w, _ = images.shape
        if masks.shape != (n_img, h, w) or len(cameras) != n_img:
            raise ValueError(f"images {tuple(images.shape)}, masks {tuple(masks.shape)} and "
                             f"{len(cameras)} cameras do not match")
        frags = uv_fragments(uvs, face_uvs, size, backend)
        fidx = frags.face_idx[0]
        covered = fidx >= 0
        sel = covered.reshape(-1)
        points = interpolate(v, frags, faces)[0].reshape(-1, 3)[sel]  # [P,3]
        normals = safe_normalize(interpolate(vertex_normals(v, faces), frags, faces)[0]
                                 .reshape(-1, 3)[sel])
        # Faces seen edge-on or from behind in a view must not take its colours, whatever
        # the smoothed vertex normals say: require the face normal to face the camera too.
        fnorm = face_normals(v, faces)[fidx.reshape(-1)[sel]]
        cams = cameras.to(dtype=v.dtype, device=v.device)

        # What each camera sees: the distance from its eye to the nearest surface per pixel.
        view_frags = rasterize(cams.to_clip(v), faces, (h, w), backend=backend)
        surf = interpolate(v, view_frags, faces)  # [B,H,W,3] world points
        depth = torch.linalg.vector_norm(surf - cams.eye[:, None, None], dim=-1)
        depth = torch.where(view_frags.mask, depth, torch.full_like(depth, float("inf")))

        clip = cams.to_clip(points)  # [B,P,4]
        wc = clip[..., 3:]
        ndc = clip[..., :2] / wc.clamp(min=1e-8)
        uv = ((ndc + 1.0) * 0.5)[:, None]  # [B,1,P,2]: the image as a texture, v up
        color = sample_texture(images.to(v.dtype), uv)[:, 0]  # [B,P,C]
        mask = sample_texture(masks.to(v.dtype)[..., None], uv)[:, 0, :, 0]  # [B,P]
        # Nearest pixel of each projection, for the depth test.
        col = ((ndc[..., 0] + 1.0) * 0.5 * w).floor().long()
        row = ((1.0 - ndc[..., 1]) * 0.5 * h).floor().long()
        inside = (wc[..., 0] > 0) & (col >= 0) & (col < w) & (row >= 0) & (row < h)
        flat = (row.clamp(0, h - 1) * w + col.clamp(0, w - 1))
        buf = torch.gather(depth.reshape(n_img, -1), 1, flat)  # [B,P]
        to_eye = cams.eye[:, None] - points[None]  # [B,P,3]
        dist = torch.linalg.vector_norm(to_eye, dim=-1)
        view_dir = to_eye / dist[..., None].clamp(min=1e-12)
        cos = (view_dir * normals[None]).sum(-1)
        cos_face = (view_dir * fnorm[None]).sum(-1)
        # A pixel spans dist * (2 / (h * fy)) at that distance; allow a few of them, so a texel
        # on a slope agrees with the pixel centre that lies beside it.
        fy = cams.proj[:, 1, 1][:, None]
        tol = 0.01 * dist + 3.0 * dist * 2.0 / (h * fy) / cos.clamp(min=MIN_COS)
        visible = inside & (buf <= dist + tol) & (cos > MIN_COS) & (cos_face > 0)
        # Only pixels inside the object's mask count (silhouette pixels blend the background).
        keep = visible & (mask > 0.5)
        score = (cos.clamp(min=0) * mask).clamp(min=0) ** float(sharpness)
        weight = torch.where(keep, score, torch.zeros_like(score))
        total = weight.sum(0)  # [P]
        # Weights of grazing views underflow to ~1e-20: divide by no more than they sum to.
        tiny = torch.finfo(v.dtype).tiny
        blend = (weight[..., None] * color).sum(0) / total.clamp(min=tiny)[:, None]

        c = images.shape[-1]
        tex = torch.zeros(size * size, c, dtype=v.dtype, device=v.device)
        wsum = torch.zeros(size * size, dtype=v.dtype, device=v.device)
        tex[sel] = torch.where(total[:, None] > 0, blend, torch.zeros_like(blend))
        wsum[sel] = total
        seen = wsum > 0
        return Projection(tex.view(size, size, c), wsum.view(size, size),
                          seen.view(size, size), covered)


def initial_texture(vertices: torch.Tensor, faces: torch.Tensor, uvs: torch.Tensor,
                    face_uvs: torch.Tensor, targets, cameras: Camera, size: int,
                    fallback: torch.Tensor, backend: str = "auto") -> torch.Tensor:
    """The starting texture of a fit: the targets projected onto the mesh, ``fallback`` where
    no target sees it.

    Args:
        vertices, faces, uvs, face_uvs: the mesh as the fit starts.
        targets: :class:`render_core.fit_config.TargetView` (sRGB images, masks).
        cameras: the N targets' cameras (a batch of N; their projection is used at each
            target's own aspect, as the Fitter renders).
        size: texture side; fallback: [S,S,3] linear texture for texels no target sees.
    Returns:
        [S,S,3] linear texture: projected texels, a few rings grown from them into the unseen
        ones, then ``fallback``; the gutter past the charts is regrown from the charts.
    """
    dtype, device = vertices.dtype, vertices.device
    acc = torch.zeros(size, size, 3, dtype=dtype, device=device)
    wsum = torch.zeros(size, size, dtype=dtype, device=device)
    covered = None
    cameras = cameras.detach()
    for i, t in enumerate(targets):
        img = torch.as_tensor(t.image, dtype=dtype, device=device)
        msk = torch.as_tensor(t.mask, dtype=dtype, device=device)
        # Enough pixels to fill the texture, never more than the photo has.
        h = min(img.shape[0], max(int(size), 64))
        w = max(1, round(h * t.aspect))
        if (h, w) != tuple(img.shape[:2]):
            img = F.interpolate(img.permute(2, 0, 1)[None], size=(h, w), mode="area")[0]
            img = img.permute(1, 2, 0)
            msk = F.interpolate(msk[None, None], size=(h, w), mode="area")[0, 0]
        cam = cameras[i]
        proj = project_texture(vertices, faces, uvs, face_uvs, cam, srgb_to_linear(img)[None],
                               msk[None], size, backend=backend)
        acc += proj.texture * proj.weight[..., None]
        wsum += proj.weight
        covered = proj.covered
    seen = wsum > 0
    blend = acc / wsum.clamp(min=torch.finfo(dtype).tiny)[..., None]
    tex = torch.where(seen[..., None], blend, fallback)
    tex = dilate(tex, seen, max(2, int(size) // 32))
    return dilate(tex, covered, DEFAULT_DILATION).clamp(0.0, 1.0).contiguous()


def texel_coverage_warning(texture_size: int, resolution: int) -> str | None:
    """A one-line warning when a ``texture_size``² texture is fitted from renders
    ``resolution`` pixels high: above :data:`MAX_TEXELS_PER_PIXEL` texels per pixel most
    texels fall between the pixels' bilinear taps, get no gradient and keep their start.
    None when the sizes suit each other."""
    ratio = int(texture_size) / max(int(resolution), 1)
    if ratio <= MAX_TEXELS_PER_PIXEL:
        return None
    return (f"texture {int(texture_size)}² is fitted from {int(resolution)}-pixel renders "
            f"({ratio:.1f} texels per pixel): most texels are seen by no pixel and only the "
            f"projected start and the smoothness term set them. Raise the resolution to about "
            f"{int(texture_size)} or lower the texture size.")
