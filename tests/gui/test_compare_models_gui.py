"""Controls ▸ Rendering model and compare runs (issue 15, item 4): the model box drives the
session and the fit's renderer, a refused combination changes nothing, and a kept loss curve
stays on the plot, labelled, through Reset and a run with another model."""

from __future__ import annotations

import numpy as np

from studio.model.store import SESSION_SUFFIX


def _errors(monkeypatch) -> list[str]:
    shown: list[str] = []
    monkeypatch.setattr("studio.qt.window.QMessageBox.critical",
                        lambda *a, **k: shown.append(a[2]))
    return shown


def _step(window, qtbot, n: int) -> None:
    at = window.session.steps
    window.worker.step(n)
    qtbot.waitUntil(lambda: window.session.steps == at + n
                    and len(window.losses.values("total")) == at + n, timeout=60000)


def _legend(window) -> list[str]:
    return [label.text for _, label in window.losses.plot.getPlotItem().legend.items]


def test_model_box_sets_the_model_and_the_renderer(window, qtbot, monkeypatch, tmp_path):
    errors = _errors(monkeypatch)
    s, box = window.session, window.controls.rendering_model
    window.session_actions.undo_stack.merge_seconds = 0.0  # every choice its own undo step
    # The default is Automatic, which says what it renders with now: the demo's loss has the
    # L1 colour term, so DIB-R with edge antialiasing; without it, plain DIB-R.
    assert box.currentData() == "auto" and box.count() == 5
    assert box.itemText(box.findData("nmr")) == "NMR"
    assert box.currentText() == "Automatic (now DIB-R + edge antialiasing)"
    window.controls.weights["l1"].setValue(0.0)
    assert s.config.weights["l1"] == 0.0 and s.config.model == "auto"
    assert box.currentText() == "Automatic (now DIB-R)"
    window.controls.weights["l1"].setValue(1.0)
    assert box.currentText() == "Automatic (now DIB-R + edge antialiasing)"
    box.setCurrentIndex(box.findData("dibr+aa"))
    assert s.config.model == "dibr+aa"
    _step(window, qtbot, 1)  # the fit (in its process) steps with the new model
    s.frame(0)  # and the fitter here renders with it
    r = s.fitter().renderer
    assert (r.model, r.edges) == ("dibr", "antialias")
    box.setCurrentIndex(box.findData("softras"))
    _step(window, qtbot, 1)
    s.frame(0)
    assert s.config.model == "softras" and s.fitter().renderer.model == "softras"
    assert not errors and window.last_error is None

    assert window.session_actions.undo()  # the box follows undo
    assert s.config.model == "dibr+aa" and box.currentData() == "dibr+aa"
    path = tmp_path / f"aa{SESSION_SUFFIX}"
    s.save(path)
    box.setCurrentIndex(box.findData("dibr"))
    assert s.config.model == "dibr"
    s.open(path)  # and an opened session
    assert s.config.model == "dibr+aa" and box.currentData() == "dibr+aa"


def test_softras_with_lighting_is_refused_and_changes_nothing(window, qtbot, monkeypatch):
    errors = _errors(monkeypatch)
    s, c = window.session, window.controls
    box = c.rendering_model
    c.shading.setCurrentText("lambertian")
    assert s.config.shading == "lambertian"
    generation, before = s.generation, s.config.to_dict()
    box.setCurrentIndex(box.findData("softras"))
    assert len(errors) == 1 and errors[0] == window.last_error
    assert "softras" in errors[0] and "vertex_color" in errors[0]
    assert s.config.to_dict() == before and s.generation == generation
    assert box.currentData() == "auto"  # the box shows the session's setting again
    # The other way round: SoftRas first, then a lit shading is refused the same way.
    c.shading.setCurrentText("vertex_color")
    box.setCurrentIndex(box.findData("softras"))
    assert s.config.model == "softras" and len(errors) == 1
    c.shading.setCurrentText("lambertian")
    assert len(errors) == 2 and s.config.shading == "vertex_color"
    assert c.shading.currentText() == "vertex_color"


def test_kept_curve_stays_through_reset_and_a_run_with_another_model(window, qtbot,
                                                                       monkeypatch):
    errors = _errors(monkeypatch)
    s, box, plot = window.session, window.controls.rendering_model, window.losses
    cr = window.compare_runs
    cr.keep_action.trigger()  # nothing has run yet: nothing to keep
    assert len(errors) == 1 and "run the fit first" in errors[0] and not plot.kept_items
    _step(window, qtbot, 3)
    first = [m["total"] for m in s.history]
    cr.keep_action.trigger()
    assert len(errors) == 1
    # Kept under the default setting: labelled with what Automatic rendered with.
    aa3, dibr2 = "DIB-R + edge antialiasing, 3 steps", "DIB-R, 2 steps"
    assert [c.label for c in cr.kept.items] == [aa3]
    window.reset()
    qtbot.wait(300)
    assert s.steps == 0 and len(plot.values("total")) == 0  # the live curve restarts
    box.setCurrentIndex(box.findData("dibr"))
    _step(window, qtbot, 2)
    assert [int(m["step"]) for m in s.history] == [1, 2] and s.config.model == "dibr"
    plot.flush()
    (item,) = plot.kept_items
    assert item in plot.plot.getPlotItem().listDataItems()
    x, y = item.getOriginalDataset()
    assert np.array_equal(x, [1, 2, 3]) and np.allclose(y, first)
    assert dibr2 not in _legend(window) and aa3 in _legend(window)
    cr.keep_action.trigger()
    assert [c.label for c in cr.kept.items] == [aa3, dibr2]
    assert len(plot.kept_items) == 2 and {aa3, dibr2} <= set(_legend(window))
    cr.clear_action.trigger()
    assert not plot.kept_items and not cr.kept.items
    assert not any("steps" in t for t in _legend(window))
    assert plot.values("total").shape == (2,)  # the live run is untouched
