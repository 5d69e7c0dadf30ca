"""The native fragment ops (barycentrics + depth, attribute interpolation) against the torch
reference: values, gradients, float64 gradcheck, determinism, and the renderer end to end.

Each comparison runs once per native backend (``native_backend``, tests/conftest.py), every
tensor on that backend's device.
"""

from __future__ import annotations

import pytest
import torch
from _backends import NATIVE_BACKENDS
from _scenes import random_clip

import render_core as rc
from render_core import _build
from render_core import _torch_ref as torch_ref
from render_core._native import native_barycentrics, native_interpolate
from render_core.interpolate import interpolate
from render_core.rasterize import Fragments


@pytest.fixture(scope="module", autouse=True)
def native():
    """Build (or load) the extension; any failure fails every test of this module."""
    module = _build.native_module("cpu")  # with a GPU, the CUDA build serves both devices
    assert module is not None, _build._why_not("cpu")
    return module


def layered_scene(seed: int, bsz: int = 2, nv: int = 60, nf: int = 90):
    """Random clip-space triangles [B,V,4] in many overlapping layers, some of them behind the
    eye or outside the depth range, and a few degenerate faces."""
    g = torch.Generator().manual_seed(seed)
    clip = random_clip(g, bsz, nv)
    clip[:, :4, 3] *= -1  # behind the eye
    faces = torch.randint(0, nv, (nf, 3), generator=g)
    faces[:3, 1] = faces[:3, 0]  # zero area
    return clip, faces


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", [0, 1])
def test_barycentrics_and_grad_match_torch(seed, dtype, native_backend, device):
    clip, faces = (t.to(device) for t in layered_scene(seed))
    clip = clip.to(dtype)
    h, w = 41, 57
    face_idx = torch_ref.visibility(clip, faces, h, w)
    assert float((face_idx >= 0).float().mean()) > 0.3
    g = torch.Generator().manual_seed(seed + 10)
    up_b = torch.randn(*face_idx.shape, 3, generator=g, dtype=dtype).to(device)
    up_d = torch.randn(*face_idx.shape, generator=g, dtype=dtype).to(device)
    out = {}
    for name in ("torch", native_backend):
        c = clip.clone().requires_grad_(True)
        if name == "torch":
            bary, depth = torch_ref.barycentrics(c, faces, face_idx)
        else:
            bary, depth = native_barycentrics(native_backend, c, faces, face_idx)
        (grad,) = torch.autograd.grad((bary * up_b).sum() + (depth * up_d).sum(), c)
        out[name] = bary.detach(), depth.detach(), grad
    (bt, dt, gt), (bc, dc, gc) = out["torch"], out[native_backend]
    torch.testing.assert_close(bc, bt, atol=1e-5, rtol=0)
    torch.testing.assert_close(dc, dt, atol=1e-5, rtol=0)
    assert torch.equal(bc[face_idx < 0], torch.zeros_like(bc[face_idx < 0]))
    assert bool((dc[face_idx < 0] == 1).all())
    scale = float(gt.abs().max())
    assert scale > 0
    torch.testing.assert_close(gc, gt, atol=1e-4 * scale, rtol=1e-4)


@pytest.mark.parametrize("attr_batch", [None, 1, 2])
def test_interpolate_and_grad_match_torch(attr_batch, native_backend, device):
    clip, faces = (t.to(device) for t in layered_scene(3))
    h, w = 37, 45
    face_idx = torch_ref.visibility(clip, faces, h, w)
    # Per-corner indices into a different attribute table, as face_uvs are.
    g = torch.Generator().manual_seed(4)
    rows = 150
    corner = torch.randint(0, rows, faces.shape, generator=g).to(device)
    shape = (rows, 5) if attr_batch is None else (attr_batch, rows, 5)
    attr0 = torch.randn(*shape, generator=g).to(device)
    up = torch.randn(2, h, w, 5, generator=g).to(device)
    out = {}
    for name in ("torch", native_backend):
        c = clip.clone().requires_grad_(True)
        attr = attr0.clone().requires_grad_(True)
        bary, depth = torch_ref.barycentrics(c, faces, face_idx)
        frags = Fragments(face_idx, bary, depth)
        val = interpolate(attr, frags, corner, backend=name)
        g_attr, g_clip = torch.autograd.grad((val * up).sum(), (attr, c))
        out[name] = val.detach(), g_attr, g_clip
    for t, n in zip(out["torch"], out[native_backend], strict=True):
        torch.testing.assert_close(n, t, atol=1e-5 + 1e-4 * float(t.abs().max()), rtol=1e-4)
    assert bool((out[native_backend][0][face_idx < 0] == 0).all())
    assert float(out[native_backend][1].abs().sum()) > 0


def test_gradcheck_float64(native_backend, device):
    # One big triangle per image; pixels near its edges are left out so that no finite
    # difference step crosses the clamp of a barycentric at 0.
    clip = torch.tensor(
        [
            [[-0.9, -0.8, 0.1, 1.0], [0.8, -0.7, 0.3, 1.3], [0.1, 0.9, -0.2, 0.8]],
            [[-0.7, 0.8, 0.5, 1.5], [-0.6, -0.9, 0.2, 1.1], [0.9, 0.1, 0.0, 0.9]],
        ],
        dtype=torch.float64,
        device=device,
    )
    faces = torch.tensor([[0, 1, 2]], device=device)
    face_idx = torch_ref.visibility(clip, faces, 7, 8)
    bary, _ = torch_ref.barycentrics(clip, faces, face_idx)
    face_idx = torch.where(bary.amin(-1) > 0.02, face_idx, -1)
    assert int((face_idx >= 0).sum()) > 10
    c = clip.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda c: native_barycentrics(native_backend, c, faces, face_idx), (c,), eps=1e-6,
        atol=1e-7
    )
    attr = torch.randn(3, 2, dtype=torch.float64, device=device, requires_grad=True)
    b = bary.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda a, b: native_interpolate(native_backend, a.unsqueeze(0), b, faces, face_idx),
        (attr, b),
        eps=1e-6,
        atol=1e-7,
    )


def _renderer_grads(backend: str, threads: int = 1, device: torch.device | str = "cpu",
                    shading: str = "lambertian"):
    mesh = rc.icosphere(2).to(device)
    colors = torch.rand(mesh.vertices.shape[0], 3, generator=torch.Generator().manual_seed(0))
    verts = mesh.vertices.clone().requires_grad_(True)
    cols = colors.to(device).requires_grad_(True)
    cams = rc.Camera.orbit([20.0, 110.0], 15.0, 3.0, fov=50.0).to(device)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        out = rc.Renderer((40, 48), shading=shading, backend=backend).render(
            mesh.with_(vertices=verts, vertex_colors=cols),
            cams,
            light=rc.DirectionalLight(torch.tensor([0.3, 1.0, 0.6], device=device)),
        )
        loss = out.rgb.square().mean() + out.alpha.mean() + out.frags.depth.mean()
        gv, gc = torch.autograd.grad(loss, (verts, cols))
    finally:
        torch.set_num_threads(old)
    return out, gv, gc


def test_renderer_native_matches_torch(native_backend, device):
    ot, gvt, gct = _renderer_grads("torch", device=device)
    oc, gvc, gcc = _renderer_grads(native_backend, device=device)
    assert oc.rgb.device.type == device.type and gvc.device.type == device.type
    assert oc.frags.bary.grad_fn is not None and "Native" in type(oc.frags.bary.grad_fn).__name__
    assert "Native" not in type(ot.frags.bary.grad_fn).__name__
    assert torch.equal(oc.frags.face_idx, ot.frags.face_idx)
    for a, b in ((oc.rgb, ot.rgb), (oc.alpha, ot.alpha), (oc.frags.bary, ot.frags.bary)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    for a, b in ((gvc, gvt), (gcc, gct)):
        torch.testing.assert_close(a, b, atol=1e-4 * float(b.abs().max()), rtol=1e-4)


def test_cpu_bit_identical_across_thread_counts():
    o1, gv1, gc1 = _renderer_grads("cpu", threads=1)
    o2, gv2, gc2 = _renderer_grads("cpu", threads=2)
    assert torch.equal(o1.rgb, o2.rgb) and torch.equal(o1.alpha, o2.alpha)
    assert torch.equal(gv1, gv2) and torch.equal(gc1, gc2)


def test_renderer_deterministic_mode_is_bit_identical_and_atomic_mode_agrees(
    native_backend, device
):
    """The backward passes of barycentrics, interpolation and the soft silhouette in both
    reductions (csrc/README.md): the deterministic mode repeats to the bit, the default one
    (atomic adds on the GPU) agrees with it to rounding; forward passes are identical.
    Vertex colours: the lit shadings add torch's own index_add (vertex normals), whose CUDA
    kernel adds atomically in either mode."""
    rc.set_deterministic(True)
    try:
        runs = [_renderer_grads(native_backend, device=device, shading="vertex_color")
                for _ in range(2)]
    finally:
        rc.set_deterministic(False)
    runs += [_renderer_grads(native_backend, device=device, shading="vertex_color")
             for _ in range(2)]
    (o1, gv1, gc1) = runs[0]
    (o2, gv2, gc2) = runs[1]
    assert torch.equal(gv2, gv1) and torch.equal(gc2, gc1)
    for o, gv, gc in runs[1:]:
        assert torch.equal(o.rgb, o1.rgb) and torch.equal(o.alpha, o1.alpha)
        for a, b in ((gv, gv1), (gc, gc1)):
            torch.testing.assert_close(a, b, atol=1e-5 * float(b.abs().max()), rtol=1e-5)
            if native_backend == "cpu":  # no atomic mode on the CPU: always ordered sums
                assert torch.equal(a, b)


def test_interpolate_rejects_bad_indices_without_crashing(native_backend, device):
    clip, faces = (t.to(device) for t in layered_scene(2))
    face_idx = torch_ref.visibility(clip, faces, 16, 16)
    bary, depth = torch_ref.barycentrics(clip, faces, face_idx)
    frags = Fragments(face_idx, bary, depth)
    with pytest.raises(IndexError, match="attribute rows"):
        interpolate(torch.rand(10, 3, device=device), frags, faces, backend=native_backend)
    with pytest.raises(IndexError, match="out of range"):
        interpolate(torch.rand(60, 3, device=device), frags, faces[:5], backend=native_backend)
    with pytest.raises(ValueError, match="batch"):
        interpolate(torch.rand(3, 60, 3, device=device), frags, faces, backend=native_backend)


def _dense_lit(renderer, mesh, cam, light, material):
    """The lit render computed over every pixel and masked afterwards (the renderer's
    definition), from the public shading functions."""
    clip = cam.to_clip(mesh.vertices)
    frags = rc.rasterize(clip, mesh.faces, renderer.resolution, backend=renderer.backend)
    color = renderer.base_color(mesh, frags)
    vn = rc.vertex_normals(mesh.vertices, mesh.faces)
    normals = interpolate(vn, frags, mesh.faces, backend=renderer.backend)
    if renderer.shading == "sh":
        rgb = color * rc.sh_irradiance(normals, light)
    elif renderer.shading == "lambertian":
        rgb = color * rc.lambertian(normals, light, kd=material.kd)
    else:
        points = interpolate(mesh.vertices, frags, mesh.faces, backend=renderer.backend)
        i_l, i_s = rc.phong(normals, cam.eye.view(-1, 1, 1, 3) - points, light, material)
        rgb = color * i_l + i_s
    bg = torch.as_tensor(renderer.background, dtype=rgb.dtype)
    return torch.where(frags.mask.unsqueeze(-1), rgb, bg.expand_as(rgb))


@pytest.mark.parametrize("backend", ["torch", *NATIVE_BACKENDS])
@pytest.mark.parametrize("shading", ["lambertian", "phong", "sh"])
def test_renderer_shades_covered_pixels_like_the_dense_image(shading, backend):
    # The lit shadings run on the covered pixels only; per-image light and material parameters
    # ([B,3], [B], [B,9,3]) and per-pixel maps ([B,H,W,1]) must reach the right pixels, and the
    # values and gradients must equal shading the whole image and masking it.
    dev = torch.device("cuda" if backend == "cuda" else "cpu")
    res = (24, 20)
    cam = rc.Camera.cat([rc.Camera.orbit(30.0, 20.0, 3.0), rc.Camera.orbit(-70.0, -10.0, 2.6)])
    cam = cam.to(dev)
    g = torch.Generator().manual_seed(3)
    base = rc.icosphere(2).to(dev)
    colors = torch.rand(base.num_vertices, 3, generator=g).to(dev)

    def run(dense: bool):
        verts = base.vertices.clone().requires_grad_(True)
        direction = torch.tensor([[0.3, 0.5, 1.0], [-0.6, 0.2, 0.4]], device=dev,
                                 requires_grad=True)
        intensity = torch.tensor([1.0, 0.7], device=dev, requires_grad=True)
        kd = torch.rand(2, *res, 1, generator=torch.Generator().manual_seed(1)).to(dev)
        kd.requires_grad_(True)
        ks = torch.tensor([0.4, 0.2], device=dev, requires_grad=True)
        coeffs = torch.rand(2, 9, 3, generator=torch.Generator().manual_seed(2)).to(dev)
        coeffs.requires_grad_(True)
        mesh = base.with_(vertices=verts, vertex_colors=colors)
        if shading == "sh":
            light, material, leaves = rc.SHLight(coeffs), None, [verts, coeffs]
        else:
            light = rc.DirectionalLight(direction, intensity, 0.1)
            material = rc.PhongMaterial(kd=kd, ks=ks, shininess=8.0)
            leaves = [verts, direction, intensity, kd] + ([ks] if shading == "phong" else [])
        r = rc.Renderer(res, shading=shading, backend=backend, background=(0.2, 0.3, 0.4))
        if dense:
            rgb = _dense_lit(r, mesh, cam, light, material)
        else:
            rgb = r.render(mesh, cam, light=light, material=material).rgb
        w = torch.rand(rgb.shape, generator=torch.Generator().manual_seed(4)).to(dev)
        grads = torch.autograd.grad((rgb * w).sum(), leaves)
        return rgb.detach(), grads

    rgb, grads = run(False)
    ref, ref_grads = run(True)
    assert rgb.shape == (2, *res, 3) and rgb.device.type == dev.type
    torch.testing.assert_close(rgb, ref, rtol=0, atol=0)
    for a, b in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
