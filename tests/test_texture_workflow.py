"""Texture workflows: generated UVs, vertex-colour baking, and exports that re-import to the
same render (OBJ, GLB, PLY; fitted vertex colours and fitted textures)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from PIL import Image

import render_core as rc
from render_core.bake import dilate, uv_fragments
from render_core.fit import GROUPS, FitConfig, ParamGroup, TargetView
from render_core.uv import atlas_uvs, generate_uvs
from studio.model.session import Session

RES = 40


def _target_views(views=((0, 15), (120, -10), (240, 35))) -> list[TargetView]:
    """A squashed sphere with smooth colours, seen from a few orbit cameras (sRGB targets)."""
    base = rc.icosphere(subdivisions=2)
    v = base.vertices * torch.tensor([1.2, 0.85, 1.0])
    colors = (0.5 + 0.45 * torch.sin(2.5 * base.vertices + torch.tensor([0.0, 1.0, 2.0])))
    mesh = rc.Mesh(v, base.faces, vertex_colors=colors)
    cams = rc.Camera.orbit([a for a, _ in views], [e for _, e in views], 3.0, fov=50.0)
    out = rc.Renderer(RES, sigma=1e-5).render(mesh, cams)
    rgb = rc.linear_to_srgb(out.rgb.clamp(0, 1)).numpy()
    mask = out.frags.mask.float().numpy()
    return [TargetView(rgb[i], mask[i], a, e, 3.0, 50.0) for i, (a, e) in enumerate(views)]


def _config(kind: str, shading: str) -> FitConfig:
    cfg = FitConfig(resolution=RES, shading=shading, texture_size=64)
    on = {"vertices", "colors"} if kind == "colors" else {"vertices", "texture"}
    cfg.groups = {g: ParamGroup(g in on, 0.05 if g != "vertices" else 0.01) for g in GROUPS}
    return cfg


def _renders(session: Session) -> tuple[np.ndarray, np.ndarray]:
    """sRGB renders [N,H,W,3] of every target view and their coverage [N,H,W]."""
    out = session.fitter().render(None)
    return rc.linear_to_srgb(out.rgb.clamp(0, 1)).numpy(), out.frags.mask.numpy()


@pytest.fixture(scope="module")
def targets():
    return _target_views()


_FITS: dict[tuple[str, str], Session] = {}


def _fitted(kind: str, shading: str, targets) -> Session:
    """A session after a short fit from an icosphere without UVs or colours (cached)."""
    if (kind, shading) not in _FITS:
        s = Session()
        s.set_mesh(rc.icosphere(subdivisions=2), "start")
        s.set_targets(targets)
        s.set_config(_config(kind, shading))
        first = s.step()["total"]
        for _ in range(15):
            last = s.step()
        assert last["total"] < first and not last["rolled_back"]
        _FITS[kind, shading] = s
    return _FITS[kind, shading]


def test_atlas_uvs_keep_faces_and_do_not_overlap():
    mesh = rc.icosphere(subdivisions=2)
    uvs, face_uvs = atlas_uvs(mesh.vertices, mesh.faces, size=256)
    assert face_uvs.shape == mesh.faces.shape
    assert float(uvs.min()) >= 0.0 and float(uvs.max()) <= 1.0
    # Every face owns texels: nothing is hidden behind another chart, nothing is degenerate.
    frags = uv_fragments(uvs, face_uvs, 256)
    hit = torch.unique(frags.face_idx[frags.face_idx >= 0])
    assert len(hit) == mesh.num_faces
    # The same texels, rasterized face by face, are never claimed twice.
    total = sum(int((uv_fragments(uvs, face_uvs[i:i + 1], 256).face_idx >= 0).sum())
                for i in range(0, mesh.num_faces, 40))
    owned = sum(int((frags.face_idx == i).sum()) for i in range(0, mesh.num_faces, 40))
    assert total == owned


def test_generate_uvs_falls_back_to_spherical_without_xatlas(monkeypatch):
    mesh = rc.icosphere(subdivisions=1)
    monkeypatch.setitem(sys.modules, "xatlas", None)  # import xatlas now raises ImportError
    uvs, face_uvs = generate_uvs(mesh.vertices, mesh.faces)
    assert uvs.shape == (3 * mesh.num_faces, 2) and face_uvs.shape == mesh.faces.shape


def test_dilation_grows_charts_by_whole_rings():
    tex = torch.zeros(9, 9, 3)
    covered = torch.zeros(9, 9, dtype=torch.bool)
    tex[4, 4] = torch.tensor([0.2, 0.4, 0.6])
    covered[4, 4] = True
    out = dilate(tex, covered, 2)
    ring = out[2:7, 2:7]
    assert torch.allclose(ring, tex[4, 4].expand_as(ring))
    assert float(out[1].abs().sum() + out[:, 1].abs().sum()) == 0.0


def test_baked_texture_renders_like_the_vertex_colours():
    torch.manual_seed(0)
    mesh = rc.icosphere(subdivisions=2)
    mesh = mesh.with_(vertex_colors=torch.rand(mesh.num_vertices, 3))  # worst case: noise
    baked = rc.bake_vertex_colors(mesh, size=512)
    assert baked.texture.shape == (512, 512, 3) and torch.equal(baked.faces, mesh.faces)
    cams = rc.Camera.orbit([0.0, 130.0, 250.0], [10.0, -30.0, 50.0], 3.0, fov=50.0)
    a = rc.Renderer(64, shading="vertex_color").render(mesh, cams)
    b = rc.Renderer(64, shading="texture").render(baked, cams)
    assert torch.equal(a.frags.face_idx, b.frags.face_idx)
    cov = a.frags.mask
    diff = (rc.linear_to_srgb(a.rgb) - rc.linear_to_srgb(b.rgb.clamp(0, 1))).abs()[cov]
    assert float(diff.mean()) < 0.5 / 255
    # And back: the texture sampled at each vertex gives the colours again (bilinear taps
    # around a vertex mix in its neighbours' colours a little, hence the looser bound).
    back = rc.texture_to_vertex_colors(baked)
    assert float((back - mesh.vertex_colors).abs().mean()) < 0.03


@pytest.mark.slow  # the exports bake 1024² textures
@pytest.mark.parametrize("kind,shading,suffix", [
    ("colors", "vertex_color", ".obj"), ("colors", "vertex_color", ".glb"),
    ("colors", "vertex_color", ".ply"), ("colors", "lambertian", ".obj"),
    ("colors", "lambertian", ".glb"), ("colors", "lambertian", ".ply"),
    ("texture", "vertex_color", ".obj"), ("texture", "vertex_color", ".glb"),
    ("texture", "lambertian", ".glb"),
])
def test_export_reimports_to_the_same_render(targets, kind, shading, suffix, tmp_path):
    """Export the fitted mesh, open the file as the start of a session with the same targets
    and settings, and compare the sRGB renders of every target view over the pixels both
    cover: mean absolute error under 1/255. (A texture in PLY: see the next test.)"""
    session = _fitted(kind, shading, targets)
    before, cov_before = _renders(session)
    path = tmp_path / f"fit{suffix}"
    written = session.export_mesh(path)
    assert path in written
    again = Session()
    again.set_targets(targets)
    again.set_config(session.config)
    again.load_mesh(path)
    after, cov_after = _renders(again)
    cov = cov_before & cov_after
    assert cov.sum() > 0.99 * cov_before.sum()
    mae = float(np.abs(before - after)[cov].mean())
    print(f"{kind} {session.config.shading} {suffix}: MAE {mae * 255:.3f}/255")
    assert mae < 1.0 / 255

    loaded = rc.load_mesh(path)
    if suffix == ".ply":
        assert loaded.vertex_colors is not None and loaded.texture is None
    else:
        assert loaded.has_texture
    if suffix == ".obj":
        png = path.with_suffix(".png")
        assert f"map_Kd {png.name}" in path.with_suffix(".mtl").read_text()
        # The PNG holds the sRGB encoding of the (linear) texture the fit rendered with.
        mesh = session.current_mesh()
        if kind == "texture":
            expected = rc.linear_to_srgb(mesh.texture).numpy() * 255
            stored = np.asarray(Image.open(png).convert("RGB"), dtype=np.float64)
            assert np.abs(stored - expected).max() <= 0.5 + 1e-3


def test_ply_of_a_texture_fit_carries_its_colours(targets, tmp_path):
    """PLY holds no texture: it gets the texture's colour at each vertex instead."""
    session = _fitted("texture", "vertex_color", targets)
    path = tmp_path / "fit.ply"
    session.export_mesh(path)
    loaded = rc.load_mesh(path)
    assert loaded.texture is None
    expected = rc.linear_to_srgb(rc.texture_to_vertex_colors(session.current_mesh()))
    got = rc.linear_to_srgb(loaded.vertex_colors)
    assert float((got - expected).abs().max()) <= 0.5 / 255 + 1e-4


def test_texture_fit_keeps_the_mesh_uvs_and_the_chosen_size(targets):
    """A mesh with UVs keeps them; one without gets an atlas; the texture starts from the
    colours the mesh showed, so switching the texture group on does not change the render."""
    sphere = rc.uv_sphere()
    cfg = _config("texture", "vertex_color")
    cfg.texture_size = 48
    f = rc.Fitter(sphere, targets, cfg)
    assert torch.equal(f.uvs, sphere.uvs) and torch.equal(f.face_uvs, sphere.face_uvs)
    assert f.current_mesh().texture.shape == (48, 48, 3)

    colored = rc.icosphere(subdivisions=2)
    colored = colored.with_(vertex_colors=0.5 + 0.4 * colored.vertices)
    cfg = _config("colors", "vertex_color")
    f = rc.Fitter(colored, targets, cfg)
    before = f.render(None)
    cfg.groups["texture"] = ParamGroup(True, 0.05)
    cfg.texture_size = 256
    f.apply_config(cfg)
    assert f.face_uvs.shape == colored.faces.shape and f.uvs.shape[0] < 3 * colored.num_faces
    after = f.render(None)
    cov = before.frags.mask
    diff = (rc.linear_to_srgb(before.rgb) - rc.linear_to_srgb(after.rgb))[cov].abs()
    assert float(diff.mean()) < 1.0 / 255
    assert f.step().loss > 0
    # Another size resamples the texture fitted so far, and the optimizer follows.
    after = f.render(None)
    cfg.texture_size = 128
    f.apply_config(cfg)
    assert f.current_mesh().texture.shape == (128, 128, 3)
    assert any(p is f.tex_logit for pg in f._optimizer.param_groups for p in pg["params"])
    smaller = f.render(None)
    cov = after.frags.mask
    diff = (rc.linear_to_srgb(after.rgb) - rc.linear_to_srgb(smaller.rgb))[cov].abs()
    assert float(diff.mean()) < 1.0 / 255
    assert not f.step().rolled_back


def test_switching_from_colours_to_a_texture_keeps_the_fitted_look(targets):
    """Issue 19.3: fit vertex colours, then untick Colours and tick Texture: the new texture
    starts from the fitted colours (the look is kept), not from grey or from the photos."""
    from render_core.fit import Fitter

    f = Fitter(rc.icosphere(subdivisions=2), targets, _config("colors", "vertex_color"))
    for _ in range(40):
        f.step()
    before = rc.linear_to_srgb(f.render(None).rgb.clamp(0, 1))
    cfg = f.config.copy()
    cfg.groups["colors"] = ParamGroup(False, 0.05)
    cfg.groups["texture"] = ParamGroup(True, 0.05)
    f.apply_config(cfg)
    out = f.render(None)
    after = rc.linear_to_srgb(out.rgb.clamp(0, 1))
    cover = out.frags.mask.bool()
    err = (after - before).abs()[cover].mean().item()
    grey = (before - rc.linear_to_srgb(torch.tensor(0.5))).abs()[cover].mean().item()
    assert grey > 0.05  # the fit has moved the colours well away from the grey start
    assert err < 0.05 * grey, f"texture differs from the fitted colours by {err:.4f}"
