"""``dibr-studio batch`` on a real local Ray instance of 2 CPUs (shared by the module's tests):
results equal to ``dibr-studio fit``, a failing row, a killed worker, skip and resume."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import ray  # the batch extra; the test extra installs it
from _batch_scene import write_manifest, write_scene

import render_core as rc
import studio.batch as sb
from studio.__main__ import main

STEPS = 6


def _descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.add(c)
            todo.append(c)
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def ray_local():
    before = _descendants(os.getpid())
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no network
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        started = _descendants(os.getpid()) - before
        ray.shutdown()
        deadline = time.monotonic() + 60  # bounds the wait only; no speed is asserted
        while any(map(_alive, started)) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = [p for p in started if _alive(p)]
        assert started, "Ray started no processes of its own?"
        assert not left, f"processes left behind by Ray: {left}"


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return write_scene(tmp_path_factory.mktemp("scene"))


# name -> (row fields, the same fit as `dibr-studio fit` arguments)
ROWS = {
    "mesh": ({"mesh": "start.obj"}, ["--mesh", "start.obj"]),
    "sphere_lr": ({"subdivisions": 1, "lr": {"vertices": 0.02}},
                  ["--subdivisions", "1", "--lr", "vertices=0.02"]),
    "vertices_only": ({"mesh": "start.obj", "optimize": ["vertices"],
                       "weights": {"laplacian": 0.5}},
                      ["--mesh", "start.obj", "--optimize", "vertices", "--weight",
                       "laplacian=0.5"]),
    "lambertian": ({"subdivisions": 2, "optimize": "vertices,colors,light",
                    "settings": {"shading": "lambertian"}},
                   ["--subdivisions", "2", "--optimize", "vertices,colors,light",
                    "--shading", "lambertian"]),
    "large_steps": ({"mesh": "start.obj", "settings": {"large_steps": 19.0,
                                                       "views_per_step": 2}},
                    ["--mesh", "start.obj", "--large-steps", "19", "--views-per-step", "2"]),
    "hull": ({"init": "hull", "hull_resolution": 24, "hull_faces": 300},
             ["--init", "hull", "--hull-resolution", "24", "--hull-faces", "300"]),
}


def _doc(scene, names, **extra_rows) -> dict:
    targets = [{"image": p.name, "view": list(v)} for p, v in zip(scene["images"],
                                                                  scene["views"], strict=True)]
    fits = [{"name": n, **ROWS[n][0]} for n in names]
    fits += [{"name": n, **row} for n, row in extra_rows.items()]
    return {"defaults": {"targets": targets, "steps": STEPS, "settings": {"resolution": 32}},
            "fits": fits}


def _cli_fit(scene, name: str, out: Path) -> Path:
    folder = scene["start"].parent
    argv = ["fit"] + [str(folder / a) if a == "start.obj" else a for a in ROWS[name][1]]
    for p, v in zip(scene["images"], scene["views"], strict=True):
        argv += ["--target", str(p), "--view=" + ",".join(map(str, v))]
    argv += ["--resolution", "32", "--steps", str(STEPS), "--quiet", "--out", str(out / name)]
    assert main(argv) == 0
    return out / name


def _history(folder: Path) -> list[dict]:
    return json.loads((folder / "history.json").read_text())["history"]


def _assert_same_fit(batch: Path, cli: Path, steps: int = STEPS) -> None:
    hb, hc = _history(batch), _history(cli)
    assert len(hc) == steps and len(hb) >= steps
    for b, c in zip(hb[:steps], hc, strict=True):  # every term of every step
        for k, v in c.items():
            if isinstance(v, float):
                assert b[k] == pytest.approx(v, abs=1e-6, rel=0), (k, b["step"])
            else:
                assert b[k] == v, k
    if len(hb) == steps:
        for suffix in ("ply", "obj"):
            mb, mc = rc.load_mesh(batch / f"mesh.{suffix}"), rc.load_mesh(cli / f"mesh.{suffix}")
            np.testing.assert_allclose(mb.vertices.numpy(), mc.vertices.numpy(), atol=1e-6)
            assert (mb.faces == mc.faces).all()


def test_batch_equals_fit_and_a_bad_row_fails_alone(ray_local, scene, tmp_path, capsys):
    doc = _doc(scene, list(ROWS), garbage={"mesh": "garbage.obj"})
    manifest = write_manifest(scene["start"].parent / "all.json", doc)
    events = []
    result = sb.run(manifest, tmp_path / "batch", on_event=lambda k, n, i: events.append((k, n)))
    assert sorted(result.by_status("done")) == sorted(ROWS)
    assert result.by_status("failed") == ["garbage"]
    rec = {r["name"]: r for r in result.records}
    assert "garbage.obj" in rec["garbage"]["error"] and "out of range" in rec["garbage"]["error"]
    assert not (tmp_path / "batch" / "garbage").exists()
    for name in ROWS:
        _assert_same_fit(tmp_path / "batch" / name, _cli_fit(scene, name, tmp_path / "cli"))
        assert rec[name]["steps"] == STEPS and rec[name]["attempts"] == 1
        assert rec[name]["losses"]["total"] == pytest.approx(
            _history(tmp_path / "cli" / name)[-1]["total"], abs=1e-6, rel=0)
    assert {n for k, n in events if k == "start"} == {*ROWS, "garbage"}

    # the report: summary.json/csv with every row, report.html offline (no http) and sortable
    summary = json.loads((tmp_path / "batch" / "summary.json").read_text())["fits"]
    assert [f["name"] for f in summary] == [*ROWS, "garbage"]
    csv_lines = (tmp_path / "batch" / "summary.csv").read_text().splitlines()
    assert csv_lines[0].startswith("name,row,status,steps,loss_total") and len(csv_lines) == 8
    page = (tmp_path / "batch" / "report.html").read_text()
    assert "http" not in page and "sortBy(2, true)" in page
    for name in ROWS:
        assert f'src="{name}/contact_sheet.png"' in page
        assert (tmp_path / "batch" / name / "contact_sheet.png").is_file()

    # run it again: everything finished is skipped (no task runs), the bad row runs again
    result = sb.run(manifest, tmp_path / "batch")
    assert result.ran == [] and sorted(result.skipped) == sorted(ROWS)
    assert result.by_status("failed") == ["garbage"]
    # the command line: the same, exit status 1 as a row failed, the failure on stderr
    assert main(["batch", str(manifest), "--out", str(tmp_path / "batch"), "--quiet"]) == 1
    assert "garbage (row 7)" in capsys.readouterr().err
    # without the bad row nothing runs at all; a changed row (its key) runs again alone
    doc["fits"] = [f for f in doc["fits"] if f["name"] != "garbage"]
    doc["fits"][1]["lr"] = {"vertices": 0.03}
    result = sb.run(write_manifest(manifest, doc), tmp_path / "batch")
    assert result.ran == ["sphere_lr"] and len(result.skipped) == len(ROWS) - 1


def test_killed_worker_is_retried_and_completes(ray_local, scene, tmp_path):
    doc = _doc(scene, ["mesh"])
    doc["fits"][0]["steps"] = 40  # long enough to be killed mid-fit
    manifest = write_manifest(scene["start"].parent / "kill.json", doc)
    killed = []

    def on_event(kind, name, info):
        if kind == "step" and not killed and info["step"] < info["steps"]:
            os.kill(info["pid"], signal.SIGKILL)
            killed.append(info["pid"])

    result = sb.run(manifest, tmp_path / "batch", retries=2, on_event=on_event)
    assert killed
    rec = result.records[0]
    assert rec["status"] == "done" and rec["attempts"] == 2 and rec["steps"] == 40
    assert not rec["worker"].endswith(f":{killed[0]}")  # a new worker finished it
    # the retried fit is the fit: its first steps equal `dibr-studio fit`'s
    _assert_same_fit(tmp_path / "batch" / "mesh", _cli_fit(scene, "mesh", tmp_path / "cli"))


def test_dead_worker_with_no_retries_left_is_failed(ray_local, scene, tmp_path):
    doc = _doc(scene, ["mesh"])
    doc["fits"][0]["steps"] = 40
    manifest = write_manifest(scene["start"].parent / "kill0.json", doc)

    def on_event(kind, name, info):
        if kind == "step" and info["step"] < info["steps"]:
            with contextlib.suppress(ProcessLookupError):  # a report queued before the kill
                os.kill(info["pid"], signal.SIGKILL)

    result = sb.run(manifest, tmp_path / "batch", retries=0, on_event=on_event)
    rec = result.records[0]
    assert rec["status"] == "failed" and "worker died" in rec["error"]
    assert not (tmp_path / "batch" / "mesh").exists()


def test_interrupted_run_resumes_with_only_the_rest(ray_local, scene, tmp_path):
    names = ["mesh", "sphere_lr"]
    manifest = write_manifest(scene["start"].parent / "resume.json", _doc(scene, names))
    first = []

    def interrupt(kind, name, info):
        if kind == "done":
            first.append(name)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sb.run(manifest, tmp_path / "batch", on_event=interrupt)
    assert len(first) == 1
    out = tmp_path / "batch"
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == first  # nothing half-written
    summary = json.loads((out / "summary.json").read_text())["fits"]
    assert {f["name"]: f["status"] for f in summary}[first[0]] == "done"
    result = sb.run(manifest, out)
    assert result.skipped == first
    assert sorted(result.ran) == sorted(set(names) - set(first))
    assert sorted(result.by_status("done")) == sorted(names)
