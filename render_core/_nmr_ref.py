"""Torch reference of the NMR approximate rasterisation gradient (Kato et al. 2018).

Straight from the equations, vectorised over each face's own lines: the oracle for the native
kernel (``csrc/nmr_kernels.h`` follows it expression by expression) and the ``torch`` backend of
:func:`render_core.nmr_edges`.

Screen coordinates: column X = (x/w + 1) W/2 - 1/2, row Y = (1 - y/w) H/2 - 1/2, so pixel
(i, j) has its centre at (X, Y) = (j, i). For each image, face f, corner k and axis (0: the
corner moves along X, the lines are rows; 1: along Y, the lines are columns), with ``u`` the
moving coordinate and ``c`` the other one, every pixel p = (m, l) on a line l the face spans
(ceil(c_min) <= l <= floor(c_max)) is visited. With v the moving corner and a, b the other two,
p lies in triangle (v, a, b) exactly when v = p + s (p - a) + r (p - b) with s, r >= 0; moving v
by t along u makes s(t) = (S + t d2c)/D and r(t) = (R - t d1c)/D affine (d1 = p - a, d2 = p - b,
D = d1 x d2, S = (v - p) x d2, R = d1 x (v - p)), so the moves t that cover p form one interval
[lo, hi].

* p outside the face (the paper's first case): the face first covers p at t = lo > 0 or t = hi < 0.
  It is drawn there when its depth at the crossing (barycentrics 1/(1+s+r) (1, s, r) of
  (v, a, b), NDC z affine on screen) is nearer than the pixel's (background: always). The
  colour it brings is the image's colour at the face's own pixel on this line nearest p (its
  current span's end), which must show the face (else: occluded, no gradient, as the paper).
* p inside the face and showing it (the paper's second case): moving v either way (t = lo < 0,
  t = hi > 0) uncovers p through the edge v-a or v-b; the colour it then shows is taken from the
  pixel just past the face's current span on the side the face leaves from.

In each case dI = I_after - I[p] (every channel; the caller stacks rgb and alpha) and, with the
upstream gradient dP = dL/dI[p], the contribution to dL/du is (dP . dI) / t when dP . dI < 0
(the move would lower the loss) and 0 otherwise.

What colour a sweep brings is this reading's choice: the paper defines dI as the change of the
rendered pixel, and for flat-coloured faces whose neighbours along a line are what lies behind
them the two agree exactly (tests/test_nmr.py checks it against re-rendering). A line on which
the face covers no pixel centre has no colour to bring and gives nothing.
"""

from __future__ import annotations

import torch

CHUNK = 1 << 21  # (face corner, line, pixel) triples evaluated at once: bounds peak memory


def screen_xy(clip: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Column X and row Y [B,V,2] of clip [B,V,4] (pixel (i, j) centre at (j, i))."""
    ww = clip[..., 3]
    x = (clip[..., 0] / ww + 1) * (0.5 * w) - 0.5
    y = (1 - clip[..., 1] / ww) * (0.5 * h) - 0.5
    return torch.stack([x, y], -1)


def nmr_grad_xy(color, face_idx, depth, xy, z, valid, grad_out) -> torch.Tensor:
    """dL/d(screen X, Y) of every face corner, [B,F,3,2], by the NMR sweep rule.

    color [B,H,W,C] the rendered image, face_idx [B,H,W] int64 (-1 background), depth [B,H,W]
    NDC depth, xy [B,F,3,2] screen corners, z [B,F,3] NDC corner depths, valid [B,F] bool,
    grad_out [B,H,W,C] dL/dcolor. Nothing here is differentiated.
    """
    bsz, h, w, _ = color.shape
    nf = xy.shape[1]
    out = xy.new_zeros(bsz, nf, 3, 2)
    for axis in (0, 1):
        if axis == 0:  # lines are rows, the corner moves along X
            img, fid, dep, gp = color, face_idx, depth, grad_out
            uu, cc = xy[..., 0], xy[..., 1]
        else:  # lines are columns, the corner moves along Y
            img, fid, dep, gp = (t.transpose(1, 2) for t in (color, face_idx, depth, grad_out))
            uu, cc = xy[..., 1], xy[..., 0]
        nc, nu = img.shape[1], img.shape[2]
        for b in range(bsz):
            # Each face visits only its own lines: faces are taken in order of their line
            # count, so a chunk's window of lines fits all of its faces.
            c = cc[b].detach()
            first = torch.ceil(c.amin(-1)).clamp(0, nc)
            last = torch.floor(c.amax(-1)).clamp(-1, nc - 1)
            nlines = torch.where(valid[b], (last - first + 1).clamp(min=0), 0).long()
            order = torch.argsort(nlines, stable=True)
            order = order[nlines[order] > 0]
            i0 = 0
            while i0 < order.numel():
                lw = int(nlines[order[i0]])
                i1 = i0 + 1
                while i1 < order.numel() and (i1 - i0 + 1) * 3 * nu * int(
                        nlines[order[i1]]) <= CHUNK:
                    i1 += 1
                sel = order[i0:i1]
                lw = int(nlines[sel].max())
                g = _sweep(img[b], fid[b], dep[b], gp[b], uu[b, sel], cc[b, sel], z[b, sel],
                           sel, first[sel].long(), lw)
                out[b, sel, :, axis] = g
                i0 = i1
    return out


def _sweep(img, fid, dep, gp, uu, cc, zz, face_ids, first, lw):
    """dL/du [n,3] of the corners of faces ``face_ids`` [n] (uu, cc, zz [n,3]) on one image
    whose lines are the first axis of img [Nc,Nu,C], fid, dep [Nc,Nu], gp [Nc,Nu,C]; face i
    spans at most ``lw`` lines from line ``first[i]``."""
    nc, nu, ch = img.shape
    n = uu.shape[0]
    dt = uu.dtype
    dev = uu.device
    k = torch.arange(3, device=dev)
    ka, kb = (k + 1) % 3, (k + 2) % 3
    vu, vc, zv = uu[:, k], cc[:, k], zz[:, k]  # [n,3]
    au, ac, za = uu[:, ka], cc[:, ka], zz[:, ka]
    bu, bc, zb = uu[:, kb], cc[:, kb], zz[:, kb]
    face = face_ids[:, None].expand(n, 3)
    cmin = torch.minimum(torch.minimum(vc, ac), bc)
    cmax = torch.maximum(torch.maximum(vc, ac), bc)

    def e(t):  # [n,3] -> [n,3,1,1]
        return t[..., None, None]

    line = (first[:, None] + torch.arange(lw, device=dev))[:, None, :, None]  # [n,1,Lw,1]
    lf = line.to(dt)  # line coordinate
    mf = torch.arange(nu, device=dev, dtype=dt)  # along coordinate [Nu]
    line_ok = (lf >= torch.ceil(e(cmin))) & (lf <= torch.floor(e(cmax))) & (line < nc)
    line = line.clamp(max=nc - 1)
    d1u, d1c = mf - e(au), lf - e(ac)
    d2u, d2c = mf - e(bu), lf - e(bc)
    dd = d1u * d2c - d1c * d2u
    ok = line_ok & (dd != 0)
    qu, qc = e(vu) - mf, e(vc) - lf
    # s0 = ss / dd and r0 = rr / dd; the slopes s'(t) = d2c / dd and r'(t) = -d1c / dd.
    ss = qu * d2c - qc * d2u
    rr = d1u * qc - d1c * qu
    pos = dd > 0
    s_ok = (ss == 0) | ((ss > 0) == pos)  # s0 >= 0
    r_ok = (rr == 0) | ((rr > 0) == pos)  # r0 >= 0
    sig_pos = (d2c != 0) & ((d2c > 0) == pos)
    sig_neg = (d2c != 0) & ((d2c > 0) != pos)
    rho_pos = (d1c != 0) & ((d1c > 0) != pos)
    rho_neg = (d1c != 0) & ((d1c > 0) == pos)
    inf = torch.tensor(float("inf"), dtype=dt, device=dev)
    one = torch.ones_like(dd)
    inv2 = 1 / torch.where(d2c != 0, d2c, one)  # per line
    inv1 = 1 / torch.where(d1c != 0, d1c, one)
    bs = -ss * inv2  # where s(t) = 0
    br = rr * inv1  # where r(t) = 0
    lo_s = torch.where(sig_pos, bs, -inf)
    hi_s = torch.where(sig_neg, bs, inf)
    lo_r = torch.where(rho_pos, br, -inf)
    hi_r = torch.where(rho_neg, br, inf)
    lo = torch.maximum(lo_s, lo_r)
    hi = torch.minimum(hi_s, hi_r)
    lo_is_s = lo_s >= lo_r
    hi_is_s = hi_s <= hi_r
    empty = ((d2c == 0) & ~s_ok) | ((d1c == 0) & ~r_ok) | (lo > hi)
    inside = ok & s_ok & r_ok

    # The face's current span on each line: first and last inside pixel.
    m_idx = torch.arange(nu, device=dev).expand_as(inside)
    m_lo = torch.where(inside, m_idx, nu).amin(-1, keepdim=True)  # nu: none
    m_hi = torch.where(inside, m_idx, -1).amax(-1, keepdim=True)

    flat_img = img.reshape(nc * nu, ch)
    fid_flat = fid.reshape(-1)
    pix = (line * nu + torch.arange(nu, device=dev)).expand(n, 1, lw, nu).reshape(-1)
    i_p = flat_img.index_select(0, pix).view(n, 1, lw, nu, ch)
    g_p = gp.reshape(nc * nu, ch).index_select(0, pix).view(n, 1, lw, nu, ch)
    fid_p = fid_flat.index_select(0, pix).view(n, 1, lw, nu)
    dep = dep.reshape(-1).index_select(0, pix).view(n, 1, lw, nu)

    def at(col):  # colour and face at pixel (line, col), col [n,3,Lw,Nu] clamped valid
        idx = (line * nu + col.clamp(0, nu - 1)).reshape(-1)
        return (flat_img.index_select(0, idx).view(*col.shape, ch),
                fid_flat.index_select(0, idx).view(col.shape))

    def contrib(cond, t, col):
        i_after, _ = at(col)
        gdot = ((i_after - i_p) * g_p).sum(-1)
        keep = cond & (gdot < 0)
        return torch.where(keep, gdot / torch.where(keep, t, one), torch.zeros_like(gdot))

    # p outside: the first crossing, drawn if nearer than the pixel, from the span's end.
    out_ok = ok & ~inside & ~empty & ((lo > 0) | (hi < 0))
    t = torch.where(lo > 0, lo, hi)
    tt = torch.where(out_ok, t, torch.zeros_like(t))
    ds = torch.where(ok, dd, one)
    s = (ss + tt * d2c) / ds
    r = (rr - tt * d1c) / ds
    alpha = 1 / (1 + s + r)
    zc = alpha * e(zv) + (s * alpha) * e(za) + (r * alpha) * e(zb)
    front = (fid_p < 0) | (zc < dep)
    before = m_idx < m_lo
    after = m_idx > m_hi
    q = torch.where(before, m_lo, m_hi)
    _, f_q = at(q)
    cond = out_ok & front & (before | after) & (m_lo <= m_hi) & (f_q == e(face))
    total = contrib(cond, t, q)

    # p inside and showing the face: both ways out, the colour past the span's end.
    in_ok = ok & inside & ~empty & (fid_p == e(face))
    for tend, is_s, fin in ((lo, lo_is_s, lo < 0), (hi, hi_is_s, hi > 0)):
        neg = torch.where(is_s, (d2c > 0) == (dd < 0), (d1c > 0) == (dd > 0))
        col = torch.where(neg, m_lo - 1, m_hi + 1)
        cond = in_ok & fin & torch.isfinite(tend) & (col >= 0) & (col < nu)
        total = total + contrib(cond, tend, col)
    return total.sum((-1, -2))
