"""The studio with general pinhole targets (registered photos: rolled, off-centre principal
point) instead of orbit cameras: the fit runs, the viewport draws their frusta, the Targets
tab lists them as pinholes, the photo backdrop, "View from target" (the registered camera
itself), the contact sheet and RenderNet's camera mapping work. Writes
docs/screenshots/targets_pinhole.png."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PyQt6.QtWidgets import QDockWidget

import render_core as rc
from render_core.fit import TargetView
from studio.model.neural_camera import NetView, pinhole_to_pose

SHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "targets_pinhole.png"


def _pinhole_twin(t: TargetView, k: int) -> TargetView:
    """The target's camera rolled by a few degrees with its principal point moved, and the
    target re-rendered from it (so the fit has a consistent problem)."""
    R, tt = t.world_to_camera()
    a = math.radians(3.0 + k)
    roll = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    h, w = t.image.shape[:2]
    fx, fy, cx, cy = t.pixel_intrinsics()
    return TargetView.from_camera(t.image, t.mask, roll @ R, roll @ tt, fx, fy, cx + 0.05 * w,
                                  cy - 0.04 * h, name=f"pinhole {k}", camera_group=1)


def test_pinhole_targets_run_in_the_studio(window, qtbot, tmp_path):
    s = window.session
    obj_targets = [_pinhole_twin(t, k) for k, t in enumerate(s.targets)]
    obj = rc.icosphere(2)
    cams = rc.Camera.cat([t.camera() for t in obj_targets])
    out = rc.Renderer(obj_targets[0].image.shape[:2], sigma=1e-5).render(
        rc.Mesh(obj.vertices * 0.9, obj.faces, vertex_colors=obj.vertices * 0.5 + 0.5), cams)
    rgb = rc.linear_to_srgb(out.rgb.clamp(0, 1)).numpy()
    targets = [TargetView.from_camera(rgb[k], out.frags.mask[k].float().numpy(),
                                      *t.world_to_camera(), *t.pixel_intrinsics(), name=t.name,
                                      camera_group=1) for k, t in enumerate(obj_targets)]
    s.set_targets(targets)
    gen = s.generation
    qtbot.waitUntil(lambda: s.runner.generation == gen, timeout=60000)
    for _ in range(3):
        s.step()
    vp = window.viewport
    # The frusta become the targets' own cameras (their view matrices, rolled), not orbits.
    def frusta_are_the_targets() -> bool:
        return len(vp._frusta) == len(targets) and all(
            np.allclose(view[:3, :3], t.world_to_camera()[0], atol=1e-3)
            for (view, _fov, _aspect), t in zip(vp._frusta, targets, strict=True))

    qtbot.waitUntil(frusta_are_the_targets, timeout=30000)
    panel = window.targets_panel
    panel.dock.raise_()
    qtbot.waitUntil(lambda: panel.active, timeout=5000)
    panel.list.setCurrentRow(2)
    assert "registered pinhole" in panel.list.item(2).text()
    assert "fx" in panel.list.item(2).toolTip()
    assert vp.has_backdrop
    qtbot.mouseClick(panel.look, __import__("PyQt6.QtCore").QtCore.Qt.MouseButton.LeftButton)
    t = s.targets[2]
    # The viewport shows the registered camera itself (roll and principal point included);
    # orbiting from it starts where it stands (below).
    R, tt = t.world_to_camera()
    np.testing.assert_allclose(vp.pinhole.R, R, atol=1e-12)
    np.testing.assert_allclose(vp.pinhole.t, tt, atol=1e-12)
    assert vp.pinhole.intrinsics == pytest.approx(t.pixel_intrinsics(), abs=1e-9)
    sheet = s.contact_sheet()
    assert sheet.shape[1] >= len(targets) * 8 and np.isfinite(sheet).all()
    # RenderNet's camera mapping takes the registered camera itself (its centre and fy; roll
    # and principal point are warped in image space, tests/test_rendernet_pinhole.py).
    az, el, scale, _ = pinhole_to_pose(NetView.of_target(t), 1.0)
    assert (az, el) == pytest.approx((((t.azimuth + 180) % 360) - 180, t.elevation), abs=1e-6)
    assert scale == pytest.approx(1 / (t.distance * math.tan(math.radians(t.fov) / 2)))
    qtbot.wait(500)
    SHOT.parent.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(SHOT))
    vp.leave_pinhole()
    assert vp.frame_camera(t.aspect)[:3] == pytest.approx(
        (((t.azimuth + 180) % 360) - 180, t.elevation, t.distance), abs=1e-5)
    window.findChild(QDockWidget, "controls").raise_()
