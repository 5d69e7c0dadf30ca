"""The main window's session features: File ▸ Open/Save session, Edit ▸ Undo/Redo and "revert
mesh to step", autosave on a timer and on quit, and the crash-recovery question at launch.

The logic lives in :mod:`studio.model.session`, :mod:`studio.model.store`,
:mod:`studio.model.undo` and :mod:`studio.model.autosave`; this module only wires it to menus, a
timer and dialogs. A save takes the fit's checkpoint from wherever it runs
(:meth:`Session.save`), so a saved session keeps the Adam moments.
"""

from __future__ import annotations

import time
from pathlib import Path

from PyQt6.QtCore import QEvent, QObject, QStandardPaths, QTimer
from PyQt6.QtGui import QAction, QKeySequence
from PyQt6.QtWidgets import QFileDialog, QInputDialog, QMessageBox

from ..model import files
from ..model.autosave import DEFAULT_INTERVAL, Autosaver, data_dir
from ..model.store import SESSION_SUFFIX
from ..model.undo import UndoStack

SESSION_FILTER = f"dibr-studio sessions (*{SESSION_SUFFIX})"
AUTOSAVE_KEY = "autosave_seconds"


class SessionActions(QObject):
    """Installed on a :class:`~studio.qt.window.MainWindow` by :func:`install`."""

    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.session = window.session
        self.undo_stack = UndoStack(self.session)
        self.session_path: Path | None = None
        app_data = QStandardPaths.writableLocation(
            QStandardPaths.StandardLocation.AppDataLocation)
        self.autosaver = Autosaver(self.session, data_dir(app_data or None))
        self.crashed = self.autosaver.crashed()  # before start() takes a crashed run's place
        self._finished = False
        try:
            self.autosaver.start()
        except OSError as e:
            window.statusBar().showMessage(f"autosave is off: {e}", 10000)
        self._build_menus()
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.autosave)
        self.set_autosave_interval(self.autosave_interval())
        self.session.subscribe(self._on_session)
        window.losses.step_picked.connect(self.ask_revert)
        window.installEventFilter(self)
        # The scene the window opens with (loaded right after construction) is the base of
        # the undo history, not an edit that Ctrl+Z would take away.
        QTimer.singleShot(0, self.undo_stack.clear)
        if self.crashed:
            QTimer.singleShot(0, self.offer_recovery)

    # -- menus -------------------------------------------------------------------------------

    def _action(self, text: str, slot, shortcuts=()) -> QAction:
        a = QAction(text, self.window)
        a.setShortcuts([QKeySequence(s) for s in shortcuts])
        a.triggered.connect(lambda checked=False: slot())
        return a

    def _build_menus(self) -> None:
        bar = self.window.menuBar()
        file_menu = bar.actions()[0].menu()
        quit_action = file_menu.actions()[-1]
        self.open_action = self._action("Open sess&ion…", self.open_dialog, ("Ctrl+Shift+O",))
        self.save_action = self._action("Sa&ve session", self.save,
                                        (QKeySequence.StandardKey.Save,))
        self.save_as_action = self._action("Save session &as…", self.save_as_dialog,
                                           ("Ctrl+Shift+S",))
        self.interval_action = self._action("Autosave &interval…", self.interval_dialog)
        for a in (self.open_action, self.save_action, self.save_as_action, self.interval_action):
            file_menu.insertAction(quit_action, a)
        file_menu.insertSeparator(quit_action)
        edit = bar.addMenu("&Edit")
        bar.insertMenu(bar.actions()[1], edit)  # after File
        self.undo_action = self._action("&Undo", self.undo, (QKeySequence.StandardKey.Undo,))
        self.redo_action = self._action("&Redo", self.redo, ("Ctrl+Shift+Z", "Ctrl+Y"))
        self.revert_action = self._action("Re&vert mesh to step…", self.revert_dialog)
        for a in (self.undo_action, self.redo_action):
            edit.addAction(a)
        edit.addSeparator()
        edit.addAction(self.revert_action)
        self.undo_stack.listeners.append(self._update_undo)
        self._update_undo()

    def _update_undo(self) -> None:
        self.undo_action.setEnabled(self.undo_stack.can_undo)
        self.redo_action.setEnabled(self.undo_stack.can_redo)

    # -- undo, revert ------------------------------------------------------------------------

    def _guard(self, fn, *args) -> tuple[bool, object]:
        """``(True, result)``, or ``(False, None)`` after showing the error in a dialog."""
        try:
            return True, fn(*args)
        except (files.LoadError, ValueError, RuntimeError, OSError, IndexError) as e:
            self.window.show_error(str(e))
            return False, None

    def undo(self) -> bool:
        return bool(self._guard(self.undo_stack.undo)[1])

    def redo(self) -> bool:
        return bool(self._guard(self.undo_stack.redo)[1])

    def revert_to(self, step: int) -> int | None:
        """Pause, then put the mesh back to step ``step`` (the nearest snapshot before it)."""
        self.window.worker.pause()
        ok, done = self._guard(self.session.revert_to_step, step)
        if ok:
            self.window.statusBar().showMessage(f"reverted the mesh to step {done}", 5000)
        return done

    def ask_revert(self, step: int) -> None:
        """Double-click on the loss plot: confirm, then revert."""
        answer = QMessageBox.question(self.window, "Revert mesh",
                                      f"Revert the mesh to step {step}? Later steps are "
                                      "dropped from the loss history.")
        if answer == QMessageBox.StandardButton.Yes:
            self.revert_to(step)

    def revert_dialog(self) -> None:
        last = self.session.steps
        step, ok = QInputDialog.getInt(self.window, "Revert mesh", "Revert to step:", last, 0,
                                       max(last, 0))
        if ok:
            self.revert_to(step)

    def _on_session(self, event: str) -> None:
        if event in ("session", "revert"):
            self.window.losses.set_history(self.session.history)
            self.window.step_count = self.session.steps
            self.window.status_steps.setText(f"step {self.window.step_count}")

    # -- saving and opening ------------------------------------------------------------------

    def save_to(self, path: str | Path) -> bool:
        """Save the session, with the fit process's optimizer state, to ``path``."""
        if not self._guard(self.session.save, path)[0]:
            return False
        self.session_path = Path(path)
        self.window.statusBar().showMessage(f"saved {Path(path).name}", 5000)
        return True

    def save(self) -> None:
        if self.session_path is None:
            self.save_as_dialog()
        else:
            self.save_to(self.session_path)

    def save_as_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self.window, "Save session",
                                              f"session{SESSION_SUFFIX}", SESSION_FILTER)
        if path:
            if not path.lower().endswith(SESSION_SUFFIX):
                path += SESSION_SUFFIX
            self.save_to(path)

    def open_session(self, path: str | Path) -> bool:
        """Pause and open a saved session; a bad file gets a dialog and changes nothing."""
        self.window.worker.pause()
        ok = self._guard(self.session.open, path)[0]
        if ok:
            self.session_path = Path(path)
        return ok

    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Open session", "",
                                              f"{SESSION_FILTER};;All files (*)")
        if path:
            self.open_session(path)

    # -- autosave and recovery ---------------------------------------------------------------

    def autosave_interval(self) -> float:
        try:
            value = float(self.window.settings.value(AUTOSAVE_KEY, DEFAULT_INTERVAL))
        except (TypeError, ValueError):
            value = DEFAULT_INTERVAL
        return value if value > 0 else DEFAULT_INTERVAL

    def set_autosave_interval(self, seconds: float) -> None:
        self.window.settings.setValue(AUTOSAVE_KEY, float(seconds))
        self.timer.start(int(float(seconds) * 1000))

    def interval_dialog(self) -> None:
        seconds, ok = QInputDialog.getInt(self.window, "Autosave", "Autosave every (seconds):",
                                          int(self.autosave_interval()), 5, 3600)
        if ok:
            self.set_autosave_interval(seconds)

    def autosave(self) -> None:
        try:
            if self.autosaver.save() is not None:
                self.window.statusBar().showMessage("autosaved", 2000)
        except (OSError, RuntimeError, ValueError) as e:  # never a dialog every minute
            self.window.statusBar().showMessage(f"autosave failed: {e}", 10000)

    def offer_recovery(self) -> bool:
        """Ask, for each autosave of a run that crashed, whether to reopen it; True if one was
        recovered. A declined one is deleted; those after a recovered one are kept and
        offered at the next launch."""
        pending = [p for p in self.crashed if p.is_file()]
        for k, path in enumerate(pending):
            which = "" if len(pending) == 1 else (
                f" ({k + 1} of {len(pending)}, autosaved {_mtime(path)})")
            answer = QMessageBox.question(
                self.window, "Recover session",
                "dibr-studio did not exit cleanly last time. "
                f"Recover the autosaved session{which}?")
            if answer != QMessageBox.StandardButton.Yes:
                self._guard(self.autosaver.discard, path)
                continue
            self.window.worker.pause()
            ok = self._guard(self.autosaver.recover, path)[0]
            left = len(pending) - k - 1
            if ok and left:
                self.window.statusBar().showMessage(
                    f"{left} more crashed session(s) will be offered at the next launch", 10000)
            return ok
        return False

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt API)
        # Before the window's own closeEvent stops the worker: the last autosave still
        # takes the checkpoint from the fit process, before it is handed back here.
        if obj is self.window and event.type() == QEvent.Type.Close and not self._finished:
            self._finished = True
            self.timer.stop()
            try:
                self.autosaver.finish()
            except (OSError, RuntimeError, ValueError):
                pass  # quitting must not fail; the marker stays and the next launch offers
        return False


def _mtime(path: Path) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))
    except OSError:
        return "at an unknown time"


def install(window) -> SessionActions:
    """Add the session menus, undo, autosave and recovery to ``window``."""
    return SessionActions(window)
