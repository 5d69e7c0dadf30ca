"""Session snapshots and "revert mesh to step k" (no Qt)."""

from __future__ import annotations

import numpy as np
import pytest
from test_session_store import make_session


def test_revert_restores_the_parameters_and_cuts_the_history(tmp_path):
    s = make_session(tmp_path)
    s.snapshot_every = 2
    events = []
    s.subscribe(events.append)
    for _ in range(7):
        s.step()
    assert s.snapshot_steps() == [0, 2, 4, 6]
    history = list(s.history)
    reference = make_session(tmp_path)
    for _ in range(4):
        reference.step()
    gen = s.generation

    assert s.revert_to_step(5) == 4
    assert events[-1] == "revert" and s.generation == gen + 1
    assert s.steps == 4 and s.history == history[:4] and s.snapshot_steps() == [0, 2, 4]
    assert np.array_equal(s.current_mesh().vertices, reference.current_mesh().vertices)
    assert np.array_equal(s.fitter().camera_params(), reference.fitter().camera_params())
    # The studio's fit process starts the new generation from the reverted state.
    resume = s.resume_checkpoint(s.generation)
    assert resume["state"]["steps"] == 4 and resume["optimizer"]  # moments restart:
    assert all(m is None for g in resume["optimizer"].values() for m in g["moments"])
    # The next step evaluates the parameters of step 4 again: the loss it had then.
    m = s.step()
    assert m["step"] == 5 and m["total"] == pytest.approx(history[4]["total"], rel=1e-6)

    assert s.revert_to_step(0) == 0 and s.history == [] and s.steps == 0
    with pytest.raises(ValueError, match="step -1"):
        s.revert_to_step(-1)


def test_snapshots_stay_bounded(tmp_path):
    s = make_session(tmp_path)
    s.snapshots.limit = 8
    s.set_option(resolution=12)
    s.snapshot_every = 1
    for _ in range(30):
        s.step()
    steps = s.snapshot_steps()
    assert len(steps) <= 8 and steps[0] == 0 and steps[-1] == 30
    assert steps == sorted(steps)
    assert s.revert_to_step(29) == max(k for k in steps if k <= 29)


def test_revert_before_any_step_is_an_error(tmp_path):
    s = make_session(tmp_path)
    with pytest.raises(RuntimeError, match="not run"):
        s.revert_to_step(3)
