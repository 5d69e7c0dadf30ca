"""Large Steps parameterisation: Laplacians, the Cholesky solve and its gradient, rebuild after a
topology change, and the uniform Adam optimiser. Oracles: dense numpy/torch solves, autograd
through the dense solve, central finite differences, and Adam's formula written out by hand."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from render_core.large_steps import (
    AdamUniform,
    LargeStepsError,
    SmoothParameterization,
    laplacian,
    system_matrix,
)
from render_core.primitives import icosphere


def _random_mesh(seed: int = 0, n: int = 60):
    """A random triangulated surface: the convex hull of random points, jittered radially,
    so valences and angles are irregular (and some angles obtuse)."""
    from scipy.spatial import ConvexHull

    rng = np.random.default_rng(seed)
    p = rng.normal(size=(n, 3))
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    faces = ConvexHull(p).simplices.astype(np.int64)
    p *= rng.uniform(0.7, 1.3, size=(n, 1))
    return torch.from_numpy(p), torch.from_numpy(faces)


def _meshes():
    ico = icosphere(2)
    yield ico.vertices.double(), ico.faces
    yield _random_mesh()


def _dense_system(faces, n, lam, kind="uniform", vertices=None) -> np.ndarray:
    """I + lam L built entry by entry from the definition (an independent construction)."""
    a = np.zeros((n, n))
    f = faces.numpy()
    if kind == "uniform":
        for tri in f:
            for k in range(3):
                i, j = tri[k], tri[(k + 1) % 3]
                a[i, j] = a[j, i] = 1.0
    else:
        v = vertices.numpy()
        for tri in f:
            for k in range(3):
                i, j, o = tri[k], tri[(k + 1) % 3], tri[(k + 2) % 3]
                e1, e2 = v[i] - v[o], v[j] - v[o]
                angle = np.arccos(np.dot(e1, e2) / np.linalg.norm(e1) / np.linalg.norm(e2))
                a[i, j] += 0.5 / np.tan(angle)
                a[j, i] += 0.5 / np.tan(angle)
    lap = np.diag(a.sum(1)) - a
    return np.eye(n) + lam * lap


@pytest.mark.parametrize("kind", ["uniform", "cotangent"])
def test_laplacian_symmetric_rows_sum_to_zero_psd(kind):
    for v, f in _meshes():
        n = v.shape[0]
        lap = laplacian(f, n, kind=kind, vertices=v).to_dense().numpy()
        assert np.abs(lap - lap.T).max() < 1e-12
        assert np.abs(lap.sum(1)).max() < 1e-12
        eig = np.linalg.eigvalsh(lap)
        assert eig.min() > -1e-10
        # A closed connected surface: exactly one zero eigenvalue (the constants).
        assert (eig < 1e-9).sum() == 1
        # Matches the definition built entry by entry (lam = 1, minus I).
        ref = _dense_system(f, n, 1.0, kind, v) - np.eye(n)
        assert np.abs(lap - ref).max() < 1e-10


def test_uniform_laplacian_valence_on_icosahedron():
    ico = icosphere(0)
    lap = laplacian(ico.faces, 12).to_dense()
    assert torch.equal(torch.diagonal(lap), torch.full((12,), 5.0, dtype=torch.float64))
    assert int((lap == -1).sum()) == 60  # 30 edges, both directions


@pytest.mark.parametrize("kind", ["uniform", "cotangent"])
def test_solve_matches_dense_solve(kind):
    g = torch.Generator().manual_seed(1)
    for v, f in _meshes():
        n = v.shape[0]
        lam = 7.5
        p = SmoothParameterization(v, f, lam=lam, kind=kind)
        u = torch.randn(n, 3, generator=g, dtype=torch.float64)
        ref = np.linalg.solve(_dense_system(f, n, lam, kind, v), u.numpy())
        x = p.vertices(u)
        assert x.dtype == torch.float64
        assert np.abs(x.numpy() - ref).max() < 1e-10
        # The system matrix it factors is the one system_matrix returns.
        m = system_matrix(f, n, lam, kind=kind, vertices=v).to_dense().numpy()
        assert np.abs(m @ x.numpy() - u.numpy()).max() < 1e-10


def test_float32_solve_and_vertices_round_trip():
    v, f = _random_mesh(3)
    p = SmoothParameterization(v.float(), f, lam=19)
    assert p.u.dtype == torch.float32 and p.u.is_leaf and p.u.requires_grad
    x = p.vertices()
    assert x.dtype == torch.float32
    assert (x - v.float()).abs().max() < 1e-5
    ref = np.linalg.solve(_dense_system(f, v.shape[0], 19), p.u.detach().double().numpy())
    assert np.abs(x.detach().double().numpy() - ref).max() < 1e-5


def test_gradient_matches_dense_autograd_and_finite_differences():
    v, f = _random_mesh(5, n=30)
    n = v.shape[0]
    lam = 4.0
    p = SmoothParameterization(v, f, lam=lam)
    g = torch.Generator().manual_seed(2)
    w = torch.randn(n, 3, generator=g, dtype=torch.float64)

    def scalar(x):  # a non-linear function of the vertices
        return (torch.sin(x) * w).sum() + (x ** 2).sum(1).sqrt().sum()

    u = p.u.detach().clone().requires_grad_(True)
    scalar(p.vertices(u)).backward()
    grad = u.grad.clone()

    m = torch.from_numpy(_dense_system(f, n, lam))
    u2 = u.detach().clone().requires_grad_(True)
    scalar(torch.linalg.solve(m, u2)).backward()
    assert (grad - u2.grad).abs().max() < 1e-10

    # Central differences on a few entries.
    h = 1e-6
    for (i, c) in [(0, 0), (7, 1), (n - 1, 2), (13, 0)]:
        up, um = u.detach().clone(), u.detach().clone()
        up[i, c] += h
        um[i, c] -= h
        fd = (float(scalar(p.vertices(up))) - float(scalar(p.vertices(um)))) / (2 * h)
        assert abs(fd - float(grad[i, c])) < 1e-6 * max(1.0, abs(fd))


def test_gradcheck_and_second_derivative():
    v, f = _random_mesh(6, n=16)
    p = SmoothParameterization(v, f, lam=2.0)
    u = torch.randn(v.shape[0], 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: p.vertices(t), (u,), eps=1e-6, atol=1e-8)
    assert torch.autograd.gradgradcheck(lambda t: p.vertices(t) ** 2, (u,), eps=1e-6, atol=1e-7)


def test_lambda_zero_is_identity():
    v, f = _random_mesh(7)
    p = SmoothParameterization(v, f, lam=0.0)
    assert torch.equal(p.u.detach(), v)
    u = torch.randn_like(v)
    assert torch.allclose(p.vertices(u), u, rtol=0, atol=1e-15)


def test_rebuild_after_topology_change():
    ico = icosphere(1)
    v0 = ico.vertices.double()
    p = SmoothParameterization(v0, ico.faces, lam=19)
    with torch.no_grad():
        p.u.add_(0.1 * torch.randn_like(p.u))
    x = p.vertices().detach()
    # A new topology: split every face at its centroid (new vertices appended).
    f = ico.faces
    centroids = x[f].mean(1)
    c = torch.arange(f.shape[0]) + x.shape[0]
    new_faces = torch.cat([torch.stack([f[:, 0], f[:, 1], c], 1),
                           torch.stack([f[:, 1], f[:, 2], c], 1),
                           torch.stack([f[:, 2], f[:, 0], c], 1)])
    new_x = torch.cat([x, centroids])
    old_u = p.u
    u = p.rebuild(new_x, new_faces)
    assert u is p.u and u is not old_u and u.is_leaf and u.requires_grad
    assert u.shape == new_x.shape and p.num_vertices == new_x.shape[0]
    assert torch.equal(p.faces, new_faces)
    assert (p.vertices() - new_x).abs().max() < 1e-12
    ref = _dense_system(new_faces, new_x.shape[0], 19) @ new_x.numpy()
    assert np.abs(u.detach().numpy() - ref).max() < 1e-12
    # The new factor is that of the new matrix.
    b = torch.randn_like(new_x)
    sol = np.linalg.solve(_dense_system(new_faces, new_x.shape[0], 19), b.numpy())
    assert np.abs(p.vertices(b).numpy() - sol).max() < 1e-10


def test_adam_uniform_first_two_steps_by_hand():
    torch.manual_seed(0)
    p = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    p0 = p.detach().clone()
    g1 = torch.randn(5, 3, dtype=torch.float64)
    g2 = torch.randn(5, 3, dtype=torch.float64)
    lr, b1, b2, eps = 0.05, 0.8, 0.99, 1e-8
    opt = AdamUniform([p], lr=lr, betas=(b1, b2), eps=eps)
    p.grad = g1.clone()
    opt.step()
    # Step 1: m_hat = g, v_hat = g^2, so the step is lr * g / (max|g| + eps).
    expected1 = p0 - lr * g1 / (g1.abs().max() + eps)
    assert torch.allclose(p.detach(), expected1, rtol=0, atol=1e-14)
    p.grad = g2.clone()
    opt.step()
    m = b1 * (1 - b1) * g1 + (1 - b1) * g2
    v = b2 * (1 - b2) * g1 ** 2 + (1 - b2) * g2 ** 2
    mh, vh = m / (1 - b1 ** 2), v / (1 - b2 ** 2)
    expected2 = expected1 - lr * mh / (vh.max().sqrt() + eps)
    assert torch.allclose(p.detach(), expected2, rtol=0, atol=1e-14)
    st = opt.state[p]
    assert float(st["step"]) == 2
    assert torch.allclose(st["exp_avg"], m) and torch.allclose(st["exp_avg_sq"], v)


def test_adam_uniform_replace_param_remaps_rows():
    p = torch.zeros(4, 3, requires_grad=True)
    opt = AdamUniform([p], lr=0.1)
    p.grad = torch.arange(12.0).reshape(4, 3)
    opt.step()
    old_m = opt.state[p]["exp_avg"].clone()
    new = torch.zeros(3, 3, requires_grad=True)
    opt.replace_param(p, new, rows=torch.tensor([2, -1, 0]))
    assert opt.param_groups[0]["params"][0] is new and p not in opt.state
    st = opt.state[new]
    assert torch.equal(st["exp_avg"][0], old_m[2]) and torch.equal(st["exp_avg"][2], old_m[0])
    assert torch.equal(st["exp_avg"][1], torch.zeros(3)) and float(st["step"]) == 1
    with pytest.raises(ValueError, match="not a parameter"):
        opt.replace_param(p, new)
    with pytest.raises(ValueError, match="rows"):
        opt.replace_param(new, torch.zeros(2, 3), rows=torch.tensor([0, 5]))


def test_large_steps_smooth_a_noisy_target_faster_than_plain_offsets():
    """A behavioural check: fitting an icosphere's vertices to a stretched ellipsoid with a
    loss on a few vertices only; the parameterisation moves the untouched neighbours too."""
    ico = icosphere(2)
    v = ico.vertices.double()
    target = v * torch.tensor([1.5, 1.0, 1.0], dtype=torch.float64)
    chosen = torch.arange(0, v.shape[0], 7)
    p = SmoothParameterization(v, ico.faces, lam=19)
    opt = AdamUniform([p.u], lr=0.05)
    for _ in range(60):
        opt.zero_grad()
        x = p.vertices()
        ((x[chosen] - target[chosen]) ** 2).sum().backward()
        opt.step()
    x = p.vertices().detach()
    others = torch.ones(v.shape[0], dtype=torch.bool)
    others[chosen] = False
    err_before = (v[others] - target[others]).norm(dim=1).mean()
    err_after = (x[others] - target[others]).norm(dim=1).mean()
    assert err_after < 0.5 * err_before  # unseen vertices followed their neighbours


def test_bad_inputs_raise_clear_errors():
    v, f = _random_mesh(8)
    with pytest.raises(LargeStepsError, match="lam"):
        SmoothParameterization(v, f, lam=-1)
    with pytest.raises(LargeStepsError, match="kind"):
        SmoothParameterization(v, f, kind="mean")
    with pytest.raises(LargeStepsError, match="face indices"):
        SmoothParameterization(v[:10], f)
    with pytest.raises(LargeStepsError, match="float32 or float64"):
        SmoothParameterization(v.half(), f)
    with pytest.raises(LargeStepsError, match="non-finite"):
        SmoothParameterization(v * float("nan"), f)
    with pytest.raises(LargeStepsError, match="cotangent Laplacian needs vertices"):
        laplacian(f, v.shape[0], kind="cotangent")
    with pytest.raises(LargeStepsError, match=r"\[F,3\]"):
        laplacian(f[:, :2], v.shape[0])
    with pytest.raises(LargeStepsError, match="cpu or cuda"):
        SmoothParameterization(v.to("meta"), f)
    p = SmoothParameterization(v, f)
    with pytest.raises(LargeStepsError, match="right-hand side"):
        p.vertices(p.u.detach().float())
    assert issubclass(LargeStepsError, ValueError)


def test_adam_uniform_state_dict_round_trip_continues_identically():
    torch.manual_seed(1)
    grads = [torch.randn(6, 3) for _ in range(4)]
    a = torch.zeros(6, 3, requires_grad=True)
    opt_a = AdamUniform([a], lr=0.1)
    for g in grads[:2]:
        a.grad = g.clone()
        opt_a.step()
    b = a.detach().clone().requires_grad_(True)
    opt_b = AdamUniform([b], lr=0.1)
    # A deep copy, as a checkpoint is (load_state_dict would otherwise share the moment tensors).
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))
    for g in grads[2:]:
        a.grad, b.grad = g.clone(), g.clone()
        opt_a.step()
        opt_b.step()
    assert torch.equal(a, b)
    assert set(opt_b.state[b]) == {"step", "exp_avg", "exp_avg_sq"}
