"""RenderNet's mapping of a general pinhole camera (studio/model/neural_camera.py): the pose
takes the camera's centre and fy; roll, pan, fx and the principal point are an image warp,
checked against render_core's own projection of world points."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import render_core as rc
from render_core.fit import TargetView
from studio.model import neural as N
from studio.model.neural_camera import (
    NetView,
    exactly_representable,
    net_grid,
    net_to_view,
    pinhole_to_pose,
)


def _target(h: int, w: int, **cam) -> TargetView:
    return TargetView.orbit(np.zeros((h, w, 3), np.float32), np.ones((h, w), np.float32), **cam)


def _rolled(t: TargetView, roll_deg: float, pan_deg: float, dcx: float, dcy: float,
            fx_ratio: float) -> TargetView:
    R, tt = t.world_to_camera()
    a, b = math.radians(roll_deg), math.radians(pan_deg)
    roll = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    pan = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    eye = -R.T @ tt
    R2 = roll @ pan @ R
    fx, fy, cx, cy = t.pixel_intrinsics()
    return TargetView.from_camera(t.image, t.mask, R2, -R2 @ eye, fx * fx_ratio, fy, cx + dcx,
                                  cy + dcy)


@pytest.mark.parametrize("cam", [dict(azimuth=200.0, elevation=25.0, distance=3.5, fov=40.0),
                                 dict(azimuth=-30.0, elevation=-10.0, distance=0.8, fov=70.0)])
def test_an_orbit_equivalent_pinhole_maps_to_todays_orbit_mapping(cam):
    """A general camera with no roll, looking at the origin, fx == fy and a centred principal
    point: the network pose equals the orbit mapping's, and the warp is to_target_frame."""
    orbit = _target(128, 160, **cam)
    R, t = orbit.world_to_camera()
    general = TargetView.from_camera(orbit.image, orbit.mask, R, t, *orbit.pixel_intrinsics())
    assert not general.is_orbit
    s = 0.7
    view = NetView.of_target(general)
    assert exactly_representable(view)
    az, el, scale, persp = pinhole_to_pose(view, s)
    ref = N.orbit_to_pose(cam["azimuth"], cam["elevation"], cam["distance"], cam["fov"], s)
    assert (az, el, scale) == pytest.approx(ref, rel=1e-9, abs=1e-9)
    assert persp == pytest.approx(N.net_persp(cam["distance"], s), rel=1e-9)
    img = np.random.default_rng(0).random((128, 128, 2)).astype(np.float32)
    # h = 128: to_target_frame only pads; the ray-by-ray warp lands on the same pixel centres
    np.testing.assert_allclose(net_to_view(img, view), N.to_target_frame(img, 128, 160),
                               atol=1e-5)


def test_a_rolled_panned_off_centre_camera_warps_world_points_to_their_pixels():
    """Where a world point projects in the real camera (render_core's projection), the warp
    samples the network's image where it projects in the network's look-at camera."""
    base = _target(96, 128, azimuth=40.0, elevation=15.0, distance=3.0, fov=45.0)
    t = _rolled(base, roll_deg=7.0, pan_deg=4.0, dcx=9.0, dcy=-6.0, fx_ratio=1.05)
    view = NetView.of_target(t)
    assert not exactly_representable(view)
    s = 1.0
    az, el, scale, _ = pinhole_to_pose(view, s)
    # the pose is the camera's centre (and fy), whatever its roll and pan
    eye = -t.pose[:, :3].T @ t.pose[:, 3]
    assert (az, el) == pytest.approx((40.0, 15.0), abs=1e-9)
    assert scale == pytest.approx(1 / (np.linalg.norm(eye) * math.tan(math.radians(22.5))))
    net_cam = rc.Camera.orbit(az, el, float(np.linalg.norm(eye)), fov=t.fov, aspect=1.0)
    real_cam = t.camera()
    pts = torch.tensor([[0.1, 0.2, -0.1], [-0.3, 0.0, 0.25], [0.2, -0.2, 0.3]])

    u, v = real_cam.to_pixels(pts, 128, 96)[0].unbind(-1)
    un, vn = net_cam.to(dtype=torch.float32).to_pixels(pts, 128, 128)[0].unbind(-1)
    grid, ok = net_grid(view)
    for k in range(len(pts)):
        j, i = float(u[k]) - 0.5, float(v[k]) - 0.5  # continuous pixel index
        jj, ii = int(math.floor(j)), int(math.floor(i))
        fj, fi = j - jj, i - ii
        g = ((1 - fi) * (1 - fj) * grid[0, ii, jj] + (1 - fi) * fj * grid[0, ii, jj + 1]
             + fi * (1 - fj) * grid[0, ii + 1, jj] + fi * fj * grid[0, ii + 1, jj + 1])
        # grid_sample's align_corners=False coordinate of the net pixel (un, vn)
        expect = torch.tensor([float(un[k]) / 64 - 1, float(vn[k]) / 64 - 1], dtype=g.dtype)
        np.testing.assert_allclose(g.numpy(), expect.numpy(), atol=2e-3)
        assert bool(ok[ii, jj])


def test_a_camera_facing_away_from_the_network_view_is_black_not_wrapped():
    base = _target(32, 32, azimuth=0.0, elevation=0.0, distance=3.0, fov=40.0)
    t = _rolled(base, roll_deg=0.0, pan_deg=120.0, dcx=0.0, dcy=0.0, fx_ratio=1.0)
    out = net_to_view(np.ones((128, 128, 1), np.float32), NetView.of_target(t))
    assert out.max() == 0.0


def test_neural_image_of_a_pinhole_is_the_orbit_image_warped():
    """NeuralShader.image with a NetView: an orbit-equivalent camera gives today's image; a
    rolled one is the same network image warped (one forward: the pose ignores roll)."""
    from pathlib import Path

    from render_core.rendernet.render import WEIGHTS

    assert WEIGHTS.exists(), "the shipped RenderNet weights are part of the repository"
    mesh = rc.load_mesh(Path(__file__).resolve().parents[1] / "assets" / "meshes"
                        / "critter.ply")
    v, f = mesh.vertices.numpy(), mesh.faces.numpy()
    shader = N.NeuralShader()
    orbit = _target(128, 160, azimuth=30.0, elevation=20.0, distance=4.0, fov=45.0)
    R, t = orbit.world_to_camera()
    general = TargetView.from_camera(orbit.image, orbit.mask, R, t, *orbit.pixel_intrinsics())
    ref = shader.image(v, f, (30.0, 20.0, 4.0, 45.0), "phong", (128, 160))
    got = shader.image(v, f, NetView.of_target(general), "phong", (128, 160))
    np.testing.assert_allclose(got, ref, atol=1e-4)
    rolled = NetView.of_target(_rolled(orbit, 6.0, 0.0, 5.0, 0.0, 1.0))
    net = shader.styles(v, f, rolled)["phong"]
    np.testing.assert_allclose(shader.image(v, f, rolled, "phong", (128, 160))[..., :1],
                               net_to_view(net, rolled), atol=1e-6)
    assert np.abs(shader.image(v, f, rolled, "phong", (128, 160)) - ref).max() > 0.05
    with pytest.raises(ValueError, match="size"):
        shader.image(v, f, rolled, "phong", (64, 80))


def test_view_to_net_samples_the_photo_where_world_points_project():
    """The camera fit's warp of a registered photo into the network's view: a linear image
    of the photo's pixel coordinates, read where a world point projects in the network's
    camera, gives that point's pixel in the real camera (render_core's projection)."""
    from studio.model.neural_camera import view_to_net

    base = _target(96, 128, azimuth=-50.0, elevation=10.0, distance=3.2, fov=50.0)
    t = _rolled(base, roll_deg=-5.0, pan_deg=3.0, dcx=-7.0, dcy=5.0, fx_ratio=0.97)
    view = NetView.of_target(t)
    v, u = np.meshgrid(np.arange(96) + 0.5, np.arange(128) + 0.5, indexing="ij")
    img = np.stack([u, v], -1).astype(np.float32)
    net = view_to_net(img, view)
    az, el, _, _ = pinhole_to_pose(view, 1.0)
    eye = float(np.linalg.norm(-t.pose[:, :3].T @ t.pose[:, 3]))
    net_cam = rc.Camera.orbit(az, el, eye, fov=t.fov, aspect=1.0).to(dtype=torch.float32)
    pts = torch.tensor([[0.1, 0.2, -0.1], [-0.3, 0.0, 0.25], [0.2, -0.2, 0.3]])
    real = t.camera().to_pixels(pts, 128, 96)[0]
    at = net_cam.to_pixels(pts, 128, 128)[0]
    for k in range(len(pts)):
        j, i = float(at[k, 0]) - 0.5, float(at[k, 1]) - 0.5
        jj, ii = int(j), int(i)
        fj, fi = j - jj, i - ii
        val = ((1 - fi) * (1 - fj) * net[ii, jj] + (1 - fi) * fj * net[ii, jj + 1]
               + fi * (1 - fj) * net[ii + 1, jj] + fi * fj * net[ii + 1, jj + 1])
        np.testing.assert_allclose(val, real[k].numpy(), atol=0.05)


def test_a_fitted_pose_moves_a_registered_camera_and_keeps_its_roll_and_pan():
    from studio.model.neural_camera import _look_rotation, moved_camera

    base = _target(96, 128, azimuth=20.0, elevation=5.0, distance=3.0, fov=45.0)
    t = _rolled(base, roll_deg=8.0, pan_deg=-3.0, dcx=4.0, dcy=0.0, fx_ratio=1.0)
    R, tt = t.world_to_camera()
    same = moved_camera(R, tt, 20.0, 5.0, 3.0)
    np.testing.assert_allclose(same[0], R, atol=1e-12)
    np.testing.assert_allclose(same[1], tt, atol=1e-12)
    R2, t2 = moved_camera(R, tt, 60.0, -15.0, 2.5)
    orbit = _target(96, 128, azimuth=60.0, elevation=-15.0, distance=2.5, fov=45.0)
    Ro, to = orbit.world_to_camera()
    np.testing.assert_allclose(-R2.T @ t2, -Ro.T @ to, atol=1e-12)
    rel_old = R @ _look_rotation(NetView.of_target(t)).T
    rel_new = R2 @ orbit.world_to_camera()[0].T
    np.testing.assert_allclose(rel_new, rel_old, atol=1e-12)
    # an orbit-equivalent camera moves to exactly the orbit camera of the fitted pose
    Rb, tb = base.world_to_camera()
    Rm, tm = moved_camera(Rb, tb, 60.0, -15.0, 2.5)
    np.testing.assert_allclose(Rm, orbit.world_to_camera()[0], atol=1e-12)
    np.testing.assert_allclose(tm, orbit.world_to_camera()[1], atol=1e-12)


def test_the_camera_fit_of_a_registered_target_keeps_it_registered():
    """The fit job carries the registered camera (the photo is warped into the network's
    view); applying a fitted pose moves its centre and keeps roll, pan and intrinsics."""
    from studio.model.neural_camera import moved_camera
    from studio.model.session import Session

    base = _target(16, 16, azimuth=10.0, elevation=10.0, distance=3.0, fov=60.0)
    t = _rolled(base, roll_deg=5.0, pan_deg=2.0, dcx=1.0, dcy=-1.0, fx_ratio=1.0)
    sess = Session()
    sess.set_mesh(rc.icosphere(1))
    sess.add_target_view(t)
    job = N.camera_fit_job(sess, 0, "mask")
    assert job["view"].key() == NetView.of_target(sess.targets[0]).key()
    short = N.fit_camera(**job, grid=(1, 1), stages=((4, 2, 1.0),))  # the path runs
    assert short.fov == t.fov and math.isfinite(short.loss)
    fit = N.CameraFit(30.0, 0.0, 2.5, t.fov, None, 0.0, "mask")
    N.apply_camera_fit(sess, 0, fit)
    after = sess.targets[0]
    assert not after.is_orbit
    assert after.pixel_intrinsics() == t.pixel_intrinsics()
    R2, t2 = moved_camera(*t.world_to_camera(), 30.0, 0.0, 2.5)
    np.testing.assert_allclose(after.pose, np.concatenate([R2, t2[:, None]], 1), atol=1e-9)
    assert (after.azimuth, after.elevation, after.distance) == pytest.approx((30.0, 0.0, 2.5))
