"""Batched, differentiable cameras: look-at and orbit construction, OpenGL projection.

World space is right-handed with +Y up; camera space follows OpenGL (the camera looks down -Z).
Every constructor argument may be a float, a sequence or a tensor; tensors that require grad
stay in the graph, so eye position, target, fov and orbit angles can all be optimised.
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
