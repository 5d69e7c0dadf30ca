"""The native soft silhouette evaluated over the band only (uncovered pixels near some face).

Oracles: the torch reference (every face's grown box, every pixel of it) and the dense product
over all faces (no cutoff). The scenes stress what the band must not lose: back faces and
faces hidden behind others within the cutoff of the silhouette, faces just off the image that
cover no pixel, and tiles covered only by the union of several faces.
"""

from __future__ import annotations

import pytest
import torch
from _scenes import random_clip

from render_core import _build, _native
from render_core import _torch_ref as torch_ref
from render_core.camera import Camera
from render_core.primitives import icosphere


@pytest.fixture(scope="module", autouse=True)
def native():
    """Build (or load) the CPU extension; a failure fails every test here."""
    return _build.load_variant("cpu")


def both(xy, valid, faces, h, w, sigma, eps=torch_ref.SOFT_EPS, weight=None):
    """(alpha, grad_xy) of the torch reference and of the native CPU kernels."""
    out = []
    for name in ("torch", "cpu"):
        p = xy.detach().clone().requires_grad_(True)
        if name == "torch":
            a = torch_ref.SoftSilhouette.apply(p, valid, faces, h, w, sigma, eps)
        else:
            a = _native.native_soft_silhouette("cpu", p, valid, faces, h, w, sigma, eps)
        wt = weight if weight is not None else torch.ones_like(a)
        (g,) = torch.autograd.grad((a * wt).sum(), p)
        out.append((a.detach(), g))
    return out


def prepare(clip, faces, h, w):
    valid = torch_ref.valid_faces(torch_ref.face_vertices(clip, faces))
    return torch_ref.iso_xy(clip, h, w), valid


def sphere_views(sub: int, nviews: int, dtype=torch.float64):
    """An icosphere (front and back faces overlap all along its rim) seen from orbit cameras."""
    mesh = icosphere(sub)
    cams = [Camera.orbit(a, 25.0, 3.0, fov=45.0) for a in torch.linspace(0, 300, nviews)]
    clip = torch.cat([c.to_clip(mesh.vertices) for c in cams]).to(dtype)
    return clip, mesh.faces


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_scenes_match_reference(seed):
    """A sphere (back faces along its rim) plus random layered triangles, float64."""
    g = torch.Generator().manual_seed(seed)
    sph, sf = sphere_views(2, 2)
    rnd = random_clip(g, 2, 60).double()
    rf = torch.randint(0, 60, (80, 3), generator=g)
    clip = torch.cat([sph, rnd], 1)
    faces = torch.cat([sf, rf + sph.shape[1]])
    h, w = 45, 58
    sigma = [1 / 7000, 1 / 1500, 1 / 400][seed]
    xy, valid = prepare(clip, faces, h, w)
    weight = torch.rand(2, h, w, generator=g, dtype=torch.float64)
    (a_t, g_t), (a_c, g_c) = both(xy, valid, faces, h, w, sigma, weight=weight)
    band = (a_t > 0) & (a_t < 1)
    assert int(band.sum()) > 100 and int((a_t == 1).sum()) > 500
    torch.testing.assert_close(a_c, a_t, atol=1e-12, rtol=0)
    scale = float(g_t.abs().max())
    assert scale > 0
    torch.testing.assert_close(g_c, g_t, atol=1e-9 * scale, rtol=1e-9)


def dense_product(xy, valid, faces, h, w, sigma):
    """alpha [B,H,W] = 1 - prod over ALL valid faces, 1 where any covers; the sum of the p_j
    each pixel's faces beyond the cutoff contribute (what the cutoff may drop)."""
    xs, ys = torch_ref.pixel_centers(h, w, torch.float64, "cpu")
    p = torch.stack(torch.meshgrid(ys, xs * (w / h), indexing="ij"), -1).flip(-1).reshape(-1, 2)
    out, skipped = [], []
    for b in range(xy.shape[0]):
        tri = xy[b, faces[valid[b]]]
        npix, nf = p.shape[0], tri.shape[0]
        d, inside = torch_ref.point_triangle_dist2(
            p[:, None].expand(npix, nf, 2).reshape(-1, 2),
            tri[None].expand(npix, nf, 3, 2).reshape(-1, 3, 2),
        )
        d, inside = d.view(npix, nf), inside.view(npix, nf)
        pj = torch.exp(-d / sigma)
        full = 1 - torch.prod(1 - pj, dim=1)
        out.append(torch.where(inside.any(1), torch.ones_like(full), full).view(h, w))
        far = d >= torch_ref.cutoff2(sigma)
        skipped.append(torch.where(far, pj, torch.zeros_like(pj)).sum(1).view(h, w))
    return torch.stack(out), torch.stack(skipped)


def test_sphere_matches_dense_product():
    clip, faces = sphere_views(3, 2)
    h, w = 40, 40
    sigma = 1 / 2000
    xy, valid = prepare(clip, faces, h, w)
    alpha = _native.native_soft_silhouette("cpu", xy, valid, faces, h, w, sigma,
                                           torch_ref.SOFT_EPS)
    full, skipped = dense_product(xy, valid, faces, h, w, sigma)
    err = (alpha - full).abs()
    assert float(skipped.max()) < 20 * torch_ref.SOFT_EPS
    assert bool((err <= skipped + 1e-12).all()), float((err - skipped).max())
    assert int(((full > 0.01) & (full < 1)).sum()) > 50  # a real band


def flat(tris, z):
    """Clip vertices [1,3T,4] of 2D triangles [T,3,2] (NDC) at depths z [T], w = 1."""
    t = torch.as_tensor(tris, dtype=torch.float64)
    zz = torch.as_tensor(z, dtype=torch.float64)[:, None, None].expand(-1, 3, 1)
    clip = torch.cat([t, zz, torch.ones_like(zz)], -1).reshape(1, -1, 4)
    return clip, torch.arange(clip.shape[1]).view(-1, 3)


def test_hidden_face_near_the_silhouette_counts():
    """A face entirely behind a front face, whose edge runs just inside the front face's edge,
    adds its own soft term to the background pixels next to that edge."""
    front = [[-0.6, -0.6], [0.5, -0.6], [-0.6, 0.6]]
    hidden = [[-0.5, -0.55], [0.4, -0.55], [-0.5, 0.45]]  # inside `front` on screen
    clip, faces = flat([front, hidden], [0.2, 0.6])
    h = w = 32
    sigma = 1 / 300
    xy, valid = prepare(clip, faces, h, w)
    (a_t, g_t), (a_c, g_c) = both(xy, valid, faces, h, w, sigma)
    torch.testing.assert_close(a_c, a_t, atol=1e-12, rtol=0)
    torch.testing.assert_close(g_c, g_t, atol=1e-10, rtol=1e-9)
    alone = _native.native_soft_silhouette("cpu", xy, valid[:, :1], faces[:1], h, w, sigma,
                                           torch_ref.SOFT_EPS)
    uncovered = a_c < 1
    assert float((a_c - alone)[uncovered].max()) > 1e-3  # the hidden face pulls there
    assert float(g_c[0, 3:].abs().sum()) > 0  # and gets a gradient


def test_face_off_the_image_reaches_the_border():
    """A face just outside the image covers no pixel, yet its soft term reaches the border."""
    clip, faces = flat([[[1.0, -0.5], [1.6, -0.5], [1.3, 0.5]]], [0.0])  # x >= 1: no centre
    h = w = 24
    sigma = 1 / 500
    xy, valid = prepare(clip, faces, h, w)
    (a_t, g_t), (a_c, g_c) = both(xy, valid, faces, h, w, sigma)
    assert float(a_t[0, :, -1].max()) > 0.1 and float(a_t.max()) < 1
    torch.testing.assert_close(a_c, a_t, atol=1e-12, rtol=0)
    torch.testing.assert_close(g_c, g_t, atol=1e-10, rtol=1e-9)
    assert float(g_c.abs().sum()) > 0


def test_covered_by_a_union_of_faces_is_one_without_gradient():
    """Two faces that together (not alone) cover the whole image: alpha is exactly 1, every
    gradient 0, and no (tile, face) pair is left to evaluate."""
    clip, faces = flat([[[-3, -3], [3, -3], [3, 3]], [[-3, -3], [3, 3], [-3, 3]]], [0.1, 0.3])
    h, w = 20, 28
    xy, valid = prepare(clip, faces, h, w)
    (a_t, g_t), (a_c, g_c) = both(xy, valid, faces, h, w, 1 / 500)
    assert bool((a_t == 1).all()) and bool((a_c == 1).all())
    assert bool((g_c == 0).all()) and bool((g_t == 0).all())
    kernel = _build.load_variant("cpu").soft_forward_cpu
    saved = kernel(xy, valid, faces, h, w, 1 / 500, torch_ref.cutoff2(1 / 500))
    assert saved[5].numel() == 0  # the band bins are empty


def test_gradcheck_with_back_and_hidden_faces():
    """Finite differences through a front face, a face behind it that pokes out of one edge,
    and a back-facing (clockwise) face overlapping both."""
    tris = [
        [[-0.6, -0.5], [0.4, -0.5], [-0.1, 0.5]],
        [[-0.3, -0.3], [0.7, -0.2], [0.0, 0.2]],
        [[0.1, 0.4], [0.6, -0.4], [-0.5, 0.1]],
    ]
    clip, faces = flat(tris, [0.1, 0.5, 0.3])
    h, w = 9, 11
    xy0, valid = prepare(clip, faces, h, w)
    weight = torch.rand(1, h, w, generator=torch.Generator().manual_seed(3), dtype=torch.float64)

    def fn(p):
        a = _native.native_soft_silhouette("cpu", p, valid, faces, h, w, 0.03, 1e-30)
        return (a * weight).sum()

    xy = xy0.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(fn, (xy,), eps=1e-6, atol=1e-6, rtol=1e-4)
