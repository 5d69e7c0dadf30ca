"""studio.model.autosave (no Qt): autosave when changed, clean exit, recovery after a SIGKILL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_session_store import make_session

from studio.model.autosave import ENV_VAR, Autosaver, data_dir
from studio.model.session import Session

ROOT = Path(__file__).resolve().parents[1]


def test_data_dir_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "d"))
    assert data_dir("/elsewhere") == tmp_path / "d"
    monkeypatch.delenv(ENV_VAR)
    assert data_dir(tmp_path / "x") == tmp_path / "x"


def test_autosave_writes_when_changed_and_a_clean_exit_leaves_nothing_to_recover(tmp_path):
    folder = tmp_path / "data"
    empty = Autosaver(Session(), folder)
    empty.start()
    assert empty.save() is None  # nothing loaded, nothing to save
    empty.finish()
    s = make_session(tmp_path)
    saver = Autosaver(s, folder)
    assert not saver.recoverable()
    saver.start()
    assert saver.marker.is_file() and not saver.recoverable()  # this process is alive
    assert saver.save() is None  # unchanged since start
    s.step()
    assert saver.save() == saver.path and saver.path.is_file()
    assert saver.save() is None
    s.set_option(resolution=20)
    s.step()
    saver.finish()
    assert not saver.marker.exists()
    back = Session()
    back.open(saver.path)
    assert back.steps == 2 and back.config.resolution == 20
    assert not Autosaver(Session(), folder).recoverable()


def test_recovery_after_a_kill_continues_the_fit(tmp_path):
    n = 3
    straight = make_session(tmp_path)
    curve = [straight.step()["total"] for _ in range(n + 1)]
    folder = tmp_path / "data"
    code = textwrap.dedent(f"""
        import os, signal, sys, torch
        from pathlib import Path
        torch.set_num_threads(1)
        sys.path.insert(0, {str(ROOT / "tests")!r})
        from test_session_store import make_session
        from studio.model.autosave import Autosaver
        s = make_session(Path({str(tmp_path)!r}))
        saver = Autosaver(s, {str(folder)!r})
        saver.start()
        for _ in range({n}):
            s.step()
        saver.save()
        s.step()  # work after the last autosave is lost with the crash
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=120)
    assert proc.returncode == -9
    interrupted = folder / ".autosave.0badf00d.tmp.zip"  # as a kill mid-save leaves it
    interrupted.write_bytes(b"PK")
    s = Session()
    saver = Autosaver(s, folder)
    assert saver.recoverable()
    saver.recover()
    assert s.steps == n and len(s.history) == n
    assert s.step()["total"] == pytest.approx(curve[n], rel=1e-6, abs=1e-7)
    saver.start()  # this run takes the folder over: no longer a crash to recover from
    assert not interrupted.exists()
    assert not Autosaver(Session(), folder).recoverable()


_INSTANCE = """
import sys
sys.path.insert(0, {tests!r})
from pathlib import Path
from test_session_store import make_session
from studio.model.autosave import Autosaver
s = make_session(Path({tmp!r}))
saver = Autosaver(s, {folder!r})
saver.start()
for _ in range({steps}):
    s.step()
saver.save()
print(saver.path, flush=True)
sys.stdin.read()  # a live studio, until the test kills it
"""


def _instance(tmp_path: Path, folder: Path, steps: int) -> tuple[subprocess.Popen, Path]:
    """A studio's autosaver in another process, alive; returns it and the path it saved."""
    work = tmp_path / f"w{steps}"
    work.mkdir()
    code = _INSTANCE.format(tests=str(ROOT / "tests"), tmp=str(work), folder=str(folder),
                            steps=steps)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    assert line, "the instance did not start"
    return proc, Path(line)


def test_each_live_instance_owns_its_autosave_and_every_crash_is_offered(tmp_path):
    folder = tmp_path / "data"
    first, first_path = _instance(tmp_path, folder, 1)
    second = None
    try:
        second, second_path = _instance(tmp_path, folder, 2)
        # The first keeps the usual pair; the second, finding it alive, has one of its own.
        assert first_path == folder / "autosave.zip"
        assert second_path == folder / f"autosave-{second.pid}.zip"
        assert json.loads((folder / "running.json").read_text())["pid"] == first.pid
        assert json.loads((folder / f"running-{second.pid}.json").read_text()) == {
            "pid": second.pid}
        assert Autosaver(Session(), folder).crashed() == []  # both alive
        # A third (this process) also gets its own pair and writes only there.
        s = make_session(tmp_path)
        third = Autosaver(s, folder)
        third.start()
        assert third.path == folder / f"autosave-{os.getpid()}.zip"
        assert third.save(force=True) == third.path
        third.finish()  # a clean exit from a pair of its own leaves neither file
        assert not third.path.exists() and not third.marker.exists()
        assert json.loads((folder / "running.json").read_text())["pid"] == first.pid
    finally:
        for p in (first, second):
            if p is not None:
                p.kill()
                p.wait()
    # Both crashed: the next launch is offered both autosaves, the first pair's first.
    assert Autosaver(Session(), folder).crashed() == [first_path, second_path]
    s = Session()
    saver = Autosaver(s, folder)
    saver.recover(second_path)
    assert s.steps == 2
    saver.start()  # the first pair's crash, not recovered, stays for later
    assert saver.path == folder / f"autosave-{os.getpid()}.zip" and saver.path.is_file()
    assert not second_path.exists() and not (folder / f"running-{second.pid}.json").exists()
    later = Autosaver(Session(), folder)
    assert later.crashed() == [first_path]
    later.recover(first_path)
    assert later.session.steps == 1
    with pytest.raises(ValueError, match="not the autosave of a crashed run"):
        saver.discard(saver.path.with_name("autosave-1.zip"))
    saver.discard(first_path)
    assert not first_path.exists() and not (folder / "running.json").exists()
    assert not saver.recoverable()
    saver.finish()
    assert sorted(p.name for p in folder.iterdir()) == []


def test_a_second_start_while_the_owner_lives_never_touches_its_files(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    alive = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    try:
        (folder / "running.json").write_text(json.dumps({"pid": alive.pid}))
        (folder / "autosave.zip").write_bytes(b"theirs")
        saving = folder / ".autosave.0badf00d.tmp.zip"  # the owner is in the middle of a save
        saving.write_bytes(b"PK")
        claim = folder / f".running.{alive.pid}.claim"
        claim.write_text("{}")
        s = make_session(tmp_path)
        saver = Autosaver(s, folder)
        assert not saver.recoverable()
        saver.start()
        assert saver.marker == folder / f"running-{os.getpid()}.json"
        saver.save(force=True)
        saver.finish()
        assert (folder / "autosave.zip").read_bytes() == b"theirs"
        assert saving.exists() and claim.exists()
        assert json.loads((folder / "running.json").read_text())["pid"] == alive.pid
    finally:
        alive.kill()
        alive.wait()
    # Once it is gone, its marker is a crash; a new run takes the first pair over.
    saver = Autosaver(Session(), folder)
    assert saver.crashed() == [folder / "autosave.zip"]
    saver.start()
    assert saver.marker == folder / "running.json" and not saving.exists() and not claim.exists()
