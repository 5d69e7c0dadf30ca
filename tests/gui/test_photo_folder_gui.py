"""File ▸ Open photo folder… in a real window: 12 photos of the synthetic set
(tests/_photoset.py) with their cameras (transforms.json) and masks become registered pinhole
targets and the fit starts from their visual hull; automatic poses are cancelled from the
progress dialog and leave the session as it was. Writes docs/screenshots/photo_folder.png."""

from __future__ import annotations

from pathlib import Path

from _photoset import cached_photoset
from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QPushButton

from render_core.camera_io import write_transforms
from studio.model.poses import Cancelled
from studio.qt.photo_folder import open_photo_folder

SHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "photo_folder.png"
TRAIN = range(0, 24, 2)


def test_open_photo_folder_registers_the_photos_and_starts_from_the_hull(window, qtbot,
                                                                         tmp_path,
                                                                         monkeypatch):
    errors = []
    monkeypatch.setattr("studio.qt.window.QMessageBox.critical",
                        lambda *a, **k: errors.append(a[2]))
    ps = cached_photoset()
    ps.save_photos(tmp_path / "photos", tmp_path / "masks", which=TRAIN)
    write_transforms(tmp_path / "photos" / "transforms.json", [ps.records[k] for k in TRAIN])
    s = window.session
    task = open_photo_folder(window, tmp_path / "photos", tmp_path / "photos" /
                             "transforms.json", tmp_path / "masks")
    assert task.dialog.isVisible()
    qtbot.waitUntil(lambda: task.result is not None, timeout=180000)
    assert not isinstance(task.result, Exception) and not errors, (task.result, errors)
    assert len(s.targets) == len(TRAIN) and not any(t.is_orbit for t in s.targets)
    assert [t.name for t in s.targets] == [ps.records[k].image for k in TRAIN]
    assert s.mesh_name.startswith("visual hull")
    assert window.last_notice.startswith(f"{len(TRAIN)} photos registered")
    assert "registered pinhole" in window.targets_panel.list.item(0).text()
    gen = s.generation
    qtbot.waitUntil(lambda: s.runner.generation == gen, timeout=60000)
    qtbot.waitUntil(lambda: len(window.viewport._frusta) == len(TRAIN), timeout=60000)
    qtbot.wait(500)
    SHOT.parent.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(SHOT))
    # Automatic poses, cancelled from the dialog: nothing changes.
    before = list(s.targets)
    task = open_photo_folder(window, tmp_path / "photos")
    qtbot.mouseClick(task.dialog.findChild(QPushButton), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: task.result is not None, timeout=180000)
    assert isinstance(task.result, Cancelled)
    assert s.targets == before and "cancelled" in window.statusBar().currentMessage()
