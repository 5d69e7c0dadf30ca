"""Sessions in the window: save/open through the fit process, undo/redo actions, revert from
the loss plot, and the recovery question after a crash."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PyQt6.QtCore import QPointF

from studio.model.autosave import Autosaver
from studio.model.session import Session
from studio.model.store import read_session


def _steps(window, qtbot, n: int) -> None:
    target = window.session.steps + n
    window.worker.step(n)
    qtbot.waitUntil(lambda: window.session.steps >= target, timeout=60000)
    qtbot.waitUntil(lambda: not window.worker._pending_steps, timeout=10000)


def test_saved_session_resumes_in_the_fit_process(window, qtbot, tmp_path):
    actions = window.session_actions
    _steps(window, qtbot, 4)
    path = tmp_path / "run.zip"
    assert actions.save_to(path)
    data = read_session(path)
    n = data.checkpoint["state"]["steps"]
    assert n == window.session.steps >= 4 and len(data.history) == len(window.session.history)
    moments = data.checkpoint["optimizer"]["vertices"]["moments"][0]
    assert float(moments["step"]) == n and float(moments["exp_avg_sq"].abs().sum()) > 0

    _steps(window, qtbot, 1)  # the uninterrupted run's next step
    expected = window.session.history[-1]
    assert expected["step"] == n + 1

    assert actions.open_session(path)
    assert window.session.steps == n and len(window.losses.values("total")) == len(data.history)
    _steps(window, qtbot, 1)
    resumed = window.session.history[-1]
    assert resumed["step"] == n + 1
    assert resumed["total"] == pytest.approx(expected["total"], rel=1e-6, abs=1e-7)


def test_bad_session_file_shows_a_dialog(window, qtbot, tmp_path, monkeypatch):
    shown = []
    monkeypatch.setattr("studio.qt.window.QMessageBox.critical",
                        lambda *a, **k: shown.append(a[2]))
    good = tmp_path / "good.zip"
    assert window.session_actions.save_to(good)
    bad = tmp_path / "evil.zip"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(bad, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info))
        zout.writestr("../../escape.txt", b"x")
    mesh, gen = window.session.initial_mesh, window.session.generation
    assert not window.session_actions.open_session(bad)
    assert shown and "evil.zip" in shown[-1] and "unsafe path" in shown[-1]
    assert window.session.initial_mesh is mesh and window.session.generation == gen


def test_undo_and_redo_actions(window, qtbot):
    actions = window.session_actions
    assert not actions.undo_action.isEnabled()  # the opening scene is the base, not an edit
    assert actions.undo_action.shortcut().toString() == "Ctrl+Z"
    assert "Ctrl+Shift+Z" in [s.toString() for s in actions.redo_action.shortcuts()]
    window.session.set_option(resolution=40)
    window.session.set_group("light", enabled=True)
    actions.undo_action.trigger()
    assert not window.session.config.groups["light"].enabled
    actions.undo_action.trigger()
    assert window.session.config.resolution == 32
    actions.redo_action.trigger()
    assert window.session.config.resolution == 40
    window.session.set_target_camera(0, 10.0, 5.0, 3.0, 45.0)
    actions.undo_action.trigger()
    assert window.session.targets[0].azimuth == 0.0


def test_revert_from_the_loss_plot(window, qtbot, monkeypatch):
    from PyQt6.QtWidgets import QMessageBox

    monkeypatch.setattr("studio.qt.session_actions.QMessageBox.question",
                        lambda *a, **k: QMessageBox.StandardButton.Yes)
    _steps(window, qtbot, 6)
    history = list(window.session.history)
    window.losses.flush()
    vb = window.losses.plot.getPlotItem().vb
    # The view box fits its range to the new curve lazily (before its next paint): map the
    # click only once the range covers the run, as it does on the screen the user clicks.
    qtbot.waitUntil(lambda: vb.viewRange()[0][1] >= len(history), timeout=10000)
    y = vb.viewRange()[1][0]

    class DoubleClick:  # what pyqtgraph's scene reports for a double-click at step 3
        def double(self):
            return True

        def scenePos(self):  # noqa: N802
            return vb.mapViewToScene(QPointF(3.2, y))

    picked = []
    window.losses.step_picked.connect(picked.append)
    window.losses._clicked(DoubleClick())
    assert picked == [3]
    s = window.session.steps
    assert s <= 3 and s in window.session.snapshot_steps()
    assert len(window.session.history) == s and len(window.losses.values("total")) == s
    _steps(window, qtbot, 1)
    # The first step after the revert evaluates the parameters of step s: same loss as then.
    assert window.session.history[-1]["step"] == s + 1
    assert window.session.history[-1]["total"] == pytest.approx(history[s]["total"],
                                                                rel=1e-6, abs=1e-7)


def test_recovery_question_after_a_crash(qtbot, settings, studio_data, monkeypatch):
    from PyQt6.QtWidgets import QMessageBox

    from studio.qt.window import MainWindow

    crashed = Session()
    crashed.load_demo()
    crashed.set_option(resolution=16)
    for _ in range(3):
        crashed.step()
    saver = Autosaver(crashed, studio_data)
    saver.start()
    assert saver.save(force=True) == saver.path
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    saver.marker.write_text(json.dumps({"pid": dead.pid}))  # its process is gone: a crash

    asked = []
    monkeypatch.setattr("studio.qt.session_actions.QMessageBox.question",
                        lambda *a, **k: asked.append(a[2]) or QMessageBox.StandardButton.Yes)
    win = MainWindow(Session(), settings=settings)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.session.steps == 3, timeout=10000)
    assert asked and "Recover" in asked[0]
    assert win.session.config.resolution == 16 and len(win.losses.values("total")) == 3
    assert np.allclose(win.session.current_mesh().vertices, crashed.current_mesh().vertices)
    win.close()
    assert not saver.marker.exists() and not Autosaver(Session(), studio_data).recoverable()


def test_every_crashed_autosave_is_offered_in_turn(qtbot, settings, studio_data, monkeypatch):
    from PyQt6.QtWidgets import QMessageBox

    from studio.qt.window import MainWindow

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    paths = []
    for steps, marker in ((1, "running.json"), (2, f"running-{dead.pid}.json")):
        crashed = Session()
        crashed.load_demo()
        crashed.set_option(resolution=16)
        for _ in range(steps):
            crashed.step()
        studio_data.mkdir(exist_ok=True)
        path = studio_data / ("autosave.zip" if steps == 1 else f"autosave-{dead.pid}.zip")
        crashed.save(path)
        (studio_data / marker).write_text(json.dumps({"pid": dead.pid}))
        paths.append(path)

    asked = []
    answers = iter([QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes])
    monkeypatch.setattr("studio.qt.session_actions.QMessageBox.question",
                        lambda *a, **k: asked.append(a[2]) or next(answers))
    win = MainWindow(Session(), settings=settings)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.session.steps == 2, timeout=10000)
    assert len(asked) == 2 and "1 of 2" in asked[0] and "2 of 2" in asked[1]
    # The first was declined (deleted); the window, which took the first pair's place, now
    # owns the recovered one there.
    assert win.session_actions.autosaver.path == paths[0] and not paths[1].exists()
    assert len(read_session(paths[0]).history) == 2
    win.close()
    assert not Autosaver(Session(), studio_data).recoverable()
