"""Remeshing inside the Fitter (FitConfig.remesh): topology changes, carried state, checkpoints.

Oracles: trimesh's watertightness/winding checks and a directed-edge count for the mesh; exact
equality of colours and moments at vertices a pass left where they were (found by position,
not by the remesher's own bookkeeping); a second Fitter restored from a checkpoint or a session
file for exact continuation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh

import render_core as rc
from render_core.camera import Camera
from render_core.fit import FitConfig, Fitter, ParamGroup, TargetView
from render_core.primitives import icosphere
from render_core.rasterize import rasterize
from render_core.uv import generate_uvs

RES = 40


@pytest.fixture(scope="module")
def targets():
    """6 silhouettes of an ellipsoid (the colour images are the masks)."""
    gt = icosphere(3)
    gt = rc.Mesh(gt.vertices * torch.tensor([1.0, 0.6, 0.8]), gt.faces)
    az = np.arange(6) * 60.0
    el = np.array([25.0, -20.0] * 3)
    cams = Camera.orbit(torch.tensor(az, dtype=torch.float32),
                        torch.tensor(el, dtype=torch.float32), 3.0, fov=50)
    m = (rasterize(cams.to_clip(gt.vertices.expand(6, -1, -1)), gt.faces, RES).face_idx >= 0)
    m = m.float().numpy()
    return [TargetView(np.repeat(m[i][..., None], 3, 2), m[i], az[i], el[i], 3.0, 50.0)
            for i in range(6)]


def config(**kw) -> FitConfig:
    cfg = FitConfig(resolution=RES, remesh=True, remesh_interval=2, remesh_min_edge=0.08,
                    remesh_max_edge=0.2, views_per_step=3)
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


def start(colors=None) -> rc.Mesh:
    s = icosphere(2)
    if colors is not None:
        s = s.with_(vertex_colors=torch.tensor(colors, dtype=torch.float32).expand(
            s.num_vertices, 3).clone())
    return s


def check_closed_manifold(v: np.ndarray, f: np.ndarray) -> None:
    tm = trimesh.Trimesh(v, f, process=False)
    assert tm.is_watertight and tm.is_winding_consistent
    # Every directed edge once, and its reverse once: closed, edge-manifold, oriented.
    d = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    assert len(np.unique(d, axis=0)) == len(d)
    assert set(map(tuple, d)) == set(map(tuple, d[:, ::-1]))
    assert tm.volume > 0  # counter-clockwise seen from outside
    assert len(np.unique(f)) == len(v)  # no unreferenced vertex
    assert (np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)
            > 1e-9).all()


def test_fit_remeshes_and_stays_closed_manifold(targets):
    f = Fitter(start(), targets, config())
    v0, f0 = f.base.num_vertices, f.faces.shape[0]
    first = f.step().loss
    counts = set()
    for _ in range(30):
        r = f.step()
        assert not r.rolled_back and math.isfinite(r.loss)
        m = f.current_mesh()
        counts.add((m.num_vertices, m.num_faces))
        check_closed_manifold(m.vertices.double().numpy(), m.faces.numpy())
        assert m.num_faces == 2 * m.num_vertices - 4  # genus 0 kept (Euler)
    assert f.remeshes == 15
    assert (v0, f0) not in counts and len(counts) > 2  # the edges of 0.3 were split
    assert r.loss < 0.5 * first


def test_constant_colours_stay_exact_through_remeshes(targets):
    c = (0.2, 0.55, 0.9)
    cfg = config()
    cfg.groups["colors"] = ParamGroup(False, 0.05)  # fixed colours, carried by every pass
    f = Fitter(start(c), targets, cfg)
    want = f.current_mesh().vertex_colors[0].clone()
    assert torch.allclose(want, torch.tensor(c), atol=1e-6)
    for _ in range(12):
        f.step()
    m = f.current_mesh()
    assert f.remeshes == 6 and m.num_vertices != 162
    assert torch.equal(m.vertex_colors, want.expand(m.num_vertices, 3))


@pytest.mark.parametrize("lam", [None, 5.0])
def test_moments_exact_at_kept_vertices(targets, lam):
    """The moments right after a pass: rows of vertices the pass left where they were equal
    the rows before it, bit for bit (vertices and colours groups; with large steps the
    u-space moments too); the step counts and the learning rates stay."""
    cfg = config(large_steps=lam)
    cfg.groups["colors"] = ParamGroup(True, 0.05)
    f = Fitter(start((0.5, 0.5, 0.5)), targets, cfg)
    captured = {}
    orig_rebase = f._rebase

    def rebase(res):
        opt = f._optimizer
        captured["old"] = {pg["name"]: {k: opt.state[pg["params"][0]][k].clone()
                                        for k in ("step", "exp_avg", "exp_avg_sq")}
                           for pg in opt.param_groups}
        captured["verts"] = (f.base.vertices + f._displacement()).detach().clone()
        orig_rebase(res)

    f._rebase = rebase
    partial = 0
    for _ in range(16):
        passes = f.remeshes
        f.step()  # the Adam update, then (every other step) the pass
        if f.remeshes == passes:
            continue
        old, verts = captured["old"], captured["verts"]
        new_v = f.base.vertices
        index = {tuple(p.tolist()): i for i, p in enumerate(verts)}
        pairs = [(j, index[tuple(p.tolist())]) for j, p in enumerate(new_v)
                 if tuple(p.tolist()) in index]
        partial += 0 < len(pairs) < new_v.shape[0]
        j, i = (torch.tensor(x) for x in zip(*pairs, strict=True))
        opt = f._optimizer
        for pg in opt.param_groups:
            st = opt.state[pg["params"][0]]
            assert torch.equal(st["step"], old[pg["name"]]["step"])
            for k in ("exp_avg", "exp_avg_sq"):
                assert st[k].shape[0] == new_v.shape[0]
                assert torch.equal(st[k][j], old[pg["name"]][k][i]), (pg["name"], k)
        assert torch.equal(f.offset, torch.zeros_like(f.offset))  # rebased
        assert {pg["name"]: pg["lr"] for pg in opt.param_groups} == {
            n: cfg.groups[n].lr for n in ("vertices", "colors")}
    assert f.remeshes == 8 and partial >= 1  # a pass that kept some vertices, moved others


@pytest.mark.parametrize("lam", [None, 5.0])
def test_checkpoint_restore_continues_identically(targets, lam):
    f = Fitter(start(), targets, config(large_steps=lam))
    for _ in range(7):
        f.step()
    assert f.remeshes == 3 and f.base.num_vertices != 162
    g = Fitter(start(), targets, config(large_steps=lam))
    g.restore(f.checkpoint())
    assert g.faces.shape == f.faces.shape
    for _ in range(5):  # over another pass
        a, b = f.step(), g.step()
        assert a.loss == b.loss
    assert torch.equal(f.current_mesh().vertices, g.current_mesh().vertices)
    assert torch.equal(f.faces, g.faces)


def test_session_file_continues_identically(targets, tmp_path):
    from studio.model.store import SessionData, read_session, write_session

    cfg = config(large_steps=5.0)
    f = Fitter(start(), targets, cfg)
    for _ in range(5):
        f.step()
    path = write_session(tmp_path / "s.zip", SessionData(start(), "sphere", targets, cfg, [],
                                                         f.checkpoint()))
    data = read_session(path)
    g = data.fitter
    assert torch.equal(g.faces, f.faces)
    for _ in range(3):
        assert g.step().loss == f.step().loss


def test_old_checkpoint_without_topology_restores_on_the_start_mesh(targets):
    f = Fitter(start(), targets, config(remesh=False))
    f.step()
    ck = f.checkpoint()
    for k in ("base_vertices", "faces", "remesh_ref_length", "remesh_steps"):
        ck["state"].pop(k)
    g = Fitter(start(), targets, config(remesh=False))
    g.restore(ck)
    assert g.step().loss == f.step().loss


def test_checkpoint_validation_names_bad_members(targets):
    f = Fitter(start(), targets, config())
    for _ in range(3):
        f.step()
    ck = f.checkpoint()
    g = Fitter(start(), targets, config())

    def bad(**changes):
        return {**ck, "state": {**ck["state"], **changes}}

    nv = ck["state"]["base_vertices"].shape[0]
    with pytest.raises(ValueError, match="offset has shape"):
        g.restore(bad(offset=torch.zeros(162, 3)))  # the start's V, not the state's
    with pytest.raises(ValueError, match="faces index outside"):
        g.restore(bad(faces=ck["state"]["faces"] + nv))
    with pytest.raises(ValueError, match="both base_vertices and faces"):
        g.restore(bad(faces=None))
    with pytest.raises(ValueError, match="remesh_ref_length"):
        g.restore(bad(remesh_ref_length=torch.zeros(nv)))
    with pytest.raises(ValueError, match="optimizer vertices.exp_avg"):
        opt = {**ck["optimizer"], "vertices": {**ck["optimizer"]["vertices"], "moments": [
            {**ck["optimizer"]["vertices"]["moments"][0], "exp_avg": torch.zeros(162, 3)}]}}
        g.restore({**ck, "optimizer": opt})
    assert g.faces.shape[0] == 320 and g.steps == 0  # nothing changed
    # Faces in range but not a closed surface (one face gone): refused for a remeshing fit.
    st = ck["state"]
    holed = {**ck, "state": {**st, "faces": st["faces"][1:]}, "optimizer": {}}
    with pytest.raises(ValueError, match="closed, manifold"):
        Fitter(start(), targets, config()).restore(holed)


def test_mirror_adopts_another_topology(targets):
    f = Fitter(start((0.3, 0.6, 0.1)), targets, config(large_steps=5.0))
    for _ in range(6):
        f.step()
    mirror = Fitter(start((0.3, 0.6, 0.1)), targets, config(remesh=False))
    mirror.load_state(f.state())
    a, b = f.current_mesh(), mirror.current_mesh()
    assert torch.equal(a.faces, b.faces)
    assert torch.allclose(a.vertices, b.vertices, atol=1e-5)  # through another offset space
    assert torch.equal(a.vertex_colors, b.vertex_colors)
    assert mirror.render(0).alpha.shape[-2:] == (RES, RES)
    assert math.isfinite(mirror.step().loss)  # a mirror that is stepped rebuilt its optimizer
    mirror.load_state(f.state())  # and back again, same topology: values only
    assert torch.equal(mirror.faces, f.faces)


def test_texture_shown_refuses_remeshing(targets):
    s = icosphere(2)
    uv = generate_uvs(s.vertices, s.faces, 16)
    textured = s.with_(uvs=uv[0], face_uvs=uv[1], texture=torch.full((16, 16, 3), 0.4))
    with pytest.raises(ValueError, match="UV texture"):
        Fitter(textured, targets, config())
    f = Fitter(textured, targets, config(remesh=False))
    with pytest.raises(ValueError, match="UV texture"):
        f.apply_config(config())
    assert f.config.remesh is False
    # With vertex colours the texture is not shown: remeshing goes on and drops the UVs.
    coloured = textured.with_(vertex_colors=torch.full((s.num_vertices, 3), 0.5))
    g = Fitter(coloured, targets, config())
    for _ in range(4):
        g.step()
    assert g.remeshes == 2 and g.uvs is None and g.current_mesh().texture is None


def test_open_mesh_refuses_remeshing(targets):
    s = icosphere(2)
    open_mesh = rc.Mesh(s.vertices, s.faces[1:])
    with pytest.raises(ValueError, match="closed, manifold"):
        Fitter(open_mesh, targets, config())


def test_divergence_right_after_a_remesh(targets):
    f = Fitter(start(), targets, config())
    f.step()
    f.step()
    assert f.remeshes == 1
    forward = f._forward

    def broken(views=None):
        out, terms, total = forward(views)
        return out, terms, total * float("nan")

    f._forward = broken
    r = f.step()  # a non-finite loss with nothing to undo: rolled back, not undone
    assert r.rolled_back and not r.undone and f.steps == 2
    f._forward = forward
    r = f.step()
    assert not r.rolled_back and math.isfinite(r.loss) and f.steps == 3
    # A step that overflows right after a pass is rolled back onto the remeshed mesh.
    f.step()
    assert f.remeshes == 2
    faces = f.faces.clone()
    cfg = f.config.copy()
    cfg.groups["vertices"] = ParamGroup(True, 1e300)
    f.apply_config(cfg)
    r = f.step()
    assert r.rolled_back and "vertices" in r.lr_halved
    assert torch.equal(f.faces, faces) and torch.isfinite(f.current_mesh().vertices).all()


def test_automatic_edge_lengths_follow_the_pixel_size(targets):
    from render_core._fit_remesh import AUTO_MAX_PIXELS, AUTO_MIN_PIXELS, edge_range

    px = rc.pixel_size(RES, 3.0, 50.0)
    lo, hi = edge_range(config(remesh_min_edge=None, remesh_max_edge=None), RES, targets,
                        icosphere(2).vertices)
    assert lo == pytest.approx(AUTO_MIN_PIXELS * px)
    assert hi == pytest.approx(max(AUTO_MAX_PIXELS, 2 * AUTO_MIN_PIXELS) * px)
    lo2, hi2 = edge_range(config(remesh_min_edge=None, remesh_max_edge=None), 2 * RES, targets,
                          icosphere(2).vertices)
    assert lo2 == pytest.approx(lo / 2)
    lo3, hi3 = edge_range(config(remesh_min_edge=0.3, remesh_max_edge=None), RES, targets,
                          icosphere(2).vertices)
    assert lo3 == 0.3 and hi3 >= 0.6


def test_cli_remesh_options_reach_the_fit_and_the_session(tmp_path, capsys):
    from studio.__main__ import main
    from studio.model.store import read_session

    session, out = tmp_path / "s.zip", tmp_path / "out"
    assert main(["fit", "--demo", "--remesh", "--remesh-edge", "auto,0.3", "--remesh-interval",
                 "3", "--steps", "7", "--quiet", "--session", str(session),
                 "--out", str(out)]) == 0
    assert "faces" in capsys.readouterr().out
    data = read_session(session)
    cfg = data.config
    assert cfg.remesh and cfg.remesh_max_edge == 0.3 and cfg.remesh_min_edge is None
    assert cfg.remesh_interval == 3
    g = data.fitter
    assert g.steps == 7 and g.faces.shape[0] != data.mesh.num_faces  # the topology it reached
    exported = rc.load_mesh(out / "mesh.ply")
    assert exported.num_faces == g.faces.shape[0]
    # Continued from the file: the session's own settings, two more passes.
    assert main(["fit", "--steps", "6", "--quiet", "--session", str(session),
                 "--out", str(out)]) == 0
    assert read_session(session).fitter.steps == 13
    for bad in (["--remesh-edge", "0.2,0.1"], ["--remesh-edge", "x"],
                ["--remesh-interval", "0"]):
        assert main(["fit", "--demo", *bad, "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("dibr-studio: error: --remesh") and "\n" not in err


def test_cli_init_hull_remesh_uses_the_shape_preset(tmp_path, capsys):
    import json

    from studio.__main__ import main

    out = tmp_path / "hull"
    assert main(["fit", "--demo", "--init", "hull", "--remesh", "--hull-resolution", "48",
                 "--hull-faces", "1500", "--steps", "5", "--quiet", "--out", str(out)]) == 0
    doc = json.loads((out / "history.json").read_text())
    want = rc.shape_fit_config("silhouette", doc["config"]["resolution"], remesh=True)
    assert doc["config"]["remesh"] is True
    assert doc["config"]["large_steps"] == want.large_steps
    assert doc["config"]["groups"] == json.loads(json.dumps(want.to_dict()["groups"]))


def test_session_revert_save_open_across_topologies(tmp_path):
    """The studio's model: snapshots of other topologies revert, and a saved session reopens
    and continues with the identical next loss."""
    from studio.model.session import Session

    s = Session()
    s.load_demo()
    s.set_option(remesh=True, remesh_interval=2, remesh_min_edge=0.04, remesh_max_edge=0.09)
    s.snapshot_every = 2
    meshes = {}
    for _ in range(6):
        k = s.step()["step"]
        meshes[k] = s.current_mesh()
    assert len({m.num_faces for m in meshes.values()} | {s.initial_mesh.num_faces}) >= 3
    assert s.revert_to_step(2) == 2
    reverted = s.current_mesh()
    assert torch.equal(reverted.faces, meshes[2].faces)
    assert torch.allclose(reverted.vertices, meshes[2].vertices, atol=1e-6)
    for _ in range(3):
        s.step()
    path = s.save(tmp_path / "s.zip")
    t = Session()
    t.open(path)
    assert t.current_mesh().num_faces == s.current_mesh().num_faces
    assert t.step()["total"] == s.step()["total"]
