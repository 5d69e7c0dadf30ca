"""The mask editor: a target's mask shown as an overlay on its image, with the automatic
foreground threshold and an add/erase brush to correct it (the algorithms live in
:mod:`studio.model.photo`; this is only their Qt face).

Left-drag paints with the chosen brush (add or erase), right-drag with the other one; strokes
survive threshold changes. OK hands the mask back (:meth:`MaskEditorDialog.mask`); the caller
sets it on the session.
"""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QPointF, QRectF, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPen
from PyQt6.QtWidgets import (
    QButtonGroup,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QRadioButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from render_core.fit import TargetView

from ..model import files, photo

_OVERLAY = np.array([255, 60, 60], np.float32)  # background tint: what the fit ignores


class MaskCanvas(QWidget):
    """Draws image + mask overlay scaled to fit, and turns drags into brush strokes."""

    stroke = pyqtSignal(float, float, bool)  # row, col (image pixels), add

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumSize(320, 240)
        self.setMouseTracking(True)
        self._image: QImage | None = None
        self._shape = (1, 1)
        self.brush_add = True
        self.radius = 6
        self._painting: bool | None = None  # add / erase while a button is down
        self._cursor: QPointF | None = None

    def set_composite(self, rgb_uint8: np.ndarray) -> None:
        arr = np.ascontiguousarray(rgb_uint8)
        h, w = arr.shape[:2]
        self._shape = (h, w)
        self._image = QImage(arr.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
        self.update()

    def image_rect(self) -> QRectF:
        """Where the image is drawn (aspect kept, centred)."""
        h, w = self._shape
        s = min(self.width() / w, self.height() / h)
        return QRectF((self.width() - w * s) / 2, (self.height() - h * s) / 2, w * s, h * s)

    def to_image(self, pos: QPointF) -> tuple[float, float]:
        r = self.image_rect()
        s = r.width() / self._shape[1]
        return (pos.y() - r.top()) / s, (pos.x() - r.left()) / s

    def paintEvent(self, e) -> None:  # noqa: N802 (Qt API)
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(32, 34, 38))
        if self._image is not None:
            r = self.image_rect()
            p.drawImage(r, self._image)
            if self._cursor is not None:
                s = r.width() / self._shape[1]
                p.setPen(QPen(QColor(255, 255, 255) if self.brush_add else QColor(255, 90, 90)))
                p.drawEllipse(self._cursor, self.radius * s, self.radius * s)
        p.end()

    def mousePressEvent(self, e: QMouseEvent) -> None:  # noqa: N802
        if e.button() in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            self._painting = self.brush_add == (e.button() == Qt.MouseButton.LeftButton)
            self._paint(e.position())

    def mouseMoveEvent(self, e: QMouseEvent) -> None:  # noqa: N802
        self._cursor = e.position()
        if self._painting is not None:
            self._paint(e.position())
        self.update()

    def mouseReleaseEvent(self, e: QMouseEvent) -> None:  # noqa: N802
        self._painting = None

    def _paint(self, pos: QPointF) -> None:
        row, col = self.to_image(pos)
        self.stroke.emit(row, col, bool(self._painting))


class MaskEditorDialog(QDialog):
    """Edit one target's mask. ``mask()`` is the result ([H,W] float32, 0/1)."""

    def __init__(self, target: TargetView, parent=None):
        super().__init__(parent)
        self.setWindowTitle(f"Mask of {target.name or 'target'}")
        self.image = np.asarray(target.image, np.float32)
        self._auto_score: np.ndarray | None = None
        current = np.asarray(target.mask, np.float32)
        # A mask that is the automatic one opens with its score, so the threshold works at
        # once; any other (alpha, loaded, edited) opens as it is.
        auto = self.auto_score()
        if np.array_equal(photo.mask_from_score(auto) > 0.5, current > 0.5):
            self.edit = photo.MaskEdit(auto)
        else:
            self.edit = photo.MaskEdit.from_mask(current)

        self.canvas = MaskCanvas()
        self.canvas.stroke.connect(self._on_stroke)
        self.threshold = QSlider(Qt.Orientation.Horizontal)
        self.threshold.setRange(1, 99)
        self.threshold.setValue(round(self.edit.threshold * 100))
        self.threshold.valueChanged.connect(self._on_threshold)
        self.threshold_label = QLabel()
        self.add = QRadioButton("Add")
        self.erase = QRadioButton("Erase")
        self.add.setChecked(True)
        group = QButtonGroup(self)
        group.addButton(self.add)
        group.addButton(self.erase)
        self.add.toggled.connect(lambda on: setattr(self.canvas, "brush_add", on))
        self.radius = QSpinBox()
        self.radius.setRange(1, 200)
        self.radius.setValue(max(2, round(max(self.image.shape[:2]) / 60)))
        self.radius.valueChanged.connect(lambda r: setattr(self.canvas, "radius", r))
        self.canvas.radius = self.radius.value()
        self.auto = QPushButton("Automatic")
        self.auto.setToolTip("Start again from the automatic foreground estimate")
        self.auto.clicked.connect(self.use_automatic)
        self.clear = QPushButton("Clear strokes")
        self.clear.clicked.connect(self._clear)
        self.info = QLabel()

        row1 = QHBoxLayout()
        row1.addWidget(QLabel("Threshold"))
        row1.addWidget(self.threshold, 1)
        row1.addWidget(self.threshold_label)
        row1.addWidget(self.auto)
        row2 = QHBoxLayout()
        row2.addWidget(QLabel("Brush"))
        row2.addWidget(self.add)
        row2.addWidget(self.erase)
        row2.addWidget(QLabel("radius"))
        row2.addWidget(self.radius)
        row2.addWidget(self.clear)
        row2.addStretch(1)
        row2.addWidget(self.info)
        bb = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                              | QDialogButtonBox.StandardButton.Cancel)
        bb.accepted.connect(self.accept)
        bb.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("Red tint = background (ignored by the fit). Left-drag paints "
                             "with the brush, right-drag with the other one."))
        lay.addWidget(self.canvas, 1)
        lay.addLayout(row1)
        lay.addLayout(row2)
        lay.addWidget(bb)
        self.resize(720, 600)
        self._redraw()

    def auto_score(self) -> np.ndarray:
        if self._auto_score is None:
            self._auto_score = photo.foreground_score(self.image)
        return self._auto_score

    def mask(self) -> np.ndarray:
        return self.edit.mask()

    def use_automatic(self) -> None:
        paint = self.edit.paint
        self.edit = photo.MaskEdit(self.auto_score(), self.threshold.value() / 100, paint)
        self._redraw()

    def _on_threshold(self, value: int) -> None:
        self.edit.threshold = value / 100
        self._redraw()

    def _on_stroke(self, row: float, col: float, add: bool) -> None:
        self.edit.brush(row, col, self.canvas.radius, add)
        self._redraw()

    def _clear(self) -> None:
        self.edit.clear_paint()
        self._redraw()

    def _redraw(self) -> None:
        m = self.edit.mask()
        rgb = files.to_uint8(self.image).astype(np.float32)
        tint = 0.55 * (1 - m)[..., None]
        comp = rgb * (1 - tint) + _OVERLAY * tint
        self.canvas.set_composite(np.clip(comp + 0.5, 0, 255).astype(np.uint8))
        self.threshold_label.setText(f"{self.edit.threshold:.2f}")
        self.info.setText(f"foreground {100 * m.mean():.1f}%")
