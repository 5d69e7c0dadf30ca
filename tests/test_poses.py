"""Camera poses from the photos alone (studio.model.poses, pycolmap on the CPU) and the
``dibr-studio cameras`` subcommand, on the synthetic photo set (tests/_photoset.py): all 24
photos registered, camera centres within 1% of the scene radius and rotations within 1 degree of
the truth after a similarity alignment; photos that cannot be registered are named; bad input
and cancelling give clear errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from _photoset import cached_photoset
from PIL import Image

from render_core.camera_io import read_transforms
from render_core.scene_normalize import SceneTransform, umeyama
from studio.__main__ import main
from studio.model import poses
from studio.model.poses import Cancelled, PoseError, estimate_poses, find_photos
from studio.poses_cli import NORMALIZATION_KEY


def _noise_photo(path, seed=0, size=(320, 240)):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)


def _pose_errors(records, truth):
    """(centre errors / scene radius, rotation errors in degrees) after aligning the estimated
    camera centres to the true ones with a similarity."""
    by_name = {r.image: r for r in truth.records}
    est = np.array([r.center for r in records])
    true = np.array([by_name[r.image].center for r in records])
    s = umeyama(est, true)
    centre = np.linalg.norm(s.apply_to_points(est) - true, axis=1) / truth.radius
    rot = []
    for r, rec in zip(s.apply_to_records(records), records, strict=True):
        d = r.R @ by_name[rec.image].R.T
        rot.append(math.degrees(math.acos(np.clip((np.trace(d) - 1) / 2, -1, 1))))
    return centre, np.array(rot)


@pytest.fixture(scope="module")
def sfm(tmp_path_factory):
    ps = cached_photoset()
    root = tmp_path_factory.mktemp("sfm")
    paths = ps.save_photos(root / "photos")
    _noise_photo(root / "photos" / "zz_noise.png")
    calls = []
    result = estimate_poses([*paths, root / "photos" / "zz_noise.png"], root / "work",
                            progress=lambda *a: calls.append(a))
    print("SfM stage seconds:", {k: round(v, 1) for k, v in result.timings.items()})
    return ps, root, result, calls


@pytest.mark.slow
def test_all_24_photos_are_registered_and_the_noise_photo_is_named(sfm):
    ps, root, result, _ = sfm
    assert sorted(r.image for r in result.records) == sorted(r.image for r in ps.records)
    assert result.unregistered == [str(root / "photos" / "zz_noise.png")]
    for r in result.records:
        assert r.path == root / "photos" / r.image
    assert len(result.points) > 500 and result.points.shape[1] == 3
    assert (result.model_dir / "images.bin").is_file()


@pytest.mark.slow
def test_poses_match_the_truth_after_a_similarity(sfm):
    ps, _, result, _ = sfm
    centre, rot = _pose_errors(result.records, ps)
    print(f"centre error / scene radius: max {centre.max():.4f} mean {centre.mean():.4f}; "
          f"rotation error: max {rot.max():.3f} deg mean {rot.mean():.3f} deg")
    assert centre.max() <= 0.01
    assert rot.max() <= 1.0
    # one shared camera, close to the true lens
    assert len({r.camera_id for r in result.records}) == 1
    est, true = result.records[0], ps.records[0]
    assert est.model == "RADIAL"
    f, cx, cy, k1, _ = est.params
    print("estimated lens", est.params, "true", true.params)
    assert abs(f / true.params[0] - 1) < 0.01
    assert abs(cx - true.params[1]) < 2 and abs(cy - true.params[2]) < 2
    assert abs(k1 - true.params[3]) < 0.02


@pytest.mark.slow
def test_progress_reports_every_stage_in_order(sfm):
    *_, calls = sfm
    stages = [c[0] for c in calls]
    assert [s for i, s in enumerate(stages) if i == 0 or stages[i - 1] != s] == list(poses.STAGES)
    for stage in poses.STAGES:
        mine = [c for c in calls if c[0] == stage]
        assert mine[0][1] == 0 and mine[-1][1] == mine[-1][2] > 0
        assert all(a[1] <= b[1] for a, b in zip(mine, mine[1:], strict=False))
    assert max(c[2] for c in calls if c[0] == "features") == 25


@pytest.mark.slow
def test_cli_writes_what_read_transforms_reads(sfm, tmp_path, monkeypatch, capsys):
    """The CLI around the SfM result above (estimate_poses replaced by it): the photos'
    cameras in a transforms.json, the unregistered one named on stderr; with --normalize the
    kept transform maps the file back to COLMAP's world."""
    ps, root, result, _ = sfm
    monkeypatch.setattr(poses, "estimate_poses", lambda *a, **k: result)
    out = root / "photos" / "transforms.json"
    assert main(["cameras", str(root / "photos"), "--out", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "could not register" in err and "zz_noise.png" in err
    back = read_transforms(out)
    assert [r.image for r in back] == [r.image for r in result.records]
    for a, b in zip(back, result.records, strict=True):
        assert a.path == b.path
        np.testing.assert_allclose(a.R, b.R, atol=1e-12)
        np.testing.assert_allclose(a.t, b.t, atol=1e-9)
        np.testing.assert_allclose(a.intrinsics, b.intrinsics, atol=1e-9)
    out2 = root / "normalized.json"  # a folder above the photos: paths get the subfolder
    assert main(["cameras", str(root / "photos"), "--out", str(out2), "--quiet",
                 "--normalize"]) == 0
    data = json.loads(out2.read_text())
    t = SceneTransform.from_dict(data[NORMALIZATION_KEY])
    back = read_transforms(out2)
    assert back[0].image == "photos/" + result.records[0].image and back[0].path is not None
    undone = t.inverse().apply_to_records(back)
    for a, b in zip(undone, result.records, strict=True):
        np.testing.assert_allclose(a.center, b.center, atol=1e-9 * max(1, abs(b.center).max()))
    centres = np.array([r.center for r in back])
    assert np.linalg.norm(centres, axis=1).max() < 10  # the unit-sphere world, not COLMAP's


@pytest.mark.slow
def test_cli_end_to_end_on_a_few_photos_with_masks(tmp_path, capsys):
    ps = cached_photoset()
    photos, masks = tmp_path / "photos", tmp_path / "masks"
    ps.save_photos(photos, masks, which=range(8))
    out = photos / "transforms.json"
    assert main(["cameras", str(photos), "--out", str(out), "--quiet", "--normalize",
                 "--masks", str(masks)]) == 0
    back = read_transforms(out)
    assert len(back) == 8 and all(r.path is not None for r in back)
    centre, rot = _pose_errors(back, ps)
    print(f"8 photos: centre error max {centre.max():.4f} of the radius, rotation {rot.max():.3f}")
    assert centre.max() < 0.03 and rot.max() < 2
    t = SceneTransform.from_dict(json.loads(out.read_text())[NORMALIZATION_KEY])
    assert t.scale > 0


@pytest.mark.slow
def test_cancel_stops_with_cancelled(tmp_path):
    ps = cached_photoset()
    paths = ps.save_photos(tmp_path / "photos", which=range(6))
    with pytest.raises(Cancelled):
        estimate_poses(paths, tmp_path / "w1", cancel=lambda: True)
    for stage, after in (("matching", 0), ("mapping", 1)):
        seen = []

        def cancel(stage=stage, after=after, seen=seen):
            return bool(seen) and seen[-1][0] == stage and seen[-1][1] >= after

        with pytest.raises(Cancelled):
            estimate_poses(paths, tmp_path / stage, progress=lambda *a, seen=seen: seen.append(a),
                           cancel=cancel)
        stages = [s[0] for s in seen]
        assert stage in stages and stages[-1] == stage  # nothing reported after the cancel
        if stage == "matching":
            assert "mapping" not in stages


def test_bad_input_gives_clear_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PoseError, match="no photos found"):
        find_photos(empty)
    with pytest.raises(PoseError, match="not a folder"):
        find_photos(tmp_path / "missing")
    with pytest.raises(PoseError, match="no photos given"):
        estimate_poses([], tmp_path / "w")
    fake = tmp_path / "fake.png"
    fake.write_text("not an image")
    good = tmp_path / "good.png"
    _noise_photo(good)
    with pytest.raises(PoseError, match="fake.png: cannot be read as an image"):
        estimate_poses([good, fake], tmp_path / "w")
    with pytest.raises(PoseError, match="at least 2 photos"):
        estimate_poses([good], tmp_path / "w")
    with pytest.raises(PoseError, match="given twice"):
        estimate_poses([good, good], tmp_path / "w")
    with pytest.raises(PoseError, match="no such photo"):
        estimate_poses([good, tmp_path / "nope.png"], tmp_path / "w")
    with pytest.raises(PoseError, match="list of photo files"):
        estimate_poses(str(tmp_path), tmp_path / "w")


def test_photos_that_share_nothing_are_refused(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    _noise_photo(a, 1, (96, 72))
    _noise_photo(b, 2, (96, 72))
    with pytest.raises(PoseError, match="could be matched|could be registered"):
        estimate_poses([a, b], tmp_path / "w", max_size=96)


def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [(["cameras", str(empty)], "no photos found"),
             (["cameras", str(tmp_path / "missing")], "not a folder"),
             (["cameras"], "DIR"),
             (["cameras", str(empty), "--bogus"], "--bogus"),
             (["cameras", str(empty), "--masks", str(empty)], None)]
    for argv, word in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("dibr-studio: error: ") and "\n" not in err, err
        if word:
            assert word in err, err
    photos = tmp_path / "photos"
    photos.mkdir()
    _noise_photo(photos / "a.png")
    _noise_photo(photos / "b.png", 1)
    other = tmp_path / "elsewhere"
    other.mkdir()
    assert main(["cameras", str(photos), "--out", str(other / "t.json")]) == 2
    assert "must be written in" in capsys.readouterr().err
    assert main(["cameras", str(photos), "--masks", str(photos)]) == 2
    assert "only used with --normalize" in capsys.readouterr().err
    # other unknown first words still exit 2 and name the subcommands
    assert main(["camera"]) == 2
    err = capsys.readouterr().err
    assert all(word in err for word in ("fit", "cameras", "batch", "stylize", "dream")), err
