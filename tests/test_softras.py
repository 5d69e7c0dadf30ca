"""SoftRas (render_core/softras.py): against a dense reference written from the paper's
equations, the hard mask as sigma -> 0, float64 gradcheck, and the Renderer option."""

from __future__ import annotations

import math

import pytest
import torch
from _scenes import random_clip

import render_core as rc
from render_core._torch_ref import SOFT_EPS
from render_core.softras import softras


def dense_softras(clip, faces, colors, h, w, sigma, gamma, eps, bg):
    """Every (pixel, face) pair at once (colors [V,C], image 0), straight from Liu et al. 2019
    eq. 1-2 and 5-6: D = sigmoid(delta d^2 / sigma), A = 1 - prod(1 - D),
    I = sum w_j C_j + w_b C_b with
    w_j = D_j exp(z_j / gamma) / (sum_k D_k exp(z_k / gamma) + exp(eps / gamma))."""
    b = 0
    xs = ((torch.arange(w, dtype=clip.dtype) + 0.5) * 2 / w - 1) * (w / h)
    ys = 1 - (torch.arange(h, dtype=clip.dtype) + 0.5) * 2 / h
    py, px = torch.meshgrid(ys, xs, indexing="ij")
    p = torch.stack([px, py], -1).reshape(-1, 1, 2)  # [P,1,2]
    v = clip[b]
    ndc = v[:, :2] / v[:, 3:]
    iso = ndc * torch.tensor([w / h, 1.0], dtype=clip.dtype)
    zn = (1 - v[:, 2] / v[:, 3]) / 2
    tri = iso[faces][None]  # [1,F,3,2]
    a, bb, c = tri[..., 0, :], tri[..., 1, :], tri[..., 2, :]

    def cross(u, q):
        return u[..., 0] * q[..., 1] - u[..., 1] * q[..., 0]

    lam = torch.stack([cross(c - bb, p - bb), cross(a - c, p - c), cross(bb - a, p - a)], -1)
    area2 = cross(bb - a, c - a)
    inside = (lam >= 0).all(-1) | (lam <= 0).all(-1)

    def seg(u, q):
        t = (((p - u) * (q - u)).sum(-1) / ((q - u) ** 2).sum(-1)).clamp(0, 1)
        return ((p - u - t[..., None] * (q - u)) ** 2).sum(-1)

    d = torch.minimum(torch.minimum(seg(a, bb), seg(bb, c)), seg(c, a))
    prob = torch.sigmoid(torch.where(inside, d, -d) / sigma)  # [P,F]
    # As in SoftRas's own kernels, faces under a probability threshold are left out entirely:
    # at small gamma a far-off face's e^{z/gamma} would otherwise outweigh the background.
    prob = torch.where(inside | (d < sigma * math.log(1 / SOFT_EPS)), prob, 0.0)
    bary = (lam / area2[..., None]).clamp(0, 1)
    bary = bary / bary.sum(-1, keepdim=True)
    col = (bary[..., None] * colors[faces][None]).sum(-2)  # [P,F,C]
    z = (bary * zn[faces][None]).sum(-1)
    alpha = 1 - torch.prod(1 - prob, -1)
    logits = torch.cat([z / gamma, torch.full_like(z[:, :1], eps / gamma)], -1)
    top = logits.max(-1, keepdim=True).values
    e = torch.exp(logits - top) * torch.cat([prob, torch.ones_like(prob[:, :1])], -1)
    cols = torch.cat([col, bg.expand(col.shape[0], 1, -1)], 1)
    rgb = (e[..., None] * cols).sum(1) / e.sum(-1, keepdim=True)
    return rgb.view(h, w, -1), alpha.view(h, w)


def scene(seed, dtype=torch.float64, nv=12, nf=8):
    g = torch.Generator().manual_seed(seed)
    clip = random_clip(g, 1, nv).to(dtype)
    clip[..., 2] = clip[..., 2].clamp(-0.9, 0.9) * clip[..., 3].abs()  # inside the depth range
    faces = torch.randint(0, nv, (nf, 3), generator=g)
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2])]
    faces = faces[faces[:, 0] != faces[:, 2]]
    colors = torch.rand(nv, 3, generator=g, dtype=dtype)
    return clip, faces, colors


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_dense_reference(seed):
    clip, faces, colors = scene(seed)
    h, w, sigma, gamma, eps = 17, 23, 3e-3, 3e-2, 1e-3
    bg = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64)
    rgb, alpha = softras(clip, faces, colors, (h, w), sigma, gamma, eps, bg)
    want_rgb, want_alpha = dense_softras(clip, faces, colors, h, w, sigma, gamma, eps, bg)
    assert float((alpha[0] - want_alpha).abs().max()) < 1e-9
    assert float((rgb[0] - want_rgb).abs().max()) < 1e-9
    assert float(alpha.max()) > 0.5 and float(alpha.min()) < 0.01  # faces and background


def test_silhouette_is_the_hard_mask_as_sigma_goes_to_zero():
    s = rc.icosphere(2, radius=0.7)
    cams = rc.Camera.orbit([10.0, 130.0], [20.0, -30.0], 3.0, fov=45.0)
    clip = cams.to_clip(s.vertices).double()
    hard = rc.rasterize(clip, s.faces, 33, backend="torch").mask
    _, alpha = softras(clip, s.faces, torch.ones(s.vertices.shape[0], 1), 33, sigma=1e-12)
    assert bool(((alpha > 0.5) == hard).all())
    assert float((alpha - hard.double()).abs().max()) < 1e-6


def test_gradcheck_float64():
    clip, faces, colors = scene(2, nv=8, nf=5)
    clip = clip.requires_grad_(True)
    colors = colors.requires_grad_(True)

    def fn(cl, col):
        rgb, alpha = softras(cl, faces, col, (9, 11), 5e-3, 5e-2, 1e-3, 0.3)
        return rgb, alpha

    assert torch.autograd.gradcheck(fn, (clip, colors), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_renderer_model_option():
    s = rc.icosphere(2, radius=0.6)
    mesh = rc.Mesh(s.vertices, s.faces, vertex_colors=(s.vertices * 0.5 + 0.5))
    cam = rc.Camera.orbit([30.0], [15.0], 3.0, fov=40.0)
    out = rc.Renderer(24, model="softras", background=0.1).render(mesh, cam)
    clip = cam.to_clip(mesh.vertices)
    rgb, alpha = softras(clip, mesh.faces, mesh.vertex_colors, 24, background=0.1)
    assert torch.allclose(out.rgb, rgb) and torch.allclose(out.alpha, alpha)
    with pytest.raises(ValueError, match="model"):
        rc.Renderer(24, model="pixie")
    with pytest.raises(ValueError, match="softras"):
        rc.Renderer(24, model="softras", shading="lambertian")
