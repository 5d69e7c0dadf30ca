"""studio.model.session (no Qt): events, loading errors that leave it unchanged, exports."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import render_core as rc
from studio.model.files import LoadError
from studio.model.session import Session


@pytest.fixture
def session(tmp_path):
    s = Session()
    s.new_primitive("sphere", 2)
    img = np.zeros((32, 32, 4), np.uint8)
    img[8:24, 6:26] = (30, 200, 90, 255)
    Image.fromarray(img).save(tmp_path / "t.png")
    s.add_target(tmp_path / "t.png", 0, 0, 3.5, 50)
    s.set_option(resolution=16)
    return s


def test_events_and_steps(session):
    events = []
    session.subscribe(events.append)
    session.set_group("colors", lr=0.1)
    session.set_weight("edge", 0.5)
    m = session.step()
    assert session.steps == 1 and session.history == [m]
    session.reset()
    assert events == ["config", "config", "reset"]
    assert session.steps == 0 and session.history == []


def test_bad_files_leave_the_session_unchanged(session, tmp_path):
    mesh, targets, gen = session.initial_mesh, list(session.targets), session.generation
    (tmp_path / "bad.obj").write_text("v 1 2\nf 1 2 3 4 5\n")
    (tmp_path / "text.png").write_text("hello")
    (tmp_path / "nan.obj").write_text("v nan 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    for path in ("bad.obj", "nan.obj", "missing.ply"):
        with pytest.raises(LoadError) as e:
            session.load_mesh(tmp_path / path)
        assert path in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(LoadError, match="text.png"):
        session.add_targets([tmp_path / "t.png", tmp_path / "text.png"], [(0, 0, 3, 60)] * 2)
    with pytest.raises(ValueError):
        session.set_option(resolution=-3)
    assert session.initial_mesh is mesh and session.targets == targets
    assert session.generation == gen and session.config.resolution == 16


def test_exports_reload(session, tmp_path):
    session.set_group("texture", enabled=True)
    for _ in range(2):
        session.step()
    for suffix in (".obj", ".ply", ".glb"):
        written = session.export_mesh(tmp_path / f"m{suffix}")
        back = rc.load_mesh(written[0])
        assert back.num_faces == session.current_mesh().num_faces
    assert (tmp_path / "m.mtl").exists() and (tmp_path / "m.png").exists()
    session.export_contact_sheet(tmp_path / "sheet.png")
    session.export_render(tmp_path / "render.png")
    session.export_history(tmp_path / "h.json")
    assert Image.open(tmp_path / "render.png").mode == "RGBA"
    assert Image.open(tmp_path / "sheet.png").size[1] > 16 * 3


def test_fit_process_round_trip(session):
    from studio.model.fitproc import FitProcess

    proc = FitProcess()
    try:
        proc.call("problem", session.generation, session.initial_mesh, session.targets,
                  session.config)
        metrics = [proc.call("step")[2] for _ in range(2)]
        _, snap, state = proc.call("sync", 0)
        assert snap["render"].shape == (16, 16, 3) and snap["mesh"]["faces"].shape[1] == 3
        assert session.sync(session.generation, state, metrics)
        assert session.steps == 2 and len(session.history) == 2
        assert not session.sync(session.generation - 1, state, metrics)
        with pytest.raises(RuntimeError):
            bad = session.config.copy()
            bad.shading = "cartoon"
            proc.call("config", bad)
        proc.call("step")  # still serving after an error
    finally:
        proc.close()
