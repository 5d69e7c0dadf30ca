"""``dibr-studio fit --photos DIR`` end to end on the synthetic photo set (tests/_photoset.py),
few steps, small targets: 12 of its 24 photos

- with their true cameras (``--cameras transforms.json``) and the set's own masks;
seen from the 12 held-out photos' cameras; and all 24 photos from the photos alone:
automatic poses and automatic masks (the multi-view masks: the object wears the room's kind
of texture, so each photo's own automatic mask cannot find it; 12 photos 30° apart are too
few for structure from motion), seen from 8 novel cameras of another draw of the set's rig,
after a similarity from the true world to the fit's. The exported textured mesh covers the
true object's silhouette at IoU >= 0.9 in every view. The full-size version is
``scripts/photo_fit.py``."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from _photoset import cached_photoset, true_cameras

import render_core as rc
from render_core.camera_io import read_transforms, write_transforms
from render_core.scene_normalize import SceneTransform, umeyama
from studio.__main__ import main

TRAIN = range(0, 24, 2)
HELD_OUT = range(1, 24, 2)


def _silhouette(verts, faces, rec, size) -> np.ndarray:
    h, w = size
    s = w / rec.width
    pin = replace(rec, model="PINHOLE", params=tuple(v * s for v in rec.intrinsics),
                  width=w, height=h)
    cam = pin.to_camera(dtype=torch.float64)
    clip = cam.to_clip(torch.as_tensor(verts, dtype=torch.float64))
    return rc.rasterize(clip.float(), torch.as_tensor(faces), (h, w)).mask[0].numpy()


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    ps = cached_photoset()
    root = tmp_path_factory.mktemp("photos")
    ps.save_photos(root / "photos", root / "masks", which=TRAIN)
    write_transforms(root / "photos" / "transforms.json", [ps.records[k] for k in TRAIN])
    out = root / "out"
    rc_ = main(["fit", "--photos", str(root / "photos"), "--cameras",
                str(root / "photos" / "transforms.json"), "--masks", str(root / "masks"),
                "--max-side", "160", "--resolution", "64", "--hull-resolution", "64",
                "--steps", "20", "--texture-steps", "5", "--out", str(out), "--quiet"])
    assert rc_ == 0
    return ps, out


def test_the_exported_mesh_matches_the_object_from_held_out_views(fitted):
    ps, out = fitted
    mesh = rc.load_mesh(out / "mesh.obj")
    assert mesh.texture is not None and mesh.uvs is not None
    doc = json.loads((out / "cameras" / "transforms.json").read_text())
    norm = SceneTransform.from_dict(doc["dibr_studio_normalization"])
    back = norm.inverse()  # the export lies in the normalised world
    verts = back.apply_to_points(mesh.vertices.double().numpy())
    ious = []
    for k in HELD_OUT:
        rec = ps.records[k]
        a = _silhouette(ps.verts, ps.faces, rec, (120, 160))
        b = _silhouette(verts, mesh.faces.numpy(), rec, (120, 160))
        ious.append(float((a & b).sum() / (a | b).sum()))
    assert min(ious) >= 0.9, ious


@pytest.mark.slow
def test_from_the_photos_alone_automatic_poses_and_masks(tmp_path):
    ps = cached_photoset()
    ps.save_photos(tmp_path / "photos")
    out = tmp_path / "out"
    assert main(["fit", "--photos", str(tmp_path / "photos"), "--max-side", "160",
                 "--resolution", "64", "--hull-resolution", "64", "--steps", "20",
                 "--texture-steps", "5", "--out", str(out), "--quiet"]) == 0
    fitted = {r.image: r for r in read_transforms(out / "cameras" / "transforms.json")}
    names = [f"images/{r.image}" for r in ps.records]
    assert sorted(fitted) == sorted(names)  # every photo registered
    sim = umeyama(np.array([r.center for r in ps.records]),
                  np.array([fitted[n].center for n in names]))
    mesh = rc.load_mesh(out / "mesh.obj")
    verts = sim.apply_to_points(ps.verts)
    ious = []
    for rec in sim.apply_to_records(true_cameras(8, 320, 240, seed=11)):
        a = _silhouette(verts, ps.faces, rec, (120, 160))
        b = _silhouette(mesh.vertices.double().numpy(), mesh.faces.numpy(), rec, (120, 160))
        ious.append(float((a & b).sum() / (a | b).sum()))
    print(f"automatic poses and masks, novel-view IoU min {min(ious):.3f} "
          f"mean {np.mean(ious):.3f}")
    assert min(ious) >= 0.9, ious


def test_the_fitted_cameras_are_written_and_read_back(fitted):
    ps, out = fitted
    records = read_transforms(out / "cameras" / "transforms.json")
    assert len(records) == len(TRAIN) and all(r.path is not None for r in records)
    doc = json.loads((out / "cameras" / "transforms.json").read_text())
    norm = SceneTransform.from_dict(doc["dibr_studio_normalization"])
    # Cameras were not refined: the written ones are the true ones in the normalised world
    # (the undistorted pinhole keeps the pose).
    truth = norm.apply_to_records([ps.records[k] for k in TRAIN])
    for r, t in zip(records, truth, strict=True):
        np.testing.assert_allclose(r.R, t.R, atol=1e-6)
        np.testing.assert_allclose(r.t, t.t, atol=1e-6)


def test_bad_photo_arguments_exit_2(tmp_path, capsys):
    assert main(["fit", "--photos", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(["fit", "--cameras", "auto", "--demo", "--out", str(tmp_path / "o")]) == 2
    assert "--cameras needs --photos" in capsys.readouterr().err
    (tmp_path / "p").mkdir()
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "p" / "a.png")
    assert main(["fit", "--photos", str(tmp_path / "p"), "--cameras",
                 str(tmp_path / "missing.json"), "--out", str(tmp_path / "o")]) == 2
    assert "missing.json" in capsys.readouterr().err


def test_fitted_cameras_go_back_to_the_original_world(tmp_path):
    from render_core.fit import TargetView
    from studio.model.photo_folder import write_fitted_transforms

    ps = cached_photoset()
    pins = [replace(r, model="PINHOLE", params=tuple(r.intrinsics), image=f"im{k}.png")
            for k, r in enumerate(ps.records[:4])]
    a = np.radians(25.0)
    rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    norm = SceneTransform(0.4, rot, np.array([0.1, -0.2, 0.3]))
    normed = norm.apply_to_records(pins)
    fitted = [(r.R, r.t, tuple(r.intrinsics)) for r in normed]
    img = np.zeros((pins[0].height, pins[0].width, 3), np.float32)
    targets = [TargetView.from_camera(img, None, r.R, r.t, *r.intrinsics) for r in normed]
    write_fitted_transforms(tmp_path / "t.json", normed, fitted, targets, norm)
    back = read_transforms(tmp_path / "t.json")
    for r, t in zip(back, pins, strict=True):
        np.testing.assert_allclose(r.R, t.R, atol=1e-9)
        np.testing.assert_allclose(r.t, t.t, atol=1e-9)
        np.testing.assert_allclose(r.intrinsics, t.intrinsics, atol=1e-9)
