"""The fit step's finiteness check of gradients and new parameters
(``render_core._fit_divergence.all_finite``: one sum per tensor with the elementwise check as
the fall-back) against torch.isfinite: NaN and infinities anywhere, finite values whose sum
overflows, empty tensors, both float dtypes; and the blame per group."""

from __future__ import annotations

import itertools

import pytest
import torch

from render_core._fit_divergence import all_finite as _all_finite
from render_core._fit_divergence import offenders_of as _offenders


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_all_finite_is_the_elementwise_check(dtype):
    g = torch.Generator().manual_seed(0)
    big = torch.finfo(dtype).max / 2
    cases = []
    for shape, bad in itertools.product(((7, 3), (3,), (0, 3), (2, 5, 4)),
                                        (None, float("nan"), float("inf"), float("-inf"))):
        t = torch.randn(shape, generator=g, dtype=dtype)
        if bad is not None and t.numel():
            t.view(-1)[int(torch.randint(t.numel(), (), generator=g))] = bad
        cases.append(t)
    overflow = torch.full((4, 3), big, dtype=dtype)  # finite, but its sum is inf
    cases += [overflow, -overflow, torch.tensor([big, big, float("nan")], dtype=dtype),
              torch.tensor([float("inf"), float("-inf")], dtype=dtype)]
    for t in cases:
        want = bool(torch.isfinite(t).all())
        assert _all_finite([t]) == want, t
        assert _all_finite([torch.zeros(2, dtype=dtype), t]) == want
    assert not torch.isfinite(overflow.sum()) and _all_finite([overflow, -overflow])
    assert _all_finite([])


def test_offenders_names_the_groups_with_a_non_finite_tensor():
    ok, nan = torch.ones(3, requires_grad=True), torch.tensor([1.0, float("nan")])
    groups = [("vertices", [ok]), ("colors", [ok, nan]), ("light", []), ("camera", [nan])]
    assert _offenders(groups) == ["colors", "camera"]
    assert _offenders([("vertices", [ok])]) == []
