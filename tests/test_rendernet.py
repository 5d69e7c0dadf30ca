"""RenderNet: model shapes, exact/differentiable resampling, shipped weights' structure, inversion.

The structural tests use the weights shipped in assets/rendernet/; they are deliberately not
loosened to fit a given checkpoint — if one fails, the weights are not good enough yet.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from render_core.rendernet import data as D
from render_core.rendernet import targets as T
from render_core.rendernet.model import RenderNet
from render_core.rendernet.pose import resample, rotation
from render_core.rendernet.render import WEIGHTS, load_model, render_voxels, voxel_grid
from render_core.rendernet.shapes import make_shape
from render_core.rendernet.voxelize import voxelize

needs_weights = pytest.mark.skipif(not WEIGHTS.exists(), reason="no shipped RenderNet weights")


def test_model_output_shapes_and_dtypes():
    torch.manual_seed(0)
    model = RenderNet()
    g = model.cfg.grid
    with torch.no_grad():
        out = model(torch.rand(2, 1, g, g, g), torch.tensor([[0.0, 0.0, 1.0]] * 2))
    r = model.cfg.out_res
    for k in ("mask", "contour", "ao", "phong", "toon"):
        assert out[k].shape == (2, r, r) and out[k].dtype == torch.float32
    assert out["normal"].shape == (2, r, r, 3)
    assert torch.allclose(out["normal"].norm(dim=-1), torch.ones(2, r, r), atol=1e-4)


def test_camera_grid_skip_starts_as_the_same_function_and_learns(tmp_path):
    """Weights saved before the skip existed load into the grown model (train.py's resume) and
    give identical outputs; one optimiser step then moves the zero-initialised injections."""
    from render_core.rendernet.model import Config, load_grown

    torch.manual_seed(3)
    old = RenderNet(Config(skip=0))
    for p in old.parameters():  # non-trivial weights everywhere (FiLM starts at zero)
        p.data.normal_(0, 0.05)
    new = RenderNet(Config())
    missing = load_grown(new, old.state_dict())
    assert missing and all(k.split(".")[0] in ("sproj", "sconv", "ps1", "ps2", "inj1", "inj2")
                           for k in missing)
    g = new.cfg.grid
    cam, light = torch.rand(2, 1, g, g // 2, g // 2), torch.tensor([[0.2, 0.3, 0.9]] * 2)
    with torch.no_grad():
        a, b = old(cam, light), new(cam, light)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    loss = sum(v.square().mean() for v in new(cam, light).values())
    loss.backward()
    assert new.inj1.weight.grad.abs().sum() > 0 and new.inj2.weight.grad.abs().sum() > 0
    with pytest.raises(RuntimeError, match="do not fit"):
        load_grown(old, new.state_dict())  # shrinking is an error, not a silent drop


def test_shapes_are_seeded_and_watertight():
    a, ka = make_shape(7)
    b, kb = make_shape(7)
    assert ka == kb and np.array_equal(a.vertices, b.vertices)
    assert a.is_watertight
    assert np.linalg.norm(a.vertices, axis=1).max() <= 0.93


def test_voxelize_volume():
    # Its speed is measured by benchmarks/rendernet.py, not here (no clock in a test).
    s = trimesh.creation.icosphere(subdivisions=4, radius=0.8)  # 5120 faces
    v = voxelize(s)
    assert v.shape == (32, 32, 32) and v.dtype == np.float32
    vol = v.sum() * (2 / 32) ** 3
    assert abs(vol - s.volume) / s.volume < 0.02


@pytest.mark.parametrize(
    "az,el,expect",
    [
        (0.0, 0.0, lambda v: v.flip(0, 1)),
        (90.0, 0.0, lambda v: v.flip(0, 1, 2).permute(2, 1, 0)),
        (180.0, 0.0, lambda v: v.flip(1, 2)),
        (0.0, 90.0, lambda v: v.permute(1, 0, 2).flip(0)),
    ],
)
def test_resample_exact_for_90_degree_rotations(az, el, expect):
    torch.manual_seed(1)
    n = 8
    vox = torch.rand(n, n, n, dtype=torch.float64)
    out = resample(vox[None, None], torch.tensor([az], dtype=torch.float64),
                   torch.tensor([el], dtype=torch.float64), torch.ones(1, dtype=torch.float64),
                   (n, n, n))[0, 0]
    assert torch.allclose(out, expect(vox), atol=1e-9)


def test_rotation_matches_camera_view():
    from render_core.camera import Camera

    cam = Camera.orbit(37.0, 21.0, 3.0, ortho_height=1.0)
    r = rotation(torch.tensor([37.0]), torch.tensor([21.0]))
    assert torch.allclose(r, cam.view[:, :3, :3].float(), atol=1e-5)


def test_resample_gradcheck_on_pose():
    torch.manual_seed(2)
    vox = torch.rand(1, 1, 5, 5, 5, dtype=torch.float64)
    pose = [torch.tensor([v], dtype=torch.float64, requires_grad=True) for v in (33.3, 12.7, 1.1)]

    def f(az, el, sc):
        return resample(vox, az, el, sc, (4, 4, 4))

    assert torch.autograd.gradcheck(f, pose, eps=1e-6, atol=1e-5)


def test_frustum_grid_sees_what_the_perspective_camera_sees():
    """A long box seen close up with a wide lens: the silhouette of the frustum-resampled grid
    (max occupancy along each column) matches render_core's perspective rasterization as well
    as the weak-perspective grid matches a long lens (the ceiling the 32³ grid allows), while
    the weak-perspective grid of the close-up camera misses the foreshortening."""
    import render_core as rc
    from render_core.rendernet.pose import camera_persp, camera_to_pose

    box = trimesh.creation.box((1.4, 0.5, 0.5))
    mesh = rc.Mesh(torch.tensor(box.vertices, dtype=torch.float32), torch.tensor(box.faces))
    vox = voxel_grid(box)

    def iou(dist, fov, frustum):
        cam = rc.Camera.orbit(60.0, 25.0, dist, fov=fov)
        tgt = rc.Renderer(128).render(mesh, cam).alpha[0] > 0.5
        az, el, sc = (t.float() for t in camera_to_pose(cam))
        persp = camera_persp(cam).float() if frustum else None
        sil = resample(vox, az, el, sc, (128, 128, 128), persp=persp)[0, 0].amax(0) > 0.5
        return float((sil & tgt).sum() / (sil | tgt).sum())

    ceiling = iou(40.0, 3.0, False)  # weak perspective is exact in the limit
    close_frustum, close_weak = iou(2.2, 60.0, True), iou(2.2, 60.0, False)
    assert close_frustum > ceiling - 0.02, (close_frustum, ceiling)
    assert close_weak < close_frustum - 0.1, (close_weak, close_frustum)
    assert camera_persp(rc.Camera.orbit(0.0, 0.0, 1.0, fov=90.0)).item() == pytest.approx(0.9)
    assert camera_persp(rc.Camera.orbit(0.0, 0.0, 3.0, ortho_height=1.0)) is None


def test_frustum_resample_is_the_affine_one_at_zero_and_differentiable_in_persp():
    torch.manual_seed(4)
    vox = torch.rand(2, 1, 6, 6, 6, dtype=torch.float64)
    pose = [torch.tensor(v, dtype=torch.float64) for v in ([30.0, -70.0], [20.0, 50.0],
                                                          [1.1, 0.8])]
    zero = torch.zeros(2, dtype=torch.float64)
    for window in (None, (2, 2, 4)):
        a = resample(vox, *pose, (6, 8, 8), window=window)
        b = resample(vox, *pose, (6, 8, 8), window=window, persp=zero)
        assert torch.allclose(a, b, atol=1e-12)
    persp = torch.tensor([0.3, 0.45], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p: resample(vox, *pose, (4, 4, 4), persp=p), [persp],
                                    eps=1e-6, atol=1e-5)


def _sphere_vox():
    return voxel_grid(trimesh.creation.icosphere(subdivisions=4, radius=0.8))


@needs_weights
def test_contour_concentrates_on_silhouette():
    img = render_voxels(_sphere_vox(), torch.tensor([30.0]), torch.tensor([20.0]),
                        torch.tensor([1.0]), "contour", model=load_model())[0, ..., 0]
    yy, xx = torch.meshgrid(torch.arange(128) + 0.5, torch.arange(128) + 0.5, indexing="ij")
    rad = ((yy - 64) ** 2 + (xx - 64) ** 2).sqrt()
    ring = (rad - 0.8 * 64).abs() < 4
    assert img[ring].sum() / img.sum() > 0.7
    assert img[ring].mean() > 3 * img[~ring].mean()


@needs_weights
def test_phong_brightest_where_n_dot_l_largest():
    light = torch.tensor([[0.5, 0.5, 0.707]])
    img = render_voxels(_sphere_vox(), torch.tensor([0.0]), torch.tensor([0.0]),
                        torch.tensor([1.0]), "phong", light, model=load_model())[0, ..., 0]
    # on a sphere of radius 0.8 seen orthographically, n·l peaks at the pixel of direction l
    idx = int(img.argmax())
    i, j = divmod(idx, 128)
    pi, pj = 64 - 0.8 * 64 * 0.5, 64 + 0.8 * 64 * 0.5
    assert abs(i + 0.5 - pi) < 8 and abs(j + 0.5 - pj) < 8
    lit_side = img[20:50, 78:108].mean()
    dark_side = img[78:108, 20:50].mean()
    assert lit_side > dark_side + 0.3


@needs_weights
def test_ao_darker_in_concave_corner_than_on_convex_face():
    # an L-shaped block: the inner corner is concave, the outer faces are convex
    a = trimesh.creation.box([1.2, 0.3, 0.8])
    b = trimesh.creation.box([0.3, 1.0, 0.8])
    b.apply_translation([-0.45, 0.65, 0.0])
    from render_core.rendernet.shapes import normalize

    mesh = normalize(trimesh.util.concatenate([a, b]))  # inside the unit ball, like training
    az, el, sc = 20.0, 25.0, 1.0
    g = T.gbuffer(mesh, az, el, sc)
    gt = T.ambient_occlusion(g)
    m = g["mask"]
    concave = m & (gt < np.quantile(gt[m], 0.1))
    convex = m & (gt >= np.quantile(gt[m], 0.7))  # fully open faces (AO = 1)
    pred = render_voxels(voxel_grid(mesh), torch.tensor([az]), torch.tensor([el]),
                         torch.tensor([sc]), "ao", model=load_model())[0, ..., 0].numpy()
    assert pred[concave].mean() < pred[convex].mean() - 0.1


@needs_weights
@pytest.mark.slow
def test_pose_recovery_from_20_degrees_off():
    from render_core.rendernet.inverse import fit_pose

    seed = D.VAL_SEED0 + 3  # a held-out shape
    mesh, _ = make_shape(seed)
    az, el, sc = 40.0, 25.0, 1.0
    g = T.gbuffer(mesh, az, el, sc)
    light = torch.tensor([0.3, 0.5, 0.81])
    target = T.phong(torch.from_numpy(g["normal"]), torch.from_numpy(g["mask"]).float(), light)
    torch.manual_seed(0)
    fit = fit_pose(target[..., None], voxel_grid(mesh), "phong", init=(az + 20, el - 20, sc),
                   light=light)
    err_az = abs((fit.az - az + 180) % 360 - 180)
    assert err_az < 5 and abs(fit.el - el) < 5, fit


def test_render_api_maps_camera_to_pose_and_is_differentiable():
    from render_core.camera import Camera
    from render_core.rendernet.pose import camera_to_pose
    from render_core.rendernet.render import render

    torch.manual_seed(3)
    model = RenderNet().eval()
    az = torch.tensor([30.0], requires_grad=True)
    cam = Camera.orbit(az, 20.0, 3.0, ortho_height=0.8)
    a, e, s = camera_to_pose(cam)
    assert torch.allclose(torch.stack([a, e, s]).squeeze(), torch.tensor([30.0, 20.0, 1.25]),
                          atol=1e-4)
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=0.7)
    light = torch.tensor([0.0, 1.0, 1.0], requires_grad=True)
    vox = voxel_grid(mesh).requires_grad_()
    img = render(mesh, cam, "phong", light=light, vox=vox, model=model)
    assert img.shape == (1, 128, 128, 1) and img.dtype == torch.float32
    img.sum().backward()
    for g in (az.grad, light.grad, vox.grad):
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0
    assert render(mesh, cam.detach(), "normal", model=model).shape == (1, 128, 128, 3)
