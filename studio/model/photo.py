"""Photos as targets, with no Qt: automatic foreground masks and framing to the render aspect.

A photo has no alpha channel, so its mask is estimated. :func:`foreground_score` models the
background by the colours along the image border (the object is assumed not to fill the
frame edge to edge) and the foreground by the colours far from them, then re-estimates both
models from the current segmentation a few times, GrabCut-style (nearest colour clusters
instead of Gaussian mixtures and graph cuts; numpy and scipy only). The result is a score in
[0,1] per pixel; :func:`mask_from_score` thresholds it and cleans it up (holes filled, specks
removed), and the studio's mask editor lets the user move the threshold and paint over it.

Framing: all targets of a fit share the render aspect (that of the first target). Another
photo is *letterboxed* (padded with black, mask 0; the default) or *cropped* (centred) to that
aspect, and its vertical field of view is converted so the object still lands where the
camera says: the frame's half-height in the photo's image plane is ``scale`` times the
photo's, so ``tan(fov'/2) = scale · tan(fov/2)`` (:func:`framed_fov`). The camera a user
types for a photo is therefore the camera of the photo as it is on disk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

FRAMINGS = ("letterbox", "crop")
"""How a photo of another aspect is fitted to the render aspect."""

MAX_TARGET_SIDE = 1024
"""Photos larger than this (either side) are downscaled on load: the fit renders at most a few
hundred pixels, and a 24-megapixel float image would cost ~300 MB per target."""

DEFAULT_THRESHOLD = 0.5

MASK_MIN_COVER = 0.005
MASK_MAX_COVER = 0.98
"""An automatic mask covering less or more of the photo than this has most likely missed the
object (a plain photo, a background like the object, an object filling the frame), and the
user is told so (:func:`mask_warning`)."""

_WORK_SIDE = 256  # the score is computed at this size, then upsampled
_ROW_WEIGHT = 3.0  # the per-row model counts its distances this many times (it is permissive)
_BOTTOM_MATCH = 0.03  # squared feature distance
_BORDER = 0.04  # width of the border strip that samples the background, fraction of the side


# -- automatic mask -------------------------------------------------------------------------


def _kmeans(x: np.ndarray, k: int, iters: int = 8, seed: int = 0) -> np.ndarray:
    """Centroids [k',C] of ``x`` [N,C] (k' <= k: empty clusters are dropped)."""
    rng = np.random.default_rng(seed)
    if len(x) > 4000:
        x = x[rng.choice(len(x), 4000, replace=False)]
    k = max(1, min(k, len(x)))
    # k-means++ seeding: spread the first centroids over the colours present.
    c = [x[rng.integers(len(x))]]
    for _ in range(1, k):
        d = np.min(((x[:, None, :] - np.asarray(c)[None]) ** 2).sum(-1), axis=1)
        if d.sum() <= 0:
            break
        c.append(x[rng.choice(len(x), p=d / d.sum())])
    c = np.asarray(c)
    for _ in range(iters):
        lab = ((x[:, None, :] - c[None]) ** 2).sum(-1).argmin(1)
        c = np.asarray([x[lab == j].mean(0) for j in range(len(c)) if (lab == j).any()])
    return c


def _features(rgb: np.ndarray) -> np.ndarray:
    """[N,6]: colour plus chroma relative to brightness, so a dark saturated surface stays
    apart from a dark grey one (in plain RGB all dark colours are close)."""
    lum = rgb.mean(-1, keepdims=True)
    return np.concatenate([rgb, 0.5 * (rgb - lum) / (lum + 0.15)], -1)


def _nearest_sq(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Squared distance [N] from each colour to its nearest centroid."""
    d = np.full(len(x), np.inf)
    for c in centroids:
        d = np.minimum(d, ((x - c) ** 2).sum(-1))
    return d


def _resize(img: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Area (down) or bilinear (up) resampling of [H,W] or [H,W,C] float arrays."""
    if img.shape[:2] == tuple(shape):
        return img.astype(np.float32, copy=True)
    t = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))
    t = t[None, None] if t.ndim == 2 else t.permute(2, 0, 1)[None]
    down = shape[0] <= img.shape[0] and shape[1] <= img.shape[1]
    t = F.interpolate(t, size=tuple(shape), mode="area" if down else "bilinear",
                      **({} if down else {"align_corners": False}))
    out = t[0, 0] if img.ndim == 2 else t[0].permute(1, 2, 0)
    return out.numpy().astype(np.float32)


def _row_border_sq(x: np.ndarray, wh: int, ww: int, b: int, reach: int = 3) -> np.ndarray:
    """Squared distance [N] from each pixel to the nearest left/right border colour of nearby
    rows: a spatially varying background model, so a floor line or a vertical gradient that
    reaches the side edges stays background even where its colours are not in the global
    clusters. The sides are sampled per row because the floor usually crosses them."""
    img = x.reshape(wh, ww, -1)
    d = np.full((wh, ww), np.inf)
    side = np.concatenate([img[:, :b], img[:, -b:]], 1)  # [wh, 2b, C]
    for i in range(wh):
        lo, hi = max(0, i - reach), min(wh, i + reach + 1)
        samples = side[lo:hi].reshape(-1, side.shape[-1])
        row = img[i]
        dd = ((row[:, None, :] - samples[None]) ** 2).sum(-1).min(1)
        d[i] = dd
    return d.reshape(-1)


def foreground_score(rgb: np.ndarray, rounds: int = 4, clusters: int = 8) -> np.ndarray:
    """How much each pixel looks like foreground: [H,W] float32 in [0,1] (0.5 = undecided).

    Args:
        rgb: [H,W,3] float sRGB in [0,1], a photo whose border shows background.
        rounds: re-estimations of the two colour models from the current segmentation.
        clusters: colour clusters per model.

    The background model is the nearer of two: colour clusters of the border (then of the
    current background), and the side-border colours of the same rows (spatially varying,
    so a floor line crossing the frame is background). The bottom strip is not used for the
    global clusters, since objects standing on a floor often touch it. The score is
    ``d_bg / (d_bg + d_fg)`` with ``d`` the squared distance to each model, lightly
    smoothed. Computed at most 256 px wide, upsampled back.
    """
    rgb = np.asarray(rgb, np.float32)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"photo must be [H,W,3], got {rgb.shape}")
    h, w = rgb.shape[:2]
    s = min(1.0, _WORK_SIDE / max(h, w))
    wh, ww = max(2, round(h * s)), max(2, round(w * s))
    small = _resize(rgb, (wh, ww))
    x = _features(small.reshape(-1, 3).astype(np.float64))
    b = max(1, round(_BORDER * min(wh, ww)))
    border = np.zeros((wh, ww), bool)
    border[:b], border[:, :b], border[:, -b:] = True, True, True
    d_row = _row_border_sq(x, wh, ww, b)
    # The bottom strip joins the border where it looks like the side borders of its rows.
    border[-b:] = d_row.reshape(wh, ww)[-b:] < _BOTTOM_MATCH
    d_row *= _ROW_WEIGHT
    bg_c = _kmeans(x[border.reshape(-1)], clusters)
    d_bg = np.minimum(_nearest_sq(x, bg_c), d_row)
    # First guess of the foreground: colours far from every border colour (Otsu's split).
    fg = _otsu_split(np.sqrt(d_bg)).reshape(wh, ww) & ~border
    score = np.zeros((wh, ww), np.float32)
    for r in range(rounds):
        if fg.sum() < 4:
            break
        fg_c = _kmeans(x[fg.reshape(-1)], clusters, seed=r + 1)
        d_fg = _nearest_sq(x, fg_c)
        score = (d_bg / np.maximum(d_bg + d_fg, 1e-12)).reshape(wh, ww).astype(np.float32)
        score = ndimage.gaussian_filter(score, 0.7)
        mask = clean_mask(score > DEFAULT_THRESHOLD) & ~border
        # Learn each model from the confident inside of its region only.
        fg = ndimage.binary_erosion(mask, iterations=1)
        bg = ~ndimage.binary_dilation(mask, iterations=2)
        if bg.sum() >= 4:
            bg_c = _kmeans(x[bg.reshape(-1)], clusters, seed=r + 11)
            d_bg = np.minimum(_nearest_sq(x, bg_c), d_row)
    return np.clip(_resize(score, (h, w)), 0.0, 1.0)


def _otsu_split(v: np.ndarray) -> np.ndarray:
    """``v > t`` for Otsu's threshold t of the values ``v`` [N]."""
    hist, edges = np.histogram(v, bins=128)
    p = hist / max(hist.sum(), 1)
    mids = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(p)
    m0 = np.cumsum(p * mids)
    mt = m0[-1]
    between = (mt * w0 - m0) ** 2 / np.maximum(w0 * (1 - w0), 1e-12)
    return v > mids[int(np.argmax(between))]


def clean_mask(mask: np.ndarray, min_fraction: float = 0.02) -> np.ndarray:
    """Fill holes and drop specks: components smaller than ``min_fraction`` of the largest
    are removed, from the foreground and (as holes) from the background. [H,W] bool."""
    mask = np.asarray(mask, bool)
    lab, n = ndimage.label(mask)
    if n == 0:
        return mask.copy()
    sizes = ndimage.sum(mask, lab, index=np.arange(1, n + 1))
    keep = np.zeros(n + 1, bool)
    keep[1:] = sizes >= min_fraction * sizes.max()
    return ndimage.binary_fill_holes(keep[lab])


def mask_from_score(score: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """The cleaned-up mask [H,W] float32 (0/1) of ``score > threshold``."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in 0..1, got {threshold}")
    return clean_mask(np.asarray(score) > threshold).astype(np.float32)


def largest_object(mask: np.ndarray) -> np.ndarray:
    """The largest connected component of ``mask`` [H,W], holes filled. [H,W] bool."""
    mask = np.asarray(mask, bool)
    lab, n = ndimage.label(mask)
    if n <= 1:
        return ndimage.binary_fill_holes(mask)
    sizes = ndimage.sum(mask, lab, index=np.arange(1, n + 1))
    return ndimage.binary_fill_holes(lab == 1 + int(np.argmax(sizes)))


def auto_mask(rgb: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """The automatic foreground mask of a photo: its largest object, holes filled.
    [H,W] float32 (0/1)."""
    m = mask_from_score(foreground_score(rgb), threshold) > 0.5
    return largest_object(m).astype(np.float32)


MASK_MAX_EDGE_RUN = 0.6
"""An automatic mask running along one image edge for more than this fraction of that edge has
most likely taken a floor line, a shadow or a wall into the object."""
MASK_MAX_SECOND = 0.25
"""...and one whose second-largest component is more than this fraction of the largest has
most likely split the object or taken part of the background."""


def _longest_run(v: np.ndarray) -> int:
    best = cur = 0
    for on in v:
        cur = cur + 1 if on else 0
        best = max(best, cur)
    return best


def mask_warning(mask: np.ndarray, name: str = "photo") -> str | None:
    """A one-line warning when an automatic ``mask`` [H,W] of photo ``name`` is implausible,
    else None: (nearly) empty or full, running along an image edge for a long stretch, or
    made of several large pieces."""
    m = np.asarray(mask) > 0.5
    cover = float(m.mean()) if np.size(m) else 0.0
    tail = "; check it with Targets ▸ Edit mask… or give the photo an alpha channel"
    if not MASK_MIN_COVER <= cover <= MASK_MAX_COVER:
        what = ("found almost no object" if cover < MASK_MIN_COVER
                else "took almost the whole photo")
        return f"{name}: the automatic mask {what} ({cover:.1%} of the photo){tail}"
    edges = {"top": m[0], "bottom": m[-1], "left": m[:, 0], "right": m[:, -1]}
    for side, v in edges.items():
        run = _longest_run(v) / len(v)
        if run > MASK_MAX_EDGE_RUN and cover < 0.5:  # a large object may well fill an edge
            return (f"{name}: the automatic mask runs along the {side} edge for {run:.0%} "
                    f"of it (a floor line or background taken as object?){tail}")
    lab, n = ndimage.label(m)
    if cover < 0.5:
        spans = np.intersect1d(lab[:, 0], lab[:, -1])
        if (spans > 0).any():
            return (f"{name}: the automatic mask crosses the whole width of the photo "
                    f"(a floor line or background taken as object?){tail}")
    if n >= 2:
        sizes = np.sort(ndimage.sum(m, lab, index=np.arange(1, n + 1)))[::-1]
        if sizes[1] > MASK_MAX_SECOND * sizes[0]:
            k = int((sizes > MASK_MAX_SECOND * sizes[0]).sum())
            return f"{name}: the automatic mask has {k} large separate pieces{tail}"
    return None


@dataclass
class MaskEdit:
    """A mask as the user shapes it: automatic score, threshold, and painted corrections.

    ``paint`` [H,W] int8 is +1 where the user painted foreground, −1 where they erased and 0
    elsewhere, so moving the threshold later keeps the strokes.
    """

    score: np.ndarray
    threshold: float = DEFAULT_THRESHOLD
    paint: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.score = np.asarray(self.score, np.float32)
        if self.paint is None:
            self.paint = np.zeros(self.score.shape, np.int8)

    @classmethod
    def from_mask(cls, mask: np.ndarray) -> MaskEdit:
        """Start from an existing mask (its values are the score)."""
        return cls(np.clip(np.asarray(mask, np.float32), 0.0, 1.0))

    def mask(self) -> np.ndarray:
        """The resulting mask [H,W] float32 (0/1)."""
        m = mask_from_score(self.score, self.threshold) > 0.5
        m = (m | (self.paint > 0)) & ~(self.paint < 0)
        return m.astype(np.float32)

    def brush(self, row: float, col: float, radius: float, add: bool) -> None:
        """Paint a disc of foreground (``add``) or background at pixel (row, col)."""
        h, w = self.score.shape
        r0, r1 = max(0, int(row - radius)), min(h, int(row + radius) + 1)
        c0, c1 = max(0, int(col - radius)), min(w, int(col + radius) + 1)
        if r0 >= r1 or c0 >= c1:
            return
        yy, xx = np.mgrid[r0:r1, c0:c1]
        disc = (yy + 0.5 - row) ** 2 + (xx + 0.5 - col) ** 2 <= radius**2
        self.paint[r0:r1, c0:c1][disc] = 1 if add else -1

    def clear_paint(self) -> None:
        self.paint[:] = 0


# -- framing --------------------------------------------------------------------------------


def frame_size(h: int, w: int, aspect: float, framing: str = "letterbox") -> tuple[int, int, float]:
    """``(frame_h, frame_w, scale)`` of a ``h``×``w`` photo framed to ``aspect`` (W/H).

    ``scale`` is the frame's height over the photo's, which scales ``tan(fov/2)``."""
    if framing not in FRAMINGS:
        raise ValueError(f"unknown framing {framing!r}; use one of {FRAMINGS}")
    if not (math.isfinite(aspect) and aspect > 0):
        raise ValueError(f"aspect must be positive, got {aspect}")
    wider = w / h > aspect
    if (framing == "letterbox") == wider:  # letterbox a wide photo / crop a tall one: new height
        fh = max(2, round(w / aspect))
        return fh, w, fh / h
    return h, max(2, round(h * aspect)), 1.0


def frame_image(img: np.ndarray, aspect: float, framing: str = "letterbox"
                ) -> tuple[np.ndarray, float]:
    """Pad (letterbox, zeros) or centre-crop ``img`` [H,W] or [H,W,C] to ``aspect``.

    Returns ``(framed image, scale)``, see :func:`frame_size`."""
    h, w = img.shape[:2]
    fh, fw, scale = frame_size(h, w, aspect, framing)
    if (fh, fw) == (h, w):
        return img.copy(), scale
    if fh >= h and fw >= w:
        out = np.zeros((fh, fw) + img.shape[2:], img.dtype)
        top, left = (fh - h) // 2, (fw - w) // 2
        out[top:top + h, left:left + w] = img
        return out, scale
    top, left = (h - fh) // 2, (w - fw) // 2
    return img[top:top + fh, left:left + fw].copy(), scale


def framed_fov(fov: float, scale: float) -> float:
    """The vertical fov (degrees) of a frame ``scale`` times the photo's height."""
    return math.degrees(2 * math.atan(scale * math.tan(math.radians(fov) / 2)))


def limit_size(img: np.ndarray, max_side: int = MAX_TARGET_SIDE) -> np.ndarray:
    """Downscale (area) so neither side exceeds ``max_side``; aspect kept."""
    h, w = img.shape[:2]
    s = max_side / max(h, w)
    if s >= 1:
        return img
    return _resize(img, (max(2, round(h * s)), max(2, round(w * s))))


@dataclass
class PreparedPhoto:
    """A photo ready to become a target: framed image, mask and camera fov."""

    image: np.ndarray  # [H,W,3] float32 sRGB
    mask: np.ndarray  # [H,W] float32
    fov: float  # vertical fov of the frame, degrees
    auto_masked: bool  # True when the mask was estimated (the photo had no alpha)
    warning: str | None = None  # set when the automatic mask is (nearly) empty or full


def prepare_photo(rgb: np.ndarray, alpha: np.ndarray | None, fov: float,
                  aspect: float | None = None, framing: str = "letterbox",
                  name: str = "photo") -> PreparedPhoto:
    """Mask (alpha, else automatic), downscale and frame a photo for the fit.

    Args:
        rgb: [H,W,3] float sRGB; alpha: [H,W] or None.
        fov: vertical fov of the photo as on disk, degrees.
        aspect: the render aspect to frame to, or None to keep the photo's.
        name: the photo's name in the warning about a (nearly) empty or full automatic mask.
    """
    rgb = limit_size(np.asarray(rgb, np.float32))
    warning = None
    if alpha is not None:
        mask = limit_size(np.asarray(alpha, np.float32))
        auto = False
    else:
        mask = auto_mask(rgb)
        auto = True
        warning = mask_warning(mask, name)  # before framing: letterbox bands are not the photo
    scale = 1.0
    if aspect is not None and abs(rgb.shape[1] / rgb.shape[0] - aspect) > 1e-3:
        rgb, scale = frame_image(rgb, aspect, framing)
        mask, _ = frame_image(mask, aspect, framing)
    return PreparedPhoto(rgb, mask, framed_fov(fov, scale), auto, warning)


def fit_mask_to(mask: np.ndarray, shape: tuple[int, int], framing: str = "letterbox"
                ) -> np.ndarray:
    """A mask image of the photo's own size/aspect, framed and resized to a target's
    ``shape`` (H, W) the way :func:`prepare_photo` framed the photo. [H,W] float32."""
    mask = np.asarray(mask, np.float32)
    h, w = shape
    if abs(mask.shape[1] / mask.shape[0] - w / h) > 1e-3:
        mask, _ = frame_image(mask, w / h, framing)
    return np.clip(_resize(mask, (h, w)), 0.0, 1.0)
