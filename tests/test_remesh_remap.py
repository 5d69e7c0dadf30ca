"""RemeshResult.remap_many: the per-vertex tensors of a fit carried through a pass in one
gather per dtype give the very numbers :meth:`RemeshResult.remap` gives one by one (the
oracle), for every shape and dtype, and bad input is refused as remap refuses it."""

from __future__ import annotations

import pytest
import torch

from render_core.primitives import icosphere
from render_core.remesh import RemeshError, remesh


@pytest.fixture(scope="module")
def result():
    ico = icosphere(4)
    v, f = ico.vertices, ico.faces
    g = torch.Generator().manual_seed(0)
    el = float((v[f] - v[f.roll(1, 1)]).norm(dim=-1).mean())
    vj = v + torch.randn(v.shape, generator=g) * 0.1 * el
    tl = el * torch.exp((torch.rand(v.shape[0], generator=g) - 0.5) * 0.8)
    res = remesh(vj, f, tl)
    assert res.num_collapsed > 0 and res.num_split > 0  # weights of 1, 1/2 and 1/4 occur
    return res


def test_remap_many_equals_remap_bit_for_bit(result):
    nv = result.num_input_vertices
    g = torch.Generator().manual_seed(1)
    values = [torch.randn(nv, 3, generator=g), torch.rand(nv, generator=g),
              torch.randn(nv, 3, generator=g, dtype=torch.float64),
              torch.randn(nv, 2, 2, generator=g), torch.randn(nv, 3, generator=g)[:, ::2]]
    many = result.remap_many(values)
    assert len(many) == len(values)
    for t, m in zip(values, many, strict=True):
        one = result.remap(t)
        assert m.dtype == t.dtype and m.shape == one.shape and m.is_contiguous()
        assert torch.equal(m, one)


def test_remesh_vertices_and_attributes_are_the_remapped_inputs(result):
    # remesh() gathers the vertices with its attributes: the same as remapping them after
    ico = icosphere(3)
    v, f = ico.vertices.double(), ico.faces
    attrs = {"c": torch.rand(v.shape[0], 3, dtype=torch.float64),
             "s": torch.rand(v.shape[0])}
    res = remesh(v * 1.05, f, 0.12, attrs)
    assert torch.equal(res.vertices, res.remap(v * 1.05))
    for k, t in attrs.items():
        assert torch.equal(res.attributes[k], res.remap(t))


def test_remap_many_refuses_what_remap_refuses(result):
    nv = result.num_input_vertices
    with pytest.raises(RemeshError, match="floating-point"):
        result.remap_many([torch.zeros(nv, 3), torch.zeros(nv, dtype=torch.int64)])
    with pytest.raises(RemeshError, match=f"V={nv} rows"):
        result.remap_many([torch.zeros(nv + 1, 3)])
