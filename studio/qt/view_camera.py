"""The viewport's camera maths (numpy and render_core only, no GL): a general pinhole camera
shown in a photo's frame, and the target frusta.

A :class:`Pinhole` is a target's camera: world-to-camera ``R``, ``t`` (OpenGL axes) and
intrinsics ``(fx, fy, cx, cy)`` in pixels of a ``width`` x ``height`` image. The viewport
shows it in the largest centred frame of the image's aspect (the backdrop's frame,
:func:`~studio.qt.backdrop.frame_rect`): :func:`widget_intrinsics` scales the intrinsics to
the widget and moves the principal point by the frame's offset, so the frame shows exactly
what the camera sees and :func:`pinhole_matrices` gives the matrices of
``rc.Camera.from_intrinsics``, the same function the differentiable render uses.
:func:`frame_pinhole` is the inverse: the pinhole that the frame of the current view shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

import render_core as rc

from .backdrop import frame_rect

NEAR, FAR = 0.05, 200.0


@dataclass(frozen=True)
class Pinhole:
    """A general pinhole camera (float64): ``x_cam = R x + t``, OpenGL axes; intrinsics in
    pixels of a ``size = (width, height)`` image, (0, 0) its top-left corner."""

    R: np.ndarray
    t: np.ndarray
    intrinsics: tuple[float, float, float, float]
    size: tuple[int, int]

    @classmethod
    def of_target(cls, target) -> Pinhole:
        """The camera of a :class:`render_core.fit.TargetView` (orbit or general)."""
        R, t = target.world_to_camera()
        h, w = target.image.shape[:2]
        return cls(np.asarray(R, np.float64), np.asarray(t, np.float64),
                   tuple(float(v) for v in target.pixel_intrinsics()), (int(w), int(h)))

    @property
    def aspect(self) -> float:
        return self.size[0] / self.size[1]

    @property
    def eye(self) -> np.ndarray:
        return -self.R.T @ self.t

    def matches(self, other: Pinhole | None, tol: float = 1e-6) -> bool:
        """The same camera (pose and intrinsics within ``tol``, the same image size)."""
        return other is not None and self.size == other.size and bool(
            np.allclose(self.R, other.R, atol=tol) and np.allclose(self.t, other.t, atol=tol)
            and np.allclose(self.intrinsics, other.intrinsics, atol=tol * max(self.size)))


def _frame(w: int, h: int, aspect: float) -> tuple[float, float, float]:
    """The centred frame of ``aspect`` in a ``w`` x ``h`` widget: its width and its top-left
    corner ``(x0, y0)``, in widget pixels."""
    hx, hy = frame_rect(w / max(h, 1), aspect)
    return hx * w, (1 - hx) / 2 * w, (1 - hy) / 2 * h


def widget_intrinsics(cam: Pinhole, w: int, h: int) -> tuple[float, float, float, float]:
    """``(fx, fy, cx, cy)`` in widget pixels that show ``cam`` in its centred frame."""
    frame_w, x0, y0 = _frame(w, h, cam.aspect)
    s = frame_w / cam.size[0]
    fx, fy, cx, cy = cam.intrinsics
    return fx * s, fy * s, x0 + cx * s, y0 + cy * s


def pinhole_matrices(cam: Pinhole, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """``(view, proj)`` [4,4] float64 of ``cam`` shown in a ``w`` x ``h`` widget, built by
    ``rc.Camera.from_intrinsics``."""
    c = rc.Camera.from_intrinsics(torch.from_numpy(cam.R), torch.from_numpy(cam.t),
                                  *widget_intrinsics(cam, w, h), float(w), float(h), NEAR, FAR)
    return c.view[0].numpy(), c.proj[0].numpy()


def frame_pinhole(view: np.ndarray, proj: np.ndarray, w: int, h: int,
                  size: tuple[int, int]) -> Pinhole:
    """The pinhole (intrinsics in pixels of a ``size = (W, H)`` image) that the centred frame
    of ``W/H`` sees in a ``w`` x ``h`` view drawn with ``view`` and ``proj``."""
    cam = rc.Camera(torch.from_numpy(np.asarray(view, np.float64))[None],
                    torch.from_numpy(np.asarray(proj, np.float64))[None],
                    torch.zeros(1, 3, dtype=torch.float64), torch.ones(1, dtype=torch.float64),
                    torch.ones(1, dtype=torch.float64), torch.full((1,), NEAR, dtype=torch.float64),
                    torch.full((1,), FAR, dtype=torch.float64))
    fx, fy, cx, cy = (float(v[0]) for v in cam.intrinsics(float(w), float(h)))
    frame_w, x0, y0 = _frame(w, h, size[0] / size[1])
    s = frame_w / size[0]
    R, t = np.asarray(view, np.float64)[:3, :3], np.asarray(view, np.float64)[:3, 3]
    return Pinhole(R.copy(), t.copy(), (fx / s, fy / s, (cx - x0) / s, (cy - y0) / s),
                   (int(size[0]), int(size[1])))


def orbit_of(cam: Pinhole, w: int, h: int, about_origin: bool
             ) -> tuple[float, float, float, np.ndarray, float]:
    """``(azimuth, elevation, distance, center, fov)`` of an orbit camera standing where
    ``cam`` stands, to go on orbiting from it: about the point on its optical axis nearest
    the origin (its look-at point), or with ``about_origin`` about the origin (as a photo's
    orbit camera turns). ``fov`` is the widget's vertical fov at the same zoom (roll and the
    principal point's offset are what an orbit camera cannot keep)."""
    eye = cam.eye
    forward = -cam.R[2]
    if about_origin:
        center = np.zeros(3)
    else:
        center = eye + forward * max(float(np.dot(-eye, forward)), 0.1)
    offset = eye - center
    dist = max(float(np.linalg.norm(offset)), 1e-6)
    u = offset / dist
    el = math.degrees(math.asin(float(np.clip(u[1], -1.0, 1.0))))
    az = math.degrees(math.atan2(u[0], u[2]))
    fy = widget_intrinsics(cam, w, h)[1]
    fov = math.degrees(2 * math.atan(h / (2 * fy)))
    return az, float(np.clip(el, -89.0, 89.0)), dist, center, float(np.clip(fov, 1.0, 170.0))


def _pivot(cam: Pinhole, about_origin: bool) -> np.ndarray:
    """The point :func:`orbit_of` turns about."""
    if about_origin:
        return np.zeros(3)
    forward = -cam.R[2]
    return cam.eye + forward * max(float(np.dot(-cam.eye, forward)), 0.1)


def _turn(axis: np.ndarray, deg: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    a = math.radians(deg)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(a) * k + (1 - math.cos(a)) * k @ k


def orbit_pinhole(cam: Pinhole, d_azimuth: float, d_elevation: float, about_origin: bool
                  ) -> Pinhole:
    """``cam`` turned about the pivot of :func:`orbit_of` as an orbit camera turns (degrees;
    azimuth about the world's +Y, elevation towards +Y, kept within +-89°), the camera itself
    turned with it: its roll and intrinsics stay, so orbiting from a registered camera goes
    on from it without a jump."""
    pivot = _pivot(cam, about_origin)
    offset = cam.eye - pivot
    dist = float(np.linalg.norm(offset))
    turn = _turn(np.array([0.0, 1.0, 0.0]), d_azimuth)
    side = np.cross(offset, [0.0, 1.0, 0.0])
    if dist > 1e-12 and np.linalg.norm(side) > 1e-9 * dist:
        el = math.degrees(math.asin(float(np.clip(offset[1] / dist, -1.0, 1.0))))
        d_el = float(np.clip(el + d_elevation, -89.0, 89.0)) - el
        turn = _turn(side, d_el) @ turn if d_el else turn
    eye = pivot + turn @ offset
    R = cam.R @ turn.T
    return Pinhole(R, -R @ eye, cam.intrinsics, cam.size)


def dolly_pinhole(cam: Pinhole, factor: float, about_origin: bool,
                  limits: tuple[float, float] = (0.05, 500.0)) -> Pinhole:
    """``cam`` moved along the line to the pivot of :func:`orbit_of` so that its distance to
    it is ``factor`` times what it was (within ``limits``), orientation and intrinsics kept."""
    pivot = _pivot(cam, about_origin)
    offset = cam.eye - pivot
    dist = float(np.linalg.norm(offset))
    if dist < 1e-12:
        return cam
    eye = pivot + offset * float(np.clip(dist * factor, *limits)) / dist
    return Pinhole(cam.R.copy(), -cam.R @ eye, cam.intrinsics, cam.size)


def frustum_lines(view: np.ndarray, fov: float, aspect: float, depth: float,
                  proj: np.ndarray | None = None) -> np.ndarray:
    """Line-segment endpoints [16,3] of a camera frustum drawn ``depth`` in front of it: the
    image corners of ``proj`` (an off-centre principal point shifts them), or without it of
    a centred ``fov`` / ``aspect`` frame."""
    inv = np.linalg.inv(view)
    if proj is None:
        t = math.tan(math.radians(fov) / 2)
        p00, p11, p02, p12 = 1 / (t * aspect), 1 / t, 0.0, 0.0
    else:
        p00, p11, p02, p12 = proj[0, 0], proj[1, 1], proj[0, 2], proj[1, 2]
    # NDC x = (p00 x + p02 z) / -z: at z = -depth, x = depth (x_ndc + p02) / p00.
    corners = np.array([[depth * (sx + p02) / p00, depth * (sy + p12) / p11, -depth]
                        for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))])
    world = corners @ inv[:3, :3].T + inv[:3, 3]
    eye = inv[:3, 3]
    segs = []
    for i in range(4):
        segs += [eye, world[i], world[i], world[(i + 1) % 4]]
    return np.asarray(segs, dtype=np.float32)
