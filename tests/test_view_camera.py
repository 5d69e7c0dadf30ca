"""studio.qt.view_camera (no display): a general camera shown in the viewport's photo frame
projects world points where the camera's own pinhole formula puts them, orbit cameras come
out as ``rc.Camera.orbit``, and the frame's camera read back is the camera shown."""

from __future__ import annotations

import math

import numpy as np
import pytest

import render_core as rc
from render_core.fit import TargetView
from studio.qt.view_camera import (
    Pinhole,
    frame_pinhole,
    frustum_lines,
    orbit_of,
    pinhole_matrices,
)

W, H = 64, 48  # the photo


def _registered() -> Pinhole:
    orbit = TargetView.orbit(np.zeros((H, W, 3), np.float32), None, 40.0, 25.0, 3.0, 50.0)
    R, t = orbit.world_to_camera()
    a = math.radians(9.0)
    roll = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    return Pinhole(roll @ R, roll @ t + [0.2, -0.1, 0.3], (55.0, 58.0, 38.5, 19.0), (W, H))


def _pixel(cam: Pinhole, x: np.ndarray) -> np.ndarray:
    """The pinhole formula (OpenGL axes, y up, pixel (0, 0) the image's top-left corner)."""
    xc = x @ cam.R.T + cam.t
    fx, fy, cx, cy = cam.intrinsics
    return np.stack([cx + fx * xc[:, 0] / -xc[:, 2], cy - fy * xc[:, 1] / -xc[:, 2]], 1)


@pytest.mark.parametrize("w, h", [(200, 100), (120, 160), (128, 96)])
def test_frame_shows_the_camera(w, h):
    cam = _registered()
    view, proj = pinhole_matrices(cam, w, h)
    pts = np.random.default_rng(0).uniform(-0.8, 0.8, (50, 3))
    clip = np.concatenate([pts, np.ones((50, 1))], 1) @ (proj @ view).T
    ndc = clip[:, :2] / clip[:, 3:]
    widget = np.stack([(ndc[:, 0] + 1) / 2 * w, (1 - ndc[:, 1]) / 2 * h], 1)
    s = min(w / W, h / H)  # the largest centred frame of the photo's aspect
    expected = _pixel(cam, pts) * s + [(w - W * s) / 2, (h - H * s) / 2]
    np.testing.assert_allclose(widget, expected, atol=1e-9)
    back = frame_pinhole(view, proj, w, h, (W, H))
    assert back.matches(cam, tol=1e-9)


def test_an_orbit_target_is_the_orbit_camera():
    t = TargetView.orbit(np.zeros((H, W, 3), np.float32), None, -70.0, 15.0, 2.5, 40.0)
    view, proj = pinhole_matrices(Pinhole.of_target(t), 2 * W, 2 * H)
    orbit = rc.Camera.orbit(-70.0, 15.0, 2.5, fov=40.0, aspect=W / H)
    np.testing.assert_allclose(view, orbit.view[0].double().numpy(), atol=1e-5)
    np.testing.assert_allclose(proj[:2], orbit.proj[0, :2].double().numpy(), atol=1e-5)


def test_orbit_of_keeps_the_eye_and_looks_along_the_axis():
    cam = _registered()
    for about_origin in (False, True):
        az, el, dist, center, fov = orbit_of(cam, 128, 96, about_origin)
        orbit = rc.Camera.orbit(az, el, dist, at=tuple(center), fov=fov, aspect=128 / 96)
        np.testing.assert_allclose(orbit.eye[0].double().numpy(), cam.eye, atol=1e-5)
        assert fov == pytest.approx(math.degrees(2 * math.atan(H / 2 / 58.0)))
        if about_origin:
            assert np.allclose(center, 0)
        else:  # the centre lies on the optical axis
            d = center - cam.eye
            assert np.cross(d / np.linalg.norm(d), -cam.R[2]) == pytest.approx(np.zeros(3),
                                                                                abs=1e-9)


def test_frustum_corners_are_the_image_corners():
    cam = _registered()
    view, proj = pinhole_matrices(cam, W, H)
    seg = frustum_lines(view, 0.0, 0.0, 0.5, proj).astype(np.float64)
    np.testing.assert_allclose(_pixel(cam, seg[[1, 5, 9, 13]]),
                               [[0, H], [W, H], [W, 0], [0, 0]], atol=1e-3)
