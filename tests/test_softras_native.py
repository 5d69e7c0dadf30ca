"""Native SoftRas (csrc/softras_kernels.h) against the torch reference (_softras_ref.py, itself
tested against the paper's dense equations in test_softras.py): forward and gradients on random
overlapping scenes and a self-occluding mesh, the hard mask as sigma -> 0, float64 gradcheck,
determinism, and the fallbacks to the reference."""

from __future__ import annotations

import pytest
import torch
from _backends import NATIVE_BACKENDS
from _scenes import random_clip

import render_core as rc
from render_core.softras import softras


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-30))


def soup(seed, bsz=2, nv=40, nf=36, nc=3, dtype=torch.float32):
    """Random triangles piled over the image centre (many overlaps), depths inside the range."""
    g = torch.Generator().manual_seed(seed)
    clip = random_clip(g, bsz, nv).to(dtype)
    clip[..., 2] = clip[..., 2].clamp(-0.9, 0.9) * clip[..., 3].abs() / 1.2
    faces = torch.randint(0, nv, (nf, 3), generator=g)
    keep = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2])
    keep &= faces[:, 0] != faces[:, 2]
    return clip, faces[keep], torch.rand(nv, nc, generator=g, dtype=dtype)


def two_spheres(dtype=torch.float32):
    """A sphere half hidden behind a bigger one, from two cameras: occlusion inside the mask."""
    a, b = rc.icosphere(2, radius=0.5), rc.icosphere(2, radius=0.35)
    v = torch.cat([a.vertices, b.vertices + torch.tensor([0.45, 0.2, 0.5])])
    faces = torch.cat([a.faces, b.faces + a.vertices.shape[0]])
    cams = rc.Camera.orbit([10.0, 200.0], [15.0, -20.0], 3.0, fov=40.0)
    colors = torch.cat([v[:, :2].abs(), torch.rand(v.shape[0], 1,
                                                    generator=torch.Generator().manual_seed(3))], 1)
    return cams.to_clip(v).to(dtype), faces, colors.to(dtype)


def _run(clip, faces, colors, res, backend, sigma, gamma, bg, seed=7):
    """rgb, alpha and the gradients of a random weighting of both."""
    clip = clip.clone().requires_grad_(True)
    colors = colors.clone().requires_grad_(True)
    rgb, alpha = softras(clip, faces, colors, res, sigma, gamma, 1e-3, bg, backend=backend)
    g = torch.Generator().manual_seed(seed)
    wr = torch.rand(rgb.shape, generator=g, dtype=rgb.dtype).to(rgb.device)
    wa = torch.rand(alpha.shape, generator=g, dtype=alpha.dtype).to(alpha.device)
    ((rgb * wr).sum() + (alpha * wa).sum()).backward()
    return rgb.detach(), alpha.detach(), clip.grad, colors.grad


CASES = [
    ("soup0", (24, 31), 3e-3, 3e-2),
    ("soup1", (32, 32), 1e-3, 1e-2),
    ("soup2", (20, 16), 5e-4, 1e-4),
    ("spheres", (40, 48), 1.0 / 7000.0, 1e-4),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_native_matches_torch_reference(case, native_backend, device):
    name, res, sigma, gamma = case
    clip, faces, colors = two_spheres() if name == "spheres" else soup(int(name[-1]))
    bg = [0.2, 0.5, 0.9]
    want = _run(clip, faces, colors, res, "torch", sigma, gamma, bg)
    got = _run(clip.to(device), faces.to(device), colors.to(device), res, native_backend, sigma,
               gamma, bg)
    rgb, alpha = want[0], want[1]
    assert float(alpha.max()) > 0.99 and float(alpha.min()) < 0.01  # faces and background
    # Overlaps: pixels where more than one face has real weight blend colours.
    assert float((rgb - torch.tensor(bg)).abs().sum(-1).gt(0.05).float().mean()) > 0.1
    assert float((got[0].cpu() - want[0]).abs().max()) < 1e-5
    assert float((got[1].cpu() - want[1]).abs().max()) < 1e-5
    assert _rel(got[2].cpu(), want[2]) < 1e-4  # d/dclip
    assert _rel(got[3].cpu(), want[3]) < 1e-4  # d/dcolors
    assert float(want[2].abs().max()) > 0 and float(want[3].abs().max()) > 0


def test_native_float64_matches_to_rounding(native_backend, device):
    # Four channels: the most the native kernels take (SOFTRAS_MAX_CHANNELS).
    clip, faces, colors = soup(3, nc=4, dtype=torch.float64)
    want = _run(clip, faces, colors, (19, 23), "torch", 2e-3, 2e-2, 0.3)
    got = _run(clip.to(device), faces.to(device), colors.to(device), (19, 23), native_backend,
               2e-3, 2e-2, 0.3)
    for a, b in zip(got, want, strict=True):
        assert _rel(a.cpu(), b) < 1e-10


def test_silhouette_is_the_hard_mask_as_sigma_goes_to_zero(native_backend, device):
    s = rc.icosphere(2, radius=0.7)
    cams = rc.Camera.orbit([10.0, 130.0], [20.0, -30.0], 3.0, fov=45.0)
    clip = cams.to_clip(s.vertices).to(device)
    faces = s.faces.to(device)
    hard = rc.rasterize(clip, faces, (33, 29), backend="torch").mask
    ones = torch.ones(s.vertices.shape[0], 1, device=device)
    _, alpha = softras(clip, faces, ones, (33, 29), sigma=1e-12, backend=native_backend)
    assert bool(hard.any()) and bool((~hard).any())
    assert bool(((alpha > 0.5) == hard).all())
    assert float((alpha - hard.float()).abs().max()) < 1e-6


@pytest.mark.parametrize("backend", NATIVE_BACKENDS)
def test_gradcheck_float64(backend):
    if backend == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    dev = torch.device(backend)
    for clip, faces, colors in (soup(4, bsz=1, nv=10, nf=8, dtype=torch.float64),
                                soup(5, bsz=2, nv=8, nf=6, nc=2, dtype=torch.float64)):
        faces = faces.to(dev)

        def fn(cl, col, faces=faces):
            return softras(cl, faces, col, (9, 11), 5e-3, 5e-2, 1e-3, 0.3, backend=backend)

        args = (clip.to(dev).requires_grad_(True), colors.to(dev).requires_grad_(True))
        assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=True)


def test_cpu_is_deterministic_whatever_the_thread_count():
    clip, faces, colors = two_spheres()
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _run(clip, faces, colors, (40, 48), "cpu", 1.0 / 7000.0, 1e-4, 0.0)
        torch.set_num_threads(2)
        two = _run(clip, faces, colors, (40, 48), "cpu", 1.0 / 7000.0, 1e-4, 0.0)
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(a, b) for a, b in zip(one, two, strict=True))


def test_fallbacks_to_the_reference():
    # Five channels, and a background that requires grad: the torch reference serves both
    # (the native kernels take up to four channels and a constant background).
    clip, faces, colors = soup(6, bsz=1, nc=5)
    want = softras(clip, faces, colors, 16, 2e-3, 1e-2, backend="torch")
    got = softras(clip, faces, colors, 16, 2e-3, 1e-2, backend="cpu")
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))
    bg = torch.tensor([0.1, 0.2, 0.3], requires_grad=True)
    rgb, _ = softras(clip, faces, colors[:, :3], 16, 2e-3, 1e-2, background=bg, backend="cpu")
    rgb.sum().backward()
    assert float(bg.grad.abs().min()) > 0
    with pytest.raises(ValueError, match="background"):
        softras(clip, faces, colors[:, :3], 16, background=[0.1, 0.2], backend="cpu")


def test_renderer_uses_its_backend():
    s = rc.icosphere(2, radius=0.6)
    mesh = rc.Mesh(s.vertices, s.faces, vertex_colors=(s.vertices * 0.5 + 0.5))
    cam = rc.Camera.orbit([30.0, 100.0], [15.0, 0.0], 3.0, fov=40.0)
    native = rc.Renderer(24, model="softras", backend="cpu").render(mesh, cam)
    ref = rc.Renderer(24, model="softras", backend="torch").render(mesh, cam)
    assert float((native.rgb - ref.rgb).abs().max()) < 1e-5
    assert float((native.alpha - ref.alpha).abs().max()) < 1e-5


def test_deterministic_mode_is_bit_identical_and_atomic_mode_agrees(native_backend, device):
    """Both backward reductions (csrc/README.md): the deterministic mode repeats to the bit;
    the default mode (atomic adds on the GPU) agrees with it to rounding."""
    clip, faces, colors = (t.to(device) for t in two_spheres())

    def run():
        return _run(clip, faces, colors, (40, 48), native_backend, 1.0 / 7000.0, 1e-4, 0.0)

    rc.set_deterministic(True)
    try:
        d1, d2 = run(), run()
    finally:
        rc.set_deterministic(False)
    a1 = run()
    assert all(torch.equal(x, y) for x, y in zip(d1, d2, strict=True))
    assert torch.equal(a1[0], d1[0]) and torch.equal(a1[1], d1[1])  # forward: no atomics
    for x, y in zip(a1[2:], d1[2:], strict=True):
        assert _rel(x, y) < 1e-5
    if native_backend == "cpu":  # no atomic mode on the CPU
        assert all(torch.equal(x, y) for x, y in zip(a1, d1, strict=True))


def test_silhouette_only_gradient(native_backend, device):
    """A loss on alpha alone (the colour gradient is zero everywhere, which the backward pass
    skips) gives the reference's gradient."""
    clip, faces, colors = two_spheres()
    grads = []
    for backend, dev in (("torch", torch.device("cpu")), (native_backend, device)):
        c = clip.to(dev).requires_grad_(True)
        _, alpha = softras(c, faces.to(dev), colors.to(dev), (40, 48), 1.0 / 7000.0,
                           backend=backend)
        (grad,) = torch.autograd.grad((alpha * alpha).sum(), c)
        grads.append(grad.cpu())
    assert float(grads[0].abs().max()) > 0
    assert _rel(grads[1], grads[0]) < 1e-4
