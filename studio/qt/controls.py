"""The control panel: the Geometry / Appearance stage, Run/Pause/Step/Reset, the shape controls
(:mod:`studio.qt.shape_controls`), parameter groups, loss weights, shading, resolution.

It edits the :class:`~studio.model.session.Session` directly (settings apply at the next step) and
follows the session's ``config`` events, so the widgets always show the real settings. The
run buttons only emit signals; the main window wires them to the worker.
"""

from __future__ import annotations

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

import render_core as rc
from render_core.fit import GROUPS, LOSS_TERMS

from ..model import files, stages
from ..model.compare import auto_label, model_choices
from ..model.session import Session
from .shape_controls import ShapeSection, StageSwitch, busy
from .viewport import MODES

GROUP_LABELS = {"vertices": "Vertex positions", "colors": "Vertex colours", "texture": "Texture",
                "light": "Light", "camera": "Camera"}
LOSS_LABELS = {"iou": "Silhouette IoU", "l1": "L1 colour (sRGB)", "laplacian": "Laplacian",
               "normal": "Normal consistency", "edge": "Edge length",
               "texture_tv": "Texture smoothness"}


def _spin(lo: float, hi: float, decimals: int, step: float) -> QDoubleSpinBox:
    s = QDoubleSpinBox()
    s.setRange(lo, hi)
    s.setDecimals(decimals)
    s.setSingleStep(step)
    s.setKeyboardTracking(False)  # apply on enter / focus out, not on every keystroke
    return s


class ControlPanel(QWidget):
    """Settings and run controls for one session."""

    run_clicked = pyqtSignal()
    pause_clicked = pyqtSignal()
    step_clicked = pyqtSignal()
    reset_clicked = pyqtSignal()
    display_mode_changed = pyqtSignal(str)
    error = pyqtSignal(str)
    notice = pyqtSignal(str)  # a line for the status bar (a stage switched, a start made)

    def __init__(self, session: Session, parent=None):
        super().__init__(parent)
        self.session = session
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)

        self.stage = StageSwitch()
        for name, b in self.stage.buttons.items():
            b.clicked.connect(lambda _=False, n=name: self._act(stages.set_stage, session, n))
        lay.addWidget(self.stage)

        buttons = QGridLayout()
        self.run_button = QPushButton("Run")
        self.pause_button = QPushButton("Pause")
        self.step_button = QPushButton("Step")
        self.reset_button = QPushButton("Reset")
        self.run_button.setToolTip("Optimise continuously (F5)")
        self.step_button.setToolTip("One optimisation step (F6)")
        self.reset_button.setToolTip("Back to the starting mesh and parameters")
        for i, b in enumerate((self.run_button, self.pause_button, self.step_button,
                               self.reset_button)):
            buttons.addWidget(b, i // 2, i % 2)
        self.run_button.clicked.connect(self.run_clicked)
        self.pause_button.clicked.connect(self.pause_clicked)
        self.step_button.clicked.connect(self.step_clicked)
        self.reset_button.clicked.connect(self.reset_clicked)
        lay.addLayout(buttons)

        self.shape = ShapeSection(session, self._act, self._apply)
        self.large_steps = self.shape.large_steps
        lay.addWidget(self.shape)

        box = QGroupBox("Optimise  (learning rate)")
        grid = QGridLayout(box)
        grid.setVerticalSpacing(2)
        self.group_checks: dict[str, QCheckBox] = {}
        self.group_lrs: dict[str, QDoubleSpinBox] = {}
        for row, name in enumerate(GROUPS):
            check = QCheckBox(GROUP_LABELS[name])
            lr = _spin(0.0, 10.0, 4, 0.001)
            check.toggled.connect(lambda on, n=name: self._apply(self.session.set_group, n,
                                                                  enabled=on))
            lr.valueChanged.connect(lambda v, n=name: self._apply(self.session.set_group, n,
                                                                   lr=v))
            lr.editingFinished.connect(lambda s=lr: s.setStyleSheet(""))  # a divergence mark
            grid.addWidget(check, row, 0)
            grid.addWidget(lr, row, 1)
            self.group_checks[name], self.group_lrs[name] = check, lr
        lay.addWidget(box)

        box = QGroupBox("Loss weights")
        form = QFormLayout(box)
        form.setVerticalSpacing(2)
        self.weights: dict[str, QDoubleSpinBox] = {}
        for name in LOSS_TERMS:
            w = _spin(0.0, 1000.0, 3, 0.01)
            w.valueChanged.connect(lambda v, n=name: self._apply(self.session.set_weight, n, v))
            form.addRow(LOSS_LABELS[name], w)
            self.weights[name] = w
        lay.addWidget(box)

        box = QGroupBox("Rendering")
        form = QFormLayout(box)
        form.setVerticalSpacing(2)
        self.shading = QComboBox()
        self.shading.addItems(rc.SHADINGS)
        self.shading.currentTextChanged.connect(
            lambda s: self._apply(self.session.set_option, shading=s))
        self.rendering_model = QComboBox()
        for key, label in model_choices():
            self.rendering_model.addItem(label, key)
        self.rendering_model.setToolTip(
            "How the fit renders and where its gradients come from: Automatic (DIB-R + edge "
            "antialiasing while the L1 colour weight is above 0, else DIB-R), DIB-R (soft "
            "silhouette, hard occlusion edges), DIB-R + edge antialiasing (colour losses move "
            "occlusion edges too), SoftRas (soft faces blended by depth; unlit vertex colours "
            "only), NMR (hard render, an approximate gradient at every edge)")
        self.rendering_model.currentIndexChanged.connect(
            lambda i: self._apply(self.session.set_option,
                                  model=self.rendering_model.itemData(i)))
        self.resolution = QSpinBox()
        self.resolution.setRange(16, 512)
        self.resolution.setSingleStep(16)
        self.resolution.setKeyboardTracking(False)
        self.resolution.valueChanged.connect(
            lambda r: self._apply(self.session.set_option, resolution=r))
        self.schedule = QLineEdit()
        self.schedule.setPlaceholderText("off, e.g. 64:0,128:100")
        self.schedule.setToolTip(
            "Coarse to fine: RES:STEP pairs, e.g. 64:0,128:100,256:200 renders at 64 rows from "
            "step 0, 128 from step 100, 256 from step 200 (targets resampled, the soft edge "
            "kept as many pixels wide); empty: the Resolution above throughout")
        self.schedule.editingFinished.connect(self._schedule_edited)
        self.texture_size = QSpinBox()
        self.texture_size.setRange(4, 4096)
        self.texture_size.setSingleStep(64)
        self.texture_size.setSuffix(" px")
        self.texture_size.setKeyboardTracking(False)
        self.texture_size.setToolTip("Side of the texture the Texture group optimises; changing "
                                     "it resamples the texture fitted so far")
        self.texture_size.valueChanged.connect(
            lambda n: self._apply(self.session.set_option, texture_size=n))
        self.views_per_step = QSpinBox()
        self.views_per_step.setRange(0, 9999)
        self.views_per_step.setSpecialValueText("all")
        self.views_per_step.setKeyboardTracking(False)
        self.views_per_step.setToolTip(
            "Render this many of the targets, drawn at random, each step (the loss is their "
            "mean): faster steps for scenes with many targets; all: every target every step")
        self.views_per_step.valueChanged.connect(
            lambda n: self._apply(self.session.set_option, views_per_step=n or None))
        self.display = QComboBox()
        self.display.addItems(MODES)
        self.display.currentTextChanged.connect(self.display_mode_changed)
        form.addRow("Rendering model", self.rendering_model)
        form.addRow("Shading", self.shading)
        form.addRow("Resolution", self.resolution)
        form.addRow("Schedule", self.schedule)
        form.addRow("Texture size", self.texture_size)
        form.addRow("Views per step", self.views_per_step)
        form.addRow("Viewport", self.display)
        lay.addWidget(box)

        self.info = QLabel()
        self.info.setWordWrap(True)
        lay.addWidget(self.info)
        lay.addStretch(1)
        hint = QLabel("Viewport: drag to orbit, right-drag to pan, wheel to zoom, "
                      "double-click to frame.")
        hint.setWordWrap(True)
        hint.setStyleSheet("color: #888;")
        lay.addWidget(hint)
        session.subscribe(self._on_session)
        self.sync()

    def _apply(self, fn, *args, **kwargs) -> None:
        if self._syncing:
            return
        try:
            fn(*args, **kwargs)
        except ValueError as e:
            self.error.emit(str(e))
            self.sync()

    def _act(self, fn, *args) -> None:
        """Run a session action that returns a status line (:mod:`studio.model.stages`): the
        line goes to :attr:`notice`, a refusal to :attr:`error`; the widgets then show the
        session as it is."""
        if self._syncing:
            return
        try:
            self.notice.emit(busy(lambda: fn(*args)))
        except (files.LoadError, ValueError, RuntimeError, OSError) as e:
            self.error.emit(str(e))
        self.sync()

    def _schedule_edited(self) -> None:
        text = self.schedule.text().strip()
        if text == rc.format_resolution_schedule(self.session.config.resolution_schedule):
            return
        try:
            schedule = rc.parse_resolution_schedule(text) if text else None
        except ValueError as e:
            self.error.emit(str(e))
            self.sync()
            return
        self._apply(self.session.set_option, resolution_schedule=schedule)

    def _on_session(self, event: str) -> None:
        self.sync()

    def sync(self) -> None:
        """Show the session's current settings (without echoing them back)."""
        self._syncing = True
        try:
            cfg = self.session.config
            for name in GROUPS:
                self.group_checks[name].setChecked(cfg.groups[name].enabled)
                self.group_lrs[name].setValue(cfg.groups[name].lr)
            for name in LOSS_TERMS:
                self.weights[name].setValue(cfg.weights[name])
            self.shading.setCurrentText(cfg.shading)
            self.rendering_model.setItemText(self.rendering_model.findData("auto"),
                                             auto_label(cfg))
            self.rendering_model.setCurrentIndex(self.rendering_model.findData(cfg.model))
            self.resolution.setValue(int(cfg.resolution))
            self.schedule.setText(rc.format_resolution_schedule(cfg.resolution_schedule))
            self.schedule.setCursorPosition(0)
            self.texture_size.setValue(int(cfg.texture_size))
            self.shape.sync()
            self.stage.show_stage(stages.stage_of(self.session))
            self.views_per_step.setValue(cfg.views_per_step or 0)
            s = self.session
            mesh = s.initial_mesh
            mesh_text = (f"{s.mesh_name}: {mesh.num_vertices} vertices, {mesh.num_faces} faces"
                         if mesh is not None else "no mesh")
            self.info.setText(f"{mesh_text}\n{len(s.targets)} target view(s)")
        finally:
            self._syncing = False

    def note_divergence(self, batch: list[dict]) -> str | None:
        """Show the learning rates the fit halved after diverging steps in ``batch`` (metrics
        of ``Fitter.step``; the session has already adopted them): the spin boxes update and
        are marked. Returns a one-line notice for the status bar, or None."""
        events = [m for m in batch if m.get("lr_halved")]
        if not events:
            return None
        self.sync()
        last = events[-1]
        names = [n for n in str(last["lr_halved"]).split(",") if n in self.group_lrs]
        for n in names:
            spin = self.group_lrs[n]
            spin.setStyleSheet("background: #f6d58e;")
            spin.setToolTip(f"Halved to {self.session.config.groups[n].lr:.4g} after a step "
                            "with non-finite values")
        rates = ", ".join(f"{GROUP_LABELS[n].lower()} {self.session.config.groups[n].lr:.4g}"
                          for n in names)
        undone = " (and the step before it undone)" if last.get("undone") else ""
        return (f"Step {int(last['step']) + 1} diverged: rolled back{undone}; "
                f"learning rate halved: {rates}")

    def set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.step_button.setEnabled(not running)
        self.pause_button.setEnabled(running)

    _syncing = False
