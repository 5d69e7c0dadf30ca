"""The fused Lambertian shading of covered pixels (render_core._fused.lambertian_covered)
against the torch composition it replaces, ``color * lambertian(normals, light, kd)`` with the
parameters gathered per pixel by its image: values, gradients, gradcheck, the Renderer's image
and gradients with and without it (the fused path interpolates vertex colours and normals in
one pass), and the cases it leaves to the composition."""

import pytest
import torch

import render_core as rc
import render_core.renderer as renderer_mod
from render_core._fused import lambertian_covered, lambertian_plan
from render_core.shading import DirectionalLight, lambertian


class _Cov:
    """The two things lambertian_covered asks of the Renderer's covered pixels."""

    def __init__(self, bidx: torch.Tensor, batch: int):
        self.bidx, self.shape = bidx, (batch, 1, 1)


def _shade(color_normals, light, kd, cov, backend="auto"):
    """The fused op where its plan covers the light, else None."""
    plan = lambertian_plan(light, kd, cov, color_normals, backend)
    return None if plan is None else lambertian_covered(color_normals, plan)


def _gather(x, bidx):
    """A parameter per pixel, as the Renderer aligns it: rows of [B] / [B,3] picked by each
    pixel's image, a single row broadcast, numbers and 0-d tensors left to broadcasting."""
    if not torch.is_tensor(x) or x.ndim == 0:
        return x
    return x[bidx] if x.shape[0] > 1 else x.expand(bidx.shape[0], *x.shape[1:])


def _reference(color, normals, direction, intensity, ambient, kd, bidx):
    d = direction if direction.ndim == 1 else _gather(direction, bidx)
    light = DirectionalLight(d, _gather(intensity, bidx), _gather(ambient, bidx))
    return color * lambertian(normals, light, kd=_gather(kd, bidx))


def _problem(dtype, seed, batch=3, pixels=2600, direction="batched", scalars="mixed"):
    """Pixels sorted by image (as a render's are), with zero and back-facing normals."""
    g = torch.Generator().manual_seed(seed)
    bidx = torch.sort(torch.randint(0, batch, (pixels,), generator=g))[0]
    color = torch.rand(pixels, 3, generator=g, dtype=dtype)
    normals = torch.randn(pixels, 3, generator=g, dtype=dtype) * 2.0
    normals[::97] = 0.0  # zero normals: ambient only, no gradient
    shape = {"shared": (3,), "one": (1, 3), "batched": (batch, 3)}[direction]
    d = torch.randn(shape, generator=g, dtype=dtype)
    d = d + torch.tensor([0.0, 0.0, 0.5], dtype=dtype)

    def scalar(kind, lo):
        if kind == "float":
            return lo + 0.5
        if kind == "0d":
            return torch.tensor(lo + 0.4, dtype=dtype)
        if kind == "one":
            return torch.tensor([lo + 0.3], dtype=dtype)
        return lo + torch.rand(batch, generator=g, dtype=dtype)

    kinds = {"mixed": ("batched", "0d", "float"), "float": ("float", "float", "float"),
             "batched": ("batched", "batched", "batched"), "one": ("one", "0d", "one")}[scalars]
    intensity, ambient, kd = (scalar(k, lo) for k, lo in zip(kinds, (0.6, 0.1, 0.5), strict=True))
    return color, normals, d, intensity, ambient, kd, bidx


def _values_and_grads(fn, problem, seed):
    color, normals, d, intensity, ambient, kd, bidx = problem
    leaves = [t.clone().requires_grad_(True) if torch.is_tensor(t) else t
              for t in (color, normals, d, intensity, ambient, kd)]
    out = fn(*leaves, bidx)
    g = torch.Generator().manual_seed(seed + 100)
    upstream = torch.randn(out.shape, generator=g, dtype=out.dtype)
    diff = [t for t in leaves if torch.is_tensor(t)]
    return [out.detach(), *torch.autograd.grad(out, diff, upstream)]


def _fused(color, normals, d, intensity, ambient, kd, bidx):
    batch = int(bidx.max()) + 1  # every image has pixels in these problems
    out = _shade(torch.cat([color, normals], 1), DirectionalLight(d, intensity, ambient), kd,
                 _Cov(bidx, batch), backend="cpu")
    assert out is not None, "the fused op covers these parameters"
    return out


@pytest.mark.parametrize("direction", ["shared", "one", "batched"])
@pytest.mark.parametrize("scalars", ["mixed", "float", "batched", "one"])
def test_fused_lambertian_matches_the_composition_float64(direction, scalars):
    problem = _problem(torch.float64, 3, direction=direction, scalars=scalars)
    normals = problem[1]
    d = problem[2].reshape(-1, 3)[0]
    # Some pixels face away from the light (cos < 0), some towards it.
    cos = (torch.nn.functional.normalize(normals, dim=1) * torch.nn.functional.normalize(
        d, dim=0)).sum(1)
    assert (cos < -0.1).sum() > 100 and (cos > 0.1).sum() > 100
    got = _values_and_grads(_fused, problem, 3)
    want = _values_and_grads(_reference, problem, 3)
    assert len(got) == len(want)
    torch.testing.assert_close(got[0], want[0], rtol=1e-12, atol=1e-12)
    for a, b in zip(got[1:], want[1:], strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_fused_lambertian_zero_normals_get_ambient_and_no_gradient():
    color, normals, d, intensity, ambient, kd, bidx = _problem(torch.float64, 4)
    normals = normals.clone().requires_grad_(True)
    out = _fused(color, normals, d, intensity, ambient, kd, bidx)
    zero = normals.detach().abs().sum(1) == 0
    assert zero.sum() > 10
    torch.testing.assert_close(out[zero], color[zero] * ambient, rtol=1e-15, atol=0)
    (grad,) = torch.autograd.grad(out.sum(), normals)
    assert torch.isfinite(grad).all() and grad[zero].abs().max() == 0


def test_fused_lambertian_keeps_nan_like_the_composition():
    color, normals, d, intensity, ambient, kd, bidx = _problem(torch.float64, 10)
    normals[5] = float("nan")
    got = _fused(color, normals, d, intensity, ambient, kd, bidx)
    want = _reference(color, normals, d, intensity, ambient, kd, bidx)
    assert torch.isnan(got[5]).all()
    assert torch.equal(torch.isnan(got), torch.isnan(want))


def test_fused_lambertian_float32():
    problem = _problem(torch.float32, 5, direction="batched", scalars="mixed")
    got = _values_and_grads(_fused, problem, 5)
    want = _values_and_grads(_reference, problem, 5)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize("direction,scalars", [("batched", "batched"), ("shared", "mixed")])
def test_fused_lambertian_gradcheck(direction, scalars):
    color, normals, d, intensity, ambient, kd, bidx = _problem(
        torch.float64, 6, batch=2, pixels=40, direction=direction, scalars=scalars)
    normals[normals.abs() < 0.05] = 0.3  # keep every cosine away from the relu's kink
    inputs = [t.clone().requires_grad_(True) if torch.is_tensor(t) else t
              for t in (color, normals, d, intensity, ambient, kd)]
    idx = [i for i, t in enumerate(inputs) if torch.is_tensor(t)]

    def fn(*xs):
        args = list(inputs)
        for i, x in zip(idx, xs, strict=True):
            args[i] = x
        return _fused(*args, bidx)

    assert torch.autograd.gradcheck(fn, [inputs[i] for i in idx], eps=1e-6, atol=1e-8)


def test_fused_lambertian_gradients_do_not_depend_on_threads():
    problem = _problem(torch.float32, 7, pixels=9000, direction="batched", scalars="batched")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _values_and_grads(_fused, problem, 7)
        torch.set_num_threads(2)
        two = _values_and_grads(_fused, problem, 7)
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(a, b) for a, b in zip(one, two, strict=True))


def test_fused_lambertian_converts_parameters_like_the_composition():
    """Parameters of another dtype (and a direction given as a list) are converted, as the
    composition's ``_as_tensor`` does, and keep their gradients in their own dtype."""
    color, normals, _, _, _, _, bidx = _problem(torch.float64, 9)
    d = torch.tensor([0.3, 0.9, 0.4], dtype=torch.float32, requires_grad=True)
    kd = torch.tensor([0.5, 0.7, 0.9], dtype=torch.float32, requires_grad=True)
    cn = torch.cat([color, normals], 1)
    got = _shade(cn, DirectionalLight(d, 2, 0.25), kd, _Cov(bidx, 3))
    want = _reference(color, normals, d, 2, 0.25, kd, bidx)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    g_got = torch.autograd.grad(got.sum(), [d, kd])
    g_want = torch.autograd.grad(want.sum(), [d, kd])
    for a, b in zip(g_got, g_want, strict=True):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b)
    listed = _shade(cn, DirectionalLight([0.3, 0.9, 0.4]), 1.0, _Cov(bidx, 3))
    torch.testing.assert_close(listed, _reference(color, normals, d.detach().double(), 1.0,
                                                  0.0, 1.0, bidx), rtol=1e-7, atol=1e-7)


def test_fused_lambertian_without_covered_pixels():
    color = torch.zeros(0, 3, dtype=torch.float64, requires_grad=True)
    normals = torch.zeros(0, 3, dtype=torch.float64, requires_grad=True)
    d = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    kd = torch.tensor([0.5, 0.7], dtype=torch.float64, requires_grad=True)
    out = _shade(torch.cat([color, normals], 1), DirectionalLight(d, 0.8, 0.3), kd,
                 _Cov(torch.zeros(0, dtype=torch.int64), 2))
    assert out.shape == (0, 3)
    grads = torch.autograd.grad(out.sum(), [color, normals, d, kd])
    assert [tuple(g.shape) for g in grads] == [(0, 3), (0, 3), (2, 3), (2,)]
    assert all(g.abs().sum() == 0 for g in grads)


def test_fused_lambertian_leaves_other_cases_to_the_composition():
    color, normals, d, intensity, ambient, kd, bidx = _problem(torch.float64, 8)
    cov = _Cov(bidx, 3)
    light = DirectionalLight(d, intensity, ambient)
    cn = torch.cat([color, normals], 1)
    assert lambertian_plan(light, kd, cov, cn, backend="cpu") is not None
    # Torch backend, a per-pixel kd map, a batch the parameters do not match, float16.
    assert lambertian_plan(light, kd, cov, cn, backend="torch") is None
    kd_map = torch.ones(3, 1, 1, 1, dtype=torch.float64)
    assert lambertian_plan(light, kd_map, cov, cn, backend="cpu") is None
    assert lambertian_plan(light, kd, _Cov(bidx, 4), cn, backend="cpu") is None
    assert lambertian_plan(light, kd, cov, cn.half(), backend="cpu") is None
    # Pixels of the wrong shape or dtype for the plan are refused, by name.
    plan = lambertian_plan(light, kd, cov, cn, backend="cpu")
    with pytest.raises(ValueError, match=r"\[P,6\]"):
        lambertian_covered(color, plan)
    with pytest.raises(ValueError, match="float32"):
        lambertian_covered(cn.float(), plan)


def _render_grads(monkeypatch, fused: bool, dtype, light_kind: str):
    """The Renderer's lambertian image and its gradients (vertices, colours, light), with the
    fused op or (``fused`` False) with the composition it replaces, exactly as before it."""
    calls = []

    def spy(*args, **kwargs):
        calls.append(1)
        return lambertian_covered(*args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(renderer_mod, "lambertian_covered", spy)
        if not fused:
            m.setattr(renderer_mod, "lambertian_plan", lambda *a, **k: None)
        result = _render(dtype, light_kind)
    assert calls == ([1] if fused else [])  # the fused op covers these renders
    return result


def _render(dtype, light_kind: str):
    mesh = rc.icosphere(subdivisions=2)
    g = torch.Generator().manual_seed(11)
    verts = (mesh.vertices.to(dtype) * 0.9).requires_grad_(True)
    colors = torch.rand(verts.shape, generator=g, dtype=dtype).requires_grad_(True)
    cams = rc.Camera.orbit([0.0, 120.0, 250.0], [15.0, -25.0, 40.0], 3.0, fov=40.0)
    if light_kind in ("shared", "grey"):
        d = torch.tensor([0.4, 0.8, 0.6], dtype=dtype, requires_grad=True)
        extra = [torch.tensor(0.3, dtype=dtype, requires_grad=True)]
        light = DirectionalLight(d, intensity=0.8, ambient=extra[0])
        material = None
    else:
        d = torch.tensor([[0.4, 0.8, 0.6], [-0.5, 0.2, 0.9], [0.1, -0.3, 1.0]], dtype=dtype,
                         requires_grad=True)
        extra = [torch.tensor([0.7, 0.9, 1.1], dtype=dtype, requires_grad=True),
                 torch.tensor([0.6, 0.8, 0.5], dtype=dtype, requires_grad=True)]
        light = DirectionalLight(d, intensity=extra[0], ambient=0.25)
        material = rc.PhongMaterial(kd=extra[1])
    r = rc.Renderer((24, 20), shading="lambertian", backend="cpu", background=0.1)
    if light_kind == "grey":  # no vertex colours: a uniform grey base colour
        colors = None
    out = r.render(rc.Mesh(verts, mesh.faces, vertex_colors=colors), cams, light, material)
    w = torch.rand(out.rgb.shape, generator=g, dtype=dtype)
    loss = (out.rgb * w).sum()
    wrt = [verts, *([] if colors is None else [colors]), d, *extra]
    return [out.rgb.detach(), *torch.autograd.grad(loss, wrt)]


@pytest.mark.parametrize("light_kind", ["shared", "batched", "grey"])
def test_renderer_lambertian_unchanged_by_the_fused_op(monkeypatch, light_kind):
    got = _render_grads(monkeypatch, True, torch.float64, light_kind)
    want = _render_grads(monkeypatch, False, torch.float64, light_kind)
    assert (got[0] != 0.1).any()  # the mesh is in view
    torch.testing.assert_close(got[0], want[0], rtol=1e-12, atol=1e-12)
    for a, b in zip(got[1:], want[1:], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    got = _render_grads(monkeypatch, True, torch.float32, light_kind)
    want = _render_grads(monkeypatch, False, torch.float32, light_kind)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
