"""studio.autosave (no Qt): autosave when changed, clean exit, recovery after a SIGKILL."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_session_store import make_session

from studio.autosave import ENV_VAR, Autosaver, data_dir
from studio.session import Session

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
        from studio.autosave import Autosaver
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
