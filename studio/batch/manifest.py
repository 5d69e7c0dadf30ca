"""The batch manifest: one row per fit, checked whole before anything runs. No Qt, no Ray.

A manifest is a JSON file (format and example: ``docs/batch.md``; a CSV file is read into the
same rows by :mod:`studio.batch.csv_manifest`)::

    {"defaults": {"steps": 200, "optimize": ["vertices", "colors"]},
     "fits": [{"name": "mug", "mesh": "meshes/mug.obj",
               "targets": [{"image": "mug/0.png", "view": [0, 15, 3.2, 45]}]}]}

Each row says what one ``dibr-studio fit`` command says, and a batch runs exactly that command's
code (:mod:`studio.batch.worker`): :meth:`FitRow.fit_argv` is the command. Relative paths are
relative to the manifest's folder. :func:`load` reports every bad row at once, by row number
(1-based, in ``fits``) and field, in one :class:`ManifestError`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from render_core.fit import GROUPS, LOSS_TERMS, FitConfig
from render_core.fit_config import MODEL_SETTINGS
from render_core.resolution_schedule import format_resolution_schedule, parse_resolution_schedule
from render_core.shape_presets import SHAPE_PRESETS

from ..model import files
from .photo_rows import PHOTO_FIELDS, check_photo_row, photo_argv

FORMAT = 1
ROW_FIELDS = ("name", "demo", "mesh", "init", "subdivisions", "hull_resolution", "hull_faces",
              "targets", "optimize", "lr", "weights", "settings", "steps", "limits",
              *PHOTO_FIELDS)
# FitConfig fields a row may set under "settings" (groups and weights have their own fields);
# the first ones are `fit` options, the rest are applied to the config after loading.
CLI_SETTINGS = {"shading": "--shading", "resolution": "--resolution",
                "texture_size": "--texture-size", "backend": "--backend",
                "large_steps": "--large-steps", "views_per_step": "--views-per-step",
                "model": "--model", "resolution_schedule": "--resolution-schedule",
                "shape_preset": "--shape-preset"}
EXTRA_SETTINGS = ("sigma", "camera_views", "project_texture")
LIMIT_NAMES = ("faces", "vertices", "image_pixels", "image_size", "texture_size")
MAX_INPUT_BYTES = 256 * 2**20
"""Default limit on one fit's input files together: they travel to the worker through Ray's
object store (see docs/batch.md)."""
RESERVED = ("summary.csv", "summary.json", "report.html", "manifest.json")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class ManifestError(ValueError):
    """Bad manifest: ``problems`` lists ``(row, field, message)`` (row 0: the file itself)."""

    def __init__(self, path, problems: list[tuple[int, str, str]]):
        self.path = str(path)
        self.problems = problems
        parts = [(f"row {r} {f}: {m}" if r else m) for r, f, m in problems]
        n = len({r for r, _, _ in problems if r})
        head = f"{Path(path).name}: " + (f"{n} bad row{'s' * (n != 1)}: " if n else "")
        super().__init__(head + "; ".join(parts))


@dataclass
class FitRow:
    """One checked row: ``spec`` is the merged row (defaults applied) with paths made
    absolute; ``inputs`` maps each input file's name in the worker's folder to its path."""

    number: int
    name: str
    spec: dict
    inputs: dict[str, Path] = field(default_factory=dict)
    # the name in the worker's folder of spec paths: {absolute path: shipped name}
    shipped: dict[str, str] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        return int(self.spec.get("steps", 200))

    def input_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.inputs.values())

    def key(self) -> str:
        """The row's content: its settings and the bytes of its inputs (not where they lie),
        so a changed row or a changed file runs again and a moved manifest does not."""
        h = hashlib.sha256()
        spec = json.loads(json.dumps(self.spec))
        h.update(json.dumps(_relabel(spec, self.shipped), sort_keys=True).encode())
        for name in sorted(self.inputs):
            h.update(name.encode() + b"\0")
            with open(self.inputs[name], "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        return h.hexdigest()[:20]

    def fit_argv(self, folder: str | os.PathLike | None = None) -> list[str]:
        """The ``dibr-studio fit`` arguments of this row (without ``--out``); with ``folder``
        the input paths point into it (the worker's copy), else to the files themselves."""
        def path(p: str) -> str:
            return str(Path(folder) / self.shipped[p]) if folder is not None else p

        s = self.spec
        argv: list[str] = []
        if s.get("demo"):
            argv.append("--demo")
        argv += photo_argv(s, path)
        if s.get("mesh"):
            argv += ["--mesh", path(s["mesh"])]
        for key, opt in (("init", "--init"), ("subdivisions", "--subdivisions"),
                         ("hull_resolution", "--hull-resolution"),
                         ("hull_faces", "--hull-faces"), ("steps", "--steps")):
            if s.get(key) is not None:
                argv += [opt, str(s[key])]
        for t in s.get("targets") or []:
            argv += ["--target", path(t["image"]), "--view=" + ",".join(repr(float(v))
                                                                       for v in t["view"])]
            if t.get("mask"):
                argv += ["--mask", path(t["mask"])]
        if s.get("optimize") is not None:
            argv += ["--optimize", ",".join(s["optimize"])]
        argv += [f"--lr={g}={float(v)!r}" for g, v in (s.get("lr") or {}).items()]
        argv += [f"--weight={t}={float(v)!r}" for t, v in (s.get("weights") or {}).items()]
        argv += [f"--limit={n}={int(v)}" for n, v in (s.get("limits") or {}).items()]
        for k, opt in CLI_SETTINGS.items():
            if k in (s.get("settings") or {}):
                v = s["settings"][k]
                if k == "resolution_schedule":  # checked: a list of pairs, or None (off)
                    v = format_resolution_schedule(v) if v else "off"
                v = 0 if v is None else v  # large_steps / views_per_step: 0 = off
                argv.append(f"{opt}={float(v)!r}" if k == "large_steps" else f"{opt}={v}")
        return argv

    def extra_settings(self) -> dict:
        """The FitConfig fields ``fit`` has no option for, applied after loading."""
        return {k: v for k, v in (self.spec.get("settings") or {}).items()
                if k in EXTRA_SETTINGS}


def _relabel(obj, shipped: dict[str, str]):
    if isinstance(obj, dict):
        return {k: _relabel(v, shipped) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_relabel(v, shipped) for v in obj]
    return shipped.get(obj, obj) if isinstance(obj, str) else obj


def _merge(defaults: dict, row: dict) -> dict:
    out = dict(defaults)
    for k, v in row.items():
        if k in ("lr", "weights", "settings", "limits") and isinstance(v, dict) \
                and isinstance(out.get(k), dict):
            out[k] = {**out[k], **v}
        else:
            out[k] = v
    return out


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _whole(v, lo: int, hi: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def sidecars(mesh: Path) -> list[Path]:
    """Files a mesh file names beside itself (an OBJ's MTL and its textures, a glTF's buffers
    and images), which travel with it; the ones missing are left to the mesh reader."""
    out: list[Path] = []
    try:
        if mesh.suffix.lower() == ".obj":
            for line in mesh.read_text(errors="replace").splitlines():
                if line.startswith("mtllib "):
                    mtl = mesh.parent / line.split(None, 1)[1].strip()
                    if mtl.is_file():
                        out.append(mtl)
                        for ml in mtl.read_text(errors="replace").splitlines():
                            ml = ml.strip()
                            if ml.startswith("map_") and len(ml.split()) > 1:
                                tex = ml.split()[-1]
                                # the reader falls back to the name beside the MTL
                                out += [mtl.parent / tex, mtl.parent / Path(tex).name]
        elif mesh.suffix.lower() == ".gltf":
            doc = json.loads(mesh.read_text())
            for item in (doc.get("buffers") or []) + (doc.get("images") or []):
                uri = item.get("uri") if isinstance(item, dict) else None
                if isinstance(uri, str) and not uri.startswith("data:"):
                    out.append(mesh.parent / uri)
    except (OSError, ValueError, AttributeError, TypeError):
        return []  # unreadable: the worker's mesh reader reports it with the file's name
    root = mesh.parent.resolve()
    return list(dict.fromkeys(p for p in out if p.is_file()
                              and p.resolve().is_relative_to(root)))


class _Checker:
    def __init__(self, folder: Path):
        self.folder = folder
        self.problems: list[tuple[int, str, str]] = []

    def bad(self, row: int, fld: str, msg: str) -> None:
        self.problems.append((row, fld, msg))

    def file(self, n: int, fld: str, value, suffixes) -> Path | None:
        if not isinstance(value, str) or not value:
            self.bad(n, fld, "expected a file path")
            return None
        p = Path(value) if Path(value).is_absolute() else self.folder / value
        if not p.is_file():
            self.bad(n, fld, f"file not found: {value}")
            return None
        if p.suffix.lower() not in suffixes:
            self.bad(n, fld, f"{value}: unsupported format {p.suffix or '(none)'}")
            return None
        return p.resolve()

    def row(self, n: int, raw, defaults: dict, max_bytes: int) -> FitRow | None:
        if not isinstance(raw, dict):
            self.bad(n, "row", "expected an object")
            return None
        before = len(self.problems)
        for k in raw:
            if k not in ROW_FIELDS:
                self.bad(n, k, f"unknown field; fields are {', '.join(ROW_FIELDS)}")
        s = _merge(defaults, raw)
        name = s.get("name")
        if not (isinstance(name, str) and _NAME.match(name)):
            self.bad(n, "name", "expected a name of letters, digits, '.', '_', '-' "
                                "(it names the output folder)")
            name = None
        elif name.lower() in RESERVED:
            self.bad(n, "name", f"{name!r} is the name of a file of the batch's folder")
            name = None
        inputs: dict[str, Path] = {}
        shipped: dict[str, str] = {}

        def ship(p: Path, key: str) -> str:
            shipped[str(p)] = key
            inputs[key] = p
            return str(p)

        def ship_dir(p: Path, key: str) -> str:
            shipped[str(p)] = key
            return str(p)

        demo = s.get("demo", False)
        if not isinstance(demo, bool):
            self.bad(n, "demo", "expected true or false")
        init = s.get("init")
        if init is not None and init not in ("sphere", "hull", "mesh"):
            self.bad(n, "init", "expected sphere, hull or mesh")
        if s.get("mesh") is not None:
            p = self.file(n, "mesh", s["mesh"], files.MESH_SUFFIXES)
            if p is not None:
                s["mesh"] = ship(p, f"mesh/{p.name}")
                for extra in sidecars(p):
                    ship(extra.resolve(), "mesh/" + extra.relative_to(p.parent).as_posix())
        elif init == "mesh":
            self.bad(n, "mesh", "init mesh needs a mesh file")
        for key, lo, hi in (("subdivisions", 0, 6), ("hull_resolution", 8, 512),
                            ("hull_faces", 4, 10**7), ("steps", 0, 10**7)):
            if s.get(key) is not None and not _whole(s[key], lo, hi):
                self.bad(n, key, f"expected a whole number in {lo}..{hi}")
        targets = s.get("targets")
        check_photo_row(self, n, s, ship, ship_dir, _whole)
        if s.get("photos") is not None:
            pass  # its own fields (photo_rows)
        elif demo:
            if targets or s.get("mesh") is not None:
                self.bad(n, "demo", "a demo row takes no mesh or targets")
        elif not isinstance(targets, list) or not targets:
            self.bad(n, "targets", "expected a list of {image, view[, mask]} (or demo: true)")
        else:
            s["targets"] = [self.target(n, i, t, ship) for i, t in enumerate(targets)]
        self.groups_weights(n, s)
        if isinstance(s.get("settings"), dict):
            s["settings"] = dict(s["settings"])  # checking normalises it: leave the doc alone
        self.settings(n, s.get("settings"))
        limits = s.get("limits")
        if limits is not None and not (isinstance(limits, dict) and all(
                k in LIMIT_NAMES and _whole(v, 1, 2**62) for k, v in limits.items())):
            self.bad(n, "limits", f"expected {{name: positive whole number}}, name in "
                                  f"{', '.join(LIMIT_NAMES)}")
        if len(self.problems) > before:
            return None
        row = FitRow(n, name, s, inputs, shipped)
        size = row.input_bytes()
        if size > max_bytes:
            self.bad(n, "inputs", f"{size / 2**20:.1f} MiB of input files, over the limit of "
                                  f"{max_bytes / 2**20:.0f} MiB per fit")
            return None
        return row

    def target(self, n: int, i: int, t, ship) -> dict:
        where = f"targets[{i + 1}]"
        if not isinstance(t, dict):
            self.bad(n, where, "expected {image, view[, mask]}")
            return {}
        out = dict(t)
        for k in t:
            if k not in ("image", "view", "mask"):
                self.bad(n, f"{where}.{k}", "unknown field; a target has image, view, mask")
        img = self.file(n, f"{where}.image", t.get("image"), files.IMAGE_SUFFIXES)
        if img is not None:
            out["image"] = ship(img, f"targets/{i + 1}/{img.name}")
        view = t.get("view")
        if not (isinstance(view, list) and len(view) in (3, 4) and all(map(_number, view))):
            self.bad(n, f"{where}.view", "expected [azimuth, elevation, distance(, fov)] "
                                         "in degrees")
        if t.get("mask") is not None:
            m = self.file(n, f"{where}.mask", t["mask"], files.IMAGE_SUFFIXES)
            if m is not None:
                out["mask"] = ship(m, f"masks/{i + 1}/{m.name}")
        return out

    def groups_weights(self, n: int, s: dict) -> None:
        opt = s.get("optimize")
        if isinstance(opt, str):
            opt = s["optimize"] = [g.strip() for g in opt.split(",") if g.strip()]
        if opt is not None and not (isinstance(opt, list) and opt and all(g in GROUPS
                                                                            for g in opt)):
            self.bad(n, "optimize", f"expected a list of groups from {', '.join(GROUPS)}")
        for key, names in (("lr", GROUPS), ("weights", LOSS_TERMS)):
            d = s.get(key)
            if d is None:
                continue
            if not isinstance(d, dict):
                self.bad(n, key, f"expected {{name: number}}, name in {', '.join(names)}")
                continue
            for k, v in d.items():
                if k not in names:
                    self.bad(n, f"{key}.{k}", f"unknown; choose from {', '.join(names)}")
                elif not (_number(v) and v >= 0):
                    self.bad(n, f"{key}.{k}", "expected a finite number >= 0")

    def settings(self, n: int, st) -> None:
        if st is None:
            return
        if not isinstance(st, dict):
            self.bad(n, "settings", "expected {FitConfig field: value}")
            return
        cfg = FitConfig()
        for k, v in st.items():
            if k not in CLI_SETTINGS and k not in EXTRA_SETTINGS:
                self.bad(n, f"settings.{k}", "unknown; settings are "
                         f"{', '.join((*CLI_SETTINGS, *EXTRA_SETTINGS))}")
                continue
            try:
                if k == "shape_preset":  # not a FitConfig field: `fit`'s starting settings
                    if v not in SHAPE_PRESETS:
                        raise ValueError(f"expected one of {', '.join(SHAPE_PRESETS)}")
                    continue
                if k == "model" and v not in MODEL_SETTINGS:
                    raise ValueError(f"expected one of {', '.join(MODEL_SETTINGS)}")
                if k == "resolution_schedule":
                    v = st[k] = _schedule(v)
                setattr(cfg, k, v)
                cfg.validate()
                if k in ("resolution", "texture_size") and not _whole(v, 1, 10**6):
                    raise ValueError(f"{k} must be a whole number")
                if k in ("shading", "backend") and not isinstance(v, str):
                    raise ValueError(f"{k} must be a name")
                if k == "sigma" and not _number(v):
                    raise ValueError("sigma must be a finite number > 0")
                if k == "project_texture" and not isinstance(v, bool):
                    raise ValueError("project_texture must be true or false")
                if k == "backend" and v not in ("auto", "torch", "cpu", "cuda"):
                    raise ValueError("backend must be auto, torch, cpu or cuda")
            except (ValueError, TypeError) as e:
                self.bad(n, f"settings.{k}", str(e))
                if hasattr(FitConfig(), k):
                    setattr(cfg, k, getattr(FitConfig(), k))


def _schedule(v):
    """A resolution schedule as ``[[res, step], ...]`` (or None: off) from the list form or
    the ``fit`` option's text ("64:0,128:100", "off"); raises ValueError."""
    if v is None or v == "off":
        return None
    if isinstance(v, str):
        return [list(p) for p in parse_resolution_schedule(v)]
    if not isinstance(v, (list, tuple)) or not all(isinstance(p, (list, tuple)) and len(p) == 2
                                          and all(_whole(x, 0, 10**9) for x in p) for p in v):
        raise ValueError("resolution_schedule: expected [[resolution, start_step], ...] or "
                         "\"RES:STEP,...\" (e.g. \"64:0,128:100\")")
    parse_resolution_schedule(format_resolution_schedule(v))  # the same checks as `fit`
    return [list(p) for p in v]


def parse(doc, path: str | os.PathLike = "manifest.json",
          max_input_bytes: int = MAX_INPUT_BYTES) -> list[FitRow]:
    """Check a manifest document (already parsed JSON); paths are relative to ``path``'s
    folder. Raises :class:`ManifestError` listing every problem."""
    folder = Path(path).resolve().parent
    if isinstance(doc, list):
        doc = {"fits": doc}
    unknown = [k for k in doc if k not in ("fits", "defaults", "format")] \
        if isinstance(doc, dict) else []
    if unknown:
        raise ManifestError(path, [(0, "", f"unknown key(s) {', '.join(unknown)}; a manifest "
                                           "has fits, defaults, format")])
    if not isinstance(doc, dict) or not isinstance(doc.get("fits"), list):
        raise ManifestError(path, [(0, "", "expected {\"fits\": [rows]} or a list of rows")])
    if doc.get("format", FORMAT) != FORMAT:
        raise ManifestError(path, [(0, "", f"format {doc['format']!r} is not {FORMAT}")])
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, dict) or "name" in defaults:
        raise ManifestError(path, [(0, "", "defaults must be an object of row fields "
                                           "(without name)")])
    if not doc["fits"]:
        raise ManifestError(path, [(0, "", "no fits")])
    check = _Checker(folder)
    rows = [check.row(i + 1, raw, defaults, max_input_bytes)
            for i, raw in enumerate(doc["fits"])]
    seen: dict[str, int] = {}
    for r in rows:
        if r is None:
            continue
        if r.name in seen:
            check.bad(r.number, "name", f"{r.name!r} is also the name of row {seen[r.name]}")
        seen.setdefault(r.name, r.number)
    if check.problems:
        raise ManifestError(path, sorted(check.problems, key=lambda p: p[0]))
    return [r for r in rows if r is not None]


def _root(fld: str) -> str:
    return fld.split("[")[0].split(".")[0]


def _load_csv(p: Path, max_input_bytes: int) -> list[FitRow]:
    from . import csv_manifest

    try:
        doc, problems = csv_manifest.read(p)
    except FileNotFoundError:
        raise ManifestError(p, [(0, "", "file not found")]) from None
    except (OSError, UnicodeDecodeError, csv_manifest.csv.Error) as e:
        raise ManifestError(p, [(0, "", f"not a readable CSV file ({e})")]) from None
    if any(r == 0 for r, _, _ in problems):
        raise ManifestError(p, problems)
    try:
        rows = parse(doc, p, max_input_bytes)
    except ManifestError as e:  # a cell the CSV reader refused is not named twice
        seen = {(r, _root(f)) for r, f, _ in problems}
        problems += [q for q in e.problems if (q[0], _root(q[1])) not in seen]
        raise ManifestError(p, sorted(problems, key=lambda q: q[0])) from None
    if problems:
        raise ManifestError(p, problems)
    return rows


def load(path: str | os.PathLike, max_input_bytes: int = MAX_INPUT_BYTES) -> list[FitRow]:
    """Read and check a manifest, JSON or (``.csv``) CSV (:mod:`studio.batch.csv_manifest`);
    raises :class:`ManifestError` listing every problem."""
    p = Path(path)
    if p.suffix.lower() == ".csv":
        return _load_csv(p, max_input_bytes)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(p, [(0, "", "file not found")]) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ManifestError(p, [(0, "", f"not a readable JSON file ({e})")]) from None
    return parse(doc, p, max_input_bytes)
