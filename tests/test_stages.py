"""studio.model.stages and undo of start-mesh changes (no Qt): Geometry / Appearance stages,
Start from sphere / hull / opened mesh, shape presets, remeshing settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import render_core as rc
from studio.model import stages
from studio.model.session import Session
from studio.model.undo import UndoStack


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        self.t += 10.0  # every edit its own undo step
        return self.t


@pytest.fixture
def session():
    s = Session()
    s.load_demo()
    s.set_option(resolution=48, texture_size=128)
    return s


def _renders(s: Session) -> np.ndarray:
    return np.stack([s.frame(v)["render"] for v in range(len(s.targets))])


def test_freeze_keeps_the_render_and_sets_up_the_texture_fit(session):
    for _ in range(15):
        session.step()
    fitted = session.current_mesh()
    before = _renders(session)
    msg = stages.freeze_geometry(session)
    assert "Appearance" in msg and stages.stage_of(session) == "appearance"
    start = session.initial_mesh
    assert start.has_texture and start.texture.shape == (128, 128, 3)
    np.testing.assert_allclose(start.vertices.numpy(), fitted.vertices.numpy(), atol=1e-6)
    cfg = session.config
    assert cfg.groups["texture"].enabled and cfg.shading == "texture"
    assert not cfg.groups["vertices"].enabled and not cfg.groups["colors"].enabled
    assert not cfg.remesh and session.steps == 0
    after = _renders(session)
    diff = np.abs(after - before).mean()
    print(f"mean |render after freeze - before| over 6 views: {diff:.4f} (sRGB, 0..1)")
    assert diff < 0.01
    # The texture fit runs and moves only the texture.
    v0 = session.current_mesh().vertices.clone()
    for _ in range(3):
        session.step()
    assert np.isfinite(session.history[-1]["total"])
    np.testing.assert_array_equal(session.current_mesh().vertices.numpy(), v0.numpy())
    assert "Already" in stages.freeze_geometry(session)


def test_undo_of_freeze_continues_the_geometry_fit_exactly(session):
    stack = UndoStack(session, clock=Clock())
    for _ in range(6):
        session.step()
    history = [m["total"] for m in session.history]
    twin = Session()  # the same fit, never frozen: its next losses are the oracle
    twin.load_demo()
    twin.set_option(resolution=48, texture_size=128)
    for _ in range(8):
        twin.step()
    stages.freeze_geometry(session)
    session.step()
    assert stack.undo()
    assert stages.stage_of(session) == "geometry" and session.steps == 6
    assert [m["total"] for m in session.history] == history
    session.step()
    session.step()
    assert [m["total"] for m in session.history] == [m["total"] for m in twin.history]
    # Redo: the frozen stage again, with the step taken in it.
    assert stack.redo() and stages.stage_of(session) == "appearance" and session.steps == 1


def test_back_to_geometry_drops_the_texture_and_undo_brings_it_back(session):
    stack = UndoStack(session, clock=Clock())
    session.step()
    stages.freeze_geometry(session)
    textured = session.initial_mesh
    before = _renders(session)
    msg = stages.set_stage(session, "geometry")
    assert "texture was dropped" in msg and stages.stage_of(session) == "geometry"
    m = session.initial_mesh
    assert m.texture is None and m.uvs is None and m.vertex_colors is not None
    cfg = session.config
    assert cfg.groups["vertices"].enabled and cfg.groups["colors"].enabled
    assert not cfg.groups["texture"].enabled and cfg.shading == "vertex_color"
    session.set_option(remesh=True)  # allowed again
    diff = np.abs(_renders(session) - before).mean()
    print(f"mean |render of the texture's vertex colours - textured render|: {diff:.4f}")
    assert diff < 0.02
    assert stack.undo() and not session.config.remesh
    assert stack.undo() and session.initial_mesh is textured
    assert stages.stage_of(session) == "appearance"
    with pytest.raises(ValueError, match="unknown stage"):
        stages.set_stage(session, "texture")


def test_start_from_each_choice_is_one_undo_step(session, tmp_path):
    stack = UndoStack(session, clock=Clock())
    demo_start = session.initial_mesh
    with pytest.raises(ValueError, match="no mesh was opened"):
        stages.start_from(session, "mesh")
    assert session.initial_mesh is demo_start and not stack.can_undo
    path = tmp_path / "cube.ply"
    rc.save_mesh(rc.cube(subdivisions=1), path)
    session.load_mesh(path)
    loaded = session.initial_mesh
    assert session.loaded_mesh[0] is loaded

    stages.start_from(session, "sphere")
    assert session.initial_mesh.num_vertices == rc.icosphere(
        subdivisions=stages.SPHERE_SUBDIVISIONS).num_vertices
    sigma = session.config.sigma
    stages.start_from(session, "hull")
    assert session.mesh_name.startswith("visual hull") and session.config.sigma < sigma
    hull = session.initial_mesh
    session.step()
    stages.start_from(session, "mesh")
    assert session.mesh_name == "cube.ply"
    assert torch.equal(session.initial_mesh.vertices, loaded.vertices)
    assert stack.undo() and session.initial_mesh is hull and session.steps == 1
    assert stack.undo() and session.config.sigma == sigma  # the hull's sigma goes with it
    assert session.initial_mesh.num_faces == 1280
    assert stack.undo() and session.initial_mesh is loaded
    assert stack.undo() and session.initial_mesh is demo_start
    assert not stack.can_undo
    with pytest.raises(ValueError, match="unknown start"):
        stages.start_from(session, "cube")


def test_a_start_without_texture_leaves_the_appearance_settings(session):
    session.step()
    stages.freeze_geometry(session)
    stages.start_from(session, "sphere")
    assert stages.stage_of(session) == "geometry"
    cfg = session.config
    assert not cfg.groups["texture"].enabled and cfg.groups["vertices"].enabled
    assert cfg.shading == "vertex_color"


def test_shape_preset_is_one_undo_step_and_keeps_the_render_settings(session):
    stack = UndoStack(session, clock=Clock())
    session.set_option(texture_size=256, model="dibr+aa")
    before = session.config.copy()
    for kind in rc.SHAPE_PRESETS:
        stages.apply_shape_preset(session, kind)
        preset = rc.shape_fit_config(kind, resolution=before.resolution)
        cfg = session.config
        for name in ("shading", "sigma", "large_steps", "views_per_step", "weights", "remesh"):
            assert getattr(cfg, name) == getattr(preset, name), name
        assert {n: g.enabled for n, g in cfg.groups.items()} == \
            {n: g.enabled for n, g in preset.groups.items()}
        assert cfg.groups["vertices"].lr == preset.groups["vertices"].lr
        assert cfg.groups["colors"].lr == before.groups["colors"].lr
        assert (cfg.resolution, cfg.texture_size, cfg.model) == (48, 256, "dibr+aa")
    assert stack.undo() and stack.undo() and session.config == before
    with pytest.raises(ValueError, match="unknown shape preset"):
        stages.apply_shape_preset(session, "glossy")
    session.step()
    stages.freeze_geometry(session)
    with pytest.raises(ValueError, match="Geometry stage"):
        stages.apply_shape_preset(session, "lit")


def test_remeshing_presets_take_the_cli_settings_and_the_best_one_starts_from_the_hull(
        session):
    """"silhouette + remeshing" is rc.shape_fit_config(..., remesh=True); the best shape fit
    also starts from the hull (as `fit --init hull --remesh`), and both undo in one step."""
    stack = UndoStack(session, clock=Clock())
    before, sphere = session.config.copy(), session.initial_mesh
    preset = rc.shape_fit_config("silhouette", resolution=48, remesh=True)
    for kind in ("silhouette+remesh", stages.BEST_SHAPE_FIT):
        line = stages.apply_shape_preset(session, kind)
        cfg = session.config
        for name in ("shading", "sigma", "large_steps", "views_per_step", "weights", "remesh",
                     "remesh_min_edge", "remesh_max_edge", "remesh_interval"):
            assert getattr(cfg, name) == getattr(preset, name), (kind, name)
        assert cfg.remesh and cfg.groups["vertices"].lr == preset.groups["vertices"].lr == 0.01
        assert cfg.resolution == 48
    assert "visual hull" in line and session.mesh_name.startswith("visual hull")
    hull = stages.hull_mesh(list(session.targets))
    assert session.initial_mesh.num_faces == hull.num_faces
    assert torch.equal(session.initial_mesh.vertices, hull.vertices)
    session.step()
    assert stack.undo() and session.initial_mesh is sphere and session.config.remesh
    assert stack.undo() and session.config == before
    with pytest.raises(ValueError, match="unknown shape preset"):
        stages.apply_shape_preset(session, "hull")
    alone = Session()  # the hull needs targets: refused, nothing changes
    alone.new_primitive("sphere", 2)
    mesh, config = alone.initial_mesh, alone.config
    with pytest.raises(ValueError, match="add target images first"):
        stages.apply_shape_preset(alone, stages.BEST_SHAPE_FIT)
    assert alone.initial_mesh is mesh and alone.config is config


def test_remesh_options_round_trip_and_a_refusal_changes_nothing(session):
    stack = UndoStack(session, clock=Clock())
    session.set_option(remesh=True, remesh_min_edge=0.02, remesh_max_edge=0.2,
                       remesh_interval=3)
    cfg = session.config
    assert (cfg.remesh, cfg.remesh_min_edge, cfg.remesh_max_edge, cfg.remesh_interval) == \
        (True, 0.02, 0.2, 3)
    with pytest.raises(ValueError, match="remesh_min_edge"):
        session.set_option(remesh_min_edge=0.5)
    with pytest.raises(ValueError, match="UV texture"):
        session.set_option(shading="texture")
    assert session.config == cfg
    assert stack.undo() and not session.config.remesh and not stack.can_undo


def test_the_first_mesh_is_the_base_of_the_undo_history(tmp_path):
    s = Session()
    stack = UndoStack(s, clock=Clock())
    s.new_primitive("sphere", 1)
    assert not stack.can_undo  # no way back to "no mesh" while the viewport shows one
    first = s.initial_mesh
    s.new_primitive("cube", 1)
    assert stack.undo() and s.initial_mesh is first and not stack.can_undo
