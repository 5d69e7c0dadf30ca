"""pyqtgraph panels: render / target / difference images, and the live loss curves."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt6.QtCore import Qt, QTimer, pyqtSignal
from PyQt6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from render_core.fit import LOSS_TERMS
from render_core.objectives import OBJECTIVE_TERMS

pg.setConfigOptions(imageAxisOrder="row-major", antialias=False, useOpenGL=False)

CURVE_COLORS = {"total": "#ffffff", "iou": "#ff6b6b", "l1": "#4dabf7", "laplacian": "#69db7c",
                "normal": "#ffd43b", "edge": "#da77f2", "texture_tv": "#ffa94d",
                "style": "#f783ac", "dream": "#38d9a9"}
# Kept runs' total curves (compare runs): dashed, in colours none of the live curves use.
KEPT_COLORS = ("#fd7e14", "#15aabf", "#c0c0c0", "#e8a87c", "#b8e994", "#d7bde2")


class ImagePanels(QWidget):
    """Three images side by side for the selected target view: render, target, and either
    the absolute difference or an overlay (target silhouette in cyan over the render)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.glw = pg.GraphicsLayoutWidget()
        self.glw.setBackground("#202226")
        self.images: dict[str, pg.ImageItem] = {}
        self.boxes: dict[str, pg.ViewBox] = {}
        self.titles = {"render": "Render", "target": "Target", "third": "Difference ×2"}
        for col, key in enumerate(("render", "target", "third")):
            vb = self.glw.addViewBox(row=1, col=col, lockAspect=True, enableMouse=False)
            self.glw.ci.layout.setColumnStretchFactor(col, 1)
            vb.invertY(True)
            vb.setMenuEnabled(False)
            vb.disableAutoRange()
            self.boxes[key] = vb
            item = pg.ImageItem()
            vb.addItem(item)
            self.images[key] = item
            label = self.glw.addLabel(self.titles[key], row=0, col=col, size="9pt")
            if key == "third":
                self.third_label = label
        self.mode = QComboBox()
        self.mode.addItems(["Difference", "Overlay"])
        self.mode.setToolTip("Overlay: render and target blended; cyan where the silhouettes "
                             "(render alpha > 0.5, target mask > 0.5) disagree")
        self.mode.currentIndexChanged.connect(self._redraw)
        self.view_combo = QComboBox()
        self.view_combo.setMinimumContentsLength(12)
        top = QHBoxLayout()
        top.setContentsMargins(4, 2, 4, 0)
        top.addWidget(QLabel("Target view:"))
        top.addWidget(self.view_combo, 1)
        top.addSpacing(12)
        top.addWidget(QLabel("Third panel:"))
        top.addWidget(self.mode)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addLayout(top)
        lay.addWidget(self.glw, 1)
        self._last: dict | None = None

    def set_view_names(self, names: list[str], current: int = 0) -> None:
        self.view_combo.blockSignals(True)
        self.view_combo.clear()
        self.view_combo.addItems(names)
        self.view_combo.setCurrentIndex(min(current, max(len(names) - 1, 0)))
        self.view_combo.blockSignals(False)

    def set_frame(self, render: np.ndarray, target: np.ndarray, alpha: np.ndarray,
                  mask: np.ndarray) -> None:
        """sRGB images [H,W,3] in [0,1] and masks [H,W] of the selected view."""
        self._last = {"render": render, "target": target, "alpha": alpha, "mask": mask}
        self._redraw()

    def clear(self) -> None:
        self._last = None
        for item in self.images.values():
            item.clear()

    def _redraw(self) -> None:
        if self._last is None:
            return
        r, t = self._last["render"], self._last["target"]
        if self.mode.currentIndex() == 0:
            third = np.clip(np.abs(r - t) * 2.0, 0, 1)
            self.third_label.setText("Difference ×2")
        else:
            edge = self._last["mask"] > 0.5
            third = 0.7 * r + 0.3 * t
            third[edge ^ (self._last["alpha"] > 0.5)] = (0.1, 0.9, 0.9)
            self.third_label.setText("Overlay")
        h, w = r.shape[:2]
        for key, img in (("render", r), ("target", t), ("third", third)):
            self.images[key].setImage((np.clip(img, 0, 1) * 255).astype(np.uint8),
                                      levels=(0, 255), autoLevels=False)
            # The same range everywhere, so the three panels show pixels at one scale.
            self.boxes[key].setRange(xRange=(0, w), yRange=(0, h), padding=0.02)


class LossPlot(QWidget):
    """Loss curves: the weighted total and every unweighted term, against the step.

    Double-clicking the plot emits ``step_picked`` with the step under the pointer (the
    studio offers to revert the mesh to it)."""

    step_picked = pyqtSignal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.plot = pg.PlotWidget()
        self.plot.setBackground("#202226")
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.plot.setLabel("bottom", "step")
        self.plot.addLegend(offset=(-10, 10), labelTextSize="8pt")
        self.curves = {}
        for name in ("total",) + LOSS_TERMS + OBJECTIVE_TERMS:
            pen = pg.mkPen(CURVE_COLORS[name], width=2 if name == "total" else 1)
            self.curves[name] = self.plot.plot([], [], pen=pen, name=name)
        self.log = QCheckBox("log scale")
        self.log.setChecked(True)
        self.log.toggled.connect(self._set_log)
        self.iou_label = QLabel("silhouette IoU: –")
        bar = QHBoxLayout()
        bar.setContentsMargins(4, 0, 4, 0)
        bar.addWidget(QLabel("Losses"))
        bar.addStretch(1)
        bar.addWidget(self.iou_label)
        bar.addSpacing(12)
        bar.addWidget(self.log)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addLayout(bar)
        lay.addWidget(self.plot, 1)
        # Curves redraw at most every 200 ms: a plot repaint is the costliest thing the
        # window does per frame, and nobody reads a loss curve at 30 fps.
        self._redraw_timer = QTimer(self)
        self._redraw_timer.setSingleShot(True)
        self._redraw_timer.setInterval(200)
        self._redraw_timer.timeout.connect(self._refresh)
        self._steps: list[int] = []
        self._values: dict[str, list[float]] = {k: [] for k in self.curves}
        self.kept_items: list[pg.PlotDataItem] = []  # kept runs' curves (set_kept)
        self._kept: list = []
        self._set_log(True)
        self.plot.scene().sigMouseClicked.connect(self._clicked)

    def _clicked(self, ev) -> None:
        if ev.double() and self._steps:
            x = self.plot.getPlotItem().vb.mapSceneToView(ev.scenePos()).x()
            self.step_picked.emit(int(np.clip(round(x), 0, max(self._steps))))

    def set_history(self, metrics: list[dict]) -> None:
        """Show exactly these steps (e.g. after a revert or an opened session)."""
        self.clear()
        self.append(metrics)
        self.flush()

    def _set_log(self, on: bool) -> None:
        self.plot.setLogMode(y=on)
        self._refresh()
        self._draw_kept()

    def set_kept(self, curves: list) -> None:
        """Draw these kept runs' total losses (:class:`studio.model.compare.KeptCurve`), dashed
        and labelled in the legend, beside the live curves; they stay through :meth:`clear`."""
        for item in self.kept_items:
            self.plot.removeItem(item)  # and its legend entry
        self._kept = list(curves)
        self.kept_items = []
        for i, c in enumerate(self._kept):
            pen = pg.mkPen(KEPT_COLORS[i % len(KEPT_COLORS)], width=2,
                           style=Qt.PenStyle.DashLine)
            self.kept_items.append(self.plot.plot([], [], pen=pen, name=c.label))
        self._draw_kept()

    def _draw_kept(self) -> None:
        log = self.log.isChecked()
        for c, item in zip(self._kept, self.kept_items, strict=True):
            y = np.where(c.total > 0, c.total, np.nan) if log else c.total
            item.setData(c.steps.astype(np.float64), y, connect="finite")

    def clear(self) -> None:
        self._steps.clear()
        for v in self._values.values():
            v.clear()
        self.iou_label.setText("silhouette IoU: –")
        # A new history gets its own axes, even if the user zoomed or panned the last one.
        self.plot.enableAutoRange()
        self._refresh()

    def append(self, metrics: list[dict]) -> None:
        """Add steps' history records (:meth:`StepResult.record`) and redraw once."""
        for m in metrics:
            self._steps.append(int(m.get("step", len(self._steps) + 1)))
            for k, v in self._values.items():
                v.append(float(m.get(k, np.nan)))
        if metrics:
            self.iou_label.setText(f"silhouette IoU: {metrics[-1].get('silhouette_iou', 0):.3f}")
        if not self._redraw_timer.isActive():
            self._redraw_timer.start()

    def flush(self) -> None:
        """Redraw now (e.g. when the run pauses)."""
        self._redraw_timer.stop()
        self._refresh()

    def values(self, name: str) -> np.ndarray:
        return np.asarray(self._values[name], np.float64)

    def _refresh(self) -> None:
        x = np.asarray(self._steps, np.float64)
        log = self.log.isChecked()
        for k, c in self.curves.items():
            y = np.asarray(self._values[k], np.float64)
            if log:
                # Zero terms (disabled groups) have no logarithm: hide them instead of warning.
                y = np.where(y > 0, y, np.nan)
            c.setData(x, y, connect="finite")
