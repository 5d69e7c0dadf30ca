"""MixedAdam's plain groups (render_core._optim) against torch.optim.Adam, bit for bit: its
foreach update over several groups (other rates and betas, missing gradients, float32 and
float64), the fall-back to torch's step for other options, and its undo snapshot against
copy.deepcopy(state_dict())."""

from __future__ import annotations

import copy

import pytest
import torch

from render_core._optim import MixedAdam

SHAPES = ((40, 3), (3,), (6, 7), (9, 3))


def _pair(dtype, **options):
    g = torch.Generator().manual_seed(4)
    start = [torch.randn(s, generator=g, dtype=dtype) for s in SHAPES]
    lrs, betas = (0.01, 0.05, 0.003, 0.02), ((0.9, 0.999), (0.9, 0.999), (0.8, 0.99), (0.9, 0.9))
    out = []
    for cls in (MixedAdam, torch.optim.Adam):
        ps = [x.clone().requires_grad_(True) for x in start]
        groups = [{"params": [p], "lr": lr, "betas": b, "name": str(i)}
                  for i, (p, lr, b) in enumerate(zip(ps, lrs, betas, strict=True))]
        out.append((ps, cls(groups, **options)))
    return out, g


def _grads(g, dtype, step):
    return [None if (step % 5 == 2 and i == 1) else  # a group without a gradient now and then
            torch.randn(s, generator=g, dtype=dtype)
            * 10.0 ** float(torch.randint(-8, 3, (), generator=g))
            for i, s in enumerate(SHAPES)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("options", [{}, {"amsgrad": True}, {"weight_decay": 0.1}])
def test_plain_groups_are_torch_adam_bit_for_bit(dtype, options):
    ((mine, mixed), (ref, adam)), g = _pair(dtype, **options)
    for step in range(25):
        for a, b, grad in zip(mine, ref, _grads(g, dtype, step), strict=True):
            a.grad = None if grad is None else grad.clone()
            b.grad = None if grad is None else grad.clone()
        mixed.step()
        adam.step()
        assert all(torch.equal(a, b) for a, b in zip(mine, ref, strict=True)), step
    for a, b in zip(mine, ref, strict=True):
        for k, v in adam.state[b].items():
            assert torch.equal(mixed.state[a][k], v) and mixed.state[a][k].dtype == v.dtype


def test_snapshot_is_a_deep_copy_of_the_state_dict_and_restores_it():
    ((ps, opt), _), g = _pair(torch.float32)
    for step in range(3):
        for p, grad in zip(ps, _grads(g, torch.float32, step), strict=True):
            p.grad = grad
        opt.step()
    snap, want = opt.snapshot(), copy.deepcopy(opt.state_dict())
    assert snap["param_groups"] == want["param_groups"]
    assert snap["state"].keys() == want["state"].keys()
    for i, st in want["state"].items():
        assert list(snap["state"][i]) == list(st)
        for k, v in st.items():
            assert torch.equal(snap["state"][i][k], v)
            assert snap["state"][i][k].data_ptr() != opt.state[ps[i]][k].data_ptr()
    before = [p.detach().clone() for p in ps]
    for p, grad in zip(ps, _grads(g, torch.float32, 7), strict=True):
        p.grad = grad
    opt.step()  # moves the parameters and the moments on; the snapshot stays as it was
    for i, st in want["state"].items():
        assert all(torch.equal(snap["state"][i][k], v) for k, v in st.items())
    opt.load_state_dict(snap)
    with torch.no_grad():
        for p, b in zip(ps, before, strict=True):
            p.copy_(b)
    ((ref_ps, ref), _), _ = _pair(torch.float32)
    ref.load_state_dict(want)
    with torch.no_grad():
        for p, b in zip(ref_ps, before, strict=True):
            p.copy_(b)
    grads = _grads(torch.Generator().manual_seed(9), torch.float32, 0)
    for p, q, grad in zip(ps, ref_ps, grads, strict=True):
        p.grad, q.grad = grad.clone(), grad.clone()
    opt.step()
    ref.step()
    assert all(torch.equal(p, q) for p, q in zip(ps, ref_ps, strict=True))
