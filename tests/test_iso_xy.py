"""render_core._iso_xy: the native paths' iso_xy in one autograd node gives the torch
reference's values and gradient bit for bit (NaN where it has NaN)."""

from __future__ import annotations

import pytest
import torch

from render_core._iso_xy import iso_xy
from render_core._torch_ref import iso_xy as reference


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1).view(torch.int64 if t.dtype == torch.float64 else torch.int32)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("size", [(64, 64), (48, 80)])
@pytest.mark.parametrize("case", ["in front", "at the eye", "strided"])
def test_iso_xy_is_the_reference_bit_for_bit(dtype, size, case):
    g = torch.Generator().manual_seed(7)
    clip = torch.randn(3, 200, 4, generator=g, dtype=dtype)
    clip[..., 3] = clip[..., 3].abs() + 0.05
    if case == "at the eye":  # w at or near 0, negative, non-finite
        clip[0, :20, 3] = 0
        clip[1, :10, 3] = -1e-7
        clip[2, :5] = float("nan")
        clip[2, 5:8, 3] = float("inf")
    if case == "strided":
        clip = clip.transpose(0, 1).contiguous().transpose(0, 1)
    grad = torch.randn(3, 200, 2, generator=g, dtype=dtype)
    grad[0, :30] = 0
    grad[1, :30] = -0.0
    a = clip.clone().requires_grad_()
    b = clip.clone().requires_grad_()
    ya, yb = reference(a, *size), iso_xy(b, *size)
    torch.autograd.backward(ya, grad)
    torch.autograd.backward(yb, grad)
    for x, y in ((ya.detach(), yb.detach()), (a.grad, b.grad)):
        nan = x.isnan()
        assert torch.equal(nan, y.isnan())
        assert torch.equal(_bits(x)[~nan.reshape(-1)], _bits(y)[~nan.reshape(-1)])


def test_iso_xy_without_grad_is_the_reference():
    clip = torch.randn(2, 30, 4)
    assert torch.equal(iso_xy(clip, 32, 32), reference(clip, 32, 32))
