"""Automatic masks of a registered photo set (studio.model.multiview_masks) on the synthetic
set of tests/_photoset.py, whose object wears the room's kind of texture (a single photo's
automatic mask cannot find it there). Structure from motion gives the cameras and sparse
points; each photo and its true mask are undistorted with the estimated camera, so the
masks are compared pixel for pixel (IoU) with the true object masks."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from _photoset import blob_mesh, cached_photoset, true_cameras

from render_core.scene_normalize import umeyama
from studio.model import multiview_masks as mv
from studio.model.poses import estimate_poses

SIZE = (160, 120)  # the targets' size here (the CLI's default keeps the photos' 320 x 240)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.fixture(scope="module")
def photo_set(tmp_path_factory):
    ps = cached_photoset()
    root = tmp_path_factory.mktemp("mvmasks")
    paths = ps.save_photos(root / "photos")
    result = estimate_poses(paths, root / "work")
    truth = {r.image: k for k, r in enumerate(ps.records)}
    images, masks, records = [], [], []
    for r in result.records:
        k = truth[r.image]
        img, m, _, rec = r.undistort(ps.images[k].astype(np.float32) / 255,
                                     ps.masks[k].astype(np.float32), keep="valid", size=SIZE)
        images.append(np.clip(np.asarray(img, np.float32), 0, 1))
        masks.append(np.asarray(m) > 0.5)
        records.append(rec)
    return ps, result, images, masks, records


@pytest.mark.slow
def test_multiview_masks_match_the_true_masks(photo_set):
    _, result, images, truth, records = photo_set
    assert len(records) == 24
    masks = mv.multiview_masks(images, records, result.points, side=120)
    ious = [_iou(m > 0.5, t) for m, t in zip(masks, truth, strict=True)]
    print(f"multi-view masks vs true: IoU min {min(ious):.3f}, mean {np.mean(ious):.3f}")
    assert min(ious) >= 0.9 and np.mean(ious) >= 0.93, ious


@pytest.mark.slow
def test_the_object_sphere_holds_the_object_and_no_floor(photo_set):
    ps, result, _, _, records = photo_set
    sphere = mv.object_sphere(records, result.points)
    by_name = {r.image: r for r in ps.records}
    sim = umeyama(np.array([by_name[r.image].center for r in records]),
                  np.array([r.center for r in records]))
    verts = sim.apply_to_points(ps.verts)  # the true object in the SfM world
    dist = np.linalg.norm(verts - sphere.centre, axis=1)
    assert dist.max() < sphere.radius
    # the room's floor under the object (true y = -0.9) lies outside
    floor = sim.apply_to_points(np.array([[0.7, -0.9, -0.45]]))[0]
    assert np.linalg.norm(floor - sphere.centre) > sphere.radius
    # the points it calls the object's lie on the object (within 5% of its size)
    obj = result.points[sphere.object_points]
    size = np.ptp(verts, axis=0).max()
    near = np.array([np.linalg.norm(verts - p, axis=1).min() for p in obj])
    assert np.median(near) < 0.05 * size


def test_carving_the_true_masks_gives_them_back(photo_set):
    """The consistency step alone: the true masks carved and reprojected (tolerance 1)."""
    _, result, _, truth, records = photo_set
    sphere = mv.object_sphere(records, result.points)
    carved = mv.carve(records, truth, sphere, resolution=64)
    ious = [_iou(a, b) for a, b in zip(carved, truth, strict=True)]
    assert min(ious) >= 0.95, ious
    # a photo whose mask is wrong (a false blob beside the object) is corrected by the rest
    bad = [t.copy() for t in truth]
    bad[0][:, : SIZE[0] // 6] = True
    fixed = mv.carve(records, bad, sphere, resolution=64)
    assert _iou(fixed[0], truth[0]) >= 0.95 > _iou(bad[0], truth[0])


def test_bad_input_is_refused(photo_set):
    ps, result, images, _, records = photo_set
    with pytest.raises(ValueError, match="photo_"):  # a distorted camera names its photo
        mv.multiview_masks(images[:2], [ps.records[0], ps.records[1]], result.points)
    with pytest.raises(ValueError, match="3 photos for 2 cameras"):
        mv.multiview_masks(images[:3], records[:2], result.points)
    with pytest.raises(ValueError, match="no object found"):
        far = result.points + 100.0 * np.abs(result.points).max()
        mv.object_sphere(records, far)
    small = replace(records[0], width=10, height=10)
    with pytest.raises(ValueError, match="its camera says 10 x 10"):
        mv.multiview_masks(images[:2], [small, records[1]], result.points)


@pytest.mark.parametrize("floor", [True, False])
def test_the_object_sphere_from_points_with_and_without_a_background(floor):
    """Points on the true object (every 7th vertex) and, or not, on the floor and a wall
    around it: the sphere holds the whole object and none of the background."""
    records = true_cameras(24, 320, 240, seed=0)
    verts, _ = blob_mesh()
    rng = np.random.default_rng(1)
    pts = [verts[::7]]
    if floor:
        xz = rng.uniform(-4, 4, (400, 2))
        pts.append(np.stack([xz[:, 0], np.full(400, -0.9), xz[:, 1]], 1))
        pts.append(np.stack([rng.uniform(-4, 4, 200), rng.uniform(-0.9, 4, 200),
                             np.full(200, -5.5)], 1))
    sphere = mv.object_sphere(records, np.concatenate(pts))
    assert np.linalg.norm(verts - sphere.centre, axis=1).max() < sphere.radius
    assert sorted(sphere.object_points) == list(range(len(pts[0])))
    for bg in pts[1:]:
        assert np.linalg.norm(bg - sphere.centre, axis=1).min() > sphere.radius
