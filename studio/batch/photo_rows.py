"""Photo-folder rows of a batch manifest: ``dibr-studio fit --photos DIR --cameras ... --masks
...`` as one row. No Qt, no Ray.

A row with ``photos`` (a folder of photos) takes ``cameras`` (a COLMAP model folder, a
transforms.json, or ``auto``: structure from motion on the worker; the default), ``masks`` (a
folder of masks named like the photos; default: automatic) and the ``fit --photos`` options
``max_side``, ``texture_steps`` and ``refine_cameras``; it has no ``mesh``, ``targets`` or
``demo``. The files directly inside the photos, masks and COLMAP folders (and the
transforms.json) travel to the worker as the other inputs do, kept where they lie relative to
each other, so a transforms.json's ``file_path`` entries (relative to it) still find the photos.
"""

from __future__ import annotations

import os
from pathlib import Path

PHOTO_FIELDS = ("photos", "cameras", "masks", "max_side", "texture_steps", "refine_cameras")
PREFIX = "photoset"


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def _folder(check, n: int, fld: str, value) -> Path | None:
    if not isinstance(value, str) or not value:
        check.bad(n, fld, "expected a folder path")
        return None
    p = Path(value) if Path(value).is_absolute() else check.folder / value
    if not p.is_dir():
        check.bad(n, fld, f"not a folder: {value}")
        return None
    return p.resolve()


def check_photo_row(check, n: int, s: dict, ship, ship_dir, whole) -> None:
    """Check the photo fields of merged row ``s`` (row ``n``), make their paths absolute and
    ship their files (``ship(path, name)``; ``ship_dir(path, name)`` names a folder in the
    worker's copy); problems go to ``check.bad``."""
    from studio.model.poses import PHOTO_SUFFIXES

    if s.get("photos") is None:
        for k in ("cameras", "masks", "max_side", "texture_steps", "refine_cameras"):
            if s.get(k) is not None:
                check.bad(n, k, "needs photos (a folder of photos)")
        return
    for k in ("demo", "mesh", "targets"):
        if s.get(k):
            check.bad(n, k, "a photos row takes no demo, mesh or targets")
    if s.get("init") not in (None, "hull", "sphere"):
        check.bad(n, "init", "a photos row starts from the visual hull (or init sphere)")
    for key, lo, hi in (("max_side", 32, 4096), ("texture_steps", 0, 10**7)):
        if s.get(key) is not None and not whole(s[key], lo, hi):
            check.bad(n, key, f"expected a whole number in {lo}..{hi}")
    if s.get("refine_cameras") is not None and not isinstance(s["refine_cameras"], bool):
        check.bad(n, "refine_cameras", "expected true or false")
    photos = _folder(check, n, "photos", s["photos"])
    if photos is not None and not any(p.suffix.lower() in PHOTO_SUFFIXES
                                      for p in _files(photos)):
        check.bad(n, "photos", f"{s['photos']}: no photos in it (looked for "
                               f"{', '.join(PHOTO_SUFFIXES)})")
        photos = None
    cams = s.get("cameras", "auto")
    cam_path = None
    if cams != "auto":
        if not isinstance(cams, str) or not cams:
            check.bad(n, "cameras", "expected auto, a COLMAP model folder or a transforms.json")
        else:
            p = Path(cams) if Path(cams).is_absolute() else check.folder / cams
            if p.is_dir() or (p.is_file() and p.suffix.lower() == ".json"):
                cam_path = p.resolve()
            else:
                check.bad(n, "cameras", f"{cams}: not a COLMAP model folder or a .json file")
    masks = _folder(check, n, "masks", s["masks"]) if s.get("masks") is not None else None
    if photos is None or (cams != "auto" and cam_path is None) or (
            s.get("masks") is not None and masks is None):
        return
    places = [photos, masks, cam_path if cam_path is None or cam_path.is_dir()
              else cam_path.parent]
    base = Path(os.path.commonpath([str(p) for p in places if p is not None]))

    def name(p: Path) -> str:
        rel = p.relative_to(base).as_posix()
        return PREFIX if rel == "." else f"{PREFIX}/{rel}"

    def ship_folder(folder: Path) -> str:
        for f in _files(folder):
            ship(f, name(f))
        return ship_dir(folder, name(folder))

    s["photos"] = ship_folder(photos)
    if masks is not None:
        s["masks"] = ship_folder(masks)
    if cam_path is not None:
        if cam_path.is_dir():
            s["cameras"] = ship_folder(cam_path)
        else:
            ship(cam_path, name(cam_path))
            s["cameras"] = str(cam_path)


def photo_argv(s: dict, path) -> list[str]:
    """The ``fit --photos`` arguments of a checked photo row; ``path(p)``: the path to give."""
    if s.get("photos") is None:
        return []
    argv = ["--photos", path(s["photos"])]
    cams = s.get("cameras", "auto")
    argv += ["--cameras", "auto" if cams == "auto" else path(cams)]
    if s.get("masks") is not None:
        argv += ["--masks", path(s["masks"])]
    for key, opt in (("max_side", "--max-side"), ("texture_steps", "--texture-steps")):
        if s.get(key) is not None:
            argv += [opt, str(s[key])]
    if s.get("refine_cameras"):
        argv.append("--refine-cameras")
    return argv
