"""A folder of photos as fit targets: cameras, masks, undistortion, normalisation. No Qt.

:func:`load_photo_folder` is the one path from a folder of photos to
:class:`~render_core.fit.TargetView` with general pinhole cameras, used by the CLI
(``dibr-studio fit --photos DIR``) and the studio (File ▸ Open photo folder…):

1. **cameras**: ``"auto"`` runs structure from motion on the photos
   (:func:`studio.model.poses.estimate_poses`); a path is a COLMAP sparse model folder or a
   ``transforms.json`` (:mod:`render_core.camera_io`). Photos without a camera are named in
   :attr:`PhotoFolder.unregistered`, never dropped silently.
2. **undistort**: photo (and a given mask) resampled once into the undistorted pinhole of
   the same size (:meth:`CameraRecord.undistort`), downscaled to at most ``max_side`` pixels.
3. **masks**: the image of the same name in a masks folder; else, when the cameras come with
   sparse 3-D points (structure from motion, a COLMAP model), the masks of the photo set
   (:func:`studio.model.multiview_masks.multiview_masks`: the object all cameras look at,
   found by its depth, made consistent across the photos); else (a transforms.json) each
   photo's own automatic mask (:func:`studio.model.photo.auto_mask`).
4. **normalise**: the world recentred, scaled and turned so the object lies in the unit sphere
   with +Y up (:func:`render_core.scene_normalize.normalize_scene`, from the masks); the
   transform is kept (:attr:`PhotoFolder.transform`) to write cameras in the original frame.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from render_core.camera_io import CameraRecord, read_colmap, read_transforms, write_transforms
from render_core.fit import TargetView
from render_core.scene_normalize import SceneTransform, normalize_scene

from . import files, photo
from .multiview_masks import multiview_masks

Progress = Callable[[str, int, int], None]
STAGES = ("cameras", "undistort", "masks", "normalise")


@dataclass
class PhotoFolder:
    """What :func:`load_photo_folder` made: ``targets`` (one per registered photo, in the
    photos' order), ``records`` (their undistorted cameras in the normalised world),
    ``transform`` (original world -> normalised world), ``unregistered`` (photos without a
    camera), ``warnings`` (masks that look wrong), ``timings`` (seconds per stage),
    ``masks_from`` (``"folder"``, ``"photo set"``: the multi-view masks, or ``"each photo"``:
    single-image automatic masks)."""

    targets: list[TargetView]
    records: list[CameraRecord]
    transform: SceneTransform
    unregistered: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    masks_from: str = "folder"


def read_cameras(folder: Path, cameras: str | os.PathLike, *, progress: Progress | None = None,
                 cancel: Callable[[], bool] | None = None, work: Path | None = None,
                 with_points: bool = False):
    """The photos' cameras and the photos left without one (see the module docstring); with
    ``with_points`` also the sparse 3-D points [N,3] in the cameras' world (structure from
    motion's, a COLMAP model's; None for a transforms.json)."""
    from .poses import find_photos

    photos = find_photos(folder)
    if str(cameras) == "auto":
        from .poses import estimate_poses

        with tempfile.TemporaryDirectory(prefix="dibr-poses-") as tmp:
            result = estimate_poses(photos, work or Path(tmp), progress=progress,
                                    cancel=cancel)
        missing = [str(p) for p in result.unregistered]
        if with_points:
            return result.records, missing, np.asarray(result.points, np.float64)
        return result.records, missing
    path = Path(cameras)
    points = None
    if path.is_dir():
        model = read_colmap(path, image_root=folder)
        records, points = model.records, np.asarray(model.points, np.float64)
    elif path.is_file():
        records = read_transforms(path)
    else:
        raise files.LoadError(path, "no COLMAP model folder or transforms.json there")
    found = []
    for r in records:
        p = r.path if r.path is not None else folder / r.image
        if not p.is_file():
            raise files.LoadError(path, f"camera of {r.image!r}: no such photo in {folder}")
        found.append(replace(r, path=p))
    found.sort(key=lambda r: str(r.path))
    have = {p.resolve() for p in (r.path for r in found)}
    missing = [str(p) for p in photos if p.resolve() not in have]
    if with_points:
        return found, missing, points
    return found, missing


def _mask_for(masks: Path, photo_path: Path) -> np.ndarray:
    for p in sorted(masks.glob(photo_path.stem + ".*")):
        rgb, alpha = files.load_image(p)
        m = alpha if alpha is not None else rgb.mean(axis=2)
        return (m > 0.5).astype(np.float32)
    raise files.LoadError(masks, f"no mask for photo {photo_path.name!r} (same name expected)")


def load_photo_folder(folder: str | os.PathLike, cameras: str | os.PathLike = "auto", *,
                      masks: str | os.PathLike | None = None, max_side: int = 512,
                      normalize: bool = True, progress: Progress | None = None,
                      cancel: Callable[[], bool] | None = None, work: Path | None = None,
                      clock: Callable[[], float] | None = None) -> PhotoFolder:
    """Targets from a folder of photos (see the module docstring).

    Args:
        folder: the photos (directly inside it).
        cameras: ``"auto"``, a COLMAP model folder or a transforms.json.
        masks: a folder of masks named like the photos (white = object), or None for the
            automatic masks.
        max_side: the targets' longer side at most (photos are downscaled, intrinsics too).
        normalize: recentre and scale the scene (else the cameras' own world is kept).
        progress: ``progress(stage, done, total)``, stages :data:`STAGES` (and the poses'
            own stages while ``cameras`` is ``"auto"``).
        cancel: polled between photos (and by the poses); True stops with
            :class:`studio.model.poses.Cancelled`.
        clock: a seconds counter for :attr:`PhotoFolder.timings` (None: no timings).
    Raises:
        :class:`files.LoadError` or ``ValueError`` naming the file and the problem.
    """
    from .poses import Cancelled

    folder = Path(folder)
    if not folder.is_dir():
        raise files.LoadError(folder, "not a folder")
    report = progress or (lambda stage, done, total: None)
    timings: dict[str, float] = {}
    tick = clock() if clock else 0.0

    def lap(stage: str) -> None:
        nonlocal tick
        if clock:
            now = clock()
            timings[stage] = now - tick
            tick = now
        if cancel is not None and cancel():
            raise Cancelled()

    report("cameras", 0, 1)
    records, unregistered, points = read_cameras(folder, cameras, progress=progress,
                                                 cancel=cancel, work=work, with_points=True)
    if len(records) < 2:
        raise files.LoadError(folder, f"{len(records)} photo(s) with a camera; a fit from "
                              "photos needs at least 2")
    report("cameras", 1, 1)
    lap("cameras")
    # masks from a folder, or from each photo alone when there are no sparse points (a
    # transforms.json); else from the photo set after undistortion (multiview_masks)
    multiview = masks is None and points is not None and len(points) > 0
    mask_seconds = 0.0
    und, und_masks, und_records = [], [], []
    for k, r in enumerate(records):
        rgb, _alpha = files.load_image(r.path)
        if rgb.shape[:2] != (r.height, r.width):
            raise files.LoadError(r.path, f"the photo is {rgb.shape[1]} x {rgb.shape[0]}, its "
                                  f"camera says {r.width} x {r.height}")
        m = None
        if not multiview:
            t_mask = clock() if clock else 0.0
            m = photo.auto_mask(rgb) if masks is None else _mask_for(Path(masks), r.path)
            mask_seconds += (clock() - t_mask) if clock else 0.0
        s = min(1.0, max_side / max(r.width, r.height))
        size = (max(2, round(r.width * s)), max(2, round(r.height * s)))
        img, msk, _valid, rec = r.undistort(rgb, m, keep="valid", size=size)
        und.append(np.clip(np.asarray(img, np.float32), 0.0, 1.0))
        und_masks.append(None if msk is None else np.asarray(msk, np.float32))
        und_records.append(rec)
        report("undistort", k + 1, len(records))
        if cancel is not None and cancel():
            raise Cancelled()
    lap("undistort")
    warnings = []
    masks_from = "folder" if masks is not None else "each photo"
    if multiview:
        try:
            und_masks = multiview_masks(und, und_records, points, progress=progress,
                                        cancel=cancel)
            masks_from = "photo set"
        except ValueError as e:
            warnings.append(f"no object found from the photo set ({e}); each photo's mask "
                            "is found from that photo alone")
            und_masks = [photo.auto_mask(img) for img in und]
    if clock:
        timings["undistort"] -= mask_seconds
        tick -= mask_seconds
    lap("masks")
    for r, m in zip(records, und_masks, strict=True):
        w = photo.mask_warning(m, r.path.name)
        if w:
            warnings.append(w)
    transform = SceneTransform.identity()
    if normalize:
        report("normalise", 0, 1)
        transform = normalize_scene(und_records, [m > 0.5 for m in und_masks])
        und_records = transform.apply_to_records(und_records)
        report("normalise", 1, 1)
    lap("normalise")
    # Photos of one camera (one lens as imported or estimated) share a focal length in
    # refinement: a group per distinct original camera.
    lenses: dict[tuple, int] = {}
    targets = []
    for r0, r, img, m in zip(records, und_records, und, und_masks, strict=True):
        fx, fy, cx, cy = r.intrinsics
        group = lenses.setdefault((r0.model, tuple(r0.params), r0.width, r0.height), len(lenses))
        targets.append(TargetView.from_camera(img, m, r.R, r.t, fx, fy, cx, cy,
                                              name=Path(r.image).name, camera_group=group))
    return PhotoFolder(targets, und_records, transform, unregistered, warnings, timings,
                       masks_from)


def fitted_records(records: list[CameraRecord], fitted, transform: SceneTransform | None = None
                   ) -> list[CameraRecord]:
    """``records`` with the fit's cameras (:meth:`Fitter.fitted_cameras`: R, t, intrinsics in
    pixels of the targets' images, which may be smaller than the records' size), as PINHOLE
    cameras of the records' size; with ``transform`` (original -> normalised) mapped back to
    the original world."""
    out = []
    for r, (R, t, (fx, fy, cx, cy)) in zip(records, fitted, strict=True):
        rec = replace(r, model="PINHOLE", params=(fx, fy, cx, cy), R=np.array(R), t=np.array(t))
        out.append(rec)
    if transform is not None:
        out = transform.inverse().apply_to_records(out)
    return out


def write_fitted_transforms(path: str | os.PathLike, records: list[CameraRecord], fitted,
                            targets: list[TargetView],
                            transform: SceneTransform | None = None,
                            normalization: SceneTransform | None = None) -> Path:
    """Write the fitted cameras as a transforms.json at ``path`` (images named as the
    records name them; intrinsics in pixels of the undistorted photos the records describe).
    In the normalised world (``transform`` None) the file keeps ``normalization``, the
    transform from the cameras' own world to it, under the key ``"dibr_studio_normalization"``
    (as ``dibr-studio cameras --normalize`` writes it); with ``transform`` the cameras are
    written in their own world."""
    scaled = []
    for r, (R, t, intr), tv in zip(records, fitted, targets, strict=True):
        h, w = tv.image.shape[:2]
        sx, sy = r.width / w, r.height / h
        fx, fy, cx, cy = intr
        scaled.append((R, t, (fx * sx, fy * sy, cx * sx, cy * sy)))
    recs = fitted_records(records, scaled, transform)
    for r in recs:
        if not all(math.isfinite(v) for v in r.params):
            raise ValueError(f"camera of {r.image!r} is not finite")
    extra = None
    if transform is None and normalization is not None:
        extra = {"dibr_studio_normalization": normalization.to_dict()}
    write_transforms(path, recs, extra)
    return Path(path)
