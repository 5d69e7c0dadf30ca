"""``dibr-studio cameras DIR --out transforms.json``: camera poses from a folder of photos.

Runs structure from motion (:func:`studio.model.poses.estimate_poses`) on the photos directly
inside DIR, with a progress bar per stage, names the photos it could not register on stderr,
and writes a transforms.json (camera-to-world matrices in OpenGL axes, intrinsics and lens
distortion in pixels) that :func:`render_core.camera_io.read_transforms` reads. With
``--normalize`` the world is first recentred, scaled and turned +Y up
(:func:`render_core.scene_normalize.normalize_scene`, from the cameras alone, or from the
masks of ``--masks MASKDIR``); the transform from COLMAP's world to the written one is kept
in the file under the key ``"dibr_studio_normalization"``.

Exit status 0 on success, 2 with one ``dibr-studio: error: ...`` line on bad input, 130 when
interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

NORMALIZATION_KEY = "dibr_studio_normalization"

USAGE = ("dibr-studio cameras DIR [--out transforms.json] [--shared-camera | "
         "--no-shared-camera] [--normalize [--masks MASKDIR]] [--work WORKDIR] [--quiet]")


class UsageError(Exception):
    """Bad command-line input: reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="dibr-studio cameras", usage=USAGE,
                description="Camera poses from a folder of photos (structure from motion).")
    p.add_argument("folder", metavar="DIR", help="the folder of photos")
    p.add_argument("--out", type=Path, default=None,
                   help="the transforms.json to write (default DIR/transforms.json); it must "
                        "lie in DIR or a folder above it, since its photo paths are relative")
    p.add_argument("--shared-camera", action=argparse.BooleanOptionalAction, default=True,
                   help="one camera (intrinsics, distortion) for all photos (default: yes)")
    p.add_argument("--camera-model", default="RADIAL",
                   choices=["SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV"],
                   help="the lens model to estimate (default RADIAL)")
    p.add_argument("--normalize", action="store_true",
                   help="recentre and scale the object into the unit sphere, +Y up")
    p.add_argument("--masks", type=Path, default=None,
                   help="with --normalize: a folder of masks named like the photos (same stem, "
                        "any image suffix; white = object)")
    p.add_argument("--max-size", type=int, default=None,
                   help="downscale photos to this longer side for feature extraction")
    p.add_argument("--work", type=Path, default=None,
                   help="keep COLMAP's database and model in this folder (default: a "
                        "temporary folder, removed afterwards)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _load_masks(folder: Path, records) -> list:
    import numpy as np
    from PIL import Image

    from studio.model.poses import PHOTO_SUFFIXES

    if not folder.is_dir():
        raise ValueError(f"{folder}: not a folder")
    by_stem = {p.stem: p for p in sorted(folder.iterdir())
               if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES}
    out = []
    for r in records:
        stem = Path(r.image).stem
        p = by_stem.get(stem)
        if p is None:
            raise ValueError(f"{folder}: no mask for photo {r.image!r} (expected {stem}.png)")
        try:
            with Image.open(p) as im:
                m = np.asarray(im.convert("L"), dtype=np.uint8)
        except Exception as exc:
            raise ValueError(f"{p}: cannot be read as an image ({type(exc).__name__})") from None
        if m.shape != (r.height, r.width):
            raise ValueError(f"{p}: the mask is {m.shape[1]} x {m.shape[0]}, the photo "
                             f"{r.width} x {r.height}")
        out.append(m)
    return out


class _Bars:
    """One tqdm bar per stage, fed by estimate_poses' progress callback."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.stage = None
        self.bar = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        if stage != self.stage:
            self.close()
            self.stage = stage
            unit = "pair" if stage == "matching" else "photo"
            self.bar = tqdm(total=total, desc=stage, unit=unit, disable=self.quiet,
                            file=sys.stderr, leave=True)
        self.bar.total = total
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _run(args) -> int:
    from render_core.camera_io import write_transforms
    from studio.model.poses import DEFAULT_MAX_SIZE, estimate_poses, find_photos

    folder = Path(args.folder)
    photos = find_photos(folder)
    out = args.out if args.out is not None else folder / "transforms.json"
    out_dir = out.resolve().parent
    if not folder.resolve().is_relative_to(out_dir):
        raise ValueError(f"{out}: a transforms.json names its photos relative to its own "
                         f"folder, so it must be written in {folder} or a folder above it")
    if args.masks is not None and not args.normalize:
        raise ValueError("--masks is only used with --normalize")
    if args.max_size is not None and args.max_size < 64:
        raise ValueError(f"--max-size must be at least 64, got {args.max_size}")
    bars = _Bars(args.quiet)
    with tempfile.TemporaryDirectory(prefix="dibr-cameras-") as tmp:
        work = args.work if args.work is not None else Path(tmp)
        try:
            result = estimate_poses(photos, work, shared_camera=args.shared_camera,
                                    camera_model=args.camera_model, progress=bars,
                                    max_size=args.max_size or DEFAULT_MAX_SIZE)
        finally:
            bars.close()
    for p in result.unregistered:
        print(f"dibr-studio: could not register {p} (no camera found for it)", file=sys.stderr)
    records = [replace(r, image=os.path.relpath(r.path.resolve(), out_dir).replace(os.sep, "/"))
               for r in result.records]
    extra = None
    if args.normalize:
        from render_core.scene_normalize import normalize_scene

        masks = None if args.masks is None else _load_masks(args.masks, records)
        transform = normalize_scene(records, masks)
        records = transform.apply_to_records(records)
        extra = {NORMALIZATION_KEY: transform.to_dict()}
    write_transforms(out, records, extra)
    if not args.quiet:
        print(f"{len(records)} of {len(photos)} photos registered; wrote {out}",
              file=sys.stderr)
    return 0


def cameras_main(argv: list[str]) -> int:
    """``dibr-studio cameras ...``; returns the exit status."""
    from studio.model.poses import Cancelled

    try:
        args = _parser().parse_args(argv)
        return _run(args)
    except UsageError as exc:
        print(f"dibr-studio: error: {exc} (usage: {USAGE})", file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:
        print(f"dibr-studio: error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Cancelled):
        print("dibr-studio: cancelled", file=sys.stderr)
        return 130
