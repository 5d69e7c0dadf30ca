"""Baking between vertex colours and UV textures.

:func:`bake_vertex_colors` turns per-vertex colours into a texture (for formats and viewers
that show textures, not vertex colours): rasterize the mesh in UV space, interpolate the colours
at every texel centre, then dilate a few texels past the chart borders so bilinear lookups
along a seam never blend in the empty background. :func:`texture_to_vertex_colors` goes the
other way (a texture sampled at each vertex), for formats without textures.

Texel (row r, col c) of an ``[S,S,3]`` texture has its centre at u = (c+0.5)/S,
v = 1 - (r+0.5)/S (see :func:`render_core.sample_texture`), which is exactly the pixel-centre
rule of :func:`render_core.rasterize` for the clip position (2u-1, 2v-1, 0, 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .interpolate import interpolate, sample_texture
from .mesh import Mesh, MeshError
from .rasterize import rasterize
from .uv import generate_uvs

DEFAULT_BAKE_SIZE = 1024
DEFAULT_DILATION = 4


def uv_fragments(uvs: torch.Tensor, face_uvs: torch.Tensor, size: int, backend: str = "auto"):
    """Rasterize faces in UV space: :class:`~render_core.Fragments` of a ``size``² texture.

    Args:
        uvs: [T,2] float, face_uvs: [F,3] int64 (the mesh's per-corner UVs).
        size: texture side in texels.
    Returns:
        Fragments with batch 1: ``face_idx [1,S,S]`` (-1 where no chart covers the texel
        centre) and affine ``bary [1,S,S,3]``. Where charts overlap, the lower face wins.
    """
    uv = uvs.detach()
    clip = torch.cat([uv * 2.0 - 1.0, torch.zeros_like(uv[:, :1]), torch.ones_like(uv[:, :1])],
                     dim=1)
    return rasterize(clip[None], face_uvs, (int(size), int(size)), backend=backend)


def dilate(texture: torch.Tensor, covered: torch.Tensor, texels: int) -> torch.Tensor:
    """Grow the covered region of ``texture`` by ``texels`` rings.

    Args:
        texture: [S,S,C] float; covered: [S,S] bool (texels that hold real values).
    Returns:
        [S,S,C]: covered texels unchanged; each ring of empty texels around them takes the mean
        of its already filled 8-neighbours; texels farther away keep their value.
    """
    tex = texture.permute(2, 0, 1).contiguous()  # [C,S,S]
    cov = covered.clone()
    h, w = cov.shape
    for _ in range(int(texels)):
        # Sums over each texel's 3x3 neighbourhood of (value * covered) and of covered.
        stack = torch.cat([tex * cov, cov[None].to(tex.dtype)])
        padded = F.pad(stack, (1, 1, 1, 1))
        total = sum(padded[:, i:i + h, j:j + w] for i in range(3) for j in range(3))
        grow = ~cov & (total[-1] > 0)
        if not bool(grow.any()):
            break
        tex = torch.where(grow, total[:-1] / total[-1:].clamp(min=1), tex)
        cov = cov | grow
    return tex.permute(1, 2, 0)


def bake_attribute(attr: torch.Tensor, faces: torch.Tensor, uvs: torch.Tensor,
                   face_uvs: torch.Tensor, size: int, dilation: int = DEFAULT_DILATION,
                   fill: float = 0.5, backend: str = "auto") -> torch.Tensor:
    """Per-vertex attribute -> ``[S,S,C]`` texture of the same values (not differentiable).

    Args:
        attr: [V,C] float per-vertex values (e.g. linear colours); faces: [F,3] int64 into it.
        uvs, face_uvs: the per-corner UVs the texture is for.
        size: texture side; dilation: rings grown past the charts; fill: value of the texels
            no chart reaches.
    """
    frags = uv_fragments(uvs, face_uvs, size, backend)
    with torch.no_grad():
        values = interpolate(attr.detach(), frags, faces)[0]
        covered = frags.face_idx[0] >= 0
        values = torch.where(covered[..., None], values, torch.full_like(values, fill))
        return dilate(values, covered, dilation)


def bake_vertex_colors(mesh: Mesh, size: int = DEFAULT_BAKE_SIZE,
                       dilation: int = DEFAULT_DILATION, backend: str = "auto") -> Mesh:
    """The mesh with its vertex colours baked into a ``[size,size,3]`` linear texture.

    Args:
        mesh: a :class:`Mesh` with ``vertex_colors``. Its UVs are used when it has some, else
            new ones come from :func:`render_core.uv.generate_uvs` (xatlas when installed).
        size: texture side in texels (4..8192).
        dilation: texels grown past every chart border, to hide seams under bilinear filtering.
    Returns:
        A detached copy with ``uvs``, ``face_uvs`` and ``texture`` set; ``vertex_colors`` kept.
        Rendering it with the texture matches rendering the vertex colours up to the texel
        resolution. Raises :class:`MeshError` without vertex colours.
    """
    if mesh.vertex_colors is None:
        raise MeshError("the mesh has no vertex colours to bake")
    if not 4 <= int(size) <= 8192:
        raise MeshError(f"bake size must lie in 4..8192, got {size}")
    m = mesh.detach()
    if m.uvs is None:
        uvs, face_uvs = generate_uvs(m.vertices, m.faces, int(size))
    else:
        uvs, face_uvs = m.uvs, m.face_uvs
    texture = bake_attribute(m.vertex_colors, m.faces, uvs, face_uvs, int(size), dilation,
                             backend=backend)
    return m.with_(uvs=uvs, face_uvs=face_uvs, texture=texture.clamp(0.0, 1.0)).clone()


def texture_to_vertex_colors(mesh: Mesh) -> torch.Tensor:
    """[V,3] colours of a textured mesh at its vertices: the bilinear texture value at each
    corner's UV, averaged over the corners of a vertex (they differ only along seams).
    Not differentiable. Raises :class:`MeshError` if the mesh has no texture."""
    if not mesh.has_texture:
        raise MeshError("the mesh has no texture (with UVs) to sample")
    with torch.no_grad():
        uv = mesh.uvs[mesh.face_uvs.reshape(-1)]  # [3F,2]
        corner = sample_texture(mesh.texture, uv.view(1, 1, -1, 2))[0, 0]  # [3F,3]
        idx = mesh.faces.reshape(-1)
        total = torch.zeros(mesh.num_vertices, corner.shape[1], dtype=corner.dtype,
                            device=corner.device)
        total.index_add_(0, idx, corner)
        count = torch.zeros(mesh.num_vertices, dtype=corner.dtype, device=corner.device)
        count.index_add_(0, idx, torch.ones_like(idx, dtype=corner.dtype))
        # A vertex no face uses keeps a neutral grey.
        return torch.where(count[:, None] > 0, total / count.clamp(min=1)[:, None],
                           torch.full_like(total, 0.5))


def prepare_export(mesh: Mesh, suffix: str, bake_size: int = DEFAULT_BAKE_SIZE) -> Mesh:
    """The mesh as it should be written to a ``suffix`` file so that it looks the same.

    - ``.obj``: vertex colours without a texture are baked into one (:func:`bake_vertex_colors`;
      the colours stay in the file too), so viewers that only read MTL textures see them. A
      mesh that already has a texture is shown with it, so its vertex colours are left out.
    - ``.glb``: the same, except that baked colours are left out too, because glTF viewers
      multiply ``COLOR_0`` into the texture.
    - ``.ply``: PLY holds no texture, so a textured mesh gets the texture's colour at each
      vertex instead (:func:`texture_to_vertex_colors`: detail finer than the mesh is lost).
    - anything else: unchanged.
    """
    suffix = suffix.lower()
    m = mesh.detach()
    if suffix in (".obj", ".glb") and m.has_texture and m.vertex_colors is not None:
        m = m.with_(vertex_colors=None)
    elif suffix in (".obj", ".glb") and m.vertex_colors is not None:
        m = bake_vertex_colors(m, bake_size)
        if suffix == ".glb":
            m = m.with_(vertex_colors=None)
    if suffix == ".ply" and m.has_texture:
        m = m.with_(vertex_colors=texture_to_vertex_colors(m), uvs=None, face_uvs=None,
                    texture=None)
    return m
