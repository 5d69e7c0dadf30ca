"""Compare runs: View ▸ Keep curve for comparison / Clear kept curves.

Keeping puts the current run's total-loss curve on the loss plot for good, labelled with its
rendering model and step count (:class:`studio.model.compare.KeptCurves` holds the data); Reset
then starts a new run from the same initial state, with whatever model the Controls choose,
and draws it over the kept ones.
"""

from __future__ import annotations

from PyQt6.QtCore import QObject
from PyQt6.QtGui import QAction, QKeySequence

from ..model.compare import KeptCurves


class CompareRuns(QObject):
    """Installed on a :class:`~studio.qt.window.MainWindow` by :func:`install`."""

    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.kept = KeptCurves()
        self.kept.listeners.append(lambda: window.losses.set_kept(self.kept.items))
        view = next(a.menu() for a in window.menuBar().actions() if a.text() == "&View")
        view.addSeparator()
        self.keep_action = QAction("&Keep curve for comparison", window)
        self.keep_action.setShortcut(QKeySequence("Ctrl+K"))
        self.keep_action.setToolTip("Keep this run's loss curve on the plot; Reset then starts "
                                    "another run from the same initial state")
        self.keep_action.triggered.connect(lambda checked=False: self.keep())
        self.clear_action = QAction("C&lear kept curves", window)
        self.clear_action.triggered.connect(lambda checked=False: self.kept.clear())
        view.addAction(self.keep_action)
        view.addAction(self.clear_action)

    def keep(self) -> bool:
        """Keep the current run's curve; an empty history shows an error instead."""
        s = self.window.session
        with s.locked():
            history, model = list(s.history), s.config.rendering_model()
        try:
            curve = self.kept.keep(history, model)
        except ValueError as e:
            self.window.show_error(str(e))
            return False
        self.window.statusBar().showMessage(
            f"Kept \u201c{curve.label}\u201d; Reset (Ctrl+R) starts another run from the same "
            "initial state", 10000)
        return True


def install(window) -> CompareRuns:
    return CompareRuns(window)
