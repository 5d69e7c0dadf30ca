"""The DIB-R soft silhouette (eq. 5-6): values, cutoff, gradients.

Each test runs on the torch backend and on every native one (``NATIVE_BACKENDS``), with its
tensors on the backend's device (cuda for "cuda", else the CPU).
"""

import math

import numpy as np
import pytest
import torch
from _backends import NATIVE_BACKENDS

from render_core import _torch_ref as torch_ref
from render_core.camera import Camera
from render_core.rasterize import DEFAULT_SIGMA, rasterize, soft_silhouette

BACKENDS = ["torch", *NATIVE_BACKENDS]


def dev(backend: str) -> torch.device:
    return torch.device("cuda" if backend == "cuda" else "cpu")


def dense_reference(clip, faces, h, w, sigma):
    """The full product over all faces, directly from eq. 5-6 (float64, no cutoff)."""
    clip = clip.double()
    xy = torch_ref.iso_xy(clip, h, w)[0]
    valid = torch_ref.valid_faces(torch_ref.face_vertices(clip, faces))[0]
    xs, ys = torch_ref.pixel_centers(h, w, torch.float64, clip.device)
    px = (xs * (w / h)).view(1, w).expand(h, w).reshape(-1)
    py = ys.view(h, 1).expand(h, w).reshape(-1)
    p = torch.stack([px, py], -1)
    log_keep = torch.zeros(h * w, dtype=torch.float64, device=clip.device)
    covered = torch.zeros(h * w, dtype=torch.bool, device=clip.device)
    for f in range(faces.shape[0]):
        if not valid[f]:
            continue
        tri = xy[faces[f]].unsqueeze(0).expand(h * w, 3, 2)
        d, inside = torch_ref.point_triangle_dist2(p, tri)
        covered |= inside
        log_keep += torch.log(-torch.expm1(-(d / sigma).clamp(min=1e-300)))
    alpha = torch.where(covered, torch.ones_like(log_keep), -torch.expm1(log_keep))
    return alpha.view(h, w)


def sphere(sub=2, device="cpu"):
    import trimesh

    m = trimesh.creation.icosphere(subdivisions=sub)
    return (torch.tensor(m.vertices, dtype=torch.float32, device=device),
            torch.tensor(m.faces, device=device))


@pytest.mark.parametrize("backend", BACKENDS)
def test_covered_pixels_are_exactly_one_and_match_rasterize(backend):
    v, f = sphere(2, dev(backend))
    cam = Camera.orbit(20.0, 10.0, 3.0).to(dev(backend))
    clip = cam.to_clip(v)
    assert clip.device.type == dev(backend).type
    alpha = soft_silhouette(clip, f, (40, 60), backend=backend)
    frags = rasterize(clip, f, (40, 60), backend=backend)
    fg = frags.face_idx >= 0
    assert (alpha[fg] == 1).all()
    assert (alpha[~fg] < 1).all()
    assert (alpha >= 0).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_value_is_exp_of_distance_for_one_triangle(backend):
    # A big triangle whose right edge is the vertical line x = 0 (in NDC, w = 1).
    clip = torch.tensor([[[-3.0, -3.0, 0, 1], [0.0, -3.0, 0, 1], [0.0, 3.0, 0, 1]]],
                        device=dev(backend))
    h, w = 16, 32
    sigma = 2e-3
    faces = torch.tensor([[0, 1, 2]], device=dev(backend))
    alpha = soft_silhouette(clip, faces, (h, w), sigma=sigma, backend=backend)
    assert alpha.device.type == dev(backend).type
    xs, _ = torch_ref.pixel_centers(h, w, torch.float64, "cpu")
    row = alpha[0, h // 2].double().cpu()
    for j in range(w):
        x_iso = float(xs[j]) * w / h
        if x_iso <= 0:
            assert row[j] == 1
        else:
            expect = math.exp(-(x_iso**2) / sigma)
            expect = expect if expect >= torch_ref.SOFT_EPS else 0.0
            assert abs(row[j] - expect) < 1e-6


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("sigma", [DEFAULT_SIGMA, 1e-3])
def test_binned_matches_full_product(backend, sigma):
    # A dense mesh of small triangles: many faces near every boundary pixel.
    v, f = sphere(3, dev(backend))
    v = v * torch.tensor([1.0, 0.6, 0.8], device=v.device)
    cam = Camera.orbit(40.0, 15.0, 2.6, aspect=1.5).to(dev(backend))
    clip = cam.to_clip(v)
    h, w = 64, 96
    got = soft_silhouette(clip, f, (h, w), sigma=sigma, backend=backend)[0].double()
    ref = dense_reference(clip, f, h, w, sigma)
    # Skipped faces each had p < eps, so 1 - A changes by a factor in (1 - n*eps, 1]: the
    # error is at most the number of faces (all 1280 here) times eps, and in practice a
    # few eps because p falls off as a Gaussian of distance.
    err = (got - ref).abs().max().item()
    assert err <= f.shape[0] * torch_ref.SOFT_EPS
    assert err < 20 * torch_ref.SOFT_EPS
    assert ((got > 0) & (got < 1)).sum() > 50


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck_vertices_float64(backend):
    torch.manual_seed(0)
    # Two triangles in front of the camera, overlapping in screen space.
    v = torch.tensor(
        [[-0.5, -0.4, 0.0], [0.45, -0.35, 0.1], [0.0, 0.5, -0.1],
         [-0.2, 0.1, 0.3], [0.6, 0.2, 0.2], [0.1, -0.6, 0.25]],
        dtype=torch.float64, device=dev(backend), requires_grad=True,
    )
    f = torch.tensor([[0, 1, 2], [3, 4, 5]], device=dev(backend))
    cam = Camera.look_at((0.1, 0.2, 2.5), fov=45.0, aspect=1.25)
    cam = cam.to(device=dev(backend), dtype=torch.float64)
    weights = torch.rand(1, 8, 10, dtype=torch.float64).to(dev(backend))

    def fn(verts):
        a = soft_silhouette(cam.to_clip(verts), f, (8, 10), sigma=0.02, backend=backend,
                            eps=1e-30)
        return (a * weights).sum()

    assert torch.autograd.gradcheck(fn, (v,), eps=1e-6, atol=1e-5, rtol=1e-4)
    # Gradients are non-trivial: moving vertices changes the mask.
    (g,) = torch.autograd.grad(fn(v), v)
    assert g.abs().sum() > 1e-3


@pytest.mark.parametrize("backend", BACKENDS)
def test_background_gradient_pulls_mesh_towards_target(backend):
    # A triangle slightly left of where the target mask says it should be: increasing alpha on
    # the target pixels must push the vertices right (+x).
    v = torch.tensor([[-0.6, -0.5, 0.0], [0.2, -0.5, 0.0], [-0.2, 0.5, 0.0]],
                     device=dev(backend), requires_grad=True)
    f = torch.tensor([[0, 1, 2]], device=dev(backend))
    cam = Camera.look_at((0.0, 0.0, 2.0), fov=60.0).to(dev(backend))
    alpha = soft_silhouette(cam.to_clip(v), f, 64, sigma=1e-3, backend=backend)
    target = torch.zeros_like(alpha)
    target[..., :, 36:44] = 1.0  # a band right of the triangle
    loss = ((alpha - target) ** 2).sum()
    loss.backward()
    assert v.grad[:, 0].sum() < 0  # descent direction is +x


def test_faces_behind_camera_and_offscreen_are_finite():
    v = torch.tensor(
        [[0.0, 0.0, 5.0], [1.0, 0.0, 5.0], [0.0, 1.0, 5.0],  # behind the camera
         [-1.0, -1.0, 1.5], [1.0, -1.0, 2.5], [0.0, 1.0, 1.5],  # crosses the eye plane
         [50.0, 50.0, 0.0], [51.0, 50.0, 0.0], [50.0, 51.0, 0.0]],  # far off screen
        requires_grad=True,
    )
    f = torch.tensor([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    cam = Camera.look_at((0.0, 0.0, 2.0))
    a = soft_silhouette(cam.to_clip(v), f, 32, backend="torch")
    a.sum().backward()
    assert torch.isfinite(a).all() and torch.isfinite(v.grad).all()
    assert np.isclose(a.sum().item(), 0.0)
