"""Shading beyond the hull, the hard case (issue: geometry, 5): a cup's inside, which no view sees
edge-on. The visual hull fills it with a cap at the rim; lit targets dig it only slowly. At the
``lit`` preset's vertex rate the cap barely sinks in a short fit, at ten times the rate it goes
most of the way down (the notes of :mod:`render_core.shape_presets` say why, and what the same
high rate does to other shapes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _scenes import lit_spiral_problem

import render_core as rc
from render_core.fit import Fitter
from render_core.shape_presets import shape_fit_config

RES, N_VIEWS, DIST, FOV = 32, 8, 2.7, 50.0
R_OUT, R_IN, HALF_H, FLOOR = 0.8, 0.6, 0.55, -0.25  # the cup: walls 0.2 thick, 0.8 deep
STEPS = 120


def _cup(seg: int = 48) -> rc.Mesh:
    """A closed cup around +Y: the profile (bottom centre, outside, over the rim, down the
    inside to the floor's centre) revolved into ``seg`` sectors."""
    prof = ([(R_OUT * t, -HALF_H) for t in (0.25, 0.5, 0.75, 1.0)]
            + [(R_OUT, y) for y in np.linspace(-HALF_H, HALF_H, 9)[1:]]
            + [(R_IN, HALF_H)] + [(R_IN, y) for y in np.linspace(HALF_H, FLOOR, 7)[1:]]
            + [(R_IN * t, FLOOR) for t in (0.75, 0.5, 0.25)])
    th = np.arange(seg) * 2 * np.pi / seg
    v = [[0.0, -HALF_H, 0.0]] + [[r * np.cos(t), y, r * np.sin(t)] for r, y in prof for t in th]
    v.append([0.0, FLOOR, 0.0])
    n, top, f = len(prof), len(v) - 1, []
    for j in range(seg):
        k = (j + 1) % seg
        f.append([0, 1 + j, 1 + k])
        for i in range(n - 1):
            a, b = 1 + i * seg + j, 1 + i * seg + k
            f += [[a, a + seg, b + seg], [a, b + seg, b]]
        f.append([top, 1 + (n - 1) * seg + k, 1 + (n - 1) * seg + j])
    return rc.Mesh(torch.tensor(v, dtype=torch.float32), torch.tensor(f))


def _floor(mesh: rc.Mesh, radius: float = 0.3) -> float:
    """Mean height of the topmost surface under vertical rays within ``radius`` of the axis:
    the cup's floor, or the cap that fills it (an independent ray cast, trimesh's)."""
    import trimesh

    tm = trimesh.Trimesh(mesh.vertices.double().numpy(), mesh.faces.numpy(), process=False)
    xs = np.linspace(-radius, radius, 5)
    o = np.array([[x, 3.0, z] for x in xs for z in xs if x * x + z * z <= radius ** 2 + 1e-9])
    loc, ray, _ = tm.ray.intersects_location(o, np.tile([0.0, -1.0, 0.0], (len(o), 1)))
    top = np.full(len(o), -np.inf)
    np.maximum.at(top, ray, loc[:, 1])
    assert np.isfinite(top).all()
    return float(top.mean())


@pytest.fixture(scope="module")
def problem():
    gt = _cup()
    import trimesh

    tm = trimesh.Trimesh(gt.vertices.numpy(), gt.faces.numpy(), process=False)
    assert tm.is_watertight and tm.volume > 0  # closed, faces outward
    return lit_spiral_problem(gt, RES, N_VIEWS, DIST, FOV)


def _fit(hull, targets, lr: float) -> rc.Mesh:
    cfg = shape_fit_config("lit", RES)
    cfg.groups["vertices"].lr = lr
    f = Fitter(hull, targets, cfg)
    for _ in range(STEPS):
        f.step()
    m = f.current_mesh()
    return rc.Mesh(m.vertices, m.faces)


def test_shading_digs_a_cup_only_at_a_high_rate(problem):
    gt, targets, hull = problem
    truth, cap = _floor(gt), _floor(hull)
    assert truth == pytest.approx(FLOOR, abs=1e-4)
    assert cap > HALF_H  # the hull fills the cup to the rim
    depth = cap - truth
    preset = _fit(hull, targets, shape_fit_config("lit").groups["vertices"].lr)
    fast = _fit(hull, targets, 0.1)
    # measured: the preset's rate sinks the cap from 0.61 to 0.50 (0.11 of the 0.86 to the
    # floor), ten times the rate to 0.06; Chamfer-L2 0.0191 against the hull's 0.0291 and the
    # preset's 0.0264
    assert _floor(preset) > cap - 0.25 * depth, _floor(preset)
    assert _floor(fast) < cap - 0.5 * depth, _floor(fast)
    ch = {name: rc.chamfer_l2(m, gt, samples=5000) for name, m in
          (("hull", hull), ("preset", preset), ("fast", fast))}
    assert ch["fast"] < 0.75 * ch["hull"], ch
    assert ch["fast"] < 0.8 * ch["preset"], ch
