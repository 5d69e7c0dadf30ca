"""Saved sessions: exact continuation (in memory, in a fresh process, through the fit process),
atomic saves under SIGKILL, and bad session files refused with the session left untouched."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from studio.model.demo import demo_scene
from studio.model.session import Session
from studio.model.store import SessionFileError, read_session

ROOT = Path(__file__).resolve().parents[1]


def make_session(tmp_path: Path) -> Session:
    """Two rendered (float) targets and one 8-bit PNG target, every group that has Adam
    moments worth keeping on: vertices, colours, light and camera."""
    mesh, targets, config = demo_scene(resolution=32, start_subdivisions=2)
    img = np.zeros((32, 32, 4), np.uint8)
    img[8:24, 6:26] = (30, 200, 90, 255)
    Image.fromarray(img).save(tmp_path / "photo.png")
    s = Session()
    s.set_mesh(mesh, "start")
    s.set_targets(targets[:2])
    s.add_target(tmp_path / "photo.png", 30.0, 10.0, 3.2, 45.0)
    config.resolution = 24
    config.shading = "lambertian"
    config.backend = "torch"
    for g in ("vertices", "colors", "light", "camera"):
        config.groups[g].enabled = True
    s.set_config(config)
    return s


def test_reopened_session_continues_with_the_same_loss_curve(tmp_path):
    n = 4
    straight = make_session(tmp_path)
    curve = [straight.step()["total"] for _ in range(n + 2)]

    s = make_session(tmp_path)
    for _ in range(n):
        s.step()
    path = s.save(tmp_path / "fit.zip")
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        doc = json.loads(z.read("session.json"))
    assert "arrays.npz" in names and "targets/002_image.png" in names
    assert doc["version"] == 2 and doc["fit"]["steps"] == n
    assert set(doc["fit"]["optimizer"]) == {"vertices", "colors", "light", "camera"}

    reopened = Session()
    reopened.open(path)
    assert reopened.steps == n and [m["total"] for m in reopened.history] == curve[:n]
    assert reopened.config == s.config and reopened.mesh_name == "start"
    nxt = [reopened.step()["total"] for _ in range(2)]
    assert nxt == pytest.approx(curve[n:], rel=1e-6, abs=1e-7)

    # The moments matter: the same parameters with a fresh optimizer take another path.
    fresh = Session()
    fresh.open(path)
    f = fresh.fitter()
    f.restore({"state": f.state(), "config": fresh.config.to_dict(), "optimizer": {}})
    fresh.step()
    assert abs(fresh.step()["total"] - curve[n + 1]) > 1e-5

    # A fresh interpreter: nothing can leak through memory.
    code = textwrap.dedent(f"""
        import json, torch
        torch.set_num_threads(1)
        from studio.model.session import Session
        s = Session()
        s.open({str(path)!r})
        print(json.dumps([s.step()["total"] for _ in range(2)]))
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == pytest.approx(
        curve[n:], rel=1e-6, abs=1e-7)


def test_fit_process_checkpoint_resumes_in_a_new_fit_process(tmp_path):
    from studio.model.fitproc import FitProcess
    from studio.model.runner import ProcessRunner

    n = 3
    straight = make_session(tmp_path)
    curve = [straight.step()["total"] for _ in range(n + 1)]
    s = make_session(tmp_path)
    s.use_runner(ProcessRunner())  # the studio's way: the fit runs in a child process
    try:
        assert [s.step()["total"] for _ in range(n)] == pytest.approx(curve[:n], rel=1e-6,
                                                                       abs=1e-7)
        ckpt = s.checkpoint()
        assert ckpt["optimizer"]["camera"]["moments"][0] is not None
        path = s.save(tmp_path / "gui.zip")
    finally:
        s.runner.close()
    reopened = Session()
    reopened.open(path)
    gen = reopened.generation
    resume = reopened.resume_checkpoint(gen)
    assert resume is not None and reopened.resume_checkpoint(gen - 1) is None
    proc = FitProcess()
    try:
        proc.call("problem", gen, reopened.initial_mesh, reopened.targets, reopened.config,
                  resume)
        assert proc.call("step")[2].loss == pytest.approx(curve[n], rel=1e-6, abs=1e-7)
    finally:
        proc.close()


_SAVER = """
import sys, torch
torch.set_num_threads(1)
from studio.model.session import Session
a, b = Session(), Session()
a.open(sys.argv[1]); b.open(sys.argv[1]); b.step()
print("ready", flush=True)
i = 0
while True:
    (a if i % 2 else b).save(sys.argv[2])
    i += 1
"""


def test_killing_a_save_leaves_the_old_or_the_new_file(tmp_path):
    s = make_session(tmp_path)
    s.set_option(resolution=16)
    for _ in range(2):
        s.step()
    src = s.save(tmp_path / "src.zip")
    dst = tmp_path / "dst.zip"
    s.save(dst)
    rng = random.Random(6)
    seen = set()
    for _ in range(3):
        child = subprocess.Popen([sys.executable, "-c", _SAVER, str(src), str(dst)], cwd=ROOT,
                                 stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout.readline().strip() == "ready"
            child.stdout.close()
            # Saves take milliseconds: a random moment mostly lands inside one.
            time.sleep(rng.uniform(0.05, 0.4))
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
        data = read_session(dst)  # never a broken file
        steps = data.checkpoint["state"]["steps"]
        assert steps in (2, 3) and len(data.history) == steps
        seen.add(steps)
    leftovers = [p.name for p in tmp_path.glob(".dst.*")]
    print(f"versions seen after kills: {sorted(seen)}; interrupted saves: {len(leftovers)}")


@pytest.fixture
def saved(tmp_path):
    s = make_session(tmp_path)
    s.step()
    return s.save(tmp_path / "good.zip")


def _rewrite(src: Path, dst: Path, drop: str | None = None, add: dict | None = None,
             replace: dict | None = None) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename == drop:
                continue
            data = (replace or {}).get(info.filename, zin.read(info))
            zout.writestr(info.filename, data)
        for name, data in (add or {}).items():
            zout.writestr(zipfile.ZipInfo(name), data)
    return dst


def _npz_with(src: Path, **arrays) -> bytes:
    import io

    with zipfile.ZipFile(src) as z, np.load(io.BytesIO(z.read("arrays.npz"))) as npz:
        d = {k: npz[k] for k in npz.files}
    d.update(arrays)
    buf = io.BytesIO()
    np.savez(buf, **d)
    return buf.getvalue()


def test_bad_session_files_are_refused_and_leave_the_session_untouched(saved, tmp_path):
    s = make_session(tmp_path)
    s.step()
    before = (s.initial_mesh, list(s.targets), s.config, list(s.history), s.generation,
              s.current_mesh().vertices.clone())
    manifest = json.loads(zipfile.ZipFile(saved).read("session.json"))
    newer = dict(manifest, version=99)
    no_targets = dict(manifest, targets="nope")
    obj = np.empty(2, dtype=object)
    cases = {
        "missing_npz.zip": (_rewrite(saved, tmp_path / "missing_npz.zip", drop="arrays.npz"),
                            "missing member arrays.npz"),
        "missing_png.zip": (_rewrite(saved, tmp_path / "missing_png.zip",
                                     drop="targets/002_mask.png"), "missing member"),
        "traversal.zip": (_rewrite(saved, tmp_path / "traversal.zip",
                                   add={"../evil.txt": b"x"}), "unsafe path"),
        "absolute.zip": (_rewrite(saved, tmp_path / "absolute.zip",
                                  add={"/tmp/evil.txt": b"x"}), "unsafe path"),
        "newer.zip": (_rewrite(saved, tmp_path / "newer.zip",
                               replace={"session.json": json.dumps(newer)}), "newer"),
        "targets.zip": (_rewrite(saved, tmp_path / "targets.zip",
                                 replace={"session.json": json.dumps(no_targets)}),
                        "must be a list"),
        "nan.zip": (_rewrite(saved, tmp_path / "nan.zip", replace={"arrays.npz": _npz_with(
            saved, **{"fit.state.offset": np.full((162, 3), np.nan, np.float32)})}),
            "non-finite"),
        "shape.zip": (_rewrite(saved, tmp_path / "shape.zip", replace={"arrays.npz": _npz_with(
            saved, **{"fit.opt.vertices.0.exp_avg": np.zeros((5, 3), np.float32)})}),
            "vertices.exp_avg"),
        "pickle.zip": (_rewrite(saved, tmp_path / "pickle.zip", replace={
            "arrays.npz": _npz_with(saved, evil=obj)}), "damaged"),
        "text.zip": (tmp_path / "text.zip", "not a session file"),
        "missing.zip": (tmp_path / "missing.zip", "file not found"),
    }
    (tmp_path / "text.zip").write_text("hello")
    for name, (path, problem) in cases.items():
        with pytest.raises(SessionFileError) as e:
            s.open(path)
        msg = str(e.value)
        assert msg.startswith(name) and problem in msg and "\n" not in msg, msg
    assert not (tmp_path.parent / "evil.txt").exists()
    assert s.initial_mesh is before[0] and s.targets == before[1] and s.config == before[2]
    assert s.history == before[3] and s.generation == before[4]
    assert np.array_equal(s.current_mesh().vertices, before[5])


def test_an_unpacked_session_folder_opens(saved, tmp_path):
    folder = tmp_path / "unpacked"
    with zipfile.ZipFile(saved) as z:
        z.extractall(folder)
    s = Session()
    s.open(folder)
    assert s.steps == 1 and len(s.targets) == 3 and len(s.history) == 1


def test_a_textured_fit_continues_exactly(tmp_path):
    def textured():
        s = make_session(tmp_path)
        s.set_option(resolution=16, texture_size=16)
        s.set_group("texture", enabled=True)
        return s

    straight = textured()
    curve = [straight.step()["total"] for _ in range(3)]
    s = textured()
    for _ in range(2):
        s.step()
    path = s.save(tmp_path / "tex.zip")
    back = Session()
    back.open(path)
    assert back.fitter().tex_logit.shape == (16, 16, 3)
    assert back.step()["total"] == pytest.approx(curve[2], rel=1e-6, abs=1e-7)


def test_malformed_manifests_give_one_clear_error(saved, tmp_path):
    doc = json.loads(zipfile.ZipFile(saved).read("session.json"))

    def variant(change):
        d = json.loads(json.dumps(doc))
        change(d)
        return json.dumps(d)

    manifests = {
        "groups": variant(lambda d: d["config"].update(groups=[])),
        "config": variant(lambda d: d.update(config="fast")),
        "fitconfig": variant(lambda d: d["fit"]["config"].update(groups=[1])),
        "history": variant(lambda d: d.update(history=[[1]])),
        "azimuth": variant(lambda d: d["targets"][0].update(azimuth="north")),
        "image": variant(lambda d: d["targets"][2].update(image={"png": "../x.png"})),
        "state": variant(lambda d: d["fit"].update(state=["bogus"])),
        "lr": variant(lambda d: d["fit"]["optimizer"]["vertices"].update(lr="fast")),
        "steps": variant(lambda d: d["fit"].update(steps=-1)),
        "format": variant(lambda d: d.update(format="other")),
        "nested": "[" * 100000,
    }
    for name, text in manifests.items():
        path = _rewrite(saved, tmp_path / f"{name}.zip", replace={"session.json": text})
        with pytest.raises(SessionFileError) as e:
            read_session(path)
        assert str(e.value).startswith(f"{name}.zip: ") and "\n" not in str(e.value)
