"""The native fragment backward passes keep their last groupings (pixels by face, corners by
vertex) for the next call with the same keys: a kept grouping must never stand in for keys
whose values changed, whether by a torch in-place op or by a write through a numpy array that
shares the tensor's memory (which torch's version counter does not see)."""

from __future__ import annotations

import pytest
import torch
from _scenes import random_clip

import render_core as rc
from render_core import _build
from render_core import _torch_ref as torch_ref
from render_core._native import native_barycentrics, native_interpolate


@pytest.fixture(scope="module", autouse=True)
def native():
    module = _build.native_module("cpu")
    assert module is not None, _build._why_not("cpu")
    return module


def scene(seed: int, nv: int = 40, nf: int = 60):
    g = torch.Generator().manual_seed(seed)
    clip = random_clip(g, 2, nv)
    faces = torch.randint(0, nv, (nf, 3), generator=g)
    return clip, faces


def grads(clip, faces, face_idx, attr, up):
    """clip's and attr's gradients through native barycentrics + interpolation."""
    c = clip.clone().requires_grad_(True)
    a = attr.clone().requires_grad_(True)
    bary, _ = native_barycentrics("cpu", c, faces, face_idx)
    out = native_interpolate("cpu", a, bary, faces, face_idx)
    return torch.autograd.grad((out * up).sum(), (c, a))


def reference(clip, faces, face_idx, attr, up):
    c = clip.clone().requires_grad_(True)
    a = attr.clone().requires_grad_(True)
    bary, _ = torch_ref.barycentrics(c, faces, face_idx)
    out = torch_ref.interpolate_attributes(a, bary, faces, face_idx)
    return torch.autograd.grad((out * up).sum(), (c, a))


@pytest.mark.parametrize("write", ["numpy", "inplace"])
def test_changed_keys_are_grouped_again(write):
    clip, faces = scene(0)
    h, w = 33, 47
    face_idx = torch_ref.visibility(clip, faces, h, w)
    g = torch.Generator().manual_seed(1)
    attr = torch.randn(1, clip.shape[1], 3, generator=g, dtype=torch.float64)
    clip = clip.double()
    up = torch.randn(*face_idx.shape, 3, generator=g, dtype=torch.float64)
    first = grads(clip, faces, face_idx, attr, up)  # fills the kept groupings
    # New faces and face_idx in the very same tensors (same storage, same shapes).
    perm = torch.randperm(faces.shape[0], generator=g)
    new_faces = faces.roll(1, dims=1)[perm]
    new_idx = torch.where(face_idx >= 0, perm.argsort()[face_idx.clamp(min=0)], face_idx)
    if write == "numpy":
        faces.numpy()[...] = new_faces.numpy()
        face_idx.numpy()[...] = new_idx.numpy()
    else:
        faces.copy_(new_faces)
        face_idx.copy_(new_idx)
    again = grads(clip, faces, face_idx, attr, up)
    fresh = grads(clip, faces.clone(), face_idx.clone(), attr, up)
    want = reference(clip, faces, face_idx, attr, up)
    for a, b, r in zip(again, fresh, want, strict=True):
        assert torch.equal(a, b)
        torch.testing.assert_close(a, r, rtol=1e-9, atol=1e-9)
    # the keys did change
    assert not all(torch.equal(a, b) for a, b in zip(first, again, strict=True))


def test_empty_cache_lets_the_groupings_go():
    clip, faces = scene(2)
    face_idx = torch_ref.visibility(clip, faces, 20, 20)
    attr = torch.ones(1, clip.shape[1], 2, dtype=clip.dtype)
    up = torch.ones(*face_idx.shape, 2, dtype=clip.dtype)
    a = grads(clip, faces, face_idx, attr, up)
    rc.empty_cache()
    b = grads(clip, faces, face_idx, attr, up)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)
