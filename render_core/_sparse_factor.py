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


BAND_MAX_ENTRIES = 2**19
"""Systems whose band, after a reverse Cuthill-McKee ordering, holds at most this many entries
(``V * (bandwidth + 1)``, 4 MiB of float64) are factored as a banded matrix by LAPACK
(``dpbtrf`` / ``dpbtrs`` through ``scipy.linalg.cholesky_banded``); others by CHOLMOD through
``cholespy``, and on cuda always by cholespy. Both are Cholesky factorisations in float64 and
agree to round-off. cholespy always orders with nested dissection (METIS), whose fixed cost
dominates small systems: measured on one core, on a 2,562-vertex icosphere (bandwidth 81) the
banded factor takes about a quarter of CHOLMOD's time (6 vs 24 ms on a loaded machine) and a
3-column solve about 4x CHOLMOD's (0.43 vs 0.11 ms). The limit keeps the banded solve under
about a millisecond; a fit of 10k vertices (bandwidth about 160) stays with CHOLMOD, whose
solve is then several times cheaper. A remeshing fit refactors every pass, so at the small
sizes the factor is what counts."""


def _band_order(indptr, indices, n: int):
    """(permutation, bandwidth) of a symmetric CSR matrix under reverse Cuthill-McKee."""
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
                ab = np.zeros((band + 1, n))
                ab[(where[rows] - where[indices])[lower], where[indices][lower]] = data[lower]
                try:
                    self._band = scipy.linalg.cholesky_banded(ab, lower=True,
                                                              check_finite=False)
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
        try:
            if device.type == "cpu":
                self.solver = cls(n, ii.numpy(), jj.numpy(), xx.numpy(), cholespy.MatrixType.CSC)
            else:
                self.solver = cls(n, ii.to(device), jj.to(device), xx.to(device),
                                  cholespy.MatrixType.CSC)
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
            x = scipy.linalg.cho_solve_banded((self._band, True),
                                              bb[self._perm].astype(np.float64),
                                              check_finite=False)
            return torch.from_numpy(np.ascontiguousarray(x[self._where], dtype=bb.dtype))
        if self.device.type == "cpu":
            x = np.empty(tuple(b.shape), dtype=b.numpy().dtype)
            self.solver.solve(b.numpy(), x)
            return torch.from_numpy(x)
        x = torch.empty_like(b)
        self.solver.solve(b, x)
        return x
