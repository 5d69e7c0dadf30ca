"""Photo targets: automatic masks, mask editing, letterbox/crop framing, fitting to a photo."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import render_core as rc
from studio.model import files, photo
from studio.model.demo import demo_object
from studio.model.session import Session

STEPS = 120  # sphere-fitting steps at 48 px
LIGHT = rc.DirectionalLight([0.3, 1.0, 0.6], intensity=0.8, ambient=0.3)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a) > 0.5, np.asarray(b) > 0.5
    return float((a & b).sum() / max((a | b).sum(), 1))


def _background(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A textured, non-uniform backdrop: a brightness ramp, waves, a checkerboard and noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    g = 0.45 + 0.2 * xx + 0.1 * np.sin(5 * yy)
    base = np.stack([g + 0.05, g, g - 0.05 + 0.05 * yy], -1)
    checker = ((np.floor(xx * 10) + np.floor(yy * 10)) % 2)[..., None] * 0.12
    return np.clip(base - checker + rng.normal(0, 0.03, (h, w, 3)), 0, 1).astype(np.float32)


def _render(mesh, size, az, el, dist, fov):
    """(sRGB render [H,W,3], coverage [H,W]) of ``mesh``, Lambertian, hard edges."""
    h, w = size
    cam = rc.Camera.orbit(az, el, dist, fov=fov, aspect=w / h)
    out = rc.Renderer((h, w), shading="lambertian", sigma=1e-5).render(mesh, cam, light=LIGHT)
    return (rc.linear_to_srgb(out.rgb[0].clamp(0, 1)).numpy(),
            out.frags.mask[0].float().numpy())


def _photo(size, az, el, dist=4.5, fov=45.0, mesh=None):
    """A photo-like image (the object over a textured background, no alpha) and its true mask."""
    fg, cov = _render(demo_object(3) if mesh is None else mesh, size, az, el, dist, fov)
    img = fg * cov[..., None] + _background(*size) * (1 - cov[..., None])
    return img.astype(np.float32), cov


@pytest.mark.parametrize("size,az,el", [((128, 160), 30.0, 15.0), ((96, 96), 150.0, -10.0),
                                        ((64, 128), 0.0, 0.0)])
def test_auto_mask_matches_the_true_silhouette(size, az, el):
    img, cov = _photo(size, az, el)
    mask = photo.auto_mask(img)
    assert mask.shape == cov.shape and mask.dtype == np.float32
    assert _iou(mask, cov) >= 0.95
    # The raw non-black rule would take the whole background.
    assert _iou(img.max(-1) > 1 / 255, cov) < 0.5


def test_photo_target_gets_the_auto_mask_and_a_sphere_fits_it(tmp_path):
    img, cov = _photo((96, 96), 30.0, 15.0)
    files.write_png(tmp_path / "photo.png", img)  # RGB: no alpha channel
    s = Session()
    s.new_primitive("sphere", 2)
    s.add_target(tmp_path / "photo.png", 30.0, 15.0, 4.5, 45.0)
    assert _iou(s.targets[0].mask, cov) >= 0.95
    s.set_option(resolution=48)
    for _ in range(STEPS):
        s.step()
    f = s.fitter()
    alpha = f.render(0).alpha[0].numpy()
    true = torch.nn.functional.interpolate(torch.from_numpy(cov)[None, None], size=alpha.shape,
                                           mode="area")[0, 0].numpy()
    assert _iou(alpha, true) >= 0.9



def test_mask_edit_threshold_and_brush():
    score = np.tile(np.linspace(0, 1, 40, dtype=np.float32), (30, 1))
    edit = photo.MaskEdit(score)
    assert edit.mask()[:, 25:].all() and not edit.mask()[:, :15].any()
    edit.threshold = 0.8
    m = edit.mask()
    assert m[:, 33:].all() and not m[:, :31].any()
    edit.brush(15, 5, 3, add=True)  # paint foreground far left
    edit.brush(15, 38, 3, add=False)  # erase at the right
    m = edit.mask()
    assert m[15, 5] == 1 and m[15, 38] == 0 and m[0, 38] == 1
    assert 20 < int(m[:, :10].sum()) < 40  # about a disc of radius 3
    edit.threshold = 0.6  # strokes survive a new threshold
    m = edit.mask()
    assert m[15, 5] == 1 and m[15, 38] == 0 and m[:, 26:37].sum() > 0
    edit.clear_paint()
    assert edit.mask()[15, 5] == 0
    with pytest.raises(ValueError):
        photo.mask_from_score(score, 1.5)


def test_clean_mask_fills_holes_and_drops_specks():
    m = np.zeros((40, 40), bool)
    m[5:30, 5:30] = True
    m[15:18, 15:18] = False  # a hole
    m[35, 35] = True  # a speck
    c = photo.clean_mask(m)
    assert c[16, 16] and not c[35, 35] and c[5:30, 5:30].all() and c.sum() == 25 * 25


@pytest.mark.parametrize("framing,shape,scale", [("letterbox", (60, 100), (100, 100, 100 / 60)),
                                                 ("letterbox", (100, 60), (100, 100, 1.0)),
                                                 ("crop", (60, 100), (60, 60, 1.0)),
                                                 ("crop", (100, 60), (60, 60, 0.6))])
def test_frame_sizes(framing, shape, scale):
    img = np.ones(shape + (3,), np.float32)
    out, s = photo.frame_image(img, 1.0, framing)
    assert out.shape[:2] == scale[:2] and s == pytest.approx(scale[2])
    # letterbox pads with zeros and keeps every photo pixel; crop keeps only photo pixels
    assert out.sum() == (img.sum() if framing == "letterbox" else out.size)
    with pytest.raises(ValueError):
        photo.frame_image(img, 1.0, "stretch")


@pytest.mark.parametrize("framing,photo_size", [("letterbox", (96, 192)), ("crop", (192, 96)),
                                                ("letterbox", (192, 96))])
def test_photos_of_other_aspects_land_where_the_camera_says(tmp_path, framing, photo_size):
    base = demo_object(3)
    obj = base.with_(vertices=base.vertices * 0.5)  # small enough for the narrow photos
    s = Session()
    s.set_mesh(obj, "object")
    fov = 40.0
    first, _ = _photo((96, 96), 0.0, 10.0, dist=4.0, mesh=obj)
    files.write_png(tmp_path / "first.png", first)
    other, _ = _photo(photo_size, 90.0, 10.0, dist=4.0, fov=fov, mesh=obj)
    files.write_png(tmp_path / "other.png", other)
    s.add_targets([tmp_path / "first.png", tmp_path / "other.png"],
                  [(0.0, 10.0, 4.0, 45.0), (90.0, 10.0, 4.0, fov)], framing=framing)
    t = s.targets[1]
    assert t.aspect == pytest.approx(1.0, abs=0.03)
    h, w = photo_size
    frame_h = max(h, w) if framing == "letterbox" else min(h, w)
    expect = math.degrees(2 * math.atan(frame_h / h * math.tan(math.radians(fov) / 2)))
    assert t.fov == pytest.approx(expect)
    # The true object seen by the target's camera covers the target's (automatic) mask.
    s.set_option(resolution=96, sigma=1e-5)
    alpha = s.fitter().render(1).alpha[0].numpy()
    mask = s.fitter().target_images()[1][1].numpy()
    assert _iou(alpha, mask) >= 0.9
    if frame_h != h:  # with the photo's own fov the object would land elsewhere
        s.set_target_camera(1, 90.0, 10.0, 4.0, fov)
        assert _iou(s.fitter().render(1).alpha[0].numpy(), mask) < 0.7


def test_load_target_mask_frames_a_mask_of_the_photo_size(tmp_path):
    img, cov = _photo((48, 96), 0.0, 0.0)
    files.write_png(tmp_path / "p.png", np.concatenate([img, np.ones((48, 96, 1))], -1))
    s = Session()
    s.new_primitive("sphere", 1)
    s.add_targets([tmp_path / "p.png"], [(0.0, 0.0, 4.5, 45.0)])
    square = np.zeros((32, 32, 4), np.float32)
    square[..., 3] = 1
    files.write_png(tmp_path / "sq.png", square)
    s.add_targets([tmp_path / "sq.png"], [(0.0, 0.0, 4.5, 45.0)])  # letterboxed to 2:1
    # A mask image the size of the second photo (square) is letterboxed the same way.
    m = np.zeros((32, 32, 3), np.float32)
    m[8:24, 8:24] = 1
    files.write_png(tmp_path / "m.png", m)
    s.load_target_mask(1, tmp_path / "m.png")
    got = s.targets[1].mask
    assert got.shape == s.targets[1].image.shape[:2] == (32, 64)
    assert got[:, :16].max() == 0 and got[:, 48:].max() == 0  # the letterbox bars
    assert _iou(got[:, 16:48], m[..., 0]) == 1.0
    with pytest.raises(files.LoadError):
        (tmp_path / "bad.png").write_text("not an image")
        s.load_target_mask(1, tmp_path / "bad.png")


def test_mask_warning_flags_nearly_empty_and_nearly_full_masks():
    m = np.zeros((100, 100), np.float32)
    assert "almost no object (0.0%" in photo.mask_warning(m, "p.png")
    m[:4, :10] = 1  # 0.4 %
    assert photo.mask_warning(m, "p.png").startswith("p.png: the automatic mask found almost no")
    m[:10, :10] = 1  # 1 %
    assert photo.mask_warning(m) is None
    m[:] = 1
    m[0, :100] = 0  # 99 %
    assert "took almost the whole photo (99.0%" in photo.mask_warning(m)
    m[:3] = 0  # 97 %
    assert photo.mask_warning(m) is None


def test_adding_a_photo_whose_automatic_mask_misses_says_so(tmp_path, monkeypatch):
    files.write_png(tmp_path / "blank.png", np.full((40, 60, 3), 0.5, np.float32))
    img, _ = _photo((48, 48), 30.0, 15.0)
    files.write_png(tmp_path / "good.png", img)
    rgba = np.zeros((40, 60, 4), np.float32)  # an alpha the user gave: empty on purpose
    files.write_png(tmp_path / "alpha.png", rgba)
    s = Session()
    s.new_primitive("sphere", 1)
    views = [(0.0, 0.0, 4.5, 45.0)] * 3
    s.add_targets([tmp_path / "good.png", tmp_path / "blank.png", tmp_path / "alpha.png"],
                  views)
    assert len(s.targets) == 3 and s.targets[1].mask.max() == 0
    assert len(s.warnings) == 1 and s.warnings[0].startswith("blank.png: the automatic mask "
                                                             "found almost no object")
    s.add_targets([tmp_path / "good.png"], views[:1])
    assert s.warnings == []  # only the last call's
    monkeypatch.setattr(photo, "auto_mask", lambda rgb, *a: np.ones(rgb.shape[:2], np.float32))
    s.add_targets([tmp_path / "good.png"], views[:1])
    assert len(s.warnings) == 1 and "good.png" in s.warnings[0]
    assert "took almost the whole photo (100.0%" in s.warnings[0]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(files.LoadError):
        s.add_targets([tmp_path / "blank.png", bad], views[:2])
    assert len(s.targets) == 5 and "good.png" in s.warnings[0]  # a refused call changes nothing
