"""Lens distortion: COLMAP's models against pycolmap, point round trips, straight lines after
undistortion, masks."""

import numpy as np
import pycolmap
import pytest
import torch

from render_core.distortion import (
    DistortionError,
    distort_points,
    split_params,
    undistort_image,
    undistort_points,
    undistorted_intrinsics,
)

W, H = 160, 120
MODELS = {
    "SIMPLE_PINHOLE": [150.0, 81.0, 58.5],
    "PINHOLE": [150.0, 156.0, 81.0, 58.5],
    "SIMPLE_RADIAL": [150.0, 81.0, 58.5, -0.12],
    "RADIAL": [150.0, 81.0, 58.5, -0.15, 0.03],
    "OPENCV": [150.0, 156.0, 81.0, 58.5, -0.18, 0.04, 0.002, -0.003],
    "FULL_OPENCV": [150.0, 156.0, 81.0, 58.5, 0.1, -0.02, 0.001, 0.002, 0.003, 0.05, -0.01,
                    0.002],
}


def _colmap_camera(model, params):
    cam = pycolmap.Camera.create_from_model_name(1, model, 100.0, W, H)
    cam.params = params
    return cam


def _normalized_points(n=200, seed=0, extent=0.5):
    rng = np.random.default_rng(seed)
    return rng.uniform(-extent, extent, (n, 2))


def _pinhole_pixels(model, params, xy):
    k = split_params(model, params)[0]
    return np.stack([k.fx * xy[:, 0] + k.cx, k.fy * xy[:, 1] + k.cy], -1)


@pytest.mark.parametrize("model", MODELS)
def test_forward_distortion_matches_pycolmap(model):
    params = MODELS[model]
    xy = _normalized_points()
    expected = _colmap_camera(model, params).img_from_cam(np.c_[xy, np.ones(len(xy))])
    got = distort_points(_pinhole_pixels(model, params, xy), model, params).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-9)


@pytest.mark.parametrize("model", MODELS)
def test_distort_then_undistort_round_trips(model):
    params = MODELS[model]
    pin = _pinhole_pixels(model, params, _normalized_points(seed=1))
    dist = distort_points(pin, model, params)
    np.testing.assert_allclose(undistort_points(dist, model, params).numpy(), pin, atol=1e-8)
    # the inverse agrees with pycolmap's own (normalized coordinates of the distorted pixels)
    ref = _colmap_camera(model, params).cam_from_img(dist.numpy())
    k = split_params(model, params)[0]
    back = undistort_points(dist, model, params).numpy()
    np.testing.assert_allclose((back - [k.cx, k.cy]) / [k.fx, k.fy], ref, atol=1e-8)


def _curvature(points):
    """Largest distance (same units as the points) from the chord between the ends."""
    a, b = points[0], points[-1]
    d = (b - a) / np.linalg.norm(b - a)
    rel = points - a
    return np.abs(rel[:, 0] * d[1] - rel[:, 1] * d[0]).max()


def test_world_line_is_straight_after_undistorting_points():
    model, params = "OPENCV", MODELS["OPENCV"]
    cam = _colmap_camera(model, params)
    s = np.linspace(0, 1, 41)[:, None]
    world = np.array([-0.9, -0.5, 2.0]) * (1 - s) + np.array([0.8, -0.45, 2.6]) * s  # cam frame
    distorted = cam.img_from_cam(world)  # pycolmap projects through the distortion
    assert _curvature(distorted) > 0.5  # the lens bends it visibly
    straight = undistort_points(distorted, model, params).numpy()
    assert _curvature(straight) < 1e-6


def _line_photo(model, params, a, b, sigma_px=1.6):
    """A distorted photo of a bright line x = a + b y (normalized camera coordinates): every
    photo pixel centre is mapped back through pycolmap's inverse and shaded by its distance
    to the line."""
    cam = _colmap_camera(model, params)
    jj, ii = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
    xy = cam.cam_from_img(np.stack([jj.ravel(), ii.ravel()], -1))
    d = (xy[:, 0] - a - b * xy[:, 1]) / np.sqrt(1 + b * b) * params[0]
    return np.exp(-((d / sigma_px) ** 2)).reshape(H, W).astype(np.float32)


def _row_centres(img):
    cols = np.arange(img.shape[1]) + 0.5
    wsum = img.sum(1)
    rows = np.nonzero(wsum > 1.0)[0]
    return rows + 0.5, (img[rows] * cols).sum(1) / wsum[rows]


@pytest.mark.parametrize("keep", ["same", "valid"])
def test_straight_line_in_undistorted_image(keep):
    model, params = "OPENCV", MODELS["OPENCV"]
    a, b = 0.35, 0.05
    photo = _line_photo(model, params, a, b)
    v0, u0 = _row_centres(photo)
    bent = np.abs(u0 - np.polyval(np.polyfit(v0, u0, 1), v0)).max()
    assert bent > 0.6  # distorted: the line is visibly curved in the photo
    res = undistort_image(photo, model, params, keep=keep)
    assert res.image.shape == photo.shape and res.image.dtype == np.float32
    k = res.intrinsics
    v, u = _row_centres(res.image * res.valid)
    inner = (v > 4) & (v < H - 4)
    # straight, and where the undistorted pinhole puts it: u = fx (a + b (v - cy) / fy) + cx
    expected = k.fx * (a + b * (v - k.cy) / k.fy) + k.cx
    assert np.abs(u - expected)[inner].max() < 0.15
    if keep == "valid":
        assert res.valid.all()


def test_keep_modes_and_masks():
    model, params = "OPENCV", MODELS["OPENCV"]
    for p in (params, [*params[:4], 0.15, 0.02, 0.0, 0.0]):  # barrel, then pincushion
        valid = undistorted_intrinsics(model, p, W, H, "valid")
        res = undistort_image(np.ones((H, W), np.float32), model, p, intrinsics=valid)
        assert res.valid.all()
        # 'all': the whole photo frame lands inside the output image
        full = undistorted_intrinsics(model, p, W, H, "all")
        frame = np.array([[u, v] for u in (0.0, W / 2, W) for v in (0.0, H / 2, H)])
        und = undistort_points(frame, model, p).numpy()
        k = split_params(model, p)[0]
        out = (und - [k.cx, k.cy]) / [k.fx, k.fy] * [full.fx, full.fy] + [full.cx, full.cy]
        assert (out >= -1e-6).all() and (out[:, 0] <= W + 1e-6).all()
        assert (out[:, 1] <= H + 1e-6).all()
        assert full.fx < valid.fx
    # masks: a bool mask stays bool, a uint8 one keeps its 0/255 values, nearest copies values
    mask = np.zeros((H, W), bool)
    mask[30:90, 40:120] = True
    img = np.random.default_rng(0).random((H, W, 3)).astype(np.float32)
    res = undistort_image(img, model, params, mask=mask)
    assert res.mask.dtype == bool and res.mask.shape == (H, W)
    assert 0.3 < res.mask.sum() / mask.sum() < 1.5
    res8 = undistort_image(img, model, params, mask=mask.astype(np.uint8) * 255,
                           mask_mode="nearest")
    assert set(np.unique(res8.mask)) <= {0, 255}
    differ = (res8.mask > 0) != res.mask  # nearest and threshold differ only at the edge
    assert differ.sum() < 0.05 * mask.sum()
    # the mask moves with the image: a mask of the bright line matches the undistorted line
    strong = [*params[:4], -0.4, 0.1, 0.0, 0.0]
    line = _line_photo(model, strong, 0.35, 0.05)
    res_line = undistort_image(line, model, strong, mask=line > 0.5)
    vm, um = _row_centres(res_line.mask.astype(np.float32))
    vi, ui = _row_centres(res_line.image)
    common = np.intersect1d(vm, vi)
    assert len(common) > 100
    assert np.abs(um[np.isin(vm, common)] - ui[np.isin(vi, common)]).max() < 1.0
    v0, u0 = _row_centres((line > 0.5).astype(np.float32))  # the mask left as it was
    common0 = np.intersect1d(v0, vi)
    assert np.abs(u0[np.isin(v0, common0)] - ui[np.isin(vi, common0)]).max() > 2.0
    # a tensor in gives a tensor out; a distortion-free model is the identity
    t = torch.from_numpy(img)
    same = undistort_image(t, "PINHOLE", MODELS["PINHOLE"])
    assert torch.is_tensor(same.image)
    torch.testing.assert_close(same.image, t, atol=1e-4, rtol=0)


def test_bad_models():
    with pytest.raises(DistortionError, match="not supported"):
        split_params("OPENCV_FISHEYE", [1.0] * 8)
    with pytest.raises(DistortionError, match="takes 8 parameters"):
        split_params("OPENCV", [1.0] * 5)
    with pytest.raises(DistortionError, match="positive"):
        split_params("PINHOLE", [0.0, 1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="keep"):
        undistorted_intrinsics("OPENCV", MODELS["OPENCV"], W, H, "crop")


def test_pixels_past_the_fold_of_the_lens_model_are_invalid():
    """SIMPLE_RADIAL with k = -0.5: the radius map r (1 + k r²) turns back at r² = 1/(3|k|);
    output pixels past it see nothing (even though the formula lands inside the photo)."""
    f, k1 = 100.0, -0.5
    params = [f, W / 2, H / 2, k1]
    wide = (f / 4, f / 4, W / 2, H / 2)  # zoomed far out: the output reaches past the fold
    res = undistort_image(np.ones((H, W), np.float32), "SIMPLE_RADIAL", params, intrinsics=wide)
    jj, ii = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
    r2 = ((jj - W / 2) ** 2 + (ii - H / 2) ** 2) / (f / 4) ** 2
    fold = 1 / (3 * abs(k1))
    lands = r2 * (1 + k1 * r2) ** 2 * f * f  # squared photo radius from the formula, px²
    inside_formula = (np.sqrt(lands) < H / 2 - 1)
    assert (inside_formula & (r2 > fold * 1.01)).any()  # the formula alone would accept these
    assert not res.valid[r2 > fold * 1.01].any()
    assert res.valid[inside_formula & (r2 < fold * 0.99)].all()
    assert (res.image[~res.valid] == 0).all()
