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
        assert [m.step for m in metrics] == [1, 2] and state["steps"] == 2
        assert proc.call("state")[1]["steps"] == 2
        with pytest.raises(RuntimeError):
            bad = session.config.copy()
            bad.shading = "cartoon"
            proc.call("config", bad)
        proc.call("step")  # still serving after an error
    finally:
        proc.close()


def test_one_fit_whatever_the_runner(session, tmp_path):
    """The same steps in this process and in the fit process give the same history,
    snapshots, parameters and checkpoint: both go through Session.advance."""
    from studio.model.runner import ProcessRunner

    twin = Session(ProcessRunner())
    twin.set_mesh(session.initial_mesh)
    twin.set_targets(list(session.targets))
    twin.set_config(session.config)
    twin.snapshot_every = session.snapshot_every = 2
    try:
        for _ in range(5):
            session.step()
            twin.step()
        assert [m["total"] for m in twin.history] == pytest.approx(
            [m["total"] for m in session.history], rel=1e-6, abs=1e-7)
        assert twin.steps == session.steps == 5
        assert twin.snapshot_steps() == session.snapshot_steps() == [0, 2, 4]
        assert np.allclose(twin.current_mesh().vertices, session.current_mesh().vertices,
                           atol=1e-6)
        ours, theirs = session.checkpoint(), twin.checkpoint()
        assert theirs["state"]["steps"] == 5
        assert theirs["optimizer"].keys() == ours["optimizer"].keys()
        # A frame comes from where the fit runs and carries its generation.
        frame = twin.pull_frame(0)
        assert frame["step"] == 5 and frame["generation"] == twin.generation
        # Handing the fit back to this process continues it exactly.
        from studio.model.runner import InProcessRunner

        twin.use_runner(InProcessRunner())
        assert twin.step()["total"] == pytest.approx(session.step()["total"], rel=1e-6,
                                                     abs=1e-7)
    finally:
        twin.runner.close()


def test_a_step_of_a_restarted_fit_is_dropped(session):
    """A reset while a step is in flight: the step's result does not enter the new history."""
    from studio.model.runner import InProcessRunner

    class ResetDuringStep(InProcessRunner):
        def step(self):
            result = super().step()
            session.reset()  # another thread restarts the fit meanwhile
            return result

    session.use_runner(ResetDuringStep())
    assert session.advance() is None
    assert session.history == [] and session.steps == 0


def test_target_lens_settings_keep_the_fit(session, tmp_path):
    """Issue 19.6: one camera group and a fov lock per target, set from the Targets tab."""
    session.add_target(tmp_path / "t.png", 90, 10, 3.5, 40)
    session.set_group("camera", enabled=True, lr=0.05)
    for _ in range(3):
        session.step()
    moved = session.current_mesh().vertices.clone()
    session.set_target_lens(1, 7, True)
    t = session.targets[1]
    assert (t.camera_group, t.lock_fov) == (7, True) and session.steps == 3
    assert np.allclose(session.current_mesh().vertices, moved)
    for _ in range(3):
        session.step()
    assert session.fitter().camera_params()[1][3] == pytest.approx(40.0)  # locked: as typed
    with pytest.raises(ValueError):
        session.set_target_lens(1, "a", False)
    assert session.targets[1] is t


def test_start_from_hull_refuses_masks_that_allow_none(session):
    """Empty masks: one message naming the target, and the session is unchanged."""
    import dataclasses

    empty = dataclasses.replace(session.targets[0], mask=np.zeros_like(session.targets[0].mask),
                                name="blank.png")
    session.set_targets([empty])
    mesh, gen = session.initial_mesh, session.generation
    with pytest.raises(ValueError, match="blank.png"):
        session.start_from_hull()
    assert session.initial_mesh is mesh and session.generation == gen


def test_start_from_hull_covers_the_target(session):
    session.start_from_hull(resolution=48, faces=500)
    assert session.mesh_name.startswith("visual hull")
    assert session.step()["silhouette_iou"] > 0.9


def test_a_hull_start_fits_with_a_sharp_silhouette(session):
    from studio.model.start import HULL_SIGMA

    assert session.config.sigma > HULL_SIGMA
    session.start_from_hull(resolution=32, faces=300)
    assert session.config.sigma == HULL_SIGMA
