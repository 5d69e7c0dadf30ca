"""Orbiting (and zooming) the viewport away from a registered camera: the view turns on from
that camera, with its roll and principal point, rather than first jumping to an orbit camera
that has neither. A mouse drag of one pixel must move the view by about half a degree, not
drop the camera's 12° roll."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PyQt6.QtCore import QPoint, QPointF, Qt
from PyQt6.QtGui import QMouseEvent, QWheelEvent

from render_core.fit import TargetView
from studio.qt.view_camera import Pinhole
from studio.qt.viewport import Viewport

W, H = 80, 60
ROLL = 12.0


def _rolled() -> Pinhole:
    orbit = TargetView.orbit(np.zeros((H, W, 3), np.float32), None, 35.0, 20.0, 3.0, 50.0)
    R, t = orbit.world_to_camera()
    a = math.radians(ROLL)
    roll = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    return Pinhole(roll @ R, roll @ t, (70.0, 72.0, 0.56 * W, 0.45 * H), (W, H))


def _roll_of(view: np.ndarray) -> float:
    """Degrees the camera's right axis leans out of the horizontal plane."""
    return math.degrees(math.asin(float(np.clip(view[0, 1], -1, 1))))


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    c = (np.trace(a[:3, :3].T @ b[:3, :3]) - 1) / 2
    return math.degrees(math.acos(float(np.clip(c, -1, 1))))


def _drag(vp, dx: float, dy: float) -> None:
    p0 = QPointF(100.0, 100.0)
    p1 = QPointF(100.0 + dx, 100.0 + dy)
    left, none = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    vp.mousePressEvent(QMouseEvent(QMouseEvent.Type.MouseButtonPress, p0, p0, left, left, none))
    vp.mouseMoveEvent(QMouseEvent(QMouseEvent.Type.MouseMove, p1, p1, left, left, none))
    vp.mouseReleaseEvent(QMouseEvent(QMouseEvent.Type.MouseButtonRelease, p1, p1, left,
                                     Qt.MouseButton.NoButton, none))


@pytest.fixture
def viewport(qtbot):
    vp = Viewport()
    qtbot.addWidget(vp)
    vp.resize(400, 300)
    vp.show()
    qtbot.waitExposed(vp)
    return vp


def test_a_small_orbit_from_a_rolled_camera_keeps_its_roll(viewport):
    vp = viewport
    cam = _rolled()
    vp.set_pinhole(cam)
    before = vp.matrices()[0]
    assert abs(_roll_of(before)) > 10.0  # the camera leans by most of its 12° roll
    _drag(vp, 1.0, 0.0)  # half a degree of azimuth
    after, proj_after = vp.matrices()
    assert _angle(before, after) == pytest.approx(0.5, abs=0.05)
    assert _roll_of(after) == pytest.approx(_roll_of(before), abs=0.3)
    # the principal point's offset stays too
    np.testing.assert_allclose(proj_after[:2, 2], vp.matrices()[1][:2, 2])
    _drag(vp, 0.0, 2.0)  # a degree of elevation
    again = vp.matrices()[0]
    assert _angle(after, again) == pytest.approx(1.0, abs=0.05)
    # the eye climbs: its height above the pivot grows
    assert np.linalg.inv(again)[1, 3] > np.linalg.inv(after)[1, 3]


def test_zooming_from_a_rolled_camera_keeps_its_orientation(viewport):
    vp = viewport
    vp.set_pinhole(_rolled())
    before = vp.matrices()
    pos = QPointF(100.0, 100.0)
    vp.wheelEvent(QWheelEvent(pos, pos, QPoint(0, 0), QPoint(0, 120), Qt.MouseButton.NoButton,
                              Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase,
                              False))
    after = vp.matrices()
    np.testing.assert_allclose(after[0][:3, :3], before[0][:3, :3], atol=1e-9)
    np.testing.assert_allclose(after[1], before[1], atol=1e-9)
    eye0, eye1 = np.linalg.inv(before[0])[:3, 3], np.linalg.inv(after[0])[:3, 3]
    assert np.linalg.norm(eye1) < np.linalg.norm(eye0)  # moved in, towards the pivot


def test_the_targets_tab_keeps_the_turned_camera_of_its_target(window, qtbot):
    """After "View from target" on a registered target and a drag, the Targets tab's refresh
    (any session event) must not swap the turned camera for a roll-free orbit one."""
    s, vp = window.session, window.viewport
    t = s.targets[1]
    cam = _rolled()
    h, w = t.image.shape[:2]
    fx, fy, cx, cy = (v * w / W for v in cam.intrinsics)
    s.set_targets([s.targets[0], TargetView.from_camera(t.image, t.mask, cam.R, cam.t,
                                                        fx, fy, cx, cy, name="registered")])
    panel = window.targets_panel
    panel.dock.raise_()
    qtbot.waitUntil(lambda: panel.active, timeout=5000)
    panel.list.setCurrentRow(1)
    qtbot.mouseClick(panel.look, Qt.MouseButton.LeftButton)
    before = vp.matrices()[0]
    _drag(vp, 4.0, 0.0)
    turned = vp.matrices()[0]
    assert _angle(before, turned) == pytest.approx(2.0, abs=0.1)
    panel.refresh()
    assert vp.pinhole is not None
    np.testing.assert_allclose(vp.matrices()[0], turned, atol=1e-9)
    # selecting the other (orbit) target leaves the general camera for an orbit one
    panel.list.setCurrentRow(0)
    assert vp.pinhole is None
