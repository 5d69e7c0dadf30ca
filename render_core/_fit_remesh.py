"""Continuous remeshing inside the Fitter (``FitConfig.remesh``): the mesh's topology follows
the fit.

A mixin of :class:`render_core.fit.Fitter`. While ``config.remesh`` is on and the ``vertices``
group is optimised, the Fitter keeps a :class:`~render_core.remesh.ContinuousRemesher`. After
every accepted step the per-vertex reference edge length adapts to how fast each vertex still
moves (:func:`~render_core.remesh.relative_speed` of the vertex group's Adam moments); every
``remesh_interval`` accepted steps the current mesh (start + displacement) is remeshed, and

- the colour logits and every per-vertex Adam moment (``vertices`` and ``colors`` groups) are
  carried through :meth:`RemeshResult.remap` (an unchanged vertex keeps its values exactly; a
  split vertex gets its edge's mean, a collapse the mean of both ends); the step counts, the
  learning rates and the other groups' moments stay as they are, so Adam goes on, not anew;
- the fit is *rebased*: the remeshed vertices become ``base``, the new faces ``faces``, the
  offset 0 (with ``large_steps`` the Cholesky factor of ``I + lambda L`` is made for the new
  faces). Rebasing changes no vertex: the loss right after a pass differs from the one before
  only by what the pass itself changed;
- the one-step undo of :mod:`render_core._fit_divergence` is dropped (it holds tensors of the
  old topology), and UVs a mesh came with are dropped (they name the old faces; a texture that
  is shown refuses remeshing, see :meth:`FitRemesh._check_remesh`).

With ``large_steps`` the vertex group's moments live in ``u = (I + lambda L) d`` space, and
``L`` changes with the faces: remapping them vertex by vertex is an approximation (the one the
Large Steps paper's remeshing makes), exact only where the neighbourhood did not change.

Automatic edge lengths (``remesh_min_edge`` / ``remesh_max_edge`` None) follow the render:
with ``px`` the world size of one pixel of the current render level at the targets' median
camera distance and field of view (:func:`render_core.pixel_size`) and ``size`` the diagonal
of the current mesh's bounding box,

- min = ``max(AUTO_MIN_PIXELS * px, size / AUTO_MAX_DIVISIONS)``: finer than about a pixel
  no loss can see, and never so fine that the mesh explodes when it fills few pixels;
- max = ``max(2 * min, min(AUTO_MAX_PIXELS * px, size / AUTO_MIN_DIVISIONS))``.

A length given in the config wins; the other one is then kept at least a factor 2 away.
"""

from __future__ import annotations

import statistics

import torch

from .limits import get_limits
from .mesh import Mesh
from .remesh import ContinuousRemesher, RemeshError, RemeshResult, relative_speed, remesh
from .resolution_schedule import pixel_size

AUTO_MIN_PIXELS = 1.0
"""Automatic smallest edge length, in pixels at the targets' distance (see the module notes)."""
AUTO_MAX_PIXELS = 2.0
"""Automatic largest edge length, in pixels at the targets' distance."""
AUTO_MIN_DIVISIONS = 8.0
"""The largest automatic edge is at most the mesh's bounding-box diagonal over this."""
AUTO_MAX_DIVISIONS = 300.0
"""The smallest automatic edge is at least the mesh's bounding-box diagonal over this."""

_PER_VERTEX = ("vertices", "colors")


def edge_range(config, resolution: int, targets, vertices: torch.Tensor) -> tuple[float, float]:
    """``(min, max)`` reference edge length of a remeshing fit: the config's, or the automatic
    rule of the module notes for a render of ``resolution`` rows of ``targets`` and a mesh of
    ``vertices`` [V,3]."""
    lo, hi = config.remesh_min_edge, config.remesh_max_edge
    if lo is not None and hi is not None:
        return float(lo), float(hi)
    px = pixel_size(resolution, statistics.median(float(t.distance) for t in targets),
                    statistics.median(float(t.fov) for t in targets))
    v = vertices.detach()
    size = float((v.max(0).values - v.min(0).values).norm()) if v.numel() else 1.0
    size = size if size > 0 else 1.0
    auto_lo = max(AUTO_MIN_PIXELS * px, size / AUTO_MAX_DIVISIONS)
    auto_hi = max(2 * auto_lo, min(AUTO_MAX_PIXELS * px, size / AUTO_MIN_DIVISIONS))
    if lo is not None:
        return float(lo), max(auto_hi, 2 * float(lo))
    if hi is not None:
        return min(auto_lo, float(hi) / 2), float(hi)
    return auto_lo, auto_hi


def _mean_incident_edge(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """[V] mean length of the edges at each vertex (each edge counted once per face side)."""
    e = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    length = (vertices[e[:, 0]] - vertices[e[:, 1]]).norm(dim=1)
    total = torch.zeros(vertices.shape[0], dtype=vertices.dtype, device=vertices.device)
    count = torch.zeros_like(total)
    for k in (0, 1):
        total.index_add_(0, e[:, k], length)
        count.index_add_(0, e[:, k], torch.ones_like(length))
    return total / count.clamp_min(1)


class FitRemesh:
    """Remeshing during a fit (mixed into ``Fitter``; see the module notes)."""

    _remesher: ContinuousRemesher | None = None
    _remesh_checked = False  # the current topology is known to be closed and manifold
    remeshes: int = 0
    """Remeshing passes this Fitter has made (not part of its state)."""

    def remesh_active(self) -> bool:
        """True while the fit remeshes: ``config.remesh`` on and the vertices optimised."""
        return bool(self.config.remesh and self.config.groups["vertices"].enabled)

    def _texture_shown(self, config) -> bool:
        if self.tex_logit is None:
            return False
        return config.shading != "vertex_color" or (self.base.has_texture
                                                    and not self.has_colors)

    def _check_remesh(self, config) -> None:
        """Raise ``ValueError`` when ``config`` asks for remeshing that this mesh cannot take:
        a texture is shown (a UV texture cannot follow a changing mesh), or the mesh is not
        closed, manifold and consistently oriented. Changes nothing."""
        if not config.remesh:
            return
        if self._texture_shown(config):
            raise ValueError("remeshing cannot keep the mesh's UV texture, which this fit "
                             "shows (a textured mesh without vertex colours, or a shading that "
                             "uses the texture): bake it to vertex colours or turn remeshing "
                             "off (geometry first, then freeze it and fit a texture)")
        if not self._remesh_checked:  # once per topology that did not come from a pass
            try:  # validation only: no operation runs
                remesh(self.base.vertices, self.faces, 1.0, collapse=False, split=False,
                       flip=False)
            except RemeshError as e:
                raise ValueError(f"remeshing needs a closed, manifold, consistently oriented "
                                 f"mesh: {e}") from None
            self._remesh_checked = True

    def _sync_remesher(self) -> None:
        """Drop the remesher when remeshing is off; adopt the config's interval."""
        if not self.remesh_active():
            self._remesher = None
        elif self._remesher is not None:
            self._remesher.interval = int(self.config.remesh_interval)

    def _load_remesher(self, state: dict) -> None:
        """Adopt the remesher of a :meth:`state` (``remesh_ref_length``, ``remesh_steps``):
        a None length drops it; an absent key keeps this Fitter's."""
        if "remesh_ref_length" not in state:  # keep this Fitter's, if it fits the mesh
            r = self._remesher
            if r is not None and r.ref_length.shape[0] != self.base.vertices.shape[0]:
                self._remesher = None
            return
        ref = state["remesh_ref_length"]
        if ref is None:
            self._remesher = None
            return
        lo, hi = self._edge_range(self.base.vertices)
        device = self.base.vertices.device
        r = ContinuousRemesher(ref.shape[0], min_length=lo, max_length=hi,
                               interval=int(self.config.remesh_interval),
                               max_vertices=get_limits().max_vertices, dtype=ref.dtype,
                               device=device)
        r.ref_length = ref.detach().to(device).clone()
        r.steps = int(state.get("remesh_steps", 0))
        self._remesher = r

    def _edge_range(self, vertices: torch.Tensor) -> tuple[float, float]:
        return edge_range(self.config, self._level()[0], self.targets, vertices)

    def _vertex_moments(self) -> dict | None:
        if self._optimizer is None:
            return None
        return self._optimizer.state.get(self.offset) or None

    def _after_accepted_step(self) -> bool:
        """Adapt the reference lengths and remesh when due; True when it remeshed."""
        if not self.remesh_active():
            return False
        lo, hi = self._edge_range(self.base.vertices)  # the start's size: close enough
        r = self._remesher
        verts = None
        if r is None:
            with torch.no_grad():
                verts = self.base.vertices + self._displacement().detach()
            r = self._remesher = ContinuousRemesher(
                verts.shape[0], min_length=lo, max_length=hi,
                interval=int(self.config.remesh_interval),
                max_vertices=get_limits().max_vertices, dtype=verts.dtype, device=verts.device)
            r.ref_length = _mean_incident_edge(verts, self.faces).clamp(lo, hi)
        r.min_length, r.max_length = lo, hi
        st = self._vertex_moments()
        # Per vertex, |m1| / sqrt(sum of m2 over x, y, z): at most 1 (a steady gradient),
        # near 0 once the gradient only jitters (the paper's per-vertex second moment).
        speed = r.reference_speed if st is None else relative_speed(
            st["exp_avg"], st["exp_avg_sq"].sum(1), step=max(1, int(st["step"])))
        if not r.update(speed):
            return False
        if verts is None:
            with torch.no_grad():
                verts = self.base.vertices + self._displacement().detach()
        self._remesh_now(verts)
        return True

    def _remesh_now(self, verts: torch.Tensor) -> None:
        """One pass on ``verts`` (the current vertices) and the rebase (module notes)."""
        if self._texture_shown(self.config):
            raise ValueError("cannot remesh while the mesh's UV texture is shown")
        r = self._remesher
        res = r.remesh(verts, self.faces)
        opt = self._optimizer
        saved = {} if opt is None else {
            pg["name"]: (pg["lr"], [opt.state.get(p) for p in pg["params"]])
            for pg in opt.param_groups}
        self._rebase(res)
        if opt is None:
            return
        self._build_optimizer()
        carried = []  # (param, old state) of the per-vertex groups: remapped in one gather
        for pg in self._optimizer.param_groups:
            lr, states = saved.get(pg["name"], (pg["lr"], []))
            pg["lr"] = lr
            for p, st in zip(pg["params"], states, strict=False):
                if not st:
                    continue
                if pg["name"] in _PER_VERTEX:
                    carried.append((p, st))
                else:
                    self._optimizer.state[p] = st
        moments = res.remap_many([t for _, st in carried
                                  for t in (st["exp_avg"], st["exp_avg_sq"])])
        for k, (p, st) in enumerate(carried):
            self._optimizer.state[p] = {"step": st["step"].clone(), "exp_avg": moments[2 * k],
                                        "exp_avg_sq": moments[2 * k + 1].clamp_min(0)}
        self.remeshes += 1

    def _rebase(self, res: RemeshResult) -> None:
        """Make ``res`` the start of the fit: base, faces, offset 0, colours remapped."""
        with torch.no_grad():
            logit, logit0 = res.remap_many([self.color_logit.detach(), self._color_logit0])
            self.color_logit, self._color_logit0 = logit.contiguous(), logit0
        self._adopt_topology(res.vertices.contiguous(), res.faces)
        self._remesh_checked = True  # a pass keeps a mesh closed and manifold

    def _adopt_topology(self, vertices: torch.Tensor, faces: torch.Tensor) -> None:
        """Put the fit on ``vertices`` [V,3] / ``faces`` [F,3] as its start: offset 0 and the
        offset space made for the faces. Per-vertex tensors other than the offset are the
        caller's to resize; the optimizer is the caller's to rebuild."""
        same_faces = faces is self.faces or (faces.shape == self.faces.shape
                                             and torch.equal(faces, self.faces))
        # The start carries no colours or UVs: the Fitter's own tensors hold what is shown.
        self.base = Mesh(vertices, faces)
        self.faces = self.base.faces
        self.offset = torch.zeros_like(self.base.vertices)
        if not same_faces:  # UVs (and a texture on them) name the old faces
            self._remesh_checked = False
            self.uvs = self.face_uvs = self.tex_logit = None
            self._space = type(self._space)(self._space.lam, self.faces, self.base.vertices)
        self._last = None
