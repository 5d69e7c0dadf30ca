"""A batch manifest as a CSV file: one row per fit, a spreadsheet's view of the JSON rows. No Qt.

The header names the columns; each is a row field of the JSON manifest (``docs/batch.md``)::

    name,mesh,targets,steps,settings.resolution,lr.vertices
    mug,meshes/mug.obj,"mug/0.png:0,15,3.2,45;mug/1.png:90,15,3.2,45:mug/1_mask.png",300,128,
    lamp,,lamp/,200,96,0.02

(a cell with commas is quoted, as spreadsheets write it)

- ``targets``: ``;``-separated ``IMAGE:AZ,EL,DIST[,FOV][:MASK]`` (degrees), or a folder with a
  ``views.json`` (``{image name: [az, el, dist(, fov)]}``, as in :mod:`studio.batch.layout`);
- ``settings.X``, ``lr.X``, ``weights.X``, ``limits.X``: one column per key of those fields;
- an empty cell leaves the field out (``fit``'s default); ``true``/``false``, numbers and JSON
  lists (``settings.camera_views``: ``[0, 2]``) are read as such, the rest as text.

Row N is the Nth record under the header (line N + 1 of a file without line breaks in cells),
so problems name the row and column as the JSON manifest's do.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from .layout import CAMERAS, LayoutError, _cameras
from .manifest import ROW_FIELDS

SCALAR_COLUMNS = tuple(f for f in ROW_FIELDS if f not in ("settings", "lr", "weights", "limits"))

DICT_COLUMNS = ("settings", "lr", "weights", "limits")
TEXT_COLUMNS = ("name", "mesh", "init", "targets", "optimize", "photos", "cameras", "masks",
                "settings.shading", "settings.backend", "settings.model",
                "settings.shape_preset", "settings.resolution_schedule")
"""Columns read as text whatever they hold (a name "007" stays "007")."""


def _value(column: str, text: str):
    if column in TEXT_COLUMNS:
        return text
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return json.loads(text)
    except ValueError:
        return text  # the row check names the column and what it expected


def _view(text: str):
    parts = text.split(",")
    if len(parts) not in (3, 4):
        return None
    out = []
    for p in parts:  # as JSON reads them: "3" a whole number, "3.0" not (the row's key)
        try:
            out.append(int(p))
        except ValueError:
            try:
                out.append(float(p))
            except ValueError:
                return None
    return out


def _targets(cell: str, folder: Path, bad) -> list[dict]:
    """The targets of a ``targets`` cell (paths relative to the manifest's folder)."""
    cell = cell.strip()
    if ";" not in cell and _find_view(cell) is None:
        where = Path(cell) if Path(cell).is_absolute() else folder / cell
        if where.is_dir():
            if not (where / CAMERAS).is_file():
                bad("targets", f"{cell}: a targets folder needs a {CAMERAS}")
                return []
            try:
                cams = _cameras(where / CAMERAS)
            except LayoutError as e:
                bad("targets", str(e))
                return []
            names = sorted(n for n in cams if (where / n).is_file())
            if not names:
                bad("targets", f"{cell}: no image named in its {CAMERAS} lies in it")
            return [{"image": (Path(cell) / n).as_posix(), "view": cams[n]} for n in names]
    out = []
    for i, item in enumerate(s.strip() for s in cell.split(";")):
        if not item:
            continue
        found = _find_view(item)
        if found is None:
            bad(f"targets[{i + 1}]", f"{item!r}: expected IMAGE:AZ,EL,DIST[,FOV][:MASK] "
                                     "or a folder with a views.json")
            continue
        image, view, mask = found
        out.append({"image": image, "view": view, **({"mask": mask} if mask else {})})
    return out


def _find_view(item: str):
    """``IMAGE:VIEW[:MASK]`` split at its view (paths may hold ':', e.g. a drive letter)."""
    parts = item.split(":")
    for j in range(1, len(parts)):
        view = _view(parts[j])
        if view is not None:
            return ":".join(parts[:j]), view, ":".join(parts[j + 1:])
    return None


def read(path: str | os.PathLike) -> tuple[dict, list[tuple[int, str, str]]]:
    """The manifest document of a CSV file and the problems found reading it (row, column,
    message; row 0: the header or the file). Raises ``OSError``/``UnicodeDecodeError``/
    ``csv.Error`` on a file that cannot be read as CSV."""
    path = Path(path)
    folder = path.resolve().parent
    with open(path, newline="", encoding="utf-8-sig") as fh:
        records = list(csv.reader(fh))
    while records and not any(c.strip() for c in records[-1]):
        records.pop()
    if not records:
        return {"fits": []}, []
    header = [h.strip() for h in records[0]]
    problems: list[tuple[int, str, str]] = []
    for h in header:
        root, dot, key = h.partition(".")
        if not (h in SCALAR_COLUMNS or (dot and root in DICT_COLUMNS and key)):
            problems.append((0, "", f"unknown column {h!r}; columns are "
                                    f"{', '.join(SCALAR_COLUMNS)}, and "
                                    f"{', '.join(c + '.KEY' for c in DICT_COLUMNS)}"))
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        problems.append((0, "", f"column(s) {', '.join(dup)} given twice"))
    if "name" not in header:
        problems.append((0, "", "no name column"))
    if problems:
        return {"fits": []}, problems
    fits = []
    for n, rec in enumerate(records[1:], start=1):
        if len(rec) > len(header):
            problems.append((n, "row", f"{len(rec)} cells, more than the {len(header)} "
                                       "columns"))
        row: dict = {}
        for column, cell in zip(header, rec, strict=False):
            if not cell.strip():
                continue
            if column == "targets":
                row["targets"] = _targets(
                    cell, folder, lambda f, m, n=n: problems.append((n, f, m)))
                continue
            root, dot, key = column.partition(".")
            value = _value(column, cell.strip())
            if dot:
                row.setdefault(root, {})[key] = value
            else:
                row[column] = value
        fits.append(row)
    return {"format": 1, "fits": fits}, problems
