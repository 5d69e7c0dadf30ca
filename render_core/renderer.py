"""Renderer: rasterize + interpolate + shade + soft silhouette in one ``render()`` call."""

from __future__ import annotations

from typing import NamedTuple

import torch

from ._fused import lambertian_covered, lambertian_plan
from ._validate import check_resolution
from .antialias import antialias, antialias_topology
from .camera import Camera
from .interpolate import interpolate, sample_texture
from .mesh import Mesh
from .nmr import nmr_edges
from .rasterize import DEFAULT_SIGMA, Fragments, rasterize, soft_silhouette
from .shading import (
    DirectionalLight,
    PhongMaterial,
    SHLight,
    lambertian,
    phong,
    sh_irradiance,
    vertex_normals,
)
from .softras import DEFAULT_GAMMA, softras

SHADINGS = ("vertex_color", "texture", "lambertian", "phong", "sh")
EDGES = ("hard", "antialias")
MODELS = ("dibr", "softras", "nmr")
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
        edges: ``"hard"`` (DIB-R: a step at every occlusion edge) or ``"antialias"``: blend
            ``rgb`` across silhouette edges after shading (:func:`render_core.antialias`),
            which gives the edges' vertices gradients from colour losses too.
        model: ``"dibr"`` or ``"softras"`` (:func:`render_core.softras`: every face near a
            pixel contributes to ``rgb`` and ``alpha``, sharpness ``sigma``, depth softmax
            ``gamma``; unlit ``vertex_color`` shading only, so far) or ``"nmr"``
            (:func:`render_core.nmr_edges`, Kato et al. 2018: the same image as ``"dibr"``'s
            hard foreground, alpha the hard 0/1 coverage mask, and in the backward pass the
            NMR approximate rasterisation gradient at every edge, for ``rgb`` and ``alpha``;
            every shading; ``sigma`` unused; ``edges`` must be ``"hard"``).
        gamma: SoftRas depth-softmax temperature.

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
        edges: str = "hard",
        model: str = "dibr",
        gamma: float = DEFAULT_GAMMA,
    ):
        if shading not in SHADINGS:
            raise ValueError(f"unknown shading {shading!r}; choose one of {SHADINGS}")
        if edges not in EDGES:
            raise ValueError(f"unknown edges {edges!r}; choose one of {EDGES}")
        if model not in MODELS:
            raise ValueError(f"unknown model {model!r}; choose one of {MODELS}")
        if model == "softras" and shading != "vertex_color":
            raise ValueError("model 'softras' supports only shading 'vertex_color' so far")
        if model == "nmr" and edges != "hard":
            raise ValueError("model 'nmr' gives every edge its own gradient: edges must be 'hard'")
        self.edges = edges
        self.model = model
        self.gamma = gamma
        self._topology: tuple[torch.Tensor, torch.Tensor] | None = None  # (faces, topology)
        self.resolution = check_resolution(resolution)
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
        if self.model == "softras":
            return self._softras(mesh, clip, frags)
        mask = frags.mask  # (one comparison of face_idx for every use below)
        if self.shading in ("vertex_color", "texture"):
            rgb = self.base_color(mesh, frags)
            bg = torch.as_tensor(self.background, dtype=rgb.dtype, device=rgb.device)
            fg = mask.unsqueeze(-1)
            rgb = torch.where(fg, rgb, bg.expand_as(rgb) if bg.dim() else bg)
        else:
            # Lighting runs on the covered pixels only (a [P,C] list gathered once), then is
            # scattered onto the background: the same per-pixel values as shading the whole
            # image and masking it, at the cost of the covered area.
            cov = _Covered(frags, mask)
            lit = self._lit(mesh, camera, frags, cov, light, material)
            bg = torch.as_tensor(self.background, dtype=lit.dtype, device=lit.device)
            # (A fresh canvas filled in place: the copy of the expanded background and the
            # out-of-place index_copy's second copy of it cost more than the scatter.)
            canvas = (lit.new_full((cov.npix, 3), float(bg))
                      if bg.dim() == 0 and not bg.requires_grad
                      else bg.expand(cov.npix, 3).contiguous())
            rgb = canvas.index_copy_(0, cov.sel, lit).view(*cov.shape, 3)
        if self.model == "nmr":
            alpha = mask.to(rgb.dtype)
            both = nmr_edges(torch.cat([rgb, alpha.unsqueeze(-1)], -1), frags, clip,
                             mesh.faces, backend=self.backend)
            return RenderOutput(both[..., :3], both[..., 3], frags)
        if self.edges == "antialias":
            topo = self._edge_topology(mesh.faces)
            rgb = antialias(rgb, frags, clip, mesh.faces, topo, backend=self.backend)
        if self.silhouette:
            # The rasterizer's (float32) mask is the float32 silhouette's coverage: no second
            # coverage pass.
            covered = mask if clip.dtype == torch.float32 else None
            alpha = soft_silhouette(
                clip, mesh.faces, self.resolution, sigma=self.sigma, backend=self.backend,
                covered=covered,
            )
        else:
            alpha = mask.to(rgb.dtype)
        return RenderOutput(rgb, alpha, frags)

    def _softras(self, mesh: Mesh, clip: torch.Tensor, frags: Fragments) -> RenderOutput:
        """SoftRas colour and silhouette of the vertex colours (or grey)."""
        colors = mesh.vertex_colors
        if colors is None:
            colors = torch.full_like(mesh.vertices[..., :3], DEFAULT_GREY)
        rgb, alpha = softras(
            clip, mesh.faces, colors, self.resolution, sigma=self.sigma, gamma=self.gamma,
            background=self.background, backend=self.backend,
        )
        return RenderOutput(rgb, alpha, frags)

    def _edge_topology(self, faces: torch.Tensor) -> torch.Tensor:
        """:func:`antialias_topology` of ``faces``, kept while the faces stay the same."""
        cached = self._topology
        if cached is not None and cached[0].shape == faces.shape:
            if cached[0].device == faces.device and torch.equal(cached[0], faces):
                return cached[1]
        topo = antialias_topology(faces)
        self._topology = (faces.detach().clone(), topo)
        return topo

    def _covered_color(self, mesh: Mesh, frags: Fragments, cov: _Covered) -> torch.Tensor:
        """I_c [P,3] at the covered pixels (see :meth:`base_color`)."""
        textured = self.shading == "texture" or mesh.has_texture
        if not textured and mesh.vertex_colors is None:
            return torch.full(
                (cov.sel.shape[0], 3), DEFAULT_GREY, dtype=frags.bary.dtype, device=cov.sel.device
            )
        if not textured:
            return cov.interpolate(mesh.vertex_colors, frags, mesh.faces, self.backend)
        return cov.take(self.base_color(mesh, frags))

    def _covered_color_normals(self, mesh: Mesh, frags: Fragments, cov: _Covered,
                               vn: torch.Tensor):
        """(I_c [P,3], normals [P,3], both side by side [P,6] or None) of the covered pixels,
        the normals interpolated from the vertex normals ``vn``: from one interpolation where
        both are shared [V,3] vertex attributes of one dtype, else apart (then the [P,6] is
        their concatenation where they share ``vn``'s dtype, else None)."""
        vc = mesh.vertex_colors
        textured = self.shading == "texture" or mesh.has_texture
        if (not textured and vc is not None and vc.dim() == 2 and vc.shape == vn.shape
                and vc.dtype == vn.dtype):
            both = cov.interpolate(torch.cat([vc, vn], -1), frags, mesh.faces, self.backend)
            return both[:, :3], both[:, 3:], both
        color = self._covered_color(mesh, frags, cov)
        normals = cov.interpolate(vn, frags, mesh.faces, self.backend)
        same = color.dtype == normals.dtype == vn.dtype
        return color, normals, torch.cat([color, normals], -1) if same else None

    def _lit(self, mesh, camera, frags, cov, light, material) -> torch.Tensor:
        """Lit colour [P,3] of the covered pixels ``cov``."""
        vn = vertex_normals(mesh.vertices, mesh.faces)
        color = normals = None
        if self.shading == "lambertian" and (light is None or isinstance(light, DirectionalLight)):
            # One native op for the composition below where it covers the light and material.
            if light is None:
                light = DirectionalLight(_default_light_dir(camera))
            material = material or PhongMaterial()
            plan = lambertian_plan(light, material.kd, cov, vn, self.backend)
            if plan is not None:
                color, normals, both = self._covered_color_normals(mesh, frags, cov, vn)
                if both is not None and both.dtype == plan.dtype:
                    return lambertian_covered(both, plan)
        if color is None:
            color = self._covered_color(mesh, frags, cov)
            normals = cov.interpolate(vn, frags, mesh.faces, self.backend)
        if self.shading == "sh":
            if not isinstance(light, SHLight):
                raise ValueError("sh shading needs an SHLight")
            return color * sh_irradiance(normals, SHLight(cov.sh_coeffs(light.coeffs, normals)))
        if light is None:
            light = DirectionalLight(_default_light_dir(camera))
        if not isinstance(light, DirectionalLight):
            raise ValueError(f"{self.shading} shading needs a DirectionalLight")
        material = material or PhongMaterial()
        light = DirectionalLight(
            cov.param(light.direction, 1, normals, "light.direction"),
            cov.param(light.intensity, 0, normals, "light.intensity"),
            cov.param(light.ambient, 0, normals, "light.ambient"),
        )
        kd = cov.param(material.kd, 0, normals, "material.kd")
        if self.shading == "lambertian":
            return color * lambertian(normals, light, kd=kd)
        material = PhongMaterial(
            kd, cov.param(material.ks, 0, normals, "material.ks"),
            cov.param(material.shininess, 0, normals, "material.shininess"),
        )
        points = cov.interpolate(mesh.vertices, frags, mesh.faces, self.backend)
        eye = cov.param(camera.eye.to(points.dtype), 1, points, "camera.eye")
        i_l, i_s = phong(normals, eye - points, light, material)
        return color * i_l + i_s


class _Covered:
    """The covered pixels of a render, and per-image parameters gathered to them.

    ``sel [P]`` indexes the flattened ``[B*H*W]`` image, ``bidx [P]`` is each pixel's image.
    Parameters follow the conventions of :mod:`render_core.shading`: ``tail`` feature dims
    (shared, left as they are), one more (one per image: gathered with ``bidx``), or a full
    ``[B,H,W,...]`` map (gathered with ``sel``).
    """

    def __init__(self, frags: Fragments, mask: torch.Tensor):
        """``mask``: ``frags.mask``, computed once by the caller."""
        self.shape = tuple(frags.face_idx.shape)
        self.npix = frags.face_idx.numel()
        self.sel = mask.reshape(-1).nonzero().squeeze(1)

    _bidx: torch.Tensor | None = None

    @property
    def bidx(self) -> torch.Tensor:
        """Each covered pixel's image [P] (built when a per-image parameter needs it)."""
        if self._bidx is None:
            self._bidx = self.sel // (self.shape[1] * self.shape[2])
        return self._bidx

    def take(self, image: torch.Tensor) -> torch.Tensor:
        """[B,H,W,C] (or broadcastable) -> [P,C]."""
        image = image.expand(*self.shape, image.shape[-1])
        return image.reshape(self.npix, -1).index_select(0, self.sel)

    _frags: Fragments | None = None

    def interpolate(self, attr: torch.Tensor, frags: Fragments, faces: torch.Tensor,
                    backend: str) -> torch.Tensor:
        """``take(interpolate(attr, frags, faces))`` [P,C]: for attributes shared by the batch,
        through the covered pixels' own fragments ([1,1,P]), so the interpolation and its
        backward pass cost the covered area, not the image (the same per-pixel values)."""
        if attr.dim() == 3 and attr.shape[0] != 1:
            return self.take(interpolate(attr, frags, faces, backend=backend))
        if self._frags is None:
            p = self.sel.shape[0]
            # (interpolate reads face_idx and bary only: no depth gathered.)
            self._frags = Fragments(
                frags.face_idx.reshape(-1).index_select(0, self.sel).view(1, 1, p),
                frags.bary.reshape(-1, 3).index_select(0, self.sel).view(1, 1, p, 3),
                None,
            )
        return interpolate(attr, self._frags, faces, backend=backend).view(-1, attr.shape[-1])

    def _per_image(self, p: torch.Tensor, name: str) -> torch.Tensor:
        if p.shape[0] == 1:
            return p.expand(self.sel.shape[0], *p.shape[1:])
        if p.shape[0] != self.shape[0]:
            raise ValueError(f"{name} has {p.shape[0]} entries for a batch of {self.shape[0]}")
        return p.index_select(0, self.bidx)

    def param(self, x, tail: int, like: torch.Tensor, name: str):
        """A shading parameter (float or tensor) aligned with the covered pixels."""
        if not torch.is_tensor(x):
            if tail == 0:
                return x
            x = torch.as_tensor(x, dtype=like.dtype, device=like.device)
        if x.ndim == tail:
            return x
        if x.ndim == tail + 1:
            return self._per_image(x, name)
        if x.ndim == len(self.shape) + 1:
            return self.take(x)
        raise ValueError(
            f"{name} has shape {tuple(x.shape)}: expected {tail} (shared), {tail + 1} (batched) "
            f"or {len(self.shape) + 1} (full) dimensions"
        )

    def sh_coeffs(self, c, like: torch.Tensor):
        """SH coefficients ([9], [9,C] shared; [B,9], [B,9,C] per image) per covered pixel."""
        if not torch.is_tensor(c):
            c = torch.as_tensor(c, dtype=like.dtype, device=like.device)
        if (c.ndim == 2 and c.shape[1] == 9) or c.ndim == 3:
            return self._per_image(c, "sh.coeffs")
        return c


def _default_light_dir(camera: Camera) -> torch.Tensor:
    """A head-light: towards the camera, tilted up, so the default render is readable."""
    d = camera.eye.detach()
    return d / d.norm(dim=-1, keepdim=True).clamp(min=1e-12) + d.new_tensor([0.0, 0.5, 0.0])
