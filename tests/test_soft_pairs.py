"""The CPU soft silhouette's pair-saving forward (what a differentiated call runs) against the
forward that saves nothing, whose backward measures every pixel-face pair again.

Oracle: the two CPU paths compute every term with the same operations in the same order, so
alpha and the vertex gradient must agree to the bit, in float32 and float64, with upstream
gradients that are zero on some pixels. The pair buffer is reused across calls once nothing
holds it: forwards whose saved state is alive at the same time must not share it.
"""

from __future__ import annotations

import pytest
import torch
from _scenes import random_clip

from render_core import _build
from render_core import _torch_ref as torch_ref
from render_core.camera import Camera
from render_core.primitives import icosphere


@pytest.fixture(scope="module")
def kernels():
    return _build.load_variant("cpu")


def scene(seed: int, dtype: torch.dtype, h: int = 44, w: int = 60):
    """A sphere (back faces along its rim) plus random layered triangles, two views."""
    g = torch.Generator().manual_seed(seed)
    mesh = icosphere(3)
    cams = [Camera.orbit(a, 20.0, 3.0, fov=45.0) for a in (10.0, 130.0)]
    sph = torch.cat([c.to_clip(mesh.vertices) for c in cams]).detach()
    rnd = random_clip(g, 2, 50)
    clip = torch.cat([sph, rnd], 1).to(dtype)
    faces = torch.cat([mesh.faces, torch.randint(0, 50, (70, 3), generator=g) + sph.shape[1]])
    valid = torch_ref.valid_faces(torch_ref.face_vertices(clip, faces))
    xy = torch_ref.iso_xy(clip, h, w).contiguous()
    grad = torch.rand(2, h, w, generator=g, dtype=dtype)
    grad[:, ::4] = 0
    return xy, valid, faces, grad, h, w


def run(kernels, fwd: str, xy, valid, faces, grad, h, w, sigma):
    cut2 = torch_ref.cutoff2(sigma)
    saved = getattr(kernels, fwd)(xy, valid, faces, h, w, sigma, cut2)
    g = kernels.soft_backward_cpu(grad, xy, faces, saved, h, w, sigma, cut2, True)
    return saved[0], g


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed,sigma", [(0, 1 / 7000), (1, 3 / 7000), (2, 1 / 400)])
def test_pairs_match_recomputed_backward_bit_for_bit(kernels, dtype, seed, sigma):
    xy, valid, faces, grad, h, w = scene(seed, dtype)
    a0, g0 = run(kernels, "soft_forward_cpu", xy, valid, faces, grad, h, w, sigma)
    a1, g1 = run(kernels, "soft_forward_pairs_cpu", xy, valid, faces, grad, h, w, sigma)
    assert int(((a0 > 0) & (a0 < 1)).sum()) > 100  # a real band
    assert float(g0.abs().max()) > 0
    assert torch.equal(a1, a0)
    assert torch.equal(g1, g0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pairs_across_images_with_an_empty_one(kernels, dtype):
    """Images with no band at all (every face invalid) between and before others: each
    image's bins, pair records (which hold their pixel's index in [B,H,W]) and pair slots
    land in their own places, so both paths still agree to the bit, and the pixels of the
    empty images get no alpha and no gradient."""
    xy, valid, faces, grad, h, w = scene(5, dtype)
    none = torch.zeros_like(valid[:1])
    xy3 = torch.cat([xy[:1], xy[1:], xy[:1], xy[1:]]).contiguous()
    valid3 = torch.cat([none, valid[:1], none, valid[1:]])
    grad3 = torch.cat([grad, grad.flip(0)])
    sigma = 3 / 7000
    a0, g0 = run(kernels, "soft_forward_cpu", xy3, valid3, faces, grad3, h, w, sigma)
    a1, g1 = run(kernels, "soft_forward_pairs_cpu", xy3, valid3, faces, grad3, h, w, sigma)
    assert torch.equal(a1, a0)
    assert torch.equal(g1, g0)
    assert float(a0[0].abs().max()) == 0 and float(a0[2].abs().max()) == 0
    assert float(g0[0].abs().max()) == 0 and float(g0[2].abs().max()) == 0
    assert float(g0[1].abs().max()) > 0 and float(g0[3].abs().max()) > 0


def test_saved_states_alive_together_do_not_share_the_buffer(kernels):
    """Two forwards held at once (two renders in one graph), then their backward passes in
    either order; then the same again once both are released (the buffer reused)."""
    sigma = 3 / 7000
    cut2 = torch_ref.cutoff2(sigma)
    a = scene(3, torch.float32)
    b = scene(4, torch.float32)
    want_a = run(kernels, "soft_forward_cpu", *a, sigma)[1]
    want_b = run(kernels, "soft_forward_cpu", *b, sigma)[1]
    for _ in range(2):
        xa, va, fa, ga, h, w = a
        xb, vb, fb, gb, _, _ = b
        sa = kernels.soft_forward_pairs_cpu(xa, va, fa, h, w, sigma, cut2)
        sb = kernels.soft_forward_pairs_cpu(xb, vb, fb, h, w, sigma, cut2)
        got_b = kernels.soft_backward_cpu(gb, xb, fb, sb, h, w, sigma, cut2, True)
        got_a = kernels.soft_backward_cpu(ga, xa, fa, sa, h, w, sigma, cut2, True)
        assert torch.equal(got_a, want_a)
        assert torch.equal(got_b, want_b)
        del sa, sb


def test_pair_buffer_is_kept_between_calls_until_empty_cache(kernels):
    """A fit's steps reuse one pair buffer (no fresh memory to fault in each step), also one
    past the old 128 MiB limit (256x256, 20k faces: ~370 MB); render_core.empty_cache() lets
    it go, and a state still alive keeps its own pairs through it."""
    import render_core

    mesh = icosphere(5)
    cams = [Camera.orbit(a, 15.0, 3.2, fov=45.0) for a in (0.0, 60.0, 120.0, 180.0, 240.0, 300.0)]
    clip = torch.cat([c.to_clip(mesh.vertices) for c in cams]).detach()
    h = w = 256
    sigma = 3 / 7000
    cut2 = torch_ref.cutoff2(sigma)
    valid = torch_ref.valid_faces(torch_ref.face_vertices(clip, mesh.faces))
    xy = torch_ref.iso_xy(clip, h, w).contiguous()
    grad = torch.rand(clip.shape[0], h, w, generator=torch.Generator().manual_seed(5))

    def forward():
        return kernels.soft_forward_pairs_cpu(xy, valid, mesh.faces, h, w, sigma, cut2)

    render_core.empty_cache()
    s1 = forward()
    pairs = s1[-1]
    assert pairs.numel() * pairs.element_size() > 128 << 20  # past the old limit
    ptr = pairs.data_ptr()
    want = kernels.soft_backward_cpu(grad, xy, mesh.faces, s1, h, w, sigma, cut2, True)
    del s1, pairs
    s2 = forward()
    assert s2[-1].data_ptr() == ptr  # the same memory again
    assert render_core.empty_cache() > 128 << 20  # s2 still holds it: freed with s2
    assert render_core.empty_cache() == 0
    got = kernels.soft_backward_cpu(grad, xy, mesh.faces, s2, h, w, sigma, cut2, True)
    assert torch.equal(got, want)
    del s2
    s3 = forward()  # a new buffer after the release, same results
    assert torch.equal(kernels.soft_backward_cpu(grad, xy, mesh.faces, s3, h, w, sigma, cut2,
                                                 True), want)
