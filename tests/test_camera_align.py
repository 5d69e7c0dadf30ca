"""Camera alignment through the session API: target cameras set, validated and refined."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import render_core as rc
from render_core.fit import ParamGroup
from studio.model import files
from studio.model.demo import demo_object
from studio.model.session import Session

RES = 48


@pytest.fixture(scope="module")
def obj() -> rc.Mesh:
    return demo_object(3)


def _target_png(path, mesh, az, el, dist=3.2, fov=45.0, size=(RES, RES)):
    """Render ``mesh`` from an orbit camera into an RGBA PNG (alpha = coverage)."""
    h, w = size
    cam = rc.Camera.orbit(az, el, dist, fov=fov, aspect=w / h)
    out = rc.Renderer((h, w), shading="vertex_color", sigma=1e-5).render(mesh, cam)
    rgb = rc.linear_to_srgb(out.rgb[0].clamp(0, 1)).numpy()
    files.write_png(path, np.concatenate([rgb, out.frags.mask[0].float().numpy()[..., None]], -1))
    return path


def _cameras_only(session: Session, lr: float = 0.05, views=None) -> None:
    cfg = session.config.copy()
    for name in cfg.groups:
        cfg.groups[name] = ParamGroup(False, cfg.groups[name].lr)
    cfg.groups["camera"] = ParamGroup(True, lr)
    cfg.resolution = RES
    cfg.camera_views = views
    session.set_config(cfg)


def test_camera_refinement_recovers_a_camera_20_degrees_off(tmp_path, obj):
    s = Session()
    s.set_mesh(obj, "object")
    s.add_target(_target_png(tmp_path / "t.png", obj, 40.0, 20.0), 20.0, 20.0, 3.2, 45.0)
    _cameras_only(s)
    before = s.fitter().step().iou
    for _ in range(110):
        after = s.step()
    assert after["silhouette_iou"] > before + 0.05
    mesh = s.current_mesh()
    assert np.array_equal(mesh.vertices.numpy(), obj.vertices.numpy())  # the mesh stayed fixed
    events = []
    s.subscribe(events.append)
    refined = s.fitter().render(0).alpha
    s.adopt_fitted_cameras()
    t = s.targets[0]
    assert abs(t.azimuth - 40.0) < 2.0 and abs(t.elevation - 20.0) < 2.0, (t.azimuth, t.elevation)
    # The fit goes on from the adopted camera: same view, no refinement left on top of it.
    assert events == ["targets"] and s.steps == 111
    assert not s.fitter().cam_delta.any()
    torch.testing.assert_close(s.fitter().render(0).alpha, refined, atol=1e-4, rtol=0)


def test_camera_views_refine_only_the_chosen_targets(tmp_path, obj):
    s = Session()
    s.set_mesh(obj, "object")
    paths = [_target_png(tmp_path / "a.png", obj, 0.0, 10.0),
             _target_png(tmp_path / "b.png", obj, 120.0, 10.0)]
    s.add_targets(paths, [(10.0, 10.0, 3.2, 45.0), (105.0, 10.0, 3.2, 45.0)])
    _cameras_only(s, views=[1])
    for _ in range(80):
        s.step()
    p = s.fitter().camera_params()
    np.testing.assert_array_equal(p[0], np.float32([10.0, 10.0, 3.2, 45.0]))  # left alone
    assert abs(p[1][0] - 120.0) < 2.0
    # Removing target 0 shifts the chosen index with it; the fit restarts without errors.
    s.remove_target(0)
    assert s.config.camera_views == [0]
    s.step()


def test_target_edits_validate_and_leave_the_session_unchanged_on_error(tmp_path, obj):
    s = Session()
    s.set_mesh(obj, "object")
    s.add_targets([_target_png(tmp_path / "a.png", obj, 0.0, 0.0),
                   _target_png(tmp_path / "b.png", obj, 90.0, 0.0)],
                  [(0.0, 0.0, 3.2, 45.0), (90.0, 0.0, 3.2, 45.0)])
    events = []
    s.subscribe(events.append)
    s.set_group("colors", enabled=False)
    for _ in range(3):
        s.step()
    mesh = s.current_mesh().vertices
    assert not torch.equal(mesh, obj.vertices)  # the fit has moved the vertices
    gen = s.generation
    t = s.set_target_camera(1, 75.0, -5.0, 2.5, 50.0)
    assert (t.azimuth, t.elevation, t.distance, t.fov) == (75.0, -5.0, 2.5, 50.0)
    assert s.targets[1] is t and events == ["config", "targets"]
    # The fit keeps its mesh and step count, in a new generation (the studio's fit process
    # resumes from the session's checkpoint), with the new camera.
    assert s.steps == 3 and s.generation > gen and s.resume_checkpoint(s.generation) is not None
    torch.testing.assert_close(s.current_mesh().vertices, mesh)
    np.testing.assert_allclose(s.fitter().camera_params()[1], [75.0, -5.0, 2.5, 50.0])
    events.clear()
    before = list(s.targets)
    for bad in [(1, float("nan"), 0, 3, 45), (1, 0, 0, -1, 45), (1, 0, 0, 3, 500),
                (5, 0, 0, 3, 45), (-1, 0, 0, 3, 45)]:
        with pytest.raises((ValueError, IndexError)):
            s.set_target_camera(*bad)
    with pytest.raises(ValueError):
        s.set_target_mask(0, np.ones((3, 3)))
    assert s.targets == before and events == []
    m = np.zeros((RES, RES), np.float32)
    m[10:20, 10:30] = 1
    s.set_target_mask(0, m)
    np.testing.assert_array_equal(s.targets[0].mask, m)
    assert s.remove_target(0).name == "a.png" and [t.name for t in s.targets] == ["b.png"]
    assert s.steps == 3 and s.fitter().camera_params()[0][0] == pytest.approx(75.0)
    torch.testing.assert_close(s.current_mesh().vertices, mesh)
    # A mask image file becomes the mask (brightness when it has no alpha).
    img = np.zeros((RES, RES, 3), np.float32)
    img[5:15, 20:40] = 1.0
    files.write_png(tmp_path / "mask.png", img)
    s.load_target_mask(0, tmp_path / "mask.png")
    np.testing.assert_array_equal(s.targets[0].mask, img[..., 0])


def test_several_photos_refine_their_own_cameras_together(tmp_path, obj):
    s = Session()
    s.set_mesh(obj, "object")
    truth = [(0.0, 10.0), (120.0, -5.0), (230.0, 25.0)]
    guess = [(12.0, 4.0), (108.0, 5.0), (240.0, 14.0)]
    paths = [_target_png(tmp_path / f"{i}.png", obj, *t) for i, t in enumerate(truth)]
    s.add_targets(paths, [(a, e, 3.2, 45.0) for a, e in guess])
    _cameras_only(s)
    for _ in range(100):
        s.step()
    s.adopt_fitted_cameras()
    for t, (az, el) in zip(s.targets, truth, strict=True):
        assert abs(t.azimuth - az) < 2.0 and abs(t.elevation - el) < 2.0, (t.azimuth, t.elevation)
