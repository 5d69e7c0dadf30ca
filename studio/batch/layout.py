"""A manifest from a folder layout: ``DIR/<item>/*.png`` (or .jpg) and a cameras file. No Qt.

The cameras file, ``views.json`` in each item's folder or once in ``DIR`` for all items, maps
an image's file name to its orbit camera ``[azimuth, elevation, distance(, fov)]`` in degrees::

    {"0.png": [0, 15, 3.2, 45], "1.png": [90, 15, 3.2, 45]}

Images the cameras file does not name are not targets (masks, say, can lie beside them).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..model import files

CAMERAS = "views.json"


class LayoutError(ValueError):
    """The folder does not have the layout; one line naming the folder or file."""


def _cameras(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise LayoutError(f"{path}: not a readable cameras file ({e})") from None
    if not isinstance(doc, dict):
        raise LayoutError(f"{path}: expected {{image name: [az, el, dist(, fov)]}}")
    return doc


def manifest_from_folder(folder: str | os.PathLike, defaults: dict | None = None) -> dict:
    """The manifest document of ``folder`` (paths relative to it, so it is written there),
    one row per item folder with a cameras file, in name order. Raises :class:`LayoutError`."""
    root = Path(folder)
    if not root.is_dir():
        raise LayoutError(f"{root}: not a folder")
    shared = _cameras(root / CAMERAS) if (root / CAMERAS).is_file() else None
    fits = []
    for item in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        cams = _cameras(item / CAMERAS) if (item / CAMERAS).is_file() else shared
        if cams is None:
            continue
        images = sorted(p.name for p in item.iterdir()
                        if p.suffix.lower() in files.IMAGE_SUFFIXES and p.name in cams)
        if not images:
            continue
        fits.append({"name": item.name,
                     "targets": [{"image": f"{item.name}/{n}", "view": cams[n]}
                                 for n in images]})
    if not fits:
        raise LayoutError(f"{root}: no item folder with images named in a {CAMERAS}")
    return {"format": 1, "defaults": dict(defaults or {}), "fits": fits}
