"""The Fitter's camera group: every target's general pinhole camera and its refinement.

Each target has a starting camera (:meth:`TargetView.world_to_camera`,
:meth:`TargetView.pixel_intrinsics`; an orbit target's is its orbit camera). The ``camera``
parameter group is one tensor ``delta`` [N, :data:`N_PARAMS`] per target:

- columns 0-2, ``omega``: an axis-angle rotation in the camera's own axes (units of
  :data:`ROT_SCALE` radians) that turns the world about its origin, the pivot:
  ``R = exp([omega]) R0``. About the camera's y axis it is an orbit's azimuth, about its x
  axis the elevation, about its z axis a roll; the origin (the object's centre in a
  normalised scene, the orbit's target) stays where the camera saw it.
- columns 3-5, ``tau``: a translation in the camera's axes, in units of the camera's
  starting distance ``d0`` from the origin (times :data:`PAN_SCALE` across, :data:`DOLLY_SCALE`
  along the view axis): ``t = t0 + d0 * scale * tau``.
- column 6: the vertical fov in units of :data:`FOV_SCALE` degrees, shared per
  ``camera_group`` and locked per target by :mod:`render_core.intrinsics`; fx and fy scale
  together (``f ∝ 1 / tan(fov / 2)``), the principal point stays.

A target whose camera is not refined (``FitConfig.camera_views`` leaves it out, or its
``lock_camera``) gets no gradient in its row, so Adam never moves it. With ``delta`` zero every
camera is the target's own, exactly: an orbit target renders as ``Camera.orbit`` did.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from .camera import Camera, intrinsics_projection, look_at_view, orbit_eye
from .intrinsics import FovLayout, fov_layout

N_PARAMS = 7
ROT_SCALE = math.radians(10.0)
PAN_SCALE = math.radians(10.0)
DOLLY_SCALE = 1.0
FOV_SCALE = 10.0
NEAR, FAR = 0.1, 100.0
_OLD_SCALE = (10.0, 10.0, 1.0, 10.0)  # the orbit-only group's units (sessions of format 1)


def _skew(w: torch.Tensor) -> torch.Tensor:
    z = torch.zeros_like(w[..., 0])
    return torch.stack([torch.stack([z, -w[..., 2], w[..., 1]], -1),
                        torch.stack([w[..., 2], z, -w[..., 0]], -1),
                        torch.stack([-w[..., 1], w[..., 0], z], -1)], -2)


def rotation(omega: torch.Tensor) -> torch.Tensor:
    """[N,3,3] rotations ``exp([omega])`` of axis-angle vectors [N,3] (radians); exact
    identity and a finite gradient at zero (the matrix exponential, no division)."""
    return torch.linalg.matrix_exp(_skew(omega))


def log_rotation(R: np.ndarray) -> np.ndarray:
    """The axis-angle vector [3] of a rotation [3,3] (float64; angles below pi)."""
    c = max(-1.0, min(1.0, (np.trace(R) - 1) / 2))
    theta = math.acos(c)
    v = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    if theta < 1e-8:
        return v / 2
    return v * theta / (2 * math.sin(theta))


class CameraGroup:
    """The starting cameras of a Fitter's targets and the map from ``delta`` to cameras.

    Args:
        targets: the :class:`~render_core.fit_config.TargetView` list (their cameras are read
            once: a Fitter's targets do not change).
        dtype: the parameters' dtype.
    """

    def __init__(self, targets: Sequence, dtype: torch.dtype):
        self.targets = list(targets)
        self.dtype = dtype
        n = len(self.targets)
        orbit = [t.is_orbit for t in self.targets]
        self.orbit = orbit
        # Orbit cameras are built as Camera.orbit builds them, in the fit's dtype.
        cam0 = torch.tensor([[t.azimuth, t.elevation, t.distance, t.fov] for t in self.targets],
                            dtype=dtype)
        self.cam0 = cam0
        el = cam0[:, 1].clamp(-90 + 1e-4, 90 - 1e-4)
        eye = orbit_eye(cam0[:, 0], el, cam0[:, 2])
        view = look_at_view(eye, torch.zeros_like(eye),
                            torch.tensor([0.0, 1.0, 0.0], dtype=dtype).expand(n, 3))
        R0, t0 = view[:, :3, :3].clone(), view[:, :3, 3].clone()
        for i, t in enumerate(self.targets):
            if not orbit[i]:
                R, tt = t.world_to_camera()
                R0[i] = torch.as_tensor(R, dtype=dtype)
                t0[i] = torch.as_tensor(tt, dtype=dtype)
        self.R0, self.t0 = R0, t0
        self.d0 = t0.norm(dim=-1)
        self.fov0 = cam0[:, 3]
        self._layout: FovLayout | None = None
        self._layout_key: tuple | None = None

    def refined(self, camera_views: Sequence[int] | None) -> list[bool]:
        """Whether each target's camera is refined: chosen by ``camera_views`` (None: all)
        and not ``lock_camera``."""
        chosen = None if camera_views is None else {int(i) for i in camera_views}
        return [(chosen is None or i in chosen) and not t.lock_camera
                for i, t in enumerate(self.targets)]

    def layout(self, camera_views: Sequence[int] | None) -> FovLayout:
        """The fov layout (:mod:`render_core.intrinsics`), cached per ``camera_views``."""
        key = None if camera_views is None else tuple(int(i) for i in camera_views)
        if self._layout is None or self._layout_key != key:
            self._layout = fov_layout([t.fov for t in self.targets],
                                      [t.camera_group for t in self.targets],
                                      [t.lock_fov for t in self.targets],
                                      self.refined(camera_views), self.dtype)
            self._layout_key = key
        return self._layout

    def pose(self, delta: torch.Tensor, camera_views: Sequence[int] | None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(R [N,3,3], t [N,3])`` world-to-camera (OpenGL axes), differentiable in ``delta``."""
        mask = delta.new_tensor([1.0 if r else 0.0 for r in self.refined(camera_views)])
        d = delta[:, :6] * mask[:, None]
        R = rotation(d[:, :3] * ROT_SCALE) @ self.R0
        scale = d.new_tensor([PAN_SCALE, PAN_SCALE, DOLLY_SCALE])
        t = self.t0 + self.d0[:, None] * scale * d[:, 3:6]
        # R exp(0) is R0 exactly: a camera left alone is its own, bit for bit.
        return R, t

    def fov(self, delta: torch.Tensor, camera_views: Sequence[int] | None) -> torch.Tensor:
        """[N] vertical fovs in degrees (shared per camera group, locks kept)."""
        return self.layout(camera_views).fov(delta[:, 6], FOV_SCALE).clamp(5.0, 150.0)

    def intrinsics(self, fov: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, ...]:
        """``(fx, fy, cx, cy)`` [N] in pixels of a ``size`` = (h, w) render, for the fovs
        ``fov`` [N]: an orbit target's are centred with square pixels (as ``Camera.orbit``);
        a general one's are its own, scaled to the render's pixels, and ``fov`` scales its
        focal lengths from their start."""
        h, w = size
        fy_orbit = h / (2 * torch.tan(torch.deg2rad(fov) / 2))
        if all(self.orbit):  # the same values as the loop below, without per-view ops
            n = len(self.targets)
            return fy_orbit, fy_orbit, fov.new_full((n,), w / 2), fov.new_full((n,), h / 2)
        fx, fy, cx, cy = [], [], [], []
        for i, t in enumerate(self.targets):
            if self.orbit[i]:
                fx.append(fy_orbit[i])
                fy.append(fy_orbit[i])
                cx.append(fov.new_tensor(w / 2))
                cy.append(fov.new_tensor(h / 2))
                continue
            ih, iw = t.image.shape[:2]
            f0x, f0y, c0x, c0y = t.pixel_intrinsics()
            ratio = math.tan(math.radians(float(self.fov0[i])) / 2) / torch.tan(
                torch.deg2rad(fov[i]) / 2)
            fx.append(f0x * w / iw * ratio)
            fy.append(f0y * h / ih * ratio)
            cx.append(fov.new_tensor(c0x * w / iw))
            cy.append(fov.new_tensor(c0y * h / ih))
        return tuple(torch.stack(v) for v in (fx, fy, cx, cy))

    def cameras(self, delta: torch.Tensor, camera_views: Sequence[int] | None,
                size: tuple[int, int]) -> Camera:
        """The targets' cameras [N] for a render of ``size`` = (h, w) (differentiable)."""
        R, t = self.pose(delta, camera_views)
        fx, fy, cx, cy = self.intrinsics(self.fov(delta, camera_views), size)
        h, w = size
        n = len(self.targets)
        view = torch.cat([torch.cat([R, t[:, :, None]], -1),
                          delta.new_tensor([0.0, 0.0, 0.0, 1.0]).expand(n, 1, 4)], -2)
        full = lambda v: delta.new_full((n,), float(v))  # noqa: E731
        proj = intrinsics_projection(fx, fy, cx, cy, full(w), full(h), full(NEAR), full(FAR))
        eye = -(R.transpose(-1, -2) @ t[:, :, None])[..., 0]
        fov = torch.rad2deg(2 * torch.atan(h / (2 * fy)))
        return Camera(view, proj, eye, fov, full(w / h), full(NEAR), full(FAR), None)

    def fitted(self, delta: torch.Tensor, camera_views: Sequence[int] | None) -> list:
        """``[(R [3,3], t [3], (fx, fy, cx, cy))]`` per target: the cameras for ``delta``,
        float64 world-to-camera (OpenGL axes), intrinsics in pixels of each target's image."""
        with torch.no_grad():
            R, t = self.pose(delta, camera_views)
            fov = self.fov(delta, camera_views)
        out = []
        for i, tv in enumerate(self.targets):
            fx, fy, cx, cy = (float(v[i]) for v in self.intrinsics(fov, tv.image.shape[:2]))
            out.append((R[i].double().numpy(), t[i].double().numpy(), (fx, fy, cx, cy)))
        return out

    def orbit_params(self, delta: torch.Tensor, camera_views: Sequence[int] | None
                     ) -> np.ndarray:
        """[N,4] (azimuth, elevation, distance, fov), degrees: each camera's centre seen from
        the origin and its vertical fov. A target whose pose has not moved reports its own
        orbit fields exactly."""
        with torch.no_grad():
            fov = self.fov(delta, camera_views)
            R, t = self.pose(delta, camera_views)
            out = self.cam0.clone()
            out[:, 3] = fov
            moved = (delta[:, :6] != 0).any(-1) & delta.new_tensor(
                self.refined(camera_views)).bool()
            eye = -(R.transpose(-1, -2) @ t[:, :, None])[..., 0].double()
            d = eye.norm(dim=-1)
            az = torch.rad2deg(torch.atan2(eye[:, 0], eye[:, 2]))
            az = az + 360.0 * torch.round((self.cam0[:, 0].double() - az) / 360.0)
            el = torch.rad2deg(torch.asin((eye[:, 1] / d).clamp(-1, 1)))
            derived = torch.stack([az, el, d], -1).to(out)
            out[:, :3] = torch.where(moved[:, None], derived, out[:, :3])
            return out.cpu().numpy().copy()

    def from_orbit_delta(self, old: torch.Tensor, camera_views: Sequence[int] | None
                         ) -> torch.Tensor:
        """The ``delta`` [N,7] that gives the cameras an orbit-only refinement ``old`` [N,4]
        (azimuth, elevation, log-distance and fov steps of format-1 sessions) gave."""
        old = old.to(self.dtype)
        scale = old.new_tensor(_OLD_SCALE)
        chosen = old.new_tensor([1.0 if r else 0.0 for r in self.refined(camera_views)])
        p = self.cam0 + old * scale * chosen[:, None]
        dist = self.cam0[:, 2] * torch.exp(old[:, 2] * chosen)
        el = p[:, 1].clamp(-90 + 1e-4, 90 - 1e-4)
        eye = orbit_eye(p[:, 0], el, dist)
        view = look_at_view(eye, torch.zeros_like(eye),
                            old.new_tensor([0.0, 1.0, 0.0]).expand(len(old), 3))
        new = torch.zeros(len(old), N_PARAMS, dtype=self.dtype)
        for i in range(len(old)):
            if not self.orbit[i] or not bool(chosen[i]):
                continue
            R1, t1 = view[i, :3, :3].double(), view[i, :3, 3].double()
            rel = (R1 @ self.R0[i].double().T).numpy()
            new[i, :3] = torch.as_tensor(log_rotation(rel) / ROT_SCALE)
            sc = torch.tensor([PAN_SCALE, PAN_SCALE, DOLLY_SCALE], dtype=torch.float64)
            new[i, 3:6] = (t1 - self.t0[i].double()) / (self.d0[i].double() * sc)
        new[:, 6] = old[:, 3]
        return new
