"""Targets with general pinhole cameras: the Fitter renders each from its own camera, orbit
targets as before, and the session format (version 2) keeps them; version-1 files still open.

``data/session_v1.zip`` was written by the version-1 code (the commit before the general
camera) for the demo scene: 3 orbit targets, resolution 20, the torch backend, vertices,
colours and cameras refined for 6 steps at a camera rate of 0.05.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import render_core as rc
from render_core.fit import FitConfig, Fitter, TargetView
from studio.model.session import Session
from studio.model.store import read_session
from tests._scenes import orbit_targets, stretched_sphere

V1 = Path(__file__).parent / "data" / "session_v1.zip"


def _config(**groups) -> FitConfig:
    cfg = FitConfig(resolution=32, backend="torch")
    for g in cfg.groups:
        cfg.groups[g].enabled = groups.get(g, False)
    return cfg


def _general_twin(t: TargetView) -> TargetView:
    R, tt = t.world_to_camera()
    return TargetView.from_camera(t.image, t.mask, R, tt, *t.pixel_intrinsics(), name="twin")


def test_an_orbit_target_renders_as_camera_orbit_and_as_its_general_twin():
    mesh = stretched_sphere()
    targets = orbit_targets(mesh, [(30.0, 15.0), (-70.0, -10.0)])
    f = Fitter(rc.icosphere(2), targets, _config(vertices=True))
    cams = rc.Camera.orbit([30.0, -70.0], [15.0, -10.0], 3.0, fov=50.0)
    ref = f.renderer.render(f.current_mesh(), cams)
    torch.testing.assert_close(f.render().alpha, ref.alpha, atol=1e-5, rtol=0)
    twin = Fitter(rc.icosphere(2), [_general_twin(t) for t in targets], _config(vertices=True))
    assert not twin.targets[0].is_orbit
    np.testing.assert_allclose(twin.targets[0].azimuth, 30.0, atol=1e-9)
    np.testing.assert_allclose(twin.targets[1].elevation, -10.0, atol=1e-9)
    a, b = f.step(), twin.step()
    assert a.loss == pytest.approx(b.loss, rel=1e-5)
    torch.testing.assert_close(f.current_mesh().vertices, twin.current_mesh().vertices,
                               atol=1e-5, rtol=0)


def test_an_off_centre_pinhole_is_rendered_from_its_own_intrinsics():
    mesh = stretched_sphere()
    R = rc.Camera.look_at((0.4, 0.9, 2.6)).world_to_camera()[0][0].double().numpy()
    roll = math.radians(7.0)
    Rz = np.array([[math.cos(roll), -math.sin(roll), 0], [math.sin(roll), math.cos(roll), 0],
                   [0, 0, 1]])
    R = Rz @ R
    t = -R @ np.array([0.4, 0.9, 2.6]) + np.array([0.1, -0.05, 0.0])
    H, W = 48, 64  # the target's own pixels; the fit renders at 32 x 43
    fx, fy, cx, cy = 70.0, 68.0, 35.5, 21.0
    cam = rc.Camera.from_intrinsics(torch.tensor(R), torch.tensor(t), fx, fy, cx, cy, W, H,
                                    0.1, 100.0)
    out = rc.Renderer((H, W), sigma=1e-5).render(mesh, cam.to(dtype=torch.float32))
    img = rc.linear_to_srgb(out.rgb.clamp(0, 1))[0].numpy()
    target = TargetView.from_camera(img, out.frags.mask[0].float().numpy(), R, t, fx, fy, cx, cy)
    f = Fitter(mesh, [target], _config())
    h, w = f.resolution
    assert (h, w) == (32, 43)
    expect = rc.Camera.from_intrinsics(torch.tensor(R), torch.tensor(t), fx * w / W, fy * h / H,
                                       cx * w / W, cy * h / H, w, h, 0.1, 100.0)
    ref = f.renderer.render(mesh, expect.to(dtype=torch.float32))
    torch.testing.assert_close(f.render().alpha, ref.alpha, atol=1e-5, rtol=0)
    # The fit at the true shape and camera sees what the target shows (the soft edge of
    # the fit's sigma costs a few percent); the principal point mirrored does not.
    right = f.step().iou
    mirrored = TargetView.from_camera(img, target.mask, R, t, fx, fy, W - cx, cy)
    wrong = Fitter(mesh, [mirrored], _config()).step().iou
    assert right > 0.93 and wrong < right - 0.08, (right, wrong)


def test_general_targets_are_validated():
    img = np.zeros((8, 8, 3), np.float32)
    with pytest.raises(ValueError, match="rotation"):
        TargetView.from_camera(img, None, np.diag([1.0, 1.0, 2.0]), [0, 0, -3], 8, 8, 4, 4)
    with pytest.raises(ValueError, match="focal"):
        TargetView.from_camera(img, None, np.eye(3), [0, 0, -3], -8, 8, 4, 4)
    with pytest.raises(ValueError, match="both"):
        TargetView(img, None, pose=np.eye(3, 4))
    with pytest.raises(ValueError, match="origin"):
        TargetView.from_camera(img, None, np.eye(3), [0, 0, 0], 8, 8, 4, 4)
    # OpenCV axes: the camera centre and the view are the same.
    a = TargetView.from_camera(img, None, np.diag([1.0, -1.0, -1.0]), [0, 0, 3], 8, 8, 4, 4,
                               convention="opencv")
    assert a.distance == pytest.approx(3.0) and a.azimuth == pytest.approx(0.0)
    np.testing.assert_allclose(a.world_to_camera()[0], np.eye(3), atol=1e-12)


def test_a_session_keeps_general_cameras_and_continues_exactly(tmp_path):
    mesh = stretched_sphere()
    targets = [_general_twin(t) for t in orbit_targets(mesh, [(0.0, 10.0), (90.0, 20.0)])]
    s = Session()
    s.set_mesh(rc.icosphere(2), "start")
    s.set_targets(targets)
    s.set_config(_config(vertices=True, camera=True))
    for _ in range(3):
        s.step()
    path = s.save(tmp_path / "g.zip")
    with zipfile.ZipFile(path) as z:
        doc = json.loads(z.read("session.json"))
    assert doc["version"] == 2 and "camera" in doc["targets"][1]
    curve = [s.step()["total"] for _ in range(2)]
    again = Session()
    again.open(path)
    for a, b in zip(again.targets, targets, strict=True):
        np.testing.assert_array_equal(a.pose, b.pose)
        assert a.intrinsics == b.intrinsics and not a.is_orbit
    assert [again.step()["total"] for _ in range(2)] == pytest.approx(curve, rel=1e-6)


def _old_orbit_cameras(path: Path) -> np.ndarray:
    """The cameras a version-1 file's fit had reached, by the version-1 rule written out
    here: azimuth, elevation and fov move 10 degrees per unit, the distance by exp(delta)."""
    with zipfile.ZipFile(path) as z:
        doc = json.loads(z.read("session.json"))
        arrays = np.load(io.BytesIO(z.read("arrays.npz")), allow_pickle=False)
        delta = arrays["fit.state.cam_delta"].astype(np.float64)
    cam0 = np.array([[t[k] for k in ("azimuth", "elevation", "distance", "fov")]
                     for t in doc["targets"]])
    out = cam0 + delta * np.array([10.0, 10.0, 0.0, 10.0])
    out[:, 2] = cam0[:, 2] * np.exp(delta[:, 2])
    return out


def test_a_version_1_session_opens_with_the_cameras_it_had_reached():
    data = read_session(V1)
    assert len(data.targets) == 3 and all(t.is_orbit for t in data.targets)
    old = _old_orbit_cameras(V1)
    start = np.array([[t.azimuth, t.elevation] for t in data.targets])
    assert np.abs(old[:, :2] - start).max() > 0.5  # the fit had moved the cameras
    f = data.fitter
    np.testing.assert_allclose(f.camera_params(), old, atol=2e-3)
    cams = rc.Camera.orbit(old[:, 0], old[:, 1], old[:, 2], fov=old[:, 3])
    ref = f.renderer.render(f.current_mesh(), cams.to(dtype=torch.float32))
    torch.testing.assert_close(f.render().alpha, ref.alpha, atol=1e-3, rtol=0)
    s = Session()
    s.open(V1)
    assert s.steps == 6 and math.isfinite(s.step()["total"])
