"""The shape controls of the control panel: the Geometry / Appearance stage switch, and the
"Shape" section (start from sphere / visual hull / opened mesh, shape presets, remeshing,
Large Steps).

Only widgets: the actions are :mod:`studio.model.stages` and ``Session.set_option``; each is
one undo step. :class:`~studio.qt.controls.ControlPanel` owns these widgets, routes their edits
through its guard (so a refusal becomes a message, never a crash) and calls their ``sync``.
"""

from __future__ import annotations

from collections.abc import Callable

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import (
    QApplication,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QWidget,
)

from ..model import stages
from ..model.session import Session

STAGE_TIPS = {
    "geometry": "Geometry stage: vertices and their colours move, remeshing may change the "
                "mesh; no texture",
    "appearance": "Appearance stage: freeze the fitted geometry, bake its colours into a UV "
                  "texture and fit that texture (remeshing off)",
}
START_LABELS = {"sphere": "Sphere", "hull": "Hull", "mesh": "Loaded"}
START_TIPS = {
    "sphere": f"Start afresh from an icosphere ({stages.SPHERE_SUBDIVISIONS} subdivisions)",
    "hull": "Start from the visual hull of the targets' masks (the shape every silhouette "
            "implies), with a sharp soft silhouette",
    "mesh": "Start again from the loaded mesh, the one you opened (File ▸ Open mesh, or "
            "the opened session's)",
}
PRESET_LABELS = {
    "silhouette": "silhouette",
    "silhouette+remesh": "silhouette + remeshing",
    "lit": "lit",
    "hull+silhouette+remesh": "hull + silhouette + remeshing (best)",
}
PRESET_TIPS = {
    "silhouette": "Silhouette targets: Large Steps λ 19, soft-silhouette IoU alone",
    "silhouette+remesh": "Silhouette targets with continuous remeshing: Large Steps λ 19, "
                         "vertex rate 0.01, edges of 1-2 pixels",
    "lit": "Lit RGB targets: Large Steps λ 5, Lambertian shading, colour term weighted 20",
    "hull+silhouette+remesh": "Start afresh from the visual hull of the targets' masks and "
                              "refine it with the silhouette preset and continuous remeshing "
                              "(as `dibr-studio fit --init hull --remesh`): the best shape "
                              "fit for silhouettes; one undo step",
}


def edge_spin() -> QDoubleSpinBox:
    """An edge length in world units; 0 shows as "auto" (None: derived by the fit)."""
    s = QDoubleSpinBox()
    s.setRange(0.0, 10.0)
    s.setDecimals(4)
    s.setSingleStep(0.005)
    s.setSpecialValueText("auto")
    s.setKeyboardTracking(False)
    return s


class StageSwitch(QWidget):
    """Two exclusive buttons, Geometry and Appearance; ``buttons[stage]``."""

    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        self.group = QButtonGroup(self)
        self.group.setExclusive(True)
        self.buttons: dict[str, QPushButton] = {}
        for stage in stages.STAGES:
            b = QPushButton(stage.capitalize())
            b.setCheckable(True)
            b.setToolTip(STAGE_TIPS[stage])
            self.group.addButton(b)
            lay.addWidget(b)
            self.buttons[stage] = b

    def stage(self) -> str:
        return next(s for s, b in self.buttons.items() if b.isChecked())

    def show_stage(self, stage: str) -> None:
        self.buttons[stage].setChecked(True)


class ShapeSection(QGroupBox):
    """Start from, preset, remeshing and Large Steps; ``act(fn, *args)`` runs a session
    action (a stages function: it returns a status line) under the panel's guard, ``apply(fn,
    **kw)`` a setting."""

    def __init__(self, session: Session, act: Callable, apply: Callable, parent=None):
        super().__init__("Shape", parent)
        self.session = session
        form = QFormLayout(self)
        form.setVerticalSpacing(2)

        starts = QHBoxLayout()
        starts.setSpacing(2)
        self.start_buttons: dict[str, QToolButton] = {}
        for kind in stages.START_CHOICES:
            b = QToolButton()  # narrower than push buttons: the three share one row
            b.setText(START_LABELS[kind])
            b.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            b.setToolTip(START_TIPS[kind])
            b.clicked.connect(lambda _=False, k=kind: act(stages.start_from, session, k))
            starts.addWidget(b)
            self.start_buttons[kind] = b
        form.addRow("Start from", starts)

        row = QHBoxLayout()
        row.setSpacing(2)
        self.preset = QComboBox()
        for kind in stages.SHAPE_CHOICES:
            self.preset.addItem(PRESET_LABELS.get(kind, kind), kind)
            self.preset.setItemData(self.preset.count() - 1, PRESET_TIPS.get(kind, kind),
                                    Qt.ItemDataRole.ToolTipRole)
        self.preset_apply = QToolButton()
        self.preset_apply.setText("Apply")
        self.preset_apply.setToolTip("Take the preset's settings for a shape fit (groups, "
                                     "loss weights, shading, sigma, Large Steps, views per "
                                     "step); one undo step")
        self.preset_apply.clicked.connect(self._apply_preset)
        self._act = act
        row.addWidget(self.preset, 1)
        row.addWidget(self.preset_apply)
        form.addRow("Preset", row)

        self.remesh = QCheckBox("on")
        self.remesh.setToolTip(
            "Continuous remeshing: split, collapse and flip edges every few steps towards "
            "lengths that adapt to how the fit moves each region; the vertex and face count "
            "change. Geometry stage only (a UV texture cannot follow)")
        self.remesh.toggled.connect(lambda on: apply(session.set_option, remesh=on))
        form.addRow("Remesh", self.remesh)
        self.remesh_min = edge_spin()
        self.remesh_max = edge_spin()
        for s, which in ((self.remesh_min, "shortest"), (self.remesh_max, "longest")):
            s.setToolTip(f"Remeshing: the {which} edge it aims for (min / max), in world "
                         "units; auto: from the render's pixel size and the mesh")
        self.remesh_min.valueChanged.connect(
            lambda v: apply(session.set_option, remesh_min_edge=v or None))
        self.remesh_max.valueChanged.connect(
            lambda v: apply(session.set_option, remesh_max_edge=v or None))
        edges = QHBoxLayout()
        edges.setSpacing(2)
        edges.addWidget(self.remesh_min, 1)
        edges.addWidget(self.remesh_max, 1)
        form.addRow("Edges", edges)
        self.remesh_interval = QSpinBox()
        self.remesh_interval.setRange(1, 10000)
        self.remesh_interval.setSuffix(" steps")
        self.remesh_interval.setKeyboardTracking(False)
        self.remesh_interval.setToolTip("Remesh after every this many accepted steps")
        self.remesh_interval.valueChanged.connect(
            lambda n: apply(session.set_option, remesh_interval=n))
        form.addRow("Remesh every", self.remesh_interval)

        self.large_steps = QDoubleSpinBox()
        self.large_steps.setRange(0.0, 1000.0)
        self.large_steps.setDecimals(1)
        self.large_steps.setSingleStep(1.0)
        self.large_steps.setKeyboardTracking(False)
        self.large_steps.setSpecialValueText("off")
        self.large_steps.setToolTip(
            "Large Steps (λ): vertices move as u = (I + λL)·offset with uniform Adam steps, "
            "so whole regions move smoothly and large rates do not tangle the mesh; 19 is the "
            "paper's value; off: per-vertex offsets")
        self.large_steps.valueChanged.connect(
            lambda v: apply(session.set_option, large_steps=v or None))
        form.addRow("Large steps λ", self.large_steps)
        self._geometry_only = (self.remesh, self.remesh_min, self.remesh_max,
                               self.remesh_interval, self.preset, self.preset_apply)

    def _apply_preset(self) -> None:
        kind = self.preset.currentData()

        self._act(stages.apply_shape_preset, self.session, kind)  # a busy cursor: the hull

    def sync(self) -> None:
        """Show the session's settings (the caller blocks the echo)."""
        s = self.session
        cfg = s.config
        self.remesh.setChecked(bool(cfg.remesh))
        self.remesh_min.setValue(cfg.remesh_min_edge or 0.0)
        self.remesh_max.setValue(cfg.remesh_max_edge or 0.0)
        self.remesh_interval.setValue(int(cfg.remesh_interval))
        self.large_steps.setValue(cfg.large_steps or 0.0)
        geometry = stages.stage_of(s) == "geometry"
        for w in self._geometry_only:
            w.setEnabled(geometry)
            if not geometry:
                w.setToolTip(w.toolTip().split("\n\n")[0]
                             + "\n\nOff in the Appearance stage: switch to Geometry first")
            else:
                w.setToolTip(w.toolTip().split("\n\n")[0])
        self.start_buttons["mesh"].setEnabled(s.loaded_mesh is not None)
        self.start_buttons["hull"].setEnabled(bool(s.targets))


def busy(fn):
    """Run ``fn()`` with a busy cursor (baking, carving: a second or a few)."""
    QApplication.setOverrideCursor(Qt.CursorShape.BusyCursor)
    try:
        return fn()
    finally:
        QApplication.restoreOverrideCursor()
