"""The Fitter's Large Steps parameterisation of the vertices group (FitConfig.large_steps):
exact continuation through checkpoints and state mirrors, the mesh kept when lambda changes,
the optimizer's groups against torch's Adam and the uniform Adam, and a fit that converges."""

from __future__ import annotations

import pytest
import torch

import render_core as rc
from render_core._optim import MixedAdam
from render_core.fit import GROUPS, FitConfig, Fitter, ParamGroup, TargetView
from render_core.large_steps import AdamUniform


def _targets(n=4, res=32):
    """Silhouettes (and colours) of a squashed, bumpy sphere from n orbit cameras."""
    base = rc.icosphere(subdivisions=3)
    v = base.vertices
    v = v * torch.tensor([1.0, 0.7, 0.9]) * (1 + 0.15 * torch.sin(3 * v[:, :1]))
    mesh = rc.Mesh(v, base.faces, vertex_colors=0.5 + 0.4 * torch.tanh(v))
    az = [360.0 * k / n for k in range(n)]
    cams = rc.Camera.orbit(az, 20.0, 3.0, fov=45.0)
    out = rc.Renderer(res, sigma=1e-5).render(mesh, cams)
    rgb = rc.linear_to_srgb(out.rgb.clamp(0, 1)).numpy()
    mask = out.frags.mask.float().numpy()
    return [TargetView(rgb[i], mask[i], az[i], 20.0, 3.0, 45.0) for i in range(n)]


def _config(lam, lr=0.02):
    cfg = FitConfig(resolution=32, large_steps=lam)
    cfg.groups = {g: ParamGroup(g in ("vertices", "colors"), lr if g == "vertices" else 0.05)
                  for g in GROUPS}
    return cfg


@pytest.fixture(scope="module")
def targets():
    return _targets()


def test_checkpoint_continues_exactly(targets):
    a = Fitter(rc.icosphere(subdivisions=2), targets, _config(19.0))
    for _ in range(4):
        a.step()
    b = Fitter(rc.icosphere(subdivisions=2), targets, _config(19.0))
    b.restore(a.checkpoint())
    for _ in range(3):
        assert b.step().loss == pytest.approx(a.step().loss, rel=1e-6, abs=1e-8)
    assert torch.allclose(b.current_mesh().vertices, a.current_mesh().vertices, atol=1e-6)


def test_changing_lambda_keeps_the_mesh_and_mirrors_convert(targets):
    f = Fitter(rc.icosphere(subdivisions=2), targets, _config(None))
    for _ in range(3):
        f.step()
    before = f.current_mesh().vertices
    for lam in (19.0, 5.0, None):
        f.apply_config(_config(lam))
        assert torch.allclose(f.current_mesh().vertices, before, atol=1e-5), lam
    f.apply_config(_config(19.0))
    f.step()
    # A mirror with plain offsets shows the very mesh the large-steps fit has.
    mirror = Fitter(rc.icosphere(subdivisions=2), targets, _config(None))
    mirror.load_state(f.state())
    assert torch.allclose(mirror.current_mesh().vertices, f.current_mesh().vertices, atol=1e-5)


def test_mixed_adam_matches_adam_and_uniform_adam():
    torch.manual_seed(0)
    a0, b0 = torch.randn(20, 3), torch.randn(5)
    grads = [(torch.randn(20, 3), torch.randn(5)) for _ in range(4)]
    a, b = a0.clone().requires_grad_(), b0.clone().requires_grad_()
    mixed = MixedAdam([{"params": [a], "lr": 0.1, "uniform": True},
                       {"params": [b], "lr": 0.05}])
    ra, rb = a0.clone().requires_grad_(), b0.clone().requires_grad_()
    uni, plain = AdamUniform([ra], lr=0.1), torch.optim.Adam([rb], lr=0.05)
    for ga, gb in grads:
        a.grad, b.grad, ra.grad, rb.grad = ga.clone(), gb.clone(), ga.clone(), gb.clone()
        mixed.step()
        uni.step()
        plain.step()
    assert torch.equal(b, rb)  # torch's own Adam code, bit for bit
    assert torch.allclose(a, ra, atol=1e-6)
    assert torch.equal(mixed.state[a]["exp_avg_sq"], uni.state[ra]["exp_avg_sq"])


def test_large_steps_fit_converges_smoothly(targets):
    """Large learning rates with lambda: the silhouettes are reached and the surface stays
    smooth (no Laplacian term needed), where plain offsets at the same rate get rough."""
    results = {}
    for lam in (None, 19.0):
        cfg = _config(lam, lr=0.05)
        cfg.groups["colors"] = ParamGroup(False, 0.05)
        for k in ("laplacian", "normal", "edge"):
            cfg.weights[k] = 0.0
        f = Fitter(rc.icosphere(subdivisions=3), targets, cfg)
        for _ in range(60):
            m = f.step()
        mesh = f.current_mesh()
        results[lam] = (m.iou, float(rc.losses.laplacian(mesh.vertices, mesh.faces)))
    assert results[19.0][0] > 0.9
    assert results[19.0][1] < 0.5 * results[None][1]


def test_a_saved_session_with_large_steps_continues_exactly(targets, tmp_path):
    from studio.model.session import Session

    s = Session()
    s.set_mesh(rc.icosphere(subdivisions=2))
    s.set_targets(targets)
    s.set_config(_config(19.0))
    for _ in range(3):
        s.step()
    path = s.save(tmp_path / "s.zip")
    t = Session()
    t.open(path)
    assert t.config.large_steps == 19.0
    for _ in range(2):
        assert t.step()["total"] == pytest.approx(s.step()["total"], rel=1e-6, abs=1e-8)
