"""Optimise ▸ Style transfer… and ▸ DeepDream… in the window: the dialogs set up a normal fit
(run, pause, step, curves, revert, export) that shows the render beside the style image."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import trimesh

import render_core as rc
from studio.model.stylize import procedural_style
from studio.qt import stylize_dialogs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the helpers live in tests/
from _stylize import held_out  # noqa: E402


def _menu_texts(window) -> list[str]:
    return [a.text() for m in window.menuBar().actions() if m.text() == "&Optimise"
            for a in m.menu().actions()]


def test_style_transfer_dialog_runs_a_normal_fit(window, qtbot, tmp_path):
    assert "Style &transfer…" in _menu_texts(window)
    window.session.set_mesh(rc.icosphere(subdivisions=3), "sphere")
    dlg = stylize_dialogs.open_dialog(window, "style")
    dlg.source.setCurrentIndex(1)  # Generated: stripes
    dlg.resolution.setValue(40)
    dlg.groups["texture"].setChecked(False)
    dlg.accept()
    s = window.session
    assert s.config.objective["kind"] == "style" and len(s.targets) == 1
    qtbot.waitUntil(lambda: window.images._last is not None
                    and window.images._last["target"].shape[0] == 40, timeout=60000)
    stripes = procedural_style("stripes", 40)
    # The target panel shows the style image (at the fit's resolution)
    assert np.abs(window.images._last["target"] - stripes).mean() < 0.1
    start = held_out(s.fitter())[0]
    window.run()
    qtbot.waitUntil(lambda: window.step_count >= 12, timeout=120000)
    window.pause()
    qtbot.wait(300)
    # The curve is per step, each from other random views; the check is on held-out views.
    style = window.losses.values("style")
    assert len(style) >= 12 and np.isfinite(style).all()
    assert held_out(s.fitter())[0] < start
    at = window.step_count
    window.worker.step(1)
    qtbot.waitUntil(lambda: window.step_count == at + 1, timeout=30000)
    assert s.revert_to_step(10) == 10 and s.steps == 10
    assert s.export_mesh(tmp_path / "styled.ply")
    assert trimesh.load(tmp_path / "styled.ply", process=True).is_watertight


def test_dream_dialog_and_a_bad_weights_file(window, qtbot, tmp_path, monkeypatch):
    errors = []
    monkeypatch.setattr("studio.qt.window.QMessageBox.critical",
                        lambda parent, title, text: errors.append(text))
    window.session.set_mesh(rc.icosphere(subdivisions=2), "sphere")
    before = (window.session.generation, tuple(window.session.targets))
    bad = tmp_path / "weights.pth"
    bad.write_bytes(b"not weights at all")
    dlg = stylize_dialogs.open_dialog(window, "dream")
    dlg.features.setCurrentIndex(1)
    dlg.weights_path.setText(str(bad))
    dlg.accept()
    assert len(errors) == 1 and "weights.pth" in errors[0] and "\n" not in errors[0]
    assert (window.session.generation, tuple(window.session.targets)) == before
    dlg = stylize_dialogs.open_dialog(window, "dream")
    assert dlg.layer.count() == 4
    dlg.layer.setCurrentText("conv2_1")
    dlg.resolution.setValue(32)
    dlg.accept()
    assert window.session.config.objective["layer"] == "conv2_1"
    start = held_out(window.session.fitter())[0]
    window.run()
    qtbot.waitUntil(lambda: window.step_count >= 10, timeout=120000)
    window.pause()
    qtbot.wait(300)
    dream = window.losses.values("dream")
    assert len(dream) >= 10 and np.isfinite(dream).all()
    assert held_out(window.session.fitter())[0] > start  # the activation norm rose
