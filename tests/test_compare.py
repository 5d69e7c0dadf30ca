"""studio.model.compare: kept curves' data and labels (no Qt)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from render_core.fit_config import MODEL_SETTINGS, FitConfig
from studio.model.compare import KeptCurves, auto_label, model_choices


def test_keep_copies_the_curve_and_labels_it_by_model_and_steps():
    kept = KeptCurves()
    calls: list[int] = []
    kept.listeners.append(lambda: calls.append(len(kept.items)))
    history = [{"step": 1, "total": 0.5}, {"step": 2, "total": 0.25}, {"step": 4}]
    a = kept.keep(history, "dibr")
    history.append({"step": 5, "total": 0.1})  # the run goes on: the kept copy does not
    assert a.label == "DIB-R, 4 steps" and a.model == "dibr"
    assert np.array_equal(a.steps, [1, 2, 4])
    assert a.total[:2].tolist() == [0.5, 0.25] and math.isnan(a.total[2])
    b = kept.keep(history[:3], "dibr")
    c = kept.keep(history, "dibr+aa")
    assert (b.label, c.label) == ("DIB-R, 4 steps (2)", "DIB-R + edge antialiasing, 5 steps")
    assert kept.items == [a, b, c] and calls == [1, 2, 3]
    kept.clear()
    kept.clear()  # nothing left: no second notice
    assert kept.items == [] and calls == [1, 2, 3, 0]


def test_an_empty_history_is_refused():
    kept = KeptCurves()
    with pytest.raises(ValueError, match="run the fit first"):
        kept.keep([], "softras")
    assert kept.items == []


def test_every_fit_model_has_a_choice():
    assert [k for k, _ in model_choices()] == list(MODEL_SETTINGS)
    assert len({label for _, label in model_choices()}) == len(MODEL_SETTINGS)


def test_the_automatic_label_names_what_it_renders_with_now():
    cfg = FitConfig(model="nmr")  # whatever is chosen, the Automatic entry says what it'd be
    assert auto_label(cfg) == "Automatic (now DIB-R + edge antialiasing)"
    cfg.weights["l1"] = 0.0
    assert auto_label(cfg) == "Automatic (now DIB-R)"
