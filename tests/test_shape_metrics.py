"""Shape metrics: Chamfer-L2 and F-score against brute-force distance matrices on small point
sets, and against analytic values on concentric spheres; area-weighted sampling; unit-radius
normalisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from render_core.mesh import Mesh
from render_core.primitives import icosphere
from render_core.shape_metrics import (
    chamfer_l2,
    chamfer_l2_points,
    f_score,
    f_score_points,
    normalize_unit_radius,
    sample_surface,
)


def _brute(p, q):
    d = np.sqrt(((p[:, None, :] - q[None, :, :]) ** 2).sum(-1))
    return d.min(1), d.min(0)  # p -> q, q -> p


def test_point_metrics_match_brute_force():
    rng = np.random.default_rng(0)
    for n, m in [(1, 1), (37, 53), (200, 150)]:
        p = rng.normal(size=(n, 3))
        q = rng.normal(size=(m, 3)) * 0.8 + 0.3
        dpq, dqp = _brute(p, q)
        assert chamfer_l2_points(p, q) == pytest.approx(np.mean(dpq ** 2) + np.mean(dqp ** 2),
                                                        rel=1e-12)
        for t in (0.1, 0.5, 1.0):
            pr, rc = np.mean(dpq <= t), np.mean(dqp <= t)
            ref = 0.0 if pr + rc == 0 else 2 * pr * rc / (pr + rc)
            assert f_score_points(p, q, t) == pytest.approx(ref, abs=1e-12)


def test_point_metrics_simple_cases():
    p = np.array([[0.0, 0, 0], [1, 0, 0]])
    q = np.array([[0.0, 0, 0.5]])
    # p->q: (0.25 + 1.25) / 2; q->p: 0.25
    assert chamfer_l2_points(p, q) == pytest.approx(0.75 + 0.25)
    # precision 1/2 within 0.6, recall 1: F = 2/3
    assert f_score_points(p, q, 0.6) == pytest.approx(2 / 3)
    assert f_score_points(p, q, 0.4) == 0.0
    assert chamfer_l2_points(p, p) == 0.0 and f_score_points(p, p, 1e-9) == 1.0


def test_sampling_is_area_weighted_and_on_the_surface():
    # Two separate triangles in the z=0 and z=5 planes, of areas 0.5 and 4.5 (1 : 9).
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 5], [3, 0, 5], [0, 3, 5]], float)
    f = np.array([[0, 1, 2], [3, 4, 5]])
    pts = sample_surface((v, f), 20000, seed=3)
    on_small = np.abs(pts[:, 2]) < 1e-12
    on_large = np.abs(pts[:, 2] - 5) < 1e-12
    assert np.all(on_small | on_large)
    assert on_small.mean() == pytest.approx(0.1, abs=0.015)
    for sel, s in ((on_small, 1), (on_large, 3)):  # inside, uniformly: mean at the centroid
        xy = pts[sel][:, :2]
        assert np.all(xy >= -1e-12) and np.all(xy.sum(1) <= s + 1e-12)
        assert np.allclose(xy.mean(0), [s / 3, s / 3], atol=0.03 * s)
    # Deterministic per seed.
    assert np.array_equal(pts, sample_surface((v, f), 20000, seed=3))
    assert not np.array_equal(pts, sample_surface((v, f), 20000, seed=4))


def test_concentric_spheres():
    r1, r2 = 1.0, 0.8
    a = icosphere(4, radius=r1)
    b = icosphere(4, radius=r2)
    n = 20000
    ch = chamfer_l2(a, b, samples=n)
    # Every sample of one sphere is at least |r1 - r2| from the other; the excess is the
    # sample spacing (about S / (pi n) each way) and the facets' sag.
    assert ch == pytest.approx(2 * (r1 - r2) ** 2, rel=0.02)
    assert ch >= 2 * (r1 - r2) ** 2 * 0.99
    assert f_score(a, b, threshold=0.25, samples=n) == 1.0
    assert f_score(a, b, threshold=0.15, samples=n) == 0.0
    assert f_score(a, b, threshold=0.02, samples=n) == 0.0
    # A surface against itself: only the sampling floor remains.
    same = chamfer_l2(a, a, samples=n)
    area = 4 * math.pi * r1 ** 2
    assert 0 < same < 2 * 2 * area / (math.pi * n)
    assert f_score(a, a, threshold=0.05, samples=n) > 0.999  # rare gaps in the samples


def test_chamfer_of_a_shifted_sphere_and_symmetry():
    a = icosphere(4)
    shift = 0.2
    b = Mesh(a.vertices + torch.tensor([shift, 0.0, 0.0]), a.faces)
    ch = chamfer_l2(a, b, samples=20000)
    # From p on the unit sphere, the copy shifted by s along x is ||p - s e_x| - 1| away;
    # c = cos(theta) = p_x is uniform on [-1, 1] over the sphere (Archimedes), so each direction
    # averages the integral below (the same both ways, by symmetry).
    c = np.linspace(-1, 1, 200001)
    each = np.trapezoid((np.sqrt(1 - 2 * shift * c + shift ** 2) - 1) ** 2, c) / 2
    assert ch == pytest.approx(2 * each, rel=0.04)
    assert chamfer_l2(b, a, samples=20000) == pytest.approx(ch, rel=0.04)


def test_normalize_unit_radius():
    m = icosphere(2, radius=3.0)
    v = m.vertices * torch.tensor([1.0, 0.5, 0.25]) + torch.tensor([4.0, -2.0, 7.0])
    n = normalize_unit_radius(Mesh(v, m.faces))
    lo, hi = n.bounds()
    assert torch.allclose(lo + hi, torch.zeros(3), atol=1e-6)
    assert float(n.vertices.norm(dim=1).max()) == pytest.approx(1.0, abs=1e-6)
    assert torch.equal(n.faces, m.faces)
    # Similar shapes normalise to the same thing.
    n2 = normalize_unit_radius(Mesh(v * 10 - 3, m.faces))
    assert torch.allclose(n.vertices, n2.vertices, atol=1e-5)


def test_bad_inputs():
    m = icosphere(1)
    with pytest.raises(ValueError, match="samples"):
        chamfer_l2(m, m, samples=0)
    with pytest.raises(ValueError, match="threshold"):
        f_score(m, m, threshold=0)
    with pytest.raises(ValueError, match="zero surface area"):
        sample_surface((np.zeros((3, 3)), np.array([[0, 1, 2]])), 10)
    with pytest.raises(ValueError, match="face indices"):
        sample_surface((np.zeros((3, 3)), np.array([[0, 1, 3]])), 10)
    with pytest.raises(ValueError, match=r"\[N,3\]"):
        chamfer_l2_points(np.zeros((0, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="coincide"):
        normalize_unit_radius(Mesh(torch.zeros(3, 3), torch.tensor([[0, 1, 2]])))
