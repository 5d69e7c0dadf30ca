"""Saved sessions on disk: one zip of JSON + npz + PNG, written atomically. No Qt, no pickle.

Layout of a session file (``.zip``; an unpacked folder with the same members opens too):

- ``session.json``: ``format``, ``version`` (:data:`FORMAT_VERSION`), the mesh name, every
  target's name, orbit camera (a general camera's summary) and where its image and mask are,
  a general pinhole's ``camera`` (``R`` rows, ``t``: world-to-camera in OpenGL axes; ``fx
  fy cx cy`` in pixels of the image; absent for an orbit camera), the settings
  (:meth:`FitConfig.to_dict`), the loss history, and the fit's counters, optimizer learning
  rates and which arrays hold its state.
- ``arrays.npz``: the starting mesh (``mesh.*``), the fit's parameters (``fit.state.*``) and
  Adam moments (``fit.opt.GROUP.I.step|exp_avg|exp_avg_sq``), and the target images or masks
  that 8-bit PNG cannot hold exactly (``target.I.image|mask``, float32). Read with
  ``allow_pickle=False``.
- ``targets/I_image.png``, ``targets/I_mask.png``: targets that came from 8-bit files, stored
  losslessly as PNG.

The zip is written to a temporary file beside the destination and renamed over it: a reader
(or a crash) sees the old file or the new one, never a mix. Reading validates everything
(members, paths, sizes, dtypes, shapes, finiteness; the fit state is restored into a fresh
:class:`Fitter` as the final check) and raises :class:`SessionFileError` naming the file and
the first problem.

Versions: 2 added the general camera and the 6-DoF camera refinement (``fit.state.cam_delta``
[N,7]), and the topology of a fit that remeshes: ``fit.state.base_vertices`` [V,3],
``fit.state.faces`` [F,3] (the mesh the fit's per-vertex parameters belong to, which the
starting mesh ``mesh.*`` no longer is once remeshed), ``fit.state.remesh_ref_length`` [V] and
``fit.remesh_steps`` (the remesher's state); a file without them continues on the starting
mesh's topology. Every older version still opens: a version-1 file's targets are orbit
cameras and its orbit refinement ([N,4]) is converted to the same cameras (the camera group's
Adam moments restart).
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image

import render_core as rc
from render_core.fit import FitConfig, Fitter, TargetView

from .files import LoadError

FORMAT = "dibr-studio session"
FORMAT_VERSION = 2
SESSION_SUFFIX = ".zip"
MANIFEST = "session.json"
ARRAYS = "arrays.npz"
MAX_SESSION_BYTES = 4 << 30
"""Refuse archives whose members unpack to more than this (decompression bombs)."""

_MESH_FIELDS = ("vertices", "faces", "vertex_colors", "uvs", "face_uvs", "texture")
_MOMENTS = ("step", "exp_avg", "exp_avg_sq")
_TARGET_EXTRA = {f.name for f in dataclasses.fields(TargetView)} - {
    "image", "mask", "azimuth", "elevation", "distance", "fov", "name", "pose", "intrinsics"}


class SessionFileError(LoadError):
    """A session file that cannot be opened: one line naming the file and the problem."""


@dataclass
class SessionData:
    """What a session file holds. ``checkpoint`` is a :meth:`Fitter.checkpoint` or None (no
    fit yet); ``fitter`` is a Fitter already restored from it (None without a checkpoint)."""

    mesh: rc.Mesh
    mesh_name: str
    targets: list[TargetView]
    config: FitConfig
    history: list[dict]
    checkpoint: dict | None = None
    fitter: Fitter | None = None


# -- writing -------------------------------------------------------------------------------------


def _exact_uint8(img: np.ndarray) -> np.ndarray | None:
    """The uint8 image whose ``/ 255`` is exactly ``img``, or None (then npz keeps it)."""
    q = np.round(np.asarray(img, np.float32) * 255.0)
    if not np.array_equal(q.astype(np.float32) / 255.0, img):
        return None
    return q.astype(np.uint8)


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _json_number(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def write_session(path: str | os.PathLike, data: SessionData) -> Path:
    """Write ``data`` as a session zip at ``path``, atomically; returns the path.

    Raises ``OSError`` when the file cannot be written (the old file, if any, is intact).
    """
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    members: dict[str, bytes] = {}
    for k in _MESH_FIELDS:
        t = getattr(data.mesh, k)
        if t is not None:
            arrays[f"mesh.{k}"] = t.detach().cpu().numpy()
    targets = []
    for i, t in enumerate(data.targets):
        entry = {"name": t.name, "azimuth": float(t.azimuth), "elevation": float(t.elevation),
                 "distance": float(t.distance), "fov": float(t.fov)}
        if not t.is_orbit:
            R, tt = t.world_to_camera()
            fx, fy, cx, cy = t.pixel_intrinsics()
            entry["camera"] = {"R": R.tolist(), "t": tt.tolist(), "fx": fx, "fy": fy,
                               "cx": cx, "cy": cy}
        for f in dataclasses.fields(t):  # any further plain fields a TargetView may carry
            v = getattr(t, f.name)
            v = v.item() if isinstance(v, np.generic) else v
            if f.name not in entry and f.name not in ("image", "mask", "pose", "intrinsics") and \
                    (v is None or isinstance(v, str | bool | int | float)):
                entry[f.name] = _json_number(v)
        for what, arr in (("image", t.image), ("mask", t.mask)):
            q = _exact_uint8(arr)
            if q is None:
                key = f"target.{i}.{what}"
                arrays[key] = np.asarray(arr, np.float32)
                entry[what] = {"npz": key}
            else:
                name = f"targets/{i:03d}_{what}.png"
                members[name] = _png(q)
                entry[what] = {"png": name}
        targets.append(entry)
    doc = {"format": FORMAT, "version": FORMAT_VERSION, "mesh_name": data.mesh_name,
           "targets": targets, "config": data.config.to_dict(),
           "history": [{k: _json_number(v) for k, v in m.items()} for m in data.history],
           "fit": None}
    if data.checkpoint is not None:
        ck = data.checkpoint
        state = ck["state"]
        fit = {"steps": int(state["steps"]), "rejected": int(state["rejected"]),
               "remesh_steps": int(state.get("remesh_steps", 0)),
               "config": ck["config"], "state": [], "optimizer": {}}
        for k, v in state.items():
            if isinstance(v, torch.Tensor):
                arrays[f"fit.state.{k}"] = v.detach().cpu().numpy()
                fit["state"].append(k)
        for name, g in (ck.get("optimizer") or {}).items():
            has = []
            for j, m in enumerate(g["moments"]):
                has.append(m is not None)
                for k in _MOMENTS if m is not None else ():
                    arrays[f"fit.opt.{name}.{j}.{k}"] = m[k].detach().cpu().numpy()
            fit["optimizer"][name] = {"lr": float(g["lr"]), "moments": has}
        doc["fit"] = fit
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rc.atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as z:
        z.writestr(MANIFEST, json.dumps(doc, indent=1, allow_nan=False),
                   compress_type=zipfile.ZIP_DEFLATED)
        z.writestr(ARRAYS, buf.getvalue())
        for name, blob in members.items():
            z.writestr(name, blob)
    return path


# -- reading -------------------------------------------------------------------------------------


def _safe_member(name: str) -> bool:
    p = PurePosixPath(name)
    return bool(name) and "\\" not in name and ":" not in name and not p.is_absolute() \
        and ".." not in p.parts and "\x00" not in name


class _Archive:
    """The members of a session zip or folder, checked for unsafe paths and sizes."""

    def __init__(self, path: Path):
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        if path.is_dir():
            self._root = path.resolve()
            return
        if not path.is_file():
            raise SessionFileError(path, "file not found")
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as e:
            raise SessionFileError(path, f"not a session file (unreadable zip: {e})") from None
        names, total = set(), 0
        for info in self._zip.infolist():
            if not _safe_member(info.filename):
                self.close()
                raise SessionFileError(path, f"member {info.filename!r} has an unsafe path "
                                             "(absolute or outside the archive); refused")
            if info.filename in names:
                self.close()
                raise SessionFileError(path, f"member {info.filename!r} appears twice")
            names.add(info.filename)
            total += info.file_size
        if total > MAX_SESSION_BYTES:
            self.close()
            raise SessionFileError(path, f"unpacks to {total} bytes, more than the "
                                         f"{MAX_SESSION_BYTES} allowed")

    def read(self, name: str) -> bytes:
        if not isinstance(name, str) or not _safe_member(name):
            raise SessionFileError(self.path, f"member {name!r} has an unsafe path; refused")
        try:
            if self._zip is None:
                p = (self._root / name).resolve()
                if not p.is_relative_to(self._root):
                    raise SessionFileError(self.path, f"member {name!r} leaves the folder")
                if p.stat().st_size > MAX_SESSION_BYTES:
                    raise SessionFileError(self.path, f"member {name!r} is too large")
                return p.read_bytes()
            return self._zip.read(name)
        except (KeyError, FileNotFoundError):
            raise SessionFileError(self.path, f"missing member {name}") from None
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            raise SessionFileError(self.path, f"member {name} is damaged ({e})") from None

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


def _load_npz(arc: _Archive) -> dict[str, np.ndarray]:
    blob = arc.read(ARRAYS)
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as z:
            if sum(i.file_size for i in z.infolist()) > MAX_SESSION_BYTES:
                raise SessionFileError(arc.path, f"{ARRAYS} unpacks to too many bytes")
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            out = {k: npz[k] for k in npz.files}
    except SessionFileError:
        raise
    except Exception as e:  # numpy raises many types on damaged archives
        raise SessionFileError(arc.path, f"{ARRAYS} is damaged ({type(e).__name__}: {e})"
                               ) from None
    for k, a in out.items():
        if a.dtype.kind not in "fiub":
            raise SessionFileError(arc.path, f"array {k} has unsupported dtype {a.dtype}")
    return out


class _Reader:
    def __init__(self, arc: _Archive, arrays: dict[str, np.ndarray]):
        self.arc, self.arrays = arc, arrays

    def fail(self, problem: str):
        raise SessionFileError(self.arc.path, problem)

    def array(self, key: str, kind: str = "f", ndim: int | None = None) -> np.ndarray:
        a = self.arrays.get(key)
        if a is None:
            self.fail(f"missing array {key}")
        if a.dtype.kind not in kind:
            want = "float" if kind == "f" else "integer"
            self.fail(f"array {key} has dtype {a.dtype}, expected {want}")
        if ndim is not None and a.ndim != ndim:
            self.fail(f"array {key} has {a.ndim} dimensions, expected {ndim}")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            self.fail(f"array {key} has non-finite values")
        return a

    def picture(self, ref, what: str, channels: int) -> np.ndarray:
        if not isinstance(ref, dict) or len(ref) != 1:
            self.fail(f"target {what} reference {ref!r} is malformed")
        (kind, name), = ref.items()
        if kind == "npz":
            return self.array(name, "f", 3 if channels == 3 else 2).astype(np.float32)
        if kind != "png":
            self.fail(f"target {what} reference {ref!r} is malformed")
        blob = self.arc.read(name)
        try:
            with Image.open(io.BytesIO(blob)) as im:
                problem = rc.get_limits().image_problem(*im.size)
                if problem:
                    self.fail(f"{name}: {problem}")
                mode = "RGB" if channels == 3 else "L"
                if im.mode != mode:
                    self.fail(f"{name} has mode {im.mode}, expected {mode}")
                return np.asarray(im, dtype=np.float32) / 255.0
        except SessionFileError:
            raise
        except Exception as e:  # PIL raises many types on damaged images
            self.fail(f"{name} is not a readable PNG ({type(e).__name__})")


def _number(r: _Reader, d: dict, key: str, where: str) -> float:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        r.fail(f"{where}: {key} must be a finite number")
    return float(v)


def _general_camera(r: _Reader, cam, i: int) -> dict:
    """The ``pose`` and ``intrinsics`` of target ``i``'s ``camera`` entry (format 2)."""
    where = f"target {i} camera"
    if not isinstance(cam, dict):
        r.fail(f"{where} must be an object")
    try:
        R = np.array(cam.get("R"), dtype=np.float64)
        t = np.array(cam.get("t"), dtype=np.float64)
    except (TypeError, ValueError):
        r.fail(f"{where}: R and t must be numbers")
    if R.shape != (3, 3) or t.shape != (3,) or not (np.isfinite(R).all() and
                                                    np.isfinite(t).all()):
        r.fail(f"{where}: R must be 3x3 and t 3 finite numbers")
    intr = tuple(_number(r, cam, k, where) for k in ("fx", "fy", "cx", "cy"))
    return {"pose": np.concatenate([R, t[:, None]], 1), "intrinsics": intr}


def _history(r: _Reader, items) -> list[dict]:
    if not isinstance(items, list):
        r.fail("history must be a list")
    out = []
    for m in items:
        if not isinstance(m, dict) or not all(isinstance(k, str) for k in m):
            r.fail("history entries must be objects")
        clean = {}
        for k, v in m.items():
            if v is None:
                v = float("nan")
            elif not isinstance(v, bool | int | float | str):
                r.fail(f"history value {k} has an unsupported type")
            clean[k] = v
        out.append(clean)
    return out


def _checkpoint(r: _Reader, fit) -> dict:
    if not isinstance(fit, dict):
        r.fail("fit must be an object")
    state: dict = {k: None for k in Fitter._STATE}
    names = fit.get("state")
    if not isinstance(names, list) or not all(isinstance(k, str) for k in names):
        r.fail("fit.state must be a list of names")
    for k in names:
        if k not in state and k not in Fitter._TOPOLOGY:
            r.fail(f"fit state has unknown member {k!r}")
        integer = k in ("face_uvs", "faces")
        state[k] = torch.from_numpy(np.array(r.array(f"fit.state.{k}", "iu" if integer else "f")))
    for k in ("steps", "rejected", "remesh_steps"):
        if k == "remesh_steps" and k not in fit:  # written before remeshing existed
            continue
        v = fit.get(k)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            r.fail(f"fit.{k} must be an integer >= 0")
        state[k] = v
    opt = {}
    groups = fit.get("optimizer")
    if not isinstance(groups, dict):
        r.fail("fit.optimizer must be an object")
    for name, g in groups.items():
        if not isinstance(g, dict) or not isinstance(g.get("moments"), list):
            r.fail(f"fit.optimizer.{name} is malformed")
        moments = []
        for j, has in enumerate(g["moments"]):
            if not has:
                moments.append(None)
                continue
            moments.append({k: torch.from_numpy(np.array(r.array(f"fit.opt.{name}.{j}.{k}")))
                            for k in _MOMENTS})
        opt[name] = {"lr": _number(r, g, "lr", f"fit.optimizer.{name}"), "moments": moments}
    if not isinstance(fit.get("config"), dict):
        r.fail("fit.config must be an object")
    return {"state": state, "config": fit["config"], "optimizer": opt}


def read_session(path: str | os.PathLike) -> SessionData:
    """Open and fully validate a session zip (or folder). Raises :class:`SessionFileError`."""
    path = Path(path)
    arc = _Archive(path)
    try:
        return _read(arc)
    finally:
        arc.close()


def _read(arc: _Archive) -> SessionData:
    try:
        doc = json.loads(arc.read(MANIFEST).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise SessionFileError(arc.path, f"{MANIFEST} is not valid JSON ({e})") from None
    r = _Reader(arc, {})
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        r.fail("not a dibr-studio session")
    version = doc.get("version")
    if not isinstance(version, int) or version < 1:
        r.fail(f"bad format version {version!r}")
    if version > FORMAT_VERSION:
        r.fail(f"written by a newer dibr-studio (format {version}; this one reads "
               f"{FORMAT_VERSION})")
    r.arrays = _load_npz(arc)
    fields = {}
    for k in _MESH_FIELDS:
        if k in ("vertices", "faces") or f"mesh.{k}" in r.arrays:
            integer = k in ("faces", "face_uvs")
            fields[k] = torch.from_numpy(np.array(r.array(f"mesh.{k}", "iu" if integer else "f")))
    try:
        mesh = rc.Mesh(**fields)
    except rc.MeshError as e:
        r.fail(f"starting mesh: {e.problem}")
    if mesh.num_faces == 0:
        r.fail("starting mesh has no faces")
    items = doc.get("targets")
    if not isinstance(items, list):
        r.fail("targets must be a list")
    targets = []
    for i, t in enumerate(items):
        if not isinstance(t, dict):
            r.fail(f"target {i} must be an object")
        cam = [_number(r, t, k, f"target {i}") for k in ("azimuth", "elevation", "distance",
                                                          "fov")]
        image = r.picture(t.get("image"), "image", 3)
        mask = r.picture(t.get("mask"), "mask", 1)
        extra = {k: v for k, v in t.items() if k in _TARGET_EXTRA
                 and (v is None or isinstance(v, str | bool | int | float))}
        extra["name"] = str(t.get("name", ""))
        if t.get("camera") is not None:
            extra.update(_general_camera(r, t["camera"], i))
        try:
            targets.append(TargetView(image, mask, *cam, **extra))
        except (ValueError, TypeError) as e:
            r.fail(f"target {i}: {e}")
    if targets and any(abs(t.aspect - targets[0].aspect) > 1e-3 for t in targets):
        r.fail("targets differ in aspect")
    try:
        config = FitConfig.from_dict(doc.get("config"))
        config.validate()
    except (TypeError, ValueError, AttributeError) as e:
        r.fail(f"settings: {e}")
    history = _history(r, doc.get("history", []))
    data = SessionData(mesh, str(doc.get("mesh_name", "")), targets, config, history)
    if doc.get("fit") is not None:
        if not targets:
            r.fail("a fit state without targets")
        data.checkpoint = _checkpoint(r, doc["fit"])
        try:
            data.fitter = Fitter(mesh, targets, config)
            data.fitter.restore(data.checkpoint)
            data.fitter.apply_config(config)
        except (ValueError, RuntimeError, TypeError, AttributeError, KeyError) as e:
            r.fail(f"fit state: {e}")
    return data
