"""Camera poses from a folder of photos: structure from motion with pycolmap, on the CPU.

:func:`estimate_poses` runs COLMAP's pipeline through pycolmap: SIFT feature extraction,
exhaustive matching with geometric verification, incremental mapping. It returns one
:class:`~render_core.camera_io.CameraRecord` per registered photo (the project's conventions:
OpenGL camera axes, COLMAP's camera model and parameters in pixels, converted by
:mod:`render_core.camera_io`) and names every photo it could not register.

``progress(stage, done, total)`` is called as the work advances (stages ``"features"``,
``"matching"``, ``"mapping"``), so the CLI can draw a bar and the studio a dialog.
``cancel()`` is polled between stages and between chunks of a stage (a few photos' features,
a few dozen pairs' matches, each photo registered), and handed to pycolmap's cancellation
token about ten times a second (pycolmap 4.2 checks it in few places); when it returns True
the run stops with :class:`Cancelled`.

Nothing here is differentiable; no GUI toolkit is imported.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from render_core.camera_io import CameraRecord, read_colmap

__all__ = ["Cancelled", "PoseError", "PoseResult", "estimate_poses", "find_photos",
           "PHOTO_SUFFIXES", "STAGES"]

PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
STAGES = ("features", "matching", "mapping")
DEFAULT_MAX_SIZE = 1600
"""Photos larger than this (longer side, pixels) are downscaled for feature extraction; the
keypoints, and so the cameras, stay in the photos' own pixels."""

Progress = Callable[[str, int, int], None]


class PoseError(ValueError):
    """Photos that cannot give camera poses; the message names the photo or folder."""


class Cancelled(Exception):  # noqa: N818 (the user's choice, not an error)
    """The run was cancelled by the caller's ``cancel()``."""


@dataclass
class PoseResult:
    """What :func:`estimate_poses` found.

    ``records``: one CameraRecord per registered photo, in the order of the input paths, with
    ``path`` the photo and ``image`` its name relative to the photos' common folder.
    ``unregistered``: the input paths (as given, str) that no camera was found for.
    ``points`` [N,3] float64 and ``colors`` [N,3] uint8: the sparse 3-D points, same world.
    ``model_dir``: the COLMAP binary model written under ``work_dir``.
    """

    records: list[CameraRecord]
    unregistered: list[str]
    points: np.ndarray
    colors: np.ndarray
    model_dir: Path
    timings: dict[str, float] = field(default_factory=dict)


def find_photos(folder: str | os.PathLike) -> list[Path]:
    """The photos directly inside ``folder`` (by suffix, sorted by name). Raises PoseError
    when the folder does not exist or holds no photo."""
    d = Path(folder)
    if not d.is_dir():
        raise PoseError(f"{d}: not a folder")
    photos = sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES
                    and not p.name.startswith("."))
    if not photos:
        raise PoseError(f"{d}: no photos found (looked for {', '.join(PHOTO_SUFFIXES)})")
    return photos


def _check_photos(paths: Sequence[str | os.PathLike]) -> list[Path]:
    from PIL import Image

    if isinstance(paths, str | os.PathLike):
        raise PoseError("image_paths must be a list of photo files (use find_photos for a "
                        "folder)")
    out = [Path(p) for p in paths]
    if not out:
        raise PoseError("no photos given")
    seen = set()
    for p in out:
        if not p.is_file():
            raise PoseError(f"{p}: no such photo")
        key = p.resolve()
        if key in seen:
            raise PoseError(f"{p}: given twice")
        seen.add(key)
        try:
            with Image.open(p) as im:
                im.verify()
            with Image.open(p) as im:
                w, h = im.size
        except Exception as exc:
            raise PoseError(f"{p}: cannot be read as an image ({type(exc).__name__})") from None
        if w < 16 or h < 16:
            raise PoseError(f"{p}: {w} x {h} pixels is too small for feature extraction")
    if len(out) < 2:
        raise PoseError(f"{out[0]}: structure from motion needs at least 2 photos, got 1")
    return out


class _Watcher:
    """Polls ``cancel()`` on a thread and trips pycolmap's cancellation token."""

    def __init__(self, cancel: Callable[[], bool] | None, token) -> None:
        self.cancel, self.token = cancel, token
        self.tripped = False
        self._stop = threading.Event()
        self._thread = None
        if cancel is not None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            if self.check():
                return

    def check(self) -> bool:
        if self.cancel is not None and not self.tripped and self.cancel():
            self.tripped = True
            self.token.cancel()
        return self.tripped

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def _database_rows(db_path: Path, table: str) -> int:
    import sqlite3

    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return int(con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    finally:
        con.close()


def estimate_poses(image_paths: Sequence[str | os.PathLike], work_dir: str | os.PathLike, *,
                   shared_camera: bool = True, camera_model: str = "RADIAL",
                   refine_principal_point: bool | None = None,
                   progress: Progress | None = None, cancel: Callable[[], bool] | None = None,
                   max_size: int = DEFAULT_MAX_SIZE, max_features: int = 8192,
                   seed: int = 0, verbose: bool = False) -> PoseResult:
    """Camera poses and intrinsics of photos by structure from motion (pycolmap, CPU).

    Args:
        image_paths: the photo files (any folders; at least 2). Unreadable files raise.
        work_dir: a folder for COLMAP's database and model (created; an earlier run's
            database and model there are replaced).
        shared_camera: one camera (intrinsics and distortion) for all photos, as for photos
            from one camera and zoom setting (much more accurate then); False gives each photo
            its own camera.
        camera_model: the COLMAP model to estimate (SIMPLE_RADIAL, RADIAL, OPENCV, ...).
        refine_principal_point: refine cx, cy in bundle adjustment; None = only with a shared
            camera (a single photo constrains it poorly).
        progress: ``progress(stage, done, total)``; stages are :data:`STAGES`.
        cancel: polled while running; returning True stops with :class:`Cancelled`.
        max_size: photos are downscaled to this longer side for feature extraction only.
        max_features: at most this many SIFT features per photo.
        seed: the random seed of COLMAP's RANSAC and mapper (runs are repeatable).
        verbose: let COLMAP log its progress to stderr (off: errors only).
    Returns:
        :class:`PoseResult`. The world frame is COLMAP's (arbitrary scale, rotation and
        origin); see :func:`render_core.scene_normalize.normalize_scene`.
    Raises:
        PoseError naming the photo or folder: no photos, unreadable photos, fewer than two
        photos that could be registered. :class:`Cancelled` when cancelled.
    """
    import time

    paths = _check_photos(image_paths)
    try:
        import pycolmap
    except ImportError:
        raise PoseError("camera poses from photos need pycolmap: install the 'photos' extra "
                        "(pip install 'dibr-studio[photos]')") from None
    if int(max_size) < 64:
        raise PoseError(f"max_size must be at least 64 pixels, got {max_size}")
    root = Path(os.path.commonpath([str(p.resolve().parent) for p in paths]))
    names = [p.resolve().relative_to(root).as_posix() for p in paths]
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    db = work / "database.db"
    for stale in (db, work / "database.db-wal", work / "database.db-shm"):
        stale.unlink(missing_ok=True)
    sparse = work / "sparse"
    shutil.rmtree(sparse, ignore_errors=True)
    sparse.mkdir()
    report = progress or (lambda stage, done, total: None)
    token = pycolmap.CancellationToken()
    watch = _Watcher(cancel, token)
    timings: dict[str, float] = {}
    n = len(paths)

    def stop_if_cancelled() -> None:
        if watch.check():
            raise Cancelled("structure from motion cancelled")

    pycolmap.set_random_seed(int(seed))
    old_level = pycolmap.logging.minloglevel
    pycolmap.logging.minloglevel = 0 if verbose else 3
    try:
        # ---- features, in chunks so the progress bar moves; one camera for all when shared
        t0 = time.perf_counter()
        reader = pycolmap.ImageReaderOptions()
        reader.camera_model = camera_model
        extraction = pycolmap.FeatureExtractionOptions()
        extraction.use_gpu = False
        extraction.max_image_size = int(max_size)
        extraction.sift.max_num_features = int(max_features)
        mode = pycolmap.CameraMode.SINGLE if shared_camera else pycolmap.CameraMode.PER_IMAGE
        report("features", 0, n)
        chunk = max(2, n // 6)
        for start in range(0, n, chunk):
            stop_if_cancelled()
            if shared_camera and start > 0:
                reader.existing_camera_id = 1
            pycolmap.extract_features(db, root, names[start:start + chunk], camera_mode=mode,
                                      reader_options=reader, extraction_options=extraction,
                                      device=pycolmap.Device.cpu, cancellation_token=token)
            stop_if_cancelled()
            report("features", min(n, start + chunk), n)
        timings["features"] = time.perf_counter() - t0
        if _database_rows(db, "images") != n:
            raise PoseError(f"{root}: feature extraction read only {_database_rows(db, 'images')}"
                            f" of {n} photos")
        # ---- matching: every pair, in chunks (progress, and a cancel between chunks)
        t0 = time.perf_counter()
        pairs = [(names[i], names[j]) for i in range(n) for j in range(i + 1, n)]
        report("matching", 0, len(pairs))
        matching = pycolmap.FeatureMatchingOptions()
        matching.use_gpu = False
        verification = pycolmap.TwoViewGeometryOptions()
        verification.ransac.random_seed = int(seed)
        pair_file = work / "pairs.txt"
        step = max(20, -(-len(pairs) // 12))
        if any(" " in name for name in names):  # COLMAP's pair lists cannot hold spaces
            step = len(pairs)
        for start in range(0, len(pairs), step):
            stop_if_cancelled()
            chunk_pairs = pairs[start:start + step]
            if step == len(pairs):
                pycolmap.match_exhaustive(db, matching_options=matching,
                                          verification_options=verification,
                                          device=pycolmap.Device.cpu, cancellation_token=token)
            else:
                pair_file.write_text("".join(f"{a} {b}\n" for a, b in chunk_pairs),
                                     encoding="utf-8")
                imported = pycolmap.ImportedPairingOptions()
                imported.match_list_path = str(pair_file)
                pycolmap.match_image_pairs(db, matching_options=matching,
                                           pairing_options=imported,
                                           verification_options=verification,
                                           device=pycolmap.Device.cpu, cancellation_token=token)
            report("matching", start + len(chunk_pairs), len(pairs))
        stop_if_cancelled()
        timings["matching"] = time.perf_counter() - t0
        # ---- mapping
        t0 = time.perf_counter()
        options = pycolmap.IncrementalPipelineOptions()
        options.random_seed = int(seed)
        options.multiple_models = True
        options.min_model_size = 2
        options.ba_refine_principal_point = (shared_camera if refine_principal_point is None
                                             else bool(refine_principal_point))
        registered = [0]
        report("mapping", 0, n)

        def one_more() -> None:
            registered[0] += 1
            report("mapping", min(registered[0], n), n)
            watch.check()

        models = pycolmap.incremental_mapping(db, root, sparse, options=options,
                                              initial_image_pair_callback=lambda: one_more(),
                                              next_image_callback=one_more,
                                              cancellation_token=token)
        stop_if_cancelled()
        timings["mapping"] = time.perf_counter() - t0
    except (Cancelled, PoseError):
        raise
    except Exception as exc:  # pycolmap's own errors (RuntimeError and the like)
        if watch.tripped:
            raise Cancelled("structure from motion cancelled") from None
        raise PoseError(f"{root}: structure from motion failed: {exc}") from None
    finally:
        watch.close()
        pycolmap.logging.minloglevel = old_level
    if not models:
        raise PoseError(f"{root}: no two photos could be matched and registered (too few "
                        "shared features: more overlap and texture are needed)")
    best = max(models.values(), key=lambda r: r.num_reg_images())
    if best.num_reg_images() < 2:
        raise PoseError(f"{root}: fewer than 2 photos could be registered")
    report("mapping", n, n)
    out = work / "model"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    best.write_binary(str(out))
    model = read_colmap(out, image_root=root)
    done = {best.image(i).name for i in best.reg_image_ids()}
    by_name = {r.image: r for r in model.records if r.image in done}
    records, unregistered = [], []
    for p, name in zip(paths, names, strict=True):
        rec = by_name.get(name)
        if rec is None:
            unregistered.append(str(p))
        else:
            rec.path = p
            records.append(rec)
    return PoseResult(records, unregistered, model.points, model.colors, out, timings)
