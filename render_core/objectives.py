"""Objectives other than fitting target images: 2D-to-3D style transfer and 3D DeepDream (NMR).

A :class:`~render_core.fit.Fitter` whose :attr:`FitConfig.objective` is set runs one of these
instead of its target losses; everything else of a fit stays (parameter groups, Adam, rollback
of diverging steps, checkpoints, the studio's live views and sessions). The setting is plain
JSON data (:func:`objective_spec` fills in the defaults):

``kind``
    ``"style"``: make renders carry the style of **target 0's image** (the style image; its
    camera is only the one the studio shows the render from). ``"dream"``: raise the
    activations of ``layer`` (``channel``: one of its channels, None: all).
``features``
    ``"random"`` (the built-in extractor) or the path of a VGG-16/19 ``state_dict``
    (:mod:`render_core.features`). ``layers``: the style layers (None: the extractor's).
``weights``
    ``style`` / ``dream`` (the objective), ``content`` (1 - soft silhouette IoU against the
    *starting* mesh's silhouettes from the same views), ``laplacian`` (uniform Laplacian of the
    displacement from the start: keeps the start's detail), ``edge`` (relative change of edge
    lengths), ``tv`` (total variation of the vertex colours, or of the texture when it moves).
``views``, ``elevation``, ``distance``, ``distance_noise``, ``fov``, ``seed``
    Each step renders ``views`` cameras at random azimuths (all round), elevations uniform in
    ``elevation`` (degrees), distance ``distance`` × (1 ± ``distance_noise``) in bounding
    radii of the start mesh, looking at its centre. They are drawn from ``seed`` and the step
    number, so a continued fit draws the same views as an uninterrupted one.

Renders are composited over the style image's mean colour (style) or the extractor's input
mean (dream: the background then excites little) with
the soft silhouette as alpha, so silhouettes pull on the shape too. The style term is
:func:`~render_core.style_losses.style_distance` (relative Gram distance, about 1 for unrelated
images) of the object's pixels: each layer's Gram matrix weighs pixels by the silhouette, so
the background's colour does not count as part of the style; the dream term is
``norm0 / norm``, the start's activation norm (from 8 fixed views) over the current one: about
1 at the start, a third when the norm has tripled.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch

from .camera import Camera
from .color import linear_to_srgb
from .features import load_features
from .losses import hard_iou, iou, laplacian, texture_tv
from .rasterize import soft_silhouette
from .style_losses import activation_norm, color_tv, edge_stretch, style_distance

__all__ = ["OBJECTIVE_TERMS", "Objective", "objective_spec", "view_cameras"]

OBJECTIVE_TERMS = ("style", "dream")
"""Loss terms only objectives report (besides iou, laplacian, edge and texture_tv)."""

# NMR's style_transfer_3d settings where they carry over: elevation 20-40 degrees, distance
# 2.732 (for a mesh normalised to a unit box), distance noise 0.1, a batch of 4 views, and
# its viewing angle of 30 degrees, which is a half-angle there: a fov of 60 here. Its
# weights (style 1, content 2e9, tv 1e7) are for unnormalised VGG Gram matrices; ours are for
# the relative Gram distance above and were chosen on the acceptance scenes (tests/).
_DEFAULTS = {
    "style": {"weights": {"style": 1.0, "content": 5.0, "laplacian": 4.0, "edge": 1.0,
                          "tv": 0.1, "dream": 0.0}},
    "dream": {"weights": {"dream": 1.0, "content": 5.0, "laplacian": 4.0, "edge": 1.0,
                          "tv": 0.0, "style": 0.0}},
}
_COMMON = {"features": "random", "layers": None, "layer": None, "channel": None, "views": 4,
           "elevation": [20.0, 40.0], "distance": 2.732, "distance_noise": 0.1, "fov": 60.0,
           "seed": 0}
WEIGHT_NAMES = ("style", "dream", "content", "laplacian", "edge", "tv")


def _number(spec: dict, key: str, lo: float, hi: float) -> float:
    v = spec[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= float(v) <= hi:
        raise ValueError(f"objective {key} must be a number in [{lo:g}, {hi:g}], got {v!r}")
    return float(v)


def objective_spec(spec: dict) -> dict:
    """The objective ``spec`` with every default filled in, validated (a new dict).

    Raises ``ValueError`` naming the first bad field. Files are not read here."""
    if not isinstance(spec, dict) or spec.get("kind") not in _DEFAULTS:
        kind = spec.get("kind") if isinstance(spec, dict) else spec
        raise ValueError(f"objective kind must be 'style' or 'dream', got {kind!r}")
    unknown = set(spec) - set(_COMMON) - {"kind", "weights"}
    if unknown:
        raise ValueError(f"unknown objective setting(s) {sorted(unknown)}")
    out = {**copy.deepcopy(_COMMON), **copy.deepcopy(_DEFAULTS[spec["kind"]]),
           **copy.deepcopy({k: v for k, v in spec.items() if k != "weights"})}
    weights = spec.get("weights") or {}
    if not isinstance(weights, dict) or set(weights) - set(WEIGHT_NAMES):
        raise ValueError(f"objective weights must name terms of {WEIGHT_NAMES}")
    out["weights"].update(weights)
    for k, w in out["weights"].items():
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not (
                math.isfinite(w) and w >= 0):
            raise ValueError(f"objective weight {k} must be a finite number >= 0, got {w!r}")
    if not isinstance(out["features"], str) or not out["features"]:
        raise ValueError("objective features must be 'random' or the path of a weights file")
    if out["layers"] is not None and (not isinstance(out["layers"], list) or not out["layers"]
                                      or not all(isinstance(s, str) for s in out["layers"])):
        raise ValueError(f"objective layers must be a list of layer names, got {out['layers']!r}")
    if out["layer"] is not None and not isinstance(out["layer"], str):
        raise ValueError(f"objective layer must be a layer name, got {out['layer']!r}")
    ch = out["channel"]
    if ch is not None and (isinstance(ch, bool) or not isinstance(ch, (int, np.integer))
                           or ch < 0):
        raise ValueError(f"objective channel must be a whole number >= 0 or None, got {ch!r}")
    v = out["views"]
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 1 <= v <= 64:
        raise ValueError(f"objective views must be a whole number in 1..64, got {v!r}")
    el = out["elevation"]
    if (not isinstance(el, (list, tuple)) or len(el) != 2
            or not all(isinstance(e, (int, float)) and not isinstance(e, bool) for e in el)
            or not -89.0 <= el[0] <= el[1] <= 89.0):
        raise ValueError(f"objective elevation must be [low, high] within -89..89, got {el!r}")
    out["elevation"] = [float(el[0]), float(el[1])]
    _number(out, "distance", 1.05, 100.0)
    _number(out, "distance_noise", 0.0, 0.5)
    _number(out, "fov", 5.0, 120.0)
    if isinstance(out["seed"], bool) or not isinstance(out["seed"], (int, np.integer)):
        raise ValueError(f"objective seed must be a whole number, got {out['seed']!r}")
    return out


def _bounds(vertices: torch.Tensor) -> tuple[torch.Tensor, float]:
    lo, hi = vertices.min(0).values, vertices.max(0).values
    centre = (lo + hi) / 2
    return centre, float((vertices - centre).norm(dim=-1).max().clamp_min(1e-6))


def view_cameras(spec: dict, vertices: torch.Tensor, seed, count: int | None = None,
                 aspect: float = 1.0) -> Camera:
    """The random cameras of ``spec`` (:func:`objective_spec`) around ``vertices`` (the
    start mesh's), drawn from ``seed`` (an int or a list of ints): ``count`` of them
    (default ``spec["views"]``)."""
    n = int(spec["views"] if count is None else count)
    rng = np.random.default_rng(seed)
    az = rng.uniform(0.0, 360.0, n)
    el = rng.uniform(*spec["elevation"], n)
    noise = spec["distance_noise"]
    centre, radius = _bounds(vertices.detach())
    dist = spec["distance"] * radius * (1.0 + rng.uniform(-noise, noise, n))
    dt = vertices.dtype
    return Camera.orbit(torch.tensor(az, dtype=dt), torch.tensor(el, dtype=dt),
                        torch.tensor(dist, dtype=dt), at=centre, fov=spec["fov"], aspect=aspect)


class Objective:
    """One objective bound to a Fitter's problem: the extractor, the style's Gram matrices
    (or the start's activation norm) and the start mesh. Built by the Fitter from
    ``config.objective``; raises ``ValueError`` (:class:`~render_core.features.FeatureError`
    for a bad weights file) when the setting cannot run."""

    def __init__(self, spec: dict, fitter) -> None:
        self.spec = spec = objective_spec(spec)
        self.kind = spec["kind"]
        self.features = load_features(spec["features"])
        ext = self.features
        self.layers = [ext.check_layer(s) for s in (spec["layers"] or ext.style_layers)]
        self.layer = ext.check_layer(spec["layer"] or ext.dream_layer)
        if spec["channel"] is not None and spec["channel"] >= ext.channels(self.layer):
            raise ValueError(f"layer {self.layer} has {ext.channels(self.layer)} channels; "
                             f"channel {spec['channel']} does not exist")
        self.v0 = fitter.base.vertices.detach()
        h, w = fitter.resolution
        self.aspect = w / h
        self.reference: torch.Tensor | None = None  # the start's alpha at the last views
        style = fitter.target_images()[0][0]  # [H,W,3] sRGB at the fit's resolution
        if self.kind == "style":
            self.background = style.reshape(-1, 3).mean(0).detach()
            with torch.no_grad():
                feats = ext(style[None], self.layers)
            self.grams = {k: (f.reshape(f.shape[1], -1) @ f.reshape(f.shape[1], -1).T
                              / (f.shape[2] * f.shape[3])) for k, f in feats.items()}
        else:
            # The extractor's mean colour: zero input, so the background excites little.
            self.background = ext.mean.reshape(3).to(style.dtype)
            centre, radius = _bounds(self.v0)
            with torch.no_grad():
                cams = Camera.orbit(torch.arange(8, dtype=self.v0.dtype) * 45.0,
                                    sum(spec["elevation"]) / 2, spec["distance"] * radius,
                                    at=centre, fov=spec["fov"], aspect=self.aspect)
                start = fitter.base
                if start.vertex_colors is None and fitter.config.groups["colors"].enabled:
                    start = start.with_(vertex_colors=torch.sigmoid(fitter._color_logit0))
                out = fitter.renderer.render(start, cams, light=fitter._light())
                self.norm0 = float(self.measure(out))

    def images(self, out) -> torch.Tensor:
        """sRGB images [B,H,W,3] the features see: the render over the background."""
        a = out.alpha[..., None]
        return linear_to_srgb(out.rgb.clamp(0.0, 1.0)) * a + self.background * (1 - a)

    def measure(self, out) -> torch.Tensor:
        """The objective's raw value on a render (a RenderOutput, differentiable): the style
        distance of the object's pixels (Gram matrices weighted by the soft silhouette), or
        the chosen activation norm over the whole image."""
        images = self.images(out)
        if self.kind == "style":
            return style_distance(self.features(images, self.layers), self.grams, self.layers,
                                  out.alpha)
        return activation_norm(self.features(images, [self.layer])[self.layer],
                               self.spec["channel"])

    def held_out(self, fitter, seed: int, count: int) -> tuple[float, float]:
        """``(raw value, hard silhouette IoU against the start)`` of the fit's current mesh
        on ``count`` views drawn from ``seed`` (one no step uses: views held out of the fit)."""
        cams = view_cameras(self.spec, self.v0, [seed], count, self.aspect)
        with torch.no_grad():
            out = fitter.renderer.render(fitter.current_mesh(), cams, light=fitter._light())
            ref = soft_silhouette(cams.to_clip(self.v0), fitter.faces, fitter.resolution,
                                  sigma=fitter.config.sigma)
            return float(self.measure(out)), hard_iou(out.alpha, ref)

    def forward(self, fitter, mesh):
        """Render ``mesh`` from this step's random views and evaluate every term:
        ``(output, terms, total)`` as :meth:`Fitter._forward`; :attr:`reference` is then the
        start's silhouettes from those views (the fit reports its hard IoU against them)."""
        spec, w = self.spec, self.spec["weights"]
        cams = view_cameras(spec, self.v0, [int(spec["seed"]), int(fitter.steps)],
                            aspect=self.aspect)
        out = fitter.renderer.render(mesh, cams, light=fitter._light())
        with torch.no_grad():
            self.reference = soft_silhouette(cams.to_clip(self.v0), fitter.faces,
                                             fitter.resolution, sigma=fitter.config.sigma,
                                             backend=fitter.config.backend)
        value = self.measure(out)
        zero = mesh.vertices.sum() * 0
        if self.kind == "style":
            terms = {"style": value}
        else:
            terms = {"dream": self.norm0 / value.clamp_min(1e-12)}
        verts = mesh.vertices
        moving = fitter.config.groups["vertices"].enabled
        terms["iou"] = iou(out.alpha, self.reference)
        terms["laplacian"] = laplacian(verts - self.v0, fitter.faces) if moving else zero
        terms["edge"] = edge_stretch(verts, self.v0, fitter.faces) if moving else zero
        if fitter.config.groups["texture"].enabled and fitter.tex_logit is not None:
            terms["texture_tv"] = texture_tv(torch.sigmoid(fitter.tex_logit))
        elif fitter.config.groups["colors"].enabled:
            terms["texture_tv"] = color_tv(torch.sigmoid(fitter.color_logit), fitter.faces)
        else:
            terms["texture_tv"] = zero
        scale = {"style": w["style"], "dream": w["dream"], "iou": w["content"],
                 "laplacian": w["laplacian"], "edge": w["edge"], "texture_tv": w["tv"]}
        total = sum(scale[k] * v for k, v in terms.items())
        return out, terms, total
