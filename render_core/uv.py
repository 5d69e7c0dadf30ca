"""UV parameterisation for meshes that have none: an xatlas atlas, or spherical as a fallback.

Both return per-corner UVs in the :class:`~render_core.mesh.Mesh` convention (OBJ's: origin at
the bottom-left, v up): ``uvs [T,2]`` and ``face_uvs [F,3]`` indexing them, face order kept.
"""

from __future__ import annotations

import math

import numpy as np
import torch

# Gutter between charts, in texels of the atlas xatlas packs: room for bilinear taps and for
# the dilation that hides seams (see ``render_core.bake``).
_PADDING = 4


def xatlas_available() -> bool:
    """True when the ``xatlas`` package can be imported."""
    try:
        import xatlas  # noqa: F401
    except ImportError:
        return False
    return True


def spherical_uvs(vertices: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor,
                                                                          torch.Tensor]:
    """Per-corner spherical UVs around the centroid: ``(uvs [3F,2], face_uvs [F,3])``.

    Args:
        vertices: [V,3] float; faces: [F,3] int64.
    Corners are unshared so a face straddling the u=0/1 seam can be unwrapped on its own.
    Cheap and dependency-free, but it stretches near the poles and lets concave parts share
    texels; :func:`atlas_uvs` does neither.
    """
    c = vertices - vertices.mean(0)
    d = c / c.norm(dim=-1, keepdim=True).clamp(min=1e-9)
    u = (torch.atan2(d[:, 0], d[:, 2]) / (2 * math.pi)) % 1.0
    v = 0.5 + torch.asin(d[:, 1].clamp(-1, 1)) / math.pi
    fu, fv = u[faces], v[faces]  # [F,3]
    # A face whose corners span more than half the circle wraps: lift the small ones by 1.
    wrap = (fu.max(1).values - fu.min(1).values) > 0.5
    fu = torch.where(wrap[:, None] & (fu < 0.5), fu + 1.0, fu)
    uvs = torch.stack([fu.reshape(-1), fv.reshape(-1)], -1).to(vertices.dtype)
    face_uvs = torch.arange(faces.shape[0] * 3, dtype=torch.long).reshape(-1, 3)
    return uvs, face_uvs


def atlas_uvs(vertices: torch.Tensor, faces: torch.Tensor, size: int = 512
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """A non-overlapping UV atlas from xatlas: ``(uvs [T,2], face_uvs [F,3])``.

    Args:
        vertices: [V,3] float; faces: [F,3] int64 (any device; the result is on the same one).
        size: the texture side the atlas is packed for (sets the gutter between charts).
    Charts are cut along sharp edges and packed into the unit square with a few texels of
    gutter. Raises ``ImportError`` without xatlas and ``ValueError`` if it returns something
    that does not describe the same faces.
    """
    import xatlas

    pos = vertices.detach().cpu().double().numpy().astype(np.float32)
    idx = faces.detach().cpu().numpy().astype(np.uint32)
    atlas = xatlas.Atlas()
    atlas.add_mesh(pos, idx)
    pack = xatlas.PackOptions()
    pack.resolution = int(size)
    pack.padding = _PADDING
    pack.bilinear = True
    atlas.generate(pack_options=pack)
    vmap, new_faces, uv = atlas[0]
    new_faces = new_faces.astype(np.int64)
    if new_faces.shape != idx.shape or not np.array_equal(vmap[new_faces], idx):
        raise ValueError("xatlas returned an atlas for different faces")
    uv = np.asarray(uv, dtype=np.float32)  # normalised to [0,1] by the atlas size
    dtype = vertices.dtype if vertices.is_floating_point() else torch.float32
    return (torch.from_numpy(uv).to(device=vertices.device, dtype=dtype),
            torch.from_numpy(new_faces).to(vertices.device))


def generate_uvs(vertices: torch.Tensor, faces: torch.Tensor, size: int = 512
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """UVs for a mesh without any: :func:`atlas_uvs` when xatlas is installed (and works on
    this mesh), else :func:`spherical_uvs`. Returns ``(uvs [T,2], face_uvs [F,3])``."""
    if xatlas_available():
        try:
            return atlas_uvs(vertices, faces, size)
        except (ValueError, RuntimeError):
            pass  # a mesh xatlas cannot chart still gets a (distorted) parameterisation
    return spherical_uvs(vertices, faces)


def weld_seams(mesh):
    """Merge vertices that formats with one index per vertex (glTF, PLY) split at UV seams.

    Args:
        mesh: a :class:`~render_core.mesh.Mesh`.
    Returns:
        The same mesh if no two vertices share both position and colour; else a detached copy
        in which they are one vertex, with the UVs kept per corner (``face_uvs``). Faces keep
        their order. Rendered colours do not change, but vertex normals become smooth across
        the seam and a fit moves both sides together, as in the mesh that was exported.
    """
    v = mesh.vertices.detach()
    key = v if mesh.vertex_colors is None else torch.cat([v, mesh.vertex_colors.detach()], 1)
    unique, inverse = torch.unique(key, dim=0, return_inverse=True)
    if unique.shape[0] == v.shape[0]:
        return mesh
    # Keep first-appearance order, so a mesh without seams would keep its vertex order.
    n = unique.shape[0]
    first = torch.full((n,), v.shape[0], dtype=torch.long).scatter_reduce(
        0, inverse, torch.arange(v.shape[0]), reduce="amin")
    order = torch.argsort(first)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(n)
    keep = first[order]
    m = mesh.detach()
    fields = {"vertices": v[keep], "faces": rank[inverse][m.faces]}
    if m.vertex_colors is not None:
        fields["vertex_colors"] = m.vertex_colors[keep]
    if m.uvs is not None:
        fields.update(uvs=m.uvs, face_uvs=m.face_uvs if m.face_uvs is not None else m.faces)
    return m.with_(**fields)
