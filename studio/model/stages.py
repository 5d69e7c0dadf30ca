"""A shape fit in two stages the user can see, where it starts from, and shape presets. No Qt.

A UV texture cannot survive remeshing (the charts belong to faces that a split or a collapse
replaces), so a fit of geometry and appearance goes in two stages:

- **Geometry**: the vertices and their colours move, remeshing may change the mesh, no texture.
- **Appearance**: the geometry is frozen. :func:`freeze_geometry` makes the fitted mesh the
  start mesh, gives it a UV atlas (:func:`render_core.generate_uvs`) and bakes its vertex
  colours into a texture (:func:`render_core.bake_vertex_colors`), so the render does not
  change; then the texture (and light, camera) are fitted, remeshing off.

The stage is a property of the start mesh (:func:`stage_of`: a textured start is in the
Appearance stage), so undo, redo and saved sessions carry it with the mesh. Every action here is
one :meth:`Session.set_start <studio.model.session_start.StartEditing.set_start>` (mesh and
settings at once): one undo step, and a refusal changes nothing.

:func:`start_from` puts a shape fit's start back to a sphere, the targets' visual hull or the
mesh the user opened; :func:`apply_shape_preset` takes a preset's settings
(:func:`render_core.shape_fit_config`), or starts from the hull with the silhouette preset and
remeshing in one step (:data:`BEST_SHAPE_FIT`).
"""

from __future__ import annotations

import copy
import dataclasses

import torch

import render_core as rc
from render_core.fit import FitConfig, ParamGroup

from .session import Session
from .start import HULL_SIGMA, hull_mesh

STAGES = ("geometry", "appearance")
"""The two stages of a fit, in order."""

START_CHOICES = ("sphere", "hull", "mesh")
"""Where :func:`start_from` can start: an icosphere, the targets' visual hull, the opened mesh."""

SPHERE_SUBDIVISIONS = 3
"""Subdivisions of the icosphere :func:`start_from` starts from (642 vertices)."""

# Settings a shape preset leaves alone: they are about the render, the data and the texture,
# not about how the shape is fitted.
_PRESET_KEEPS = {"resolution", "backend", "texture_size", "camera_views", "project_texture",
                 "objective", "resolution_schedule", "model"}


def stage_of(session: Session) -> str:
    """``"appearance"`` when the start mesh carries a texture (frozen geometry), else
    ``"geometry"``."""
    mesh = session.initial_mesh
    return "appearance" if mesh is not None and mesh.has_texture else "geometry"


def _geometry_settings(config: FitConfig) -> FitConfig:
    """``config`` for the Geometry stage: vertices and colours on, texture off, no texture
    shading."""
    cfg = config.copy()
    for name, on in (("vertices", True), ("colors", True), ("texture", False)):
        cfg.groups[name] = ParamGroup(on, cfg.groups[name].lr)
    if cfg.shading == "texture":
        cfg.shading = "vertex_color"
    return cfg


def _appearance_settings(config: FitConfig) -> FitConfig:
    """``config`` for the Appearance stage: the texture on and shown, vertices and colours
    off, no remeshing; SoftRas (vertex colours only) gives way to DIB-R."""
    cfg = config.copy()
    for name, on in (("vertices", False), ("colors", False), ("texture", True)):
        cfg.groups[name] = ParamGroup(on, cfg.groups[name].lr)
    if cfg.shading == "vertex_color":
        cfg.shading = "texture"
    if cfg.model == "softras":
        cfg.model = "dibr"
    cfg.remesh = False
    return cfg


def _fitted(session: Session) -> rc.Mesh:
    if not session.ready:
        raise RuntimeError("load a mesh and at least one target first")
    mesh = session.current_mesh()
    if mesh is None:
        raise RuntimeError("there is no mesh to freeze")
    return mesh


def freeze_geometry(session: Session) -> str:
    """Go to the Appearance stage: the fitted mesh becomes the start mesh, with a UV atlas
    and its colours baked into a ``texture_size``² texture (a texture the fit already has is
    kept), and the settings of :func:`_appearance_settings`. One undo step. Returns a line for
    the status bar. Raises ``RuntimeError`` without a fit."""
    if stage_of(session) == "appearance":
        return "Already in the Appearance stage: the geometry is frozen"
    mesh = _fitted(session)
    config = _appearance_settings(session.config)
    if not mesh.has_texture:
        colors = mesh.vertex_colors
        if colors is None:  # what the fit renders without colours: the Fitter's grey
            colors = torch.full_like(mesh.vertices, 0.5)
        mesh = rc.bake_vertex_colors(mesh.with_(vertex_colors=colors), config.texture_size,
                                     backend=config.backend)
    steps = session.steps
    session.set_start(mesh, f"frozen geometry (step {steps})", config)
    return (f"Appearance stage: geometry frozen at step {steps} ({mesh.num_vertices:,} "
            f"vertices, {mesh.num_faces:,} faces); its colours baked into a "
            f"{config.texture_size}² texture, which the fit now optimises")


def back_to_geometry(session: Session) -> str:
    """Go back to the Geometry stage: the fitted mesh becomes the start mesh without its UVs
    and texture (the texture's colour at each vertex becomes its colour), with the settings of
    :func:`_geometry_settings`. One undo step (undo brings the texture back). Returns a line
    for the status bar."""
    if stage_of(session) == "geometry":
        return "Already in the Geometry stage"
    mesh = _fitted(session) if session.ready else session.initial_mesh.clone()
    colors = rc.texture_to_vertex_colors(mesh) if mesh.has_texture else mesh.vertex_colors
    mesh = mesh.with_(vertex_colors=colors, uvs=None, face_uvs=None, texture=None)
    session.set_start(mesh, f"{session.mesh_name}, texture dropped",
                      _geometry_settings(session.config))
    return ("Geometry stage: the texture was dropped (its colours kept per vertex, finer "
            "detail lost; Undo brings it back); vertices and colours move, remeshing allowed")


def set_stage(session: Session, stage: str) -> str:
    """Go to ``stage`` (one of :data:`STAGES`); returns a line for the status bar."""
    if stage == "appearance":
        return freeze_geometry(session)
    if stage == "geometry":
        return back_to_geometry(session)
    raise ValueError(f"unknown stage {stage!r}; choose one of {STAGES}")


def start_from(session: Session, kind: str) -> str:
    """Start the fit afresh from an icosphere (``"sphere"``), the visual hull of the targets'
    masks (``"hull"``, :meth:`Session.start_from_hull`) or the mesh the user opened
    (``"mesh"``, :attr:`Session.loaded_mesh`), in one undo step. A start without a texture
    gets Geometry-stage settings when the current ones fit a texture. Returns a line for the
    status bar; raises ``ValueError`` (nothing opened, masks that allow no hull) and then
    changes nothing."""
    if kind not in START_CHOICES:
        raise ValueError(f"unknown start {kind!r}; choose one of {START_CHOICES}")
    config = session.config.copy()
    if kind == "hull":
        if not session.targets:
            raise ValueError("add target images first: the hull is carved from their masks")
        mesh = hull_mesh(list(session.targets))
        name = f"visual hull ({mesh.num_faces} faces)"
        config.sigma = min(config.sigma, HULL_SIGMA)  # see Session.start_from_hull
    elif kind == "sphere":
        mesh = rc.icosphere(subdivisions=SPHERE_SUBDIVISIONS)
        name = f"sphere ({SPHERE_SUBDIVISIONS})"
    else:
        if session.loaded_mesh is None:
            raise ValueError("no mesh was opened to return to: open one with File ▸ Open mesh")
        mesh, name = session.loaded_mesh
    if mesh.has_texture:
        config.remesh = False
    elif _textured_settings(config):
        config = _geometry_settings(config)
    session.set_start(mesh, name, config)
    return f"Started from {name} ({mesh.num_vertices:,} vertices, {mesh.num_faces:,} faces)"


def _textured_settings(config: FitConfig) -> bool:
    return config.groups["texture"].enabled or config.shading == "texture"


SHAPE_CHOICES = {
    "silhouette": ("silhouette", False, False),
    "silhouette+remesh": ("silhouette", True, False),
    "lit": ("lit", False, False),
    "hull+silhouette+remesh": ("silhouette", True, True),
}
"""What the studio's preset list offers, ``name: (render_core preset, remeshing, start from
the hull)``: the two :data:`render_core.SHAPE_PRESETS`, the silhouette preset with continuous
remeshing (:func:`render_core.shape_fit_config` with ``remesh=True``), and
:data:`BEST_SHAPE_FIT`. The lit preset stays without remeshing (measured: no clear gain, see
:mod:`render_core.shape_presets`)."""

BEST_SHAPE_FIT = "hull+silhouette+remesh"
"""Start from the targets' visual hull and refine it with the silhouette preset and continuous
remeshing, in one step: the studio's ``dibr-studio fit --init hull --remesh``, the best shape
fit the project offers for silhouette targets."""


def _preset_settings(config: FitConfig, kind: str, remesh: bool) -> FitConfig:
    """``config`` with the settings of shape preset ``kind`` (see :func:`apply_shape_preset`)."""
    preset = rc.shape_fit_config(kind, resolution=config.resolution, remesh=remesh)
    new = config.copy()
    for f in dataclasses.fields(FitConfig):
        if f.name not in _PRESET_KEEPS | {"groups"}:
            setattr(new, f.name, copy.deepcopy(getattr(preset, f.name)))
    new.groups = {name: ParamGroup(g.enabled,
                                   g.lr if name == "vertices" else config.groups[name].lr)
                  for name, g in preset.groups.items()}
    return new


def apply_shape_preset(session: Session, kind: str) -> str:
    """Take the settings of the shape preset ``kind`` (a name of :data:`SHAPE_CHOICES`;
    :func:`render_core.shape_fit_config` at the session's resolution) in one undo step: which
    groups move, the vertex learning rate, loss weights, shading, sigma, large steps, views per
    step and remeshing; the render's resolution, backend, model and texture size stay, and so
    do the other groups' learning rates. :data:`BEST_SHAPE_FIT` also starts the fit afresh
    from the targets' visual hull (still one undo step). Geometry stage only (``ValueError``
    otherwise, and for masks that allow no hull; nothing changes then). Returns a line for the
    status bar."""
    if kind not in SHAPE_CHOICES:
        raise ValueError(f"unknown shape preset {kind!r}; choose one of "
                         f"{', '.join(SHAPE_CHOICES)}")
    if stage_of(session) != "geometry":
        raise ValueError("shape presets are for the Geometry stage: switch back to Geometry "
                         "first (the texture would be lost to the shape fit)")
    name, remesh, hull = SHAPE_CHOICES[kind]
    new = _preset_settings(session.config, name, remesh)
    if not hull:
        session.set_config(new)
        return f"Shape preset '{kind}' applied (Undo takes it back)"
    if not session.targets:
        raise ValueError("add target images first: the hull is carved from their masks")
    mesh = hull_mesh(list(session.targets))
    session.set_start(mesh, f"visual hull ({mesh.num_faces} faces)", new)
    return (f"Started from the visual hull ({mesh.num_vertices:,} vertices, "
            f"{mesh.num_faces:,} faces) with the silhouette preset and continuous remeshing "
            "(Undo takes both back)")
