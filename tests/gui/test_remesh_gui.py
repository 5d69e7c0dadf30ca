"""A real remeshing fit through the window: the demo targets' visual hull, remeshing turned on
in the Shape controls, steps run by the fit process (ProcessRunner) as the window runs them.
Every layer must follow the mesh whose vertex and face count change every few steps: the
status bar, the GL viewport (its silhouette against render_core's hard rasteriser), the image
panels and loss plot, revert to a snapshot of another topology, undo of a setting mid-fit,
sessions and autosave reopened in a new window, exports, RenderNet's voxel grids and the
Appearance stage."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

import render_core as rc
from studio.model import neural, stages
from studio.model.session import Session
from studio.model.store import read_session

INTERVAL = 3  # remesh every 3 accepted steps
SNAP_EVERY = 4  # snapshots at 0, 4, 8: each on another topology than the steps after it
MIN_IOU = 0.99


@pytest.fixture
def errors(monkeypatch):
    shown: list[str] = []
    monkeypatch.setattr("studio.qt.window.QMessageBox.critical",
                        lambda parent, title, text: shown.append(text))
    return shown


def _step(window, qtbot, n: int = 1) -> None:
    target = window.session.steps + n
    window.worker.step(n)
    qtbot.waitUntil(lambda: window.session.steps >= target, timeout=120000)
    qtbot.waitUntil(lambda: not window.worker._pending_steps, timeout=10000)


def _label(mesh: rc.Mesh) -> str:
    return f"{mesh.num_vertices:,} vertices · {mesh.num_faces:,} faces"


def _shown(window, qtbot) -> rc.Mesh:
    """Wait until the window shows the fit as it stands (the fit process's mesh, pulled into
    the session's mirror); returns that mesh."""
    mesh = window.session.current_mesh()
    v = mesh.vertices.numpy()

    def follows() -> bool:
        vp = window.viewport
        return (window.status_mesh.text() == _label(mesh) and vp.vertex_count == len(v)
                and np.allclose(vp._vertices, v, atol=1e-5)
                and window.step_count == window.session.steps)

    qtbot.waitUntil(follows, timeout=60000)
    return mesh


def _gl_iou(window, mesh: rc.Mesh, view: int = 0, size: int = 96) -> float:
    """IoU of the viewport's GL silhouette and render_core's hard rasterisation of ``mesh``
    from target ``view``'s camera."""
    cam = window.session.targets[view].camera()
    gl = window.viewport.render_offscreen(cam.view[0].double().numpy(),
                                          cam.proj[0].double().numpy(), (size, size))
    gl = gl[..., 0] > 127
    ref = rc.rasterize(cam.to_clip(mesh.vertices), mesh.faces, (size, size)).face_idx[0]
    ref = ref.numpy() >= 0
    return float((gl & ref).sum() / max((gl | ref).sum(), 1))


def _check_panels(window) -> None:
    """The Render / Target / Difference panels show this step's frame of the selected view,
    and the loss plot holds every step."""
    s = window.session
    frame = s.frame(window.view_index)
    shown = window.images.images

    def as_u8(a: np.ndarray) -> np.ndarray:
        return (np.clip(a, 0, 1) * 255).astype(np.int16)

    for key, ref in (("render", frame["render"]), ("target", frame["target"]),
                     ("third", np.abs(frame["render"] - frame["target"]) * 2.0)):
        diff = np.abs(shown[key].image.astype(np.int16) - as_u8(ref))
        assert diff.max() <= 2, (key, int(diff.max()))
    total = window.losses.values("total")
    assert len(total) == s.steps == len(s.history)
    assert total[-1] == pytest.approx(s.history[-1]["total"])


def _start_remeshing(window, qtbot) -> rc.Mesh:
    """Start from the hull, the silhouette preset, remeshing on: all through the controls."""
    s, sh = window.session, window.controls.shape
    sh.start_buttons["hull"].click()
    sh.preset.setCurrentIndex(sh.preset.findData("silhouette"))
    sh.preset_apply.click()
    sh.remesh.setChecked(True)
    sh.remesh_interval.setValue(INTERVAL)
    assert s.mesh_name.startswith("visual hull")
    assert s.config.remesh and s.config.remesh_interval == INTERVAL
    s.snapshot_every = SNAP_EVERY
    return _shown(window, qtbot)


def _run(window, qtbot, steps: int, log: dict) -> rc.Mesh:
    """``steps`` single steps; after each, the views must show the fit's mesh. ``log[step]``
    gets ``(vertices, faces, GL IoU)``."""
    for _ in range(steps):
        _step(window, qtbot)
        mesh = _shown(window, qtbot)
        iou = _gl_iou(window, mesh)
        log[window.session.steps] = (mesh.num_vertices, mesh.num_faces, iou)
        assert iou > MIN_IOU, (window.session.steps, iou)
    return mesh


def _changes(log: dict, start: rc.Mesh) -> int:
    counts = [(start.num_vertices, start.num_faces)] + [log[k][:2] for k in sorted(log)]
    return sum(a != b for a, b in zip(counts, counts[1:], strict=False))


def test_every_view_follows_a_remeshing_fit_through_revert_and_undo(window, qtbot, errors):
    s, sh = window.session, window.controls.shape
    stack = window.session_actions.undo_stack
    stack.merge_seconds = 0.0
    hull = _start_remeshing(window, qtbot)
    vp = window.viewport
    vp.azimuth, vp.elevation, vp.distance = 75.0, 35.0, 0.6 * vp.distance  # the user's view
    vp.center = np.array([0.1, -0.05, 0.2])
    view = (vp.azimuth, vp.elevation, vp.distance, tuple(vp.center))
    log: dict[int, tuple] = {}
    mesh = _run(window, qtbot, 9, log)
    _check_panels(window)
    # Remeshing passes are not a new problem: the viewport keeps the user's orbit and zoom.
    assert (vp.azimuth, vp.elevation, vp.distance, tuple(vp.center)) == view
    for k in sorted(log):
        print(f"step {k}: {log[k][0]} vertices, {log[k][1]} faces, GL vs hard rasteriser "
              f"IoU {log[k][2]:.4f}")
    assert _changes(log, hull) >= 2  # at least two remeshing passes changed the mesh
    assert mesh.num_vertices != hull.num_vertices

    # Revert to step 5: the snapshot of step 4, on the topology of the first pass.
    history = list(s.history)
    assert s.snapshot_steps() == [0, 4, 8]
    assert window.session_actions.revert_to(5) == 4
    back = _shown(window, qtbot)
    assert (back.num_vertices, back.num_faces) == log[4][:2] != (mesh.num_vertices,
                                                                 mesh.num_faces)
    assert _gl_iou(window, back) > MIN_IOU
    assert len(window.losses.values("total")) == 4
    _run(window, qtbot, 1, log)  # step 5 again: it evaluates step 4's mesh, as before
    assert s.history[-1]["step"] == 5
    assert s.history[-1]["total"] == pytest.approx(history[4]["total"], rel=1e-6, abs=1e-7)
    assert log[5][:2] == log[4][:2]
    _run(window, qtbot, 1, log)  # and the fit goes on (a pass is due at step 6)
    _check_panels(window)

    # Undo a setting changed mid-fit, after the mesh changed under it: the setting comes
    # back, the fit (its mesh) stays as it is and goes on.
    sh.remesh_interval.setValue(2)
    assert s.config.remesh_interval == 2
    _run(window, qtbot, 2, log)
    assert log[8][:2] != log[7][:2]  # the pass now due every 2 steps (6 was one)
    fitted = s.current_mesh()
    assert stack.undo() and s.config.remesh_interval == INTERVAL
    assert sh.remesh_interval.value() == INTERVAL and s.steps == 8
    same = _shown(window, qtbot)
    assert torch.equal(same.faces, fitted.faces)
    assert torch.allclose(same.vertices, fitted.vertices)
    _run(window, qtbot, 1, log)
    assert stack.redo() and s.config.remesh_interval == 2 and sh.remesh_interval.value() == 2
    _run(window, qtbot, 2, log)
    _check_panels(window)
    assert not errors


def test_sessions_autosave_and_exports_of_a_remeshed_fit(window, qtbot, errors, tmp_path,
                                                         settings, studio_data, monkeypatch):
    from PyQt6.QtWidgets import QMessageBox

    from studio.qt.window import MainWindow

    s = window.session
    hull = _start_remeshing(window, qtbot)
    log: dict[int, tuple] = {}
    mesh = _run(window, qtbot, 7, log)
    assert _changes(log, hull) >= 2
    n = s.steps

    path = tmp_path / "remeshed.zip"
    assert window.session_actions.save_to(path)
    data = read_session(path)
    assert data.fitter.current_mesh().num_vertices == mesh.num_vertices
    assert tuple(data.checkpoint["state"]["faces"].shape) == (mesh.num_faces, 3)
    saver = window.session_actions.autosaver
    assert saver.save(force=True) == saver.path
    # That autosave, as a run that crashed left it: a new window offers to recover it.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    crashed = studio_data / f"autosave-{dead.pid}.zip"
    shutil.copyfile(saver.path, crashed)
    (studio_data / f"running-{dead.pid}.json").write_text(json.dumps({"pid": dead.pid}))

    for suffix in ("obj", "ply", "glb"):  # exports of the remeshed mesh
        out = tmp_path / f"remeshed.{suffix}"
        assert window.export_mesh(out)
        qtbot.waitUntil(lambda: not window.export_task.busy, timeout=120000)
        back = rc.load_mesh(out)
        if suffix == "glb":
            back = rc.weld_seams(back)
        print(f"{suffix}: {back.num_vertices} vertices, {back.num_faces} faces "
              f"(fit: {mesh.num_vertices}, {mesh.num_faces})")
        assert (back.num_vertices, back.num_faces) == (mesh.num_vertices, mesh.num_faces)
        assert torch.allclose(back.vertices, mesh.vertices, atol=1e-5)

    _step(window, qtbot)  # the uninterrupted run's next step
    expected = s.history[-1]
    assert expected["step"] == n + 1

    monkeypatch.setattr("studio.qt.session_actions.QMessageBox.question",
                        lambda *a, **k: QMessageBox.StandardButton.Yes)
    win = MainWindow(Session(), settings=settings)
    qtbot.addWidget(win)
    win.show()
    try:
        qtbot.waitUntil(lambda: win.session.steps == n, timeout=60000)
        got = _shown(win, qtbot)  # the recovered fit, on the remeshed topology
        assert (got.num_vertices, got.num_faces) == (mesh.num_vertices, mesh.num_faces)
        assert _gl_iou(win, got) > MIN_IOU
        _step(win, qtbot)
        resumed = win.session.history[-1]
        print(f"next loss: first window {expected['total']:.8f}, recovered autosave "
              f"{resumed['total']:.8f}")
        assert resumed["step"] == n + 1
        assert resumed["total"] == pytest.approx(expected["total"], rel=1e-6, abs=1e-7)

        assert win.session_actions.open_session(path)  # the saved session, in this window
        assert win.session.steps == n
        got = _shown(win, qtbot)
        assert (got.num_vertices, got.num_faces) == (mesh.num_vertices, mesh.num_faces)
        _step(win, qtbot)
        opened = win.session.history[-1]
        print(f"next loss: first window {expected['total']:.8f}, opened session "
              f"{opened['total']:.8f}")
        assert opened["total"] == pytest.approx(expected["total"], rel=1e-6, abs=1e-7)
        _shown(win, qtbot)
        _check_panels(win)
    finally:
        win.worker.pause()
        win.close()
    assert not errors


def test_rendernet_and_the_appearance_stage_after_remeshing(window, qtbot, errors):
    s, c, menu = window.session, window.controls, window.style_menu
    s.set_option(texture_size=128)
    hull = _start_remeshing(window, qtbot)
    log: dict[int, tuple] = {}
    _run(window, qtbot, 3, log)

    rendered: list[int] = []
    menu.thread.rendered.connect(lambda token, img, alpha: rendered.append(token))
    shader = menu.thread.shader
    menu.set_style("rendernet:contour")
    keys = []
    for _ in range(2):  # each on another topology than the one before
        qtbot.waitUntil(lambda: bool(rendered) and rendered[-1] == menu._token,
                        timeout=120000)
        assert menu.shown_style == "contour"
        snap = menu._snap["mesh"]
        mesh = s.current_mesh()
        assert len(snap["vertices"]) == mesh.num_vertices
        key = neural.mesh_key(snap["vertices"], snap["faces"])
        assert next(reversed(shader._grids)) == key  # the grid of the mesh shown, no other
        grid, scale = shader._grids[key]
        fresh = rc.rendernet.voxel_grid(rc.Mesh(
            torch.as_tensor(snap["vertices"] * neural.unit_scale(snap["vertices"])),
            torch.as_tensor(snap["faces"])))
        assert torch.equal(grid, fresh)
        keys.append((key, mesh.num_vertices))
        _run(window, qtbot, INTERVAL, log)  # a remeshing pass
    assert keys[0][0] != keys[1][0] and keys[0][1] != keys[1][1]
    menu.set_style(s.config.shading)
    assert menu.neural_style is None

    fitted = s.current_mesh()
    assert fitted.num_vertices != hull.num_vertices
    c.stage.buttons["appearance"].click()
    assert stages.stage_of(s) == "appearance" and not s.config.remesh
    m = s.initial_mesh
    assert m.has_texture and torch.equal(m.faces, fitted.faces)
    assert m.num_vertices == fitted.num_vertices
    assert not c.shape.remesh.isEnabled() and not c.shape.remesh.isChecked()
    _step(window, qtbot, 2)
    shown = _shown(window, qtbot)
    assert (shown.num_vertices, shown.num_faces) == (fitted.num_vertices, fitted.num_faces)
    qtbot.waitUntil(lambda: window.viewport.has_uvs and window.viewport._texture is not None,
                    timeout=60000)
    assert _gl_iou(window, shown) > MIN_IOU
    _check_panels(window)
    assert not errors


def test_the_best_shape_fit_preset_starts_from_the_hull_and_remeshes(window, qtbot, errors):
    s, sh = window.session, window.controls.shape
    sphere = s.initial_mesh
    sh.preset.setCurrentIndex(sh.preset.findData(stages.BEST_SHAPE_FIT))
    sh.preset_apply.click()
    assert s.mesh_name.startswith("visual hull") and "remeshing" in window.last_notice
    preset = rc.shape_fit_config("silhouette", resolution=s.config.resolution, remesh=True)
    assert s.config.remesh and sh.remesh.isChecked()
    assert s.config.groups["vertices"].lr == preset.groups["vertices"].lr
    assert s.config.large_steps == preset.large_steps == window.controls.large_steps.value()
    hull = _shown(window, qtbot)
    log: dict[int, tuple] = {}
    _run(window, qtbot, 2 * s.config.remesh_interval, log)
    assert _changes(log, hull) >= 1
    fitted, n = s.current_mesh(), s.steps
    assert fitted.num_vertices != hull.num_vertices
    stack = window.session_actions.undo_stack
    stack.merge_seconds = 0.0
    # Another start, then undo: the remeshed fit comes back where it stood and goes on.
    sh.start_buttons["sphere"].click()
    assert s.steps == 0 and s.initial_mesh.num_vertices == 642
    qtbot.waitUntil(lambda: window.viewport.vertex_count == 642, timeout=60000)
    assert stack.undo() and s.steps == n and s.mesh_name.startswith("visual hull")
    back = _shown(window, qtbot)
    assert torch.equal(back.faces, fitted.faces)
    assert torch.allclose(back.vertices, fitted.vertices, atol=1e-6)
    _run(window, qtbot, 1, log)
    assert s.history[-1]["step"] == n + 1 and len(s.history) == n + 1
    window.reset()  # back to the hull's topology
    start = _shown(window, qtbot)
    assert s.steps == 0 and torch.equal(start.faces, hull.faces)
    assert stack.undo() and s.initial_mesh is sphere and not s.config.remesh
    assert not sh.remesh.isChecked()
    qtbot.waitUntil(lambda: window.viewport.vertex_count == sphere.num_vertices, timeout=60000)
    assert not errors
