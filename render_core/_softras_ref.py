"""Pure-PyTorch reference of SoftRas (Liu et al. 2019): per-face probability maps aggregated
into a silhouette and, with a depth softmax, into colours. Differentiable through autograd.

The numerics (the contract a native kernel would reproduce):

* Distances are in isotropic NDC (x scaled by W/H, as the DIB-R soft silhouette), from the pixel
  centre to the projected triangle's boundary: ``d`` the squared distance to the nearest edge,
  ``delta = +1`` when the centre is inside (edges inclusive), -1 outside. The probability map is
  ``D = sigmoid(delta * d / sigma)``. Outside faces with ``d >= sigma * ln(1/SOFT_EPS)``
  (``D < SOFT_EPS``) are skipped, as are faces with a vertex at w <= W_EPS.
* Silhouette: ``A = 1 - prod_j (1 - D_j)``, summed in log space: log(1 - D) = -softplus(x).
* Colour: ``I = (sum_j D_j e^{z_j/gamma} C_j + e^{eps/gamma} C_b) / (sum_j D_j e^{z_j/gamma}
  + e^{eps/gamma})`` with ``z = (1 - z_ndc) / 2`` (1 at the near plane, 0 at the far one) and
  ``C_j``, ``z_j`` interpolated with the clamped screen-space barycentrics of the pixel centre
  in face j; exponents are shifted by their per-pixel maximum, so nothing overflows.
"""

from __future__ import annotations

import torch

from ._torch_ref import SOFT_EPS, W_EPS, _SoftPairs, iso_xy, valid_faces


def _cross(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]


def face_terms(p: torch.Tensor, tri: torch.Tensor):
    """For points p [P,2] and triangles tri [P,3,2]: the signed squared boundary distance
    ``delta * d`` [P] and the clamped, renormalised barycentrics [P,3]."""
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    e = torch.stack([_cross(c - b, p - b), _cross(a - c, p - c), _cross(b - a, p - a)], -1)
    area2 = _cross(b - a, c - a)
    inside = (area2 != 0) & (((e >= 0).all(-1)) | ((e <= 0).all(-1)))

    def seg(u, v):
        uv = v - u
        t = (((p - u) * uv).sum(-1) / (uv * uv).sum(-1).clamp(min=1e-30)).clamp(0.0, 1.0)
        return ((p - (u + t[:, None] * uv)) ** 2).sum(-1)

    d = torch.minimum(torch.minimum(seg(a, b), seg(b, c)), seg(c, a))
    safe = torch.where(area2 != 0, area2, torch.ones_like(area2))
    bary = (e / safe[:, None]).clamp(0.0, 1.0)
    bary = bary / bary.sum(-1, keepdim=True).clamp(min=1e-12)
    return torch.where(inside, d, -d), bary


def softras(clip, faces, colors, h, w, sigma, gamma, eps, background):
    """SoftRas colour [B,H,W,C] and silhouette [B,H,W] of clip [B,V,4], faces [F,3], colors
    [B,V,C] (vertex attributes), background [C] (or a float); differentiable w.r.t. clip and
    colors (and background)."""
    bsz = clip.shape[0]
    nc = colors.shape[-1]
    fv = clip.detach()[:, faces]
    valid = valid_faces(fv)
    xy = iso_xy(clip, h, w)
    wv = clip[..., 3]
    zn = (1 - clip[..., 2] / torch.where(wv > W_EPS, wv, torch.ones_like(wv))) / 2
    pairs = _SoftPairs(xy, valid, faces, h, w, sigma, SOFT_EPS)
    npix = bsz * h * w

    def terms(b, f, p):
        x, bary = face_terms(p, xy[b[:, None], faces[f]])
        keep = x > -pairs.cut2
        vidx = faces[f]
        col = (bary[..., None] * colors[b[:, None], vidx]).sum(1)
        z = (bary * zn[b[:, None], vidx]).sum(1)
        return x / sigma, keep, col, z

    # Pass 1 (no gradient): the per-pixel maximum of the softmax exponents.
    top = torch.full((npix,), eps / gamma, dtype=clip.dtype, device=clip.device)
    with torch.no_grad():
        for b, f, pix, p in pairs.chunks():
            _, keep, _, z = terms(b, f, p)
            top.scatter_reduce_(0, pix[keep], z[keep] / gamma, reduce="amax")
    log_empty = clip.new_zeros(npix)
    num = clip.new_zeros(npix, nc)
    den = clip.new_zeros(npix)
    for b, f, pix, p in pairs.chunks():
        x, keep, col, z = terms(b, f, p)
        x, col, z, pix = x[keep], col[keep], z[keep], pix[keep]
        log_empty = log_empty.index_add(0, pix, -torch.nn.functional.softplus(x))
        wgt = torch.sigmoid(x) * torch.exp(z / gamma - top[pix])
        num = num.index_add(0, pix, wgt[:, None] * col)
        den = den.index_add(0, pix, wgt)
    bg = torch.as_tensor(background, dtype=clip.dtype, device=clip.device).expand(nc)
    wb = torch.exp(eps / gamma - top)
    rgb = (num + wb[:, None] * bg) / (den + wb)[:, None]
    alpha = -torch.expm1(log_empty)
    return rgb.view(bsz, h, w, nc), alpha.view(bsz, h, w)
