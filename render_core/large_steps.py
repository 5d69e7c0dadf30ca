"""Large Steps: a Laplacian-smoothed parameterisation of vertex positions and "uniform Adam".

After Nicolet, Jacobson and Jakob, "Large Steps in Inverse Rendering of Geometry" (SIGGRAPH
Asia 2021). Instead of moving vertex positions ``x`` [V,3] (or offsets) directly, the optimiser
moves ``u = (I + lam L) x``; each step recovers ``x = (I + lam L)^-1 u`` with a sparse Cholesky
solve, factored once per topology (:mod:`render_core._sparse_factor`: CHOLMOD through
``cholespy``, or LAPACK's banded Cholesky for small systems, where CHOLMOD's fixed ordering
cost would dominate a remeshing fit's refactoring). A gradient on ``x`` then
reaches ``u`` smoothed by the same inverse, so one step moves whole regions of the surface
coherently: large, smooth steps that neither tangle nor need a Laplacian loss term.

:class:`AdamUniform` is the paper's Adam variant: the per-entry second moment of Adam is
replaced by its maximum over the whole tensor, so every vertex is scaled by one number and the
smoothing that the parameterisation builds into the gradient is not undone entry by entry.

Public names:

- :func:`laplacian` -- the uniform or cotangent Laplacian ``L = D - A`` as a torch sparse matrix.
- :func:`system_matrix` -- ``I + lam L`` as a torch sparse matrix.
- :class:`SmoothParameterization` -- ``.u`` (the leaf tensor to optimise), ``.vertices()``,
  ``.rebuild()`` after a remesh.
- :class:`AdamUniform` -- the optimiser; :meth:`AdamUniform.replace_param` moves its state to
  a new tensor after a remesh.
- :data:`DEFAULT_LAMBDA` -- 19 (see its docstring for why).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse
import torch

from ._sparse_factor import LargeStepsError, _Factor

__all__ = [
    "DEFAULT_LAMBDA",
    "AdamUniform",
    "LargeStepsError",
    "SmoothParameterization",
    "laplacian",
    "system_matrix",
]

DEFAULT_LAMBDA = 19.0
"""Default smoothing weight ``lam`` of ``I + lam L`` (uniform Laplacian).

19 is the paper's usual setting (written there as ``alpha = lam / (1 + lam) = 0.95``), and it
is the largest value in the flat part of our own curve. Measured with
``benchmarks/shape_fit.py --lambdas 1,10,19,50,100 --meshes figure,mug,dented_sphere
--iters 200`` (20 views at 64x64, 2 views per iteration, AdamUniform lr 3e-2, start: a unit
icosphere of 2,562 vertices), mean Chamfer-L2 over the three meshes: lam 1: 0.00557,
10: 0.00541, 19: 0.00550, 50: 0.00712, 100: 0.00883. So 1..19 tie within the noise of one
seed at this budget while 50 and 100 are 30% and 60% worse (the figure, with thin parts, moves
most: 0.0037 at 19, 0.0078 at 100). Of the tied values the largest is kept: the smoothing is
what lets steps be large without tangling, which matters more once remeshing refines the mesh
(not measured here)."""

LAPLACIAN_KINDS = ("uniform", "cotangent")


# --------------------------------------------------------------------------- Laplacians


def _check_faces(faces, num_vertices: int) -> np.ndarray:
    f = faces.detach().cpu().numpy() if torch.is_tensor(faces) else np.asarray(faces)
    if f.ndim != 2 or f.shape[1] != 3:
        raise LargeStepsError(f"faces must have shape [F,3], got {list(f.shape)}")
    if f.dtype.kind not in "iu":
        raise LargeStepsError(f"faces must hold integer indices, got {f.dtype}")
    if isinstance(num_vertices, bool) or int(num_vertices) != num_vertices or num_vertices < 1:
        raise LargeStepsError(f"num_vertices must be a positive integer, got {num_vertices!r}")
    if f.size and (int(f.min()) < 0 or int(f.max()) >= num_vertices):
        raise LargeStepsError(f"face indices must lie in [0, {num_vertices - 1}], "
                              f"found {int(f.min())}..{int(f.max())}")
    return f.astype(np.int64)


def _unique(keys: np.ndarray) -> np.ndarray:
    """``np.unique`` of a 1-D int64 array (sorted, each once): a sort and a mask, several
    times faster here than ``np.unique``'s hash table for the ~10^4 keys of a mesh."""
    s = np.sort(keys)
    if s.size == 0:
        return s
    return s[np.concatenate(([True], s[1:] != s[:-1]))]


def _laplacian_coo(faces: np.ndarray, num_vertices: int, kind: str,
                   vertices: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, values) of L = D - A, float64, duplicates summed, diagonal included."""
    n = int(num_vertices)
    if kind == "uniform":
        e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
        e = np.sort(e[e[:, 0] != e[:, 1]], axis=1)
        # Each undirected edge once, weight 1, in (i, j) order: unique of one int64 key per
        # edge is several times faster than unique rows (a remesh refactors every pass).
        key = _unique(e[:, 0] * np.int64(n) + e[:, 1])
        i, j = key // n, key % n
        w = np.ones(len(key))
    elif kind == "cotangent":
        if vertices is None:
            raise LargeStepsError("the cotangent Laplacian needs vertices [V,3]")
        v = vertices
        i_all, j_all, w_all = [], [], []
        for a, b, c in ((0, 1, 2), (1, 2, 0), (2, 0, 1)):  # edge (a,b) opposite corner c
            ia, ib, ic = faces[:, a], faces[:, b], faces[:, c]
            p, q = v[ia] - v[ic], v[ib] - v[ic]
            cross = np.linalg.norm(np.cross(p, q), axis=1)
            cot = (p * q).sum(1) / np.maximum(cross, 1e-12)
            i_all.append(ia)
            j_all.append(ib)
            w_all.append(0.5 * cot)
        i, j, w = np.concatenate(i_all), np.concatenate(j_all), np.concatenate(w_all)
        keep = i != j
        i, j, w = i[keep], j[keep], w[keep]
    else:
        raise LargeStepsError(f"unknown Laplacian kind {kind!r}; choose one of {LAPLACIAN_KINDS}")
    deg = np.bincount(i, weights=w, minlength=n) + np.bincount(j, weights=w, minlength=n)
    diag = np.arange(n)
    rows = np.concatenate([i, j, diag])
    cols = np.concatenate([j, i, diag])
    vals = np.concatenate([-w, -w, deg])
    return rows, cols, vals


def laplacian(faces, num_vertices: int, kind: str = "uniform", vertices=None,
              dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The mesh Laplacian ``L = D - A`` as a coalesced torch sparse COO matrix [V,V] on the CPU.

    Sign convention: positive semi-definite. ``A[i,j]`` is the weight of edge (i,j) (0 off the
    edges), ``D = diag(sum_j A[i,j])``, so every row sums to 0, ``L`` is symmetric and
    ``x^T L x = sum over edges of A_ij |x_i - x_j|^2 >= 0``.

    - ``kind="uniform"`` (the paper's default, the combinatorial Laplacian): ``A[i,j] = 1`` for
      every edge, however many faces share it; depends on ``faces`` only.
    - ``kind="cotangent"``: ``A[i,j] = (cot alpha + cot beta) / 2`` summed over the faces
      beside the edge (alpha, beta the angles opposite it), computed from ``vertices``. Weights
      may be negative at obtuse angles; ``L`` stays PSD (it is the stiffness matrix of the
      piecewise-linear Dirichlet energy). No mass matrix.

    Args:
        faces: [F,3] integer vertex indices (tensor or array, any device).
        num_vertices: V; vertices no face uses get an all-zero row and column.
        kind: ``"uniform"`` or ``"cotangent"``.
        vertices: [V,3] float positions, needed for ``"cotangent"`` only.
        dtype: value dtype of the result (float32 or float64).
    Returns:
        torch sparse COO [V,V] of ``dtype``. Not differentiable (a constant of the topology).
    Raises:
        LargeStepsError for bad shapes, indices or kinds.
    """
    f = _check_faces(faces, num_vertices)
    v = None
    if kind == "cotangent":
        v = _check_vertices_array(vertices, num_vertices)
    n = int(num_vertices)
    rows, cols, vals = _coalesce(*_laplacian_coo(f, n, kind, v), n)
    return _torch_sparse(rows, cols, vals, n, dtype)


def _check_vertices_array(vertices, num_vertices: int | None = None) -> np.ndarray:
    if vertices is None:
        raise LargeStepsError("the cotangent Laplacian needs vertices [V,3]")
    v = vertices.detach().cpu().double().numpy() if torch.is_tensor(vertices) else \
        np.asarray(vertices, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 3:
        raise LargeStepsError(f"vertices must have shape [V,3], got {list(v.shape)}")
    if num_vertices is not None and v.shape[0] != num_vertices:
        raise LargeStepsError(f"vertices has {v.shape[0]} rows but num_vertices is {num_vertices}")
    if not np.isfinite(v).all():
        raise LargeStepsError("vertices have non-finite coordinates (NaN or inf)")
    return v


def _check_lam(lam) -> float:
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not math.isfinite(lam) \
            or lam < 0:
        raise LargeStepsError(f"lam must be a finite number >= 0, got {lam!r}")
    return float(lam)


def _system_coo(faces: np.ndarray, n: int, lam: float, kind: str, vertices):
    rows, cols, vals = _laplacian_coo(faces, n, kind, vertices)
    diag = np.arange(n)
    return _coalesce(np.concatenate([rows, diag]), np.concatenate([cols, diag]),
                     np.concatenate([lam * vals, np.ones(n)]), n)


def _system_csr(faces: np.ndarray, n: int, lam: float, kind: str, vertices):
    """``I + lam L`` in CSR form ``(indptr, indices, data)`` (int64, int64, float64): each
    entry once, columns ascending within a row. The matrix is symmetric, so the same arrays
    are its CSC form. The uniform kind is built in one sort of int64 keys (a remesh refactors
    every pass); the same entries and values as :func:`_system_coo`."""
    if kind != "uniform":
        rows, cols, vals = _system_coo(faces, n, lam, kind, vertices)
        m = scipy.sparse.csr_matrix((vals, (rows, cols)), shape=(n, n))
        m.sum_duplicates()
        m.sort_indices()
        return m.indptr.astype(np.int64), m.indices.astype(np.int64), m.data
    nn = np.int64(n)
    a, b = faces.reshape(-1), faces[:, [1, 2, 0]].reshape(-1)
    keep = a != b
    a, b = a[keep], b[keep]
    d = np.arange(n, dtype=np.int64)
    # Both directions of every edge and the diagonal, each once, in row-major order.
    key = _unique(np.concatenate([a * nn + b, b * nn + a, d * nn + d]))
    rows, cols = key // nn, key % nn
    off = rows != cols
    deg = np.bincount(rows[off], minlength=n).astype(np.float64)
    data = np.where(off, -lam, 0.0)
    data[~off] = 1.0 + lam * deg
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return indptr, cols, data


def system_matrix(faces, num_vertices: int, lam: float = DEFAULT_LAMBDA, kind: str = "uniform",
                  vertices=None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``I + lam L`` as a coalesced torch sparse COO [V,V] (CPU): the matrix whose inverse
    :class:`SmoothParameterization` applies. Symmetric positive definite for ``lam >= 0``.
    Arguments as in :func:`laplacian`; ``lam`` a finite number >= 0."""
    lam = _check_lam(lam)
    f = _check_faces(faces, num_vertices)
    v = _check_vertices_array(vertices, num_vertices) if kind == "cotangent" else None
    if kind not in LAPLACIAN_KINDS:
        raise LargeStepsError(f"unknown Laplacian kind {kind!r}; choose one of {LAPLACIAN_KINDS}")
    n = int(num_vertices)
    rows, cols, vals = _coalesce(*_system_coo(f, n, lam, kind, v), n)
    return _torch_sparse(rows, cols, vals, n, dtype)


# --------------------------------------------------------------------------- the solver


def _coalesce(rows, cols, vals, n: int):
    """Sum duplicate entries: (rows, cols, vals) of the same matrix, each entry once."""
    m = scipy.sparse.coo_matrix((vals, (rows, cols)), shape=(n, n)).tocsr()
    m.sum_duplicates()
    m = m.tocoo()
    return m.row.astype(np.int64), m.col.astype(np.int64), m.data.astype(np.float64)


def _torch_sparse(rows, cols, vals, n: int, dtype, device="cpu",
                  coalesced: bool = False) -> torch.Tensor:
    """A torch sparse COO [n,n]; ``coalesced``: the entries are unique and in row-major
    order already (no check, no sort)."""
    idx = torch.from_numpy(np.stack([rows, cols]).astype(np.int64))
    vals = torch.from_numpy(vals).to(dtype)
    if coalesced:
        return torch.sparse_coo_tensor(idx, vals, (n, n), is_coalesced=True,
                                       check_invariants=False).to(device)
    t = torch.sparse_coo_tensor(idx, vals, (n, n), check_invariants=True)
    return t.coalesce().to(device)


class _SolveFunction(torch.autograd.Function):
    """x = M^-1 u for a symmetric M: the backward pass is the same solve (M^-T = M^-1), and
    it is written through this very Function, so higher derivatives work too."""

    @staticmethod
    def forward(ctx, u: torch.Tensor, factor: _Factor) -> torch.Tensor:
        ctx.factor = factor
        return factor.solve(u)

    @staticmethod
    def backward(ctx, grad_x: torch.Tensor):
        return _SolveFunction.apply(grad_x, ctx.factor), None


# --------------------------------------------------------------------------- the parameterisation


class SmoothParameterization:
    """Vertex positions parameterised as ``u = (I + lam L) x`` (Large Steps).

    Optimise :attr:`u` (a leaf tensor [V,3] with ``requires_grad``) and call :meth:`vertices`
    in every step to get ``x = (I + lam L)^-1 u`` [V,3], differentiable w.r.t. ``u``; its
    backward pass is one more solve with the same factor. The matrix is factored once here and
    at every :meth:`rebuild`; a solve of 3 columns is O(nonzeros of the factor).

    Args:
        vertices: [V,3] float32 or float64 starting positions, on the CPU (or on cuda where
            cholespy has its CUDA backend: otherwise a ``LargeStepsError``, never a crash).
            Detached: ``u`` starts as ``(I + lam L) vertices``, so ``vertices()`` returns them.
        faces: [F,3] integer indices into ``vertices``.
        lam: smoothing weight >= 0 (0: ``u`` is ``x`` itself). Default :data:`DEFAULT_LAMBDA`.
        kind: ``"uniform"`` (default) or ``"cotangent"`` Laplacian (:func:`laplacian`); a
            cotangent matrix is computed from the positions given here or at :meth:`rebuild`
            and then held fixed while ``u`` moves.

    Attributes: ``u`` [V,3] (leaf, requires grad), ``faces`` [F,3] int64, ``lam``, ``kind``,
    ``num_vertices``. Raises ``LargeStepsError`` (a ``ValueError``) for bad input.
    """

    def __init__(self, vertices: torch.Tensor, faces, lam: float = DEFAULT_LAMBDA,
                 kind: str = "uniform"):
        self.lam = _check_lam(lam)
        if kind not in LAPLACIAN_KINDS:
            raise LargeStepsError(f"unknown Laplacian kind {kind!r}; choose one of "
                                  f"{LAPLACIAN_KINDS}")
        self.kind = kind
        self.u: torch.Tensor
        self.rebuild(vertices, faces)

    @property
    def num_vertices(self) -> int:
        return int(self.u.shape[0])

    def rebuild(self, vertices: torch.Tensor, faces) -> torch.Tensor:
        """Adopt a new mesh (after a remesh, or any topology change): re-factor
        ``I + lam L`` for ``faces`` and set ``u = (I + lam L) vertices`` so that
        :meth:`vertices` returns ``vertices`` (detached) exactly, up to solver round-off.

        ``u`` becomes a *new* leaf tensor (the row count may change): hand it to the optimiser,
        e.g. with :meth:`AdamUniform.replace_param`. Returns the new ``u``.
        """
        if not torch.is_tensor(vertices) or not vertices.is_floating_point():
            raise LargeStepsError("vertices must be a floating-point tensor [V,3]")
        if vertices.ndim != 2 or vertices.shape[1] != 3 or vertices.shape[0] == 0:
            raise LargeStepsError(f"vertices must have shape [V,3], got {list(vertices.shape)}")
        if vertices.dtype not in (torch.float32, torch.float64):
            raise LargeStepsError(f"vertices must be float32 or float64, got {vertices.dtype}")
        if vertices.device.type not in ("cpu", "cuda"):
            raise LargeStepsError(f"the Cholesky solver runs on cpu or cuda, not "
                                  f"{vertices.device.type}")
        if not bool(torch.isfinite(vertices.detach()).all()):
            raise LargeStepsError("vertices have non-finite coordinates (NaN or inf)")
        n = int(vertices.shape[0])
        f = _check_faces(faces, n)
        x = vertices.detach()
        v = x.cpu().double().numpy() if self.kind == "cotangent" else None
        indptr, cols, vals = _system_csr(f, n, self.lam, self.kind, v)
        self._factor = _Factor(indptr, cols, vals, n, x.dtype, x.device)
        rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
        self._matrix = _torch_sparse(rows, cols, vals, n, x.dtype, x.device, coalesced=True)
        self.faces = torch.from_numpy(f).to(x.device)
        # A rebase (a remeshing fit) starts from a zero displacement: u is 0 too, no product.
        u = self.to_u(x) if bool(x.any()) else torch.zeros_like(x)
        self.u = u.detach().requires_grad_(True)
        return self.u

    def to_u(self, x: torch.Tensor) -> torch.Tensor:
        """``(I + lam L) x`` for positions ``x`` [V,3] of this topology (differentiable)."""
        if x.shape != (self._factor.n, 3):
            raise LargeStepsError(f"x must have shape [{self._factor.n},3], got {list(x.shape)}")
        return torch.sparse.mm(self._matrix, x.to(self._matrix.dtype)).to(x.dtype)

    def vertices(self, u: torch.Tensor | None = None) -> torch.Tensor:
        """``x = (I + lam L)^-1 u`` [V,3] (default ``u``: :attr:`u`), differentiable w.r.t.
        ``u`` (float32/float64, the parameterisation's dtype and device)."""
        u = self.u if u is None else u
        return _SolveFunction.apply(u, self._factor)


# --------------------------------------------------------------------------- the optimiser


@torch.no_grad()
def uniform_adam_update(p: torch.Tensor, st: dict, lr: float, betas: tuple[float, float],
                        eps: float) -> None:
    """One uniform Adam update of ``p`` from ``p.grad`` (see :class:`AdamUniform`), with its
    state ``st`` (Adam's keys, created on the first call)."""
    g = p.grad
    if g.is_sparse:
        raise ValueError("AdamUniform does not support sparse gradients")
    b1, b2 = betas
    if not st:
        st["step"] = torch.zeros((), dtype=torch.float32)
        st["exp_avg"] = torch.zeros_like(p)
        st["exp_avg_sq"] = torch.zeros_like(p)
    st["step"] += 1
    t = float(st["step"])
    m, v = st["exp_avg"], st["exp_avg_sq"]
    m.mul_(b1).add_(g, alpha=1 - b1)
    v.mul_(b2).addcmul_(g, g, value=1 - b2)
    scale = (v.max() / (1 - b2 ** t)).sqrt() + eps
    p.sub_(m / ((1 - b1 ** t) * scale), alpha=lr)


class AdamUniform(torch.optim.Optimizer):
    """Adam with one second-moment normaliser per tensor: the maximum over all its entries.

    With ``g`` the gradient, per parameter tensor and step ``t``::

        m = b1 m + (1 - b1) g            v = b2 v + (1 - b2) g^2      (elementwise)
        p -= lr * (m / (1 - b1^t)) / (max_all_entries(sqrt(v / (1 - b2^t))) + eps)

    (Nicolet et al. 2021, sec. 5). Plain Adam divides each entry by its own ``sqrt(v)``, which
    undoes the smoothing that :class:`SmoothParameterization` puts into the gradient; one
    scale for the whole tensor keeps the step's shape.

    Args:
        params: tensors or parameter groups (as for ``torch.optim.Adam``); any float dtype
            and device; dense gradients only.
        lr: learning rate (> 0 makes it move; >= 0 accepted).
        betas: (b1, b2) in [0, 1).
        eps: added to the normaliser (>= 0).

    State per parameter (``optimizer.state[p]``), the same keys as ``torch.optim.Adam`` so
    checkpoints written for Adam fit: ``"step"`` a float32 0-d tensor (steps taken),
    ``"exp_avg"`` (m) and ``"exp_avg_sq"`` (v), both shaped like ``p``. Rows of a [V,3] tensor
    belong to vertices: after a remesh, :meth:`replace_param` carries them to the new tensor.
    """

    def __init__(self, params, lr: float = 3e-2, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        if not (math.isfinite(lr) and lr >= 0):
            raise ValueError(f"lr must be a finite number >= 0, got {lr}")
        if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {betas}")
        if not (math.isfinite(eps) and eps >= 0):
            raise ValueError(f"eps must be a finite number >= 0, got {eps}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns ``closure()`` if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    uniform_adam_update(p, self.state[p], group["lr"], group["betas"],
                                        group["eps"])
        return loss

    def replace_param(self, old: torch.Tensor, new: torch.Tensor,
                      rows: torch.Tensor | None = None) -> None:
        """Put ``new`` in ``old``'s place (same group, same learning rate) and carry the state.

        ``rows`` [V_new] int64: for each row of ``new``, the row of ``old`` whose moments it
        takes, or -1 for a new row (zero moments). None: moments start again from zero (and
        ``step`` from 0). The step count is kept when ``rows`` is given. Note that after
        :meth:`SmoothParameterization.rebuild` the moments live in a new ``u`` space, so
        carried rows are an approximation (the one the Large Steps paper's remeshing uses).
        """
        for group in self.param_groups:
            for k, p in enumerate(group["params"]):
                if p is old:
                    group["params"][k] = new
                    break
            else:
                continue
            break
        else:
            raise ValueError("old is not a parameter of this optimizer")
        st = self.state.pop(old, None)
        if rows is None or not st:
            return
        rows = torch.as_tensor(rows, dtype=torch.int64, device=new.device)
        if rows.shape != (new.shape[0],):
            raise ValueError(f"rows must have shape [{new.shape[0]}], got {list(rows.shape)}")
        if rows.numel() and (int(rows.min()) < -1 or int(rows.max()) >= old.shape[0]):
            raise ValueError(f"rows must lie in [-1, {old.shape[0] - 1}]")
        moved = {"step": st["step"].clone()}
        keep = rows >= 0
        for k in ("exp_avg", "exp_avg_sq"):
            t = torch.zeros_like(new)
            t[keep] = st[k][rows[keep]].to(t.dtype)
            moved[k] = t
        self.state[new] = moved
