"""``FitConfig.views_per_step``: a random subset of the targets per step (issue: speed, 4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _scenes import orbit_targets, stretched_sphere

import render_core as rc
from render_core._views import step_views
from render_core.fit import FitConfig, Fitter


@pytest.fixture(scope="module")
def problem():
    views = [(a, e) for a, e in zip(range(0, 360, 60), (10, -10, 30, 0, 20, -20), strict=True)]
    return rc.icosphere(subdivisions=1), orbit_targets(stretched_sphere(), views, res=24)


def _config(**kw) -> FitConfig:
    cfg = FitConfig(resolution=24, backend="torch", **kw)
    cfg.groups["colors"].enabled = True
    return cfg


def test_subsets_are_reproducible_and_fair():
    assert step_views(6, None, 3) is None
    assert step_views(6, 6, 3) is None and step_views(6, 9, 3) is None
    draws = [step_views(6, 2, s) for s in range(3000)]
    assert all(len(d) == 2 and len(set(d)) == 2 and d == sorted(d) for d in draws)
    assert draws[:50] == [step_views(6, 2, s) for s in range(50)]  # a function of the step
    assert len({tuple(d) for d in draws}) == 15  # every pair of 6 turns up
    counts = np.bincount(np.concatenate(draws), minlength=6)
    # 1000 expected per view; the binomial sd is ~26, so 5 sd either side
    assert counts.min() > 870 and counts.max() < 1130, counts


def test_a_subset_step_is_the_step_of_a_fit_on_those_targets(problem):
    """The oracle: a fit whose only targets are the chosen ones, rendering all of them."""
    start, targets = problem
    sub = Fitter(start, targets, _config(views_per_step=2))
    for _ in range(3):
        views = step_views(len(targets), 2, sub.steps)
        alone = Fitter(start, [targets[i] for i in views], _config())
        alone.load_state({**sub.state(), "cam_delta": sub.cam_delta[views].clone()})
        # fresh optimizers on both sides: compare the first Adam step from equal parameters
        sub._opt_key = None
        sub.apply_config(sub.config)
        ra, rb = sub.step(), alone.step()
        assert ra.loss == pytest.approx(rb.loss, rel=1e-6, abs=1e-9)
        assert ra.iou == pytest.approx(rb.iou, abs=1e-9)
        torch.testing.assert_close(sub.current_mesh().vertices, alone.current_mesh().vertices)
        torch.testing.assert_close(sub.current_mesh().vertex_colors,
                                   alone.current_mesh().vertex_colors)


def test_a_continued_subset_fit_matches_the_uninterrupted_one(problem):
    start, targets = problem
    a = Fitter(start, targets, _config(views_per_step=3))
    losses = [a.step().loss for _ in range(5)]
    b = Fitter(start, targets, _config(views_per_step=3))
    for _ in range(2):
        b.step()
    c = Fitter(start, targets, _config())
    c.restore(b.checkpoint())
    assert [c.step().loss for _ in range(3)] == pytest.approx(losses[2:], rel=1e-6)


def test_the_subset_fit_converges(problem):
    start, targets = problem
    before = Fitter(start, targets, _config()).step()  # every view, from the start
    f = Fitter(start, targets, _config(views_per_step=2))
    for _ in range(60):
        f.step()
    after = Fitter(f.current_mesh(), targets, _config()).step()  # every view, at the end
    assert after.terms["iou"] < 0.5 * before.terms["iou"], (before.terms, after.terms)
    assert after.terms["l1"] < 0.7 * before.terms["l1"], (before.terms, after.terms)
    assert after.iou > before.iou + 0.05


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_views_per_step_is_refused(bad):
    with pytest.raises(ValueError, match="views_per_step"):
        FitConfig(views_per_step=bad).validate()
