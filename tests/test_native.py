"""The native backends against the torch reference (render_core._torch_ref).

Every comparison runs once per native backend (``native_backend``, tests/conftest.py): on cpu
always, on cuda where a GPU exists, with every tensor on that backend's device and the torch
reference computed on the same device. A native extension that fails to build is a test
failure (CI has a compiler); only a cuda case without a GPU is skipped. The CUDA variant is
also compile-checked without a GPU by ``python -m render_core.build_ext --cuda``.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from _scenes import random_clip

import render_core as rc
from render_core import _build, _native
from render_core import _torch_ref as torch_ref
from render_core.rasterize import rasterize, soft_silhouette


@pytest.fixture(scope="module", autouse=True)
def native():
    """Build (or load) the extension; any failure fails every test of this module."""
    module = _build.native_module("cpu")  # with a GPU, the CUDA build serves both devices
    assert module is not None, _build._why_not("cpu")
    return module


def random_scene(seed: int, bsz: int = 2, nv: int = 90, nf: int = 140, near_w: float = 2e-6):
    """Random clip-space triangles [B,V,4] + faces [F,3] with every awkward case mixed in.

    Many overlapping layers (vertices concentrated near the centre), degenerate faces (repeated
    indices, collinear vertices), faces behind the camera (w < 0), w near 0 and z outside
    [-1, 1] so the depth clip matters.
    """
    g = torch.Generator().manual_seed(seed)
    clip = random_clip(g, bsz, nv)
    clip[:, :6, 3] *= -1  # behind the eye
    clip[:, 6:9, 3] = torch.tensor([1e-7, near_w, 1e-6])  # at/near the eye plane
    clip[:, 9:12] = clip[:, 12:13] + torch.arange(3.0).view(1, 3, 1) * 0.1  # collinear
    faces = torch.randint(0, nv, (nf, 3), generator=g)
    faces[:5, 1] = faces[:5, 0]  # zero-area faces
    faces[5] = torch.tensor([9, 10, 11])
    faces[6:12, 0] = torch.arange(6)
    faces[12:15, 0] = torch.arange(6, 9)
    return clip, faces


SIZES = [(37, 53), (64, 48), (32, 32)]


def _tie_free_mismatches(clip, faces, a, b):
    """Pixels where two face_idx maps differ other than by an exact depth tie."""
    diff = a != b
    if not bool(diff.any()):
        return 0
    both = (a >= 0) & (b >= 0) & diff
    _, da = tr_depth(clip, faces, a)
    _, db = tr_depth(clip, faces, b)
    tie = both & ((da - db).abs() <= 1e-6)
    return int((diff & ~tie).sum())


def tr_depth(clip, faces, face_idx):

    return torch_ref.barycentrics(clip, faces, face_idx)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("size", SIZES)
def test_visibility_matches_torch(seed, size, native_backend, device):
    clip, faces = (t.to(device) for t in random_scene(seed))
    h, w = size
    ref = torch_ref.visibility(clip, faces, h, w)
    got = _native.native_visibility(native_backend, clip, faces, h, w)
    assert got.device.type == device.type
    assert got.dtype == torch.int64 and got.shape == (2, h, w)
    assert int((ref >= 0).sum()) > 100  # the scene covers the image
    assert _tie_free_mismatches(clip, faces, ref, got) == 0


@pytest.mark.parametrize("flip", [False, True])
def test_visibility_exact_ties_go_to_the_lower_face(flip, native_backend, device):
    """Every face given twice (exact depth ties) in shuffled order, either orientation: each
    pixel gets the lower position of its face (the CPU pass bins counter-clockwise faces first
    and the others in descending order, so the tie-break, not the order, decides)."""
    clip, faces = (t.to(device) for t in random_scene(3))
    faces = faces.flip(1) if flip else faces
    h, w = 37, 53
    once = _native.native_visibility(native_backend, clip, faces, h, w)
    f = faces.shape[0]
    perm = torch.randperm(2 * f, generator=torch.Generator().manual_seed(0)).to(device)
    got = _native.native_visibility(native_backend, clip, torch.cat([faces, faces])[perm], h, w)
    pos = torch.empty_like(perm)
    pos[perm] = torch.arange(2 * f, device=device)
    lower = torch.minimum(pos[:f], pos[f:])
    assert int((once >= 0).sum()) > 100
    assert torch.equal(got, torch.where(once >= 0, lower[once.clamp(min=0)], once))


def test_rasterize_bary_depth_match(native_backend, device):
    clip, faces = (t.to(device) for t in random_scene(3, bsz=3))
    clip = clip.double()
    ft = rasterize(clip, faces, (40, 56), backend="torch")
    fc = rasterize(clip, faces, (40, 56), backend=native_backend)
    same = ft.face_idx == fc.face_idx
    assert float(same.float().mean()) > 0.999
    torch.testing.assert_close(fc.bary[same], ft.bary[same], atol=1e-5, rtol=0)
    torch.testing.assert_close(fc.depth[same], ft.depth[same], atol=1e-5, rtol=0)


@pytest.mark.parametrize("seed", [0, 4])
@pytest.mark.parametrize("sigma", [1 / 7000, 1 / 300])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_soft_silhouette_and_grad_match(seed, sigma, dtype, native_backend, device):
    # A vertex at w = 2e-6 projects to ~1e5 NDC: its faces' distances are differences of huge
    # numbers, and d(xy)/dw = -xy/w amplifies every rounding by ~1e11, so the float32 gradients
    # of both backends are noise there. float32 compares a vertex at w = 0.02 instead; float64
    # keeps the extreme one.
    near_w = 2e-6 if dtype == torch.float64 else 0.02
    clip, faces = (t.to(device) for t in random_scene(seed, near_w=near_w))
    clip = clip.to(dtype)
    h, w = 48, 62
    weight = torch.rand(2, h, w, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    weight = weight.to(device)
    out = {}
    for backend in ("torch", native_backend):
        c = clip.clone().requires_grad_(True)
        alpha = soft_silhouette(c, faces, (h, w), sigma=sigma, backend=backend)
        (grad,) = torch.autograd.grad((alpha * weight).sum(), c)
        out[backend] = alpha.detach(), grad
    (a_t, g_t), (a_c, g_c) = out["torch"], out[native_backend]
    assert 0.05 < float(a_t.mean()) < 0.95
    torch.testing.assert_close(a_c, a_t, atol=1e-5, rtol=0)
    assert torch.isfinite(g_c).all()
    scale = float(g_t.abs().max())
    assert scale > 0
    torch.testing.assert_close(g_c, g_t, atol=1e-4 * scale, rtol=1e-4)


def test_gradcheck_float64(native_backend, device):
    g = torch.Generator().manual_seed(7)
    h, w = 9, 11
    xy = torch.rand(2, 7, 2, generator=g, dtype=torch.float64) * 1.6 - 0.8
    xy = xy.to(device).requires_grad_(True)
    faces = torch.tensor([[0, 1, 2], [2, 3, 4], [4, 5, 6], [1, 3, 5], [0, 0, 6]], device=device)
    valid = torch.ones(2, faces.shape[0], dtype=torch.bool, device=device)
    valid[1, 2] = False

    def f(p):
        # eps = 1e-30: no face crosses the cutoff under the finite-difference steps.
        return _native.native_soft_silhouette(native_backend, p, valid, faces, h, w, 0.05, 1e-30)

    assert f(xy).dtype == torch.float64
    assert torch.autograd.gradcheck(f, (xy,), eps=1e-6, atol=1e-6, rtol=1e-4)


def dense_grid(n: int = 14):
    """A flat n x n grid of small triangles filling most of the view (2 n^2 faces)."""
    s = torch.linspace(-0.7, 0.7, n + 1)
    yy, xx = torch.meshgrid(s, s, indexing="ij")
    v = torch.stack([xx.reshape(-1), yy.reshape(-1)], -1)
    v = v + 0.01 * torch.sin(7 * v).flip(-1)  # not perfectly regular
    clip = torch.cat([v, torch.zeros(len(v), 1), torch.ones(len(v), 1)], -1)[None]
    idx = torch.arange((n + 1) ** 2).view(n + 1, n + 1)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    faces = torch.cat([torch.stack([a, b, d], -1), torch.stack([a, d, c], -1)]).reshape(-1, 3)
    return clip, faces


def test_binned_matches_full_product(native_backend, device):
    """Binned alpha vs 1 - prod over ALL faces (no cutoff), computed directly.

    Skipping faces with p_j < eps changes 1 - A = prod_j (1 - p_j) by the factor
    prod_skipped (1 - p_j), so |A_binned - A_full| <= sum_skipped p_j. We check that bound per
    pixel (in float64, so rounding stays far below it), and that it is small: each skipped
    p_j < eps, and p_j decays like exp(-d/sigma) past the cutoff, so only the few faces within
    ~1.5 cutoff radii matter; on this mesh the sum stays below 20 eps = 2e-4.
    """
    clip, faces = (t.to(device) for t in dense_grid())
    h, w = 40, 52
    sigma, eps = 1 / 2000, 1e-5
    clip = clip.double()
    alpha = soft_silhouette(clip, faces, (h, w), sigma=sigma, backend=native_backend, eps=eps)[0]
    xy = torch_ref.iso_xy(clip, h, w)[0]
    xs, ys = torch_ref.pixel_centers(h, w, torch.float64, clip.device)
    p = torch.stack(torch.meshgrid(ys, xs * (w / h), indexing="ij"), -1).flip(-1).reshape(-1, 2)
    tri = xy[faces]  # [F,3,2]
    npix, nf = p.shape[0], tri.shape[0]
    d, inside = torch_ref.point_triangle_dist2(
        p[:, None].expand(npix, nf, 2).reshape(-1, 2),
        tri[None].expand(npix, nf, 3, 2).reshape(-1, 3, 2),
    )
    d, inside = d.view(npix, nf), inside.view(npix, nf)
    pj = torch.exp(-d / sigma)
    full = 1 - torch.prod(1 - pj, dim=1)
    full = torch.where(inside.any(1), torch.ones_like(full), full).view(h, w)
    skipped = (
        torch.where(d >= torch_ref.cutoff2(sigma, eps), pj, torch.zeros_like(pj)).sum(1).view(h, w)
    )
    err = (alpha - full).abs()
    assert float(skipped.max()) < 20 * eps
    assert bool((err <= skipped + 1e-12).all()), float((err - skipped).max())
    assert float(err.max()) > 0  # the cutoff did drop something: the bound is exercised
    assert float(full.min()) < 0.01 and float(full.max()) == 1.0  # edges and interior covered


def _run_soft(clip, faces, weight, backend="cpu"):
    c = clip.clone().requires_grad_(True)
    alpha = soft_silhouette(c, faces, (50, 70), sigma=1 / 500, backend=backend)
    (grad,) = torch.autograd.grad((alpha * weight).sum(), c)
    return alpha.detach(), grad


def test_deterministic_mode_is_bit_identical_and_atomic_mode_agrees(native_backend, device):
    """Both backward reductions of the soft silhouette (csrc/README.md): the deterministic mode
    repeats to the bit; the default mode (atomic adds on the GPU) agrees with it to rounding.
    The forward pass uses no atomic sums: it is bit-identical in both modes."""
    clip, faces = (t.to(device) for t in random_scene(5, nf=400))
    weight = torch.rand(2, 50, 70, generator=torch.Generator().manual_seed(1)).to(device)
    assert not rc.is_deterministic()
    rc.set_deterministic(True)
    try:
        assert rc.is_deterministic()
        a1, g1 = _run_soft(clip, faces, weight, native_backend)
        a2, g2 = _run_soft(clip, faces, weight, native_backend)
    finally:
        rc.set_deterministic(False)
    assert not rc.is_deterministic()
    a3, g3 = _run_soft(clip, faces, weight, native_backend)
    a4, g4 = _run_soft(clip, faces, weight, native_backend)
    assert torch.equal(a2, a1) and torch.equal(g2, g1)
    assert torch.equal(a3, a1) and torch.equal(a4, a1)
    scale = float(g1.abs().max())
    assert scale > 0
    for g in (g3, g4):
        torch.testing.assert_close(g, g1, atol=1e-5 * scale, rtol=1e-5)
    if native_backend == "cpu":  # no atomic mode on the CPU: always the ordered sums
        assert torch.equal(g3, g1) and torch.equal(g4, g1)
    f1 = _native.native_visibility(native_backend, clip, faces, 50, 70)  # atomicMin: exact
    assert torch.equal(f1, _native.native_visibility(native_backend, clip, faces, 50, 70))


def test_cpu_deterministic_across_runs_and_threads():
    clip, faces = random_scene(5, nf=400)
    weight = torch.rand(2, 50, 70, generator=torch.Generator().manual_seed(1))
    a1, g1 = _run_soft(clip, faces, weight)
    a2, g2 = _run_soft(clip, faces, weight)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a3, g3 = _run_soft(clip, faces, weight)
    finally:
        torch.set_num_threads(threads)
    for a, g in ((a2, g2), (a3, g3)):
        assert torch.equal(a, a1) and torch.equal(g, g1)
    f1 = _native.native_visibility("cpu", clip, faces, 50, 70)
    assert torch.equal(f1, _native.native_visibility("cpu", clip, faces, 50, 70))


def test_backends_and_auto(native_backend, device):
    assert "cpu" in _build.available_backends()
    assert _build.resolve_backend("auto", device) == native_backend
    with pytest.raises(ValueError):
        _build.resolve_backend("metal", device)
    other = torch.device("meta" if device.type == "cpu" else "cpu")  # any other device
    with pytest.raises(ValueError, match=f"needs {device.type} tensors"):
        _native.native_visibility(native_backend, torch.zeros(1, 3, 4, device=other),
                                  torch.tensor([[0, 1, 2]], device=other), 4, 4)


def test_empty_and_offscreen(native_backend, device):
    clip = torch.tensor([[[5.0, 5.0, 0.0, 1.0], [6.0, 5.0, 0.0, 1.0], [5.0, 6.0, 0.0, 1.0]]],
                        device=device)
    faces = torch.tensor([[0, 1, 2]], device=device)
    assert bool((_native.native_visibility(native_backend, clip, faces, 8, 8) == -1).all())
    alpha = soft_silhouette(clip, faces, 8, backend=native_backend)
    assert float(alpha.abs().max()) == 0.0


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=300,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )


_FALLBACK = """
    import warnings, torch
    from render_core import _build
    from render_core.rasterize import soft_silhouette
    print(_build.available_backends())
    clip = torch.tensor([[[0.0, 0.0, 0.0, 1.0], [0.5, 0.0, 0.0, 1.0], [0.0, 0.5, 0.0, 1.0]]])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            soft_silhouette(clip, torch.tensor([[0, 1, 2]]), 8)
    print(len(caught), caught[0].message if caught else "")
"""


def test_fallback_when_disabled():
    r = _python(_FALLBACK, DIBR_NO_EXT="1")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "['torch']"
    assert lines[1].startswith("1 ") and "DIBR_NO_EXT" in lines[1]


def test_fallback_without_compiler(tmp_path):
    r = _python(_FALLBACK, CXX=str(tmp_path / "no-such-compiler"), DIBR_EXT_DIR=str(tmp_path))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "['torch']"
    assert lines[1].startswith("1 ") and "compiler" in lines[1]


def test_fallback_warning_names_the_compiler_error(tmp_path):
    # A copy of csrc/ whose sources include a header that does not exist: the compiler stops at
    # once with "fatal error: ...", and the one warning of backend="auto" must quote that line
    # (not the echoed compiler command, nor a missing .so).
    src = tmp_path / "csrc"
    shutil.copytree(Path(__file__).resolve().parents[1] / "csrc", src)
    for name in ("bindings.cpp", "raster_cpu.cpp"):
        (src / name).write_text('#include "dibr_missing_header_for_test.h"\n')
    code = (
        f"import pathlib\nfrom render_core import _build\n_build._CSRC = pathlib.Path({str(src)!r})"
    )
    code += "\n" + textwrap.dedent(_FALLBACK)
    r = _python(code, DIBR_EXT_DIR=str(tmp_path / "ext"))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "['torch']"
    assert lines[1].startswith("1 "), lines
    assert "error: dibr_missing_header_for_test.h" in lines[1], lines[1]
    assert "-MMD" not in lines[1] and ".so" not in lines[1], lines[1]


def test_cutoff_radius_formula():
    # r_c = sqrt(sigma ln(1/eps)): at the DIB-R sigma the mask reaches ~5 px at 256x256.
    r_px = math.sqrt(torch_ref.cutoff2(1 / 7000, 1e-5)) * 128
    assert 5 < r_px < 5.5


def test_a_lock_left_by_a_killed_process_does_not_hang_the_next_start():
    """A process killed while holding the build lock (a fit child the studio ends) leaves the
    lock file behind; a later start must load the built library anyway, not wait forever."""
    _build.load_variant("cpu")  # built (the suite's setup builds it; this makes sure)
    lock = _build.build_dir("cpu") / "lock"
    lock.touch()
    try:
        code = "from render_core import _build; print(_build.load_variant('cpu').__name__)"
        r = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
        )
        assert r.returncode == 0 and "dibr_render_core_cpu" in r.stdout, r.stderr
    finally:
        lock.unlink(missing_ok=True)
