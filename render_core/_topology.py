"""Index tensors that depend only on a mesh's faces, built once per topology, not per step.

A fit renders and regularises the same faces every step; the unique edges, the edge-adjacent
face pairs and the corner index of the vertex normals are the same each time. :func:`of`
returns the :class:`Topology` of a faces tensor from a small cache keyed on the tensor's
identity *and* verified equal to the cached copy on every lookup (an O(F) comparison), so an
in-place edit of the faces, a new tensor that reuses a freed one's id, or a new topology (a
remeshed mesh) is never served stale tables. The tables are private: callers must not modify
them (the public ops still return fresh tensors).
"""

from __future__ import annotations

import weakref
from collections import OrderedDict

import torch

_MAX = 8  # topologies kept (a fit has one; a remeshing fit a few in a row)
_cache: OrderedDict[int, tuple[weakref.ref, Topology]] = OrderedDict()


class Topology:
    """Lazily built tables of one ``[F,3]`` int64 faces tensor (a private copy)."""

    def __init__(self, faces: torch.Tensor):
        self.faces = faces.detach().clone()
        self._tables: dict[object, object] = {}

    def matches(self, faces: torch.Tensor) -> bool:
        return (faces.dtype == self.faces.dtype and faces.device == self.faces.device
                and faces.shape == self.faces.shape and torch.equal(faces, self.faces))

    def _get(self, name, build):
        if name not in self._tables:
            self._tables[name] = build()
        return self._tables[name]

    def edges(self) -> torch.Tensor:
        """``losses.unique_edges`` of the faces."""
        from .losses import unique_edges

        return self._get("edges", lambda: unique_edges(self.faces))

    def adjacency(self) -> torch.Tensor:
        """``losses.edge_adjacency`` of the faces."""
        from .losses import edge_adjacency

        return self._get("adjacency", lambda: edge_adjacency(self.faces))

    def corners(self) -> torch.Tensor:
        """``[3F]`` vertex of each corner, corner-major (``faces.t().reshape(-1)``)."""
        return self._get("corners", lambda: self.faces.t().reshape(-1).contiguous())

    def degree(self, n_vertices: int, dtype: torch.dtype) -> tuple[torch.Tensor, bool]:
        """Each of ``n_vertices`` vertices' number of unique edges, as ``dtype`` ``[V]``, and
        whether every vertex has one (as ``losses`` counted them each step before)."""

        def build():
            e = self.edges()
            dev = self.faces.device
            ones = torch.ones(e.shape[0], dtype=dtype, device=dev)
            deg = torch.zeros(n_vertices, dtype=dtype, device=dev)
            deg = deg.index_add(0, e[:, 0], ones).index_add(0, e[:, 1], ones)
            return deg, bool((deg > 0).all())

        return self._get(("degree", n_vertices, dtype), build)

    def n_connected(self, n_vertices: int) -> int:
        """How many of ``n_vertices`` vertices have at least one unique edge."""

        def build():
            deg, _ = self.degree(n_vertices, torch.float64)
            return int((deg > 0).sum())

        return self._get(("n_connected", n_vertices), build)

    def index_range(self) -> tuple[int, int]:
        """(min, max) vertex index of the faces ((0, -1) without faces)."""
        if self.faces.numel() == 0:
            return (0, -1)
        return self._get("range", lambda: (int(self.faces.min()), int(self.faces.max())))


def cached(faces: torch.Tensor) -> Topology | None:
    """The cached :class:`Topology` of ``faces`` if :func:`of` has built it, else None (a
    lookup that never builds, so one-off faces tensors do not evict a fit's tables)."""
    hit = _cache.get(id(faces))
    if hit is not None and hit[0]() is faces and hit[1].matches(faces):
        _cache.move_to_end(id(faces))
        return hit[1]
    return None


def of(faces: torch.Tensor) -> Topology:
    """The :class:`Topology` of ``faces`` (an ``[F,3]`` int64 tensor), cached."""
    key = id(faces)
    hit = _cache.get(key)
    if hit is not None and hit[0]() is faces and hit[1].matches(faces):
        _cache.move_to_end(key)
        return hit[1]
    topo = Topology(faces)
    _cache[key] = (weakref.ref(faces), topo)
    _cache.move_to_end(key)
    while len(_cache) > _MAX:
        _cache.popitem(last=False)
    return topo
