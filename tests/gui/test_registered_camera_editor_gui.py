"""The Targets tab edits a registered (general pinhole) camera as itself: its centre, Euler
angles and intrinsics in pixels; an edit changes only that value, keeps the camera registered
and is one undo step. An orbit target keeps its orbit spin boxes. Writes
docs/screenshots/targets_registered_camera.png."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PyQt6.QtWidgets import QDockWidget

from render_core.fit import TargetView
from studio.qt.target_pinhole import euler_from_rotation, rotation_from_euler

SHOT = (Path(__file__).resolve().parents[2] / "docs" / "screenshots"
        / "targets_registered_camera.png")


def _registered(t: TargetView) -> TargetView:
    """The target's camera rolled by 4° with its principal point moved off-centre."""
    R, tt = t.world_to_camera()
    a = math.radians(4.0)
    roll = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    h, w = t.image.shape[:2]
    fx, fy, cx, cy = t.pixel_intrinsics()
    return TargetView.from_camera(t.image, t.mask, roll @ R, roll @ tt, fx * 1.02, fy,
                                  cx + 0.06 * w, cy - 0.03 * h, name="registered photo")


def test_euler_angles_round_trip():
    rng = np.random.default_rng(3)
    for _ in range(20):
        yaw, pitch, roll = rng.uniform(-170, 170), rng.uniform(-85, 85), rng.uniform(-170, 170)
        R = rotation_from_euler(yaw, pitch, roll)
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
        assert euler_from_rotation(R) == pytest.approx((yaw, pitch, roll), abs=1e-9)
    # all zero looks down world -Z; pitch up looks up
    np.testing.assert_allclose(rotation_from_euler(0, 0, 0), np.eye(3), atol=1e-15)
    look = -rotation_from_euler(0, 30, 0)[2]  # the camera's -Z axis in the world
    assert look == pytest.approx([0, math.sin(math.radians(30)), -math.cos(math.radians(30))])


def test_registered_camera_edits_in_the_targets_tab(window, qtbot):
    s = window.session
    s.set_targets([_registered(s.targets[0])] + list(s.targets[1:]))
    actions = window.session_actions
    actions.undo_stack.merge_seconds = 0.0
    panel = window.targets_panel
    panel.dock.raise_()
    qtbot.waitUntil(lambda: panel.active, timeout=5000)
    panel.list.setCurrentRow(0)
    before = s.targets[0]
    ed = panel.pinhole
    assert ed.isVisible() and not panel.orbit_box.isVisible()
    assert ed.spins["fx"].value() == pytest.approx(before.pixel_intrinsics()[0], abs=5e-3)
    assert ed.spins["roll"].value() == pytest.approx(
        euler_from_rotation(before.world_to_camera()[0])[2], abs=5e-3)
    fx0, fy0, cx0, cy0 = before.pixel_intrinsics()
    ed.spins["fx"].setValue(fx0 + 7.25)
    after = s.targets[0]
    assert not after.is_orbit
    typed = ed.spins["fx"].value()  # the value as the box holds it (2 decimals)
    assert typed == pytest.approx(fx0 + 7.25, abs=5e-3)
    assert after.pixel_intrinsics() == (typed, fy0, cx0, cy0)
    np.testing.assert_array_equal(after.pose, before.pose)  # the pose, untouched
    # The orbit boxes of the tab never turn it into an orbit camera.
    panel.cam["azimuth"].setValue(panel.cam["azimuth"].value() + 10)
    assert not s.targets[0].is_orbit
    np.testing.assert_array_equal(s.targets[0].pose, before.pose)
    # The centre edits keep the orientation.
    z0 = ed.spins["z"].value()
    ed.spins["z"].setValue(z0 + 0.5)
    moved = s.targets[0]
    np.testing.assert_allclose(moved.pose[:, :3], before.pose[:, :3], atol=1e-12)
    centre = -moved.pose[:, :3].T @ moved.pose[:, 3]
    c0 = -before.pose[:, :3].T @ before.pose[:, 3]
    assert centre[:2] == pytest.approx(c0[:2], abs=1e-9)
    assert centre[2] == pytest.approx(ed.spins["z"].value(), abs=1e-9)
    assert centre[2] == pytest.approx(c0[2] + 0.5, abs=1e-4)
    qtbot.wait(300)
    SHOT.parent.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(SHOT))
    assert actions.undo()  # the centre edit
    assert actions.undo()  # the focal length edit
    back = s.targets[0]
    assert not back.is_orbit
    np.testing.assert_array_equal(back.pose, before.pose)
    assert back.pixel_intrinsics() == before.pixel_intrinsics()
    assert ed.spins["fx"].value() == pytest.approx(fx0, abs=5e-3)

    # An orbit target still edits through its orbit spin boxes.
    panel.list.setCurrentRow(1)
    assert panel.orbit_box.isVisible() and not ed.isVisible()
    o = s.targets[1]
    panel.cam["elevation"].setValue(o.elevation + 5.0)
    edited = s.targets[1]
    assert edited.is_orbit
    assert (edited.azimuth, edited.elevation, edited.distance, edited.fov) == pytest.approx(
        (o.azimuth, o.elevation + 5.0, o.distance, o.fov), abs=5e-3)
    window.findChild(QDockWidget, "controls").raise_()


def test_rendernet_style_of_a_registered_target_uses_its_camera(window, qtbot):
    """The Style menu's RenderNet image of a registered view is asked for with the view's own
    pinhole (principal point and roll), not its orbit summary; an orbit view keeps the tuple."""
    from studio.model.neural_camera import NetView

    s = window.session
    s.set_targets([_registered(s.targets[0])] + list(s.targets[1:]))
    menu = window.style_menu
    asked = []
    real = menu.thread.request
    menu.thread.request = lambda token, v, f, camera, *rest: (asked.append(camera),
                                                                real(token, v, f, camera, *rest))
    window.images.view_combo.setCurrentIndex(0)
    menu.set_style("rendernet:phong")
    t = s.targets[0]
    roll = euler_from_rotation(t.world_to_camera()[0])[2]

    def registered_frame() -> bool:  # a frame of the new targets (older ones may be queued)
        return (menu.shown_style == "phong" and bool(asked) and isinstance(asked[-1], NetView)
                and abs(euler_from_rotation(asked[-1].R)[2] - roll) < 0.5)

    qtbot.waitUntil(registered_frame, timeout=60000)
    cam = asked[-1]
    h, w = cam.size
    k = h / t.image.shape[0]
    fx, fy, cx, cy = t.pixel_intrinsics()
    assert (cam.intrinsics[2], cam.intrinsics[3]) == pytest.approx((cx * k, cy * k))
    assert cam.intrinsics[0] / cam.intrinsics[1] == pytest.approx(fx / fy)
    window.images.view_combo.setCurrentIndex(1)
    qtbot.waitUntil(lambda: isinstance(asked[-1], tuple), timeout=60000)
    menu.set_style(s.config.shading)
