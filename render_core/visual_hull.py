"""The visual hull of silhouettes: a watertight starting mesh for shape fits.

``visual_hull(masks, cameras)`` carves a voxel grid with the masks (a voxel survives when its
centre projects inside the mask in every view that sees it), extracts the surface with marching
cubes, smooths away the voxel staircase and decimates to a face budget. Pixel convention as in
design.md: pixel (row i, col j), row 0 at the top, has its centre at NDC
``x = 2(j+0.5)/W - 1``, ``y = 1 - 2(i+0.5)/H``.

Nothing here is differentiable; it runs on the CPU whatever device the inputs are on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from . import _carve
from . import _hull_surface as surf
from ._carve import INSIDE, OUTSIDE, UNSEEN, ViewTables
from .camera import Camera
from .mesh import Mesh

__all__ = ["VisualHullError", "visual_hull", "carve_voxels", "default_bounds", "frustum_bounds"]

_BOUNDS_GRID = 32  # samples per axis of the coarse grids that derive the default bounds


class VisualHullError(ValueError):
    """The masks or cameras cannot give a visual hull; the message names the targets."""


def _target_names(names, n: int) -> list[str]:
    if names is None:
        return [f"target {k + 1}" for k in range(n)]
    names = [str(x) for x in names]
    if len(names) != n:
        raise VisualHullError(f"{len(names)} names given for {n} masks")
    return names


def _as_masks(masks, names_arg) -> tuple[list[torch.Tensor], list[str]]:
    if torch.is_tensor(masks) or isinstance(masks, np.ndarray):
        t = torch.as_tensor(masks)
        if t.dim() == 2:
            t = t[None]
        if t.dim() != 3:
            raise VisualHullError(f"masks must be [N,H,W] or a list of [H,W], got {tuple(t.shape)}")
        items = list(t)
    elif isinstance(masks, Sequence) and not isinstance(masks, str):
        items = [torch.as_tensor(np.asarray(m)) if not torch.is_tensor(m) else m for m in masks]
    else:
        raise VisualHullError(
            f"masks must be an array [N,H,W] or a list of [H,W], got {type(masks)}"
        )
    names = _target_names(names_arg, len(items))
    if not items:
        raise VisualHullError("no masks given")
    out = []
    for m, name in zip(items, names, strict=True):
        m = m.detach().cpu()
        if m.dim() == 3 and m.shape[-1] == 1:
            m = m[..., 0]
        if m.dim() != 2 or m.shape[0] == 0 or m.shape[1] == 0:
            raise VisualHullError(f"{name}: mask must be a 2-D [H,W] array, got {tuple(m.shape)}")
        if m.dtype != torch.bool:
            if m.is_complex() or not (m.is_floating_point() or m.dtype in _INT_DTYPES):
                raise VisualHullError(f"{name}: mask must be bool or numeric, got {m.dtype}")
            m = m.double()
            if not bool(torch.isfinite(m).all()):
                raise VisualHullError(f"{name}: mask has NaN or infinite values")
            m = m > 0.5
        out.append(m)
    return out, names


_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _check_inputs(masks, cameras, names):
    masks, names = _as_masks(masks, names)
    if not isinstance(cameras, Camera):
        raise VisualHullError(f"cameras must be a render_core.camera.Camera, got {type(cameras)}")
    if len(cameras) != len(masks):
        raise VisualHullError(f"{len(masks)} masks but {len(cameras)} cameras")
    aspect = cameras.aspect.detach().double().cpu()
    for k, (m, name) in enumerate(zip(masks, names, strict=True)):
        h, w = m.shape
        if not bool(m.any()):
            raise VisualHullError(f"{name}: the mask is empty (no pixel > 0.5)")
        if bool(m.all()):
            raise VisualHullError(
                f"{name}: the mask is full (the object fills the photo), so nothing bounds it"
            )
        if abs(w / h - float(aspect[k])) > 0.01 * float(aspect[k]):
            raise VisualHullError(
                f"{name}: the mask is {w}x{h} (aspect {w / h:.3f}) but its camera's aspect "
                f"is {float(aspect[k]):.3f}"
            )
    return masks, names


def _tables(masks, cameras: Camera) -> ViewTables:
    cam = cameras.detach().to(device="cpu", dtype=torch.float64)
    return ViewTables(masks, cam.full_matrix, cam.view[:, 2, :])


def _grid_points(lo: torch.Tensor, hi: torch.Tensor, n: int) -> torch.Tensor:
    axes = [torch.linspace(float(lo[a]), float(hi[a]), n, dtype=torch.float64) for a in range(3)]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)


def frustum_bounds(cameras: Camera, names=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The box [lo, hi] (float64 [3] each) around the region every camera sees.

    Sampled on a 32³ grid over a search box (the cameras' eyes' box grown by twice its size, and
    by the largest eye-to-eye distance): the bounding box of the samples in front of every
    camera and inside every image, grown by 1.5 sample spacings. Raises VisualHullError when no
    sample is seen by all cameras.
    """
    cam = cameras.detach().to(device="cpu", dtype=torch.float64)
    eye = cam.eye
    span = float((eye.amax(0) - eye.amin(0)).max())
    grow = max(2.0 * span, float(torch.cdist(eye, eye).max()), float(cam.near.max()) * 4)
    grow = min(grow, float(cam.far.max()))
    lo, hi = eye.amin(0) - grow, eye.amax(0) + grow
    n = len(cam)
    ones = [torch.ones(2, 2, dtype=torch.bool) for _ in range(n)]
    tables = ViewTables(ones, cam.full_matrix, cam.view[:, 2, :])
    for _ in range(3):  # zoom in twice so the samples resolve the region
        pts = _grid_points(lo, hi, _BOUNDS_GRID)
        seen = (_carve.classify_grid(tables, pts) != UNSEEN).all(0)
        if not bool(seen.any()):
            break
        step = (hi - lo) / (_BOUNDS_GRID - 1)
        lo, hi = pts[seen].amin(0) - 1.5 * step, pts[seen].amax(0) + 1.5 * step
    else:
        return lo, hi
    names = _target_names(names, n)
    raise VisualHullError(
        "the cameras see no common region (" + ", ".join(names) + "); give bounds explicitly"
    )


def default_bounds(masks, cameras: Camera, max_misses: int = 0, names=None, _frustum=None):
    """Default carving box: :func:`frustum_bounds`, tightened to the masks.

    The frustum box is carved on a 32³ grid of sample points; the result is the bounding box of
    the surviving samples grown by two sample spacings (so thin parts between samples are not
    cut off), intersected with the frustum box. Returns float64 ``(lo [3], hi [3])``.
    """
    masks, names = _check_inputs(masks, cameras, names)
    lo, hi = frustum_bounds(cameras, names) if _frustum is None else _frustum
    tables = _tables(masks, cameras)
    pts = _grid_points(lo, hi, _BOUNDS_GRID)
    cls = _carve.classify_grid(tables, pts)
    keep = ((cls == OUTSIDE).sum(0) <= max_misses) & ((cls <= INSIDE).sum(0) > 0)
    if not bool(keep.any()):
        raise _empty_hull_error(cls, names, max_misses)
    step = (hi - lo) / (_BOUNDS_GRID - 1)
    lo2 = torch.maximum(pts[keep].amin(0) - 2 * step, lo)
    hi2 = torch.minimum(pts[keep].amax(0) + 2 * step, hi)
    return lo2, hi2


def _empty_hull_error(cls: torch.Tensor, names: list[str], max_misses: int) -> VisualHullError:
    """Name the views that carve away what the others keep (on sampled points)."""
    miss = cls == OUTSIDE  # [N,P]
    n_miss = miss.sum(0)
    seen = (cls <= INSIDE).sum(0) > 0
    # Points that one more tolerated miss would keep: which views remove them?
    near = seen & (n_miss == max_misses + 1)
    blame = (miss & near[None]).sum(1)
    if int(blame.max()) == 0:
        culprits = []
    else:
        culprits = [names[k] for k in torch.nonzero(blame >= 0.5 * blame.max()).ravel().tolist()]
    msg = "the masks disagree: no voxel lies inside every silhouette"
    if max_misses:
        msg = f"the masks disagree: no voxel lies inside all but {max_misses} silhouettes"
    if culprits:
        msg += "; " + ", ".join(culprits) + " carve away what the other views keep"
    else:
        msg += " (" + ", ".join(names) + "); check the cameras"
    return VisualHullError(msg)


def carve_voxels(masks, cameras: Camera, resolution: int = 128, bounds=None, max_misses=0,
                 names=None):
    """Carve the voxel grid; returns ``(occupancy [nx,ny,nz] bool, lo [3] float64, voxel)``.

    Voxel (i,j,k)'s centre is ``lo + ((i,j,k) + 0.5)·voxel``; the longest side of ``bounds``
    has ``resolution`` voxels and the others as many as cover them (cubic voxels, centred).
    Arguments as :func:`visual_hull`.
    """
    masks, names = _check_inputs(masks, cameras, names)
    if int(max_misses) < 0 or int(max_misses) != max_misses:
        raise VisualHullError(f"max_misses must be a non-negative integer, got {max_misses}")
    if int(resolution) != resolution or not 4 <= int(resolution) <= 1024:
        raise VisualHullError(f"resolution must be an integer in 4..1024, got {resolution}")
    if bounds is None:
        frustum = frustum_bounds(cameras, names)
        lo, hi = default_bounds(masks, cameras, max_misses, names, frustum)
    else:
        b = torch.as_tensor(np.asarray(bounds, dtype=np.float64))
        if b.shape != (2, 3) or not bool(torch.isfinite(b).all()) or bool((b[1] <= b[0]).any()):
            raise VisualHullError(f"bounds must be [[xmin,ymin,zmin],[xmax,ymax,zmax]] with "
                                  f"max > min, got {np.asarray(bounds).tolist()}")
        lo, hi = b[0], b[1]
    tables = _tables(masks, cameras)
    occ, lo, voxel = _carve_box(tables, lo, hi, int(resolution), int(max_misses))
    if bounds is None and bool(occ.any()):
        # The sampled bounds may cut off a thin part: where the carve reaches the box, widen
        # that side to the frustum box and carve once more.
        flo, fhi = frustum
        hi = lo + torch.tensor(occ.shape, dtype=torch.float64) * voxel
        touch_lo = torch.tensor([bool(occ.select(a, 0).any()) for a in range(3)])
        touch_hi = torch.tensor([bool(occ.select(a, occ.shape[a] - 1).any()) for a in range(3)])
        lo2 = torch.where(touch_lo, torch.minimum(flo, lo), lo)
        hi2 = torch.where(touch_hi, torch.maximum(fhi, hi), hi)
        if float(torch.maximum(lo - lo2, hi2 - hi).max()) > voxel:
            occ, lo, voxel = _carve_box(tables, lo2, hi2, int(resolution), int(max_misses))
    if not bool(occ.any()):
        top = lo + torch.tensor(occ.shape, dtype=torch.float64) * voxel
        pts = _grid_points(lo, top, min(_BOUNDS_GRID, max(occ.shape)))
        raise _empty_hull_error(_carve.classify_grid(tables, pts), names, int(max_misses))
    return occ, lo, voxel


def _carve_box(tables, lo, hi, resolution: int, max_misses: int):
    voxel = float((hi - lo).max()) / resolution
    dims = [max(1, int(np.ceil(float(e) / voxel - 1e-9))) for e in (hi - lo)]
    lo = (lo + hi) / 2 - torch.tensor(dims, dtype=torch.float64) * voxel / 2
    return _carve.carve(tables, lo, voxel, dims, max_misses), lo, voxel


def visual_hull(
    masks,
    cameras: Camera,
    resolution: int = 128,
    bounds=None,
    max_misses: int = 0,
    faces: int | None = 5000,
    smooth: int = 10,
    names: Sequence[str] | None = None,
    min_component: float = 0.1,
) -> Mesh:
    """The visual hull of N silhouettes as a closed mesh.

    Args:
        masks: [N,H,W] tensor or array (bool, or numbers with > 0.5 = inside), or a sequence
            of N [H_i,W_i] arrays (sizes may differ). Any device; read on the CPU.
        cameras: a :class:`~render_core.camera.Camera` batch of N; mask k is what camera k sees
            (its aspect must equal W_k/H_k within 1%).
        resolution: voxels along the longest side of ``bounds`` (the grid is about
            ``resolution³``; voxels are cubes).
        bounds: ``[[xmin,ymin,zmin],[xmax,ymax,zmax]]`` world box to carve, or None for
            :func:`default_bounds` (the region all cameras see, tightened to the masks; where
            the carve reaches that box's side, the side is moved out to the frustum box and
            the grid carved again). A hull that reaches the bounds is cut flat there.
        max_misses: a voxel may lie outside the mask in up to this many of the views that see
            it (for slightly wrong photo masks). Every voxel must be seen by one view at least;
            a view sees a voxel when it lies in front of the camera and inside the image.
        faces: target face count of the result (quadric decimation; ±10% typically), or None
            to keep marching cubes' full resolution.
        smooth: Taubin lambda/mu iterations against the voxel staircase (0 = none); every
            vertex stays within 0.75 voxel of where marching cubes put it. Marching cubes runs
            on the occupancy blurred by 0.7 voxel (``_hull_surface.BLUR_SIGMA``), which keeps
            flat and gently curved boundaries in place but rounds sharp edges by a fraction of
            a voxel and loses parts thinner than about 1.5 voxels.
        names: N target names for error messages (default "target 1".."target N").
        min_component: connected pieces whose volume is under this fraction of the largest
            piece's are dropped (0 keeps all, 1 keeps only the largest). Few views leave
            "phantom" islands where no view's silhouette cuts them away; the default 0.1 drops
            those, and also real separate objects under a tenth of the largest one's volume.
    Returns:
        A :class:`~render_core.mesh.Mesh` on the CPU (float32 vertices, int64 faces):
        watertight, 2-manifold, faces counter-clockwise seen from outside (positive signed
        volume), no degenerate faces; one component per separate object, genus as carved.
    Raises:
        VisualHullError (a ValueError) naming the targets: empty or full masks, counts or
        aspect ratios that do not match the cameras, masks that disagree so nothing survives.
    Not differentiable.
    """
    if faces is not None and (int(faces) != faces or int(faces) < 20):
        raise VisualHullError(f"faces must be an integer >= 20 (or None), got {faces}")
    if int(smooth) != smooth or int(smooth) < 0:
        raise VisualHullError(f"smooth must be a non-negative integer, got {smooth}")
    if not 0.0 <= float(min_component) <= 1.0:
        raise VisualHullError(f"min_component must lie in [0, 1], got {min_component}")
    occ, lo, voxel = carve_voxels(masks, cameras, resolution, bounds, max_misses, names)
    verts, tris = surf.marching_cubes(occ.numpy(), lo.numpy(), voxel)
    verts, tris = surf.keep_components(verts, tris, float(min_component))
    verts = surf.taubin(verts, tris, int(smooth), 0.75 * voxel)
    if faces is not None:
        verts, tris = surf.decimate(verts, tris, int(faces))
    topo = surf.topology(tris, verts.shape[0])
    if not topo["closed_manifold"]:  # marching cubes and the decimation guarantee it
        raise RuntimeError(f"visual_hull produced a mesh that is not a closed 2-manifold: {topo}")
    return Mesh(torch.from_numpy(verts.astype(np.float32)), torch.from_numpy(tris))
