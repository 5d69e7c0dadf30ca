"""The native mesh ops (vertex normals, Laplacian, normal consistency, edge length) against the
torch compositions they replace, on meshes with non-manifold edges, unused vertices and
zero-area faces: values and gradients (float64 tight, float32 loose) and gradcheck."""

from __future__ import annotations

import pytest
import torch

import render_core as rc
from render_core import _build, _native
from render_core import losses as L
from render_core.shading import _vertex_normals_torch, vertex_normals


@pytest.fixture(scope="module", autouse=True)
def native():
    """Load the extension (the mesh ops use it only once loaded); any failure fails all."""
    module = _build.native_module("cpu")
    assert module is not None, _build._why_not("cpu")
    return module


def awkward_mesh(seed: int, batch: tuple[int, ...] = (), dtype=torch.float64):
    """An icosphere with a jittered surface plus: two faces on an existing edge (a three- and
    a four-face fan), a face with a repeated vertex, a collinear face, a face [a,a,a] and three
    unused vertices. Returns (vertices [*batch,V,3], faces [F,3])."""
    g = torch.Generator().manual_seed(seed)
    sphere = rc.icosphere(subdivisions=1)
    v = sphere.vertices.to(torch.float64)
    f = sphere.faces.to(torch.int64)
    nv = v.shape[0]
    a, b = int(f[0, 0]), int(f[0, 1])
    extra_v = torch.randn(6, 3, generator=g, dtype=torch.float64)
    mid = 0.5 * (v[a] + v[b])
    extra_v[3] = v[a] + 0.3 * (v[b] - v[a])  # on the edge a-b: the collinear face below
    v = torch.cat([v, extra_v])
    extra_f = torch.tensor([
        [a, b, nv], [b, a, nv + 1],  # edge a-b now has four faces
        [a, a, nv + 2],  # repeated vertex: zero area, one real edge
        [a, nv + 3, b],  # collinear: zero area
        [nv + 2, nv + 2, nv + 2],  # a point
    ])
    f = torch.cat([f, extra_f])
    # vertices nv+4, nv+5 and a third one appended below are used by no face
    v = torch.cat([v, mid.unsqueeze(0)])
    v = v + 0.05 * torch.randn(v.shape, generator=g, dtype=torch.float64)
    v = v.expand(*batch, *v.shape).clone()
    if batch:
        v = v + 0.05 * torch.randn(v.shape, generator=g, dtype=torch.float64)
    return v.to(dtype), f


def _value_and_grad(fn, v, seed=0):
    v = v.detach().clone().requires_grad_(True)
    out = fn(v)
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out.shape, generator=g, dtype=torch.float64).to(out.dtype)
    (grad,) = torch.autograd.grad((out * w).sum(), v)
    return out.detach(), grad


def _tol(dtype):
    return dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("batch", [(), (2,), (2, 3)])
def test_vertex_normals_match_torch(dtype, batch):
    v, f = awkward_mesh(1, batch, dtype)
    out = vertex_normals(v.requires_grad_(), f)
    assert type(out.grad_fn).__name__ == "_NativeVertexNormalsBackward"
    got = _value_and_grad(lambda x: vertex_normals(x, f), v)
    ref = _value_and_grad(lambda x: _vertex_normals_torch(x, f), v)
    assert got[0].shape == v.shape
    # vertices of no face have zero normals
    assert torch.equal(got[0][..., -1, :], torch.zeros_like(got[0][..., -1, :]))
    for a, b in zip(got, ref, strict=True):
        torch.testing.assert_close(a, b, **_tol(dtype))


REGS = [
    ("laplacian", L.laplacian, L._laplacian_torch, 0),
    ("normal", L.normal_consistency, L._normal_consistency_torch, 1),
    ("edge", L.edge_length, L._edge_length_torch, 2),
]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("batch", [(), (3,)])
@pytest.mark.parametrize("name,public,reference,_k", REGS)
def test_regularizer_matches_torch(name, public, reference, _k, dtype, batch):
    v, f = awkward_mesh(2, batch, dtype)
    out = public(v.requires_grad_(), f)
    assert type(out.grad_fn).__name__ == "_NativeMeshRegularizersBackward"
    got = _value_and_grad(lambda x: public(x, f), v)
    ref = _value_and_grad(lambda x: reference(x, f), v)
    assert got[0].ndim == 0 and got[0] > 0
    for a, b in zip(got, ref, strict=True):
        torch.testing.assert_close(a, b, **_tol(dtype))


@pytest.mark.parametrize("want", [(True, True, True), (True, False, True), (False, True, False)])
def test_fused_regularizers_match_each_term(want):
    v, f = awkward_mesh(3, (2,))
    v.requires_grad_(True)
    terms = L.mesh_regularizers(v, f, want)
    names = {type(t.grad_fn).__name__ for t in terms}
    assert names == {"_NativeMeshRegularizersBackward"}
    weights = (0.7, -1.3, 2.1)
    (grad,) = torch.autograd.grad(sum(w * t for w, t in zip(weights, terms, strict=True)), v)
    ref_terms = L.mesh_regularizers(v, f, want, backend="torch")
    assert all(t.grad_fn is None or "Native" not in type(t.grad_fn).__name__ for t in ref_terms)
    ref_total = sum(w * t for w, t in zip(weights, ref_terms, strict=True))
    (ref_grad,) = torch.autograd.grad(ref_total, v)
    for flag, t, r in zip(want, terms, ref_terms, strict=True):
        assert float(t.detach()) == pytest.approx(float(r.detach()), rel=1e-12, abs=1e-14)
        if not flag:
            assert float(t.detach()) == 0.0
    torch.testing.assert_close(grad, ref_grad, rtol=1e-12, atol=1e-12)


def test_gradcheck():
    v, f = awkward_mesh(4, (2,))
    v = v.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: vertex_normals(x, f), (v,), eps=1e-6, atol=1e-6)
    assert torch.autograd.gradcheck(lambda x: torch.stack(L.mesh_regularizers(x, f)), (v,),
                                    eps=1e-6, atol=1e-6)


def test_degenerate_topologies_match_torch():
    """One face (no face pair), a point face only (no edge, no connected vertex), no faces."""
    v, _ = awkward_mesh(5)
    v.requires_grad_(True)
    for f in (torch.tensor([[0, 1, 2]]), torch.tensor([[3, 3, 3]]), torch.zeros(0, 3)):
        f = f.to(torch.int64)
        for public, reference in [(L.laplacian, L._laplacian_torch),
                                  (L.normal_consistency, L._normal_consistency_torch),
                                  (L.edge_length, L._edge_length_torch),
                                  (vertex_normals, _vertex_normals_torch)]:
            got = _value_and_grad(lambda x, fn=public, f=f: fn(x, f), v)
            ref = _value_and_grad(lambda x, fn=reference, f=f: fn(x, f), v)
            for a, b in zip(got, ref, strict=True):
                torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_fallbacks():
    """edge_length with a target and out-of-range faces take the torch code; the native path
    never builds the extension itself (it is used once loaded)."""
    v, f = awkward_mesh(6)
    v.requires_grad_(True)
    out = L.edge_length(v, f, target=0.1)
    assert "Native" not in type(out.grad_fn).__name__
    bad = f.clone()
    bad[0, 0] = v.shape[0]
    for fn in (L.laplacian, L.normal_consistency, L.edge_length, vertex_normals):
        with pytest.raises((IndexError, RuntimeError)):
            fn(v, bad)
    assert _native.loaded_module() is not None


def test_in_place_edit_after_forward_is_detected():
    v, f = awkward_mesh(7)
    v.requires_grad_(True)
    x = v * 1.0
    out = L.laplacian(x, f) + vertex_normals(x, f).sum()
    with torch.no_grad():
        x.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.backward()


def test_torch_backend_keeps_vertex_normals_in_torch():
    """backend="torch" runs the torch composition even with the extension loaded; the values
    agree with the native op's."""
    v, f = awkward_mesh(3)
    v.requires_grad_(True)
    ref = vertex_normals(v, f, backend="torch")
    assert "Native" not in type(ref.grad_fn).__name__
    fast = vertex_normals(v, f)
    assert type(fast.grad_fn).__name__ == "_NativeVertexNormalsBackward"
    torch.testing.assert_close(fast, ref, rtol=1e-12, atol=1e-12)
