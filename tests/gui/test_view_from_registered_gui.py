"""The viewport with a registered (general pinhole) target: rolled, off-centre principal point.

"View from target" shows the scene from that camera itself, so the GL view inside the photo
frame covers the pixels render_core's hard render from the target's camera covers; the
frustum shows its intrinsics; "Use this view" gives it a general camera (round trip, undo).
Writes docs/screenshots/view_from_registered_target.png."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QDockWidget

import render_core as rc
from render_core.fit import TargetView
from studio.qt.backdrop import frame_rect
from studio.qt.view_camera import Pinhole, frustum_lines

SHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / \
    "view_from_registered_target.png"


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def _registered(t: TargetView, mesh: rc.Mesh) -> TargetView:
    """``t``'s camera rolled by 12° with its principal point moved off-centre and fy != fx,
    and its photo rendered from that camera (so the backdrop lines up with the mesh)."""
    R, tt = t.world_to_camera()
    a = math.radians(12.0)
    roll = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    h, w = t.image.shape[:2]
    fx, fy, cx, cy = t.pixel_intrinsics()
    reg = TargetView.from_camera(t.image, t.mask, roll @ R, roll @ tt, fx, fy * 1.04,
                                 cx + 0.09 * w, cy - 0.07 * h, name="registered")
    out = rc.Renderer((h, w), sigma=1e-5, shading="vertex_color").render(mesh, reg.camera())
    rgb = rc.linear_to_srgb(out.rgb[0].clamp(0, 1)).numpy()
    return TargetView.from_camera(rgb, out.frags.mask[0].float().numpy(), roll @ R, roll @ tt,
                                  fx, fy * 1.04, cx + 0.09 * w, cy - 0.07 * h, name="registered")


def _frame_crop(vp, aspect: float) -> np.ndarray:
    """The GL silhouette of the whole view (glReadPixels, flipped), cropped to the frame."""
    w, h = vp.width(), vp.height()
    view, proj = vp.matrices(w, h)
    gl = vp.render_offscreen(view, proj, (h, w), mode="silhouette")[..., 0] > 127
    hx, hy = frame_rect(w / h, aspect)
    r0, r1 = round((1 - hy) / 2 * h), round((1 + hy) / 2 * h)
    c0, c1 = round((1 - hx) / 2 * w), round((1 + hx) / 2 * w)
    return gl[r0:r1, c0:c1]


def test_view_from_a_registered_target_matches_its_render(window, qtbot):
    s, vp = window.session, window.viewport
    qtbot.waitUntil(lambda: len(vp._vertices) > 0 and vp.frames_drawn > 0, timeout=30000)
    v = torch.from_numpy(vp._vertices.astype(np.float32))
    stripes = 0.5 + 0.45 * torch.sin(14.0 * v[:, 1:2])  # level stripes: the roll shows
    mesh = rc.Mesh(v, torch.from_numpy(vp._faces),
                   vertex_colors=torch.cat([stripes, 0.3 + 0.2 * stripes, 1 - stripes], 1))
    reg = _registered(s.targets[1], mesh)
    s.set_targets([s.targets[0], reg] + list(s.targets[2:]))
    gen = s.generation
    qtbot.waitUntil(lambda: s.runner.generation == gen, timeout=60000)
    panel = window.targets_panel
    panel.dock.raise_()
    qtbot.waitUntil(lambda: panel.active, timeout=5000)
    panel.list.setCurrentRow(1)
    assert vp.has_backdrop
    qtbot.mouseClick(panel.look, Qt.MouseButton.LeftButton)
    t = s.targets[1]
    assert not t.is_orbit and vp.pinhole is not None
    assert vp.pinhole.matches(Pinhole.of_target(t), tol=1e-12)

    # The GL pixels inside the photo frame are render_core's hard render from t's camera.
    crop = _frame_crop(vp, t.aspect)
    shaded = rc.Mesh(torch.from_numpy(vp._vertices), torch.from_numpy(vp._faces))
    ours = rc.Renderer(crop.shape, shading="vertex_color").render(
        shaded, t.camera()).frags.mask[0].numpy()
    iou = _iou(ours, crop)
    # The orbit camera the viewport used to show (where t stands, centred, no roll) does not.
    summary = rc.Camera.orbit(t.azimuth, t.elevation, t.distance, fov=t.fov, aspect=t.aspect)
    orbit_iou = _iou(rc.Renderer(crop.shape, shading="vertex_color").render(
        shaded, summary).frags.mask[0].numpy(), crop)
    print(f"IoU GL frame vs render_core: {iou:.4f}; vs the orbit summary: {orbit_iou:.4f}")
    assert crop.mean() > 0.02 and iou > 0.97
    assert orbit_iou < iou - 0.05

    # The frustum is drawn from t's own projection: its far corners are the image corners.
    def frustum_is_general() -> bool:
        return len(vp._frusta_proj) == len(s.targets) and vp._frusta_proj[1] is not None \
            and abs(vp._frusta_proj[1][0, 2]) > 0.05
    qtbot.waitUntil(frustum_is_general, timeout=30000)
    view, fov, aspect = vp._frusta[1]
    seg = frustum_lines(view, fov, aspect, 0.35, vp._frusta_proj[1]).astype(np.float64)
    R, tt = t.world_to_camera()
    fx, fy, cx, cy = t.pixel_intrinsics()
    xc = seg[[1, 5, 9, 13]] @ R.T + tt  # the four far corners, in camera space
    px = np.stack([cx + fx * xc[:, 0] / -xc[:, 2], cy - fy * xc[:, 1] / -xc[:, 2]], 1)
    h, w = t.image.shape[:2]
    np.testing.assert_allclose(px, [[0, h], [w, h], [w, 0], [0, 0]], atol=0.05 * w)

    vp.set_mode("wireframe")
    qtbot.wait(300)
    SHOT.parent.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(SHOT))

    # Orbiting leaves the general camera for an orbit camera standing at the same eye.
    eye = vp.pinhole.eye
    vp.leave_pinhole()
    assert vp.pinhole is None
    np.testing.assert_allclose(np.linalg.inv(vp.matrices()[0])[:3, 3], eye, atol=1e-5)
    window.findChild(QDockWidget, "controls").raise_()


def test_use_this_view_round_trips_a_general_camera(window, qtbot):
    s, vp = window.session, window.viewport
    qtbot.waitUntil(lambda: len(vp._vertices) > 0, timeout=30000)
    mesh = rc.Mesh(torch.from_numpy(vp._vertices.astype(np.float32)),
                   torch.from_numpy(vp._faces))
    s.set_targets([s.targets[0], _registered(s.targets[1], mesh)])
    panel = window.targets_panel
    panel.dock.raise_()
    qtbot.waitUntil(lambda: panel.active, timeout=5000)
    panel.list.setCurrentRow(1)
    qtbot.mouseClick(panel.look, Qt.MouseButton.LeftButton)
    before = s.targets[1]
    qtbot.mouseClick(panel.use_view, Qt.MouseButton.LeftButton)
    after = s.targets[1]
    assert not after.is_orbit  # still a general camera, not an orbit replacement
    np.testing.assert_allclose(after.pose, before.pose, atol=1e-6)
    np.testing.assert_allclose(after.intrinsics, before.intrinsics, atol=1e-6)
    assert vp.pinhole is not None  # the view stays on the (same) camera
    # A view turned away from it: the target gets the general camera the frame shows, which
    # "View from target" then shows again (the same matrices).
    vp.leave_pinhole()
    vp.azimuth += 25.0
    w, h = vp.width(), vp.height()
    seen = vp.matrices(w, h)
    qtbot.mouseClick(panel.use_view, Qt.MouseButton.LeftButton)
    moved = s.targets[1]
    assert not moved.is_orbit and not np.allclose(moved.pose, before.pose, atol=1e-3)
    vp.azimuth -= 60.0
    qtbot.mouseClick(panel.look, Qt.MouseButton.LeftButton)
    for a, b in zip(vp.matrices(w, h), seen, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    # Undo puts the previous general camera back, as for orbit edits.
    assert window.session_actions.undo()
    back = s.targets[1]
    np.testing.assert_allclose(back.pose, after.pose, atol=1e-12)
    assert back.intrinsics == after.intrinsics
    window.findChild(QDockWidget, "controls").raise_()
