"""``dibr-studio fit --session FILE``: a headless fit saved, then continued exactly."""

from __future__ import annotations

import json

import pytest

from studio.cli import fit_main

BASE = ["--demo", "--resolution", "16", "--backend", "torch", "--quiet",
        "--optimize", "vertices,colors,camera"]


def _totals(folder) -> list[float]:
    return [m["total"] for m in json.loads((folder / "history.json").read_text())["history"]]


def test_a_saved_headless_fit_continues_exactly(tmp_path, capsys):
    assert fit_main(BASE + ["--steps", "5", "--out", str(tmp_path / "straight")]) == 0
    session = tmp_path / "run.zip"
    assert fit_main(BASE + ["--steps", "3", "--out", str(tmp_path / "a"),
                            "--session", str(session)]) == 0
    assert session.is_file()
    capsys.readouterr()
    assert fit_main(["--steps", "2", "--quiet", "--out", str(tmp_path / "b"),
                     "--session", str(session)]) == 0
    summary = capsys.readouterr().out  # this run's steps, the session's total apart
    assert "dibr-studio: 2 steps in " in summary and "(5 in the session)" in summary
    straight, resumed = _totals(tmp_path / "straight"), _totals(tmp_path / "b")
    assert len(resumed) == 5 and resumed[:3] == _totals(tmp_path / "a")
    assert resumed == pytest.approx(straight, rel=1e-6, abs=1e-7)

    capsys.readouterr()
    assert fit_main(BASE + ["--steps", "1", "--out", str(tmp_path / "c"),
                            "--session", str(session)]) == 2
    err = capsys.readouterr().err.strip()
    assert "exists and holds the problem" in err and "\n" not in err
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 truncated")
    assert fit_main(["--steps", "1", "--out", str(tmp_path / "d"),
                     "--session", str(tmp_path / "bad.zip")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dibr-studio: error: bad.zip:") and "\n" not in err
