"""The fused per-pixel paths of a fit step (render_core._fused) against the public ops they
replace, on random scenes: values and gradients."""

import numpy as np
import pytest
import torch

import render_core as rc
from render_core._fused import (
    hard_counts,
    hard_iou_of_counts,
    image_losses,
    reference_image_losses,
)
from render_core.losses import hard_iou


def _scene(device, dtype, seed, b=3, h=19, w=23):
    """A real render (soft alpha, clamped-out colours, background) and random targets."""
    g = torch.Generator().manual_seed(seed)
    mesh = rc.icosphere(subdivisions=2)
    verts = mesh.vertices.to(dtype) * (0.8 + 0.4 * torch.rand(1, generator=g, dtype=dtype))
    cams = rc.Camera.orbit([0.0, 100.0, 230.0][:b], [10.0, -20.0, 35.0][:b], 3.0, fov=40.0)
    colors = 1.4 * torch.rand(verts.shape, generator=g, dtype=dtype) - 0.2  # some outside [0,1]
    m = rc.Mesh(verts.to(device), mesh.faces.to(device), vertex_colors=colors.to(device))
    out = rc.Renderer((h, w), backend="torch", shading="vertex_color").render(m, cams)
    t_rgb = torch.rand(b, h, w, 3, generator=g, dtype=dtype).to(device)
    t_mask = (torch.rand(b, h, w, generator=g, dtype=dtype) > 0.4).to(dtype).to(device)
    t_mask[0, :3] = 0.37  # a soft (area-resampled) target edge
    return out.rgb.detach(), out.alpha.detach(), t_rgb * t_mask[..., None], t_mask


def _both(fn, rgb, alpha, t_rgb, t_mask, weights):
    r = rgb.clone().requires_grad_(True)
    a = alpha.clone().requires_grad_(True)
    i, l1 = fn(r, a, t_rgb, t_mask)
    total = weights[0] * i + weights[1] * l1
    return (i.detach(), l1.detach(), *torch.autograd.grad(total, (r, a)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fused_image_losses_match_the_public_ops_float64(native_backend, device, seed):
    rgb, alpha, t_rgb, t_mask = _scene(device, torch.float64, seed)
    rgb[0, 0, :4, 0] = torch.tensor([0.0, 1.0, 0.0031308, 0.5], dtype=torch.float64)  # kinks
    weights = (0.7 + seed, 1.3)
    fused = _both(lambda *a: image_losses(*a, backend=native_backend), rgb, alpha, t_rgb,
                  t_mask, weights)
    ref = _both(reference_image_losses, rgb, alpha, t_rgb, t_mask, weights)
    for got, want in zip(fused, ref, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-15)


def test_fused_image_losses_float32_and_the_torch_backend(native_backend, device):
    rgb, alpha, t_rgb, t_mask = (x.float() for x in _scene(device, torch.float64, 5))
    fused = _both(lambda *a: image_losses(*a, backend=native_backend), rgb, alpha, t_rgb,
                  t_mask, (1.0, 1.0))
    ref = _both(reference_image_losses, rgb, alpha, t_rgb, t_mask, (1.0, 1.0))
    for got, want in zip(fused, ref, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    # The torch backend is the composition itself, bit for bit.
    plain = _both(lambda *a: image_losses(*a, backend="torch"), rgb, alpha, t_rgb, t_mask,
                  (1.0, 1.0))
    assert all(torch.equal(a, b) for a, b in zip(plain, ref, strict=True))


def test_fused_image_losses_gradcheck(native_backend, device):
    rgb, alpha, t_rgb, t_mask = _scene(device, torch.float64, 7, b=2, h=5, w=6)
    # Keep values off the kinks (|d| = 0, the clamp ends, the sRGB threshold).
    rgb = rgb.clamp(0.05, 0.95).requires_grad_(True)
    alpha = alpha.clamp(0.01, 0.99).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda r, a: image_losses(r, a, t_rgb, t_mask, backend=native_backend),
        (rgb, alpha), eps=1e-7, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_pass_counts_the_hard_iou(native_backend, device, dtype):
    """The image losses' pass also counts the hard IoU's pixels (alpha > 0.5 against
    mask > 0.5): the counts of a numpy oracle, and from them exactly losses.hard_iou, also
    with empty masks (both empty counts as 0) and values at the 0.5 threshold."""
    g = torch.Generator().manual_seed(11)
    b, h, w = 5, 13, 17
    rgb = torch.rand(b, h, w, 3, generator=g, dtype=dtype)
    alpha = torch.rand(b, h, w, generator=g, dtype=dtype)
    t_mask = (torch.rand(b, h, w, generator=g, dtype=dtype) > 0.5).to(dtype)
    t_mask[1, :4] = 0.5  # soft target edges: not inside
    t_mask[1, 4:6] = 0.51
    alpha[2, :, :5] = 0.5
    alpha[3] = 0.2  # empty render
    t_mask[4] = 0.0  # empty target ...
    alpha[4] = 0.3  # ... and empty render: the IoU counts it as 0
    t_rgb = torch.rand(b, h, w, 3, generator=g, dtype=dtype) * t_mask[..., None]
    a, t = alpha.numpy() > 0.5, t_mask.numpy() > 0.5
    want = np.stack([(a & t).sum((1, 2)), (a | t).sum((1, 2))], 1)
    args = [x.to(device) for x in (rgb, alpha, t_rgb, t_mask)]
    for backend in (native_backend, "torch"):
        i, l1, counts = image_losses(*args, backend=backend, counts=True)
        np.testing.assert_array_equal(counts.cpu().numpy(), want)
        assert hard_iou_of_counts(counts) == hard_iou(alpha, t_mask)
        # Asking for the counts changes nothing else.
        i2, l12 = image_losses(*args, backend=backend)
        assert torch.equal(i, i2) and torch.equal(l1, l12)
    assert torch.equal(hard_counts(alpha, t_mask), torch.from_numpy(want))
    assert hard_iou(alpha[4:], t_mask[4:]) == 0.0 and want[4, 1] == 0


@pytest.mark.parametrize("shading", ["lambertian", "phong"])
def test_renderer_shading_on_covered_fragments_matches_the_public_ops(native_backend, device,
                                                                      shading):
    """The Renderer interpolates shared attributes through the covered pixels' own fragments:
    the same image, and the same gradients up to rounding, as the public ops on full images."""
    g = torch.Generator().manual_seed(3)
    base = rc.icosphere(subdivisions=2)
    verts = (base.vertices + 0.05 * torch.randn(base.vertices.shape, generator=g)).to(device)
    colors = torch.rand(verts.shape, generator=g).to(device)
    cams = rc.Camera.orbit([20.0, 140.0], [15.0, -25.0], 3.0, fov=40.0)
    cams = cams.to(device)
    light = rc.DirectionalLight(torch.tensor([0.3, 0.8, 0.5], device=device), 0.8, 0.3)
    weights = torch.rand(2, 24, 24, 3, generator=g).to(device)

    def rendered(v, c):
        mesh = rc.Mesh(v, base.faces.to(device), vertex_colors=c)
        r = rc.Renderer(24, shading=shading, backend=native_backend, silhouette=False)
        return r.render(mesh, cams, light=light).rgb

    def composed(v, c):
        faces = base.faces.to(device)
        frags = rc.rasterize(cams.to_clip(v), faces, 24, backend=native_backend)
        col = rc.interpolate(c, frags, faces, backend=native_backend)
        n = rc.interpolate(rc.vertex_normals(v, faces), frags, faces, backend=native_backend)
        if shading == "lambertian":
            lit = col * rc.lambertian(n, light)
        else:
            pts = rc.interpolate(v, frags, faces, backend=native_backend)
            i_l, i_s = rc.phong(n, cams.eye[:, None, None, :] - pts, light)
            lit = col * i_l + i_s
        return torch.where(frags.mask[..., None], lit, torch.zeros_like(lit))

    out = []
    for fn in (rendered, composed):
        v = verts.clone().requires_grad_(True)
        c = colors.clone().requires_grad_(True)
        rgb = fn(v, c)
        out.append((rgb.detach(), *torch.autograd.grad((rgb * weights).sum(), (v, c))))
    for got, want in zip(*out, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
