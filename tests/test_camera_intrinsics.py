"""General pinhole cameras: intrinsics in pixels, OpenCV/OpenGL poses, the pixel-centre rule."""

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from render_core.camera import Camera
from render_core.primitives import icosphere
from render_core.rasterize import rasterize

pytestmark = pytest.mark.usefixtures("float64_default")


def _pose(seed):
    """A random world-to-camera pose (OpenCV axes) that sees points near the origin."""
    rng = np.random.default_rng(seed)
    r = Rotation.from_rotvec(rng.normal(size=3) * 0.6).as_matrix()
    t = np.array([rng.uniform(-0.3, 0.3), rng.uniform(-0.3, 0.3), rng.uniform(3.0, 4.0)])
    return r, t


def _opencv_pixels(r, t, k, pts):
    """The plain OpenCV pinhole formula, u = fx X/Z + cx, v = fy Y/Z + cy."""
    fx, fy, cx, cy = k
    x = pts @ r.T + t
    return np.stack([fx * x[:, 0] / x[:, 2] + cx, fy * x[:, 1] / x[:, 2] + cy], -1)


def test_centred_intrinsics_equal_look_at():
    w, h, fov = 160, 120, 47.0
    ref = Camera.look_at((0.4, 0.7, 3.0), (0.1, -0.2, 0.0), fov=fov, aspect=w / h, near=0.1,
                         far=20.0)
    fy = h / (2 * math.tan(math.radians(fov) / 2))
    r, t = ref.view[0, :3, :3], ref.view[0, :3, 3]
    cam = Camera.from_intrinsics(r, t, fy, fy, w / 2, h / 2, w, h, near=0.1, far=20.0)
    torch.testing.assert_close(cam.proj, ref.proj, atol=1e-12, rtol=0)
    torch.testing.assert_close(cam.view, ref.view, atol=1e-12, rtol=0)
    torch.testing.assert_close(cam.eye, ref.eye, atol=1e-12, rtol=0)
    torch.testing.assert_close(cam.fov, ref.fov, atol=1e-9, rtol=0)
    torch.testing.assert_close(cam.aspect, ref.aspect)
    by_eye = Camera.look_at_intrinsics((0.4, 0.7, 3.0), (0.1, -0.2, 0.0), (0.0, 1.0, 0.0), fy, fy,
                                       w / 2, h / 2, w, h, near=0.1, far=20.0)
    torch.testing.assert_close(by_eye.proj, ref.proj, atol=1e-12, rtol=0)
    torch.testing.assert_close(by_eye.view, ref.view, atol=1e-12, rtol=0)
    # and the look-at camera reads back the same intrinsics
    fx2, fy2, cx2, cy2 = ref.intrinsics(w, h)
    np.testing.assert_allclose([fx2.item(), fy2.item(), cx2.item(), cy2.item()],
                               [fy, fy, w / 2, h / 2], atol=1e-9)


@pytest.mark.parametrize("convention", ["opencv", "opengl"])
def test_known_point_lands_on_opencv_pixel(convention):
    w, h = 200, 150
    k = (231.0, 219.5, 87.25, 91.5)  # principal point well off-centre, fx != fy
    r, t = _pose(1)
    pts = np.random.default_rng(2).uniform(-0.5, 0.5, (50, 3))
    expected = _opencv_pixels(r, t, k, pts)
    if convention == "opengl":
        flip = np.diag([1.0, -1.0, -1.0])
        r_in, t_in = flip @ r, flip @ t
    else:
        r_in, t_in = r, t
    cam = Camera.from_intrinsics(torch.tensor(r_in), torch.tensor(t_in), *k, w, h,
                                 convention=convention)
    got = cam.to_pixels(torch.tensor(pts), w, h)[0].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-9)
    np.testing.assert_allclose(cam.eye[0].numpy(), -r.T @ t, atol=1e-12)
    # intrinsics and the OpenCV pose read back
    np.testing.assert_allclose([v.item() for v in cam.intrinsics(w, h)], k, atol=1e-9)
    r_cv, t_cv = cam.world_to_camera("opencv")
    np.testing.assert_allclose(r_cv[0].numpy(), r, atol=1e-12)
    np.testing.assert_allclose(t_cv[0].numpy(), t, atol=1e-12)
    # intrinsics scale with the render resolution: same pixels at twice the size, doubled
    got2 = cam.to_pixels(torch.tensor(pts), 2 * w, 2 * h)[0].numpy()
    np.testing.assert_allclose(got2, 2 * expected, atol=1e-9)


def test_pixel_centre_rule_with_the_rasterizer():
    """A tiny triangle around the point that projects to (j+0.5, i+0.5) covers exactly the
    pixel (row i, col j) of the rasterized image (design.md's pixel-centre rule)."""
    w, h = 24, 18
    k = (30.0, 28.0, 9.0, 11.0)
    r, t = _pose(3)
    cam = Camera.from_intrinsics(torch.tensor(r), torch.tensor(t), *k, w, h,
                                 convention="opencv")
    for i, j in [(0, 0), (5, 17), (17, 23), (12, 2)]:
        u, v = j + 0.5, i + 0.5
        z = 3.5
        centre = np.array([(u - k[2]) / k[0] * z, (v - k[3]) / k[1] * z, z])  # OpenCV camera
        d = 0.2 * z / k[0]  # about 0.2 px
        tri_cam = centre + np.array([[-d, -d, 0], [d, -d, 0], [0, d, 0]])
        world = (tri_cam - t) @ r  # R^T (x - t)
        clip = cam.to_clip(torch.tensor(world))
        frags = rasterize(clip, torch.tensor([[0, 1, 2]]), (h, w))
        covered = (frags.face_idx[0] == 0).nonzero().tolist()
        assert covered == [[i, j]]


def test_off_centre_principal_point_shifts_the_image():
    w, h = 48, 40
    mesh = icosphere(2, 0.6)
    fy = 50.0
    r, t = _pose(4)
    faces = mesh.faces
    verts = mesh.vertices.double()

    def face_map(cx, cy):
        cam = Camera.from_intrinsics(torch.tensor(r), torch.tensor(t), fy, fy, cx, cy, w, h,
                                     convention="opencv")
        return rasterize(cam.to_clip(verts), faces, (h, w)).face_idx[0]

    base = face_map(w / 2, h / 2)
    dx, dy = 5, -3  # principal point 5 px right, 3 px up: the image moves the same way
    moved = face_map(w / 2 + dx, h / 2 + dy)
    assert (base >= 0).sum() > 200
    torch.testing.assert_close(moved[max(dy, 0):h + min(dy, 0), dx:],
                               base[max(-dy, 0):h - max(dy, 0), :w - dx], rtol=0, atol=0)
    assert not torch.equal(moved, base)


def test_gradcheck_pixels_wrt_pose_and_intrinsics():
    w, h = 64, 48
    r, t = _pose(5)
    pts = torch.tensor(np.random.default_rng(6).uniform(-0.4, 0.4, (6, 3)))

    def project(rr, tt, fx, fy, cx, cy, p):
        cam = Camera.from_intrinsics(rr, tt, fx, fy, cx, cy, w, h, convention="opencv")
        return cam.to_pixels(p, w, h)

    args = [torch.tensor(r), torch.tensor(t), torch.tensor(70.0), torch.tensor(66.0),
            torch.tensor(30.5), torch.tensor(25.0), pts]
    args = [a.clone().requires_grad_(True) for a in args]
    assert torch.autograd.gradcheck(project, args, eps=1e-6, atol=1e-6)


def test_batch_operations_keep_the_intrinsics():
    w, h = 40, 30
    rs, ts = zip(*[_pose(s) for s in range(3)], strict=True)
    cam = Camera.from_intrinsics(torch.tensor(np.stack(rs)), torch.tensor(np.stack(ts)),
                                 torch.tensor([40.0, 41.0, 42.0]), 39.0,
                                 torch.tensor([18.0, 20.0, 22.0]), 14.0, w, h,
                                 convention="opencv")
    assert len(cam) == 3
    again = Camera.cat([cam[0], cam[1:3]])
    torch.testing.assert_close(again.proj, cam.proj, rtol=0, atol=0)
    torch.testing.assert_close(cam[2].intrinsics(w, h)[2], torch.tensor([22.0]))
    f32 = cam.to(dtype=torch.float32).detach()
    assert f32.proj.dtype == torch.float32 and f32.view.dtype == torch.float32
    torch.testing.assert_close(f32.intrinsics(w, h)[0], torch.tensor([40.0, 41.0, 42.0]).float())
    mixed = Camera.cat([cam[0], Camera.look_at((0.0, 0.0, 3.0), aspect=w / h)])
    assert mixed.intrinsics(w, h)[2].tolist() == pytest.approx([18.0, 20.0])


def test_bad_arguments():
    r, t = np.eye(3), np.zeros(3)
    with pytest.raises(ValueError, match="fx"):
        Camera.from_intrinsics(r, t, 0.0, 1.0, 1.0, 1.0, 10, 10)
    with pytest.raises(ValueError, match="R must"):
        Camera.from_intrinsics(np.eye(4), t, 1.0, 1.0, 1.0, 1.0, 10, 10)
    with pytest.raises(ValueError, match="convention"):
        Camera.from_intrinsics(r, t, 1.0, 1.0, 1.0, 1.0, 10, 10, convention="blender")
    with pytest.raises(ValueError, match="near"):
        Camera.from_intrinsics(r, t, 1.0, 1.0, 1.0, 1.0, 10, 10, near=1.0, far=0.5)
    with pytest.raises(ValueError, match="orthographic"):
        Camera.look_at((0.0, 0.0, 3.0), ortho_height=1.0).intrinsics(10, 10)
