"""render_core.fit: the Fitter on tiny problems (CPU, small resolutions)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from _scenes import orbit_targets, stretched_sphere

import render_core as rc
from render_core.fit import GROUPS, FitConfig, Fitter, ParamGroup, TargetView


@pytest.fixture(scope="module")
def problem():
    target = stretched_sphere()
    return rc.icosphere(subdivisions=2), orbit_targets(target, [(0, 10), (90, -10), (200, 40)])


def test_default_fit_converges(problem):
    start, targets = problem
    f = Fitter(start, targets, FitConfig(resolution=32))
    first = f.step()
    for _ in range(40):
        last = f.step()
    assert set(first.record()) >= {"total", "iou", "l1", "laplacian", "normal", "edge",
                                   "silhouette_iou"}
    assert set(first.terms) >= {"iou", "l1", "laplacian", "normal", "edge"}
    assert last.loss < 0.6 * first.loss
    assert last.iou > first.iou
    assert f.steps == 41 and not last.rolled_back
    mesh = f.current_mesh()
    assert not mesh.vertices.requires_grad
    assert mesh.vertex_colors is not None


def test_every_group_steps_finitely(problem):
    start, targets = problem
    for group in GROUPS:
        for shading in ("vertex_color", "lambertian", "sh"):
            cfg = FitConfig(resolution=16, shading=shading)
            cfg.groups = {g: ParamGroup(g == group, 0.01) for g in GROUPS}
            f = Fitter(start, targets, cfg)
            for _ in range(2):
                m = f.step()
            assert math.isfinite(m.loss), (group, shading)
            assert not m.rolled_back
    cfg = FitConfig(resolution=16)
    cfg.groups["texture"] = ParamGroup(True, 0.05)
    f = Fitter(start, targets, cfg)
    f.step()
    assert f.current_mesh().texture is not None and f.current_mesh().uvs is not None


def test_camera_group_moves_the_cameras(problem):
    start, targets = problem
    cfg = FitConfig(resolution=16)
    cfg.groups = {g: ParamGroup(g == "camera", 0.05) for g in GROUPS}
    f = Fitter(start, targets, cfg)
    before = f.camera_params()
    f.step()
    f.step()
    assert not np.allclose(before, f.camera_params())


def test_non_finite_step_is_rolled_back(problem):
    start, targets = problem
    f = Fitter(start, targets, FitConfig(resolution=16))
    f.step()
    offset = f.offset.detach().clone()
    state = {k: v["exp_avg"].clone() for k, v in enumerate(f._optimizer.state.values())}
    f.t_mask[0, 0, 0] = float("nan")  # poison the loss
    m = f.step()
    assert m.rolled_back and f.rejected == 1 and f.steps == 1
    assert torch.equal(f.offset, offset)
    for k, v in enumerate(f._optimizer.state.values()):
        assert torch.equal(v["exp_avg"], state[k])


def test_apply_config_live(problem):
    start, targets = problem
    f = Fitter(start, targets, FitConfig(resolution=16))
    f.step()
    cfg = f.config.copy()
    cfg.groups["vertices"] = ParamGroup(True, 0.002)
    f.apply_config(cfg)
    assert [g["lr"] for g in f._optimizer.param_groups if g["name"] == "vertices"] == [0.002]
    cfg.resolution = 24
    cfg.shading = "phong"
    f.apply_config(cfg)
    assert f.render(0).rgb.shape == (1, 24, 24, 3)
    assert math.isfinite(f.step().loss)
    with pytest.raises(ValueError):
        cfg.weights["iou"] = -1.0
        f.apply_config(cfg)


def test_bad_targets_are_rejected():
    with pytest.raises(ValueError):
        TargetView(np.zeros((8, 8)), None)
    with pytest.raises(ValueError):
        TargetView(np.zeros((8, 8, 3)), None, distance=-1.0)
    with pytest.raises(ValueError):
        Fitter(rc.icosphere(1), [], FitConfig())


def test_render_core_does_not_need_qt():
    code = ("import sys; [sys.modules.__setitem__(m, None) for m in "
            "('PyQt6', 'moderngl', 'pyqtgraph')]; "
            "import render_core.fit, studio.model.session, studio.model.fitproc, studio.cli")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_light_group_follows_the_shading(problem):
    start, targets = problem
    cfg = FitConfig(resolution=16, shading="lambertian")
    cfg.groups = {g: ParamGroup(g == "light", 0.05) for g in GROUPS}
    f = Fitter(start, targets, cfg)
    f.step()
    assert f.light_dir.requires_grad and not f.sh.requires_grad
    cfg.shading = "sh"
    f.apply_config(cfg)
    sh = f.sh.detach().clone()
    f.step()
    assert f.sh.requires_grad and not torch.equal(sh, f.sh.detach())


def test_state_mirrors_another_fitter(problem):
    start, targets = problem
    cfg = FitConfig(resolution=16)
    cfg.groups["texture"] = ParamGroup(True, 0.05)
    a, b = Fitter(start, targets, cfg), Fitter(start, targets, cfg)
    for _ in range(3):
        a.step()
    b.load_state(a.state())
    assert b.steps == 3
    ma, mb = a.current_mesh(), b.current_mesh()
    assert torch.equal(ma.vertices, mb.vertices) and torch.equal(ma.texture, mb.texture)
