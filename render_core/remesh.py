"""Continuous remeshing for shape fits (after Palfinger, "Continuous Remeshing for Inverse
Rendering", 2022).

A shape fit moves vertices by gradient descent; every few steps :func:`remesh` collapses edges
that became short, splits edges that became long and flips edges towards valence 6, so the mesh
neither tangles nor stays at its starting resolution. The edge length it aims for is a
per-vertex *reference length* that follows the optimisation (:func:`adapt_edge_length`):
vertices that still move fast relative to their gradient noise get longer edges, vertices that
have settled get shorter ones, between a smallest and a largest length.

Per-vertex state (colours, optimiser moments, the reference length itself) travels with the
vertices: pass it as ``attributes`` or remap it afterwards with :meth:`RemeshResult.remap`.

* a split vertex gets the mean of its edge's two endpoints;
* a collapsed edge leaves its lower-index endpoint, at the mean of both endpoints, with the mean
  of both endpoints' attributes;
* a flip changes no vertex.

Everything here is vectorised torch (CPU or CUDA) and runs under ``torch.no_grad()``: nothing
is differentiable; a caller makes its parameters anew from the returned tensors.

Only closed (watertight), manifold, consistently oriented meshes are remeshed: meshes with a
boundary, non-manifold edges or vertices, or inconsistent orientation are refused with a
:class:`RemeshError` naming the problem. The remesher keeps them that way, keeps the genus, and
creates no face of quality below ``MIN_QUALITY`` (collapse and flip refuse to).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from . import _remesh_ops as ops
from ._remesh_ops import MIN_QUALITY, RemeshError

__all__ = [
    "MIN_QUALITY",
    "ContinuousRemesher",
    "RemeshError",
    "RemeshResult",
    "adapt_edge_length",
    "relative_speed",
    "remesh",
]


@dataclass(frozen=True)
class RemeshResult:
    """The remeshed mesh and how its vertices derive from the input's.

    Attributes:
        vertices: [V',3] same dtype/device as the input vertices (detached).
        faces: [F',3] int64, counter-clockwise, closed manifold.
        attributes: the input ``attributes`` remapped: each [V',...] (same dtype/device).
        sources: [V',K] int64 input-vertex indices, weights: [V',K] of the vertex dtype, such
            that output vertex j = ``sum_k weights[j,k] * input[sources[j,k]]`` (weights of a
            row sum to 1; unused slots have weight 0). Unchanged vertices keep their order and
            come first; split vertices are appended.
        num_collapsed, num_split, num_flipped: how many of each operation were applied.
        num_input_vertices: V, the row count :meth:`remap` expects.
    """

    vertices: torch.Tensor
    faces: torch.Tensor
    attributes: dict[str, torch.Tensor] = field(default_factory=dict)
    sources: torch.Tensor | None = None
    weights: torch.Tensor | None = None
    num_collapsed: int = 0
    num_split: int = 0
    num_flipped: int = 0
    num_input_vertices: int = 0

    def remap(self, values: torch.Tensor) -> torch.Tensor:
        """Per-input-vertex ``values [V,...]`` (floating point) -> ``[V',...]`` by the same
        weighted means as the vertices (values must be finite: an unused slot adds 0 times a
        value). Exact for unchanged vertices (weight 1) and for one
        collapse or split (weights 1/2)."""
        return _gather(values, self.sources, self.weights, self.num_input_vertices, "values")

    def remap_many(self, values) -> list[torch.Tensor]:
        """:meth:`remap` of each tensor of ``values`` (a sequence), the same numbers bit for
        bit, with one gather per dtype and device instead of one per tensor."""
        return _gather_many(list(values), self.sources, self.weights, self.num_input_vertices)


def _gather_many(values: list, src, w, nv_in) -> list[torch.Tensor]:
    """``[_gather(t, ...) for t in values]``: tensors of one dtype and device are flattened to
    [V,C_i], put side by side and gathered once (every entry sees the same products and sums
    in the same order, so the results are identical)."""
    out: list = [None] * len(values)
    groups: dict = {}
    for i, t in enumerate(values):
        if (not torch.is_tensor(t) or not t.is_floating_point() or t.dim() == 0
                or t.shape[0] != nv_in):
            out[i] = _gather(t, src, w, nv_in, "values")  # raises the error it names
            continue
        groups.setdefault((t.dtype, t.device), []).append(i)
    for idx in groups.values():
        if len(idx) == 1:
            out[idx[0]] = _gather(values[idx[0]], src, w, nv_in, "values")
            continue
        flat = [values[i].reshape(nv_in, -1) for i in idx]
        cols = [f.shape[1] for f in flat]
        both = _gather(torch.cat(flat, 1), src, w, nv_in, "values")
        for i, part in zip(idx, torch.split(both, cols, 1), strict=True):
            out[i] = part.contiguous().reshape(part.shape[0], *values[i].shape[1:])
    return out


def _gather(values, src, w, nv_in, name) -> torch.Tensor:
    if not torch.is_tensor(values) or not values.is_floating_point():
        raise RemeshError(f"{name} must be a floating-point tensor, got {type(values).__name__}"
                          f"{'' if not torch.is_tensor(values) else ' of ' + str(values.dtype)}")
    if values.dim() == 0 or values.shape[0] != nv_in:
        raise RemeshError(f"{name} must have the input's V={nv_in} rows, got "
                          f"{tuple(values.shape)}")
    ww = w.to(device=values.device, dtype=values.dtype)
    s = src.to(values.device)
    shape = (*ww.shape, *([1] * (values.dim() - 1)))
    ww = ww.view(shape)
    if s.shape[1] == 1:
        return values[s[:, 0]] * ww[:, 0]
    # unused slots repeat a used source with weight 0 (so finite values add exact zeros)
    terms = values[s] * ww
    out = terms[:, 0]
    for k in range(1, terms.shape[1]):
        out = out + terms[:, k]
    return out


def _per_vertex(x, nv: int, like: torch.Tensor, name: str) -> torch.Tensor:
    t = torch.as_tensor(x, dtype=like.dtype, device=like.device)
    if t.dim() == 0:
        t = t.expand(nv)
    if t.shape != (nv,):
        raise RemeshError(f"{name} must be a float or a [V] tensor with V={nv}, "
                          f"got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()) or bool((t <= 0).any()):
        raise RemeshError(f"{name} must be finite and positive")
    return t


def _validate(vertices, faces, attributes):
    if not torch.is_tensor(vertices) or vertices.dim() != 2 or vertices.shape[1] != 3:
        raise RemeshError(f"vertices must be a [V,3] tensor, got "
                          f"{tuple(vertices.shape) if torch.is_tensor(vertices) else vertices!r}")
    if not vertices.is_floating_point():
        raise RemeshError(f"vertices must be floating point, got {vertices.dtype}")
    if not torch.is_tensor(faces) or faces.dim() != 2 or faces.shape[1] != 3:
        raise RemeshError("faces must be a [F,3] tensor")
    if faces.dtype != torch.int64:
        raise RemeshError(f"faces must be int64, got {faces.dtype}")
    if faces.device != vertices.device:
        raise RemeshError(f"faces are on {faces.device} but vertices on {vertices.device}")
    nv = vertices.shape[0]
    if faces.shape[0] == 0:
        raise RemeshError("the mesh has no faces")
    if int(faces.min()) < 0 or int(faces.max()) >= nv:
        raise RemeshError(f"face indices must lie in [0, {nv - 1}]")
    if not bool(torch.isfinite(vertices).all()):
        raise RemeshError("vertices contain NaN or infinite values")
    rep = (faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 0] == faces[:, 2])
    if bool(rep.any()):
        raise RemeshError(f"{int(rep.sum())} faces repeat a vertex index")
    attributes = dict(attributes or {})
    for k, t in attributes.items():
        if not torch.is_tensor(t) or t.dim() == 0 or t.shape[0] != nv:
            raise RemeshError(f"attribute {k!r} must be a tensor whose first dimension is "
                              f"V={nv}, got {tuple(t.shape) if torch.is_tensor(t) else t!r}")
        if not t.is_floating_point():
            raise RemeshError(f"attribute {k!r} must be floating point (it is averaged), "
                              f"got {t.dtype}")
    return attributes


@torch.no_grad()
def remesh(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    target_length,
    attributes: Mapping[str, torch.Tensor] | None = None,
    *,
    tolerance: float = 0.5,
    min_length=None,
    max_length=None,
    collapse: bool = True,
    split: bool = True,
    flip: bool = True,
    max_vertices: int | None = None,
    validate: bool = True,
) -> RemeshResult:
    """One remeshing pass: collapse short edges, then split long ones, then flip.

    Args:
        vertices: [V,3] float (any device). Not differentiated through.
        faces: [F,3] int64 on the same device: a closed, manifold, consistently oriented mesh.
        target_length: per-vertex reference edge length, a float or [V] tensor (> 0).
        attributes: per-vertex floating-point tensors [V,...], remapped into the result.
        tolerance: an edge is short below ``(1 - tolerance)`` and long above
            ``(1 + tolerance)`` times the mean ``target_length`` of its endpoints (the paper's
            0.5). ``min_length`` / ``max_length`` (float or [V]) override these bounds; keep
            ``max >= 2 min`` or split halves get collapsed again.
        collapse, split, flip: which operations to run.
        max_vertices: split no more edges than keep V' <= max_vertices.
        validate: check that the mesh is closed, manifold and consistently oriented (about a
            third of a pass's cost at 5k faces). Pass False only for faces known to be so,
            such as a previous result's faces (vertex motion cannot break it); a bad mesh
            then gives wrong results instead of an error.

    Unreferenced input vertices are dropped. Each operation runs once per call; a Fitter calls
    this every few steps, so a mesh far from its target lengths converges over several calls.

    Returns:
        :class:`RemeshResult`.

    Raises:
        RemeshError (a ValueError): bad shapes/dtypes, open or non-manifold or inconsistently
        oriented meshes, non-positive lengths, non-float attributes.
    """
    attributes = _validate(vertices, faces, attributes)
    if not 0.0 < tolerance < 1.0:
        raise RemeshError(f"tolerance must lie in (0, 1), got {tolerance}")
    v = vertices.detach()
    nv0 = v.shape[0]
    target = _per_vertex(target_length, nv0, v, "target_length")
    lo = target * (1 - tolerance) if min_length is None else _per_vertex(min_length, nv0, v,
                                                                           "min_length")
    hi = target * (1 + tolerance) if max_length is None else _per_vertex(max_length, nv0, v,
                                                                           "max_length")
    if bool((lo >= hi).any()):
        raise RemeshError("min_length must be smaller than max_length at every vertex")

    used = torch.zeros(nv0, dtype=torch.bool, device=v.device)
    used[faces.reshape(-1)] = True
    src = used.nonzero()  # [V,1]: drops unreferenced vertices
    index = torch.cumsum(used, 0) - 1
    f = index[faces]
    vv = v[used]
    lim = torch.stack((lo, hi), 1)[used]
    w = torch.ones(src.shape, dtype=v.dtype, device=v.device)
    nv = vv.shape[0]

    topo = ops.topology(f, nv, check=validate)
    fans = ops.count_vertex_fans(f, topo) if validate else nv
    if fans != nv:
        raise RemeshError(f"the mesh is not manifold: {fans - nv} vertices join separate fans "
                          "of faces (pinched vertices)")
    n_c = n_s = n_f = 0
    if collapse:
        vv, f, src, w, lim, n_c = ops.collapse(vv, f, src, w, lim, topo)
        if n_c:
            topo = ops.topology(f, vv.shape[0])
    if split:
        room = None if max_vertices is None else max(0, int(max_vertices) - vv.shape[0])
        vv, f, src, w, lim, n_s = ops.split(vv, f, src, w, lim, topo, room)
        if n_s:
            topo = ops.topology(f, vv.shape[0])
    if flip:
        f, n_f = ops.flip(vv, f, lim, topo)
    names = list(attributes)
    out_v, *rest = _gather_many([v, *(attributes[k].detach() for k in names)], src, w, nv0)
    attrs = dict(zip(names, rest, strict=True))
    return RemeshResult(out_v, f, attrs, src, w, n_c, n_s, n_f, nv0)


def relative_speed(
    exp_avg: torch.Tensor,
    exp_avg_sq: torch.Tensor,
    *,
    eps: float = 1e-8,
    step: int | None = None,
    betas: tuple[float, float] = (0.9, 0.999),
) -> torch.Tensor:
    """Per-vertex speed of an Adam-like optimiser relative to its gradient noise, ``nu``.

    Args:
        exp_avg: [V,3] first moment (torch Adam's ``state["exp_avg"]``).
        exp_avg_sq: [V,3] per-coordinate or [V] per-vertex second moment (``exp_avg_sq``).
        step: Adam's step count; when given, both moments are bias-corrected with ``betas``.

    Returns:
        [V] ``|| m1 / (sqrt(m2) + eps) ||``: about 1 (or sqrt(3) per coordinate) while a vertex
        moves steadily, near 0 once its gradient only jitters. Not differentiable.
    """
    m1 = exp_avg.detach()
    m2 = exp_avg_sq.detach()
    if m1.dim() != 2 or m2.shape[0] != m1.shape[0] or m2.dim() not in (1, 2):
        raise RemeshError(f"exp_avg must be [V,C] and exp_avg_sq [V,C] or [V], got "
                          f"{tuple(m1.shape)} and {tuple(m2.shape)}")
    if step is not None:
        if step < 1:
            raise RemeshError(f"step must be >= 1, got {step}")
        m1 = m1 / (1 - betas[0] ** step)
        m2 = m2 / (1 - betas[1] ** step)
    if m2.dim() == 1:
        m2 = m2[:, None]
    return (m1 / (m2.sqrt() + eps)).norm(dim=-1)


def adapt_edge_length(
    ref_length: torch.Tensor,
    speed: torch.Tensor,
    *,
    min_length: float,
    max_length: float,
    reference_speed: float = 0.3,
    gain: float = 0.2,
) -> torch.Tensor:
    """The paper's edge-length controller, one update:
    ``clamp(ref_length * (1 + gain * (speed - reference_speed)), min_length, max_length)``.

    Args:
        ref_length: [V] current reference edge lengths (> 0).
        speed: [V] relative speed (see :func:`relative_speed`) or a float for all vertices.
        min_length, max_length: the smallest and largest reference length allowed.
    Returns:
        [V] the new reference lengths (a new tensor; not differentiable).
    """
    if not 0 < min_length <= max_length:
        raise RemeshError(f"need 0 < min_length <= max_length, got {min_length}, {max_length}")
    ref = ref_length.detach()
    sp = torch.as_tensor(speed, dtype=ref.dtype, device=ref.device).detach()
    if sp.dim() and sp.shape != ref.shape:
        raise RemeshError(f"speed {tuple(sp.shape)} does not match ref_length {tuple(ref.shape)}")
    return (ref * (1 + gain * (sp - reference_speed))).clamp(min_length, max_length)


class ContinuousRemesher:
    """Holds the per-vertex reference length of a fit and remeshes with it.

    Use: ``r = ContinuousRemesher(V, min_length=0.01, max_length=0.15)``; after each optimiser
    step ``r.update(relative_speed(m1, m2, step=t))``; every ``interval`` steps
    ``res = r.remesh(vertices, faces, {"exp_avg": m1, "exp_avg_sq": m2})`` and rebuild the
    parameter and optimiser state from ``res`` (``r.ref_length`` is carried along).
    The reference length starts at ``max_length`` (coarse first) unless ``initial`` is given.
    The mesh is validated on the first call and whenever ``faces`` is not the tensor the
    previous call returned.
    """

    def __init__(self, num_vertices: int, *, min_length: float, max_length: float,
                 initial: float | None = None, interval: int = 5, tolerance: float = 0.5,
                 gain: float = 0.2, reference_speed: float = 0.3, flip: bool = True,
                 max_vertices: int | None = None, device=None, dtype=torch.float32):
        if not 0 < min_length <= max_length:
            raise RemeshError(f"need 0 < min_length <= max_length, got {min_length}, "
                              f"{max_length}")
        if interval < 1:
            raise RemeshError(f"interval must be >= 1, got {interval}")
        start = max_length if initial is None else float(initial)
        self.ref_length = torch.full((num_vertices,), start, dtype=dtype, device=device)
        self.min_length, self.max_length = float(min_length), float(max_length)
        self.interval, self.tolerance = interval, tolerance
        self.gain, self.reference_speed = gain, reference_speed
        self.flip, self.max_vertices = flip, max_vertices
        self.steps = 0
        self._last_faces: torch.Tensor | None = None

    def update(self, speed) -> bool:
        """Adapt the reference length to ``speed`` ([V] or float); count a step. Returns True
        when this step is due for :meth:`remesh` (every ``interval`` steps)."""
        self.ref_length = adapt_edge_length(
            self.ref_length, speed, min_length=self.min_length, max_length=self.max_length,
            reference_speed=self.reference_speed, gain=self.gain)
        self.steps += 1
        return self.steps % self.interval == 0

    def remesh(self, vertices, faces, attributes=None) -> RemeshResult:
        """:func:`remesh` with the held reference length, which is remapped with the mesh."""
        attrs = dict(attributes or {})
        if "_ref_length" in attrs:
            raise RemeshError("the attribute name '_ref_length' is reserved")
        attrs["_ref_length"] = self.ref_length.to(vertices.dtype)
        known = self._last_faces is not None and faces is self._last_faces
        res = remesh(vertices, faces, self.ref_length, attrs, tolerance=self.tolerance,
                     flip=self.flip, max_vertices=self.max_vertices, validate=not known)
        self.ref_length = res.attributes.pop("_ref_length").to(self.ref_length.dtype)
        self._last_faces = res.faces
        return res
