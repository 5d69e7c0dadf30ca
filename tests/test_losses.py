"""Tests for render_core.losses: IoU, L1 and the mesh regularisers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

from render_core.losses import (
    edge_adjacency,
    edge_length,
    iou,
    l1,
    laplacian,
    normal_consistency,
    uniform_laplacian,
    unique_edges,
)
from render_core.primitives import _icosahedron


def grid(n: int = 6, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat n x n vertex grid in the XY plane (unit spacing), faces CCW seen from +Z.

    Every square is split along the same diagonal, so an interior vertex has six neighbours at
    (+-1, 0), (0, +-1), (1, 1), (-1, -1): their mean is the vertex itself.
    """
    jj, ii = np.meshgrid(np.arange(n), np.arange(n))
    v = np.stack([jj.ravel(), ii.ravel(), np.zeros(n * n)], axis=1)
    faces = []
    for i in range(n - 1):
        for j in range(n - 1):
            a, b, c, d = i * n + j, i * n + j + 1, (i + 1) * n + j + 1, (i + 1) * n + j
            faces += [[a, b, c], [a, c, d]]
    return torch.tensor(v, dtype=dtype), torch.tensor(faces, dtype=torch.int64)


def interior(n: int) -> torch.Tensor:
    idx = torch.arange(n * n).reshape(n, n)
    return idx[1:-1, 1:-1].reshape(-1)


def icosahedron(dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit icosahedron (float64 before any cast), faces counter-clockwise seen from outside."""
    v, f = _icosahedron()
    return torch.tensor(v, dtype=dtype), torch.tensor(f)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------------------
# IoU


def test_iou_identical_disjoint_partial():
    a = torch.zeros(1, 4, 4)
    a[0, :2] = 1.0
    b = torch.zeros(1, 4, 4)
    b[0, 2:] = 1.0
    assert iou(a, a).item() == pytest.approx(0.0, abs=1e-6)
    assert iou(a, b).item() == pytest.approx(1.0, abs=1e-6)
    c = torch.zeros(1, 4, 4)
    c[0, 1:3] = 1.0  # overlaps a in 4 pixels, union 12
    assert iou(a, c).item() == pytest.approx(1.0 - 4.0 / 12.0, abs=1e-6)


def test_iou_soft_values_batch_mean_and_broadcast():
    pred = torch.tensor([[[0.5, 1.0]], [[1.0, 0.0]]], dtype=torch.float64)  # [2,1,2]
    target = torch.tensor([[1.0, 0.0]], dtype=torch.float64)  # [1,2] -> every batch element
    # b0: I = 0.5, U = 1 + 1 + 0 = 1.5 + 1 - 0.5 -> 2.0  ; b1: identical -> 0.
    expected = 0.5 * ((1.0 - 0.5 / 2.0) + 0.0)
    assert iou(pred, target).item() == pytest.approx(expected, abs=1e-6)


def test_iou_empty_masks():
    empty = torch.zeros(2, 3, 3)
    assert iou(empty, empty).item() == 0.0
    full = torch.ones(2, 3, 3)
    assert iou(full, empty).item() == pytest.approx(1.0, abs=1e-6)
    assert torch.isfinite(iou(empty, empty))


def test_iou_unbatched_and_dtype():
    a = torch.rand(5, 5, generator=_gen(0), dtype=torch.float64)
    assert iou(a, a).dtype == torch.float64
    assert iou(a, a).ndim == 0
    assert iou(a.float(), a.float()).dtype == torch.float32


def test_iou_gradcheck():
    pred = torch.rand(2, 4, 5, generator=_gen(1), dtype=torch.float64).requires_grad_(True)
    target = (torch.rand(2, 4, 5, generator=_gen(2), dtype=torch.float64) > 0.5).double()
    assert gradcheck(lambda p: iou(p, target), (pred,))


# ---------------------------------------------------------------------------------------------
# L1


def test_l1_plain_mean():
    pred = torch.tensor([[[[0.0, 0.5, 1.0]]]])
    target = torch.tensor([[[[1.0, 0.5, 0.0]]]])
    assert l1(pred, target).item() == pytest.approx(2.0 / 3.0)


def test_l1_mask_weights_pixels():
    pred = torch.zeros(2, 2, 2, 3, dtype=torch.float64)
    target = torch.zeros_like(pred)
    target[0, 0, 0] = 1.0  # error 1 in all channels at one pixel
    target[1, 1, 1] = 3.0  # ignored by the mask below
    mask = torch.zeros(2, 2, 2, dtype=torch.float64)
    mask[0, 0, 0] = 1.0
    mask[0, 0, 1] = 1.0
    assert l1(pred, target, mask).item() == pytest.approx(0.5)
    # Soft weights: a weighted mean.
    mask[0, 0, 1] = 0.25
    assert l1(pred, target, mask).item() == pytest.approx(1.0 / 1.25)
    # An unbatched mask applies to every batch element.
    m2 = torch.zeros(2, 2, dtype=torch.float64)
    m2[1, 1] = 1.0
    assert l1(pred, target, m2).item() == pytest.approx(1.5)
    # An empty mask gives 0, not NaN.
    assert l1(pred, target, torch.zeros(2, 2, 2, dtype=torch.float64)).item() == 0.0


def test_l1_gradcheck():
    pred = torch.rand(2, 3, 4, 3, generator=_gen(3), dtype=torch.float64)
    target = pred + torch.where(torch.rand(pred.shape, generator=_gen(4)) > 0.5, 0.2, -0.2).double()
    mask = torch.rand(2, 3, 4, generator=_gen(5), dtype=torch.float64)
    pred.requires_grad_(True)
    assert gradcheck(lambda p: l1(p, target), (pred,))
    assert gradcheck(lambda p: l1(p, target, mask), (pred,))


# ---------------------------------------------------------------------------------------------
# Topology helpers


def test_unique_edges_of_icosahedron_and_grid():
    _, f = icosahedron()
    e = unique_edges(f)
    assert e.shape == (30, 2) and (e[:, 0] < e[:, 1]).all()
    _, fg = grid(4)
    # 3x3 squares: 2*3*4 axis-aligned edges + 9 diagonals.
    assert unique_edges(fg).shape[0] == 24 + 9
    # A degenerate face's collapsed side is not an edge.
    assert unique_edges(torch.tensor([[0, 0, 1]])).tolist() == [[0, 1]]


def test_edge_adjacency_manifold_and_non_manifold():
    _, f = icosahedron()
    pairs = edge_adjacency(f)
    assert pairs.shape == (30, 2)
    assert (pairs[:, 0] < pairs[:, 1]).all()
    # Each face of a closed triangle mesh has exactly three neighbours.
    assert torch.bincount(pairs.reshape(-1), minlength=20).eq(3).all()
    # A fan of three faces on edge (0, 1): all three pairs.
    fan = torch.tensor([[0, 1, 2], [1, 0, 3], [0, 1, 4]])
    assert sorted(map(tuple, edge_adjacency(fan).tolist())) == [(0, 1), (0, 2), (1, 2)]
    # Boundary-only meshes and empty meshes have no pairs.
    assert edge_adjacency(torch.tensor([[0, 1, 2]])).shape == (0, 2)
    assert edge_adjacency(torch.zeros(0, 3, dtype=torch.int64)).shape == (0, 2)


# ---------------------------------------------------------------------------------------------
# Laplacian


def _dense_uniform_laplacian(v: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    n = v.shape[0]
    adj = torch.zeros(n, n, dtype=v.dtype)
    for a, b, c in f.tolist():
        for i, j in ((a, b), (b, c), (c, a)):
            adj[i, j] = adj[j, i] = 1.0
    deg = adj.sum(1, keepdim=True)
    return v - adj @ v / deg


def test_flat_grid_interior_laplacian_is_zero():
    n = 6
    v, f = grid(n)
    offsets = uniform_laplacian(v, f)
    assert torch.allclose(offsets[interior(n)], torch.zeros_like(offsets[interior(n)]), atol=1e-12)
    assert offsets.abs().sum() > 0  # boundary vertices are not at their neighbours' mean


def test_laplacian_matches_dense_reference():
    v, f = icosahedron()
    v = v + 0.1 * torch.randn(v.shape, generator=_gen(6), dtype=v.dtype)
    ref = _dense_uniform_laplacian(v, f)
    assert torch.allclose(uniform_laplacian(v, f), ref)
    assert laplacian(v, f).item() == pytest.approx(ref.norm(dim=-1).mean().item())


def test_laplacian_grows_with_noise():
    n = 8
    v, f = grid(n)
    z = torch.randn(n * n, generator=_gen(7), dtype=v.dtype)
    losses = []
    for scale in (0.0, 0.01, 0.1, 0.5):
        vv = v.clone()
        vv[:, 2] = scale * z
        losses.append(laplacian(vv, f).item())
    assert all(a < b for a, b in zip(losses, losses[1:], strict=False))
    # Interior only: exactly zero without noise.
    assert uniform_laplacian(v, f)[interior(n)].norm(dim=-1).max().item() < 1e-12


def test_laplacian_batched_and_isolated_vertex():
    v, f = icosahedron()
    vb = torch.stack([v, 2.0 * v])
    assert laplacian(vb, f).item() == pytest.approx(
        0.5 * (laplacian(v, f).item() + laplacian(2.0 * v, f).item())
    )
    # An unused vertex far away changes nothing.
    v_extra = torch.cat([v, torch.tensor([[100.0, 0.0, 0.0]], dtype=v.dtype)])
    assert laplacian(v_extra, f).item() == pytest.approx(laplacian(v, f).item())
    assert uniform_laplacian(v_extra, f)[-1].abs().sum().item() == 0.0


def test_laplacian_gradcheck_and_zero_offset_gradient():
    v, f = grid(4)
    v = v + 0.1 * torch.randn(v.shape, generator=_gen(8), dtype=v.dtype)
    v.requires_grad_(True)
    assert gradcheck(lambda x: laplacian(x, f), (v,))
    # Exactly flat interior: offsets are zero there, and the gradient stays finite.
    flat, f5 = grid(5)
    flat.requires_grad_(True)
    laplacian(flat, f5).backward()
    assert torch.isfinite(flat.grad).all()


# ---------------------------------------------------------------------------------------------
# Normal consistency


def test_normal_consistency_flat_and_folded():
    n = 5
    v, f = grid(n)
    assert normal_consistency(v, f).item() == pytest.approx(0.0, abs=1e-12)
    folded = v.clone()
    folded[:, 2] = (folded[:, 0] - 2.0).abs()  # a crease along the column x = 2
    assert normal_consistency(folded, f).item() > 0.0
    # Only the 4 crease edges (x = 2) fold, by 90 degrees: 1 - cos = 1 each.
    n_pairs = edge_adjacency(f).shape[0]
    assert normal_consistency(folded, f).item() == pytest.approx(4.0 / n_pairs)


def test_normal_consistency_icosahedron_dihedral():
    v, f = icosahedron()
    # Adjacent faces of an icosahedron: cos(angle between normals) = sqrt(5)/3.
    assert normal_consistency(v, f).item() == pytest.approx(1.0 - math.sqrt(5.0) / 3.0)


def test_normal_consistency_penalises_flipped_winding():
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]])
    good = torch.tensor([[0, 1, 2], [0, 2, 3]])
    bad = torch.tensor([[0, 1, 2], [0, 3, 2]])
    assert normal_consistency(v, good).item() == pytest.approx(0.0, abs=1e-6)
    assert normal_consistency(v, bad).item() == pytest.approx(2.0, abs=1e-6)


def test_normal_consistency_batched_degenerate_and_empty():
    v, f = icosahedron()
    noisy = v + 0.1 * torch.randn(v.shape, generator=_gen(9), dtype=v.dtype)
    vb = torch.stack([v, noisy])
    expected = 0.5 * (normal_consistency(v, f) + normal_consistency(noisy, f))
    assert torch.allclose(normal_consistency(vb, f), expected)
    # Collapse one face: finite loss and gradient.
    deg = v.clone()
    deg[11] = deg[0]
    deg[5] = deg[0]
    deg.requires_grad_(True)
    loss = normal_consistency(deg, f)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(deg.grad).all()
    # No shared edge: zero loss that still supports backward().
    single = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]], requires_grad=True)
    loss = normal_consistency(single, torch.tensor([[0, 1, 2]]))
    loss.backward()
    assert loss.item() == 0.0


def test_normal_consistency_gradcheck():
    v, f = icosahedron()
    v = v + 0.1 * torch.randn(v.shape, generator=_gen(10), dtype=v.dtype)
    v.requires_grad_(True)
    assert gradcheck(lambda x: normal_consistency(x, f), (v,))


# ---------------------------------------------------------------------------------------------
# Edge length


def test_edge_length_hand_computed():
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 2, 0]], dtype=torch.float64)
    f = torch.tensor([[0, 1, 2]])
    # Squared lengths 1, 4, 5.
    assert edge_length(v, f).item() == pytest.approx(10.0 / 3.0)
    assert edge_length(v, f, target=0.0).item() == pytest.approx(10.0 / 3.0)
    expected = (0.0 + 1.0 + (math.sqrt(5.0) - 1.0) ** 2) / 3.0
    assert edge_length(v, f, target=1.0).item() == pytest.approx(expected)


def test_edge_length_counts_shared_edges_once_and_batches():
    v, f = grid(3)
    # 3x3 vertices: 12 unit edges and 4 diagonals of squared length 2.
    assert edge_length(v, f).item() == pytest.approx((12 * 1.0 + 4 * 2.0) / 16)
    vb = torch.stack([v, 3.0 * v])
    assert edge_length(vb, f).item() == pytest.approx(0.5 * (1.0 + 9.0) * (20.0 / 16))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_losses_keep_dtype(dtype):
    v, f = icosahedron(dtype)
    for fn in (laplacian, normal_consistency, edge_length):
        out = fn(v, f)
        assert out.dtype == dtype and out.ndim == 0


def test_edge_length_gradcheck():
    v, f = icosahedron()
    v = v + 0.1 * torch.randn(v.shape, generator=_gen(11), dtype=v.dtype)
    v.requires_grad_(True)
    target = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda x: edge_length(x, f), (v,))
    assert gradcheck(lambda x, t: edge_length(x, f, target=t), (v, target))


def test_mesh_losses_reject_bad_faces():
    v, f = icosahedron()
    with pytest.raises(ValueError):
        laplacian(v, f[:, :2])
    with pytest.raises(ValueError):
        edge_length(v[:, :2], f)
