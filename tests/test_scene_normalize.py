"""Scene normalisation (render_core.scene_normalize) on the synthetic photo set's true cameras
and masks: a known similarity applied to the scene is undone, the object lands in the unit
sphere, +Y is up; the transform round-trips through JSON and keeps every projected pixel."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from _photoset import cached_photoset

from render_core.camera_io import cameras_from_records
from render_core.scene_normalize import SceneTransform, normalize_scene, umeyama


def _random_similarity(seed: int, scale: float) -> SceneTransform:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return SceneTransform(scale, q, rng.normal(size=3) * 5)


def _angle(a, b) -> float:
    a, b = np.asarray(a) / np.linalg.norm(a), np.asarray(b) / np.linalg.norm(b)
    return math.degrees(math.acos(np.clip(np.dot(a, b), -1, 1)))


@pytest.fixture(scope="module")
def ps():
    return cached_photoset()


@pytest.mark.parametrize("use_masks", [True, False])
def test_a_known_similarity_is_undone(ps, use_masks):
    masks = ps.masks if use_masks else None
    base = normalize_scene(ps.records, masks)
    # a COLMAP-like world: turned (its +Y anywhere), scaled and moved
    s = _random_similarity(3, 0.37)
    moved = s.apply_to_records(ps.records)
    again = normalize_scene(moved, masks).compose(s)  # original -> moved -> normalised
    tol = 0.02 if use_masks else 1e-9  # the sampling grid is axis-aligned in each world
    np.testing.assert_allclose(again.rotation, base.rotation, atol=tol / 10)
    assert abs(again.scale / base.scale - 1) < tol
    v0, v1 = base.apply_to_points(ps.verts), again.apply_to_points(ps.verts)
    assert np.abs(v0 - v1).max() < 2 * tol


def test_the_object_lands_in_the_unit_sphere(ps):
    t = normalize_scene(ps.records, ps.masks)
    v = t.apply_to_points(ps.verts)
    r = np.linalg.norm(v, axis=1)
    print("normalised object radius (masks):", r.max(), "centroid", v.mean(0))
    assert r.max() <= 1.0
    assert r.max() > 0.8  # the sphere is tight, not merely large
    assert np.linalg.norm(v.mean(0)) < 0.05
    # the cameras alone: a rougher estimate, still inside
    v = normalize_scene(ps.records).apply_to_points(ps.verts)
    r = np.linalg.norm(v, axis=1)
    print("normalised object radius (cameras only):", r.max())
    assert 0.4 < r.max() <= 1.0
    assert np.linalg.norm(v.mean(0)) < 0.1
    # another radius
    v = normalize_scene(ps.records, ps.masks, radius=2.5).apply_to_points(ps.verts)
    assert 2.0 < np.linalg.norm(v, axis=1).max() <= 2.5


def test_plus_y_is_up(ps):
    # the true world is +Y up; the cameras look down at the object and roll a few degrees
    t = normalize_scene(ps.records, ps.masks)
    print("true up after normalising, degrees from +Y:", _angle(t.rotation @ [0, 1, 0],
                                                                [0, 1, 0]))
    assert _angle(t.rotation @ [0, 1, 0], [0, 1, 0]) < 1.5
    # a world upside down (COLMAP's +Y down) comes out the right way up too
    flip = SceneTransform(2.0, np.diag([1.0, -1.0, -1.0]), np.zeros(3))
    t2 = normalize_scene(flip.apply_to_records(ps.records), ps.masks)
    assert _angle(t2.rotation @ flip.rotation @ [0, 1, 0], [0, 1, 0]) < 1.5
    # the first camera looks from +Z
    c = t.apply_to_records(ps.records)[0].center
    assert abs(c[0]) < 1e-9 and c[2] > 0


def test_transform_keeps_every_pixel_and_inverts(ps):
    t = _random_similarity(5, 2.3)
    recs = ps.records[:4]
    pin = [r.undistort(ps.images[k])[3] for k, r in enumerate(recs)]
    before = cameras_from_records(pin, dtype=torch.float64).to_pixels(
        torch.as_tensor(ps.verts)[None].expand(4, -1, -1), 320, 240)
    moved = t.apply_to_records(pin)
    after = cameras_from_records(moved, dtype=torch.float64).to_pixels(
        torch.as_tensor(t.apply_to_points(ps.verts))[None].expand(4, -1, -1), 320, 240)
    assert float((before - after).abs().max()) < 1e-6
    back = t.inverse().apply_to_records(moved)
    for a, b in zip(back, pin, strict=True):
        np.testing.assert_allclose(a.R, b.R, atol=1e-12)
        np.testing.assert_allclose(a.t, b.t, atol=1e-9)
    p = np.random.default_rng(0).normal(size=(10, 3))
    np.testing.assert_allclose(t.inverse().apply_to_points(t.apply_to_points(p)), p, atol=1e-12)
    pt = torch.as_tensor(p, dtype=torch.float32)
    assert t.apply_to_points(pt).dtype == torch.float32
    np.testing.assert_allclose(t.apply_to_points(pt).numpy(), t.apply_to_points(p), atol=1e-4)
    np.testing.assert_allclose(t.matrix() @ np.append(p[0], 1), np.append(t.apply_to_points(p)[0],
                                                                          1), atol=1e-12)


def test_json_round_trip_and_bad_dicts():
    t = _random_similarity(7, 0.123456789)
    back = SceneTransform.from_dict(json.loads(json.dumps(t.to_dict())))
    assert back.scale == t.scale
    np.testing.assert_array_equal(back.rotation, t.rotation)
    np.testing.assert_array_equal(back.translation, t.translation)
    good = t.to_dict()
    for bad, word in [({**good, "scale": -1}, "scale"), ({**good, "scale": "2"}, "number"),
                      ({**good, "rotation": np.diag([1, 1, -1.0]).tolist()}, "not a rotation"),
                      ({**good, "rotation": np.eye(3).tolist()[:2]}, "rotation"),
                      ({**good, "translation": [0, 0]}, "translation"),
                      ({k: v for k, v in good.items() if k != "scale"}, "missing"), ([], "object")]:
        with pytest.raises(ValueError, match=word):
            SceneTransform.from_dict(bad)


def test_umeyama_recovers_a_similarity():
    t = _random_similarity(11, 4.2)
    p = np.random.default_rng(1).normal(size=(20, 3))
    est = umeyama(p, t.apply_to_points(p))
    np.testing.assert_allclose(est.matrix(), t.matrix(), atol=1e-9)
    rigid = umeyama(p, p + 1.0, with_scale=False)
    np.testing.assert_allclose(rigid.translation, [1, 1, 1], atol=1e-12)
    with pytest.raises(ValueError, match="N >= 3"):
        umeyama(p[:2], p[:2])


def test_bad_input_is_named(ps):
    with pytest.raises(ValueError, match="at least 2 cameras"):
        normalize_scene(ps.records[:1])
    with pytest.raises(ValueError, match="CameraRecords"):
        normalize_scene([])
    with pytest.raises(ValueError, match="2 masks for 24 cameras"):
        normalize_scene(ps.records, ps.masks[:2])
    with pytest.raises(ValueError, match="photo_03.png is 10 x 10"):
        normalize_scene(ps.records, [*ps.masks[:3], np.ones((10, 10)), *ps.masks[4:]])
    empty = [m.copy() for m in ps.masks]
    empty[2][:] = False
    with pytest.raises(ValueError, match="photo_02.png is empty"):
        normalize_scene(ps.records, empty)
    apart = [m.copy() for m in ps.masks]
    apart[0][:] = False
    apart[0][:5, :5] = True  # a corner far from the object: nothing is inside every mask
    with pytest.raises(ValueError, match="share no region"):
        normalize_scene(ps.records, apart)
