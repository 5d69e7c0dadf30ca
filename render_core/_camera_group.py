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
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from .camera import Camera, intrinsics_projection, look_at_view, orbit_eye
from .intrinsics import FovLayout, fov_layout

N_PARAMS = 7
ROT_SCALE = math.radians(10.0)
PAN_SCALE = math.radians(10.0)
DOLLY_SCALE = 1.0
FOV_SCALE = 10.0
NEAR, FAR = 0.1, 100.0
_OLD_SCALE = (10.0, 10.0, 1.0, 10.0)  # the orbit-only group's units (sessions of format 1)


# [omega]x = (omega @ _SKEW).view(3, 3): the cross-product matrix, entry by entry +-omega_k.
_SKEW = ((0, 0, 0, 0, 0, -1, 0, 1, 0),
         (0, 0, 1, 0, 0, 0, -1, 0, 0),
         (0, -1, 0, 1, 0, 0, 0, 0, 0))


class _Rotation(torch.autograd.Function):
    """``exp([omega]x)`` [N,3,3] of axis-angle vectors [N,3] in closed form (Rodrigues):
    ``cos t I + (sin t / t) K + ((1 - cos t) / t^2) w w^T``, t = |w|, K = [w]x, with its
    gradient in closed form too (a handful of small ops instead of an autograd graph of the
    matrix exponential). At w = 0 it is the identity exactly and the gradient is the matrix
    exponential's, ``<G, [e_k]x>``. The derivatives' ratios (cos t - sin t / t) / t^2 and
    (sin t / t - 2 (1 - cos t) / t^2) / t^2 cancel for small t and lose relative precision
    there, but they multiply terms of order t^2 and t^3, so the gradient's error stays at
    rounding level (tested against the matrix exponential's in float64)."""

    @staticmethod
    def _consts(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(skew [3,9], identity [3,3], sinc arguments [2]) in ``w``'s dtype and device."""
        key = (w.dtype, w.device)
        if key not in _ROTATION_CONSTS:
            _ROTATION_CONSTS[key] = (w.new_tensor(_SKEW), torch.eye(3).to(w),
                                     w.new_tensor([1.0 / math.pi, 0.5 / math.pi]))
        return _ROTATION_CONSTS[key]

    @staticmethod
    def forward(ctx, w):  # type: ignore[override]
        skew, eye, sinc_arg = _Rotation._consts(w)
        t2 = (w * w).sum(-1)
        t = t2.sqrt()
        c = t.cos()
        # sin t / t and (1 - cos t) / t^2 = (sin(t/2) / (t/2))^2 / 2, without cancellation
        # (b multiplies a first-order term in the gradient); 1 and 1/2 at t = 0.
        s = torch.sinc(t[:, None] * sinc_arg)
        a, b = s[:, 0], 0.5 * s[:, 1] * s[:, 1]
        k = (w @ skew).view(-1, 3, 3)
        r = (c[:, None, None] * eye + a[:, None, None] * k
             + b[:, None, None] * (w[:, :, None] * w[:, None, :]))
        ctx.save_for_backward(w, t2, c, a, b)
        return r

    @staticmethod
    @once_differentiable
    def backward(ctx, g):  # type: ignore[override]
        w, t2, c, a, b = ctx.saved_tensors
        skew = _Rotation._consts(w)[0]
        # dR/dw_k = -a w_k I + alpha w_k K + a [e_k]x + beta w_k w w^T + b (e_k w^T + w e_k^T)
        # with alpha = (c - a) / t^2 and beta = (a - 2 b) / t^2 (d a / t dt, d b / t dt;
        # both 0 / tiny = 0 at t = 0, where they multiply 0).
        t2s = t2.clamp_min(torch.finfo(w.dtype).tiny)
        alpha = (c - a) / t2s
        beta = (a - 2.0 * b) / t2s
        gs = ((g + g.transpose(-1, -2)) @ w[:, :, None])[..., 0]  # G w + G^T w
        v = g.reshape(-1, 9) @ skew.T  # <G, [e_k]x>
        tr = g.diagonal(0, -2, -1).sum(-1)
        scal = -a * tr + alpha * (v * w).sum(-1) + (0.5 * beta) * (w * gs).sum(-1)
        return scal[:, None] * w + a[:, None] * v + b[:, None] * gs


_ROTATION_CONSTS: dict[tuple, tuple[torch.Tensor, ...]] = {}


def rotation(omega: torch.Tensor) -> torch.Tensor:
    """[N,3,3] rotations ``exp([omega])`` of axis-angle vectors [N,3] (radians); exact
    identity and a finite gradient at zero (Rodrigues' formula, with its closed-form gradient:
    ``_Rotation``)."""
    return _Rotation.apply(omega)


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
        self._sizes: dict[tuple, dict] = {}

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

    def _pose_consts(self, camera_views: Sequence[int] | None, like: torch.Tensor):
        """(coef [N,6], fov_coef [N], fov_leader or None), cached per ``camera_views`` and
        dtype: ``delta[:, :6] * coef`` is the rotation (radians) and the translation step of
        each camera, zero for one not refined; the fovs are ``layout.start + fov_coef *
        delta[leader, 6]`` (no gather where every target leads itself). Each factor is the
        product the step's formula takes, so the values are those of the formula itself."""
        key = (None if camera_views is None else tuple(int(i) for i in camera_views),
               like.dtype, like.device)
        if self._pose_key != key:
            mask = torch.tensor([1.0 if r else 0.0 for r in self.refined(camera_views)],
                                dtype=like.dtype, device=like.device)[:, None]
            scale = like.new_tensor([PAN_SCALE, PAN_SCALE, DOLLY_SCALE])
            d0 = self.d0.to(like)
            coef = torch.cat([(mask * ROT_SCALE).expand(-1, 3), d0[:, None] * scale * mask], 1)
            layout = self.layout(camera_views)
            leader = layout.leader.to(like.device)
            same = bool(torch.equal(leader.cpu(), torch.arange(len(self.targets))))
            self._pose = (coef, layout.start.to(like), layout.free.to(like) * FOV_SCALE,
                          None if same else leader)
            self._pose_key = key
        return self._pose

    def pose(self, delta: torch.Tensor, camera_views: Sequence[int] | None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(R [N,3,3], t [N,3])`` world-to-camera (OpenGL axes), differentiable in ``delta``:
        ``R = exp([omega]) R0``, ``t = t0 + d0 * scale * tau`` (the module docstring)."""
        coef = self._pose_consts(camera_views, delta)[0]
        d = delta[:, :6] * coef
        # R exp(0) is R0 exactly: a camera left alone is its own, bit for bit.
        return rotation(d[:, :3]) @ self.R0.to(delta), self.t0.to(delta) + d[:, 3:6]

    def fov(self, delta: torch.Tensor, camera_views: Sequence[int] | None) -> torch.Tensor:
        """[N] vertical fovs in degrees (shared per camera group, locks kept): the layout's
        (:mod:`render_core.intrinsics`), clamped to [5, 150]."""
        _, start, coef, leader = self._pose_consts(camera_views, delta)
        d = delta[:, 6] if leader is None else delta[:, 6][leader]
        return (start + coef * d).clamp(5.0, 150.0)

    def _size_consts(self, size: tuple[int, int], like: torch.Tensor):
        """Per render size and dtype (cached): the general targets' focal-length factors,
        principal points, the projection without its focal terms, the view matrices' last
        row and the cameras' constant fields."""
        key = (tuple(size), like.dtype, like.device)
        if key not in self._sizes:
            if len(self._sizes) >= 4:  # a few render sizes at a time (fitted() asks for more)
                self._sizes.clear()
            h, w = size
            n = len(self.targets)
            kx, ky, kt, cx, cy = [], [], [], [], []
            for i, t in enumerate(self.targets):
                if self.orbit[i]:
                    kx.append(1.0), ky.append(1.0), kt.append(1.0)
                    cx.append(w / 2), cy.append(h / 2)
                    continue
                ih, iw = t.image.shape[:2]
                f0x, f0y, c0x, c0y = t.pixel_intrinsics()
                kx.append(f0x * w / iw)
                ky.append(f0y * h / ih)
                kt.append(math.tan(math.radians(float(self.fov0[i])) / 2))
                cx.append(c0x * w / iw)
                cy.append(c0y * h / ih)
            vec = lambda v: like.new_tensor(v)  # noqa: E731
            full = lambda v: like.new_full((n,), float(v))  # noqa: E731
            orbit = torch.tensor(self.orbit, device=like.device)
            cx_t, cy_t = vec(cx), vec(cy)
            zero = like.new_zeros(n)
            proj0 = intrinsics_projection(zero, zero, cx_t, cy_t, full(w), full(h), full(NEAR),
                                          full(FAR))
            self._sizes[key] = {
                "mixed": None if all(self.orbit) else orbit[:, None],
                "kxy": vec([kx, ky]).T, "kt": vec(kt), "cx": cx_t, "cy": cy_t,
                "proj0": proj0, "wh": like.new_tensor([float(w), float(h)]),
                "bottom": like.new_tensor([0.0, 0.0, 0.0, 1.0]).expand(n, 1, 4),
                "aspect": full(w / h), "near": full(NEAR), "far": full(FAR)}
        return self._sizes[key]

    def _focal(self, fov: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """[N,2] (fx, fy) for the fovs ``fov`` [N] (see :meth:`intrinsics`)."""
        c = self._size_consts(size, fov)
        half_tan = torch.tan(torch.deg2rad(fov) / 2)
        f_orbit = size[0] / (2 * half_tan)
        if c["mixed"] is None:  # every target an orbit's: fx = fy
            return f_orbit[:, None].expand(-1, 2)
        # (As tan(fov0 / 2) / tan(fov / 2) with a Python float: a reciprocal and a product.)
        general = c["kxy"] * (half_tan.reciprocal() * c["kt"])[:, None]
        return torch.where(c["mixed"], f_orbit[:, None], general)

    _pose_key: tuple | None = None

    def intrinsics(self, fov: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, ...]:
        """``(fx, fy, cx, cy)`` [N] in pixels of a ``size`` = (h, w) render, for the fovs
        ``fov`` [N]: an orbit target's are centred with square pixels (as ``Camera.orbit``);
        a general one's are its own, scaled to the render's pixels, and ``fov`` scales its
        focal lengths from their start (``f = f0 tan(fov0 / 2) / tan(fov / 2)``)."""
        f = self._focal(fov, size)
        c = self._size_consts(size, fov)
        return f[:, 0], f[:, 1], c["cx"], c["cy"]

    def cameras(self, delta: torch.Tensor, camera_views: Sequence[int] | None,
                size: tuple[int, int]) -> Camera:
        """The targets' cameras [N] for a render of ``size`` = (h, w) (differentiable): the
        values ``Camera.from_intrinsics`` gives for :meth:`pose` and :meth:`intrinsics`."""
        R, t = self.pose(delta, camera_views)
        f = self._focal(self.fov(delta, camera_views), size)
        c = self._size_consts(size, delta)
        h = size[0]
        view = torch.cat([torch.cat([R, t[:, :, None]], -1), c["bottom"]], -2)
        # intrinsics_projection's matrices: the focal terms 2 f / size on the diagonal, the
        # rest (principal point, depth) constant.
        proj = c["proj0"] + torch.diag_embed(F.pad(2 * f / c["wh"], (0, 2)))
        eye = -(R.transpose(-1, -2) @ t[:, :, None])[..., 0]
        fov = torch.rad2deg(2 * torch.atan(h / (2 * f[:, 1])))
        return Camera(view, proj, eye, fov, c["aspect"], c["near"], c["far"], None)

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
