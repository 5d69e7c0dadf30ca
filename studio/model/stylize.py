"""Style transfer and DeepDream as session problems (NMR's applications), with no Qt.

:func:`start_style_transfer` and :func:`start_dream` turn a session's current mesh into the
start of a new fit whose loss is a :mod:`render_core.objectives` objective: the fit is then a
normal one (steps, live views, pause, revert, sessions, export). Its one target is what the
render panel shows beside the render: the style image (style transfer; the objective reads it
as the style) or the start mesh's own render (DeepDream), seen from :func:`display_camera`.

Both check everything (image, weights file, layer, settings) and build the fit once before
touching the session: a bad input raises (``files.LoadError``, ``FeatureError``,
``ValueError``) and changes nothing.
"""

from __future__ import annotations

import os

import numpy as np
import torch

import render_core as rc
from render_core.features import FeatureError, load_features
from render_core.fit import GROUPS, FitConfig, Fitter, ParamGroup, TargetView
from render_core.objectives import objective_spec

from . import files
from .session import Session

__all__ = ["FeatureError", "display_camera", "feature_layers", "procedural_style",
           "start_dream", "start_style_transfer", "style_image"]

STYLE_SIDE = 256  # the style image is centre-cropped to a square and resampled to this side
DEFAULT_RESOLUTION = 128
# Learning rates chosen on the acceptance scenes (tests/test_stylize.py): colours move fast,
# vertices slowly, as NMR's setting (vertices 0.01 x the textures' rate) does.
DEFAULT_LR = {"vertices": 0.01, "colors": 0.1, "texture": 0.1}
# Vertices move with the Large Steps parameterisation (render_core.large_steps; the paper's
# lambda): whole regions move together, so the style reshapes the surface without spikes.
LARGE_STEPS = 19.0
DISPLAY_VIEW = (30.0, 30.0)  # azimuth, elevation of the view the render panel shows


def style_image(path: str | os.PathLike) -> np.ndarray:
    """Read a style image: sRGB [S,S,3] float32, centre-cropped square, :data:`STYLE_SIDE`.
    Raises :class:`files.LoadError` naming the file."""
    rgb, _ = files.load_image(path)
    h, w = rgb.shape[:2]
    if min(h, w) < 8:
        raise files.LoadError(path, f"image of {w}x{h} pixels is too small for a style")
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    square = torch.from_numpy(np.ascontiguousarray(rgb[top:top + s, left:left + s]))
    out = torch.nn.functional.interpolate(square.permute(2, 0, 1)[None], size=(STYLE_SIDE,) * 2,
                                          mode="area" if s > STYLE_SIDE else "bilinear")
    return out[0].permute(1, 2, 0).clamp(0, 1).numpy().astype(np.float32)


def procedural_style(kind: str = "stripes", size: int = STYLE_SIDE, seed: int = 0
                     ) -> np.ndarray:
    """A style image made in code, sRGB [size,size,3]: ``"stripes"`` (three-colour diagonal
    bands) or ``"painting"`` (random coloured brush strokes over a warm ground)."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) / size
    if kind == "stripes":
        band = np.floor((x + 0.6 * y) * 6).astype(int) % 3
        palette = np.array([[0.9, 0.2, 0.1], [0.1, 0.3, 0.9], [0.95, 0.85, 0.2]])
        return palette[band].astype(np.float32)
    if kind != "painting":
        raise ValueError(f"unknown procedural style {kind!r}; use stripes or painting")
    rng = np.random.default_rng(seed)
    img = np.empty((size, size, 3))
    img[:] = (0.85, 0.6, 0.3)
    palette = np.array([[0.1, 0.2, 0.6], [0.95, 0.8, 0.2], [0.8, 0.15, 0.1], [0.1, 0.5, 0.3],
                        [0.95, 0.95, 0.9]])
    for _ in range(160):  # short oriented strokes: a Van Gogh-ish swirl field
        cx, cy = rng.uniform(0, 1, 2)
        angle = np.sin(6 * cx) + np.cos(5 * cy) + rng.normal(0, 0.2)
        u = (x - cx) * np.cos(angle) + (y - cy) * np.sin(angle)
        v = -(x - cx) * np.sin(angle) + (y - cy) * np.cos(angle)
        stroke = (np.abs(u) < rng.uniform(0.05, 0.12)) & (np.abs(v) < 0.012)
        img[stroke] = palette[rng.integers(len(palette))] * rng.uniform(0.8, 1.0)
    return img.astype(np.float32)


def feature_layers(features: str = "random") -> tuple[list[str], list[int], str]:
    """``(layer names, their channel counts, the default DeepDream layer)`` of an extractor
    (``"random"`` or a VGG weights path). Raises ``FeatureError``."""
    ext = load_features(features)
    return list(ext.layers), [ext.channels(s) for s in ext.layers], ext.dream_layer


def display_camera(mesh: rc.Mesh, spec: dict) -> tuple[float, float, float, float]:
    """``(azimuth, elevation, distance, fov)`` of the view shown beside the style image: the
    objective's distance (in bounding radii) and fov, looking at the origin."""
    v = mesh.vertices.detach().double()
    centre = (v.min(0).values + v.max(0).values) / 2
    radius = float((v - centre).norm(dim=-1).max())
    dist = spec["distance"] * radius + float(centre.norm())
    return DISPLAY_VIEW[0], DISPLAY_VIEW[1], max(dist, 1e-3), spec["fov"]


def _config(base: FitConfig, spec: dict, groups, resolution: int) -> FitConfig:
    cfg = base.copy()
    wanted = set(groups)
    if not wanted or wanted - {"vertices", "colors", "texture"}:
        raise ValueError(f"the groups that move must come from vertices, colors, texture; "
                         f"got {sorted(wanted)}")
    for g in GROUPS:
        cfg.groups[g] = ParamGroup(g in wanted, DEFAULT_LR.get(g, cfg.groups[g].lr))
    cfg.shading = "lambertian"  # shape shows through shading, as in NMR's renders
    cfg.resolution = int(resolution)
    cfg.views_per_step = None
    cfg.large_steps = LARGE_STEPS
    cfg.camera_views = None
    cfg.objective = spec
    cfg.validate()
    return cfg


def _start(session: Session, spec: dict, target_image, groups, resolution: int,
           name: str) -> None:
    mesh = session.current_mesh()
    if mesh is None:
        raise RuntimeError("load a mesh first: style transfer and DeepDream change a mesh")
    spec = objective_spec(spec)
    load_features(spec["features"])  # a bad weights file fails here, before anything changes
    cam = display_camera(mesh, spec)
    if target_image is None:  # DeepDream: show the start mesh's own render beside the dream
        cfg0 = _config(session.config, {**spec}, groups, resolution)
        cfg0.objective = None
        grey = np.zeros((8, 8, 3), np.float32)
        probe = Fitter(mesh, [TargetView(grey, None, *cam, name="start")], cfg0)
        out = probe.render(0)
        rgb = rc.linear_to_srgb(out.rgb[0].clamp(0, 1)).numpy()
        target = TargetView(rgb, out.alpha[0].numpy(), *cam, name="start (from this view)")
    else:
        target = TargetView(target_image, np.ones(target_image.shape[:2], np.float32), *cam,
                            name="style")
    cfg = _config(session.config, spec, groups, resolution)
    Fitter(mesh, [target], cfg)  # builds the objective: layer, channel and size checks
    session.set_problem(mesh, name, [target], cfg)


def _name(session: Session, what: str) -> str:
    base = session.mesh_name.split(" · ")[0] or "mesh"
    return f"{base} · {what}"


def start_style_transfer(session: Session, style, *, features: str = "random",
                         weights: dict | None = None, groups=("vertices", "colors"),
                         resolution: int = DEFAULT_RESOLUTION, **options) -> None:
    """Make the session's current mesh the start of a style-transfer fit towards ``style``
    (a path, or an sRGB [H,W,3] array). ``weights`` override the objective's (``style``,
    ``content``, ``laplacian``, ``edge``, ``tv``); ``options`` are further objective settings
    (``views``, ``elevation``, ``seed``, ``layers``...)."""
    image = style_image(style) if isinstance(style, (str, os.PathLike)) else np.asarray(
        style, np.float32)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"a style image must be [H,W,3], got {image.shape}")
    spec = {"kind": "style", "features": features, "weights": dict(weights or {}), **options}
    _start(session, spec, image, groups, resolution, _name(session, "style transfer"))


def start_dream(session: Session, layer: str | None = None, channel: int | None = None, *,
                features: str = "random", weights: dict | None = None,
                groups=("vertices", "colors"), resolution: int = DEFAULT_RESOLUTION,
                **options) -> None:
    """Make the session's current mesh the start of a DeepDream fit raising ``layer``'s
    activations (``channel``: one channel; None: the extractor's default layer)."""
    spec = {"kind": "dream", "features": features, "layer": layer, "channel": channel,
            "weights": dict(weights or {}), **options}
    _start(session, spec, None, groups, resolution, _name(session, "DeepDream"))
