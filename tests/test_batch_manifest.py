"""The batch manifest (no Ray): every bad row reported at once by row and field, the content
key of a row, the files that travel with a mesh, and a manifest from a folder layout."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from render_core.fit_config import FIT_MODELS
from studio.__main__ import main
from studio.batch import ManifestError, load, parse
from studio.batch.layout import LayoutError, manifest_from_folder


@pytest.fixture
def folder(tmp_path):
    img = np.zeros((8, 8, 4), np.uint8)
    img[2:6, 2:6] = (200, 100, 50, 255)
    for name in ("a.png", "b.png"):
        Image.fromarray(img).save(tmp_path / name)
    (tmp_path / "start.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    return tmp_path


def _good(name="ok"):
    return {"name": name, "mesh": "start.obj", "steps": 5,
            "targets": [{"image": "a.png", "view": [0, 10, 3]},
                        {"image": "b.png", "view": [90, 10, 3, 50]}]}


def test_every_bad_row_is_reported_by_row_and_field(folder, capsys):
    rows = [
        _good(),
        {**_good(), "name": "no/slash", "steps": -1},
        {**_good("typo"), "stesp": 5},
        {**_good("files"), "targets": [{"image": "missing.png", "view": [0, 0, 3]},
                                       {"image": "a.png", "view": [0, 0]}]},
        {**_good("cfg"), "optimize": ["vertices", "wings"],
         "settings": {"resolution": 3, "sigma": 1e-4}},
        _good("ok"),
        {**_good("lr"), "lr": {"vertices": -1}, "weights": {"nope": 1}},
        {**_good("mesh"), "mesh": "missing.obj", "init": "cube"},
        _good("report.html"),
    ]
    path = folder / "m.json"
    path.write_text(json.dumps({"fits": rows}))
    with pytest.raises(ManifestError) as info:
        load(path)
    got = {(r, f) for r, f, _ in info.value.problems}
    assert got == {(2, "name"), (2, "steps"), (3, "stesp"), (4, "targets[1].image"),
                   (4, "targets[2].view"), (5, "optimize"), (5, "settings.resolution"),
                   (6, "name"), (7, "lr.vertices"), (7, "weights.nope"), (8, "mesh"),
                   (8, "init"), (9, "name")}
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("m.json: 8 bad rows: row 2 ")
    assert "row 4 targets[1].image: file not found: missing.png" in msg
    assert "also the name of row 1" in msg
    # the command: exit 2, one line with every problem, nothing run or written
    out = folder / "out"
    assert main(["batch", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("dibr-studio: error: m.json: 8 bad rows")
    assert "row 8 init" in err and not out.exists()


@pytest.mark.parametrize("doc, problem", [
    ({"fits": []}, "no fits"),
    ({"rows": []}, "unknown key"),
    ({"fits": [{}], "format": 2}, "format"),
    ("just text", "expected"),
])
def test_bad_manifest_files(folder, doc, problem):
    with pytest.raises(ManifestError, match=problem):
        parse(doc, folder / "m.json")


def test_unreadable_manifest(folder):
    (folder / "m.json").write_text("{not json")
    with pytest.raises(ManifestError, match="m.json: not a readable JSON file"):
        load(folder / "m.json")
    with pytest.raises(ManifestError, match="file not found"):
        load(folder / "none.json")


def test_defaults_merge_and_demo_rows(folder):
    doc = {"defaults": {"steps": 7, "settings": {"resolution": 32}, "lr": {"vertices": 0.02}},
           "fits": [{**_good(), "steps": None, "settings": {"shading": "lambertian"}},
                    {"name": "demo", "demo": True, "targets": None, "lr": {"colors": 0.1}}]}
    del doc["fits"][0]["steps"]
    a, b = parse(doc, folder / "m.json")
    assert a.steps == 7 and a.spec["settings"] == {"resolution": 32, "shading": "lambertian"}
    assert b.spec["lr"] == {"vertices": 0.02, "colors": 0.1} and b.inputs == {}
    assert "--demo" in b.fit_argv() and "--shading=lambertian" in a.fit_argv()


def test_key_follows_content_not_location(folder, tmp_path_factory):
    row = parse({"fits": [_good()]}, folder / "m.json")[0]
    moved = tmp_path_factory.mktemp("moved")
    for p in folder.iterdir():
        shutil.copy(p, moved / p.name)
    assert parse({"fits": [_good()]}, moved / "m.json")[0].key() == row.key()
    Image.fromarray(np.full((8, 8, 3), 9, np.uint8)).save(moved / "b.png")
    changed = parse({"fits": [_good()]}, moved / "m.json")[0].key()
    assert changed != row.key()
    assert parse({"fits": [{**_good(), "steps": 6}]}, folder / "m.json")[0].key() != row.key()


def test_an_obj_travels_with_its_material_and_texture(folder):
    (folder / "tex").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(folder / "tex" / "t.png")
    (folder / "m.mtl").write_text("newmtl a\nmap_Kd tex/t.png\n")
    (folder / "start.obj").write_text("mtllib m.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    row = parse({"fits": [_good()]}, folder / "m.json")[0]
    assert set(row.inputs) == {"mesh/start.obj", "mesh/m.mtl", "mesh/tex/t.png",
                               "targets/1/a.png", "targets/2/b.png"}
    assert row.fit_argv("IN")[:2] == ["--mesh", "IN/mesh/start.obj"]


def test_input_size_limit_names_the_row(folder):
    with pytest.raises(ManifestError, match="row 1 inputs: .* over the limit"):
        parse({"fits": [_good()]}, folder / "m.json", max_input_bytes=100)


def test_manifest_from_folder_layout(folder):
    for item in ("chair", "lamp"):
        (folder / "set" / item).mkdir(parents=True)
        for name in ("0.png", "1.png", "notes.png"):
            shutil.copy(folder / "a.png", folder / "set" / item / name)
    (folder / "set" / "views.json").write_text(json.dumps({"0.png": [0, 10, 3],
                                                           "1.png": [90, 10, 3, 40]}))
    (folder / "set" / "lamp" / "views.json").write_text(json.dumps({"1.png": [45, 0, 2.5]}))
    doc = manifest_from_folder(folder / "set", {"steps": 3})
    rows = parse(doc, folder / "set" / "manifest.json")
    assert [r.name for r in rows] == ["chair", "lamp"]
    assert [t["view"] for t in rows[0].spec["targets"]] == [[0, 10, 3], [90, 10, 3, 40]]
    assert [t["view"] for t in rows[1].spec["targets"]] == [[45, 0, 2.5]]
    assert rows[0].steps == 3
    with pytest.raises(LayoutError, match="no item folder"):
        manifest_from_folder(folder / "set" / "chair")


def test_worker_applies_settings_fit_has_no_option_for_and_leaves_limits(folder):
    """The worker's own code path without Ray: a demo row with sigma and camera_views (set
    after loading, as `fit` has no option for them) and a size limit of its own."""
    import render_core as rc
    from studio.batch.worker import run_fit

    row = parse({"fits": [{"name": "d", "demo": True, "steps": 1, "limits": {"faces": 10**6},
                           "settings": {"sigma": 2e-4, "camera_views": [0]}}]},
                folder / "m.json")[0]
    before = rc.get_limits()
    res = run_fit(row.name, row.fit_argv("{IN}"), row.extra_settings(), {}, 1)
    assert res["status"] == "done", res["error"]
    assert rc.get_limits() == before
    config = json.loads(res["files"]["history.json"])["config"]
    assert config["sigma"] == 2e-4 and config["camera_views"] == [0]
    assert res["steps"] == 1 and {"mesh.obj", "mesh.glb", "contact_sheet.png"} <= set(res["files"])
    bad = run_fit("x", ["--demo", "--steps", "1"], {"sigma": -1.0}, {}, 1)
    assert bad["status"] == "failed" and "sigma" in bad["error"]


def test_model_schedule_and_shape_preset_settings(folder):
    """The FitConfig fields that came after batch: checked per row and field, both forms of a
    schedule give the same row (and key), and each maps to its `fit` option."""
    settings = {"model": "dibr+aa", "resolution_schedule": "16:0,32:3", "shape_preset": "lit"}
    a = parse({"fits": [{**_good(), "settings": settings}]}, folder / "m.json")[0]
    listed = {**settings, "resolution_schedule": [[16, 0], [32, 3]]}
    b = parse({"fits": [{**_good(), "settings": listed}]}, folder / "m.json")[0]
    assert a.spec["settings"]["resolution_schedule"] == [[16, 0], [32, 3]]
    assert a.key() == b.key() and settings["resolution_schedule"] == "16:0,32:3"
    argv = a.fit_argv()
    assert {"--model=dibr+aa", "--resolution-schedule=16:0,32:3",
            "--shape-preset=lit"} <= set(argv)
    off = parse({"defaults": {"settings": listed},
                 "fits": [{**_good(), "settings": {"resolution_schedule": None}}]},
                folder / "m.json")[0]
    assert "--resolution-schedule=off" in off.fit_argv()
    bad = [{**_good(f"r{i}"), "settings": s} for i, s in enumerate([
        {"model": "nerf"},
        {"resolution_schedule": "64:0,32:0"},
        {"resolution_schedule": [[64, 0], [4, 10]]},
        {"resolution_schedule": [64, 0]},
        {"shape_preset": "glossy"},
        {"shading": "lambertian", "model": "softras"},
        {"model": "softras", "resolution_schedule": "16:0"},
    ])]
    with pytest.raises(ManifestError) as info:
        parse({"fits": bad}, folder / "m.json")
    assert [(r, f) for r, f, _ in info.value.problems] == [
        (1, "settings.model"), (2, "settings.resolution_schedule"),
        (3, "settings.resolution_schedule"), (4, "settings.resolution_schedule"),
        (5, "settings.shape_preset"), (6, "settings.model")]
    assert "nerf" not in FIT_MODELS and "dibr+aa" in str(info.value)


def test_worker_runs_model_and_schedule_as_fit_does(folder, tmp_path):
    """A demo row with a model and a schedule through the worker's code path (no Ray) gives
    the losses of `dibr-studio fit` with the same options, and its config says so."""
    from studio.batch.worker import run_fit

    row = parse({"fits": [{"name": "d", "demo": True, "steps": 3,
                           "settings": {"model": "dibr+aa", "resolution": 16,
                                        "resolution_schedule": [[16, 0], [24, 2]]}}]},
                folder / "m.json")[0]
    res = run_fit(row.name, row.fit_argv("{IN}"), row.extra_settings(), {}, 1)
    assert res["status"] == "done", res["error"]
    config = json.loads(res["files"]["history.json"])["config"]
    assert config["model"] == "dibr+aa"
    assert config["resolution_schedule"] == [[16, 0], [24, 2]]
    assert main(["fit", "--demo", "--steps", "3", "--model", "dibr+aa", "--resolution", "16",
                 "--resolution-schedule", "16:0,24:2", "--quiet", "--out",
                 str(tmp_path / "cli")]) == 0
    cli = json.loads((tmp_path / "cli" / "history.json").read_text())
    assert len(res["history"]) == 3 and np.isfinite(np.array(res["history"], float)).all()
    np.testing.assert_allclose(res["history"], [m["total"] for m in cli["history"]],
                               rtol=0, atol=1e-6)


def _csv(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_csv_manifest_is_the_json_manifest(folder):
    """A CSV row and its JSON row are one fit: the same checked spec, argv and key."""
    (folder / "set").mkdir()
    for n in ("0.png", "1.png"):
        shutil.copy(folder / "a.png", folder / "set" / n)
    (folder / "set" / "views.json").write_text(json.dumps({"0.png": [0, 10, 3],
                                                           "1.png": [90, 10, 3, 40]}))
    path = _csv(folder / "m.csv", [
        "name,mesh,targets,steps,optimize,settings.resolution,settings.resolution_schedule,"
        "settings.camera_views,lr.vertices,weights.laplacian,demo",
        'mug,start.obj,"a.png:0,10,3;b.png:90,-10,3,50:a.png",7,"vertices,colors",32,'
        '"16:0,32:3",[0],0.02,0.5,',
        "007,,set,,,,,,,,FALSE",
        "d,,,2,,,,,,,TRUE",
    ])
    doc = {"fits": [
        {"name": "mug", "mesh": "start.obj", "steps": 7, "optimize": ["vertices", "colors"],
         "targets": [{"image": "a.png", "view": [0, 10, 3]},
                     {"image": "b.png", "view": [90, -10, 3, 50], "mask": "a.png"}],
         "settings": {"resolution": 32, "resolution_schedule": [[16, 0], [32, 3]],
                      "camera_views": [0]},
         "lr": {"vertices": 0.02}, "weights": {"laplacian": 0.5}},
        {"name": "007", "demo": False, "targets": [{"image": "set/0.png", "view": [0, 10, 3]},
                                                   {"image": "set/1.png",
                                                    "view": [90, 10, 3, 40]}]},
        {"name": "d", "steps": 2, "demo": True}]}
    got, want = load(path), parse(doc, folder / "m.json")
    assert [r.name for r in got] == ["mug", "007", "d"]
    for g, w in zip(got, want, strict=True):
        assert g.fit_argv() == w.fit_argv() and g.key() == w.key()
        assert g.extra_settings() == w.extra_settings()
    assert got[0].spec["targets"][1]["view"] == [90.0, -10.0, 3.0, 50.0]


def test_csv_manifest_problems_by_row_and_column(folder, capsys):
    head = "name,mesh,targets,steps,settings.resolution"
    path = _csv(folder / "m.csv", [
        head,
        'ok,start.obj,"a.png:0,10,3",5,32',
        'bad-steps,start.obj,"a.png:0,10,3",abc,32',
        'bad-target,start.obj,"a.png:0,10,3;b.png",5,32',
        'missing,start.obj,"gone.png:0,10,3",5,3',
        'cells,start.obj,"a.png:0,10,3",5,32,extra',
        'nofolder,,nowhere,5,',
    ])
    with pytest.raises(ManifestError) as info:
        load(path)
    got = [(r, f) for r, f, _ in info.value.problems]
    assert got == [(2, "steps"), (3, "targets[2]"), (4, "targets[1].image"),
                   (4, "settings.resolution"), (5, "row"), (6, "targets[1]")]
    msg = str(info.value)
    assert msg.startswith("m.csv: 5 bad rows: row 2 steps: expected a whole number")
    assert "row 3 targets[2]: 'b.png': expected IMAGE:AZ,EL,DIST" in msg
    out = folder / "out"
    assert main(["batch", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("dibr-studio: error: m.csv: 5 bad rows")
    assert not out.exists()
    _csv(path, ["name,targets,stesp", "x,,5"])
    with pytest.raises(ManifestError, match="unknown column 'stesp'"):
        load(path)
    _csv(path, ["mesh,targets", "start.obj,a.png:0,0,3"])
    with pytest.raises(ManifestError, match="no name column"):
        load(path)
    (folder / "views_less").mkdir()
    _csv(path, ["name,targets", "x,views_less"])
    with pytest.raises(ManifestError, match="row 1 targets: views_less: a targets folder "
                                            "needs a views.json"):
        load(path)


def test_photo_rows_are_checked_by_row_and_field(folder):
    (folder / "photos").mkdir()
    shutil.copy(folder / "a.png", folder / "photos" / "p0.png")
    (folder / "empty").mkdir()
    good = {"name": "p", "photos": "photos", "cameras": "auto", "steps": 2}
    row = parse({"fits": [good]}, folder / "m.json")[0]
    assert set(row.inputs) == {"photoset/p0.png"}
    assert row.fit_argv("IN")[:4] == ["--photos", "IN/photoset", "--cameras", "auto"]
    rows = [
        {**good, "name": "a", "photos": "nowhere"},
        {**good, "name": "b", "photos": "empty"},
        {**good, "name": "c", "cameras": "nowhere.json", "masks": "nomasks"},
        {**good, "name": "d", "targets": [{"image": "a.png", "view": [0, 0, 3]}],
         "init": "mesh", "max_side": 8, "refine_cameras": "yes"},
        {"name": "e", "mesh": "start.obj", "cameras": "auto", "texture_steps": 3,
         "targets": [{"image": "a.png", "view": [0, 0, 3]}]},
        good,
    ]
    with pytest.raises(ManifestError) as info:
        parse({"fits": rows}, folder / "m.json")
    assert [(r, f) for r, f, _ in info.value.problems] == [
        (1, "photos"), (2, "photos"), (3, "cameras"), (3, "masks"), (4, "mesh"),
        (4, "targets"), (4, "init"), (4, "max_side"), (4, "refine_cameras"), (5, "cameras"),
        (5, "texture_steps")]
    msg = str(info.value)
    assert "row 1 photos: not a folder: nowhere" in msg and "row 2 photos: empty: no photos" in msg
    assert "row 5 cameras: needs photos" in msg


def test_photo_row_runs_as_fit_photos(tmp_path):
    """A photo-folder row through the worker's code path (no Ray): its photos, masks and
    transforms.json travel as bytes into the worker's own folder, and the fit gives the losses
    of `dibr-studio fit --photos` run on the files where they lie (a tiny synthetic set)."""
    from _photoset import render_photoset

    from render_core.camera_io import write_transforms
    from studio.batch.worker import run_fit

    ps = render_photoset(8, 160, 120)
    ps.save_photos(tmp_path / "set" / "photos", tmp_path / "set" / "masks")
    write_transforms(tmp_path / "set" / "photos" / "transforms.json", ps.records)
    opts = {"max_side": 64, "steps": 3, "texture_steps": 2, "hull_resolution": 24,
            "hull_faces": 400}
    row = parse({"fits": [{"name": "p", "photos": "set/photos", "masks": "set/masks",
                           "cameras": "set/photos/transforms.json", **opts,
                           "settings": {"resolution": 32, "texture_size": 16}}]},
                tmp_path / "m.json")[0]
    assert len(row.inputs) == 2 * 8 + 1 and all(n.startswith("photoset/")
                                                for n in row.inputs)
    blobs = {n: p.read_bytes() for n, p in row.inputs.items()}
    res = run_fit(row.name, row.fit_argv("{IN}"), row.extra_settings(), blobs, 1)
    assert res["status"] == "done", res["error"]
    assert res["steps"] == 5 and "cameras/transforms.json" in res["files"]
    argv = ["fit", "--photos", str(tmp_path / "set" / "photos"), "--masks",
            str(tmp_path / "set" / "masks"), "--cameras",
            str(tmp_path / "set" / "photos" / "transforms.json"), "--resolution", "32",
            "--texture-size", "16", "--quiet", "--out", str(tmp_path / "cli")]
    for k, v in opts.items():
        argv += ["--" + k.replace("_", "-"), str(v)]
    assert main(argv) == 0
    cli = json.loads((tmp_path / "cli" / "history.json").read_text())["history"]
    assert np.isfinite(np.array(res["history"], float)).all()
    np.testing.assert_allclose(res["history"], [m["total"] for m in cli], rtol=0, atol=1e-6)
    assert set(res["files"]) == {p.relative_to(tmp_path / "cli").as_posix()
                                 for p in (tmp_path / "cli").rglob("*") if p.is_file()}


def test_csv_photo_rows_are_the_json_rows(folder):
    (folder / "photos").mkdir()
    (folder / "masks").mkdir()
    shutil.copy(folder / "a.png", folder / "photos" / "p0.png")
    shutil.copy(folder / "b.png", folder / "masks" / "p0.png")
    path = _csv(folder / "m.csv", [
        "name,photos,cameras,masks,max_side,texture_steps,refine_cameras,settings.shape_preset",
        "shoe,photos,auto,masks,64,4,true,silhouette",
        "boot,photos,,,,,,",
    ])
    got = load(path)
    want = parse({"fits": [
        {"name": "shoe", "photos": "photos", "cameras": "auto", "masks": "masks",
         "max_side": 64, "texture_steps": 4, "refine_cameras": True,
         "settings": {"shape_preset": "silhouette"}},
        {"name": "boot", "photos": "photos"}]}, folder / "m.json")
    for g, w in zip(got, want, strict=True):
        assert g.fit_argv("IN") == w.fit_argv("IN") and g.key() == w.key()
    assert got[0].fit_argv("IN") == [
        "--photos", "IN/photoset/photos", "--cameras", "auto", "--masks", "IN/photoset/masks",
        "--max-side", "64", "--texture-steps", "4", "--refine-cameras",
        "--shape-preset=silhouette"]
    assert set(got[0].inputs) == {"photoset/photos/p0.png", "photoset/masks/p0.png"}
