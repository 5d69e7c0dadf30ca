"""The per-topology tables (render_core._topology) are reused only for the very same, unchanged
faces: an in-place edit, or another faces tensor, gets tables built from its own values."""

import torch

import render_core as rc
from render_core import _topology, losses


def _losses(v, f):
    return torch.stack([losses.laplacian(v, f), losses.edge_length(v, f),
                        losses.normal_consistency(v, f), rc.vertex_normals(v, f).sum()])


def test_tables_equal_a_fresh_build_and_are_reused():
    mesh = rc.icosphere(subdivisions=2)
    f = mesh.faces
    topo = _topology.of(f)
    assert _topology.of(f) is topo
    assert torch.equal(topo.edges(), losses.unique_edges(f))
    assert torch.equal(topo.adjacency(), losses.edge_adjacency(f))
    assert torch.equal(topo.corners(), f.t().reshape(-1))
    assert topo.index_range() == (int(f.min()), int(f.max()))


def test_an_edited_or_other_faces_tensor_never_gets_stale_tables():
    mesh = rc.icosphere(subdivisions=2)
    v = mesh.vertices + 0.05 * torch.randn(mesh.vertices.shape,
                                           generator=torch.Generator().manual_seed(0))
    f = mesh.faces.clone()
    before = _losses(v, f)  # fills the cache for f
    # Flip the winding of some faces and re-index others, in place (same tensor object).
    f[:40] = f[:40].flip(1)
    f[40:80] = f[40:80].roll(1, 0)
    f[100, 0] = f[7, 2]  # another edge set
    fresh = f.clone()
    after = _losses(v, f)
    assert not torch.equal(after, before)
    torch.testing.assert_close(after, _losses(v, fresh), rtol=0, atol=0)
    assert torch.equal(_topology.of(f).edges(), losses.unique_edges(fresh))
    # Another mesh (another topology) in the same process.
    small = rc.icosphere(subdivisions=1)
    assert torch.equal(_topology.of(small.faces).edges(), losses.unique_edges(small.faces))


def test_a_bad_index_is_still_named_after_the_faces_were_seen_valid():
    mesh = rc.icosphere(subdivisions=1)
    clip = torch.cat([mesh.vertices, torch.ones(mesh.vertices.shape[0], 1)], 1)[None]
    f = mesh.faces.clone()
    rc.rasterize(clip, f, 16, backend="torch")
    f[3, 1] = mesh.vertices.shape[0]  # in place: out of range now
    try:
        rc.rasterize(clip, f, 16, backend="torch")
    except ValueError as e:
        assert "face indices must lie in" in str(e)
    else:
        raise AssertionError("an out-of-range face index was accepted")
