"""Lens distortion of COLMAP's camera models, and undistorting photos once on load.

Models (COLMAP's names and parameter order, pixels with (0, 0) at the top-left corner of the
image, so the first pixel's centre is (0.5, 0.5)):

=================  ==========================================================
SIMPLE_PINHOLE     f, cx, cy
PINHOLE            fx, fy, cx, cy
SIMPLE_RADIAL      f, cx, cy, k
RADIAL             f, cx, cy, k1, k2
OPENCV             fx, fy, cx, cy, k1, k2, p1, p2
FULL_OPENCV        fx, fy, cx, cy, k1, k2, p1, p2, k3, k4, k5, k6
=================  ==========================================================

A camera-space point (OpenCV axes: +Z forward) with normalized coordinates ``x = X/Z, y = Y/Z``
is distorted as ``r² = x² + y²``, ``s = (1 + k1 r² + k2 r⁴ + k3 r⁶) / (1 + k4 r² + k5 r⁴ + k6 r⁶)``,
``x' = s x + 2 p1 x y + p2 (r² + 2x²)``, ``y' = s y + p1 (r² + 2y²) + 2 p2 x y`` and lands on
the pixel ``u = fx x' + cx``, ``v = fy y' + cy``.

:func:`undistort_image` resamples a photo (and its mask) into the image of an undistorted
pinhole by inverse mapping: every output pixel centre is pushed through the forward distortion
to find where it lies in the photo, which is sampled bilinearly. The photo's camera then becomes
that pinhole (the intrinsics returned). Nothing here is differentiable: it runs once on load.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

#: Parameter count of each supported model.
MODEL_PARAMS = {
    "SIMPLE_PINHOLE": 3,
    "PINHOLE": 4,
    "SIMPLE_RADIAL": 4,
    "RADIAL": 5,
    "OPENCV": 8,
    "FULL_OPENCV": 12,
}
_COEFFS = ("k1", "k2", "k3", "k4", "k5", "k6", "p1", "p2")


class DistortionError(ValueError):
    """A camera model or parameter list that cannot be used (unknown model, wrong count)."""


class Intrinsics(NamedTuple):
    """Pinhole intrinsics in pixels (corner pixel convention, see the module docstring)."""

    fx: float
    fy: float
    cx: float
    cy: float


class Undistorted(NamedTuple):
    """The result of :func:`undistort_image`.

    ``image`` [H',W'] or [H',W',C] (same kind and dtype as the input), ``mask`` (None without
    an input mask, else same kind/dtype as the input mask), ``intrinsics`` of the undistorted
    pinhole for the W' x H' output, ``valid`` [H',W'] bool numpy array: False where the output
    pixel sees nothing of the photo (outside its frame or past the fold of the lens model).
    """

    image: np.ndarray | torch.Tensor
    mask: np.ndarray | torch.Tensor | None
    intrinsics: Intrinsics
    valid: np.ndarray


def split_params(model: str, params: Sequence[float]) -> tuple[Intrinsics, dict[str, float]]:
    """``(Intrinsics, coefficients)`` of a COLMAP model; coefficients are k1..k6, p1, p2 (zero
    where the model has none). Raises DistortionError for an unknown model or a parameter
    count that does not match it."""
    model = str(model).upper()
    if model not in MODEL_PARAMS:
        raise DistortionError(f"camera model {model!r} is not supported (supported: "
                              f"{', '.join(MODEL_PARAMS)})")
    p = [float(v) for v in params]
    if len(p) != MODEL_PARAMS[model]:
        raise DistortionError(f"camera model {model} takes {MODEL_PARAMS[model]} parameters, "
                              f"got {len(p)}")
    if not all(math.isfinite(v) for v in p):
        raise DistortionError(f"camera parameters must be finite, got {p}")
    c = dict.fromkeys(_COEFFS, 0.0)
    if model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL"):
        k = Intrinsics(p[0], p[0], p[1], p[2])
        if model == "SIMPLE_RADIAL":
            c["k1"] = p[3]
        elif model == "RADIAL":
            c["k1"], c["k2"] = p[3], p[4]
    else:
        k = Intrinsics(p[0], p[1], p[2], p[3])
        if model in ("OPENCV", "FULL_OPENCV"):
            c["k1"], c["k2"], c["p1"], c["p2"] = p[4:8]
        if model == "FULL_OPENCV":
            c["k3"], c["k4"], c["k5"], c["k6"] = p[8:12]
    if not (k.fx > 0 and k.fy > 0):
        raise DistortionError(f"focal lengths must be positive, got {k.fx}, {k.fy}")
    return k, c


def has_distortion(model: str, params: Sequence[float]) -> bool:
    """Whether the model with these parameters distorts at all (any non-zero coefficient)."""
    return any(v != 0.0 for v in split_params(model, params)[1].values())


def _distort(x: torch.Tensor, y: torch.Tensor, c: dict[str, float], jacobian: bool = False):
    """Forward distortion of normalized coordinates; with ``jacobian`` also the 2x2 partials
    (dxd/dx, dxd/dy, dyd/dx, dyd/dy)."""
    r2 = x * x + y * y
    num = 1 + r2 * (c["k1"] + r2 * (c["k2"] + r2 * c["k3"]))
    den = 1 + r2 * (c["k4"] + r2 * (c["k5"] + r2 * c["k6"]))
    s = num / den
    p1, p2 = c["p1"], c["p2"]
    xd = s * x + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = s * y + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    if not jacobian:
        return xd, yd
    dnum = c["k1"] + r2 * (2 * c["k2"] + 3 * c["k3"] * r2)
    dden = c["k4"] + r2 * (2 * c["k5"] + 3 * c["k6"] * r2)
    g = (dnum * den - num * dden) / (den * den)  # ds / d(r²)
    a = s + 2 * x * x * g + 2 * p1 * y + 6 * p2 * x
    b = 2 * x * y * g + 2 * p1 * x + 2 * p2 * y
    cc = 2 * x * y * g + 2 * p1 * x + 2 * p2 * y
    d = s + 2 * y * y * g + 6 * p1 * y + 2 * p2 * x
    return xd, yd, (a, b, cc, d)


def _as_points(uv) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(uv, dtype=np.float64) if not torch.is_tensor(uv) else uv)
    t = t.to(torch.float64)
    if t.shape[-1] != 2:
        raise ValueError(f"expected pixel coordinates of shape [N,2], got {tuple(t.shape)}")
    return t


def distort_points(uv, model: str, params: Sequence[float]) -> torch.Tensor:
    """Pixels of the undistorted pinhole (the model's own fx, fy, cx, cy) -> distorted pixels.

    ``uv`` [...,2] array or tensor (float64 result, CPU unless given a tensor elsewhere)."""
    k, c = split_params(model, params)
    uv = _as_points(uv)
    xd, yd = _distort((uv[..., 0] - k.cx) / k.fx, (uv[..., 1] - k.cy) / k.fy, c)
    return torch.stack([k.fx * xd + k.cx, k.fy * yd + k.cy], -1)


def undistort_normalized(xd: torch.Tensor, yd: torch.Tensor, c: dict[str, float],
                         iterations: int = 30) -> tuple[torch.Tensor, torch.Tensor]:
    """Invert the distortion of normalized coordinates by Newton's method (float64).

    Points where it does not converge to 1e-10 (outside the lens model's invertible range)
    come back as NaN."""
    x, y = xd.clone(), yd.clone()
    for _ in range(iterations):
        fx_, fy_, (a, b, cc, d) = _distort(x, y, c, jacobian=True)
        ex, ey = fx_ - xd, fy_ - yd
        det = a * d - b * cc
        det = torch.where(det.abs() < 1e-12, torch.full_like(det, 1e-12), det)
        x = x - (d * ex - b * ey) / det
        y = y - (a * ey - cc * ex) / det
    fx_, fy_, (a, b, cc, d) = _distort(x, y, c, jacobian=True)
    bad = ((fx_ - xd).abs() > 1e-10) | ((fy_ - yd).abs() > 1e-10) | ~(a * d - b * cc > 0)
    nan = torch.full_like(x, float("nan"))
    return torch.where(bad, nan, x), torch.where(bad, nan, y)


def undistort_points(uv, model: str, params: Sequence[float]) -> torch.Tensor:
    """Distorted pixels -> pixels of the undistorted pinhole with the model's fx, fy, cx, cy
    (the inverse of :func:`distort_points`); NaN where the model cannot be inverted."""
    k, c = split_params(model, params)
    uv = _as_points(uv)
    x, y = undistort_normalized((uv[..., 0] - k.cx) / k.fx, (uv[..., 1] - k.cy) / k.fy, c)
    return torch.stack([k.fx * x + k.cx, k.fy * y + k.cy], -1)


def _border(width: int, height: int, edge: bool = False) -> torch.Tensor:
    """Every pixel centre on the border of a width x height image, or (``edge``) points one
    pixel apart on the image's outer edge, corners included; [M,2] float64."""
    if edge:
        us = torch.linspace(0, width, width + 1, dtype=torch.float64)
        vs = torch.linspace(0, height, height + 1, dtype=torch.float64)
        lo, hi_u, hi_v = 0.0, float(width), float(height)
    else:
        us = torch.arange(width, dtype=torch.float64) + 0.5
        vs = torch.arange(height, dtype=torch.float64) + 0.5
        lo, hi_u, hi_v = 0.5, width - 0.5, height - 0.5
    top = torch.stack([us, torch.full_like(us, lo)], -1)
    bottom = torch.stack([us, torch.full_like(us, hi_v)], -1)
    left = torch.stack([torch.full_like(vs, lo), vs], -1)
    right = torch.stack([torch.full_like(vs, hi_u), vs], -1)
    return torch.cat([top, bottom, left, right])


def _fold_r2(c: dict[str, float]) -> float:
    """Squared normalized radius where the radial distortion folds back (its radius map
    r -> r·s(r²) stops increasing), inf if it never does within r <= 10 (beyond 168 degrees).
    Past it the lens model is meaningless: no photo pixel is seen there."""
    r = torch.linspace(0, 10, 20_001, dtype=torch.float64)
    r2 = r * r
    num = 1 + r2 * (c["k1"] + r2 * (c["k2"] + r2 * c["k3"]))
    den = 1 + r2 * (c["k4"] + r2 * (c["k5"] + r2 * c["k6"]))
    dnum = c["k1"] + r2 * (2 * c["k2"] + 3 * c["k3"] * r2)
    dden = c["k4"] + r2 * (2 * c["k5"] + 3 * c["k6"] * r2)
    slope = num / den + 2 * r2 * (dnum * den - num * dden) / (den * den)
    bad = torch.nonzero((slope <= 0) | (den <= 0))
    return float("inf") if len(bad) == 0 else float(r2[max(int(bad[0]) - 1, 0)])


def _sources(x: torch.Tensor, y: torch.Tensor, k: Intrinsics, c: dict[str, float],
             fold_r2: float):
    """Photo pixel (u, v) seen along normalized camera coordinates ``x``, ``y`` (undistorted),
    and whether the lens model holds there (inside its fold radius)."""
    xd, yd = _distort(x, y, c)
    return k.fx * xd + k.cx, k.fy * yd + k.cy, (x * x + y * y) < fold_r2


def _scaled(k: Intrinsics, s: float, width: int, height: int, out_w: int, out_h: int):
    sx, sy = out_w / width, out_h / height
    return Intrinsics(k.fx * s * sx, k.fy * s * sy, k.cx * sx, k.cy * sy)


def undistorted_intrinsics(model: str, params: Sequence[float], width: int, height: int,
                           keep: str = "valid", size: tuple[int, int] | None = None
                           ) -> Intrinsics:
    """Intrinsics of the undistorted pinhole for a ``width`` x ``height`` photo.

    The principal point stays where it is (scaled to the output ``size`` = (W', H'), by default
    the photo's own size: the resolution the user sees) and both focal lengths are scaled by
    one factor chosen by ``keep``: ``"same"`` keeps the model's focal lengths; ``"valid"``
    the smallest factor for which every output pixel sees the photo (no empty border);
    ``"all"`` the largest for which the whole photo frame stays inside the output.
    """
    k, c = split_params(model, params)
    out_w, out_h = size if size is not None else (width, height)
    if keep == "same" or not any(c.values()):
        return _scaled(k, 1.0, width, height, out_w, out_h)
    if keep not in ("valid", "all"):
        raise ValueError(f"keep must be 'same', 'valid' or 'all', got {keep!r}")
    if keep == "valid":
        border = _border(out_w, out_h)

        fold = _fold_r2(c)

        def ok(s: float) -> bool:
            ko = _scaled(k, s, width, height, out_w, out_h)
            u, v, fine = _sources((border[:, 0] - ko.cx) / ko.fx, (border[:, 1] - ko.cy) / ko.fy,
                                  k, c, fold)
            return bool((fine & (u >= 0) & (u <= width) & (v >= 0) & (v <= height)).all())
    else:
        frame = _border(width, height, edge=True)
        und = undistort_normalized((frame[:, 0] - k.cx) / k.fx, (frame[:, 1] - k.cy) / k.fy, c)
        if bool(torch.isnan(und[0]).any()):
            raise DistortionError("the photo's frame lies outside the range where the lens "
                                  "model can be inverted; use keep='valid' or 'same'")

        def ok(s: float) -> bool:
            ko = _scaled(k, s, width, height, out_w, out_h)
            u, v = ko.fx * und[0] + ko.cx, ko.fy * und[1] + ko.cy
            return bool(((u >= 0) & (u <= out_w) & (v >= 0) & (v <= out_h)).all())

    # ok(s) is monotone in s: "valid" holds for large s (zoomed in), "all" for small s.
    toward_ok = 1.25 if keep == "valid" else 0.8
    good = bad = 1.0
    if ok(1.0):
        for _ in range(60):
            bad /= toward_ok
            if not ok(bad):
                break
        else:
            return _scaled(k, good, width, height, out_w, out_h)
    else:
        for _ in range(60):
            good *= toward_ok
            if ok(good):
                break
        else:
            raise DistortionError(f"no focal scale gives keep={keep!r} for these parameters")
    for _ in range(50):
        mid = 0.5 * (good + bad)
        if ok(mid):
            good = mid
        else:
            bad = mid
    return _scaled(k, good, width, height, out_w, out_h)


def _to_nchw(a) -> tuple[torch.Tensor, bool, torch.dtype | np.dtype, bool]:
    is_np = not torch.is_tensor(a)
    t = torch.from_numpy(np.ascontiguousarray(a)) if is_np else a.detach()
    dtype = t.dtype
    gray = t.dim() == 2
    if t.dim() not in (2, 3):
        raise ValueError(f"expected an image of shape [H,W] or [H,W,C], got {tuple(t.shape)}")
    t = t[..., None] if gray else t
    return t.permute(2, 0, 1)[None].to(torch.float32), is_np, dtype, gray


def _back(t: torch.Tensor, is_np: bool, dtype, gray: bool):
    t = t[0].permute(1, 2, 0)
    t = t[..., 0] if gray else t
    if dtype == torch.uint8:
        t = t.round().clamp(0, 255)
    elif dtype == torch.bool:
        t = t > 0.5
    t = t.to(dtype)
    return t.numpy() if is_np else t


def undistort_image(image, model: str, params: Sequence[float], *, mask=None,
                    keep: str = "valid", size: tuple[int, int] | None = None,
                    intrinsics: Intrinsics | Sequence[float] | None = None,
                    mask_mode: str = "threshold", chunk_rows: int = 256) -> Undistorted:
    """Resample a distorted photo into the image of an undistorted pinhole camera.

    Args:
        image: [H,W] or [H,W,C] numpy array or CPU tensor (float, uint8); sampled bilinearly,
            edge pixels extended (a source point within half a pixel of the frame is valid).
        model, params: the photo's COLMAP camera model (see the module docstring).
        mask: optional [H,W] mask (bool, uint8 or float) resampled with the image:
            ``mask_mode="threshold"`` samples bilinearly and thresholds at half the full value
            (0.5, or 127.5 for uint8) to 0 or full,
            ``"nearest"`` takes the nearest photo pixel. Outside the photo it is 0.
        keep, size: the output pinhole, see :func:`undistorted_intrinsics`;
            ``size`` is (W', H'). ``intrinsics`` (fx, fy, cx, cy) overrides ``keep``.
        chunk_rows: output rows resampled at a time (bounds memory on large photos).
    Returns:
        :class:`Undistorted` (image, mask, intrinsics, valid). Pixels that see nothing of the
        photo are 0 in the image and mask and False in ``valid``.
    """
    src, is_np, dtype, gray = _to_nchw(image)
    _, _, height, width = src.shape
    if mask is not None:
        msrc, m_np, m_dtype, _ = _to_nchw(mask)
        if msrc.shape[1] != 1 or msrc.shape[2:] != src.shape[2:]:
            raise ValueError(f"mask shape {tuple(mask.shape)} does not match image "
                             f"{tuple(src.shape[2:])}")
    if mask_mode not in ("threshold", "nearest"):
        raise ValueError(f"mask_mode must be 'threshold' or 'nearest', got {mask_mode!r}")
    k, c = split_params(model, params)
    out_w, out_h = size if size is not None else (width, height)
    k_out = (Intrinsics(*(float(v) for v in intrinsics)) if intrinsics is not None
             else undistorted_intrinsics(model, params, width, height, keep, (out_w, out_h)))
    out = torch.zeros(1, src.shape[1], out_h, out_w)
    mout = torch.zeros(1, 1, out_h, out_w) if mask is not None else None
    valid = torch.zeros(out_h, out_w, dtype=torch.bool)
    fold = _fold_r2(c)
    # float32 is plenty here (grid_sample works in float32: ~1e-3 px on a 4000 px photo)
    x = ((torch.arange(out_w, dtype=torch.float64) + 0.5 - k_out.cx) / k_out.fx)[None].float()
    for r0 in range(0, out_h, chunk_rows):
        vs = torch.arange(r0, min(out_h, r0 + chunk_rows), dtype=torch.float64) + 0.5
        y = ((vs - k_out.cy) / k_out.fy)[:, None].float()
        u, v, fine = _sources(x, y, k, c, fold)  # [1,W] and [R,1] broadcast to [R,W]
        ok = fine & (u >= 0) & (u <= width) & (v >= 0) & (v <= height)
        grid = torch.stack([u * (2 / width) - 1, v * (2 / height) - 1], -1)
        grid = grid.masked_fill_(~ok[..., None], -2.0)[None]
        rows = slice(r0, r0 + vs.shape[0])
        okf = ok.float()
        out[:, :, rows] = F.grid_sample(src, grid, "bilinear", "border", False) * okf
        if mout is not None:
            mode = "nearest" if mask_mode == "nearest" else "bilinear"
            m = F.grid_sample(msrc, grid, mode, "border", False) * okf
            if mask_mode == "threshold":
                full = 255.0 if m_dtype == torch.uint8 else 1.0
                m = (m >= 0.5 * full).float() * full
            mout[:, :, rows] = m
        valid[rows] = ok
    img = _back(out, is_np, dtype, gray)
    m = None if mout is None else _back(mout, m_np, m_dtype, True)
    return Undistorted(img, m, k_out, valid.numpy())
