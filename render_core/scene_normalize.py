"""Scene normalisation: a similarity that puts the object in the unit sphere with +Y up.

Structure from motion gives cameras in an arbitrary world (COLMAP's is often +Y down, at any
scale). :func:`normalize_scene` finds a similarity ``x' = s·R·x + t`` (:class:`SceneTransform`)
such that, in the new world,

- +Y is up, from the cameras' up vectors (their +Y axis, OpenGL camera axes): people hold
  cameras level, so the cameras' right vectors are (nearly) horizontal whatever their pitch,
  and up is the direction most perpendicular to all of them, signed by the average up vector.
  (The average up vector alone tilts toward the object when the cameras look down at it; it is
  used as it is when the right vectors do not span a plane, e.g. all cameras face one way.)
  The first camera that is not straight above the object looks from +Z (azimuth 0 of the orbit
  convention), so the result does not depend on how the input world was turned;
- the object is centred at the origin and lies in the sphere of radius ``radius`` (1 by
  default). With masks, the object is the region all masked frusta share (sampled on a grid,
  coarse over the cameras' surroundings, then fine over what survived; each point projected
  through the lens model into each photo's own mask): its centroid goes to the origin and its
  farthest sample, plus one grid diagonal, onto the sphere. Without masks it is estimated
  from the cameras: the centre is the point closest to all optical axes, the radius the
  median over cameras of ``distance · sin(half the narrowest field of view)`` (the largest
  sphere each camera sees whole at that distance).

The transform is kept (:meth:`SceneTransform.to_dict`) so that results can be written back in
the original frame (:meth:`SceneTransform.inverse`). :func:`umeyama` is the least-squares
similarity between two point sets (to compare estimated cameras with the truth).

Nothing here is differentiable; float64 numpy throughout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from .camera import Camera
from .camera_io import CameraRecord
from .distortion import distort_points

__all__ = ["SceneTransform", "normalize_scene", "umeyama"]


@dataclass(frozen=True)
class SceneTransform:
    """A similarity ``x' = scale · rotation @ x + translation`` (float64).

    ``scale`` > 0, ``rotation`` [3,3] a proper rotation, ``translation`` [3].
    """

    scale: float
    rotation: np.ndarray
    translation: np.ndarray

    def __post_init__(self) -> None:
        s = float(self.scale)
        r = np.array(self.rotation, dtype=np.float64)
        t = np.array(self.translation, dtype=np.float64).reshape(-1)
        if not (math.isfinite(s) and s > 0):
            raise ValueError(f"scale must be positive and finite, got {self.scale}")
        if r.shape != (3, 3) or not np.isfinite(r).all():
            raise ValueError(f"rotation must be a finite 3x3 matrix, got shape {r.shape}")
        if np.abs(r.T @ r - np.eye(3)).max() > 1e-6 or np.linalg.det(r) <= 0:
            raise ValueError("rotation is not a rotation (scaled, sheared or mirrored)")
        if t.shape != (3,) or not np.isfinite(t).all():
            raise ValueError(f"translation must be 3 finite numbers, got {t.tolist()}")
        object.__setattr__(self, "scale", s)
        object.__setattr__(self, "rotation", r)
        object.__setattr__(self, "translation", t)

    @classmethod
    def identity(cls) -> SceneTransform:
        return cls(1.0, np.eye(3), np.zeros(3))

    def matrix(self) -> np.ndarray:
        """The 4x4 matrix acting on homogeneous column points."""
        m = np.eye(4)
        m[:3, :3] = self.scale * self.rotation
        m[:3, 3] = self.translation
        return m

    def inverse(self) -> SceneTransform:
        """The similarity back: ``x = (1/s) Rᵀ (x' - t)``."""
        rt = self.rotation.T
        return SceneTransform(1.0 / self.scale, rt, -(rt @ self.translation) / self.scale)

    def compose(self, first: SceneTransform) -> SceneTransform:
        """``self ∘ first``: apply ``first``, then ``self``."""
        return SceneTransform(self.scale * first.scale, self.rotation @ first.rotation,
                              self.scale * self.rotation @ first.translation + self.translation)

    def apply_to_points(self, points):
        """Points [...,3] (numpy array or tensor) -> transformed points, same kind and dtype.
        Tensors are not differentiated through the transform's parameters (constants)."""
        if torch.is_tensor(points):
            m = torch.as_tensor(self.scale * self.rotation, dtype=points.dtype,
                                device=points.device)
            t = torch.as_tensor(self.translation, dtype=points.dtype, device=points.device)
            return points @ m.T + t
        p = np.asarray(points)
        out = p.astype(np.float64) @ (self.scale * self.rotation).T + self.translation
        return out.astype(p.dtype) if np.issubdtype(p.dtype, np.floating) else out

    def apply_to_records(self, records: Sequence[CameraRecord]) -> list[CameraRecord]:
        """Camera records in the new world (new objects; intrinsics and images unchanged).

        A world-to-camera ``(R_c, t_c)`` becomes ``R_c Rᵀ`` and ``s t_c - R_c Rᵀ t``: camera
        space is scaled with the world, which leaves every projected pixel where it was."""
        out = []
        for r in records:
            rn = np.asarray(r.R, dtype=np.float64) @ self.rotation.T
            tn = self.scale * np.asarray(r.t, dtype=np.float64) - rn @ self.translation
            out.append(replace(r, R=rn, t=tn))
        return out

    def to_dict(self) -> dict:
        """A JSON-ready dict (``"maps": "original -> normalized"`` documents the direction)."""
        return {"maps": "original -> normalized", "scale": self.scale,
                "rotation": self.rotation.tolist(), "translation": self.translation.tolist()}

    @classmethod
    def from_dict(cls, data) -> SceneTransform:
        """Inverse of :meth:`to_dict`; ValueError naming the bad key."""
        if not isinstance(data, dict):
            raise ValueError(f"a scene transform must be an object, got {type(data).__name__}")
        for key in ("scale", "rotation", "translation"):
            if key not in data:
                raise ValueError(f"scene transform: missing {key!r}")
        try:
            s = data["scale"]
            if isinstance(s, bool) or not isinstance(s, int | float):
                raise TypeError
            r = np.array(data["rotation"], dtype=np.float64)
            t = np.array(data["translation"], dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError("scene transform: scale, rotation and translation must be "
                             "numbers") from None
        return cls(float(s), r, t)


def umeyama(src, dst, with_scale: bool = True) -> SceneTransform:
    """The similarity ``T`` minimising ``Σ |T(src_i) - dst_i|²`` (Umeyama 1991).

    ``src``, ``dst``: [N,3] arrays, N >= 3 points not all on one line. ``with_scale=False``
    fixes the scale to 1 (a rigid fit)."""
    a = np.asarray(src, dtype=np.float64)
    b = np.asarray(dst, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] != 3 or len(a) < 3:
        raise ValueError(f"umeyama needs two [N,3] point sets with N >= 3, got {a.shape} and "
                         f"{b.shape}")
    ma, mb = a.mean(0), b.mean(0)
    ac, bc = a - ma, b - mb
    var = (ac * ac).sum(1).mean()
    if var <= 1e-300:
        raise ValueError("umeyama: the source points all coincide")
    u, sig, vt = np.linalg.svd(bc.T @ ac / len(a))
    d = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[2, 2] = -1
    r = u @ d @ vt
    s = float(np.trace(np.diag(sig) @ d) / var) if with_scale else 1.0
    return SceneTransform(s, r, mb - s * r @ ma)


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation taking unit vector ``a`` to unit vector ``b``."""
    v = np.cross(a, b)
    c = float(np.dot(a, b))
    if c < -1 + 1e-12:  # opposite: half a turn about any axis perpendicular to a
        axis = np.cross(a, [1.0, 0.0, 0.0])
        if np.linalg.norm(axis) < 1e-6:
            axis = np.cross(a, [0.0, 0.0, 1.0])
        axis /= np.linalg.norm(axis)
        return 2 * np.outer(axis, axis) - np.eye(3)
    k = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + k + k @ k / (1 + c)


def _camera_arrays(cameras):
    """(R [B,3,3] world-to-camera OpenGL, centres [B,3], half of the narrowest fov [B])."""
    if isinstance(cameras, Camera):
        cam = cameras.detach().to(device="cpu", dtype=torch.float64)
        r = cam.view[:, :3, :3].numpy()
        tan_v = np.tan(np.radians(cam.fov.numpy()) / 2)
        half = np.arctan(tan_v * np.minimum(1.0, cam.aspect.numpy()))
        return r, cam.eye.numpy(), half
    recs = list(cameras)
    if not recs or not all(isinstance(r, CameraRecord) for r in recs):
        raise ValueError("normalize_scene needs a non-empty list of CameraRecords or a Camera")
    r = np.array([np.asarray(x.R, dtype=np.float64) for x in recs])
    centres = np.array([x.center for x in recs])
    half = []
    for x in recs:
        k = x.intrinsics
        half.append(math.atan(min(min(k.cx, x.width - k.cx) / k.fx,
                                  min(k.cy, x.height - k.cy) / k.fy)))
    return r, centres, np.array(half)


def _projectors(cameras, masks):
    """One function per view: world points [P,3] -> bool [P], inside that view's mask (points
    behind the camera or outside the image are outside). Distorted records are projected
    through their lens model, so the photos' own masks are used as they are."""
    if isinstance(cameras, Camera):
        cams = [cameras[k] for k in range(len(cameras))]
    else:
        cams = list(cameras)
    masks = list(masks)
    if len(masks) != len(cams):
        raise ValueError(f"{len(masks)} masks for {len(cams)} cameras")
    out = []
    for k, (cam, m) in enumerate(zip(cams, masks, strict=True)):
        m = np.asarray(m.detach().cpu() if torch.is_tensor(m) else m)
        name = cam.image if isinstance(cam, CameraRecord) else f"camera {k + 1}"
        if m.ndim != 2 or m.size == 0 or not np.isfinite(m.astype(np.float64)).all():
            raise ValueError(f"mask of {name} must be a finite [H,W] array, got {m.shape}")
        full = 255.0 if m.dtype == np.uint8 else 1.0
        inside = m.astype(np.float64) > 0.5 * full
        if not inside.any():
            raise ValueError(f"mask of {name} is empty")
        if isinstance(cam, CameraRecord) and m.shape != (cam.height, cam.width):
            raise ValueError(f"mask of {name} is {m.shape[1]} x {m.shape[0]}, its camera is "
                             f"{cam.width} x {cam.height}")
        out.append(_projector(cam, inside))
    return out


def _projector(cam, inside: np.ndarray):
    h, w = inside.shape
    if isinstance(cam, CameraRecord):
        k = cam.intrinsics
        r, t = np.asarray(cam.R, np.float64), np.asarray(cam.t, np.float64)
        model, params, distorted = cam.model, cam.params, cam.distorted
    else:
        c = cam.detach().to(device="cpu", dtype=torch.float64)
        fx, fy, cx, cy = (float(v[0]) for v in c.intrinsics(w, h))
        k = (fx, fy, cx, cy)
        r, t = c.view[0, :3, :3].numpy(), c.view[0, :3, 3].numpy()
        model, params, distorted = "PINHOLE", k, False
    fx, fy, cx, cy = k

    def test(pts: np.ndarray) -> np.ndarray:
        pc = pts @ r.T + t
        front = pc[:, 2] < -1e-9
        z = np.where(front, -pc[:, 2], 1.0)
        uv = np.stack([fx * pc[:, 0] / z + cx, fy * -pc[:, 1] / z + cy], 1)
        if distorted:
            uv = distort_points(uv, model, params).numpy()
        j, i = np.floor(uv[:, 0]), np.floor(uv[:, 1])
        ok = front & np.isfinite(uv).all(1) & (j >= 0) & (j < w) & (i >= 0) & (i < h)
        res = np.zeros(len(pts), bool)
        res[ok] = inside[i[ok].astype(np.int64), j[ok].astype(np.int64)]
        return res

    return test


def _shared_region(tests, lo: np.ndarray, hi: np.ndarray, n: int):
    """Grid points (n per axis over [lo, hi]) inside every mask, and the grid spacing."""
    axes = [np.linspace(lo[a], hi[a], n) for a in range(3)]
    pts = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    keep = np.ones(len(pts), bool)
    for test in tests:
        idx = np.nonzero(keep)[0]
        keep[idx] = test(pts[idx])
    return pts[keep], (hi - lo) / (n - 1)


def normalize_scene(cameras: Sequence[CameraRecord] | Camera, masks=None, *,
                    radius: float = 1.0, resolution: int = 64) -> SceneTransform:
    """The similarity that normalises a scene (see the module docstring).

    Args:
        cameras: the photos' cameras: a list of B :class:`CameraRecord` (any supported lens
            model) or a :class:`~render_core.camera.Camera` batch of B pinholes.
        masks: None, or B object masks [H,W] (bool, 0..1 floats or 0..255 uint8), one per
            camera, of the photos as they are (distorted photos' masks are undistorted here).
        radius: the radius of the sphere the object is scaled into.
        resolution: grid points per axis of the fine sampling of the shared region (masks
            only).
    Returns:
        :class:`SceneTransform` from the input world to the normalised one.
    Raises:
        ValueError: fewer than 2 cameras, cameras whose up vectors cancel or whose optical
        axes are all parallel (no mask), masks that do not match the cameras or are empty,
        masks that share no region.
    """
    if not (math.isfinite(radius) and radius > 0):
        raise ValueError(f"radius must be positive, got {radius}")
    r, centres, half = _camera_arrays(cameras)
    if len(r) < 2:
        raise ValueError(f"normalize_scene needs at least 2 cameras, got {len(r)}")
    up = r[:, 1, :].sum(0)
    if np.linalg.norm(up) < 0.1 * len(r):
        raise ValueError("the cameras' up vectors cancel out: no average up direction")
    up /= np.linalg.norm(up)
    right = r[:, 0, :]
    evals, evecs = np.linalg.eigh(right.T @ right)  # ascending
    if evals[1] > 0.05 * len(r):  # the right vectors span a plane: up is its normal
        level = evecs[:, 0] * np.sign(np.dot(evecs[:, 0], up))
        if np.dot(level, up) > math.cos(math.radians(30)):
            up = level
    if masks is None:
        d = -r[:, 2, :]  # optical axes (the camera looks down -Z)
        proj = np.eye(3)[None] - d[:, :, None] * d[:, None, :]
        a, b = proj.sum(0), (proj @ centres[:, :, None]).sum(0)[:, 0]
        if np.linalg.cond(a) > 1e8:
            raise ValueError("the cameras' optical axes are (nearly) parallel: no common "
                             "point; give masks")
        centre = np.linalg.solve(a, b)
        size = float(np.median(np.linalg.norm(centres - centre, axis=1) * np.sin(half)))
    else:
        tests = _projectors(cameras, masks)
        c0 = centres.mean(0)
        reach = float(np.linalg.norm(centres - c0, axis=1).max()) * 1.5
        pts, step = _shared_region(tests, c0 - reach, c0 + reach, max(16, resolution // 2))
        if len(pts) == 0:
            raise ValueError("the masks share no region: no point lies inside every mask "
                             "(check the cameras and masks)")
        # refine on a finer grid over the found region, grown by two coarse steps
        lo, hi = pts.min(0) - 2 * step, pts.max(0) + 2 * step
        pts, step = _shared_region(tests, lo, hi, resolution)
        if len(pts) == 0:
            raise ValueError("the region the masks share is thinner than the sampling grid")
        centre = pts.mean(0)
        size = float(np.linalg.norm(pts - centre, axis=1).max() + np.linalg.norm(step))
    rot = _rotation_between(up, np.array([0.0, 1.0, 0.0]))
    # yaw: the first camera off the vertical through the centre looks from +Z
    for c in centres:
        h = rot @ (c - centre)
        if math.hypot(h[0], h[2]) > 1e-3 * np.linalg.norm(h):
            yaw = math.atan2(h[0], h[2])  # turn by -yaw about +Y
            cy, sy = math.cos(yaw), math.sin(yaw)
            rot = np.array([[cy, 0, -sy], [0, 1, 0], [sy, 0, cy]]) @ rot
            break
    s = radius / size
    return SceneTransform(s, rot, -s * rot @ centre)
