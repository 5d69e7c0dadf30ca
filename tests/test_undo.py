"""studio.model.undo (no Qt): undo/redo of settings, target cameras, masks and removals."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from studio.model.session import Session
from studio.model.undo import UndoStack


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def session(tmp_path):
    s = Session()
    s.new_primitive("sphere", 1)
    img = np.zeros((16, 16, 4), np.uint8)
    img[4:12, 3:13] = (30, 200, 90, 255)
    Image.fromarray(img).save(tmp_path / "t.png")
    s.add_targets([tmp_path / "t.png"] * 2, [(0, 0, 3.5, 50), (90, 10, 3.0, 40)])
    s.set_option(resolution=16)
    return s


def test_settings_undo_and_redo(session):
    clock = Clock()
    stack = UndoStack(session, clock=clock)
    original = session.config.copy()
    assert not stack.can_undo and not stack.undo()
    session.set_group("colors", lr=0.2)
    clock.t += 5
    session.set_weight("edge", 0.25)
    clock.t += 5
    session.set_option(shading="lambertian")
    after = session.config.copy()
    session.step()  # a step is not an edit
    assert stack.undo() and session.config.shading == "vertex_color"
    assert stack.undo() and session.config.weights["edge"] == original.weights["edge"]
    assert stack.undo() and session.config == original
    assert not stack.can_undo and stack.can_redo
    for _ in range(3):
        assert stack.redo()
    assert session.config == after and not stack.can_redo
    stack.undo()
    session.set_option(resolution=20)  # a new edit drops what could be redone
    assert not stack.can_redo
    assert stack.undo() and session.config.resolution == 16


def test_quick_edits_of_one_setting_are_one_step(session):
    clock = Clock()
    stack = UndoStack(session, clock=clock)
    lr0 = session.config.groups["vertices"].lr
    for lr in (0.02, 0.03, 0.04):
        session.set_group("vertices", lr=lr)
        clock.t += 0.2
    clock.t += 5
    session.set_group("vertices", lr=0.05)
    assert stack.undo() and session.config.groups["vertices"].lr == 0.04
    assert stack.undo() and session.config.groups["vertices"].lr == lr0
    assert not stack.can_undo


def test_camera_mask_and_removal_undo(session):
    stack = UndoStack(session, merge_seconds=0)
    first, second = session.targets
    session.set_target_camera(0, 45.0, 20.0, 4.0, 35.0)
    assert session.targets[0].azimuth == 45.0
    mask = np.zeros((16, 16), np.float32)
    mask[2:6, 2:6] = 1
    session.set_target_mask(1, mask)
    session.remove_target(0)
    assert len(session.targets) == 1
    assert stack.undo() and len(session.targets) == 2
    assert session.targets[0].azimuth == 45.0
    assert stack.undo() and session.targets[1] is second
    assert session.targets[1].mask.sum() != mask.sum()
    assert stack.undo() and session.targets[0] is first and session.targets[0].azimuth == 0.0
    assert session.step()["total"] > 0  # the restored targets fit
    assert stack.redo() and session.targets[0].azimuth == 45.0
    assert stack.redo() and np.array_equal(session.targets[1].mask, mask)
    assert stack.redo() and len(session.targets) == 1


def test_limit_and_a_reopened_session_starts_fresh(session, tmp_path):
    stack = UndoStack(session, limit=3, merge_seconds=0)
    changes = []
    stack.listeners.append(lambda: changes.append(stack.can_undo))
    for res in (17, 18, 19, 20, 21):
        session.set_option(resolution=res)
    assert sum(stack.undo() for _ in range(10)) == 3
    assert session.config.resolution == 18
    session.step()
    path = session.save(tmp_path / "s.zip")
    session.set_option(resolution=30)
    assert stack.can_undo
    session.open(path)
    assert not stack.can_undo and not stack.can_redo and changes[-1] is False


def test_undo_of_a_camera_edit_keeps_the_fitted_mesh(session):
    # Issue 19.1: undoing a target-camera edit restarted the fit from the starting mesh.
    clock = Clock()
    stack = UndoStack(session, clock=clock)
    session.set_group("vertices", enabled=True, lr=0.02)
    for _ in range(5):
        session.step()
    start = session.initial_mesh.vertices
    session.set_target_camera(1, 80.0, 15.0, 3.2, 45.0)
    fitted = session.current_mesh().vertices.clone()
    assert not np.allclose(fitted.numpy(), start.numpy())  # the fit moved the mesh
    clock.t += 5
    assert stack.undo()
    t = session.targets[1]
    assert (t.azimuth, t.elevation, t.distance, t.fov) == (90, 10, 3.0, 40)
    after = session.current_mesh().vertices
    assert np.allclose(after.numpy(), fitted.numpy())  # not the starting sphere again
    assert stack.redo() and session.targets[1].azimuth == 80.0
    assert np.allclose(session.current_mesh().vertices.numpy(), fitted.numpy())


def test_a_camera_edit_and_its_undo_keep_the_loss_history(session):
    # Issue 19.1: a camera edit continues the fit, yet its loss history started over at 0.
    clock = Clock()
    stack = UndoStack(session, clock=clock)
    for _ in range(4):
        session.step()
    curve = [m["total"] for m in session.history]
    session.set_target_camera(0, 10.0, 5.0, 3.5, 50.0)
    assert session.steps == 4 and [m["total"] for m in session.history] == curve
    clock.t += 5
    assert stack.undo() and session.steps == 4
    assert [m["total"] for m in session.history] == curve
    session.step()
    assert [m["step"] for m in session.history] == [1, 2, 3, 4, 5]


def test_general_camera_edit_undo_and_redo(session):
    """``set_target_pinhole`` (what "Use this view" calls for a registered target) is one
    undo step, as orbit edits are; a bad rotation leaves the session and the stack alone."""
    stack = UndoStack(session, merge_seconds=0)
    first = session.targets[0]
    a = np.radians(10.0)
    R = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    session.set_target_pinhole(0, R, [0.1, -0.2, -3.0], 20.0, 21.0, 9.0, 7.5)
    general = session.targets[0]
    assert not general.is_orbit and general.intrinsics == (20.0, 21.0, 9.0, 7.5)
    with pytest.raises(ValueError, match="rotation"):
        session.set_target_pinhole(0, 2 * R, [0, 0, -3.0], 20.0, 20.0, 8.0, 8.0)
    assert session.targets[0] is general
    session.set_target_pinhole(0, R.T, [0.0, 0.0, -2.5], 18.0, 18.0, 8.0, 8.0)
    assert stack.undo() and session.targets[0] is general
    assert stack.undo() and session.targets[0] is first and session.targets[0].is_orbit
    assert not stack.can_undo
    assert stack.redo() and session.targets[0] is general
    np.testing.assert_array_equal(session.targets[0].pose[:, :3], R)
