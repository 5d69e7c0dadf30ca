"""Texture fitting: projection of the targets as the start, a smoothness term, and a warning
when the texture is far finer than the renders it is fitted from (issue 19, item 7).

The scene: a UV sphere with a known texture (a checker over two gradients), rendered from six
orbit cameras at twice the fit resolution (photos are larger than the renders a fit uses).
A texture-only fit on the true geometry is scored by its PSNR against the truth over the texels
some target sees."""

from __future__ import annotations

import warnings

import pytest
import torch

import render_core as rc
from render_core.fit import GROUPS, FitConfig, Fitter, ParamGroup, TargetView
from render_core.losses import texture_tv
from render_core.texture_project import project_texture, texel_coverage_warning

SIZE, RES, PHOTO, STEPS = 96, 48, 96, 60
VIEWS = ((0, 20), (60, -15), (120, 30), (180, 0), (240, -25), (300, 15))


def _truth(size: int) -> torch.Tensor:
    r = torch.arange(size)
    cell = ((r[:, None] // (size // 8) + r[None] // (size // 8)) % 2).float()
    g = torch.linspace(0.0, 1.0, size)
    return torch.stack([0.15 + 0.7 * cell, 0.2 + 0.6 * g[None].expand(size, size),
                        0.8 - 0.6 * g[:, None].expand(size, size)], -1)


@pytest.fixture(scope="module")
def scene():
    mesh = rc.uv_sphere(16, 32)
    truth = _truth(SIZE)
    cams = rc.Camera.orbit([a for a, _ in VIEWS], [e for _, e in VIEWS], 3.0, fov=50.0)
    out = rc.Renderer(PHOTO, shading="texture", sigma=1e-5).render(mesh.with_(texture=truth),
                                                                    cams)
    rgb = rc.linear_to_srgb(out.rgb.clamp(0, 1)).numpy()
    mask = out.frags.mask.float().numpy()
    targets = [TargetView(rgb[i], mask[i], a, e, 3.0, 50.0) for i, (a, e) in enumerate(VIEWS)]
    seen = project_texture(mesh.vertices, mesh.faces, mesh.uvs, mesh.face_uvs, cams, out.rgb,
                           out.frags.mask.float(), SIZE).seen
    return mesh, truth, targets, seen


def _config(project: bool, tv: float | None) -> FitConfig:
    cfg = FitConfig(resolution=RES, shading="texture", texture_size=SIZE, project_texture=project)
    cfg.groups = {g: ParamGroup(g == "texture", 0.05) for g in GROUPS}
    if tv is not None:
        cfg.weights["texture_tv"] = tv
    return cfg


def _psnr(tex: torch.Tensor, truth: torch.Tensor, seen: torch.Tensor) -> float:
    mse = ((tex - truth) ** 2)[seen].mean()
    return float(-10.0 * torch.log10(mse))


def _noise(tex: torch.Tensor, seen: torch.Tensor) -> float:
    """Mean absolute difference of horizontally neighbouring seen texels, in 1/255."""
    both = seen[:, 1:] & seen[:, :-1]
    return float((tex[:, 1:] - tex[:, :-1]).abs().mean(-1)[both].mean()) * 255


def _fit(scene, project: bool, tv: float | None) -> tuple[float, float, float]:
    mesh, truth, targets, seen = scene
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 96 texels from 48-pixel renders: warned, on purpose
        f = Fitter(mesh, targets, _config(project, tv))
    start = _psnr(f.current_mesh().texture, truth, seen)
    for _ in range(STEPS):
        m = f.step()
        assert not m.rolled_back
    tex = f.current_mesh().texture
    return start, _psnr(tex, truth, seen), _noise(tex, seen)


def test_projected_start_and_smoothness_beat_the_colour_start(scene):
    # Today's fit: the texture starts from the mesh's colours (grey: it has none), no smoothness.
    base_start, base, base_noise = _fit(scene, project=False, tv=0.0)
    # The defaults: projection of the targets, then descent with the smoothness term.
    start, final, noise = _fit(scene, project=True, tv=None)
    truth_noise = _noise(scene[1], scene[3])
    print(f"\nPSNR over seen texels (dB): colour start {base_start:.2f} -> {base:.2f} after "
          f"{STEPS} steps; projected start {start:.2f} -> {final:.2f}. Neighbour difference "
          f"(1/255): colour start {base_noise:.2f}, projected {noise:.2f}, truth "
          f"{truth_noise:.2f}")
    assert final >= base + 3.0
    assert abs(final - start) <= 2.0
    assert start >= base  # the projection alone already beats today's whole fit


def test_texture_tv_penalises_noise_more_than_edges():
    flat = torch.full((64, 64, 3), 0.4, dtype=torch.float64)
    assert float(texture_tv(flat)) == 0.0
    checker = _truth(64).double()  # 8x8 texel cells
    torch.manual_seed(0)
    noisy = (flat + 0.1 * torch.randn_like(flat)).clamp(0, 1)
    # A few strong edges cost less than small differences everywhere (L1, not L2).
    assert float(texture_tv(checker)) < float(texture_tv(noisy))
    noisy.requires_grad_(True)
    texture_tv(noisy[None]).backward()
    assert torch.isfinite(noisy.grad).all() and float(noisy.grad.abs().sum()) > 0


def test_projection_sees_only_the_front_from_one_camera():
    mesh = rc.uv_sphere(12, 24)
    tex = _truth(32)
    cam = rc.Camera.orbit([0.0], [0.0], 3.0, fov=50.0)
    out = rc.Renderer(64, shading="texture", sigma=1e-5).render(mesh.with_(texture=tex), cam)
    p = project_texture(mesh.vertices, mesh.faces, mesh.uvs, mesh.face_uvs, cam, out.rgb,
                        out.frags.mask.float(), 32)
    # u = 0.5 (columns 12..19) faces -Z, away from a camera on +Z; u near 0/1 faces it.
    assert not p.seen[:, 12:20].any()
    assert p.seen[4:28, [0, 1, 30, 31]].all()
    err = (p.texture - tex).abs()[p.seen & (torch.arange(32)[None] % 4 != 3)]
    assert float(err.mean()) < 0.1


def test_a_texture_much_finer_than_the_renders_is_warned():
    assert texel_coverage_warning(64, 64) is None
    assert "texels per pixel" in texel_coverage_warning(512, 128)
    mesh = rc.uv_sphere(8, 16)
    cam = rc.Camera.orbit([0.0], [0.0], 3.0, fov=50.0)
    out = rc.Renderer(16, sigma=1e-5).render(mesh, cam)
    targets = [TargetView(out.rgb[0].numpy(), out.frags.mask[0].float().numpy(), 0.0, 0.0,
                          3.0, 50.0)]
    cfg = FitConfig(resolution=16, shading="texture", texture_size=64)
    cfg.groups = {g: ParamGroup(g == "texture", 0.05) for g in GROUPS}
    with pytest.warns(UserWarning, match="texels per pixel"):
        f = Fitter(mesh, targets, cfg)
    cfg.resolution = 32
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f.apply_config(cfg)  # 2 texels per pixel: fine


def test_settings_saved_before_the_smoothness_term_load_with_its_default():
    d = FitConfig().to_dict()
    del d["weights"]["texture_tv"]
    cfg = FitConfig.from_dict(d)
    cfg.validate()
    assert cfg.weights["texture_tv"] == FitConfig().weights["texture_tv"] > 0
