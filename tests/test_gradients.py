"""Analytic gradients against finite differences (float64 gradcheck) for every attribute.

Every check runs on the torch backend and on every native one (``NATIVE_BACKENDS``), with the
scene and the checked inputs on the backend's device (cuda for "cuda", else the CPU).
"""

import pytest
import torch
from _backends import NATIVE_BACKENDS

import render_core as rc

RES = (9, 11)


pytestmark = [
    pytest.mark.usefixtures("float64_default"),
    pytest.mark.parametrize("backend", ["torch", *NATIVE_BACKENDS]),
]


def dev(backend: str) -> torch.device:
    return torch.device("cuda" if backend == "cuda" else "cpu")


def scene(backend: str):
    """Two overlapping triangles with per-corner UVs, colours and a tiny texture."""
    v = torch.tensor(
        [[-0.7, -0.6, 0.0], [0.65, -0.5, 0.1], [0.0, 0.7, -0.1],
         [-0.3, 0.05, 0.35], [0.75, 0.3, 0.2], [0.1, -0.75, 0.3]]
    )
    f = torch.tensor([[0, 1, 2], [3, 4, 5]])
    colors = torch.tensor(
        [[0.9, 0.2, 0.1], [0.1, 0.8, 0.3], [0.2, 0.3, 0.9],
         [0.7, 0.7, 0.1], [0.1, 0.6, 0.7], [0.8, 0.2, 0.6]]
    )
    uvs = torch.tensor([[0.1, 0.1], [0.9, 0.2], [0.45, 0.85], [0.2, 0.5], [0.8, 0.7], [0.55, 0.15]])
    torch.manual_seed(3)
    tex = torch.rand(5, 6, 3)
    cam = rc.Camera.look_at(torch.tensor([0.15, 0.25, 2.2]), fov=torch.tensor(55.0),
                            aspect=RES[1] / RES[0])
    d = dev(backend)
    return v.to(d), f.to(d), colors.to(d), uvs.to(d), tex.to(d), cam.to(d)


def weights(backend: str, c=3):
    torch.manual_seed(7)
    return torch.rand(1, *RES, c).to(dev(backend))


def check(fn, *inputs):
    assert all(t.device.type == inputs[0].device.type for t in inputs)
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)
    out = fn(*inputs)
    grads = torch.autograd.grad(out, inputs)
    assert all(g.abs().sum() > 0 for g in grads), "gradient is identically zero"


def test_vertices_through_foreground_barycentrics(backend):
    v, f, colors, *_ , cam = scene(backend)
    r = rc.Renderer(RES, shading="vertex_color", backend=backend, silhouette=False)
    w = weights(backend)

    def fn(verts):
        return (r.render(rc.Mesh(verts, f, vertex_colors=colors), cam).rgb * w).sum()

    check(fn, v.clone().requires_grad_(True))


def test_vertices_through_soft_silhouette(backend):
    v, f, *_, cam = scene(backend)
    w = weights(backend, 1)[..., 0]

    def fn(verts):
        a = rc.soft_silhouette(cam.to_clip(verts), f, RES, sigma=0.02, backend=backend,
                               eps=1e-30)
        return (a * w).sum()

    check(fn, v.clone().requires_grad_(True))


def test_vertex_colors(backend):
    v, f, colors, *_, cam = scene(backend)
    r = rc.Renderer(RES, shading="vertex_color", backend=backend)
    w = weights(backend)
    check(lambda c: (r.render(rc.Mesh(v, f, vertex_colors=c), cam).rgb * w).sum(),
          colors.clone().requires_grad_(True))


def test_texture_and_uvs(backend):
    v, f, _, uvs, tex, cam = scene(backend)
    r = rc.Renderer(RES, shading="texture", backend=backend)
    w = weights(backend)

    def fn(texture, uv):
        m = rc.Mesh(v, f, uvs=uv, face_uvs=f, texture=texture)
        return (r.render(m, cam).rgb * w).sum()

    check(fn, tex.clone().requires_grad_(True), uvs.clone().requires_grad_(True))


def test_camera_eye_and_fov(backend):
    v, f, colors, *_ = scene(backend)
    r = rc.Renderer(RES, shading="vertex_color", backend=backend, sigma=0.02)
    w = weights(backend)

    def fn(eye, fov):
        cam = rc.Camera.look_at(eye, fov=fov, aspect=RES[1] / RES[0])
        out = r.render(rc.Mesh(v, f, vertex_colors=colors), cam)
        return (out.rgb * w).sum() + (out.alpha * w[..., 0]).sum()

    check(fn, torch.tensor([0.15, 0.25, 2.2], device=dev(backend), requires_grad=True),
          torch.tensor(55.0, device=dev(backend), requires_grad=True))


def test_light_direction_lambertian(backend):
    v, f, colors, *_, cam = scene(backend)
    r = rc.Renderer(RES, shading="lambertian", backend=backend, silhouette=False)
    w = weights(backend)

    def fn(d):
        return (r.render(rc.Mesh(v, f, vertex_colors=colors), cam,
                         light=rc.DirectionalLight(d)).rgb * w).sum()

    check(fn, torch.tensor([0.3, 0.4, 1.0], device=dev(backend), requires_grad=True))


def test_sh_coefficients(backend):
    v, f, colors, *_, cam = scene(backend)
    r = rc.Renderer(RES, shading="sh", backend=backend, silhouette=False)
    w = weights(backend)
    torch.manual_seed(1)
    coeffs = (torch.randn(9, 3) * 0.3).to(dev(backend))

    def fn(c):
        return (r.render(rc.Mesh(v, f, vertex_colors=colors), cam, light=rc.SHLight(c)).rgb
                * w).sum()

    check(fn, coeffs.requires_grad_(True))


def test_phong_ks_and_shininess(backend):
    v, f, colors, *_, cam = scene(backend)
    r = rc.Renderer(RES, shading="phong", backend=backend, silhouette=False)
    w = weights(backend)
    light = rc.DirectionalLight(torch.tensor([0.1, 0.2, 1.0], device=dev(backend)))

    def fn(ks, shininess):
        mat = rc.PhongMaterial(kd=0.8, ks=ks, shininess=shininess)
        return (r.render(rc.Mesh(v, f, vertex_colors=colors), cam, light=light,
                         material=mat).rgb * w).sum()

    check(fn, torch.tensor(0.4, device=dev(backend), requires_grad=True),
          torch.tensor(5.0, device=dev(backend), requires_grad=True))
