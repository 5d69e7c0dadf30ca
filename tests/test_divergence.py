"""Divergence: non-finite steps are rolled back, the offending group's learning rate is halved,
and a run never ends in NaNs (render_core.Fitter and the studio's Session)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import render_core as rc
from render_core.fit import GROUPS, FitConfig, Fitter, ParamGroup, TargetView
from studio.model.session import Session


@pytest.fixture(scope="module")
def targets() -> list[TargetView]:
    mesh = rc.icosphere(subdivisions=1)
    mesh = mesh.with_(vertices=mesh.vertices * torch.tensor([1.3, 0.8, 1.0]),
                      vertex_colors=(mesh.vertices * 0.5 + 0.5).clamp(0, 1))
    cams = rc.Camera.orbit([0.0, 100.0], [10.0, -20.0], 3.0, fov=50.0)
    out = rc.Renderer(16, sigma=1e-5).render(mesh, cams)
    rgb = rc.linear_to_srgb(out.rgb.clamp(0, 1)).numpy()
    mask = out.frags.mask.float().numpy()
    return [TargetView(rgb[i], mask[i], a, e, 3.0, 50.0)
            for i, (a, e) in enumerate([(0.0, 10.0), (100.0, -20.0)])]


def _config(**lrs: float) -> FitConfig:
    cfg = FitConfig(resolution=16)
    cfg.groups = {g: ParamGroup(g in lrs, lrs.get(g, 0.01)) for g in GROUPS}
    return cfg


def _params_finite(f: Fitter) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in (f.offset, f.color_logit, f.cam_delta,
                                                       f.light_dir, f.sh)) and \
        (f.tex_logit is None or bool(torch.isfinite(f.tex_logit).all()))


def _optimizer_lr(f: Fitter, name: str) -> float:
    return next(pg["lr"] for pg in f._optimizer.param_groups if pg["name"] == name)


def test_infinite_gradient_rolls_back_and_halves_that_group(targets):
    f = Fitter(rc.icosphere(subdivisions=1), targets, _config(vertices=0.01, colors=0.05))
    f.step()
    before = (f.offset.detach().clone(), f.color_logit.detach().clone())
    hook = f.color_logit.register_hook(lambda g: torch.full_like(g, math.inf))
    m = f.step()
    hook.remove()
    assert m.rolled_back and m.lr_halved == ("colors",) and not m.undone
    assert m.lr == {"colors": 0.025} and f.config.groups["colors"].lr == 0.025
    assert _optimizer_lr(f, "colors") == 0.025
    assert f.config.groups["vertices"].lr == 0.01 and _optimizer_lr(f, "vertices") == 0.01
    assert torch.equal(f.offset, before[0]) and torch.equal(f.color_logit, before[1])
    assert f.steps == 1 and f.rejected == 1
    record = m.record()  # the flat form kept in histories, session files and history.json
    assert record["lr_halved"] == "colors" and record["lr_colors"] == 0.025
    assert record["rolled_back"] and record["step"] == 1 and record["total"] == m.loss
    m = f.step()
    assert not m.rolled_back and m.lr_halved == () and f.steps == 2
    assert m.record()["lr_halved"] == "" and not any(k.startswith("lr_c") for k in m.record())


def test_overflowing_update_halves_until_the_run_is_finite(targets):
    """Colour logits at the edge of float32 with a steady push: every update that overflows
    is rolled back and halves the rate; no parameter is ever non-finite."""
    f = Fitter(rc.icosphere(subdivisions=1), targets, _config(colors=1e37))
    with torch.no_grad():
        f.color_logit.fill_(3.39e38)  # sigmoid = 1: a finite loss, at the edge of overflow
    hook = f.color_logit.register_hook(lambda g: torch.full_like(g, -1.0))
    halvings = 0
    for _ in range(40):
        m = f.step()
        assert _params_finite(f) and math.isfinite(m.loss)
        if m.lr_halved:
            assert m.rolled_back and m.lr_halved == ("colors",)
            halvings += 1
    hook.remove()
    assert halvings >= 3 and f.steps >= 1
    assert f.config.groups["colors"].lr == pytest.approx(1e37 / 2**halvings)
    assert _optimizer_lr(f, "colors") == f.config.groups["colors"].lr


def test_step_size_beyond_float_range_is_refused_not_raised(targets):
    f = Fitter(rc.icosphere(subdivisions=1), targets, _config(texture=3e38))
    for _ in range(12):
        f.step()
        assert _params_finite(f)
    assert f.steps >= 1 and f.rejected >= 1
    assert f.config.groups["texture"].lr == 3e38 / 2**f.rejected


def test_step_that_breaks_the_next_render_is_undone(targets):
    """Vertices thrown to 1e30 are finite, but the loss there is not: that step is undone and
    blamed on the vertices alone (the colours moved too, but are harmless on their own)."""
    f = Fitter(rc.icosphere(subdivisions=1), targets, _config(vertices=1e30, colors=0.05))
    m1 = f.step()
    assert not m1.rolled_back and float(f.offset.detach().abs().max()) > 1e29
    m2 = f.step()
    assert m2.rolled_back and m2.undone and m2.lr_halved == ("vertices",)
    assert f.steps == 0 and torch.equal(f.offset, torch.zeros_like(f.offset))
    assert f.config.groups["colors"].lr == 0.05
    assert f.config.groups["vertices"].lr == 5e29
    # Many steps later: never a NaN, the rate keeps falling while steps still blow up.
    totals = []
    for _ in range(150):
        m = f.step()
        assert _params_finite(f)
        if not m.rolled_back:
            totals.append(m.loss)
    assert totals and all(math.isfinite(t) for t in totals)
    assert f.config.groups["vertices"].lr < 1e20
    mesh = f.current_mesh()
    assert bool(torch.isfinite(mesh.vertices).all())


def test_bad_data_is_not_blamed_on_the_step_size(targets):
    f = Fitter(rc.icosphere(subdivisions=1), targets, _config(vertices=0.01, colors=0.05))
    f.step()
    offset = f.offset.detach().clone()
    f.t_rgb[0, 3, 3, 0] = float("nan")  # poisoned data: the loss is NaN whatever the step
    m = f.step()
    assert m.rolled_back and not m.undone and m.lr_halved == ()
    assert f.steps == 1 and torch.equal(f.offset, offset)
    assert f.config.groups["vertices"].lr == 0.01


def test_session_adopts_the_halved_rate(targets):
    """The session's settings (shown in the GUI, saved with the session) follow the fit, both
    when it steps itself (CLI) and when it mirrors a fit running elsewhere (the studio)."""
    s = Session()
    s.set_mesh(rc.icosphere(subdivisions=1))
    s.set_targets(targets)
    s.set_config(_config(texture=3e38))
    for _ in range(30):
        s.step()
    fit_lr = s.fitter().config.groups["texture"].lr
    assert fit_lr < 1e38 and s.config.groups["texture"].lr == fit_lr
    assert all(not (isinstance(v, float) and np.isnan(v)) for v in s.history[-1].values())

    from studio.model.runner import ProcessRunner

    mirror = Session(ProcessRunner())  # the studio's way: the fit runs in a child process
    mirror.set_mesh(rc.icosphere(subdivisions=1))
    mirror.set_targets(targets)
    mirror.set_config(_config(texture=3e38))
    try:
        for _ in range(30):
            mirror.step()
        child_lr = mirror.checkpoint()["optimizer"]["texture"]["lr"]
    finally:
        mirror.runner.close()
    assert mirror.config.groups["texture"].lr == child_lr == fit_lr
