"""Renderer: rasterize + interpolate + shade + soft silhouette in one ``render()`` call."""

from __future__ import annotations

from typing import NamedTuple

import torch

from .camera import Camera
from .interpolate import interpolate, sample_texture
from .mesh import Mesh
from .rasterize import DEFAULT_SIGMA, Fragments, _resolution, rasterize, soft_silhouette
from .shading import (
    DirectionalLight,
    PhongMaterial,
    SHLight,
    lambertian,
    phong,
    sh_irradiance,
    vertex_normals,
)

SHADINGS = ("vertex_color", "texture", "lambertian", "phong", "sh")
DEFAULT_GREY = 0.8


class RenderOutput(NamedTuple):
    """rgb [B,H,W,3] linear colour (``background`` where no face covers the pixel),
    alpha [B,H,W] the DIB-R soft silhouette, frags the :class:`Fragments`."""

    rgb: torch.Tensor
    alpha: torch.Tensor
    frags: Fragments


class Renderer:
    """DIB-R renderer: barycentric interpolation in the foreground, soft alpha around it.

    Args:
        resolution: ``(H, W)`` or int.
        shading: ``"vertex_color"`` / ``"texture"`` (unlit base colour), ``"lambertian"``,
            ``"phong"`` or ``"sh"`` (DIB-R eq. 7-11, ``I = I_l * I_c + I_s``).
        backend: rasterization backend (``"auto"``, ``"torch"``, ``"cpu"``, ``"cuda"``).
        sigma: soft-silhouette sigma (see :func:`render_core.soft_silhouette`).
        background: colour of uncovered pixels in ``rgb`` (float or 3 values).
        silhouette: compute the soft alpha (set False for colour-only renders).

    The base colour I_c is the mesh's texture when it has one (with UVs), else its vertex
    colours, else a uniform 0.8 grey. Light and material may be passed per call, so one
    renderer serves every view; defaults are a light from the camera's side and
    ``PhongMaterial()``.
    """

    def __init__(
        self,
        resolution,
        shading: str = "vertex_color",
        backend: str = "auto",
        sigma: float = DEFAULT_SIGMA,
        background=0.0,
        silhouette: bool = True,
    ):
        if shading not in SHADINGS:
            raise ValueError(f"unknown shading {shading!r}; choose one of {SHADINGS}")
        self.resolution = _resolution(resolution)
        self.shading = shading
        self.backend = backend
        self.sigma = sigma
        self.background = background
        self.silhouette = silhouette

    def base_color(self, mesh: Mesh, frags: Fragments) -> torch.Tensor:
        """I_c [B,H,W,3]: texture, vertex colours or grey, interpolated at each pixel."""
        if self.shading == "texture" or (self.shading != "vertex_color" and mesh.has_texture):
            if not mesh.has_texture:
                raise ValueError("texture shading needs a mesh with uvs, face_uvs and texture")
            uv = interpolate(mesh.uvs, frags, mesh.face_uvs, backend=self.backend)
            return sample_texture(mesh.texture, uv)
        if mesh.vertex_colors is not None:
            return interpolate(mesh.vertex_colors, frags, mesh.faces, backend=self.backend)
        shape = (*frags.face_idx.shape, 3)
        return torch.full(shape, DEFAULT_GREY, dtype=frags.bary.dtype, device=frags.bary.device)

    def render(
        self,
        mesh: Mesh,
        camera: Camera,
        light: DirectionalLight | SHLight | None = None,
        material: PhongMaterial | None = None,
    ) -> RenderOutput:
        """Render ``mesh`` from each of the B cameras.

        ``mesh.vertices`` may be [V,3] (shared) or [B,V,3]; every field that requires grad
        receives gradients (vertices, colours, uvs, texture), and so do tensors inside
        ``camera``, ``light`` and ``material``.
        """
        clip = camera.to_clip(mesh.vertices)
        frags = rasterize(clip, mesh.faces, self.resolution, backend=self.backend)
        fg = frags.mask.unsqueeze(-1)
        color = self.base_color(mesh, frags)
        if self.shading in ("vertex_color", "texture"):
            rgb = color
        else:
            rgb = self._lit(mesh, camera, frags, color, light, material)
        bg = torch.as_tensor(self.background, dtype=rgb.dtype, device=rgb.device)
        rgb = torch.where(fg, rgb, bg.expand_as(rgb) if bg.dim() else bg)
        if self.silhouette:
            alpha = soft_silhouette(
                clip, mesh.faces, self.resolution, sigma=self.sigma, backend=self.backend
            )
        else:
            alpha = frags.mask.to(rgb.dtype)
        return RenderOutput(rgb, alpha, frags)

    def _lit(self, mesh, camera, frags, color, light, material) -> torch.Tensor:
        vn = vertex_normals(mesh.vertices, mesh.faces)
        normals = interpolate(vn, frags, mesh.faces, backend=self.backend)
        if self.shading == "sh":
            if not isinstance(light, SHLight):
                raise ValueError("sh shading needs an SHLight")
            return color * sh_irradiance(normals, light)
        if light is None:
            light = DirectionalLight(_default_light_dir(camera))
        if not isinstance(light, DirectionalLight):
            raise ValueError(f"{self.shading} shading needs a DirectionalLight")
        material = material or PhongMaterial()
        if self.shading == "lambertian":
            return color * lambertian(normals, light, kd=material.kd)
        points = interpolate(mesh.vertices, frags, mesh.faces, backend=self.backend)
        view_dirs = camera.eye.to(points.dtype).view(-1, 1, 1, 3) - points
        i_l, i_s = phong(normals, view_dirs, light, material)
        return color * i_l + i_s


def _default_light_dir(camera: Camera) -> torch.Tensor:
    """A head-light: towards the camera, tilted up, so the default render is readable."""
    d = camera.eye.detach()
    return d / d.norm(dim=-1, keepdim=True).clamp(min=1e-12) + d.new_tensor([0.0, 0.5, 0.0])
