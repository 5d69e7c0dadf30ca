"""The Large Steps factor (render_core._sparse_factor): the banded LAPACK Cholesky of small
systems and CHOLMOD (cholespy) of the others each match a dense solve of ``I + lam L`` built
from its definition, agree with each other, and the choice between them follows the band
size. Oracles: dense numpy solves; the matrix written out entry by entry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from render_core import _sparse_factor
from render_core._sparse_factor import LargeStepsError, _Factor
from render_core.large_steps import SmoothParameterization, _system_csr
from render_core.primitives import icosphere


def _dense(faces: np.ndarray, n: int, lam: float) -> np.ndarray:
    """I + lam L (uniform) from the definition: one loop over the faces' edges."""
    adj = np.zeros((n, n))
    for tri in faces:
        for k in range(3):
            i, j = tri[k], tri[(k + 1) % 3]
            adj[i, j] = adj[j, i] = 1.0
    return np.eye(n) + lam * (np.diag(adj.sum(1)) - adj)


def _csr_dense(indptr, indices, data, n) -> np.ndarray:
    m = np.zeros((n, n))
    for r in range(n):
        for k in range(indptr[r], indptr[r + 1]):
            m[r, indices[k]] += data[k]
    return m


@pytest.fixture(params=[1, 3])
def mesh(request):
    ico = icosphere(request.param)
    return ico.faces.numpy(), ico.vertices.shape[0]


def test_system_csr_is_the_system_matrix(mesh):
    faces, n = mesh
    indptr, indices, data = _system_csr(faces, n, 19.0, "uniform", None)
    assert np.array_equal(_csr_dense(indptr, indices, data, n), _dense(faces, n, 19.0))
    # each entry once, columns ascending in every row (what CHOLMOD's CSC input needs)
    for r in range(n):
        cols = indices[indptr[r]:indptr[r + 1]]
        assert np.all(np.diff(cols) > 0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_banded_and_cholmod_match_dense_solve_and_each_other(mesh, dtype, monkeypatch):
    faces, n = mesh
    indptr, indices, data = _system_csr(faces, n, 19.0, "uniform", None)
    b = torch.randn(n, 3, generator=torch.Generator().manual_seed(0), dtype=dtype)
    ref = np.linalg.solve(_dense(faces, n, 19.0), b.double().numpy())
    banded = _Factor(indptr, indices, data, n, dtype, torch.device("cpu"))
    monkeypatch.setattr(_sparse_factor, "BAND_MAX_ENTRIES", 0)
    cholmod = _Factor(indptr, indices, data, n, dtype, torch.device("cpu"))
    assert banded._band is not None and banded.solver is None
    assert cholmod._band is None and cholmod.solver is not None
    xb, xc = banded.solve(b), cholmod.solve(b)
    assert xb.dtype == xc.dtype == dtype and xb.shape == (n, 3)
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    scale = np.abs(ref).max()
    assert np.abs(xb.double().numpy() - ref).max() < tol * scale
    assert np.abs(xc.double().numpy() - ref).max() < tol * scale
    if dtype == torch.float32:  # both solve in float64: the float32 results differ by
        # at most the last rounding
        assert (xb - xc).abs().max() <= 2 * torch.finfo(dtype).eps * float(scale)


def test_choice_follows_the_band_size(monkeypatch):
    ico = icosphere(3)
    faces, n = ico.faces.numpy(), ico.vertices.shape[0]
    indptr, indices, data = _system_csr(faces, n, 5.0, "uniform", None)
    band = _sparse_factor._band_order(indptr, indices, n)[3]
    assert 0 < band < n - 1  # the ordering found a band narrower than the matrix
    monkeypatch.setattr(_sparse_factor, "BAND_MAX_ENTRIES", n * (band + 1))
    assert _Factor(indptr, indices, data, n, torch.float64, torch.device("cpu"))._band \
        is not None
    monkeypatch.setattr(_sparse_factor, "BAND_MAX_ENTRIES", n * (band + 1) - 1)
    assert _Factor(indptr, indices, data, n, torch.float64, torch.device("cpu"))._band is None


def test_parameterisation_same_with_either_factor(monkeypatch):
    """SmoothParameterization's vertices and gradient do not depend on the factor used."""
    ico = icosphere(2)
    v, f = ico.vertices.double(), ico.faces
    u = torch.randn(v.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    out = []
    for limit in (_sparse_factor.BAND_MAX_ENTRIES, 0):
        monkeypatch.setattr(_sparse_factor, "BAND_MAX_ENTRIES", limit)
        p = SmoothParameterization(v, f, lam=19.0)
        uu = u.clone().requires_grad_(True)
        x = p.vertices(uu)
        (x.sin().sum()).backward()
        out.append((x.detach(), uu.grad, p.u.detach()))
    for a, b in zip(*out, strict=True):
        assert (a - b).abs().max() < 1e-12


def test_not_positive_definite_raises_clear_error():
    # [[1, 2], [2, 1]] is symmetric but indefinite: the banded factor refuses it by name
    indptr = np.array([0, 2, 4])
    indices = np.array([0, 1, 0, 1])
    data = np.array([1.0, 2.0, 2.0, 1.0])
    with pytest.raises(LargeStepsError, match="not positive definite"):
        _Factor(indptr, indices, data, 2, torch.float64, torch.device("cpu"))
