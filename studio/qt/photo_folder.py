"""File ▸ Open photo folder… and File ▸ Import cameras…: a folder of photos becomes the targets.

The work (:func:`studio.model.photo_folder.load_photo_folder`: structure from motion or an
imported COLMAP model / transforms.json, masks, undistortion, normalisation) runs in a
background thread behind a cancellable progress dialog; the window stays responsive. When it
ends the photos replace the targets (each with its registered pinhole camera), photos without
a camera are named in the status bar, and the fit starts from the visual hull of the masks.
"""

from __future__ import annotations

import threading
from pathlib import Path

from PyQt6.QtCore import QObject, Qt, pyqtSignal
from PyQt6.QtWidgets import QFileDialog, QMessageBox, QProgressDialog

from studio.model.photo_folder import STAGES, load_photo_folder
from studio.model.poses import Cancelled

_LABELS = {"cameras": "Reading the cameras", "features": "Finding features",
           "matching": "Matching photos", "mapping": "Registering cameras",
           "masks": "Masking the photos", "undistort": "Undistorting",
           "normalise": "Normalising the scene"}


class PhotoFolderTask(QObject):
    """One load of a photo folder; ``done`` carries the PhotoFolder or the exception."""

    progressed = pyqtSignal(str, int, int)
    done = pyqtSignal(object)

    def __init__(self, window, folder: str | Path, cameras: str | Path = "auto",
                 masks: str | Path | None = None) -> None:
        super().__init__(window)
        self.window = window
        self.folder, self.cameras, self.masks = Path(folder), cameras, masks
        self.cancelled = False
        self.result = None
        self.dialog = QProgressDialog("Reading the photos…", "Cancel", 0, 0, window)
        self.dialog.setWindowTitle("Open photo folder")
        self.dialog.setWindowModality(Qt.WindowModality.WindowModal)
        self.dialog.setMinimumDuration(0)
        self.dialog.canceled.connect(self.cancel)
        self.progressed.connect(self._show_progress, Qt.ConnectionType.QueuedConnection)
        self.done.connect(self._finish, Qt.ConnectionType.QueuedConnection)
        self.thread = threading.Thread(target=self._run, name="photo-folder", daemon=True)

    def start(self) -> None:
        self.dialog.show()
        self.thread.start()

    def cancel(self) -> None:
        self.cancelled = True
        self.dialog.setLabelText("Cancelling…")

    def _run(self) -> None:
        try:
            result = load_photo_folder(self.folder, self.cameras, masks=self.masks,
                                       progress=lambda s, d, t: self.progressed.emit(s, d, t),
                                       cancel=lambda: self.cancelled)
        except Exception as e:  # reported in the window, never lost in the thread
            result = e
        self.done.emit(result)

    def _show_progress(self, stage: str, done: int, total: int) -> None:
        if self.cancelled:
            return
        step = STAGES.index(stage) + 1 if stage in STAGES else 1
        self.dialog.setLabelText(f"{_LABELS.get(stage, stage)}… ({step} of {len(STAGES)})")
        self.dialog.setMaximum(max(total, 1))
        self.dialog.setValue(min(done, max(total, 1)))

    def _finish(self, result) -> None:
        self.result = result
        self.dialog.canceled.disconnect(self.cancel)
        self.dialog.close()
        w = self.window
        if isinstance(result, Cancelled):
            w.statusBar().showMessage("Opening the photo folder was cancelled", 10000)
            return
        if isinstance(result, Exception):
            w.show_error(str(result))
            return
        w.session.set_targets(result.targets)
        notes = [f"{len(result.targets)} photos registered"]
        if result.unregistered:
            names = ", ".join(Path(p).name for p in result.unregistered)
            notes.append(f"no camera for {names}")
        notes += result.warnings
        w.last_notice = " · ".join(notes)
        w.statusBar().showMessage(w.last_notice, 15000)
        if w.start_from_hull():
            w.viewport.frame_mesh(include_cameras=True)


def open_photo_folder(window, folder: str | Path | None = None, cameras: str | Path = "auto",
                      masks: str | Path | None = None) -> PhotoFolderTask | None:
    """Ask for a folder (when ``folder`` is None) and start loading it; returns the task."""
    if folder is None:
        folder = QFileDialog.getExistingDirectory(window, "Open photo folder")
        if not folder:
            return None
    task = PhotoFolderTask(window, folder, cameras, masks)
    window.photo_task = task
    task.start()
    return task


def import_cameras(window) -> PhotoFolderTask | None:
    """Ask for a COLMAP model folder or a transforms.json, then the photos' folder."""
    box = QMessageBox(QMessageBox.Icon.Question, "Import cameras",
                      "Import a COLMAP sparse model (a folder) or a transforms.json file?",
                      parent=window)
    colmap = box.addButton("COLMAP folder…", QMessageBox.ButtonRole.AcceptRole)
    box.addButton("transforms.json…", QMessageBox.ButtonRole.AcceptRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.exec()
    if box.clickedButton() not in box.buttons()[:2]:
        return None
    if box.clickedButton() is colmap:
        cameras = QFileDialog.getExistingDirectory(window, "COLMAP model folder")
    else:
        cameras, _ = QFileDialog.getOpenFileName(window, "transforms.json", "",
                                                 "transforms.json (*.json)")
    if not cameras:
        return None
    default = str(Path(cameras).parent) if Path(cameras).is_file() else cameras
    folder = QFileDialog.getExistingDirectory(window, "The photos' folder", default)
    if not folder:
        return None
    return open_photo_folder(window, folder, cameras)
