"""Coarse to fine: ``FitConfig.resolution_schedule`` (issue: geometry, 4).

The level a step renders at is a function of the step number, with targets resampled and
sigma scaled per level; a fit continued from a checkpoint or a reopened session, mid-schedule
and across a level change, has exactly the losses of the uninterrupted one."""

from __future__ import annotations

import pytest
import torch
from _scenes import orbit_targets, stretched_sphere

import render_core as rc
from render_core.fit import FitConfig, Fitter
from render_core.resolution_schedule import level_at

VIEWS = [(0, 10), (90, -10), (180, 30), (270, 0)]
SCHEDULE = [(16, 0), (24, 3), (32, 5)]


@pytest.fixture(scope="module")
def targets():
    return orbit_targets(stretched_sphere(), VIEWS, res=48)


def _config(**kw) -> FitConfig:
    cfg = FitConfig(resolution=16, backend="torch", large_steps=19.0, **kw)
    cfg.groups["vertices"].lr = 0.02
    return cfg


def test_parse_and_levels():
    parse, fmt = rc.parse_resolution_schedule, rc.format_resolution_schedule
    assert parse("64:0, 128:100,256:200") == [(64, 0), (128, 100), (256, 200)]
    assert fmt(parse("64:0,128:100")) == "64:0,128:100"
    for bad, what in [("64", "RES:STEP"), ("64:x", "RES:STEP"), ("", "empty"),
                      ("64:10,128:10", "increase"), ("4:0", "8..2048"), ("64:-1", "negative")]:
        with pytest.raises(ValueError, match=what):
            parse(bad)
    sched = [(64, 10), (128, 20)]
    assert level_at(32, 1e-4, sched, 0) == (32, 1e-4)  # before the first start: resolution
    assert level_at(32, 1e-4, sched, 10) == (64, pytest.approx(0.25e-4))
    assert level_at(32, 1e-4, sched, 19)[0] == 64
    assert level_at(32, 1e-4, sched, 20) == (128, pytest.approx(1e-4 / 16))
    assert level_at(32, 1e-4, None, 99) == (32, 1e-4)
    # a pixel at distance 2 with a 90 degree fov over 100 rows: 4 units / 100
    assert rc.pixel_size(100, 2.0, 90.0) == pytest.approx(0.04)


@pytest.mark.parametrize("bad", ["64:0", [(64,)], [(64, 0), (32, 0)], [(True, 0)], [],
                                 [(4096, 0)], [(64, 1.5)]])
def test_bad_schedules_are_refused(bad):
    with pytest.raises(ValueError, match="resolution_schedule"):
        FitConfig(resolution_schedule=bad).validate()


def test_each_level_is_the_fit_at_that_resolution(targets):
    """The oracle: a Fitter without a schedule, at the level's resolution and scaled sigma,
    loaded with the scheduled fit's state, gives the same loss and the same step."""
    start = rc.icosphere(subdivisions=2)
    f = Fitter(start, targets, _config(resolution_schedule=SCHEDULE))
    seen = []
    for _ in range(6):
        res, sigma = level_at(16, f.config.sigma, SCHEDULE, f.steps)
        assert f.target_images()[1].shape[1:] == (res, res)
        cfg = _config()
        cfg.resolution, cfg.sigma = res, sigma
        alone = Fitter(start, targets, cfg)
        alone.restore({**f.checkpoint(), "config": alone.config.to_dict()})
        ra, rb = f.step(), alone.step()
        assert ra.loss == pytest.approx(rb.loss, rel=1e-6, abs=1e-9)
        torch.testing.assert_close(f.current_mesh().vertices, alone.current_mesh().vertices)
        seen.append(res)
    assert seen == [16, 16, 16, 24, 24, 32]
    # the targets are resampled from the originals at every level, not from the last level
    mask = torch.nn.functional.interpolate(
        torch.from_numpy(targets[0].mask)[None, None], size=(32, 32), mode="area")[0, 0]
    torch.testing.assert_close(f.target_images()[1][0], mask)


def test_a_checkpoint_mid_schedule_continues_exactly(targets):
    start = rc.icosphere(subdivisions=2)
    a = Fitter(start, targets, _config(resolution_schedule=SCHEDULE))
    losses = [a.step().loss for _ in range(7)]
    b = Fitter(start, targets, _config(resolution_schedule=SCHEDULE))
    for _ in range(2):  # stop one step before the first change of level
        b.step()
    c = Fitter(start, targets, _config())  # no schedule: the checkpoint brings it
    c.restore(b.checkpoint())
    assert c.config.resolution_schedule == SCHEDULE
    assert [c.step().loss for _ in range(5)] == pytest.approx(losses[2:], rel=1e-6, abs=1e-9)


def test_a_saved_session_mid_schedule_continues_exactly(targets, tmp_path):
    from studio.model.session import Session

    s = Session()
    s.set_mesh(rc.icosphere(subdivisions=2))
    s.set_targets(targets)
    s.set_config(_config())
    s.set_option(resolution_schedule=SCHEDULE)
    for _ in range(4):  # inside the second level
        s.step()
    path = s.save(tmp_path / "s.zip")
    t = Session()
    t.open(path)
    assert t.config.resolution_schedule == SCHEDULE
    for _ in range(3):  # on across the change to the third level
        assert t.step()["total"] == pytest.approx(s.step()["total"], rel=1e-6, abs=1e-9)
