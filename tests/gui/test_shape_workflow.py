"""The shape workflow in the window: the Shape controls round-trip to the settings (and undo),
the Geometry / Appearance switch, Start from each choice, the live vertex/face count, and a GL
viewport that follows a mesh whose vertex and face count change between frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import render_core as rc
from studio.model import stages


@pytest.fixture
def errors(monkeypatch):
    shown: list[str] = []
    monkeypatch.setattr("studio.qt.window.QMessageBox.critical",
                        lambda parent, title, text: shown.append(text))
    return shown


def _undo(window):
    stack = window.session_actions.undo_stack
    stack.merge_seconds = 0.0
    return stack


def test_shape_controls_round_trip_with_undo(window, qtbot, errors, tmp_path):
    stack = _undo(window)
    c, s = window.controls, window.session
    sh = c.shape
    sh.remesh.setChecked(True)
    sh.remesh_min.setValue(0.02)
    sh.remesh_max.setValue(0.25)
    sh.remesh_interval.setValue(7)
    c.large_steps.setValue(12.0)
    cfg = s.config
    assert (cfg.remesh, cfg.remesh_min_edge, cfg.remesh_max_edge, cfg.remesh_interval,
            cfg.large_steps) == (True, 0.02, 0.25, 7, 12.0)
    sh.remesh_max.setValue(0.0)  # 0 = automatic
    assert s.config.remesh_max_edge is None and sh.remesh_max.text() == "auto"
    # A refused setting: named, nothing changes, the widget shows the session again.
    sh.remesh_max.setValue(0.01)
    assert errors and "remesh_min_edge" in errors[-1]
    assert s.config.remesh_max_edge is None and sh.remesh_max.value() == 0.0
    assert window.statusBar().currentMessage() == errors[-1]
    # Remeshing with a texture being fitted: refused with the rule, in the status bar.
    sh.remesh.setChecked(False)
    c.group_checks["texture"].setChecked(True)
    sh.remesh.setChecked(True)
    assert "UV texture" in errors[-1] and window.statusBar().currentMessage() == errors[-1]
    assert not sh.remesh.isChecked() and not s.config.remesh
    c.group_checks["texture"].setChecked(False)
    sh.remesh.setChecked(True)
    for _ in range(4):  # the four edits above, back to remeshing with automatic edges
        assert stack.undo()
    assert s.config.remesh and not s.config.groups["texture"].enabled
    assert s.config.remesh_max_edge is None and sh.remesh.isChecked()
    # Undo walks back through the edits, one at a time, and the widgets follow.
    assert stack.undo() and s.config.remesh_max_edge == 0.25 and sh.remesh_max.value() == 0.25
    assert stack.undo() and s.config.large_steps is None and c.large_steps.text() == "off"
    assert stack.undo() and s.config.remesh_interval == 5 and sh.remesh_interval.value() == 5
    assert stack.undo() and s.config.remesh_max_edge is None and sh.remesh_max.text() == "auto"
    assert stack.undo() and s.config.remesh_min_edge is None
    assert stack.undo() and not s.config.remesh and not sh.remesh.isChecked()
    assert stack.redo() and sh.remesh.isChecked()

    # A saved session brings its remeshing settings back into the widgets.
    sh.remesh_interval.setValue(7)
    path = tmp_path / "remesh.zip"
    assert window.session_actions.save_to(path)
    sh.remesh.setChecked(False)
    sh.remesh_interval.setValue(3)
    assert window.session_actions.open_session(path)
    assert sh.remesh.isChecked() and sh.remesh_interval.value() == 7
    assert s.config.remesh and s.config.remesh_interval == 7

    # A preset: one undo step.
    before = s.config.copy()
    sh.preset.setCurrentIndex(sh.preset.findData("lit"))
    sh.preset_apply.click()
    preset = rc.shape_fit_config("lit", resolution=before.resolution)
    assert s.config.large_steps == preset.large_steps == c.large_steps.value()
    assert c.shading.currentText() == preset.shading
    assert not c.group_checks["colors"].isChecked()
    assert "preset" in window.last_notice
    assert stack.undo() and s.config == before and c.shading.currentText() == before.shading


def test_stage_switch_freezes_geometry_with_the_same_look(window, qtbot, errors):
    stack = _undo(window)
    s, c, vp = window.session, window.controls, window.viewport
    s.set_option(texture_size=128)
    window.worker.step(8)
    qtbot.waitUntil(lambda: s.steps == 8, timeout=60000)
    before = np.stack([s.frame(v)["render"] for v in range(len(s.targets))])
    fitted = s.current_mesh()
    assert c.stage.buttons["geometry"].isChecked()
    c.stage.buttons["appearance"].click()
    assert stages.stage_of(s) == "appearance" and c.stage.buttons["appearance"].isChecked()
    assert "geometry frozen" in window.last_notice
    assert s.initial_mesh.has_texture and s.initial_mesh.num_faces == fitted.num_faces
    assert s.config.groups["texture"].enabled and not s.config.groups["vertices"].enabled
    assert not c.shape.remesh.isEnabled() and not c.shape.preset_apply.isEnabled()
    after = np.stack([s.frame(v)["render"] for v in range(len(s.targets))])
    diff = float(np.abs(after - before).mean())
    print(f"mean |textured render after freeze - vertex-coloured render before|: {diff:.4f}")
    assert diff < 0.01
    qtbot.waitUntil(lambda: vp._texture is not None and vp.has_uvs, timeout=60000)
    window.worker.step(2)
    qtbot.waitUntil(lambda: s.steps == 2, timeout=60000)

    c.stage.buttons["geometry"].click()
    assert stages.stage_of(s) == "geometry" and "texture was dropped" in window.last_notice
    assert c.shape.remesh.isEnabled()
    qtbot.waitUntil(lambda: vp._texture is None and not vp.has_uvs, timeout=60000)
    assert stack.undo() and stages.stage_of(s) == "appearance" and s.steps == 2
    assert c.stage.buttons["appearance"].isChecked()
    assert stack.undo() and stages.stage_of(s) == "geometry" and s.steps == 8
    assert not errors


def test_start_from_each_choice_follows_in_the_viewport(window, qtbot, tmp_path, errors):
    stack = _undo(window)
    s, sh, vp = window.session, window.controls.shape, window.viewport
    assert not sh.start_buttons["mesh"].isEnabled()
    path = tmp_path / "cube.ply"
    rc.save_mesh(rc.cube(subdivisions=2), path)
    assert window.open_mesh(path)
    assert sh.start_buttons["mesh"].isEnabled()
    counts = []
    for kind in ("sphere", "hull", "mesh"):
        sh.start_buttons[kind].click()
        m = s.initial_mesh
        counts.append(m.num_vertices)
        qtbot.waitUntil(lambda m=m: vp.vertex_count == m.num_vertices, timeout=60000)
        label = f"{m.num_vertices:,} vertices · {m.num_faces:,} faces"
        qtbot.waitUntil(lambda t=label: window.status_mesh.text() == t, timeout=60000)
    assert s.mesh_name == "cube.ply" and len(set(counts)) == 3
    assert not errors
    for n in (counts[1], counts[0], counts[2]):  # back through hull, sphere, the opened cube
        assert stack.undo() and s.initial_mesh.num_vertices == n
        qtbot.waitUntil(lambda n=n: vp.vertex_count == n, timeout=60000)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_viewport_follows_a_changing_vertex_and_face_count(window, qtbot):
    """Frames whose mesh changes topology (icospheres of 2, 3, then 1 subdivisions, as a
    remeshing fit sends them): the viewport reallocates and its silhouette matches render_core's
    hard rasterizer after each change; the status bar counts follow."""
    vp = window.viewport
    window.worker.pause()
    snap = window.session.frame(0)
    cam = rc.Camera.orbit(30, 20, 3.0, fov=45, aspect=1.0)
    view, proj = cam.view[0].double().numpy(), cam.proj[0].double().numpy()
    for sub in (2, 3, 1):
        mesh = rc.icosphere(subdivisions=sub)
        v = (mesh.vertices * (0.6 + 0.2 * sub)).numpy()  # another size each: stale shows
        frame = dict(snap, mesh={"vertices": v, "faces": mesh.faces.numpy(),
                                 "vertex_colors": np.full_like(v, 0.4), "uvs": None,
                                 "face_uvs": None, "texture": None})
        window._on_frame(frame)
        assert vp.vertex_count == len(v)
        assert window.status_mesh.text() == f"{len(v):,} vertices · {mesh.num_faces:,} faces"
        for mode in ("wireframe", "shaded"):  # draws with the new buffers, no stale sizes
            vp.set_mode(mode)
            vp.repaint()
        gl = vp.render_offscreen(view, proj, (96, 96))[..., 0] > 127
        clip = cam.to_clip(torch.from_numpy(v))
        ref = rc.rasterize(clip, mesh.faces, (96, 96)).face_idx[0].numpy() >= 0
        iou = _iou(gl, ref)
        print(f"icosphere({sub}): {len(v)} vertices, GL vs hard rasterizer IoU {iou:.4f}")
        assert iou > 0.995
        assert vp._gpu.corners == 3 * mesh.num_faces
    with pytest.raises(ValueError, match="set_mesh"):
        vp.update_mesh(np.zeros((5, 3), np.float32))
