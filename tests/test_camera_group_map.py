"""The camera group's map from the ``camera`` parameters to cameras (render_core._camera_group)
against independent references: Rodrigues' rotation and its closed-form gradient against the
matrix exponential, and the cached, fused camera construction against
``Camera.from_intrinsics`` of the same pose and intrinsics (values and gradients)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import render_core as rc
from render_core._camera_group import FAR, NEAR, CameraGroup, rotation
from render_core.fit import TargetView


def _skew(w: torch.Tensor) -> torch.Tensor:
    z = torch.zeros_like(w[:, 0])
    return torch.stack([torch.stack([z, -w[:, 2], w[:, 1]], -1),
                        torch.stack([w[:, 2], z, -w[:, 0]], -1),
                        torch.stack([-w[:, 1], w[:, 0], z], -1)], -2)


@pytest.mark.parametrize("scale", [0.0, 1e-12, 1e-6, 1e-3, 0.1, 1.0, 3.0])
def test_rotation_and_its_gradient_are_the_matrix_exponentials(scale):
    g = torch.Generator().manual_seed(int(scale * 1e3) + 1)
    w = torch.randn(8, 3, generator=g, dtype=torch.float64) * scale
    up = torch.randn(8, 3, 3, generator=g, dtype=torch.float64)
    x, y = w.clone().requires_grad_(True), w.clone().requires_grad_(True)
    r, ref = rotation(x), torch.linalg.matrix_exp(_skew(y))
    torch.testing.assert_close(r, ref, rtol=0, atol=1e-14)
    gx, = torch.autograd.grad((r * up).sum(), x)
    gy, = torch.autograd.grad((ref * up).sum(), y)
    torch.testing.assert_close(gx, gy, rtol=0, atol=1e-13)


def test_rotation_gradcheck_and_exact_identity_at_zero():
    g = torch.Generator().manual_seed(5)
    w = (torch.randn(5, 3, generator=g, dtype=torch.float64) * 0.8).requires_grad_(True)
    assert torch.autograd.gradcheck(rotation, (w,))
    for dtype in (torch.float32, torch.float64):
        z = torch.zeros(4, 3, dtype=dtype, requires_grad=True)
        r = rotation(z)
        assert torch.equal(r, torch.eye(3, dtype=dtype).expand(4, 3, 3))
        up = torch.randn(4, 3, 3, generator=g, dtype=torch.float64).to(dtype)
        gz, = torch.autograd.grad((r * up).sum(), z)
        # d exp([w]x) / dw_k at 0 is [e_k]x.
        want = torch.stack([up[:, 2, 1] - up[:, 1, 2], up[:, 0, 2] - up[:, 2, 0],
                            up[:, 1, 0] - up[:, 0, 1]], -1)
        torch.testing.assert_close(gz, want)


def _targets() -> list[TargetView]:
    img, mask = np.zeros((30, 40, 3), np.float32), np.zeros((30, 40), np.float32)
    out = []
    for i in range(6):
        if i % 2:
            out.append(TargetView(img, mask, 50.0 * i, 20.0 - 8 * i, 3.0 + 0.2 * i, 38.0 + i,
                                  f"orbit {i}"))
            continue
        eye = np.array([1.0 + 0.5 * i, 0.4 - 0.2 * i, 3.0])
        R = rc.Camera.look_at(tuple(eye), at=(0.1, 0.0, 0.0)).world_to_camera()[0][0]
        R = R.double().numpy()
        out.append(TargetView.from_camera(img, mask, R, -R @ eye, 48.0 + i, 51.0, 18.0 + i,
                                          14.0, lock_fov=i == 2, lock_camera=i == 4,
                                          camera_group=0 if i in (0, 5) else None))
    return out


@pytest.mark.parametrize("views", [None, [0, 1, 3, 5]])
def test_cameras_are_from_intrinsics_of_their_pose_and_intrinsics(views):
    """Orbit and general targets, a locked fov, a locked camera, a shared fov, a subset of
    refined views, two render sizes: every field and the gradient as
    Camera.from_intrinsics gives them for pose() and intrinsics()."""
    group = CameraGroup(_targets(), torch.float64)
    g = torch.Generator().manual_seed(2)
    delta0 = torch.randn(6, 7, generator=g, dtype=torch.float64) * 0.3
    for size in ((30, 40), (48, 64), (30, 40)):
        ups = [torch.randn(6, *s, generator=g, dtype=torch.float64)
               for s in ((4, 4), (4, 4), (3,), ())]
        got, want = [], []
        for build, out in ((group.cameras, got), (_reference(group), want)):
            d = delta0.clone().requires_grad_(True)
            cam = build(d, views, size)
            fields = (cam.view, cam.proj, cam.eye, cam.fov)
            total = sum((f * u).sum() for f, u in zip(fields, ups, strict=True))
            out.extend([*(f.detach() for f in fields), cam.aspect, cam.near, cam.far,
                        torch.autograd.grad(total, d)[0]])
        for a, b in zip(got, want, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
        # Rows of cameras that are not refined get no gradient.
        refined = group.refined(views)
        assert all(bool((got[-1][i, :6] == 0).all()) for i in range(6) if not refined[i])


def _reference(group: CameraGroup):
    """The cameras as Camera.from_intrinsics builds them from the group's pose and
    intrinsics."""
    def build(delta, views, size) -> rc.Camera:
        R, t = group.pose(delta, views)
        fx, fy, cx, cy = group.intrinsics(group.fov(delta, views), size)
        h, w = size
        return rc.Camera.from_intrinsics(R, t, fx, fy, cx, cy, w, h, NEAR, FAR)
    return build


def test_intrinsics_follow_the_fov_from_each_targets_own():
    """At the start each target's intrinsics are its own, in pixels of the render; a fov
    step scales a general target's focal lengths by tan(fov0 / 2) / tan(fov / 2)."""
    targets = _targets()
    group = CameraGroup(targets, torch.float64)
    h, w = 48, 64
    delta = torch.zeros(6, 7, dtype=torch.float64)
    for step in (0.0, 0.4):
        delta[:, 6] = step
        fov = group.fov(delta, None)
        fx, fy, cx, cy = (v.numpy() for v in group.intrinsics(fov, (h, w)))
        for i, t in enumerate(targets):
            if t.is_orbit:
                f = h / (2 * np.tan(np.radians(fov[i].item()) / 2))
                want = (f, f, w / 2, h / 2)
            else:
                f0x, f0y, c0x, c0y = t.pixel_intrinsics()
                k = np.tan(np.radians(t.fov) / 2) / np.tan(np.radians(fov[i].item()) / 2)
                want = (f0x * w / 40 * k, f0y * h / 30 * k, c0x * w / 40, c0y * h / 30)
            np.testing.assert_allclose((fx[i], fy[i], cx[i], cy[i]), want, rtol=1e-12)
        moved = fov.numpy() != np.array([t.fov for t in targets])
        assert moved.any() == (step != 0.0)
