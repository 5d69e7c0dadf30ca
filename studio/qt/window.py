"""The main window: viewport left, images and loss curves right, controls docked; menus.

The window is a view of a :class:`~studio.model.session.Session`; the optimisation runs in a
:class:`~studio.qt.worker.WorkerThread`. Every failure the user can cause (bad files, bad settings)
ends in :meth:`MainWindow.show_error` and leaves the session unchanged.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PyQt6.QtCore import QSettings, Qt, QTimer
from PyQt6.QtGui import QAction, QDragEnterEvent, QDropEvent, QKeySequence, QOpenGLContext
from PyQt6.QtWidgets import (
    QApplication,
    QDialog,
    QDialogButtonBox,
    QDockWidget,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QSplitter,
)

import render_core as rc

from ..model import files
from ..model.session import Session
from . import compare_runs, session_actions, stylize_dialogs, targets
from .controls import ControlPanel
from .export_task import ExportTask
from .panels import ImagePanels, LossPlot
from .style_menu import StyleMenu
from .viewport import Viewport
from .worker import WorkerThread

MAX_RECENT = 8
# Frames per second from the fit while it runs: smooth enough to watch, and it leaves the GUI
# thread idle most of the time even on a busy two-core machine.
FRAME_RATE = 15.0
MESH_FILTER = "Meshes (*.obj *.ply *.glb *.gltf *.stl *.off)"
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg)"


class TargetCameraDialog(QDialog):
    """Asks for the orbit camera of new target images (and the azimuth step between them)."""

    def __init__(self, count: int, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Target camera")
        form = QFormLayout(self)
        self.az = self._spin(-360, 360, 0.0)
        self.el = self._spin(-89.9, 89.9, 0.0)
        self.dist = self._spin(0.01, 1000, 3.0)
        self.fov = self._spin(1, 170, 60.0)
        self.step = self._spin(-360, 360, 360.0 / max(count, 1) if count > 1 else 0.0)
        form.addRow(QLabel(f"{count} image(s). Orbit camera (degrees):"))
        form.addRow("Azimuth", self.az)
        form.addRow("Elevation", self.el)
        form.addRow("Distance", self.dist)
        form.addRow("Field of view", self.fov)
        if count > 1:
            form.addRow("Azimuth step per image", self.step)
        bb = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                              | QDialogButtonBox.StandardButton.Cancel)
        bb.accepted.connect(self.accept)
        bb.rejected.connect(self.reject)
        form.addRow(bb)

    @staticmethod
    def _spin(lo: float, hi: float, value: float) -> QDoubleSpinBox:
        s = QDoubleSpinBox()
        s.setRange(lo, hi)
        s.setDecimals(2)
        s.setValue(value)
        return s

    def views(self, count: int) -> list[tuple[float, float, float, float]]:
        return [(self.az.value() + i * self.step.value(), self.el.value(), self.dist.value(),
                 self.fov.value()) for i in range(count)]


class MainWindow(QMainWindow):
    """dibr-studio's window. ``MainWindow(session)``; call :meth:`close` to stop the worker."""

    def __init__(self, session: Session | None = None, settings: QSettings | None = None):
        super().__init__()
        self.setWindowTitle("dibr-studio")
        self.session = session or Session()
        self.settings = settings or QSettings("dibr-studio", "dibr-studio")
        self.last_error: str | None = None
        self.last_notice: str | None = None  # the latest notice (divergence, a doubtful mask)
        self.view_index = 0
        self._faces: np.ndarray | None = None
        self._rate_steps: list[tuple[float, int]] = []
        self.step_count = 0

        self.viewport = Viewport()
        self.images = ImagePanels()
        self.losses = LossPlot()
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.images)
        right.addWidget(self.losses)
        right.setSizes([250, 450])
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.viewport)
        split.addWidget(right)
        split.setSizes([480, 520])
        split.setChildrenCollapsible(False)
        self.setCentralWidget(split)

        self.controls = ControlPanel(self.session)
        scroll = QScrollArea()
        scroll.setWidget(self.controls)
        scroll.setWidgetResizable(True)
        dock = QDockWidget("Controls", self)
        dock.setObjectName("controls")
        dock.setWidget(scroll)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        dock.setMinimumWidth(270)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)

        self.status_steps = QLabel("step 0")
        self.status_rate = QLabel("")
        self.status_state = QLabel("paused")
        self.status_mesh = QLabel("")  # the fitted mesh's count, as the last frame drew it
        for w in (self.status_mesh, self.status_state, self.status_steps, self.status_rate):
            self.statusBar().addPermanentWidget(w)

        self.worker_thread = WorkerThread(self.session, max_fps=FRAME_RATE)
        self.worker = self.worker_thread.worker
        self.worker.steps.connect(self._on_steps)
        self.worker.frame.connect(self._on_frame)
        self.worker.failed.connect(self.show_error)
        self.worker.state_changed.connect(self._on_state)
        self.controls.run_clicked.connect(self.run)
        self.controls.pause_clicked.connect(self.pause)
        self.controls.step_clicked.connect(lambda: self.worker.step(1))
        self.controls.reset_clicked.connect(self.reset)
        self.controls.display_mode_changed.connect(self.viewport.set_mode)
        self.controls.error.connect(self.show_error)
        self.controls.notice.connect(self.show_notice)
        self.images.view_combo.currentIndexChanged.connect(self._select_view)
        self.controls.set_running(False)
        self.session.subscribe(self._on_session)
        self.export_task = ExportTask(self)  # File ▸ Export mesh runs in a child process
        self.export_task.finished.connect(self._on_exported)
        self.export_task.failed.connect(self._on_exported)
        self.style_menu = StyleMenu(self)  # analytic / RenderNet styles, RenderNet camera fit
        self._build_menus()
        self.session_actions = session_actions.install(self)  # sessions, undo, autosave
        self.targets_panel = targets.install(self)  # targets: cameras, backdrop, masks
        self.compare_runs = compare_runs.install(self)  # View ▸ Keep curve for comparison
        self.setAcceptDrops(True)
        self.resize(1280, 800)
        if self.session.ready:
            QTimer.singleShot(0, lambda: self._on_session("mesh"))

    # -- menus -------------------------------------------------------------------------------

    def _action(self, menu, text: str, slot, shortcut=None) -> QAction:
        a = QAction(text, self)
        if shortcut is not None:
            a.setShortcut(QKeySequence(shortcut))
        a.triggered.connect(lambda checked=False: slot())
        menu.addAction(a)
        return a

    def _build_menus(self) -> None:
        m = self.menuBar().addMenu("&File")
        self._action(m, "&Open mesh…", self.open_mesh_dialog, QKeySequence.StandardKey.Open)
        self._action(m, "New &sphere…", lambda: self.new_primitive("sphere"))
        self._action(m, "New &cube…", lambda: self.new_primitive("cube"))
        self._action(m, "Start from visual &hull", self.start_from_hull)
        self._action(m, "&Add target image(s)…", self.add_targets_dialog, "Ctrl+T")
        from .photo_folder import import_cameras, open_photo_folder  # photos as targets

        self._action(m, "Open &photo folder…", lambda: open_photo_folder(self))
        self._action(m, "&Import cameras…", lambda: import_cameras(self))
        self._action(m, "Load &demo scene", self.load_demo)
        demo = m.addMenu("Open demo &mesh")
        for p in sorted((Path(__file__).resolve().parents[1] / "assets" / "meshes").glob("*.ply")):
            self._action(demo, p.stem.replace("_", " "), lambda p=p: self.open_mesh(p))
        self.recent_menu = m.addMenu("&Recent files")
        m.addSeparator()
        self.export_actions = [
            self._action(m, "&Export mesh…", self.export_mesh_dialog, "Ctrl+E"),
            self._action(m, "Export &render PNG…", lambda: self.export_png_dialog(sheet=False)),
            self._action(m, "Export contact s&heet PNG…",
                         lambda: self.export_png_dialog(sheet=True))]
        m.addSeparator()
        self._action(m, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        m = self.menuBar().addMenu("&Optimise")
        self._action(m, "&Run", self.run, "F5")
        self._action(m, "&Pause", self.pause, "F7")
        self._action(m, "&Step", lambda: self.worker.step(1), "F6")
        self._action(m, "R&eset", self.reset, "Ctrl+R")
        m.addSeparator()
        self.style_menu.add_fit_action(m)
        stylize_dialogs.install(self, m)  # Style transfer…, DeepDream… (NMR's applications)
        m = self.menuBar().addMenu("&View")
        self._action(m, "&Frame mesh", self.viewport.frame_mesh, "F")
        for mode in ("shaded", "wireframe", "colors", "texture"):
            self._action(m, f"{mode.capitalize()}", lambda mo=mode: self.controls.display
                         .setCurrentText(mo))
        self.style_menu.build(self.menuBar())
        self._refresh_recent()

    # -- errors ------------------------------------------------------------------------------

    def show_error(self, message: str) -> None:
        """Tell the user what went wrong (also kept in ``last_error`` for tests and logs)."""
        self.last_error = message
        self.statusBar().showMessage(message, 10000)
        QMessageBox.critical(self, "dibr-studio", message)

    def show_notice(self, message: str) -> None:
        """A line in the status bar (kept in ``last_notice``)."""
        self.last_notice = message
        self.statusBar().showMessage(message, 15000)

    def _show_count(self, vertices: int, faces: int) -> None:
        self.status_mesh.setText(f"{vertices:,} vertices · {faces:,} faces")

    def _guard(self, fn, *args) -> bool:
        try:
            fn(*args)
            return True
        except (files.LoadError, ValueError, RuntimeError, OSError) as e:
            self.show_error(str(e))
            return False

    # -- loading -----------------------------------------------------------------------------

    def open_mesh(self, path: str | Path) -> bool:
        """Load a mesh file as the new start; errors go to a dialog."""
        ok = self._guard(self.session.load_mesh, path)
        if ok:
            self._add_recent(path)
        return ok

    def add_targets(self, paths: list[str | Path],
                    views: list[tuple[float, float, float, float]]) -> bool:
        """Add target images with their orbit cameras; all or nothing."""
        ok = self._guard(self.session.add_targets, list(paths), list(views))
        if ok:
            for p in paths:
                self._add_recent(p)
            if self.session.warnings:  # e.g. an automatic mask that missed the object
                self.last_notice = " · ".join(self.session.warnings)
                self.statusBar().showMessage(self.last_notice, 15000)
        return ok

    def open_mesh_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open mesh", "", MESH_FILTER)
        if path:
            self.open_mesh(path)

    def add_targets_dialog(self, paths: list[str] | None = None) -> None:
        if paths is None:
            paths, _ = QFileDialog.getOpenFileNames(self, "Add target images", "", IMAGE_FILTER)
        if not paths:
            return
        dlg = TargetCameraDialog(len(paths), self)
        if dlg.exec() == QDialog.DialogCode.Accepted:
            self.add_targets(paths, dlg.views(len(paths)))

    def new_primitive(self, kind: str) -> None:
        n, ok = QInputDialog.getInt(self, f"New {kind}", "Subdivisions:", 3, 0, 6)
        if ok:
            self._guard(self.session.new_primitive, kind, n)

    def load_demo(self) -> None:
        self._guard(self.session.load_demo)

    def start_from_hull(self) -> bool:
        """Start the fit from the visual hull of the targets' masks (a second or a few)."""
        if not self.session.targets:
            self.show_error("add target images first: the hull is carved from their masks")
            return False
        self.statusBar().showMessage("Carving the visual hull of the targets' masks…")
        QApplication.setOverrideCursor(Qt.CursorShape.BusyCursor)
        try:
            ok = self._guard(self.session.start_from_hull)
        finally:
            QApplication.restoreOverrideCursor()
        if ok:
            self.statusBar().showMessage(f"Started from the {self.session.mesh_name}", 10000)
        return ok

    def dragEnterEvent(self, e: QDragEnterEvent) -> None:  # noqa: N802 (Qt API)
        if e.mimeData().hasUrls():
            e.acceptProposedAction()

    def dropEvent(self, e: QDropEvent) -> None:  # noqa: N802
        self.open_paths([u.toLocalFile() for u in e.mimeData().urls() if u.isLocalFile()])

    def open_paths(self, paths: list[str]) -> None:
        """Meshes become the start, images become targets (asking for their camera)."""
        meshes = [p for p in paths if Path(p).suffix.lower() in files.MESH_SUFFIXES]
        images = [p for p in paths if Path(p).suffix.lower() in files.IMAGE_SUFFIXES]
        other = [p for p in paths if p not in meshes and p not in images]
        if other:
            self.show_error(f"{Path(other[0]).name}: not a mesh or image file this studio reads")
        if meshes:
            self.open_mesh(meshes[-1])
        if images:
            self.add_targets_dialog(images)

    # -- recent files ------------------------------------------------------------------------

    def recent_files(self) -> list[str]:
        value = self.settings.value("recent_files", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _add_recent(self, path) -> None:
        p = str(Path(path).resolve())
        items = [p] + [r for r in self.recent_files() if r != p]
        self.settings.setValue("recent_files", items[:MAX_RECENT])
        self._refresh_recent()

    def _refresh_recent(self) -> None:
        self.recent_menu.clear()
        for p in self.recent_files():
            a = self.recent_menu.addAction(Path(p).name)
            a.setToolTip(p)
            a.triggered.connect(lambda checked=False, p=p: self.open_paths([p]))
        self.recent_menu.setEnabled(bool(self.recent_files()))

    # -- export ------------------------------------------------------------------------------

    def export_mesh_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export mesh", "mesh.obj",
            "OBJ + MTL + texture (*.obj);;PLY with vertex colours (*.ply);;glTF binary (*.glb)")
        if path:
            self.export_mesh(path)

    def export_mesh(self, path: str | Path) -> bool:
        """Start exporting the current mesh (baking colours can take seconds): the window
        stays live, the export actions are off until ``_on_exported`` reports the outcome."""
        mesh = self.session.current_mesh()  # a copy: the fit may go on meanwhile
        if mesh is None:
            self.show_error("there is no mesh to export")
            return False
        if not self._guard(self.export_task.start, mesh, path):
            return False
        for a in self.export_actions:
            a.setEnabled(False)
        QApplication.setOverrideCursor(Qt.CursorShape.BusyCursor)
        self.statusBar().showMessage(f"Exporting {Path(path).name}…")
        return True

    def _on_exported(self, outcome: list | str) -> None:
        QApplication.restoreOverrideCursor()
        for a in self.export_actions:
            a.setEnabled(True)
        if isinstance(outcome, str):
            self.show_error(outcome)
        else:
            self.statusBar().showMessage(
                "Exported " + ", ".join(p.name for p in outcome), 10000)

    def export_png_dialog(self, sheet: bool) -> None:
        name = "contact_sheet.png" if sheet else "render.png"
        path, _ = QFileDialog.getSaveFileName(self, "Export PNG", name, "PNG (*.png)")
        if not path:
            return
        if sheet:
            self._guard(self.session.export_contact_sheet, path)
        else:
            self._guard(self.session.export_render, path, self.view_index)

    # -- running -----------------------------------------------------------------------------

    def run(self) -> None:
        if not self.session.ready:
            self.show_error("Load a mesh and at least one target image first.")
            return
        self.worker.run()

    def pause(self) -> None:
        self.worker.pause()

    def reset(self) -> None:
        """Pause, then go back to the starting mesh and parameters."""
        self.worker.pause()
        self.session.reset()

    def _on_state(self, state: str) -> None:
        self.status_state.setText(state)
        self.losses.flush()
        self.controls.set_running(state == "running")
        if state != "running":
            self.status_rate.setText("")

    def _on_steps(self, generation: int, batch: list[dict]) -> None:
        if generation != self.session.generation:
            return  # steps of a fit that was reset meanwhile
        self.losses.append(batch)
        self.step_count = int(batch[-1]["step"])
        self.status_steps.setText(f"step {self.step_count}")
        notice = self.controls.note_divergence(batch)
        if notice:
            self.last_notice = notice
            self.statusBar().showMessage(notice, 15000)
        now = time.monotonic()
        self._rate_steps.append((now, self.step_count))
        self._rate_steps = [(t, s) for t, s in self._rate_steps if now - t < 3.0]
        if len(self._rate_steps) > 1:
            (t0, s0), (t1, s1) = self._rate_steps[0], self._rate_steps[-1]
            if t1 > t0:
                self.status_rate.setText(f"{(s1 - s0) / (t1 - t0):.1f} steps/s")

    def _on_frame(self, snap: dict) -> None:
        if snap["generation"] != self.session.generation:
            return
        mesh = snap["mesh"]
        v, faces = mesh["vertices"], mesh["faces"]
        colors, texture = mesh["vertex_colors"], mesh["texture"]
        self._show_count(len(v), len(faces))
        # A new problem (start mesh, targets, session: ``_on_session`` forgets the faces) is
        # framed; a topology change within the fit (a remeshing pass, a revert) keeps the
        # user's view, or a remeshing fit would take the orbit back every few steps.
        new_problem = self._faces is None
        new_topology = new_problem or self._faces.shape != faces.shape or \
            not np.array_equal(self._faces, faces) or len(v) != self.viewport.vertex_count
        if new_topology or (mesh["uvs"] is not None) != self.viewport.has_uvs:
            # A texture group switched on mid-run brings UVs: same faces, new corners.
            self._faces = faces.copy()
            self.viewport.set_mesh(v, faces, colors, mesh["uvs"], mesh["face_uvs"], texture)
            self.viewport.set_cameras(snap["cameras"], snap["view"], snap.get("projections"))
            if new_problem:
                self.viewport.frame_mesh(include_cameras=True)
        else:
            self.viewport.update_mesh(v, colors, texture)
            self.viewport.set_cameras(snap["cameras"], snap["view"], snap.get("projections"))
        lit = rc.light_kind(self.session.config.shading) == "directional"
        self.viewport.set_light(snap["light"] if lit else None)
        self.style_menu.show_frame(snap)  # the analytic render, or a RenderNet style of it

    def _select_view(self, index: int) -> None:
        self.view_index = max(index, 0)
        self.worker.request_frame(self.view_index)

    def _on_session(self, event: str) -> None:
        if event in ("mesh", "reset"):
            self.losses.clear()
        elif event == "targets":  # an edit of the targets continues the fit (and its curve)
            self.losses.set_history(self.session.history)
        if event in ("mesh", "targets", "reset"):
            self.step_count = self.session.steps
            self.status_steps.setText(f"step {self.step_count}")
            if event != "reset":
                self._faces = None
        if event in ("mesh", "targets"):
            names = [t.name or f"view {i + 1}" for i, t in enumerate(self.session.targets)]
            self.images.set_view_names(names, self.view_index)
            self.view_index = max(self.images.view_combo.currentIndex(), 0)
            if not self.session.targets:
                self.images.clear()
        if self.session.ready:
            self.worker.request_frame(self.view_index)
        elif event == "mesh" and self.session.initial_mesh is not None:
            m = self.session.initial_mesh
            self._show_count(m.num_vertices, m.num_faces)
            self._faces = m.faces.numpy().copy()
            self.viewport.set_mesh(m.vertices.numpy(), self._faces,
                                   None if m.vertex_colors is None else m.vertex_colors.numpy())
            self.viewport.frame_mesh()
        title = f"dibr-studio — {self.session.mesh_name}" if self.session.mesh_name else \
            "dibr-studio"
        self.setWindowTitle(title)

    def closeEvent(self, e) -> None:  # noqa: N802
        self.export_task.wait()  # let a running export finish its files
        self.style_menu.shutdown()
        self.worker_thread.shutdown()
        # A GL context left current on this window's surface outlives it in the GL driver;
        # the next context created (another window) then asks X about the dead window and the
        # X error ends the process. Release it while the window still exists.
        ctx = QOpenGLContext.currentContext()
        if ctx is not None:
            ctx.doneCurrent()
        super().closeEvent(e)
