"""FitConfig.model: the Fitter renders with the chosen gradient model, an RGB-only fit of an
occluding part moves with edge antialiasing and not with plain DIB-R, the setting is checked,
the default ("auto") antialiases colour losses only, and a saved session reopens with its
model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import render_core as rc
from render_core.fit import FitConfig, Fitter, ParamGroup, TargetView
from render_core.fit_config import FIT_MODELS
from studio.model import store

TRUTH = (0.22, -0.14)  # the sphere's true image-plane offset (world units)
RES = 48


def _scene(offset=(0.0, 0.0)) -> rc.Mesh:
    """An orange sphere in front of a blue wall that fills the view."""
    s = rc.icosphere(2, radius=0.35)
    wall = torch.tensor([[-2.0, -2, -0.5], [2, -2, -0.5], [2, 2, -0.5], [-2, 2, -0.5]])
    n = s.vertices.shape[0]
    v = torch.cat([s.vertices + torch.tensor([*offset, 0.0]), wall])
    faces = torch.cat([s.faces, torch.tensor([[0, 1, 2], [0, 2, 3]]) + n])
    col = torch.cat([torch.tensor([[0.9, 0.6, 0.2]]).expand(n, 3),
                     torch.tensor([[0.15, 0.3, 0.7]]).expand(4, 3)])
    return rc.Mesh(v, faces, vertex_colors=col.contiguous())


def _target() -> TargetView:
    cam = rc.Camera.orbit([0.0], [0.0], 3.0, fov=40.0)
    rgb = rc.Renderer(RES, edges="antialias", silhouette=False).render(_scene(TRUTH), cam).rgb
    img = rc.linear_to_srgb(rgb[0].clamp(0, 1)).numpy().astype(np.float32)
    return TargetView(img, np.ones((RES, RES), np.float32), 0.0, 0.0, 3.0, 40.0)


def _config(model: str) -> FitConfig:
    """RGB only: no silhouette term and no regulariser, geometry alone optimised."""
    cfg = FitConfig(resolution=RES, model=model)
    for g in cfg.groups:
        cfg.groups[g] = ParamGroup(g == "vertices", 0.01)
    cfg.weights = {k: 0.0 for k in cfg.weights}
    cfg.weights["l1"] = 1.0
    return cfg


def _sphere_coverage(fitter: Fitter, nsphere_faces: int) -> torch.Tensor:
    """Pixels [H,W] where the fitted sphere is the front surface."""
    fi = fitter.render(0).frags.face_idx[0]
    return (fi >= 0) & (fi < nsphere_faces)


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a & b).sum()) / float((a | b).sum())


def test_antialias_model_moves_an_occluding_part_plain_dibr_does_not():
    start, target = _scene(), _target()
    nsf = rc.icosphere(2).faces.shape[0]
    truth = Fitter(_scene(TRUTH), [target], _config("dibr"))
    want = _sphere_coverage(truth, nsf)
    results = {}
    for model in ("dibr", "dibr+aa"):
        fitter = Fitter(start, [target], _config(model))
        iou0 = _iou(_sphere_coverage(fitter, nsf), want)
        for _ in range(60):
            fitter.step()
        results[model] = (iou0, _iou(_sphere_coverage(fitter, nsf), want),
                          float(fitter.offset.detach().abs().max()))
    (iou0, iou_aa, _), (_, iou_dibr, moved_dibr) = results["dibr+aa"], results["dibr"]
    assert iou0 < 0.6
    # Antialiasing: the sphere's coverage reaches the target's.
    assert iou_aa > 0.9, results
    # Plain DIB-R: flat colours on both sides of the occlusion edge give the vertices no
    # gradient from RGB, so nothing moves.
    assert moved_dibr < 1e-6, results  # round-off only
    assert iou_dibr == pytest.approx(iou0)


def test_fitter_builds_the_chosen_renderer_and_refuses_unsupported():
    start, target = _scene(), _target()
    got = {}
    for model in FIT_MODELS:
        r = Fitter(start, [target], FitConfig(resolution=16, model=model)).renderer
        got[model] = (r.model, r.edges)
    assert got == {"dibr": ("dibr", "hard"), "dibr+aa": ("dibr", "antialias"),
                   "softras": ("softras", "hard"), "nmr": ("nmr", "hard")}
    with pytest.raises(ValueError, match="model"):
        FitConfig(model="nerf").validate()
    with pytest.raises(ValueError, match="softras.*vertex_color"):
        FitConfig(model="softras", shading="lambertian").validate()
    cfg = FitConfig(model="softras")
    cfg.groups["texture"] = ParamGroup(True, 0.05)
    with pytest.raises(ValueError, match="texture group"):
        cfg.validate()
    # Switching the model of a running fit rebuilds its renderer.
    f = Fitter(start, [target], FitConfig(resolution=16, model="dibr"))
    assert f.renderer.edges == "hard"
    f.apply_config(FitConfig(resolution=16, model="dibr+aa"))
    assert f.renderer.edges == "antialias"


def test_the_default_model_antialiases_colour_losses_only():
    """FitConfig's default model ("auto") renders with edge antialiasing when the loss has a
    colour term: the RGB-only occlusion fit above then moves the sphere into place. Without
    a colour loss it renders plain DIB-R (the same image as "dibr", not "dibr+aa"'s), and it
    follows the loss weights of a running fit."""
    start, target = _scene(), _target()
    nsf = rc.icosphere(2).faces.shape[0]
    want = _sphere_coverage(Fitter(_scene(TRUTH), [target], _config("dibr")), nsf)
    plain = Fitter(start, [target], _config("dibr")).render(0).rgb
    aa = Fitter(start, [target], _config("dibr+aa")).render(0).rgb
    assert not torch.equal(plain, aa)  # the occlusion edge is blended

    cfg = _config("dibr")
    cfg.model = FitConfig().model  # the default setting, with the L1 colour term alone
    fitter = Fitter(start, [target], cfg)
    assert fitter.rendering_model == "dibr+aa"
    assert torch.equal(fitter.render(0).rgb, aa)
    iou0 = _iou(_sphere_coverage(fitter, nsf), want)
    for _ in range(60):
        fitter.step()
    iou = _iou(_sphere_coverage(fitter, nsf), want)
    assert iou0 < 0.6 and iou > 0.9, (iou0, iou)  # plain DIB-R stays at iou0 (test above)

    cfg.weights.update(l1=0.0, iou=1.0)  # silhouette only: no antialiasing
    silhouette = Fitter(start, [target], cfg)
    assert silhouette.rendering_model == "dibr"
    assert torch.equal(silhouette.render(0).rgb, plain)
    fitter.apply_config(cfg)  # a running fit follows its weights
    assert fitter.rendering_model == "dibr" and fitter.renderer.edges == "hard"
    # Style transfer and DeepDream losses are on the rendered colours too.
    cfg.objective = {"kind": "style", "views": 0}
    assert cfg.has_colour_loss() and cfg.rendering_model() == "dibr+aa"
    # An explicit model is kept whatever the losses.
    cfg.model = "dibr"
    assert cfg.rendering_model() == "dibr"


def test_session_reopens_with_its_model(tmp_path):
    start, target = _scene(), _target()
    cfg = _config("dibr+aa")
    fitter = Fitter(start, [target], cfg)
    fitter.step()
    path = store.write_session(tmp_path / "s.dibr", store.SessionData(
        start, "scene", [target], cfg, [], fitter.checkpoint()))
    data = store.read_session(path)
    assert data.config.model == "dibr+aa"
    assert data.fitter.config.model == "dibr+aa"
    assert data.fitter.renderer.edges == "antialias"
    # A settings document from before the field existed opens with plain DIB-R.
    d = cfg.to_dict()
    del d["model"]
    assert FitConfig.from_dict(d).model == "dibr"
    assert FitConfig.from_dict(FitConfig().to_dict()).model == FitConfig().model == "auto"


def test_cli_model_option(tmp_path, capsys):
    from studio.__main__ import main
    from studio.cli import build_parser, prepare_fit

    args = build_parser().parse_args(["--demo", "--model", "dibr+aa", "--out", "x"])
    assert prepare_fit(args).config.model == "dibr+aa"
    # softras with lighting: one line naming the limitation, exit 2.
    argv = ["fit", "--demo", "--model", "softras", "--shading", "lambertian", "--steps", "0",
            "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "softras" in err and "vertex_color" in err
    assert main(["fit", "--demo", "--model", "nerf", "--out", str(tmp_path / "o")]) == 2
    assert "--model" in capsys.readouterr().err
    # The summary names the model the fit rendered with: "auto" resolved.
    args = build_parser().parse_args(["--demo", "--out", "x"])
    assert prepare_fit(args).config.model == "auto"
    argv = ["fit", "--demo", "--steps", "1", "--resolution", "16", "--quiet",
            "--out", str(tmp_path / "a")]
    assert main(argv) == 0
    assert ", model dibr+aa; wrote" in capsys.readouterr().out  # the demo has the L1 term
    assert main([*argv[:-1], str(tmp_path / "b"), "--weight", "l1=0"]) == 0
    assert ", model dibr; wrote" in capsys.readouterr().out


def test_session_option_sets_the_model():
    from studio.model.session import Session

    s = Session()
    s.set_option(model="dibr+aa")
    assert s.config.model == "dibr+aa"
    with pytest.raises(ValueError, match="model"):
        s.set_option(model="nerf")
    assert s.config.model == "dibr+aa"  # a refusal changes nothing
