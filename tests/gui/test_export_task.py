"""Exports in a child process leave no temporaries behind: what a killed export left in the
destination folder goes with the next export there, and nothing else does."""

from __future__ import annotations

import os
import sys
import time

import pytest

import render_core as rc
from studio.model.demo import demo_object
from studio.qt.export_task import STALE_AFTER, ExportTask, sweep_stale_temps


def _aged(path, seconds: float):
    path.write_bytes(b"half a file")
    t = time.time() - seconds
    os.utime(path, (t, t))
    return path


def test_sweep_takes_only_old_export_temporaries(tmp_path):
    old = STALE_AFTER + 60
    stale = [_aged(tmp_path / name, old) for name in
             (".m.0badf00d.tmp.obj", ".m.0badf00d.tmp.mtl", ".m.12345678.tmp.png",
              ".other.deadbeef.tmp.PLY", ".x.y.abcdef01.tmp.glb")]
    kept = [_aged(tmp_path / name, old) for name in
            ("m.obj", ".m.0badf00d.tmp.txt", ".m.0badf00d.tmp", ".m.0badf00.tmp.obj",
             "m.0badf00d.tmp.obj", ".m.0BADF00D.tmp.obj", ".autosave.0badf00d.tmp.zip",
             ".m.0badf00d.tmp.obj.bak")]
    fresh = _aged(tmp_path / ".m.aaaaaaaa.tmp.obj", STALE_AFTER / 2)  # a live export's, maybe
    (tmp_path / ".d.bbbbbbbb.tmp.obj").mkdir()
    os.utime(tmp_path / ".d.bbbbbbbb.tmp.obj", (time.time() - old,) * 2)
    assert sorted(sweep_stale_temps(tmp_path)) == sorted(stale)
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept) and fresh.exists()
    assert (tmp_path / ".d.bbbbbbbb.tmp.obj").is_dir()
    assert sweep_stale_temps(tmp_path / "missing") == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="open files are read from /proc")
def test_sweep_keeps_a_temporary_a_process_holds_open(tmp_path):
    held = _aged(tmp_path / ".m.0badf00d.tmp.obj", STALE_AFTER + 60)
    with open(held, "rb"):
        assert sweep_stale_temps(tmp_path) == []
    assert sweep_stale_temps(tmp_path) == [held]


def test_next_export_to_the_folder_removes_what_a_killed_one_left(qtbot, tmp_path):
    leftovers = [_aged(tmp_path / name, STALE_AFTER + 60) for name in
                 (".out.0badf00d.tmp.obj", ".out.0badf00d.tmp.png", ".older.12345678.tmp.glb")]
    young = _aged(tmp_path / ".out.cafebabe.tmp.obj", 5.0)
    task = ExportTask()
    written = []
    task.finished.connect(written.extend)
    with qtbot.waitSignal(task.finished, timeout=120000):  # delivered: no callback pending
        task.start(demo_object(1), tmp_path / "new.ply")
    assert written == [tmp_path / "new.ply"] and rc.load_mesh(written[0]).num_faces > 0
    assert sorted(task.swept) == sorted(leftovers)
    assert not any(p.exists() for p in leftovers) and young.exists()
    assert {p.name for p in tmp_path.iterdir()} == {"new.ply", young.name}
