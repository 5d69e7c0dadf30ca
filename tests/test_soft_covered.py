"""The soft silhouette with its coverage given (``covered=``, the rasterizer's mask): what the
Renderer passes so the native CPU kernels skip their own coverage pass.

Oracles: the same op without the hint (its own coverage test), bit for bit where the two
coverages agree and within the native-vs-torch tolerance where they may differ by rounding;
the kernels fed their own coverage, bit for bit; and scenes where the rasterizer drops
fragments for their depth, where the hint must be ignored.
"""

from __future__ import annotations

import pytest
import torch
from _scenes import random_clip

import render_core as rc
from render_core import _build
from render_core import _torch_ref as torch_ref
from render_core.rasterize import rasterize, soft_silhouette


@pytest.fixture(scope="module")
def kernels():
    """The CPU extension; a failure to build fails every test here."""
    return _build.load_variant("cpu")


def sphere_clip(sub: int, views: int, dist: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    mesh = rc.icosphere(sub)
    cams = [rc.Camera.orbit(a, 20.0, dist, fov=45.0) for a in range(0, 360, 360 // views)]
    return torch.cat([c.to_clip(mesh.vertices) for c in cams]).detach(), mesh.faces


def alpha_and_grad(clip, faces, res, sigma, covered=None):
    clip = clip.clone().requires_grad_(True)
    alpha = soft_silhouette(clip, faces, res, sigma=sigma, backend="cpu", covered=covered)
    weight = torch.rand(alpha.shape, generator=torch.Generator().manual_seed(3),
                        dtype=alpha.dtype)
    (alpha * weight).sum().backward()
    return alpha.detach(), clip.grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("pairs", [False, True])
def test_kernels_given_their_own_coverage_agree_bit_for_bit(kernels, dtype, pairs):
    g = torch.Generator().manual_seed(5)
    sph, sfaces = sphere_clip(3, 2)
    clip = torch.cat([sph, random_clip(g, 2, 40)], 1).to(dtype)
    faces = torch.cat([sfaces, torch.randint(0, 40, (60, 3), generator=g) + sph.shape[1]])
    h, w, sigma = 40, 56, 3 / 7000
    cut2 = torch_ref.cutoff2(sigma)
    valid = torch_ref.valid_faces(torch_ref.face_vertices(clip, faces))
    xy = torch_ref.iso_xy(clip, h, w).contiguous()
    grad = torch.rand(2, h, w, generator=g, dtype=dtype)
    fwd = kernels.soft_forward_pairs_cpu if pairs else kernels.soft_forward_cpu
    want = fwd(xy, valid, faces, h, w, sigma, cut2)
    got = kernels.soft_forward_covered_cpu(xy, valid, faces, want[2].clone(), h, w, sigma, cut2,
                                           pairs)
    assert len(got) == len(want)
    assert int(((want[0] > 0) & (want[0] < 1)).sum()) > 100  # a real band
    assert torch.equal(got[0], want[0])
    g_want = kernels.soft_backward_cpu(grad, xy, faces, want, h, w, sigma, cut2, True)
    g_got = kernels.soft_backward_cpu(grad, xy, faces, got, h, w, sigma, cut2, True)
    assert float(g_want.abs().max()) > 0
    assert torch.equal(g_got, g_want)


def own_coverage(kernels, clip, faces, res, sigma):
    """The coverage the silhouette kernels compute themselves."""
    valid = torch_ref.valid_faces(torch_ref.face_vertices(clip, faces))
    xy = torch_ref.iso_xy(clip, res, res).contiguous()
    return kernels.soft_forward_cpu(xy, valid, faces, res, res, sigma,
                                    torch_ref.cutoff2(sigma))[2]


@pytest.mark.parametrize("res,sub", [(64, 3), (128, 4), (97, 4)])
def test_rasterizer_mask_gives_the_same_silhouette(kernels, res, sub):
    clip, faces = sphere_clip(sub, 6, 2.6)
    sigma = 3 / 7000
    mask = rasterize(clip, faces, res, backend="cpu").mask
    a0, g0 = alpha_and_grad(clip, faces, res, sigma)
    a1, g1 = alpha_and_grad(clip, faces, res, sigma, covered=mask)
    own = own_coverage(kernels, clip, faces, res, sigma)
    if torch.equal(own, mask):
        assert torch.equal(a1, a0)
        assert torch.equal(g1, g0)
    else:  # pixel centres on an edge up to rounding: alpha 1 to far below eps either way
        assert int((own != mask).sum()) <= 4
        torch.testing.assert_close(a1, a0, atol=1e-6, rtol=0)
        scale = float(g0.abs().max())
        torch.testing.assert_close(g1, g0, atol=1e-4 * scale, rtol=1e-4)


def test_random_scene_inside_the_depth_range_stays_within_tolerance():
    g = torch.Generator().manual_seed(11)
    clip = random_clip(g, 3, 60)
    clip[..., 2] = clip[..., 2].clamp(-0.9, 0.9) * clip[..., 3]  # inside the depth range
    faces = torch.randint(0, 60, (90, 3), generator=g)
    res, sigma = (48, 64), 1 / 2000
    mask = rasterize(clip, faces, res, backend="cpu").mask
    a0, g0 = alpha_and_grad(clip, faces, res, sigma)
    a1, g1 = alpha_and_grad(clip, faces, res, sigma, covered=mask)
    assert int(((a0 > 0) & (a0 < 1)).sum()) > 200
    torch.testing.assert_close(a1, a0, atol=1e-6, rtol=0)
    scale = float(g0.abs().max())
    torch.testing.assert_close(g1, g0, atol=1e-4 * scale, rtol=1e-4)


def test_hint_ignored_where_the_rasterizer_drops_fragments_for_depth():
    # The far plane cuts the sphere: the rasterizer leaves those pixels empty, while the
    # silhouette (which has no depth range) covers them; the hint must not be taken.
    clip, faces = sphere_clip(3, 2, 2.6)
    clip = clip.clone()
    clip[..., 2] = clip[..., 2] + 0.8 * clip[..., 3]
    res = 64
    mask = rasterize(clip, faces, res, backend="cpu").mask
    a0, g0 = alpha_and_grad(clip, faces, res, 3 / 7000)
    assert int(((a0 == 1) & ~mask).sum()) > 20  # the hint would be wrong here
    a1, g1 = alpha_and_grad(clip, faces, res, 3 / 7000, covered=mask)
    assert torch.equal(a1, a0)
    assert torch.equal(g1, g0)


def test_renderer_silhouette_matches_the_public_op():
    mesh = rc.icosphere(3)
    cams = rc.Camera.orbit(30.0, 15.0, 2.8, fov=45.0)
    renderer = rc.Renderer(64, backend="cpu")
    verts = mesh.vertices.clone().requires_grad_(True)
    out = renderer.render(rc.Mesh(verts, mesh.faces), cams)
    (out.alpha * out.alpha).sum().backward()
    v2 = mesh.vertices.clone().requires_grad_(True)
    ref = soft_silhouette(cams.to_clip(v2), mesh.faces, 64, sigma=renderer.sigma, backend="cpu")
    (ref * ref).sum().backward()
    assert torch.equal(out.alpha, ref)
    assert torch.equal(verts.grad, v2.grad)


def test_bad_coverage_is_named():
    clip, faces = sphere_clip(2, 2)
    with pytest.raises(ValueError, match="covered must be"):
        soft_silhouette(clip, faces, 32, backend="cpu", covered=torch.zeros(2, 32, 31).bool())
    with pytest.raises(TypeError, match="covered must be a bool"):
        soft_silhouette(clip, faces, 32, backend="cpu", covered=torch.zeros(2, 32, 32))
