"""Importing the true cameras of the synthetic photo set (tests/_photoset.py, rendered with
moderngl) from a COLMAP text model, a COLMAP binary model written by pycolmap itself, and a
transforms.json: after undistorting each photo's true mask with the imported camera, the true
mesh rasterized by render_core with that camera covers the same pixels (IoU >= 0.98 in every
view)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from _photoset import cached_photoset

from render_core.camera_io import read_colmap, read_transforms
from render_core.rasterize import rasterize


def _iou(a, b) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    return float((a & b).sum() / max((a | b).sum(), 1))


def _silhouette(ps, rec) -> np.ndarray:
    cam = rec.to_camera(dtype=torch.float64)
    clip = cam.to_clip(torch.as_tensor(ps.verts))
    frags = rasterize(clip.float(), torch.as_tensor(ps.faces), (rec.height, rec.width))
    return frags.mask[0].numpy()


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    ps = cached_photoset()
    root = tmp_path_factory.mktemp("photoset")
    ps.save_photos(root / "images")
    ps.write_colmap_text(root / "text")
    ps.write_colmap_binary(root / "binary")
    ps.write_transforms(root / "images" / "transforms.json")
    return ps, root


def _imported(kind: str, root):
    if kind == "colmap-text":
        model = read_colmap(root / "text", image_root=root / "images")
        assert (root / "text" / "cameras.txt").is_file()
        return model.records
    if kind == "colmap-binary":
        assert (root / "binary" / "cameras.bin").is_file()
        assert not (root / "binary" / "cameras.txt").exists()
        return read_colmap(root / "binary", image_root=root / "images").records
    return read_transforms(root / "images" / "transforms.json")


def test_the_photo_set_is_what_the_issue_asks_for():
    ps = cached_photoset()
    assert len(ps.images) == 24 and ps.images[0].shape == (240, 320, 3)
    recs = ps.records
    k = recs[0].intrinsics
    assert abs(k.cx - 160) > 10 and abs(k.cy - 120) > 5  # principal point off-centre
    assert recs[0].distorted
    centres = np.array([r.center for r in recs])
    obj = ps.verts.mean(0)
    assert np.linalg.norm(obj) > 0.5  # the object is off the origin
    dist = np.linalg.norm(centres - obj, axis=1)
    assert dist.max() - dist.min() > 0.5  # not on an orbit: distances vary...
    assert np.ptp(centres[:, 1]) > 0.5  # ...and so do the heights
    # roll: the cameras' right vectors leave the horizontal plane by a few degrees
    roll = np.degrees(np.arcsin(np.abs(np.array([r.R[0, 1] for r in recs]))))
    assert roll.max() > 2 and roll.max() < 6
    # the background is textured: plenty of contrast outside the object in every photo
    for img, m in zip(ps.images, ps.masks, strict=True):
        assert img[~m].std() > 25
        assert 0.03 < m.mean() < 0.4


@pytest.mark.parametrize("kind", ["colmap-text", "colmap-binary", "transforms.json"])
def test_import_reproduces_the_true_cameras(written, kind):
    ps, root = written
    records = _imported(kind, root)
    truth = {r.image: r for r in ps.records}
    assert sorted(r.image for r in records) == sorted(truth)
    ious = []
    for rec in records:
        k = int(rec.image[6:8])
        assert rec.path is not None and rec.path.name == rec.image
        assert rec.distorted
        image, mask, valid, pin = rec.undistort(ps.images[k], ps.masks[k])
        assert valid.all()
        ious.append(_iou(mask, _silhouette(ps, pin)))
    print(kind, "IoU min", min(ious), "mean", np.mean(ious))
    assert min(ious) >= 0.98, ious


def test_the_iou_check_sees_a_wrong_camera(written):
    """The oracle discriminates: a camera moved sideways by 1% of the scene radius drops the
    IoU below the bar in every view; ignoring the lens distortion lowers the worst view's IoU
    clearly (the object stays near the image centre, where the distortion is mild)."""
    ps, root = written
    no_lens, moved, true = [], [], []
    for k, rec in enumerate(read_colmap(root / "text").records):
        assert rec.image == f"photo_{k:02d}.png"
        pinhole = replace(rec, model="SIMPLE_PINHOLE", params=rec.params[:3])
        no_lens.append(_iou(ps.masks[k], _silhouette(ps, pinhole)))
        _, mask, _, pin = rec.undistort(ps.images[k], ps.masks[k])
        true.append(_iou(mask, _silhouette(ps, pin)))
        pin.t = pin.t + np.array([0.01 * ps.radius, 0.0, 0.0])
        moved.append(_iou(mask, _silhouette(ps, pin)))
    print("IoU without the lens model: min", min(no_lens), "; camera moved: max", max(moved))
    assert max(moved) < 0.98
    assert min(no_lens) < min(true) - 0.005
