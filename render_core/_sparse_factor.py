"""The sparse Cholesky factor behind :class:`render_core.large_steps.SmoothParameterization`:
``I + lam L`` factored once per topology and solved every step.

Two factorisations, chosen per system (:data:`BAND_MAX_ENTRIES`): a banded Cholesky (LAPACK
``dpbtrf`` / ``dpbtrs`` through scipy) after a reverse Cuthill-McKee ordering, for systems
whose band is small, on the CPU; CHOLMOD through ``cholespy`` otherwise (and on cuda, with
cholespy's CUDA backend). Both factor and solve in float64 and agree to round-off.
"""

from __future__ import annotations

import atexit
import weakref

import numpy as np
import scipy.sparse
import torch


class LargeStepsError(ValueError):
    """Bad input to the Large Steps parameterisation (shapes, dtypes, devices, lambda)."""


# Factors alive in this process. cholespy's solver objects are released before the interpreter
# tears its extension modules down, which otherwise reports them as leaked on exit.
_LIVE_FACTORS: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _release_factors() -> None:
    for f in list(_LIVE_FACTORS):
        f.solver = None


BAND_MAX_ENTRIES = 3 * 2**17
"""Systems whose band, after a reverse Cuthill-McKee ordering, holds at most this many entries
(``V * (bandwidth + 1)``, 3 MiB of float64) are factored as a banded matrix by LAPACK
(``dpbtrf`` / ``dpbtrs`` through ``scipy.linalg.cholesky_banded``); others by CHOLMOD through
``cholespy``, and on cuda always by cholespy.

cholespy always orders with nested dissection (METIS), whose fixed cost dominates small
systems, and a remeshing fit refactors after every pass. Measured on one core of a loaded
machine (medians of interleaved runs, float32 right-hand sides of 3 columns):

- icosphere, 2,562 vertices, band 81 (210,084 entries): factor 10.0 ms banded vs 22.5 ms
  CHOLMOD; solve 1.0 vs 0.34 ms;
- that icosphere after one steady remeshing pass (``benchmarks/remesh.py``), 2,804 vertices,
  band 102 (288,812): factor 13.8 vs 29.4 ms; solve 1.3 vs 0.35 ms;
- torus 40x120, 4,800 vertices, band 122 (590,400): factor 24.7 vs 46.6 ms; solve 10.4 vs
  0.73 ms;
- icosphere, 10,242 vertices, band 161 (1,659,204): factor 59 vs 148 ms; solve 9.9 vs 9.8 ms.

The banded solve grows faster than the band once the band no longer fits the cache, while
CHOLMOD's follows the factor's few nonzeros, so the limit keeps the band where a solve (two per
step) stays near a millisecond: there the factor costs half of CHOLMOD's or less, and a step
of a few thousand vertices pays about 1 % more (``benchmarks/remesh.py``). A remeshing fit
whose mesh grows past the limit goes on with CHOLMOD (its passes then cost more)."""


def _band_order(indptr, indices, n: int):
    """A reverse Cuthill-McKee ordering of a symmetric CSR matrix: ``(perm, where, rows,
    band)``, the new order of the rows, each row's place in it, the row of every stored entry
    and the bandwidth of the reordered matrix."""
    from scipy.sparse.csgraph import reverse_cuthill_mckee

    m = scipy.sparse.csr_matrix((np.ones(len(indices)), indices, indptr), shape=(n, n))
    perm = reverse_cuthill_mckee(m, symmetric_mode=True).astype(np.int64)
    where = np.empty(n, dtype=np.int64)
    where[perm] = np.arange(n)
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
    band = int(np.abs(where[rows] - where[indices]).max()) if len(indices) else 0
    return perm, where, rows, band


class _Factor:
    """A sparse Cholesky factorisation of one SPD matrix, for one dtype and device: banded
    (LAPACK) for small bands on the CPU, else CHOLMOD (cholespy); see
    :data:`BAND_MAX_ENTRIES`. The matrix comes as symmetric CSR arrays (= its CSC arrays),
    each entry once."""

    def __init__(self, indptr, indices, data, n: int, dtype: torch.dtype,
                 device: torch.device):
        if dtype not in (torch.float32, torch.float64):
            raise LargeStepsError(f"vertices must be float32 or float64, got {dtype}")
        if device.type not in ("cpu", "cuda"):
            raise LargeStepsError(f"the Cholesky solver runs on cpu or cuda, not {device.type}")
        self.n, self.dtype, self.device = n, dtype, device
        self.solver = self._band = None
        if device.type == "cpu":
            perm, where, rows, band = _band_order(indptr, indices, n)
            if n * (band + 1) <= BAND_MAX_ENTRIES:
                import scipy.linalg

                lower = where[rows] >= where[indices]  # LAPACK's lower band storage
                ab = np.zeros((band + 1, n), order="F")  # LAPACK's layout: no copy
                ab[(where[rows] - where[indices])[lower], where[indices][lower]] = data[lower]
                try:
                    self._band = scipy.linalg.cholesky_banded(ab, overwrite_ab=True,
                                                              lower=True, check_finite=False)
                except np.linalg.LinAlgError as exc:
                    raise LargeStepsError(f"could not factor the {n}x{n} system: it is not "
                                          f"positive definite ({exc})") from None
                self._perm, self._where = perm, where
                return
        try:
            import cholespy
        except ImportError as exc:  # a dependency of the package, but say so plainly
            raise LargeStepsError(f"the Large Steps solver needs cholespy ({exc})") from None
        cls = cholespy.CholeskySolverF if dtype == torch.float32 else cholespy.CholeskySolverD
        ii = torch.from_numpy(np.ascontiguousarray(indptr, dtype=np.int32))
        jj = torch.from_numpy(np.ascontiguousarray(indices, dtype=np.int32))
        xx = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float64))
        # Handed over as CSR (of a symmetric matrix: the same arrays), never as CSC: cholespy
        # sorts a CSC input's arrays in place and reallocs them, while it converts a CSR
        # input into arrays of its own.
        try:
            if device.type == "cpu":
                self.solver = cls(n, ii.numpy(), jj.numpy(), xx.numpy(), cholespy.MatrixType.CSR)
            else:
                self.solver = cls(n, ii.to(device), jj.to(device), xx.to(device),
                                  cholespy.MatrixType.CSR)
        except Exception as exc:  # CHOLMOD failure or a cholespy built without CUDA
            raise LargeStepsError(
                f"cholespy could not factor the {n}x{n} system on {device} "
                f"({type(exc).__name__}: {exc}); on cuda without cholespy's CUDA backend, "
                "move the mesh to the CPU") from None
        _LIVE_FACTORS.add(self)

    def solve(self, b: torch.Tensor) -> torch.Tensor:
        """x [V,C] with (I + lam L) x = b [V,C] (same dtype and device as the factor)."""
        if b.dtype != self.dtype or b.device != self.device or b.shape[0] != self.n:
            raise LargeStepsError(
                f"right-hand side must be [{self.n},C] {self.dtype} on {self.device}, "
                f"got {list(b.shape)} {b.dtype} on {b.device}")
        b = b.detach().contiguous()
        if self._band is not None:  # in float64, as CHOLMOD does
            import scipy.linalg

            bb = b.numpy()
            rhs = np.array(bb[self._perm], dtype=np.float64, order="F")
            x = scipy.linalg.cho_solve_banded((self._band, True), rhs, overwrite_b=True,
                                              check_finite=False)
            return torch.from_numpy(np.ascontiguousarray(x[self._where], dtype=bb.dtype))
        if self.device.type == "cpu":
            x = np.empty(tuple(b.shape), dtype=b.numpy().dtype)
            self.solver.solve(b.numpy(), x)
            return torch.from_numpy(x)
        x = torch.empty_like(b)
        self.solver.solve(b, x)
        return x
