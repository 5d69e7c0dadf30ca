"""The console script: ``dibr-studio fit`` headless, and its handling of bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import render_core as rc
from studio.__main__ import main


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("dibr-studio: error:")
    return err


@pytest.mark.parametrize("argv", [
    ["fit", "--out", "x"],
    ["fit", "--target", "missing.png", "--view", "0,0,3", "--out", "x"],
    ["fit", "--target", "a.png", "--out", "x"],
    ["fit", "--view", "0,0,3", "--out", "x"],
    ["fit", "--demo", "--optimize", "vertices,wings", "--out", "x"],
    ["fit", "--demo", "--steps", "ten", "--out", "x"],
    ["--bogus"],
    ["fit", "--demo", "--subdivisions", "4", "--out", "x"],
    ["frobnicate", "--help"],
    ["fit", "--demo", "--init", "mesh", "--out", "x"],
    ["fit", "--init", "hull", "--mesh", "m.obj", "--target", "a.png", "--view", "0,0,3",
     "--out", "x"],
    ["fit", "--demo", "--init", "cube", "--out", "x"],
])
def test_bad_input_exits_2_with_one_line(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    _one_line_error(capsys)


def test_fit_with_explicit_targets(tmp_path, capsys):
    img = np.zeros((24, 24, 4), np.uint8)
    img[6:18, 4:20] = (220, 120, 40, 255)
    Image.fromarray(img).save(tmp_path / "front.png")
    Image.fromarray(img[:, ::-1]).save(tmp_path / "side.png")
    rc.save_mesh(rc.icosphere(1), tmp_path / "start.obj")
    argv = ["fit", "--mesh", str(tmp_path / "start.obj"),
            "--target", str(tmp_path / "front.png"), "--view", "0,0,3.5",
            "--target", str(tmp_path / "side.png"), "--view", "90,0,3.5,50",
            "--optimize", "vertices,colors,light", "--shading", "lambertian",
            "--resolution", "16", "--steps", "3", "--quiet", "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    out = tmp_path / "out"
    for name in ("mesh.obj", "mesh.ply", "mesh.glb", "contact_sheet.png", "history.json"):
        assert (out / name).exists(), name
    assert len(json.loads((out / "history.json").read_text())["history"]) == 3


@pytest.mark.slow
def test_demo_fit_reaches_iou_09(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["fit", "--demo", "--steps", "200", "--quiet", "--out", str(out)]) == 0
    history = json.loads((out / "history.json").read_text())["history"]
    assert len(history) == 200
    assert history[-1]["silhouette_iou"] > 0.9
    assert history[-1]["total"] < history[0]["total"]
    for name in ("mesh.obj", "mesh.ply", "mesh.glb"):
        mesh = rc.load_mesh(out / name)
        assert mesh.num_faces == 1280
    assert Image.open(out / "contact_sheet.png").size[0] > 64 * 6
    assert "silhouette IoU" in capsys.readouterr().out


def test_no_display_runs_the_headless_demo(monkeypatch, capsys):
    calls = []
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.setattr("studio.cli.fit_main", lambda argv: calls.append(argv) or 0)
    assert main([]) == 0
    assert calls == [["--demo", "--out", "out/demo"]]
    assert "no display" in capsys.readouterr().err


def test_unknown_first_word_names_the_subcommands_and_runs_nothing(monkeypatch, capsys,
                                                                    tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("studio.cli.fit_main", lambda argv: pytest.fail("ran a fit"))
    assert main(["frobnicate", "--help"]) == 2
    err = _one_line_error(capsys)
    assert "'frobnicate'" in err and "fit" in err and "cameras" in err
    assert not (tmp_path / "out").exists()


def test_demo_refuses_subdivisions(capsys, tmp_path):
    assert main(["fit", "--demo", "--subdivisions", "4", "--out", str(tmp_path)]) == 2
    assert "--subdivisions" in _one_line_error(capsys)


@pytest.mark.parametrize("joined", [False, True])
def test_negative_view_in_both_forms(tmp_path, capsys, joined):
    img = np.zeros((16, 16, 4), np.uint8)
    img[4:12, 4:12] = (200, 100, 50, 255)
    Image.fromarray(img).save(tmp_path / "t.png")
    view = ["--view=-45,-20,3"] if joined else ["--view", "-45,-20,3"]
    argv = ["fit", "--subdivisions", "1", "--target", str(tmp_path / "t.png"), *view,
            "--resolution", "16", "--steps", "1", "--quiet", "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    assert "1 steps" in capsys.readouterr().out


def _session(argv):
    from studio.cli import _join_negative_views, _load, build_parser

    return _load(build_parser().parse_args(_join_negative_views(argv)))


def test_mask_per_target_texture_size_and_photo_resolution(tmp_path):
    Image.fromarray(np.full((16, 16, 3), 200, np.uint8)).save(tmp_path / "photo.png")
    mask = np.zeros((16, 16), np.uint8)
    mask[4:12, 4:12] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")  # no alpha: brightness
    s = _session(["--target", str(tmp_path / "photo.png"), "--view", "0,0,3",
                  "--mask", str(tmp_path / "mask.png"),
                  "--target", str(tmp_path / "photo.png"), "--view", "-90,0,3",
                  "--texture-size", "32", "--out", str(tmp_path / "out")])
    first, second = (np.asarray(t.mask) for t in s.targets)
    assert first.sum() == pytest.approx(64, abs=1) and first[0, 0] == 0 and first[8, 8] == 1
    assert not np.array_equal(second, first)  # no --mask: the photo's automatic mask
    assert s.targets[1].azimuth == -90
    assert s.config.texture_size == 32 and s.config.resolution == 128
    assert _session(["--demo", "--out", "x"]).config.resolution == 64  # the demo's own


def test_view_without_fov_takes_the_photos_exif_fov(tmp_path):
    e = Image.Exif()
    e[0x010F], e[0x0110] = "Acme", "Phone 1"
    e.get_ifd(0x8769)[0xA405] = 26  # 35 mm-equivalent focal
    Image.new("RGB", (120, 90), (200, 40, 40)).save(tmp_path / "a.jpg", exif=e)
    Image.new("RGB", (120, 90), (200, 40, 40)).save(tmp_path / "b.png")
    s = _session(["--target", str(tmp_path / "a.jpg"), "--view", "0,0,3",
                  "--target", str(tmp_path / "b.png"), "--view", "90,0,3",
                  "--target", str(tmp_path / "a.jpg"), "--view", "0,0,3,40",
                  "--out", str(tmp_path / "out")])
    exif_fov, plain, typed = (t.fov for t in s.targets)
    assert exif_fov == pytest.approx(53.06, abs=0.01)  # 26 mm on a 4:3 photo
    assert plain == pytest.approx(60.0) and typed == pytest.approx(40.0)


@pytest.mark.parametrize("argv", [
    ["fit", "--mask", "m.png", "--out", "x"],
    ["fit", "--target", "a.png", "--mask", "m.png", "--mask", "n.png", "--out", "x"],
])
def test_mask_without_its_target_exits_2(argv, capsys):
    assert main(argv) == 2
    assert "--mask" in _one_line_error(capsys)


def test_init_hull_starts_from_what_the_masks_say(tmp_path, capsys):
    """``--init hull``: the first step's silhouette IoU (of the start, before the step) is the
    visual hull's, far above the sphere's."""
    first = {}
    for init in ("sphere", "hull"):
        out = tmp_path / init
        argv = ["fit", "--demo", "--init", init, "--hull-resolution", "64",
                "--hull-faces", "2000", "--steps", "1", "--quiet", "--out", str(out)]
        assert main(argv) == 0
        first[init] = json.loads((out / "history.json").read_text())["history"][0]
    assert first["hull"]["silhouette_iou"] > 0.9
    assert first["hull"]["silhouette_iou"] > first["sphere"]["silhouette_iou"] + 0.1
    back = rc.load_mesh(tmp_path / "hull" / "mesh.ply")
    assert 1600 <= back.num_faces <= 2400


def test_large_steps_option_reaches_the_fit(tmp_path, capsys):
    out = tmp_path / "ls"
    assert main(["fit", "--demo", "--large-steps", "19", "--steps", "2", "--quiet",
                 "--out", str(out)]) == 0
    doc = json.loads((out / "history.json").read_text())
    assert doc["config"]["large_steps"] == 19.0 and len(doc["history"]) == 2
    assert main(["fit", "--demo", "--large-steps", "-1", "--out", str(out)]) == 2
    _one_line_error(capsys)


@pytest.mark.parametrize("word", ["fit", "cameras"])
def test_subcommands_have_help(word, capsys):
    with pytest.raises(SystemExit) as e:
        main([word, "--help"])
    assert e.value.code == 0 and f"dibr-studio {word}" in capsys.readouterr().out


def test_resolution_schedule_option_reaches_the_fit(tmp_path, capsys):
    out = tmp_path / "sched"
    assert main(["fit", "--demo", "--resolution-schedule", "32:0,48:2", "--steps", "3",
                 "--quiet", "--out", str(out)]) == 0
    doc = json.loads((out / "history.json").read_text())
    assert doc["config"]["resolution_schedule"] == [[32, 0], [48, 2]]
    assert len(doc["history"]) == 3
    assert main(["fit", "--demo", "--resolution-schedule", "64:5,32:1", "--out", str(out)]) == 2
    assert "--resolution-schedule" in _one_line_error(capsys)


def test_shape_preset_option_sets_the_hull_refinement(tmp_path, capsys):
    out = tmp_path / "preset"
    assert main(["fit", "--demo", "--shape-preset", "lit", "--weight", "l1=3", "--steps", "1",
                 "--quiet", "--out", str(out)]) == 0
    cfg = json.loads((out / "history.json").read_text())["config"]
    preset = rc.shape_fit_config("lit", cfg["resolution"])
    assert cfg["shading"] == "lambertian" and cfg["large_steps"] == preset.large_steps
    assert cfg["weights"]["l1"] == 3.0  # an option given overrides the preset
    assert cfg["groups"]["vertices"] == {"enabled": True, "lr": preset.groups["vertices"].lr}
    assert main(["fit", "--demo", "--shape-preset", "shiny", "--out", str(out)]) == 2
    _one_line_error(capsys)
