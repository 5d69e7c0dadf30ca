"""Optimise ▸ Style transfer… and Optimise ▸ DeepDream…: the dialogs of NMR's applications.

Each dialog gathers the settings and hands them to :mod:`studio.model.stylize`, which makes the
current mesh the start of a new fit whose loss is the objective; the run is then a normal fit
(Run / Pause / Step, curves, revert, sessions, export), and the render panel shows the render
beside the style image (or, for DeepDream, beside the start's render).
"""

from __future__ import annotations

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSlider,
    QSpinBox,
    QWidget,
)

from ..model import stylize

GENERATED = ("stripes", "painting")
WEIGHTS_FILTER = "PyTorch weights (*.pth *.pt);;All files (*)"


def _strength(value: int) -> float:
    """Slider position 0..100 → a factor on the default weight: 0 off, 50 ×1, 100 ×10."""
    return 0.0 if value <= 0 else 10.0 ** ((value - 50) / 50.0)


def _path_row(path: QLineEdit, browse) -> QWidget:
    """A path field with a Browse… button that calls ``browse``."""
    button = QPushButton("Browse…")
    button.clicked.connect(browse)
    row = QHBoxLayout()
    row.addWidget(path, 1)
    row.addWidget(button)
    widget = QWidget()
    widget.setLayout(row)
    return widget


class _ObjectiveDialog(QDialog):
    """What both dialogs share: features source, strength sliders, moving groups."""

    def __init__(self, title: str, sliders: list[tuple[str, str, str]], parent=None):
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setMinimumWidth(480)
        self.form = QFormLayout(self)
        self.features = QComboBox()
        self.features.addItems(["Built-in random features (offline)", "VGG-16/19 weights file…"])
        self.weights_path = QLineEdit()
        self.weights_path.setPlaceholderText("torchvision vgg16/vgg19 state_dict (.pth)")
        self.weights_row = _path_row(self.weights_path, self._browse_weights)
        self.features.currentIndexChanged.connect(self._features_changed)
        self.sliders: dict[str, QSlider] = {}
        self._extra_rows()
        self.form.addRow("Features:", self.features)
        self.form.addRow("", self.weights_row)
        for key, label, tip in sliders:
            s = QSlider(Qt.Orientation.Horizontal)
            s.setRange(0, 100)
            s.setValue(50)
            s.setToolTip(tip + " (middle: the default; each end: ×0.1 / ×10, far left: off)")
            self.sliders[key] = s
            self.form.addRow(label, s)
        self.groups = {g: QCheckBox(text) for g, text in (
            ("vertices", "Shape (vertices)"), ("colors", "Vertex colours"), ("texture", "Texture"))}
        self.groups["vertices"].setChecked(True)
        self.groups["colors"].setChecked(True)
        for i, box in enumerate(self.groups.values()):
            self.form.addRow("Moves:" if i == 0 else "", box)
        self.resolution = QSpinBox()
        self.resolution.setRange(32, 512)
        self.resolution.setValue(stylize.DEFAULT_RESOLUTION)
        self.resolution.setSuffix(" px")
        self.form.addRow("Render size:", self.resolution)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.form.addRow(buttons)
        self._features_changed()

    def _extra_rows(self) -> None:
        """Rows a dialog puts above the shared ones."""

    def _browse_weights(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "VGG weights", "", WEIGHTS_FILTER)
        if path:
            self.weights_path.setText(path)

    def _features_changed(self) -> None:
        self.weights_row.setEnabled(self.features.currentIndex() == 1)

    def feature_source(self) -> str:
        """``"random"`` or the weights path typed in (refused later if it is bad)."""
        if self.features.currentIndex() == 0:
            return "random"
        return self.weights_path.text().strip() or "(no file chosen)"

    def weights(self, defaults: dict[str, float]) -> dict[str, float]:
        return {k: defaults[k] * _strength(s.value()) for k, s in self.sliders.items()}

    def moving(self) -> list[str]:
        return [g for g, box in self.groups.items() if box.isChecked()]


class StyleTransferDialog(_ObjectiveDialog):
    """Style image (a file or one generated here), features, strengths, groups."""

    def __init__(self, parent=None):
        super().__init__("Style transfer", [
            ("style", "Style:", "how strongly the renders take the style image's statistics"),
            ("content", "Content:", "how closely the silhouettes keep the start's"),
            ("laplacian", "Smoothness:", "how much the surface keeps its start detail"),
        ], parent)

    def _extra_rows(self) -> None:
        self.source = QComboBox()
        self.source.addItems(["Image file…"] + [f"Generated: {g}" for g in GENERATED])
        self.style_path = QLineEdit()
        self.style_path.setPlaceholderText("a painting or any picture (PNG/JPEG)")
        self.style_row = _path_row(self.style_path, self._browse_style)
        self.source.currentIndexChanged.connect(
            lambda i: self.style_row.setEnabled(i == 0))
        self.form.addRow("Style image:", self.source)
        self.form.addRow("", self.style_row)

    def _browse_style(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Style image", "",
                                              "Images (*.png *.jpg *.jpeg)")
        if path:
            self.style_path.setText(path)

    def style(self):
        """The style: a path, or a generated sRGB image."""
        i = self.source.currentIndex()
        if i == 0:
            return self.style_path.text().strip() or "(no file chosen)"
        return stylize.procedural_style(GENERATED[i - 1])

    def start(self, session) -> None:
        defaults = {"style": 1.0, "content": 5.0, "laplacian": 4.0}
        w = self.weights(defaults)
        w["edge"] = 1.0 * _strength(self.sliders["laplacian"].value())
        stylize.start_style_transfer(session, self.style(), features=self.feature_source(),
                                     weights=w, groups=self.moving(),
                                     resolution=self.resolution.value())


class DreamDialog(_ObjectiveDialog):
    """Layer and channel whose activations grow, features, strengths, groups."""

    def __init__(self, parent=None):
        super().__init__("DeepDream", [
            ("dream", "Strength:", "how hard the activations are pushed up"),
            ("laplacian", "Smoothness:", "how much the surface keeps its start detail"),
        ], parent)
        self.features.currentIndexChanged.connect(self._fill_layers)
        self._fill_layers()

    def _extra_rows(self) -> None:
        self.layer = QComboBox()
        self.channel = QSpinBox()
        self.channel.setRange(-1, 4095)
        self.channel.setSpecialValueText("all channels")
        self.channel.setValue(-1)
        self.layer_note = QLabel("")
        self.form.addRow("Layer:", self.layer)
        self.form.addRow("Channel:", self.channel)
        self.form.addRow("", self.layer_note)

    def _fill_layers(self) -> None:
        """The built-in extractor's layers (a VGG file's are VGG's: conv1_1 … conv5_3/4)."""
        self.layer.clear()
        if self.features.currentIndex() == 0:
            names, channels, default = stylize.feature_layers("random")
            self.layer.addItems(names)
            self.layer.setCurrentText(default)
            self.layer_note.setText(", ".join(f"{n}: {c} ch" for n, c in zip(names, channels,
                                                                               strict=True)))
        else:
            self.layer.setEditable(True)
            self.layer.addItems([f"conv{b}_{i}" for b in range(1, 6) for i in range(1, 4)])
            self.layer.setCurrentText("conv4_3")
            self.layer_note.setText("VGG layers: conv<block>_<index>")

    def start(self, session) -> None:
        w = self.weights({"dream": 1.0, "laplacian": 4.0})
        w["edge"] = 1.0 * _strength(self.sliders["laplacian"].value())
        ch = self.channel.value()
        stylize.start_dream(session, self.layer.currentText() or None, None if ch < 0 else ch,
                            features=self.feature_source(), weights=w, groups=self.moving(),
                            resolution=self.resolution.value())


def open_dialog(window, kind: str) -> QDialog:
    """Show the dialog of ``kind`` ("style" or "dream") for ``window`` (a MainWindow); on OK
    the fit is set up (errors go to the window's error dialog, nothing changed)."""
    dlg = StyleTransferDialog(window) if kind == "style" else DreamDialog(window)
    dlg.accepted.connect(lambda: _accepted(window, dlg))
    dlg.open()
    return dlg


def _accepted(window, dlg) -> None:
    window.worker.pause()
    if window._guard(dlg.start, window.session):
        what = "Style transfer" if isinstance(dlg, StyleTransferDialog) else "DeepDream"
        window.statusBar().showMessage(f"{what} set up: press Run (F5)", 10000)


def install(window, menu) -> None:
    """Add Style transfer… and DeepDream… to ``menu`` (the window's Optimise menu)."""
    menu.addSeparator()
    window._action(menu, "Style &transfer…", lambda: open_dialog(window, "style"))
    window._action(menu, "&DeepDream…", lambda: open_dialog(window, "dream"))
