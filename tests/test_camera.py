"""Camera conventions: orbit angles, look-at frame, OpenGL projection, batching."""

import math

import numpy as np
import pytest
import torch

from render_core.camera import Camera

pytestmark = pytest.mark.usefixtures("float64_default")


def ndc(cam, pts):
    clip = cam.to_clip(torch.as_tensor(pts, dtype=torch.float64))
    return (clip[..., :3] / clip[..., 3:]).numpy()


def test_orbit_convention():
    cam = Camera.orbit([0.0, 90.0, 0.0], [0.0, 0.0, 90.0], 2.0)
    np.testing.assert_allclose(cam.eye[0].numpy(), [0, 0, 2], atol=1e-9)
    np.testing.assert_allclose(cam.eye[1].numpy(), [2, 0, 0], atol=1e-9)
    np.testing.assert_allclose(cam.eye[2].numpy(), [0, 2, 0], atol=1e-5)


def test_look_at_frame_and_projection():
    cam = Camera.look_at((0.0, 0.0, 3.0), fov=90.0, aspect=2.0, near=1.0, far=10.0)
    # The target projects to the centre; +X world is right, +Y is up when viewed from +Z.
    p = ndc(cam, [[0, 0, 0], [1, 0, 0], [0, 1, 0]])[0]
    np.testing.assert_allclose(p[0, :2], [0, 0], atol=1e-12)
    assert p[1, 0] > 0 and abs(p[1, 1]) < 1e-12
    assert p[2, 1] > 0 and abs(p[2, 0]) < 1e-12
    # fov 90 at distance 3: y = 3 maps to NDC 1; x is divided by the aspect.
    q = ndc(cam, [[0, 3, 0], [6, 0, 0]])[0]
    np.testing.assert_allclose(q[:, :2], [[0, 1], [1, 0]], atol=1e-12)
    # Near and far planes map to NDC z = -1 and 1.
    z = ndc(cam, [[0, 0, 2], [0, 0, -7]])[0][:, 2]
    np.testing.assert_allclose(z, [-1, 1], atol=1e-12)
    # Camera space: the camera looks down -Z.
    np.testing.assert_allclose(cam.to_view(torch.zeros(1, 3, dtype=torch.float64))[0, 0],
                               [0, 0, -3], atol=1e-12)


def test_orthographic():
    cam = Camera.look_at((0.0, 0.0, 5.0), ortho_height=2.0, near=1.0, far=9.0)
    p = ndc(cam, [[0, 2, 0], [2, 0, 3], [0, 0, 4]])[0]
    np.testing.assert_allclose(p[:2, :2], [[0, 1], [1, 0]], atol=1e-12)
    assert abs(p[2, 2] + 1) < 1e-12


def test_batching_indexing_and_cat():
    cams = Camera.orbit(torch.tensor([0.0, 45.0, 90.0]), 10.0, 3.0)
    assert len(cams) == 3
    assert torch.equal(cams[1].view, cams.view[1:2])
    both = Camera.cat([cams[0], cams[2]])
    assert len(both) == 2 and torch.equal(both.eye[1], cams.eye[2])
    clip = cams.to_clip(torch.rand(5, 3))
    assert clip.shape == (3, 5, 4)
    with pytest.raises(ValueError):
        Camera.look_at([[0, 0, 1], [0, 0, 2]], fov=[30.0, 40.0, 50.0])


def test_gradients_flow_to_every_argument():
    az = torch.tensor(30.0, dtype=torch.float64, requires_grad=True)
    el = torch.tensor(20.0, dtype=torch.float64, requires_grad=True)
    dist = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    fov = torch.tensor(50.0, dtype=torch.float64, requires_grad=True)
    pts = torch.tensor([[0.3, 0.2, 0.1], [-0.2, 0.4, 0.3]], dtype=torch.float64)

    def f(az, el, dist, fov):
        c = Camera.orbit(az, el, dist, fov=fov).to_clip(pts)
        return c[..., :2] / c[..., 3:]

    assert torch.autograd.gradcheck(f, (az, el, dist, fov))
    eye = torch.tensor([0.5, 0.4, 2.5], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda e: Camera.look_at(e).to_clip(pts), (eye,))


def test_fov_matches_pinhole_focal():
    h = 200
    fov = 40.0
    cam = Camera.look_at((0.0, 0.0, 0.0), at=(0.0, 0.0, -1.0), fov=fov)
    focal = h / (2 * math.tan(math.radians(fov) / 2))
    y_ndc = ndc(cam, [[0, 0.1, -1.0]])[0, 0, 1]
    assert abs(y_ndc * h / 2 - 0.1 * focal) < 1e-9
