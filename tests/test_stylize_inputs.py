"""Style transfer / DeepDream: bad inputs (one clear line, nothing changed), the CLI, the
weights loader's checks, the loss terms' gradients, and continuing a fit exactly."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from _stylize import fake_vgg_state_dict

import render_core as rc
from render_core.features import FeatureError, load_features, vgg_features
from render_core.fit import FitConfig, Fitter
from render_core.objectives import objective_spec
from render_core.style_losses import activation_norm, color_tv, edge_stretch, gram, style_distance
from studio.__main__ import main
from studio.model import files
from studio.model.session import Session
from studio.model.stylize import procedural_style, start_dream, start_style_transfer

SENTINEL = "stylize_pickle_ran"


class _Payload:
    """Unpickling this would create a file: a weights loader must never run it."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture
def sphere(tmp_path):
    path = tmp_path / "sphere.ply"
    rc.save_mesh(rc.icosphere(subdivisions=2), path)
    return path


@pytest.fixture
def style_png(tmp_path):
    path = tmp_path / "stripes.png"
    files.write_png(path, procedural_style("stripes", 48))
    return path


def _bad_inputs(tmp_path) -> dict:
    text = tmp_path / "notes.png"
    text.write_text("this is not an image\n")
    wrong = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(4, 3, 7, 7), "fc.bias": torch.zeros(2)}, wrong)
    pickled = tmp_path / "model.pth"
    torch.save({"features.0.weight": torch.zeros(4, 3, 3, 3),
                "payload": _Payload(tmp_path / SENTINEL)}, pickled)
    return {"text": text, "wrong": wrong, "pickled": pickled}


def _state(s: Session):
    return (s.mesh_name, s.generation, tuple(s.targets), s.config, s.initial_mesh.num_vertices)


@pytest.mark.parametrize("case", ["text", "wrong", "pickled", "layer"])
def test_bad_input_is_one_line_and_changes_nothing(tmp_path, case):
    bad = _bad_inputs(tmp_path)
    s = Session()
    s.set_mesh(rc.icosphere(subdivisions=1), "sphere")
    before = _state(s)
    with pytest.raises((files.LoadError, FeatureError, ValueError)) as info:
        if case == "text":
            start_style_transfer(s, bad["text"])
        elif case == "layer":
            start_dream(s, "conv9_9")
        else:
            start_style_transfer(s, procedural_style("stripes", 32), features=str(bad[case]))
    message = str(info.value)
    assert "\n" not in message
    if case != "layer":
        assert bad[case].name in message
    expected = {"text": "cannot|not|unreadable", "wrong": "VGG", "pickled": "pickled",
                "layer": "conv9_9"}[case]
    assert any(word in message for word in expected.split("|")), message
    assert _state(s) == before
    assert not (tmp_path / SENTINEL).exists()


@pytest.mark.parametrize("case", ["text", "wrong", "pickled"])
def test_cli_bad_input_exits_2_with_one_line(tmp_path, sphere, style_png, capsys, case):
    bad = _bad_inputs(tmp_path)
    out = tmp_path / "out"
    style = bad["text"] if case == "text" else style_png
    argv = ["stylize", "--mesh", str(sphere), "--style", str(style), "--steps", "1",
            "--out", str(out), "--quiet"]
    if case != "text":
        argv += ["--features", str(bad[case])]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("dibr-studio: error:")
    assert bad[case].name in err
    assert not out.exists()
    assert not (tmp_path / SENTINEL).exists()


def test_cli_stylize_and_dream_write_their_outputs(tmp_path, sphere, style_png):
    out = tmp_path / "styled"
    assert main(["stylize", "--mesh", str(sphere), "--style", str(style_png), "--steps", "2",
                 "--resolution", "32", "--views", "1", "--out", str(out), "--quiet"]) == 0
    for name in ("mesh.obj", "mesh.ply", "mesh.glb", "contact_sheet.png", "history.json",
                 "before_after.png"):
        assert (out / name).is_file(), name
    dream = tmp_path / "dream"
    assert main(["dream", "--mesh", str(sphere), "--layer", "conv2_1", "--steps", "2",
                 "--resolution", "32", "--views", "1", "--out", str(dream), "--quiet"]) == 0
    assert (dream / "mesh.ply").is_file()


def test_vgg_loader_checks_layout_and_shapes(tmp_path):
    sd = fake_vgg_state_dict("VGG-19", width=4)
    path = tmp_path / "vgg19.pth"
    torch.save(sd, path)
    ext = vgg_features(path)
    assert ext.layers[-1] == "conv5_4" and len(ext.layers) == 16
    assert ext.style_layers == ["conv1_2", "conv2_2", "conv3_4", "conv4_4"]
    broken = dict(sd)
    broken["features.7.weight"] = torch.zeros(4, 5, 3, 3)  # conv2_2 fed 5 channels, not 4
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(FeatureError, match="conv2_2"):
        vgg_features(tmp_path / "broken.pth")
    bn = {k.replace("features.2.", "features.3."): v for k, v in sd.items()}  # BN-shifted
    torch.save(bn, tmp_path / "bn.pth")
    with pytest.raises(FeatureError, match="VGG"):
        vgg_features(tmp_path / "bn.pth")
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(FeatureError, match="plain.pkl"):
        load_features(str(tmp_path / "plain.pkl"))


def test_style_distance_is_zero_for_the_style_and_grads_match_differences():
    torch.manual_seed(0)
    f = torch.rand(2, 3, 4, 5, dtype=torch.float64)
    grams = {"a": gram(f[:1])[0]}
    assert float(style_distance({"a": f[:1]}, grams, ["a"])) == 0.0
    x = torch.rand(1, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: style_distance({"a": t}, grams, ["a"]), (x,))
    assert torch.autograd.gradcheck(lambda t: activation_norm(t, 1), (x,))
    cover = torch.rand(1, 8, 10, dtype=torch.float64, requires_grad=True)  # pooled to 4x5
    assert torch.autograd.gradcheck(
        lambda t, a: style_distance({"a": t}, grams, ["a"], a), (x, cover))
    full = torch.ones(1, 8, 10, dtype=torch.float64)  # full coverage: the plain Gram matrix
    assert torch.allclose(style_distance({"a": x}, grams, ["a"], full),
                          style_distance({"a": x}, grams, ["a"]))
    faces = rc.icosphere(subdivisions=0).faces
    v0 = rc.icosphere(subdivisions=0).vertices.double()
    v = (v0 + 0.05 * torch.randn_like(v0)).requires_grad_(True)
    assert float(edge_stretch(v0, v0, faces)) == 0.0
    assert torch.autograd.gradcheck(lambda t: edge_stretch(t, v0, faces), (v,))
    c = torch.rand(v0.shape[0], 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: color_tv(t, faces), (c,))


def test_objective_spec_refuses_bad_settings():
    with pytest.raises(ValueError, match="kind"):
        objective_spec({"kind": "paint"})
    with pytest.raises(ValueError, match="weight"):
        objective_spec({"kind": "style", "weights": {"style": -1.0}})
    with pytest.raises(ValueError, match="elevation"):
        objective_spec({"kind": "dream", "elevation": [40, 20]})
    cfg = FitConfig(objective={"kind": "style", "views": 0})
    with pytest.raises(ValueError, match="views"):
        cfg.validate()


def test_a_continued_fit_draws_the_same_views_and_matches(tmp_path):
    s = Session()
    s.set_mesh(rc.icosphere(subdivisions=2), "sphere")
    start_style_transfer(s, procedural_style("painting", 48), resolution=32, views=2)
    for _ in range(3):
        s.step()
    path = s.save(tmp_path / "style.zip")
    s.step()
    reopened = Session()
    reopened.open(path)
    assert reopened.config.objective["kind"] == "style"
    reopened.step()
    a, b = s.fitter().current_mesh(), reopened.fitter().current_mesh()
    assert torch.allclose(a.vertices, b.vertices, atol=1e-5)
    assert np.isclose(s.history[-1]["total"], reopened.history[-1]["total"], rtol=1e-4)
    fresh = Fitter(s.initial_mesh, s.targets, s.config)
    assert fresh.objective is not None and fresh.objective.kind == "style"
