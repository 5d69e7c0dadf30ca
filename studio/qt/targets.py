"""The Targets dock: every target with its thumbnail, name and camera (orbit spin boxes, or a
registered pinhole's centre, angles and intrinsics: :mod:`.target_pinhole`), and the tools to
align a photo's camera (viewport backdrop, "Use this view", refinement) and to fix its mask.

Selecting a target selects it in the image panels and, while the dock is visible, shows it
as the viewport's backdrop (the dock is a tab beside the controls: switching to the controls
hides the photo again).
All edits go through the session (``set_target_camera``, ``set_target_mask``,
``remove_target``, ``adopt_fitted_cameras``), so they validate, restart the fit and reach
every view; failures end in the window's error dialog.
"""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QSize, Qt, pyqtSignal
from PyQt6.QtGui import QIcon, QImage, QPixmap
from PyQt6.QtWidgets import (
    QCheckBox,
    QDockWidget,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..model import files
from ..model.session import Session
from .mask_editor import MaskEditorDialog
from .target_pinhole import PinholeEditor, edited_camera
from .viewport import Pinhole, Viewport

THUMB = 56
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg)"


def qimage(rgb: np.ndarray) -> QImage:
    """[H,W,3] float sRGB in [0,1] (or uint8) → a QImage that owns its pixels."""
    arr = rgb if rgb.dtype == np.uint8 else files.to_uint8(rgb)
    arr = np.ascontiguousarray(arr[..., :3])
    h, w = arr.shape[:2]
    return QImage(arr.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class TargetsPanel(QWidget):
    """The list of targets and the camera/mask tools of the selected one."""

    selected = pyqtSignal(int)  # the user picked a target (index)
    error = pyqtSignal(str)

    def __init__(self, session: Session, viewport: Viewport, parent=None):
        super().__init__(parent)
        self.session = session
        self.viewport = viewport
        self.list = QListWidget()
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.setMinimumHeight(2 * THUMB + 12)
        self.list.currentRowChanged.connect(self._on_row)

        self.cam = {k: QDoubleSpinBox() for k in ("azimuth", "elevation", "distance", "fov")}
        ranges = {"azimuth": (-360, 360), "elevation": (-89.9, 89.9), "distance": (0.01, 1000),
                  "fov": (1, 170)}
        cams = QFormLayout()
        cams.setContentsMargins(0, 0, 0, 0)
        self.orbit_box = QWidget()  # an orbit target's camera; a registered one's is below
        orbit = QFormLayout(self.orbit_box)
        orbit.setContentsMargins(0, 0, 0, 0)
        for k, spin in self.cam.items():
            spin.setRange(*ranges[k])
            spin.setDecimals(2)
            spin.setKeyboardTracking(False)
            spin.valueChanged.connect(self._apply_camera)
            orbit.addRow({"fov": "Field of view"}.get(k, k.capitalize()), spin)
        self._viewed = None  # (index, image size) of the target "View from target" showed
        self.pinhole = PinholeEditor()
        self.pinhole.edited.connect(self._apply_pinhole)
        self.pinhole.hide()
        cams.addRow(self.orbit_box)
        cams.addRow(self.pinhole)

        self.use_view = QPushButton("Use this view")
        self.use_view.setToolTip("Set the selected target's camera to the viewport's camera "
                                 "(the photo frame's view; a registered target keeps a "
                                 "general camera)")
        self.use_view.clicked.connect(self.use_this_view)
        self.look = QPushButton("View from target")
        self.look.setToolTip("Show the viewport from the selected target's camera (a "
                             "registered one with its roll and principal point)")
        self.look.clicked.connect(self.view_from_target)
        self.edit_mask = QPushButton("Edit mask…")
        self.edit_mask.clicked.connect(self.edit_mask_dialog)
        self.load_mask = QPushButton("Load mask…")
        self.load_mask.clicked.connect(self.load_mask_dialog)
        self.remove = QPushButton("Remove")
        self.remove.clicked.connect(self.remove_selected)
        self.adopt = QPushButton("Adopt refined cameras")
        self.adopt.setToolTip("Make the cameras refined by the fit (camera group) the targets' "
                              "own; the fit restarts from them")
        self.adopt.clicked.connect(self.adopt_cameras)
        self.only_selected = QCheckBox("Refine only this target's camera")
        self.only_selected.toggled.connect(self._apply_camera_views)
        # The lens: photos of one camera share one fov in refinement; a fov can be locked.
        self.group = QSpinBox()
        self.group.setRange(0, 99)
        self.group.setSpecialValueText("own")
        self.group.setPrefix("shared ")
        self.group.setToolTip("Targets with the same number were taken with one camera and "
                              "share one field of view when cameras are refined; “own”: this "
                              "target's fov is refined alone")
        self.group.setKeyboardTracking(False)
        self.group.valueChanged.connect(self._apply_lens)
        self.lock_fov = QCheckBox("Lock field of view")
        self.lock_fov.setToolTip("Camera refinement keeps this target's field of view as typed")
        self.lock_fov.toggled.connect(self._apply_lens)
        cams.addRow("Lens", self.group)
        cams.addRow("", self.lock_fov)

        self.backdrop = QCheckBox("Photo in viewport")
        self.backdrop.setChecked(True)
        self.backdrop.toggled.connect(self._update_backdrop)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(round(viewport.backdrop_opacity * 100))
        self.opacity.setToolTip("Opacity of the photo over the mesh")
        self.opacity.valueChanged.connect(lambda v: self.viewport.set_backdrop_opacity(v / 100))

        buttons = QGridLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        for i, b in enumerate((self.use_view, self.look, self.edit_mask, self.load_mask,
                               self.remove, self.adopt)):
            buttons.addWidget(b, i // 2, i % 2)
        back = QHBoxLayout()
        back.addWidget(self.backdrop)
        back.addWidget(self.opacity, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.list, 1)
        self.camera_label = QLabel("Camera (degrees)")
        lay.addWidget(self.camera_label)
        lay.addLayout(cams)
        lay.addLayout(back)
        lay.addLayout(buttons)
        lay.addWidget(self.only_selected)
        self._filling = False
        self.active = True  # the dock is visible: the backdrop may show
        self.refresh()

    # -- state -------------------------------------------------------------------------------

    @property
    def current(self) -> int:
        """The selected target's index, or -1."""
        return self.list.currentRow()

    def refresh(self) -> None:
        """Rebuild the list from the session, keeping the selection where possible."""
        row = max(self.current, 0)
        targets = self.session.targets
        self.list.blockSignals(True)
        self.list.clear()
        for i, t in enumerate(targets):
            thumb = qimage(t.image).scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio,
                                           Qt.TransformationMode.SmoothTransformation)
            item = QListWidgetItem(QIcon(QPixmap.fromImage(thumb)), self._label(i))
            h, w = t.image.shape[:2]
            lens = "own camera" if t.camera_group is None else f"camera {t.camera_group}"
            item.setToolTip(f"{t.name}: {w}×{h}, azimuth {t.azimuth:.2f}, elevation "
                            f"{t.elevation:.2f}, distance {t.distance:.3f}, fov {t.fov:.2f}"
                            f" ({lens}{', fov locked' if t.lock_fov else ''})"
                            + ("" if t.is_orbit else "; registered pinhole fx {:.1f}, fy {:.1f},"
                               " cx {:.1f}, cy {:.1f} px".format(*t.pixel_intrinsics())))
            self.list.addItem(item)
        if targets:
            self.list.setCurrentRow(min(row, len(targets) - 1))
        self.list.blockSignals(False)
        self._show_selected()

    def _label(self, i: int) -> str:
        t = self.session.targets[i]
        # A registered (general pinhole) camera shows where it stands from the origin.
        kind = "" if t.is_orbit else "  (registered pinhole)"
        return (f"{t.name or f'view {i + 1}'}{kind}\naz {t.azimuth:.0f}°  el {t.elevation:.0f}°  "
                f"d {t.distance:.1f}  fov {t.fov:.0f}°")

    def select(self, index: int) -> None:
        """Select target ``index`` (from elsewhere, e.g. the image panels' view list)."""
        if 0 <= index < self.list.count() and index != self.current:
            self.list.setCurrentRow(index)

    def _on_row(self, row: int) -> None:
        self._show_selected()
        if row >= 0:
            self.selected.emit(row)

    def _show_selected(self) -> None:
        i = self.current
        has = 0 <= i < len(self.session.targets)
        for w in (self.use_view, self.look, self.edit_mask, self.load_mask, self.remove,
                  self.group, self.lock_fov, *self.cam.values(), self.pinhole):
            w.setEnabled(has)
        self.adopt.setEnabled(bool(self.session.targets))
        if has:
            t = self.session.targets[i]
            self._filling = True
            for k, spin in self.cam.items():
                spin.setValue(float(getattr(t, k)))
            # A registered camera is shown (and edited) as itself, never as an orbit.
            self.orbit_box.setVisible(t.is_orbit)
            self.pinhole.setVisible(not t.is_orbit)
            if not t.is_orbit:
                self.pinhole.show_camera(*t.world_to_camera(), t.pixel_intrinsics())
            self.group.setValue(self._group_number(t.camera_group))
            self.lock_fov.setChecked(bool(t.lock_fov))
            self._filling = False
            kind = "orbit, degrees" if t.is_orbit else "registered pinhole"
            self.camera_label.setText(f"Camera of {t.name or f'view {i + 1}'} ({kind})")
            views = self.session.config.camera_views
            self.only_selected.blockSignals(True)
            self.only_selected.setChecked(views == [i])
            self.only_selected.blockSignals(False)
        self._update_backdrop()

    def _update_backdrop(self) -> None:
        i = self.current
        if self.active and self.backdrop.isChecked() and 0 <= i < len(self.session.targets):
            t = self.session.targets[i]
            # another target's camera: orbit from there (this one's, turned by orbiting
            # from "View from target", stays as it is: no jump, roll kept)
            if not (Pinhole.of_target(t).matches(self.viewport.pinhole)
                    or self._viewed == (i, t.image.shape[:2])):
                self.viewport.leave_pinhole()
            self.viewport.set_backdrop(t.image, fov=t.fov)
        else:
            self.viewport.set_backdrop(None)

    def set_active(self, active: bool) -> None:
        """Show the backdrop only while the panel itself can be seen."""
        self.active = bool(active)
        self._update_backdrop()

    def _on_session(self, event: str) -> None:
        if event in ("targets", "mesh", "session", "revert"):
            self.refresh()
        elif event == "config":
            self._show_selected()

    # -- actions -----------------------------------------------------------------------------

    def _guard(self, fn, *args) -> bool:
        try:
            fn(*args)
            return True
        except (files.LoadError, ValueError, IndexError, RuntimeError, OSError) as e:
            self.error.emit(str(e))
            return False

    def _apply_camera(self) -> None:
        if self._filling or self.current < 0:
            return
        t = self.session.targets[self.current]
        if not t.is_orbit:
            return  # the orbit boxes are hidden for a registered camera: never turn it orbit
        values = [self.cam[k].value() for k in ("azimuth", "elevation", "distance", "fov")]
        if np.allclose(values, [t.azimuth, t.elevation, t.distance, t.fov], atol=5e-3):
            return  # only the spin box's rounding differs
        self._guard(self.session.set_target_camera, self.current, *values)

    def _apply_pinhole(self, key: str, value: float) -> None:
        """One value of a registered camera edited: the rest of it stays exactly as it is."""
        i = self.current
        if i < 0 or self.session.targets[i].is_orbit:
            return
        t = self.session.targets[i]
        R, tt, intr = edited_camera(*t.world_to_camera(), t.pixel_intrinsics(), key, value)
        if not self._guard(self.session.set_target_pinhole, i, R, tt, *intr):
            self._show_selected()  # refused (e.g. a centre at the origin): show the camera

    def _groups(self) -> list[int]:
        return sorted({t.camera_group for t in self.session.targets} - {None})

    def _group_number(self, group: int | None) -> int:
        """The number shown for a camera-group id (EXIF ids are large hashes): its rank."""
        return 0 if group is None else self._groups().index(group) + 1

    def _group_id(self, number: int) -> int | None:
        """The camera-group id for a shown number; past the existing groups, a new one."""
        ids = self._groups()
        if number == 0:
            return None
        return ids[number - 1] if number <= len(ids) else max(ids, default=0) + 1

    def _apply_lens(self, *_) -> None:
        if self._filling or self.current < 0:
            return
        t = self.session.targets[self.current]
        group = self._group_id(self.group.value())
        if (group, self.lock_fov.isChecked()) == (t.camera_group, t.lock_fov):
            return
        self._guard(self.session.set_target_lens, self.current, group,
                    self.lock_fov.isChecked())

    def use_this_view(self) -> None:
        """Give the selected target the viewport's camera (its photo frame's view): an orbit
        target an orbit camera, a registered one the general camera of the frame."""
        i = self.current
        if i < 0:
            return
        t = self.session.targets[i]
        if not t.is_orbit:
            h, w = t.image.shape[:2]
            cam = self.viewport.frame_pinhole((w, h))
            self._guard(self.session.set_target_pinhole, i, cam.R, cam.t, *cam.intrinsics)
            return
        self.viewport.leave_pinhole()
        try:
            cam = self.viewport.frame_camera(self.session.targets[i].aspect)
        except ValueError as e:
            self.error.emit(str(e))
            return
        self._guard(self.session.set_target_camera, i, *cam)

    def view_from_target(self) -> None:
        i = self.current
        if i >= 0:
            t = self.session.targets[i]
            if t.is_orbit:
                self.viewport.look_through(t.azimuth, t.elevation, t.distance, t.fov, t.aspect)
            else:  # the registered camera itself: roll and principal point included
                self.viewport.set_pinhole(Pinhole.of_target(t))
                self._viewed = (i, t.image.shape[:2])

    def edit_mask_dialog(self) -> MaskEditorDialog | None:
        """Open the mask editor on the selected target; OK sets the mask."""
        i = self.current
        if i < 0:
            return None
        dlg = MaskEditorDialog(self.session.targets[i], self)
        dlg.accepted.connect(lambda: self._guard(self.session.set_target_mask, i, dlg.mask()))
        dlg.open()
        return dlg

    def load_mask_dialog(self, path: str | None = None) -> None:
        i = self.current
        if i < 0:
            return
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Load mask image", "", IMAGE_FILTER)
        if path:
            self._guard(self.session.load_target_mask, i, path)

    def remove_selected(self) -> None:
        if self.current >= 0:
            self._guard(self.session.remove_target, self.current)

    def adopt_cameras(self) -> None:
        self._guard(self.session.adopt_fitted_cameras)

    def _apply_camera_views(self, only: bool) -> None:
        cfg = self.session.config.copy()
        cfg.camera_views = [self.current] if only and self.current >= 0 else None
        self._guard(self.session.set_config, cfg)


def install(window) -> TargetsPanel:
    """Add the Targets dock to ``window`` (a :class:`~studio.qt.window.MainWindow`) and wire
    it to the session, the image panels' view list, the viewport and the error dialog."""
    panel = TargetsPanel(window.session, window.viewport)
    dock = QDockWidget("Targets", window)
    dock.setObjectName("targets")
    dock.setWidget(panel)
    dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                     | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
    # A tab beside the controls: the viewport keeps its width for aligning photos.
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    controls = window.findChild(QDockWidget, "controls")
    if controls is not None:
        window.tabifyDockWidget(controls, dock)
        controls.raise_()
    combo = window.images.view_combo
    panel.selected.connect(lambda i: combo.setCurrentIndex(i) if combo.currentIndex() != i
                           else None)
    combo.currentIndexChanged.connect(panel.select)
    panel.error.connect(window.show_error)
    dock.visibilityChanged.connect(panel.set_active)
    panel.set_active(not dock.visibleRegion().isEmpty() if window.isVisible() else False)
    window.session.subscribe(panel._on_session)
    panel.dock = dock
    return panel

