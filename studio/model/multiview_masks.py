"""Object masks from a registered photo set: the cameras and the sparse points, not one image.

A single photo cannot tell an object from a background that wears the same kind of texture;
a registered photo set can, because the object is *where every camera looks* and it lies at a
depth the background does not. :func:`multiview_masks` works on undistorted photos (pinhole
:class:`~render_core.camera_io.CameraRecord`) and the structure-from-motion points in the same
world, in three steps:

1. **object sphere** (:func:`object_sphere`): the point closest to every optical axis (least
   squares) is the focus; the sparse points sorted by their distance from it form a cluster
   near it (the object), then a gap, then the background (floor, walls). The sphere holds the
   cluster with a margin and stays short of the nearest background point.
2. **depth test per photo** (:func:`photo_consistent_foreground`): for every pixel, depth
   hypotheses along its ray inside the sphere and, shared by all pixels, in front of and
   behind it (uniform in inverse depth); each hypothesis is scored by the colour difference
   with the ``neighbours`` photos taken nearest to it (the point projected there, sampled
   bilinearly), summed over a small window, the mean of the best two neighbours (occlusion).
   A pixel is foreground when its best hypothesis lies in the sphere and explains the pixel
   clearly better than the best one outside (a flat background patch that fits any depth
   stays background). Holes are filled, the component under the sphere kept.
3. **consistency** (:func:`carve`): a voxel grid over the sphere keeps the voxels that fall in
   the foreground of all but ``tolerance`` photos (one by default: it forgives a photo's
   bite out of the object) and of at least half of them; the kept voxels' surface (marching
   cubes), rasterised into every photo, is that photo's mask. Specks that one photo's test
   let through are carved by the others. (A second round, carving again from the
   reprojected masks intersected with the depth test's, changed no mask on the synthetic
   set, so there is none.)

No GUI toolkit is imported; torch runs the depth test on the CPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from render_core.camera_io import CameraRecord

__all__ = ["ObjectSphere", "carve", "multiview_masks", "object_sphere",
           "photo_consistent_foreground"]

Progress = Callable[[str, int, int], None]


@dataclass
class ObjectSphere:
    """``centre`` [3], ``radius``: a sphere that holds the object and no background point;
    ``object_points``: indices of the sparse points found on the object."""

    centre: np.ndarray
    radius: float
    object_points: np.ndarray


def _focus(records: Sequence[CameraRecord]) -> np.ndarray:
    rot = np.array([r.R for r in records])
    centres = np.array([r.center for r in records])
    d = -rot[:, 2, :]  # optical axes (the camera looks down -Z)
    proj = np.eye(3)[None] - d[:, :, None] * d[:, None, :]
    a, b = proj.sum(0), (proj @ centres[:, :, None]).sum(0)[:, 0]
    if np.linalg.cond(a) > 1e8:
        raise ValueError("the cameras' optical axes are (nearly) parallel: no point that all "
                         "of them look at")
    return np.linalg.solve(a, b)


def object_sphere(records: Sequence[CameraRecord], points: np.ndarray, *,
                  min_points: int = 8) -> ObjectSphere:
    """The sphere of the object all ``records`` look at (step 1 of the module docstring).

    Raises:
        ValueError: fewer than 2 cameras, parallel optical axes, or fewer than ``min_points``
        sparse points near the focus (no object found).
    """
    if len(records) < 2:
        raise ValueError(f"multi-view masks need at least 2 cameras, got {len(records)}")
    pts = np.asarray(points, np.float64).reshape(-1, 3)
    focus = _focus(records)
    centres = np.array([r.center for r in records])
    scale = float(np.median(np.linalg.norm(centres - focus, axis=1)))
    dist = np.linalg.norm(pts - focus, axis=1) / scale
    order = np.argsort(dist)
    s = dist[order]
    near = int(np.searchsorted(s, 0.6))  # the object lies well inside the cameras' ring
    if near < min_points:
        raise ValueError(f"only {near} sparse point(s) near the point the cameras look at: "
                         "no object found there")
    # the object's cluster ends at the widest gap between consecutive distances, if the
    # points after it lie clearly farther out (else every point near the focus is the
    # object's: a plain background gave no points)
    lo = min_points - 1
    gaps = np.diff(s[lo:near + 1]) if near < len(s) else np.diff(s[lo:near])
    cut = lo + int(np.argmax(gaps)) + 1 if len(gaps) else near
    if cut >= len(s) or s[cut] < 1.3 * s[cut - 1]:
        cut = near
    obj = order[:cut]
    centre = 0.5 * (pts[obj].min(0) + pts[obj].max(0))
    r_obj = float(np.linalg.norm(pts[obj] - centre, axis=1).max())
    others = np.linalg.norm(pts[order[cut:]] - centre, axis=1)
    r_bg = float(others.min()) if len(others) else 3.0 * r_obj
    radius = min(max(1.3 * r_obj, 0.5 * (r_obj + r_bg)), 0.9 * r_bg)
    return ObjectSphere(centre, max(radius, r_obj), obj)


def _neighbours(records: Sequence[CameraRecord], centre: np.ndarray, k: int) -> list[list[int]]:
    dirs = np.array([r.center - centre for r in records])
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    cos = dirs @ dirs.T
    np.fill_diagonal(cos, -np.inf)
    return [list(np.argsort(-row)[:k]) for row in cos]


def _scaled(rec: CameraRecord, image: np.ndarray, side: int):
    """The image area-downscaled to at most ``side`` pixels (longer side) as [3,h,w] torch,
    and fx, fy, cx, cy of that image."""
    h, w = image.shape[:2]
    s = min(1.0, side / max(h, w))
    hh, ww = max(2, round(h * s)), max(2, round(w * s))
    img = torch.from_numpy(np.ascontiguousarray(image[..., :3], np.float32)).permute(2, 0, 1)
    if (hh, ww) != (h, w):
        img = F.interpolate(img[None], size=(hh, ww), mode="area")[0]
    fx, fy, cx, cy = rec.intrinsics
    return img, (fx * ww / w, fy * hh / h, cx * ww / w, cy * hh / h)


def _project(rec: CameraRecord, k, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """World points [...,3] -> pixel coordinates (u, v) of ``rec`` with intrinsics ``k``,
    and the camera-space depth (> 0 in front)."""
    r = torch.as_tensor(rec.R, dtype=x.dtype)
    t = torch.as_tensor(rec.t, dtype=x.dtype)
    xc = x @ r.T + t
    z = -xc[..., 2]
    zs = z.clamp_min(1e-9)
    fx, fy, cx, cy = k
    return torch.stack([fx * xc[..., 0] / zs + cx, cy - fy * xc[..., 1] / zs], -1), z


def photo_consistent_foreground(i: int, records: Sequence[CameraRecord], images, sphere:
                                ObjectSphere, neighbours: Sequence[int], *, side: int = 200,
                                inside: int = 32, outside: int = 48, window: int = 5,
                                margin: float = 0.85) -> np.ndarray:
    """Photo ``i``'s foreground by the depth test (step 2 of the module docstring), a bool
    mask at the working size (longer side ``side``)."""
    rec = records[i]
    ref, k = _scaled(rec, images[i], side)
    _, h, w = ref.shape
    fx, fy, cx, cy = k
    u = (torch.arange(w, dtype=torch.float64) + 0.5 - cx) / fx
    v = (cy - (torch.arange(h, dtype=torch.float64) + 0.5)) / fy
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    dcam = torch.stack([uu, vv, -torch.ones_like(uu)], -1)  # camera depth 1 along the ray
    rt = torch.as_tensor(rec.R, dtype=torch.float64)
    dw = dcam @ rt  # world direction per pixel [h,w,3] (R^T d)
    eye = torch.as_tensor(rec.center, dtype=torch.float64)
    oc = eye - torch.as_tensor(sphere.centre, dtype=torch.float64)
    a = (dw * dw).sum(-1)
    b = 2 * (dw * oc).sum(-1)
    c = float(oc @ oc) - sphere.radius ** 2
    disc = b * b - 4 * a * c
    hit = disc > 0
    sq = disc.clamp_min(0).sqrt()
    z0 = ((-b - sq) / (2 * a)).clamp_min(1e-3)
    z1 = ((-b + sq) / (2 * a)).clamp_min(1e-3)
    if not bool(hit.any()):
        return np.zeros((h, w), bool)
    # only the box around the sphere's image is tested (with the window's margin)
    pad = window // 2
    rows = torch.nonzero(hit.any(1)).flatten()
    cols = torch.nonzero(hit.any(0)).flatten()
    r0, r1 = max(int(rows[0]) - pad, 0), min(int(rows[-1]) + pad + 1, h)
    c0, c1 = max(int(cols[0]) - pad, 0), min(int(cols[-1]) + pad + 1, w)
    box = (slice(r0, r1), slice(c0, c1))
    hb, wb = r1 - r0, c1 - c0
    dw_b = dw[box].float()  # [hb,wb,3]
    z0b, z1b = z0[box].float(), z1[box].float()
    dc = float(np.linalg.norm(rec.center - sphere.centre))
    near = max(0.05 * dc, dc - 3 * sphere.radius)
    far = 6.0 * dc
    inv = torch.linspace(1.0 / near, 1.0 / far, outside)
    z_out = (1.0 / inv)[:, None, None].expand(outside, hb, wb)
    frac = ((torch.arange(inside, dtype=torch.float32) + 0.5) / inside)[:, None, None]
    z = torch.cat([z0b + (z1b - z0b) * frac, z_out])  # [D,hb,wb] depths along each ray
    d = z.shape[0]
    ref_b = ref[:, r0:r1, c0:c1]
    costs = []
    for j in neighbours:
        img_j, (fxj, fyj, cxj, cyj) = _scaled(records[j], images[j], side)
        hj, wj = img_j.shape[1:]
        rj = torch.as_tensor(records[j].R, dtype=torch.float64)
        origin = (rj @ eye + torch.as_tensor(records[j].t, dtype=torch.float64)).float()
        step = dw_b @ rj.float().T  # [hb,wb,3]: camera j's coordinates move by this per depth
        xc = origin[0] + z * step[..., 0]
        yc = origin[1] + z * step[..., 1]
        zc = -(origin[2] + z * step[..., 2])  # camera j's depth
        zs = zc.clamp_min(1e-6)
        gx = (fxj * xc / zs + cxj) / wj * 2 - 1
        gy = (cyj - fyj * yc / zs) / hj * 2 - 1
        grid = torch.stack([gx, gy], -1).reshape(1, d * hb, wb, 2)
        smp = F.grid_sample(img_j[None], grid, mode="bilinear", padding_mode="border",
                            align_corners=False)[0].reshape(3, d, hb, wb)
        diff = (smp - ref_b[:, None]).abs().sum(0)  # [D,hb,wb]
        bad = (zc <= 0) | (gx.abs() > 1) | (gy.abs() > 1)
        diff = torch.where(bad, torch.full_like(diff, 3.0), diff)
        costs.append(F.avg_pool2d(diff[None], window, 1, pad, count_include_pad=False)[0])
    cost = torch.stack(costs)  # [K,D,hb,wb]
    best2 = cost.topk(min(2, len(costs)), dim=0, largest=False).values.mean(0)  # [D,hb,wb]
    c_in = best2[:inside].min(0).values
    # a shared sample that falls inside the sphere for this pixel is no "outside" hypothesis
    in_range = (z_out >= z0b) & (z_out <= z1b)
    c_out = torch.where(in_range, torch.full_like(best2[inside:], math.inf),
                        best2[inside:]).min(0).values
    fg = torch.zeros(h, w, dtype=torch.bool)
    fg[box] = hit[box] & (c_in < margin * c_out)
    return fg.numpy()


def _clean(fg: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """Drop specks, keep the components that touch ``seed`` (else the largest), close small
    gaps, fill holes."""
    from scipy import ndimage

    m = ndimage.binary_opening(fg, np.ones((3, 3), bool))
    lab, n = ndimage.label(m)
    if n == 0:
        return m
    keep = np.unique(lab[seed & m])
    keep = keep[keep > 0]
    if len(keep) == 0:
        sizes = ndimage.sum(m, lab, range(1, n + 1))
        keep = [int(np.argmax(sizes)) + 1]
    m = np.isin(lab, keep)
    m = ndimage.binary_closing(np.pad(m, 4), np.ones((3, 3), bool), iterations=2)[4:-4, 4:-4]
    return ndimage.binary_fill_holes(m)


def _resize_mask(m: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    t = torch.from_numpy(m.astype(np.float32))[None, None]
    return F.interpolate(t, size=shape, mode="bilinear", align_corners=False)[0, 0].numpy() >= 0.5


def carve(records: Sequence[CameraRecord], masks: Sequence[np.ndarray], sphere: ObjectSphere,
          *, resolution: int = 64, tolerance: int = 1) -> list[np.ndarray]:
    """Masks made consistent (step 3 of the module docstring): the voxels of a grid over the
    sphere that lie in the foreground of all but ``tolerance`` photos (of those they project
    into) and of at least half of them, their surface rasterised into every photo at its
    record's size (of each mask's own size when that differs)."""
    from skimage.measure import marching_cubes

    import render_core as rc

    n = len(records)
    tol = int(tolerance)
    g = np.linspace(-sphere.radius, sphere.radius, resolution)
    step = g[1] - g[0]
    xs = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3) + sphere.centre
    xt = torch.from_numpy(xs)
    misses = torch.zeros(len(xs), dtype=torch.int32)
    hits = torch.zeros(len(xs), dtype=torch.int32)
    for rec, m in zip(records, masks, strict=True):
        h, w = m.shape
        k = tuple(v * w / rec.width if q % 2 == 0 else v * h / rec.height
                  for q, v in enumerate(rec.intrinsics))
        uv, z = _project(rec, k, xt)
        col = torch.floor(uv[:, 0]).long()
        row = torch.floor(uv[:, 1]).long()
        inside = (z > 0) & (col >= 0) & (col < w) & (row >= 0) & (row < h)
        fg = torch.zeros(len(xs), dtype=torch.bool)
        mt = torch.from_numpy(np.ascontiguousarray(m, bool))
        fg[inside] = mt[row[inside], col[inside]]
        misses += (inside & ~fg).int()
        hits += fg.int()
    occ = ((misses <= tol) & (hits >= max(2, (n + 1) // 2))).numpy().reshape((resolution,) * 3)
    if occ.sum() < 8:
        return [np.zeros((r.height, r.width), bool) for r in records]
    vol = np.pad(occ.astype(np.float32), 1)
    verts, faces, _, _ = marching_cubes(vol, 0.5)
    verts = (verts - 1) * step + sphere.centre - sphere.radius
    # marching cubes on (i, j, k) = (x, y, z) gives faces wound for the mesh's inside; the
    # mask needs no winding (no culling)
    vt = torch.from_numpy(verts.astype(np.float64))
    ft = torch.from_numpy(faces.astype(np.int64))
    out = []
    for rec in records:
        cam = rec.to_camera(dtype=torch.float64)
        clip = cam.to_clip(vt)
        frag = rc.rasterize(clip.float(), ft, (rec.height, rec.width))
        out.append(frag.mask[0].numpy().astype(bool))
    return out


def multiview_masks(images: Sequence[np.ndarray], records: Sequence[CameraRecord],
                    points: np.ndarray, *, side: int = 200, neighbours: int = 4,
                    resolution: int = 64, tolerance: int = 1, progress: Progress | None = None,
                    cancel: Callable[[], bool] | None = None) -> list[np.ndarray]:
    """Float 0/1 masks [H,W] of the object, one per photo (the module docstring).

    Args:
        images: undistorted photos [H,W,3] (0..1 floats), one per record.
        records: their undistorted pinhole cameras (one world with ``points``).
        points: [N,3] sparse 3-D points of the photos (structure from motion).
        side: the depth test's working size (longer side, pixels).
        neighbours: photos compared with each photo in the depth test.
        resolution: voxels per axis of the consistency grid.
        tolerance: photos whose foreground a voxel may miss and still be kept.
        progress: ``progress("masks", done, total)``.
        cancel: polled between photos; True stops with
            :class:`studio.model.poses.Cancelled`.
    Raises:
        ValueError: distorted records, images that do not match their records, no object
        found (see :func:`object_sphere`).
    """
    from .poses import Cancelled

    if len(images) != len(records):
        raise ValueError(f"{len(images)} photos for {len(records)} cameras")
    for img, r in zip(images, records, strict=True):
        if r.distorted:
            raise ValueError(f"camera of {r.image!r} is distorted: undistort the photo first")
        if tuple(img.shape[:2]) != (r.height, r.width):
            raise ValueError(f"photo {r.image!r} is {img.shape[1]} x {img.shape[0]}, its "
                             f"camera says {r.width} x {r.height}")
    report = progress or (lambda stage, done, total: None)
    sphere = object_sphere(records, points)
    nbrs = _neighbours(records, sphere.centre, min(neighbours, len(records) - 1))
    n = len(records)
    first = []
    for i, rec in enumerate(records):
        fg = photo_consistent_foreground(i, records, images, sphere, nbrs[i], side=side)
        h, w = fg.shape
        k = tuple(v * w / rec.width if q % 2 == 0 else v * h / rec.height
                  for q, v in enumerate(rec.intrinsics))
        seed = np.zeros_like(fg)
        uv, z = _project(rec, k, torch.from_numpy(np.asarray(points)[sphere.object_points]))
        for (uu, vv), zz in zip(uv.numpy(), z.numpy(), strict=True):
            if zz > 0 and 0 <= uu < w and 0 <= vv < h:
                seed[int(vv), int(uu)] = True
        first.append(_resize_mask(_clean(fg, seed), (rec.height, rec.width)))
        report("masks", i + 1, n + 1)
        if cancel is not None and cancel():
            raise Cancelled()
    final = carve(records, first, sphere, resolution=resolution, tolerance=tolerance)
    report("masks", n + 1, n + 1)
    return [m.astype(np.float32) for m in final]
