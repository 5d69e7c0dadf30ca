"""Image and mesh losses for fitting: silhouette IoU, L1 colour, and mesh regularisers.

The image losses are DIB-R's (Chen et al. 2019, eq. 12-13). The mesh regularisers follow the
PyTorch3D definitions (``mesh_laplacian_smoothing(method="uniform")``, ``mesh_normal_consistency``,
``mesh_edge_loss``) so that weights tuned there transfer; differences are stated per function.

Every loss returns a 0-d tensor of the input dtype, accepts float32 and float64, an optional
leading batch dimension (meshes in a batch share ``faces``), and is differentiable with respect
to the floating-point inputs named in its docstring. The regularisers take their topology (edges,
face adjacency) from ``_topology``: derived from ``faces`` once, in O(F log F), and reused while
the same faces tensor comes back unchanged (checked on every call). On the CPU, once the native
extension is loaded, the regularisers (``edge_length`` without a target) run as one native op
with an analytic backward pass (``_native.native_mesh_regularizers``, not twice
differentiable); the ``_*_torch`` functions are their torch references and the CUDA path.
"""

from __future__ import annotations

import torch

from . import _native, _topology
from ._validate import check_faces
from .shading import _EPS, face_normals

__all__ = [
    "edge_adjacency",
    "edge_length",
    "hard_iou",
    "iou",
    "l1",
    "laplacian",
    "normal_consistency",
    "texture_tv",
    "uniform_laplacian",
    "unique_edges",
]

# Added to both sides of the IoU ratio: an empty prediction of an empty target scores a perfect 0.
_IOU_EPS = 1e-6


def _zero_like_graph(x: torch.Tensor) -> torch.Tensor:
    """A 0 that still belongs to ``x``'s graph, so ``backward()`` works on degenerate inputs."""
    return (x * 0).sum()


def _check_mesh(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    if not torch.is_tensor(vertices) or not vertices.is_floating_point():
        raise ValueError("vertices must be a floating-point tensor")
    if vertices.ndim < 2 or vertices.shape[-1] != 3:
        raise ValueError(f"vertices must have shape [V,3] or [B,V,3], got {tuple(vertices.shape)}")
    return check_faces(faces, vertices.device)


# ---------------------------------------------------------------------------------------------
# Image losses


def hard_iou(pred: torch.Tensor, target: torch.Tensor) -> float:
    """The hard IoU of ``pred > 0.5`` against ``target > 0.5`` ([B,H,W] each), averaged over
    the batch (a view with both masks empty counts as 0). A metric: not differentiable."""
    return hard_iou_of_counts(hard_counts(pred, target))


def hard_counts(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """[B,2] int64 (intersection, union) pixel counts of ``pred > 0.5`` and ``target > 0.5``
    ([B,H,W] each), the counts :func:`hard_iou` averages (a fit step gets them from its fused
    image-loss pass instead)."""
    a, t = pred.detach() > 0.5, target > 0.5
    return torch.stack([torch.count_nonzero((a & t).flatten(1), dim=1),
                        torch.count_nonzero((a | t).flatten(1), dim=1)], 1)


def hard_iou_of_counts(counts: torch.Tensor) -> float:
    """:func:`hard_iou` from its pixel counts [B,2] (intersection, union; exact integers of any
    dtype): intersection / max(union, 1) in float32, averaged over the batch."""
    c = counts.float()
    return float((c[:, 0] / c[:, 1].clamp(min=1)).mean())


def iou(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Soft IoU loss (DIB-R eq. 12): mean over the batch of ``1 - |S*T| / |S + T - S*T|``.

    Sums run over all non-batch dimensions. ``eps = 1e-6`` is added to numerator and
    denominator, so the loss is exactly 0 whenever ``pred == target`` -- including two empty
    masks -- and never 0/0. (An empty target against a non-empty prediction gives ~1.)

    Args:
        pred: ``[B,H,W]`` (or ``[H,W]``) soft silhouette in [0,1], float32/float64;
            differentiable.
        target: same shape, or broadcastable to it (e.g. ``[H,W]`` for every batch element).

    Returns:
        0-d tensor in [0,1].
    """
    pred, target = torch.broadcast_tensors(pred, target)
    if pred.ndim < 2:
        raise ValueError(f"iou expects [B,H,W] or [H,W] masks, got {tuple(pred.shape)}")
    if pred.ndim == 2:
        pred, target = pred.unsqueeze(0), target.unsqueeze(0)
    dims = tuple(range(1, pred.ndim))
    inter = (pred * target).sum(dims)
    union = (pred + target - pred * target).sum(dims)
    return (1.0 - (inter + _IOU_EPS) / (union + _IOU_EPS)).mean()


def l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute error (DIB-R eq. 13), optionally restricted to a (soft) mask.

    Without a mask: ``mean(|pred - target|)`` over every element (equal-sized images, so this is
    also the mean over the batch of per-image means). With a mask: the weighted mean
    ``sum(m |pred - target|) / sum(m)`` where ``m`` is the mask broadcast over channels. The
    weights pool all pixels of the batch (an image with an empty mask simply contributes
    nothing); an all-zero mask gives 0.

    Args:
        pred: ``[B,H,W,C]`` (or ``[H,W,C]``) float32/float64; differentiable.
        target: broadcastable to ``pred`` (e.g. ``[H,W,C]`` for every batch element).
        mask: optional weights: ``pred``'s shape without the channel dim (``[B,H,W]``, or
            ``[H,W]`` for every batch element), or anything of ``pred``'s rank that broadcasts to
            it. Differentiable too (e.g. a rendered alpha), although usually fixed.

    Returns:
        0-d tensor.
    """
    diff = (pred - target).abs()
    if mask is None:
        return diff.mean()
    mask = mask.to(diff.dtype)
    if mask.ndim < diff.ndim:
        mask = mask.unsqueeze(-1)  # the mask has no channel dim
    weights = mask.expand_as(diff)
    # clamp_min: with an empty mask the numerator is 0 too, so the loss is 0 instead of 0/0.
    return (weights * diff).sum() / weights.sum().clamp_min(torch.finfo(diff.dtype).tiny)


# ---------------------------------------------------------------------------------------------
# Mesh topology helpers


def unique_edges(faces: torch.Tensor) -> torch.Tensor:
    """Undirected edges of a triangle mesh.

    Args:
        faces: ``[F,3]`` integer.

    Returns:
        ``[E,2]`` int64, each edge once with ``e[:,0] < e[:,1]``, sorted lexicographically.
        Self-loops from degenerate faces (``[a, a, b]``) are dropped.
    """
    faces = check_faces(faces)
    if faces.shape[0] == 0:
        return torch.zeros(0, 2, dtype=torch.int64, device=faces.device)
    e = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]], dim=0)
    e, _ = e.sort(dim=1)
    # Unique over one int64 key per edge: much faster than a row-wise unique(dim=0).
    n_vertices = int(e.max()) + 1
    e = e[e[:, 0] != e[:, 1]]  # a degenerate face's collapsed side is no edge
    key = torch.unique(e[:, 0] * n_vertices + e[:, 1])
    return torch.stack([key // n_vertices, key % n_vertices], dim=1)


def edge_adjacency(faces: torch.Tensor) -> torch.Tensor:
    """Pairs of faces that share an edge.

    An edge shared by ``k`` faces yields all ``k(k-1)/2`` pairs: for a manifold mesh that is one
    pair per interior edge, and non-manifold fans are handled without picking an arbitrary two.
    A face pair sharing two edges (only in degenerate meshes) appears once per shared edge.

    Args:
        faces: ``[F,3]`` integer.

    Returns:
        ``[P,2]`` int64 face indices, ``p[:,0] < p[:,1]``, on ``faces``' device.
    """
    faces = check_faces(faces)
    n_faces = faces.shape[0]
    if n_faces == 0:
        return torch.zeros(0, 2, dtype=torch.int64, device=faces.device)
    e = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]], dim=0)
    e, _ = e.sort(dim=1)
    n_vertices = int(e.max()) + 1
    key = e[:, 0] * n_vertices + e[:, 1]
    owner = torch.arange(n_faces, device=faces.device).repeat(3)
    # Sort half-edges by edge key: the faces of each edge become one contiguous run.
    key, order = key.sort(stable=True)
    owner = owner[order]
    pairs = []
    # Pair every half-edge with the ones d places later in the same run; d only goes up to the
    # largest run length - 1, which is 1 for a manifold mesh (a single vectorised pass).
    _, counts = torch.unique_consecutive(key, return_counts=True)
    for d in range(1, int(counts.max())):
        same = key[d:] == key[:-d]
        a, b = owner[:-d][same], owner[d:][same]
        keep = a != b  # a degenerate face can list the same edge twice: not a neighbour pair
        a, b = a[keep], b[keep]
        pairs.append(torch.stack([torch.minimum(a, b), torch.maximum(a, b)], dim=1))
    if not pairs:
        return torch.zeros(0, 2, dtype=torch.int64, device=faces.device)
    return torch.cat(pairs, dim=0)


# ---------------------------------------------------------------------------------------------
# Mesh regularisers


def _laplacian_offsets(
    vertices: torch.Tensor, faces: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Uniform Laplacian offsets ``[...,V,3]``, the vertex degrees ``[V]`` (the topology's,
    not to be modified) and whether every vertex has a neighbour."""
    topo = _topology.of(faces)
    edges = topo.edges()
    i, j = edges[:, 0], edges[:, 1]
    neighbour_sum = (
        torch.zeros_like(vertices)
        .index_add(-2, i, vertices.index_select(-2, j))
        .index_add(-2, j, vertices.index_select(-2, i))
    )
    degree, connected = topo.degree(vertices.shape[-2], vertices.dtype)
    if degree.device != vertices.device:
        degree = degree.to(vertices.device)
    # Isolated vertices (degree 0) have no neighbour mean: give them no offset.
    offsets = vertices - neighbour_sum / degree.clamp_min(1.0).unsqueeze(-1)
    if not connected:
        offsets = torch.where(degree.unsqueeze(-1) > 0, offsets, torch.zeros_like(offsets))
    return offsets, degree, connected


def uniform_laplacian(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Per-vertex uniform Laplacian offsets ``v_i - mean_{j in N(i)} v_j``.

    Neighbours are the vertices joined to ``v_i`` by an edge (each edge counted once, see
    :func:`unique_edges`). Built with ``index_add`` over the unique edges, O(E).

    Args:
        vertices: ``[V,3]`` or ``[B,V,3]`` float32/float64; differentiable.
        faces: ``[F,3]`` integer.

    Returns:
        Same shape as ``vertices``; 0 for vertices without neighbours (used by no face).
    """
    faces = _check_mesh(vertices, faces)
    return _laplacian_offsets(vertices, faces)[0]


def laplacian(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Uniform Laplacian smoothing loss: mean over vertices of ``|v_i - mean(neighbours)|``.

    Matches PyTorch3D's ``mesh_laplacian_smoothing(method="uniform")`` (the Euclidean norm of
    each offset, not its square), except that vertices without neighbours (used by no face) are
    left out of the average instead of being pulled towards the origin. With a batch, the mean
    of the per-mesh means.

    Args:
        vertices: ``[V,3]`` or ``[B,V,3]`` float32/float64; differentiable.
        faces: ``[F,3]`` integer (shared by the batch).

    Returns:
        0-d tensor (0 for a mesh without faces).
    """
    faces = _check_mesh(vertices, faces)
    if faces.shape[0] == 0:
        return _zero_like_graph(vertices)
    fast = _native_regularizers(vertices, faces, _native.MESH_LAPLACIAN)
    if fast is not None:
        return fast[0]
    return _laplacian_torch(vertices, faces)


def _laplacian_torch(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """:func:`laplacian` in torch ops (checked faces): the native op's reference."""
    if faces.shape[0] == 0:
        return _zero_like_graph(vertices)
    offsets, degree, everywhere = _laplacian_offsets(vertices, faces)
    if not everywhere:
        connected = degree > 0
        if not bool(connected.any()):
            return _zero_like_graph(vertices)
        offsets = offsets[..., connected, :]
    # vector_norm's gradient at an exactly zero offset is 0 (subgradient), not NaN.
    norms = torch.linalg.vector_norm(offsets, dim=-1)
    return norms.mean()


def normal_consistency(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Normal consistency loss: mean over face pairs sharing an edge of ``1 - cos(n_a, n_b)``.

    The face normals follow the winding (counter-clockwise = front), so two coplanar faces with
    opposite windings cost 2: the loss also penalises inconsistent orientation. (PyTorch3D's
    ``mesh_normal_consistency`` orients the pair by the shared edge instead and so ignores
    winding; on consistently wound meshes the two agree.) Edges shared by more than two faces
    contribute every pair (see :func:`edge_adjacency`); boundary edges contribute nothing. A
    zero-area face has a zero normal, hence cosine 0, and a finite gradient.

    Args:
        vertices: ``[V,3]`` or ``[B,V,3]`` float32/float64; differentiable.
        faces: ``[F,3]`` integer (shared by the batch).

    Returns:
        0-d tensor in [0, 2] (0 when no two faces share an edge).
    """
    faces = _check_mesh(vertices, faces)
    pairs = _topology.of(faces).adjacency()
    if pairs.shape[0] == 0:
        return _zero_like_graph(vertices)
    fast = _native_regularizers(vertices, faces, _native.MESH_NORMAL)
    if fast is not None:
        return fast[1]
    return _normal_consistency_torch(vertices, faces)


def _normal_consistency_torch(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """:func:`normal_consistency` in torch ops (checked faces): the native op's reference."""
    pairs = _topology.of(faces).adjacency()
    if pairs.shape[0] == 0:
        return _zero_like_graph(vertices)
    normals = face_normals(vertices, faces)
    cos = (normals.index_select(-2, pairs[:, 0]) * normals.index_select(-2, pairs[:, 1])).sum(-1)
    return (1.0 - cos).mean()


def edge_length(
    vertices: torch.Tensor, faces: torch.Tensor, target: float | torch.Tensor | None = None
) -> torch.Tensor:
    """Edge length loss over the unique edges, as PyTorch3D's ``mesh_edge_loss``.

    ``mean((|e| - target)^2)``; without a target (PyTorch3D's default ``target_length=0``) that
    is ``mean(|e|^2)``, computed without the square root. With a batch, the mean of the per-mesh
    means.

    Args:
        vertices: ``[V,3]`` or ``[B,V,3]`` float32/float64; differentiable.
        faces: ``[F,3]`` integer (shared by the batch).
        target: optional target length, a float or 0-d tensor (may require grad).

    Returns:
        0-d tensor (0 for a mesh without faces).
    """
    faces = _check_mesh(vertices, faces)
    edges = _topology.of(faces).edges()
    if edges.shape[0] == 0:
        return _zero_like_graph(vertices)
    if target is None:
        fast = _native_regularizers(vertices, faces, _native.MESH_EDGE)
        if fast is not None:
            return fast[2]
    return _edge_length_torch(vertices, faces, target)


def _edge_length_torch(
    vertices: torch.Tensor, faces: torch.Tensor, target: float | torch.Tensor | None = None
) -> torch.Tensor:
    """:func:`edge_length` in torch ops (checked faces): the native op's reference."""
    edges = _topology.of(faces).edges()
    if edges.shape[0] == 0:
        return _zero_like_graph(vertices)
    e = vertices.index_select(-2, edges[:, 0]) - vertices.index_select(-2, edges[:, 1])
    sq = (e * e).sum(-1)
    if target is None:
        return sq.mean()
    # vector_norm's gradient at a zero-length edge is 0 (subgradient), not NaN.
    length = torch.linalg.vector_norm(e, dim=-1)
    t = torch.as_tensor(target, dtype=vertices.dtype, device=vertices.device)
    return ((length - t) ** 2).mean()


def _native_regularizers(vertices: torch.Tensor, faces: torch.Tensor, want: int):
    """The native regularisers ``want`` (a mask of ``_native.MESH_*``) of checked faces, or
    None where the native op does not apply (see ``_native.mesh_module``)."""
    topo = _topology.of(faces)
    mod = _native.mesh_module(vertices, topo)
    if mod is None:
        return None
    return _native.native_mesh_regularizers(mod, vertices, topo, want, _EPS)


def mesh_regularizers(
    vertices: torch.Tensor, faces: torch.Tensor, want: tuple[bool, bool, bool] = (True,) * 3,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`laplacian`, :func:`normal_consistency` and :func:`edge_length` (no target) of one
    mesh in one pass: the fitters' per-step regularisers (private).

    ``want`` selects the terms; the others come back as a 0 of the vertices' graph. With
    ``backend`` "auto" or "cpu" and the native extension loaded, CPU vertices take the native
    op (one forward and one backward pass for all three); otherwise each term is its public
    function, and with "torch" its torch reference.
    """
    faces = _check_mesh(vertices, faces)
    if backend in ("auto", "cpu") and faces.shape[0] > 0 and any(want):
        bits = (_native.MESH_LAPLACIAN, _native.MESH_NORMAL, _native.MESH_EDGE)
        mask = sum(bit for bit, on in zip(bits, want, strict=True) if on)
        fast = _native_regularizers(vertices, faces, mask)
        if fast is not None:
            return fast
    fns = ((_laplacian_torch, _normal_consistency_torch, _edge_length_torch)
           if backend == "torch" else (laplacian, normal_consistency, edge_length))
    zero = _zero_like_graph(vertices)
    lap, normal, edge = (fn(vertices, faces) if flag else zero
                         for flag, fn in zip(want, fns, strict=True))
    return lap, normal, edge


class _WeightedSum(torch.autograd.Function):
    """``sum(w * t for w, t in zip(weights, terms))`` as one autograd node (the chain of
    products and sums is one node per op): the same forward ops, and the gradient autograd
    gives that chain, ``grad * w`` per term."""

    @staticmethod
    def forward(ctx, weights, *terms):  # type: ignore[override]
        ctx.weights = weights
        return sum(w * t for w, t in zip(weights, terms, strict=True))

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        need = ctx.needs_input_grad[1:]
        return None, *(grad * w if n else None for w, n in zip(ctx.weights, need, strict=True))


def weighted_sum(terms: list[torch.Tensor], weights: list[float]) -> torch.Tensor:
    """``sum(w * t)`` of 0-d loss ``terms`` and float ``weights`` (the same value and gradient
    as the Python expression), one autograd node: a fit step's total loss."""
    if not torch.is_grad_enabled() or not any(t.requires_grad for t in terms):
        return sum(w * t for w, t in zip(weights, terms, strict=True))
    return _WeightedSum.apply(tuple(float(w) for w in weights), *terms)


# ---------------------------------------------------------------------------------------------
# Texture regulariser


def texture_tv(texture: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Total variation of a texture on its texel grid (smoothed, so it is differentiable at 0).

    ``mean over texels of sum over channels of rho(T[r,c+1]-T[r,c]) + rho(T[r+1,c]-T[r,c])``
    with the Charbonnier penalty ``rho(d) = sqrt(d^2 + eps^2) - eps``: an L1 penalty on
    neighbouring-texel differences, so it removes texel noise but keeps sharp edges (a checker
    stays a checker; a Laplacian / L2 penalty would blur it). Texels are neighbours on the grid,
    also across chart borders and into the gutter; the gutter only follows its charts.

    Args:
        texture: ``[S,S,C]`` or ``[B,S,S,C]`` float32/float64 (values in [0,1]);
            differentiable.
        eps: the smoothing width of the penalty (texture units).

    Returns:
        0-d tensor >= 0 (0 for a constant texture).
    """
    if not torch.is_tensor(texture) or not texture.is_floating_point():
        raise ValueError("texture must be a floating-point tensor")
    if texture.ndim not in (3, 4) or min(texture.shape[-3:-1]) < 1:
        raise ValueError(f"texture must be [S,S,C] or [B,S,S,C], got {tuple(texture.shape)}")
    if texture.ndim == 3:
        texture = texture.unsqueeze(0)

    def rho(d: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(d * d + eps * eps) - eps

    dx = rho(texture[:, :, 1:] - texture[:, :, :-1]).sum()
    dy = rho(texture[:, 1:] - texture[:, :-1]).sum()
    b, h, w, _ = texture.shape
    return (dx + dy) / (b * h * w)
