"""The Targets dock: list / select / remove, the photo backdrop and "Use this view", and the
mask editor's threshold and brush, in real windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PyQt6.QtCore import QPoint, Qt
from PyQt6.QtWidgets import QDockWidget

import render_core as rc
from studio.model import files
from studio.qt.backdrop import frame_rect


def _photo(size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A saturated disc over a grey checkerboard with noise (no alpha), and its true mask."""
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5) / size
    disc = (yy - 0.5) ** 2 + (xx - 0.55) ** 2 < 0.3**2
    checker = ((np.floor(xx * 8) + np.floor(yy * 8)) % 2)[..., None]
    bg = 0.45 + 0.15 * checker + np.random.default_rng(1).normal(0, 0.02, (size, size, 3))
    img = np.where(disc[..., None], np.array([0.9, 0.2, 0.3]) * (0.6 + 0.4 * xx[..., None]), bg)
    return np.clip(img, 0, 1).astype(np.float32), disc


def _show_panel(window, qtbot):
    panel = window.targets_panel
    panel.dock.raise_()  # a tab beside the controls
    qtbot.waitUntil(lambda: panel.active, timeout=5000)
    return panel


def test_panel_lists_selects_and_removes(window, qtbot):
    panel = window.targets_panel
    panel.list.setCurrentRow(1)
    assert not window.viewport.has_backdrop  # the controls tab is up: no photo over the mesh
    panel = _show_panel(window, qtbot)
    names = [t.name for t in window.session.targets]
    assert panel.list.count() == 6
    assert [panel.list.item(i).text().split("\n")[0] for i in range(6)] == names
    panel.list.setCurrentRow(2)
    assert window.images.view_combo.currentIndex() == 2  # the image panels follow
    assert window.viewport.has_backdrop
    t = window.session.targets[2]
    np.testing.assert_array_equal(window.viewport._backdrop, t.image)
    # The photo's frame spans the target's field of view.
    assert window.viewport.frame_camera(t.aspect)[3] == pytest.approx(t.fov)
    assert panel.cam["azimuth"].value() == pytest.approx(window.session.targets[2].azimuth)
    window.images.view_combo.setCurrentIndex(4)  # and the panel follows them
    assert panel.current == 4
    panel.backdrop.setChecked(False)
    assert not window.viewport.has_backdrop
    panel.backdrop.setChecked(True)
    assert window.viewport.has_backdrop
    window.findChild(QDockWidget, "controls").raise_()
    qtbot.waitUntil(lambda: not window.viewport.has_backdrop, timeout=5000)
    panel = _show_panel(window, qtbot)
    qtbot.mouseClick(panel.remove, Qt.MouseButton.LeftButton)
    assert [t.name for t in window.session.targets] == names[:4] + names[5:]
    assert panel.list.count() == 5 and window.images.view_combo.count() == 5
    # Typing a camera sets it on the session; a bad value never gets past the spin box range.
    panel.list.setCurrentRow(0)
    panel.cam["elevation"].setValue(33.0)
    assert window.session.targets[0].elevation == pytest.approx(33.0)
    assert "el 33°" in panel.list.item(0).text()


def test_use_this_view_sets_the_camera_the_backdrop_frame_shows(window, qtbot):
    panel, vp = _show_panel(window, qtbot), window.viewport
    panel.list.setCurrentRow(1)
    qtbot.waitUntil(lambda: vp.frames_drawn > 0, timeout=5000)
    vp.azimuth, vp.elevation, vp.distance = 205.0, 25.0, 4.0  # an orbit past 180 degrees
    qtbot.mouseClick(panel.use_view, Qt.MouseButton.LeftButton)
    t = window.session.targets[1]
    assert (t.azimuth, t.elevation, t.distance) == pytest.approx((-155.0, 25.0, 4.0))
    gen = window.session.generation
    qtbot.waitUntil(lambda: window.session.runner.generation == gen, timeout=30000)
    qtbot.wait(300)  # the new problem's frame arrives; the view stays where the user put it
    assert vp.frame_camera(t.aspect) == pytest.approx((t.azimuth, t.elevation, t.distance, t.fov))
    w, h = vp.width(), vp.height()
    hx, hy = frame_rect(w / h, t.aspect)
    # What the GL view shows inside the photo frame is what the target's camera sees.
    view, proj = vp.matrices(w, h)
    gl = vp.render_offscreen(view, proj, (h, w), mode="silhouette")[..., 0] > 127
    r0, r1 = round((1 - hy) / 2 * h), round((1 + hy) / 2 * h)
    c0, c1 = round((1 - hx) / 2 * w), round((1 + hx) / 2 * w)
    crop = gl[r0:r1, c0:c1]
    mesh = rc.Mesh(torch.from_numpy(vp._vertices), torch.from_numpy(vp._faces))
    cam = rc.Camera.orbit(t.azimuth, t.elevation, t.distance, fov=t.fov,
                          aspect=crop.shape[1] / crop.shape[0])
    out = rc.Renderer(crop.shape, shading="vertex_color").render(mesh, cam)
    ours = out.frags.mask[0].numpy()
    iou = (ours & crop).sum() / (ours | crop).sum()
    assert crop.mean() > 0.02 and iou > 0.97
    # "View from target" is the inverse: the viewport goes back to the same camera.
    vp.azimuth = 0.0
    qtbot.mouseClick(panel.look, Qt.MouseButton.LeftButton)
    assert vp.frame_camera(t.aspect) == pytest.approx((t.azimuth, t.elevation, t.distance, t.fov))


def test_use_this_view_with_a_wide_photo_narrows_the_fov(window, qtbot, tmp_path):
    panel, vp = _show_panel(window, qtbot), window.viewport
    window.session.set_targets([])
    img, _ = _photo(64)
    wide = np.concatenate([img, img, img], axis=1)  # 3:1, wider than the viewport
    files.write_png(tmp_path / "wide.png", wide)
    window.session.add_targets([tmp_path / "wide.png"], [(0.0, 0.0, 3.0, 45.0)])
    panel.list.setCurrentRow(0)
    qtbot.mouseClick(panel.use_view, Qt.MouseButton.LeftButton)
    _, hy = frame_rect(vp.width() / vp.height(), 3.0)
    assert hy < 1
    fov = window.session.targets[0].fov
    assert np.tan(np.radians(fov) / 2) == pytest.approx(hy * np.tan(np.radians(vp.fov) / 2))


def test_mask_editor_threshold_and_brush_change_the_mask(window, qtbot, tmp_path):
    img, disc = _photo(64)
    files.write_png(tmp_path / "photo.png", img)
    window.session.add_targets([tmp_path / "photo.png"], [(0.0, 0.0, 3.0, 45.0)])
    i = len(window.session.targets) - 1
    auto = window.session.targets[i].mask
    assert (auto > 0.5).sum() / ((auto > 0.5) | disc).sum() > 0.95  # the automatic mask
    panel = _show_panel(window, qtbot)
    panel.list.setCurrentRow(i)
    dlg = panel.edit_mask_dialog()
    qtbot.waitExposed(dlg)
    np.testing.assert_array_equal(dlg.mask(), auto)  # opens on the automatic score
    dlg.threshold.setValue(99)
    strict = dlg.mask()
    assert strict.sum() < auto.sum()
    dlg.threshold.setValue(50)
    # Paint foreground in a background corner, erase in the disc's centre.
    canvas = dlg.canvas
    r = canvas.image_rect()
    scale = r.width() / 64

    def at(row, col):
        return QPoint(round(r.left() + (col + 0.5) * scale), round(r.top() + (row + 0.5) * scale))

    assert dlg.mask()[6, 6] == 0
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=at(6, 6))
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=at(6, 6))
    assert dlg.mask()[6, 6] == 1
    assert dlg.mask()[32, 35] == 1
    qtbot.mousePress(canvas, Qt.MouseButton.RightButton, pos=at(32, 35))  # the other brush
    qtbot.mouseRelease(canvas, Qt.MouseButton.RightButton, pos=at(32, 35))
    assert dlg.mask()[32, 35] == 0
    edited = dlg.mask()
    dlg.accept()
    np.testing.assert_array_equal(window.session.targets[i].mask, edited)


def test_an_automatic_mask_that_misses_is_reported_in_the_status_bar(window, tmp_path):
    files.write_png(tmp_path / "blank.png", np.full((64, 64, 3), 0.5, np.float32))
    assert window.add_targets([tmp_path / "blank.png"], [(0.0, 0.0, 3.0, 45.0)])
    message = window.statusBar().currentMessage()
    assert message.startswith("blank.png: the automatic mask found almost no object")
    assert window.last_notice == message and window.last_error is None


def test_lens_controls_share_a_camera_and_lock_the_fov(window, qtbot):
    """Issue 19.6: the Targets tab says which photos share a camera and locks a fov."""
    panel = _show_panel(window, qtbot)
    s = window.session
    assert all(t.camera_group is None for t in s.targets)
    panel.list.setCurrentRow(2)
    panel.group.setValue(1)  # no camera is shared yet: a new one
    first = s.targets[2].camera_group
    assert first is not None and not s.targets[2].lock_fov
    panel.list.setCurrentRow(3)
    assert panel.group.value() == 0 and panel.group.text() == "own"
    panel.group.setValue(1)
    panel.lock_fov.setChecked(True)
    assert s.targets[3].camera_group == first and s.targets[3].lock_fov
    panel.list.setCurrentRow(2)
    assert panel.group.value() == 1 and not panel.lock_fov.isChecked()
    assert "camera" in panel.list.item(3).toolTip() and "fov locked" in panel.list.item(3).toolTip()
