"""Batched, differentiable cameras: look-at and orbit construction, OpenGL projection.

World space is right-handed with +Y up; camera space follows OpenGL (the camera looks down -Z).
Every constructor argument may be a float, a sequence or a tensor; tensors that require grad
stay in the graph, so eye position, target, fov and orbit angles can all be optimised.

General pinhole cameras (:meth:`Camera.from_intrinsics`) take a world-to-camera rotation and
translation and intrinsics ``fx, fy, cx, cy`` in pixels, with the pixel convention of COLMAP and
OpenCV: ``(u, v) = (0, 0)`` is the top-left corner of the top-left pixel, so pixel (row i, col j)
has its centre at ``(j + 0.5, i + 0.5)``. With the NDC rule of design.md
(x = 2(j+0.5)/W - 1, y = 1 - 2(i+0.5)/H) a pixel coordinate maps to NDC as
``x = 2u/W - 1, y = 1 - 2v/H``, which gives the projection of :func:`intrinsics_projection`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

_Scalar = float | int | Sequence[float] | torch.Tensor
_FIELDS = ("view", "proj", "eye", "fov", "aspect", "near", "far")


def _batched(x, width: int | None, dtype, device) -> torch.Tensor:
    """Return ``x`` as a tensor of shape [B] (width None) or [B, width]."""
    t = torch.as_tensor(x, dtype=dtype, device=device) if not torch.is_tensor(x) else x
    if not t.is_floating_point():
        t = t.to(dtype)
    if width is None:
        return t.reshape(-1)
    if t.shape[-1] != width:
        raise ValueError(f"expected a vector of {width} values, got shape {tuple(t.shape)}")
    return t.reshape(-1, width)


def _infer_dtype_device(*xs) -> tuple[torch.dtype, torch.device]:
    for x in xs:
        if torch.is_tensor(x) and x.is_floating_point():
            return x.dtype, x.device
    for x in xs:
        if torch.is_tensor(x):
            return torch.get_default_dtype(), x.device
    return torch.get_default_dtype(), torch.device("cpu")


def _broadcast(*ts: torch.Tensor) -> list[torch.Tensor]:
    n = max(t.shape[0] for t in ts)
    out = []
    for t in ts:
        if t.shape[0] not in (1, n):
            raise ValueError(f"batch sizes disagree: {[tuple(x.shape) for x in ts]}")
        out.append(t.expand(n, *t.shape[1:]))
    return out


def _normalize(v: torch.Tensor) -> torch.Tensor:
    # Epsilon inside the root keeps the gradient finite for a degenerate vector.
    return v / torch.sqrt((v * v).sum(-1, keepdim=True) + 1e-20)


def look_at_view(eye: torch.Tensor, at: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """World-to-camera matrices [B,4,4] for eyes [B,3] looking at ``at`` [B,3] with ``up``."""
    f = _normalize(at - eye)  # forward: the camera looks along -Z, so Z = -f
    s = _normalize(torch.cross(f, up, dim=-1))
    u = torch.cross(s, f, dim=-1)
    rot = torch.stack([s, u, -f], dim=-2)  # rows: camera axes in world coordinates
    trans = -(rot @ eye.unsqueeze(-1)).squeeze(-1)
    top = torch.cat([rot, trans.unsqueeze(-1)], dim=-1)
    bottom = torch.zeros_like(top[..., :1, :])
    bottom = bottom + torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=top.dtype, device=top.device)
    return torch.cat([top, bottom], dim=-2)


def perspective(fov: torch.Tensor, aspect: torch.Tensor, near: torch.Tensor, far: torch.Tensor):
    """OpenGL perspective matrices [B,4,4]; ``fov`` is the vertical field of view in degrees."""
    f = 1.0 / torch.tan(torch.deg2rad(fov) / 2)
    z = torch.zeros_like(f)
    m = torch.stack(
        [
            torch.stack([f / aspect, z, z, z], -1),
            torch.stack([z, f, z, z], -1),
            torch.stack([z, z, (far + near) / (near - far), 2 * far * near / (near - far)], -1),
            torch.stack([z, z, -torch.ones_like(f), z], -1),
        ],
        dim=-2,
    )
    return m


def intrinsics_projection(fx: torch.Tensor, fy: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor,
                          width: torch.Tensor, height: torch.Tensor, near: torch.Tensor,
                          far: torch.Tensor) -> torch.Tensor:
    """OpenGL projection matrices [B,4,4] of pinholes with intrinsics in pixels.

    All arguments are [B] tensors of one dtype/device (``width``/``height`` in pixels).
    A camera-space point (x, y, z) (OpenGL axes, visible at z < 0) lands on the pixel
    coordinate ``u = fx·x/(-z) + cx``, ``v = -fy·y/(-z) + cy`` (the OpenCV formula after the
    axis flip y, z -> -y, -z). Differentiable w.r.t. every argument.
    """
    z = torch.zeros_like(fx)
    m = torch.stack(
        [
            torch.stack([2 * fx / width, z, 1 - 2 * cx / width, z], -1),
            torch.stack([z, 2 * fy / height, 2 * cy / height - 1, z], -1),
            torch.stack([z, z, (far + near) / (near - far), 2 * far * near / (near - far)], -1),
            torch.stack([z, z, -torch.ones_like(fx), z], -1),
        ],
        dim=-2,
    )
    return m


_CV_FROM_GL = (1.0, -1.0, -1.0)  # OpenCV camera axes = OpenGL camera axes with y and z negated


def orthographic(height: torch.Tensor, aspect: torch.Tensor, near: torch.Tensor, far: torch.Tensor):
    """OpenGL orthographic matrices [B,4,4] for a view volume ``2*height`` high."""
    z = torch.zeros_like(height)
    o = torch.ones_like(height)
    m = torch.stack(
        [
            torch.stack([1 / (height * aspect), z, z, z], -1),
            torch.stack([z, 1 / height, z, z], -1),
            torch.stack([z, z, -2 / (far - near), -(far + near) / (far - near)], -1),
            torch.stack([z, z, z, o], -1),
        ],
        dim=-2,
    )
    return m


def orbit_eye(azimuth, elevation, distance) -> torch.Tensor:
    """Eye offsets [B,3] from the target: ``d·(cos e·sin a, sin e, cos e·cos a)``, degrees."""
    a = torch.deg2rad(azimuth)
    e = torch.deg2rad(elevation)
    return distance.unsqueeze(-1) * torch.stack(
        [torch.cos(e) * torch.sin(a), torch.sin(e), torch.cos(e) * torch.cos(a)], -1
    )


@dataclass
class Camera:
    """A batch of B pinhole (or orthographic) cameras.

    Fields (all tensors on one device, one dtype):
        view   [B,4,4] world-to-camera matrices.
        proj   [B,4,4] OpenGL projection matrices (clip = proj @ view @ [x,y,z,1]).
        eye    [B,3] camera centres in world space (for view directions in Phong shading).
        fov    [B] vertical field of view in degrees (0 for orthographic cameras).
        aspect [B] width / height.
        near, far [B] clipping distances.
        ortho_height [B] or None: half-height of an orthographic view volume.

    Build cameras with :meth:`look_at` or :meth:`orbit`; every argument is differentiable.
    """

    view: torch.Tensor
    proj: torch.Tensor
    eye: torch.Tensor
    fov: torch.Tensor
    aspect: torch.Tensor
    near: torch.Tensor
    far: torch.Tensor
    ortho_height: torch.Tensor | None = None

    @classmethod
    def look_at(
        cls,
        eye: _Scalar,
        at: _Scalar = (0.0, 0.0, 0.0),
        up: _Scalar = (0.0, 1.0, 0.0),
        fov: _Scalar = 60.0,
        aspect: _Scalar = 1.0,
        near: _Scalar = 0.1,
        far: _Scalar = 100.0,
        ortho_height: _Scalar | None = None,
    ) -> Camera:
        """Cameras at ``eye`` [B,3]|[3] looking at ``at`` with ``up`` roughly up.

        ``fov`` is the vertical field of view in degrees. With ``ortho_height`` the projection is
        orthographic with a view volume ``2*ortho_height`` high (``fov`` is then ignored).
        """
        dtype, device = _infer_dtype_device(eye, at, up, fov, aspect, near, far, ortho_height)
        eye_t = _batched(eye, 3, dtype, device)
        at_t = _batched(at, 3, dtype, device)
        up_t = _batched(up, 3, dtype, device)
        fov_t, aspect_t = _batched(fov, None, dtype, device), _batched(aspect, None, dtype, device)
        near_t, far_t = _batched(near, None, dtype, device), _batched(far, None, dtype, device)
        oh = None if ortho_height is None else _batched(ortho_height, None, dtype, device)
        extra = [] if oh is None else [oh]
        eye_t, at_t, up_t, fov_t, aspect_t, near_t, far_t, *extra = _broadcast(
            eye_t, at_t, up_t, fov_t, aspect_t, near_t, far_t, *extra
        )
        view = look_at_view(eye_t, at_t, up_t)
        if oh is None:
            proj = perspective(fov_t, aspect_t, near_t, far_t)
        else:
            oh = extra[0]
            proj = orthographic(oh, aspect_t, near_t, far_t)
            fov_t = torch.zeros_like(fov_t)
        return cls(view, proj, eye_t, fov_t, aspect_t, near_t, far_t, oh)

    @classmethod
    def orbit(
        cls,
        azimuth: _Scalar,
        elevation: _Scalar,
        distance: _Scalar,
        at: _Scalar = (0.0, 0.0, 0.0),
        fov: _Scalar = 60.0,
        aspect: _Scalar = 1.0,
        near: _Scalar = 0.1,
        far: _Scalar = 100.0,
        ortho_height: _Scalar | None = None,
    ) -> Camera:
        """Cameras on a sphere around ``at``: azimuth 0 views from +Z, 90 from +X (degrees).

        ``eye = at + distance·(cos e·sin a, sin e, cos e·cos a)``, up is +Y. Elevations of
        exactly ±90 degrees are nudged by 1e-4 degrees so the look-at frame stays defined.
        """
        dtype, device = _infer_dtype_device(azimuth, elevation, distance, at, fov)
        az = _batched(azimuth, None, dtype, device)
        el = _batched(elevation, None, dtype, device)
        el = el.clamp(-90 + 1e-4, 90 - 1e-4)
        dist = _batched(distance, None, dtype, device)
        at_t = _batched(at, 3, dtype, device)
        az, el, dist, at_t = _broadcast(az, el, dist, at_t)
        eye = at_t + orbit_eye(az, el, dist)
        return cls.look_at(eye, at_t, (0.0, 1.0, 0.0), fov, aspect, near, far, ortho_height)

    @classmethod
    def from_intrinsics(
        cls,
        R: _Scalar,
        t: _Scalar,
        fx: _Scalar,
        fy: _Scalar,
        cx: _Scalar,
        cy: _Scalar,
        width: float | Sequence[float] | torch.Tensor,
        height: float | Sequence[float] | torch.Tensor,
        near: _Scalar = 0.01,
        far: _Scalar = 100.0,
        convention: str = "opengl",
    ) -> Camera:
        """General pinhole cameras from a world-to-camera pose and intrinsics in pixels.

        Args:
            R: [B,3,3] or [3,3] world-to-camera rotations (``x_cam = R @ x_world + t``).
            t: [B,3] or [3] world-to-camera translations.
            fx, fy: focal lengths in pixels, scalars or [B].
            cx, cy: principal point in pixels, scalars or [B]; (0, 0) is the top-left corner of
                the image, (W/2, H/2) its centre (see the module docstring).
            width, height: the image size in pixels the intrinsics refer to, scalars or [B]
                (not differentiated). Rendering at another resolution of the same aspect scales
                the intrinsics with it.
            near, far: clipping distances (positive, far > near).
            convention: ``"opengl"`` (camera looks down -Z, +Y up: the project's camera space)
                or ``"opencv"`` (COLMAP/OpenCV axes: +Z forward, +Y down).
        Returns:
            A Camera whose ``proj`` comes from :func:`intrinsics_projection`, ``fov`` is the
            vertical field of view from ``fy`` and ``aspect`` is ``width / height``.

        Differentiable w.r.t. ``R``, ``t`` (any [3,3] is used as given: keep it a rotation),
        ``fx``, ``fy``, ``cx``, ``cy``, ``near`` and ``far``. Tensors keep their dtype/device.
        """
        if convention not in ("opengl", "opencv"):
            raise ValueError(f"convention must be 'opengl' or 'opencv', got {convention!r}")
        dtype, device = _infer_dtype_device(R, t, fx, fy, cx, cy, near, far)
        r_t = torch.as_tensor(R, dtype=dtype, device=device) if not torch.is_tensor(R) else R
        if not r_t.is_floating_point():
            r_t = r_t.to(dtype)
        if r_t.shape[-2:] != (3, 3) or r_t.dim() not in (2, 3):
            raise ValueError(f"R must have shape [3,3] or [B,3,3], got {tuple(r_t.shape)}")
        r_t = r_t.reshape(-1, 3, 3)
        t_t = _batched(t, 3, dtype, device)
        vals = [_batched(v, None, dtype, device)
                for v in (fx, fy, cx, cy, width, height, near, far)]
        for name, v in zip(("fx", "fy", "width", "height"), (vals[0], vals[1], vals[4], vals[5]),
                           strict=True):
            if not bool(torch.isfinite(v.detach()).all()) or bool((v.detach() <= 0).any()):
                raise ValueError(f"{name} must be positive and finite, got {v.detach().tolist()}")
        near_d, far_d = vals[6].detach(), vals[7].detach()
        if bool((near_d <= 0).any()) or bool((far_d <= near_d).any()):
            raise ValueError("near must be positive and far larger than near")
        r_t, t_t, *vals = _broadcast(r_t, t_t, *vals)
        fx_t, fy_t, cx_t, cy_t, w_t, h_t, near_t, far_t = vals
        w_t, h_t = w_t.detach(), h_t.detach()
        if convention == "opencv":
            flip = torch.tensor(_CV_FROM_GL, dtype=dtype, device=device)
            r_t = r_t * flip[:, None]
            t_t = t_t * flip
        top = torch.cat([r_t, t_t.unsqueeze(-1)], dim=-1)
        bottom = torch.zeros_like(top[..., :1, :]) + torch.tensor(
            [0.0, 0.0, 0.0, 1.0], dtype=dtype, device=device)
        view = torch.cat([top, bottom], dim=-2)
        eye = -(r_t.transpose(-1, -2) @ t_t.unsqueeze(-1)).squeeze(-1)
        proj = intrinsics_projection(fx_t, fy_t, cx_t, cy_t, w_t, h_t, near_t, far_t)
        fov = torch.rad2deg(2 * torch.atan(h_t / (2 * fy_t)))
        return cls(view, proj, eye, fov, w_t / h_t, near_t, far_t, None)

    @classmethod
    def look_at_intrinsics(
        cls,
        eye: _Scalar,
        at: _Scalar,
        up: _Scalar,
        fx: _Scalar,
        fy: _Scalar,
        cx: _Scalar,
        cy: _Scalar,
        width: float | Sequence[float] | torch.Tensor,
        height: float | Sequence[float] | torch.Tensor,
        near: _Scalar = 0.01,
        far: _Scalar = 100.0,
    ) -> Camera:
        """:meth:`from_intrinsics` with the pose of :meth:`look_at`: eyes [B,3]|[3] looking at
        ``at`` with ``up`` roughly up. Differentiable w.r.t. every argument but the size."""
        dtype, device = _infer_dtype_device(eye, at, up, fx, fy, cx, cy, near, far)
        eye_t, at_t, up_t = _broadcast(*(_batched(v, 3, dtype, device) for v in (eye, at, up)))
        view = look_at_view(eye_t, at_t, up_t)
        return cls.from_intrinsics(view[:, :3, :3], view[:, :3, 3], fx, fy, cx, cy, width,
                                   height, near, far)

    def intrinsics(self, width: float, height: float) -> tuple[torch.Tensor, ...]:
        """``(fx, fy, cx, cy)``, each [B], in pixels of a ``width`` x ``height`` image.

        Read back from ``proj`` (the inverse of :func:`intrinsics_projection`), so it works
        for every perspective camera: look-at/orbit cameras give ``cx = W/2, cy = H/2`` and
        ``fy = H / (2 tan(fov/2))``. Differentiable w.r.t. ``proj``. Orthographic cameras
        have no pinhole intrinsics (ValueError).
        """
        if self.ortho_height is not None:
            raise ValueError("an orthographic camera has no pinhole intrinsics")
        p = self.proj
        fx = p[:, 0, 0] * width / 2
        fy = p[:, 1, 1] * height / 2
        cx = (1 - p[:, 0, 2]) * width / 2
        cy = (1 + p[:, 1, 2]) * height / 2
        return fx, fy, cx, cy

    def world_to_camera(self, convention: str = "opengl") -> tuple[torch.Tensor, torch.Tensor]:
        """``(R [B,3,3], t [B,3])`` with ``x_cam = R @ x_world + t``, in OpenGL camera axes
        or (``convention="opencv"``) OpenCV/COLMAP axes. Differentiable w.r.t. ``view``."""
        r, t = self.view[:, :3, :3], self.view[:, :3, 3]
        if convention == "opencv":
            flip = torch.tensor(_CV_FROM_GL, dtype=r.dtype, device=r.device)
            return r * flip[:, None], t * flip
        if convention != "opengl":
            raise ValueError(f"convention must be 'opengl' or 'opencv', got {convention!r}")
        return r, t

    def to_pixels(self, points: torch.Tensor, width: float, height: float) -> torch.Tensor:
        """World points [V,3]|[B,V,3] to pixel coordinates ``(u, v)`` [B,V,2] of a
        ``width`` x ``height`` image: (0, 0) is the top-left image corner, u to the right,
        v down, the centre of pixel (row i, col j) is (j + 0.5, i + 0.5). Goes through
        ``to_clip`` (the rasterizer's own path); differentiable w.r.t. the points and every
        camera tensor. Points at or behind the eye plane give non-finite or mirrored values.
        """
        clip = self.to_clip(points)
        ndc = clip[..., :2] / clip[..., 3:]
        u = (ndc[..., 0] + 1) * (width / 2)
        v = (1 - ndc[..., 1]) * (height / 2)
        return torch.stack([u, v], dim=-1)

    def __len__(self) -> int:
        return self.view.shape[0]

    def __getitem__(self, idx) -> Camera:
        if isinstance(idx, int):
            idx = slice(idx, idx + 1 if idx != -1 else None)
        oh = None if self.ortho_height is None else self.ortho_height[idx]
        return Camera(
            self.view[idx], self.proj[idx], self.eye[idx], self.fov[idx], self.aspect[idx],
            self.near[idx], self.far[idx], oh,
        )

    @staticmethod
    def cat(cameras: Sequence[Camera]) -> Camera:
        """Concatenate cameras along the batch dimension (all perspective or all ortho)."""
        ortho = [c.ortho_height is not None for c in cameras]
        if any(ortho) and not all(ortho):
            raise ValueError("cannot concatenate perspective and orthographic cameras")
        parts = {f: torch.cat([getattr(c, f) for c in cameras]) for f in _FIELDS}
        oh = torch.cat([c.ortho_height for c in cameras]) if all(ortho) else None
        return Camera(**parts, ortho_height=oh)

    @property
    def full_matrix(self) -> torch.Tensor:
        """proj @ view, [B,4,4]."""
        return self.proj @ self.view

    def to_clip(self, points: torch.Tensor) -> torch.Tensor:
        """Transform world points [V,3]|[B,V,3] to clip coordinates [B,V,4] (differentiable)."""
        if points.dim() == 2:
            points = points.unsqueeze(0)
        ones = torch.ones_like(points[..., :1])
        hom = torch.cat([points, ones], dim=-1)
        m = self.full_matrix.to(points.dtype)
        if hom.shape[0] != m.shape[0]:
            if hom.shape[0] != 1 and m.shape[0] != 1:
                raise ValueError(
                    f"points batch {hom.shape[0]} does not match camera batch {m.shape[0]}"
                )
        return hom @ m.transpose(-1, -2)

    def to_view(self, points: torch.Tensor) -> torch.Tensor:
        """World points [V,3]|[B,V,3] to camera space [B,V,3] (OpenGL: visible points have z<0)."""
        if points.dim() == 2:
            points = points.unsqueeze(0)
        ones = torch.ones_like(points[..., :1])
        hom = torch.cat([points, ones], dim=-1)
        return (hom @ self.view.to(points.dtype).transpose(-1, -2))[..., :3]

    def _map(self, fn) -> Camera:
        """Apply ``fn`` to every tensor field."""
        fields = {f: fn(getattr(self, f)) for f in _FIELDS}
        oh = None if self.ortho_height is None else fn(self.ortho_height)
        return Camera(**fields, ortho_height=oh)

    def to(self, device=None, dtype=None) -> Camera:
        return self._map(lambda t: t.to(device=device, dtype=dtype))

    def detach(self) -> Camera:
        return self._map(lambda t: t.detach())


def fov_from_focal(focal_px: float, height_px: int) -> float:
    """Vertical field of view in degrees from a focal length in pixels."""
    return math.degrees(2 * math.atan(height_px / (2 * focal_px)))
