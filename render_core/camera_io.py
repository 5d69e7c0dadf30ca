"""Importing and exporting real cameras: COLMAP sparse models and NeRF/instant-ngp transforms.json.

Every axis and pixel convention is converted here and nowhere else:

- :class:`CameraRecord` holds one photo's camera in the project's terms: world-to-camera
  ``R`` [3,3] and ``t`` [3] (float64 numpy) in **OpenGL camera axes** (the camera looks down
  -Z, +Y up), the COLMAP camera model with its parameters in pixels ((0, 0) is the top-left
  corner of the image, the first pixel's centre is (0.5, 0.5)), and the image size.
- COLMAP stores world-to-camera in OpenCV axes (+X right, +Y down, +Z forward):
  ``R_gl = diag(1,-1,-1) R_cv``, ``t_gl = diag(1,-1,-1) t_cv``, ``R_cv`` from the unit
  quaternion ``qw qx qy qz``.
- transforms.json stores camera-to-world 4x4 ``transform_matrix`` in OpenGL axes:
  ``R = C[:3,:3]ᵀ``, ``t = -R C[:3,3]``; intrinsics ``fl_x fl_y cx cy`` (or ``camera_angle_x``
  / ``camera_angle_y``, radians: ``fl = W / (2 tan(angle/2))``), ``w h``, distortion
  ``k1 k2 k3 p1 p2``, each global or overridden per frame.

World coordinates are kept as they are (a COLMAP world is often +Y down; re-orienting the scene
is a separate step). Image paths must stay inside their folder: an absolute or ``../`` name is
refused. Files that cannot be used raise :class:`CameraFileError` naming the file, the line,
frame or byte, and the problem.
"""

from __future__ import annotations

import json
import math
import os
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from . import _colmap
from ._colmap import CameraFileError, ColmapCamera, ColmapImage, ColmapModel
from .camera import Camera
from .distortion import Intrinsics, has_distortion, split_params, undistort_image
from .io_utils import atomic_write_text

__all__ = [
    "CameraFileError", "CameraRecord", "ColmapModel", "SparseModel", "cameras_from_records",
    "read_colmap", "read_transforms", "records_from_cameras", "write_colmap_binary",
    "write_colmap_text", "write_transforms",
]

_FLIP = np.array([1.0, -1.0, -1.0])  # OpenCV camera axes <-> OpenGL camera axes
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG", ".tif", ".tiff", ".webp")


@dataclass
class CameraRecord:
    """One imported (or to-be-exported) photo camera.

    ``image``: the image name as written in the file; ``path``: the resolved image file
    (inside the allowed folder) or None when it was not found or not looked for.
    ``R`` [3,3], ``t`` [3] float64: world-to-camera, OpenGL camera axes. ``model`` and
    ``params``: a COLMAP camera model (see :mod:`render_core.distortion`), pixels of a
    ``width`` x ``height`` image. ``image_id``/``camera_id``: COLMAP ids when known.
    ``mask``/``mask_path``: a transforms.json frame's ``mask_path`` (nerfstudio), as written
    and resolved (None when absent or not found).
    """

    image: str
    width: int
    height: int
    model: str
    params: tuple[float, ...]
    R: np.ndarray
    t: np.ndarray
    path: Path | None = None
    image_id: int | None = None
    camera_id: int | None = None
    mask: str | None = None
    mask_path: Path | None = None

    @property
    def intrinsics(self) -> Intrinsics:
        """fx, fy, cx, cy in pixels (the pinhole part of the model)."""
        return split_params(self.model, self.params)[0]

    @property
    def distorted(self) -> bool:
        """Whether the model has non-zero distortion coefficients."""
        return has_distortion(self.model, self.params)

    @property
    def center(self) -> np.ndarray:
        """Camera centre in world coordinates [3]."""
        return -self.R.T @ self.t

    def camera_to_world(self) -> np.ndarray:
        """The 4x4 camera-to-world matrix in OpenGL axes (transforms.json's)."""
        c2w = np.eye(4)
        c2w[:3, :3] = self.R.T
        c2w[:3, 3] = self.center
        return c2w

    def to_camera(self, near: float = 0.01, far: float = 100.0, dtype=torch.float32,
                  device=None, ignore_distortion: bool = False) -> Camera:
        """A one-camera :class:`~render_core.camera.Camera` (its pinhole; see
        :meth:`Camera.from_intrinsics`). A distorted model raises ValueError (undistort the
        photo first with :meth:`undistort`) unless ``ignore_distortion``."""
        if self.distorted and not ignore_distortion:
            raise ValueError(f"camera of {self.image!r} has lens distortion ({self.model}); "
                             "undistort the photo first (CameraRecord.undistort)")
        return cameras_from_records([self], near, far, dtype, device, ignore_distortion=True)

    def undistort(self, image, mask=None, keep: str = "valid",
                  size: tuple[int, int] | None = None, mask_mode: str = "threshold"):
        """Undistort this record's photo (and mask); returns ``(image, mask, valid, record)``
        with ``record`` the undistorted PINHOLE camera of the output image. See
        :func:`render_core.distortion.undistort_image` for the arguments."""
        shape = tuple(image.shape[:2])
        if shape != (self.height, self.width):
            raise ValueError(f"image of {self.image!r} is {shape[1]} x {shape[0]}, its camera "
                             f"says {self.width} x {self.height}")
        res = undistort_image(image, self.model, self.params, mask=mask, keep=keep, size=size,
                              mask_mode=mask_mode)
        h, w = res.valid.shape
        rec = replace(self, width=w, height=h, model="PINHOLE", params=tuple(res.intrinsics),
                      R=self.R.copy(), t=self.t.copy())
        return res.image, res.mask, res.valid, rec


def cameras_from_records(records: Sequence[CameraRecord], near: float = 0.01,
                         far: float = 100.0, dtype=torch.float32, device=None,
                         ignore_distortion: bool = False) -> Camera:
    """A batch of B cameras, one per record (same order). Raises ValueError for a distorted
    record unless ``ignore_distortion`` (then only its pinhole part is used)."""
    if not records:
        raise ValueError("no camera records")
    for r in records:
        if r.distorted and not ignore_distortion:
            raise ValueError(f"camera of {r.image!r} has lens distortion ({r.model}); "
                             "undistort the photo first (CameraRecord.undistort)")
    k = np.array([tuple(r.intrinsics) for r in records], dtype=np.float64)

    def tt(a):
        return torch.as_tensor(np.asarray(a, dtype=np.float64)).to(dtype=dtype, device=device)

    return Camera.from_intrinsics(
        tt([r.R for r in records]), tt([r.t for r in records]), tt(k[:, 0]), tt(k[:, 1]),
        tt(k[:, 2]), tt(k[:, 3]), tt([r.width for r in records]),
        tt([r.height for r in records]), near=near, far=far)


def records_from_cameras(camera: Camera, width: int, height: int,
                         images: Sequence[str]) -> list[CameraRecord]:
    """PINHOLE records of a (fitted) camera batch rendered at ``width`` x ``height``, one per
    image name, ready for :func:`write_transforms` or :func:`write_colmap_text`."""
    if len(images) != len(camera):
        raise ValueError(f"{len(images)} image names for {len(camera)} cameras")
    fx, fy, cx, cy = (v.detach().double().cpu().numpy() for v in
                      camera.intrinsics(width, height))
    r, t = (v.detach().double().cpu().numpy() for v in camera.world_to_camera())
    return [CameraRecord(str(name), int(width), int(height), "PINHOLE",
                         (float(fx[i]), float(fy[i]), float(cx[i]), float(cy[i])),
                         r[i].copy(), t[i].copy()) for i, name in enumerate(images)]


# --------------------------------------------------------------------------- paths


def _inside(root: Path, name: str, file: Path, where: str) -> Path:
    """``root / name``, refusing names that are absolute or leave ``root``."""
    clean = name.replace("\\", "/")
    if PurePosixPath(clean).is_absolute() or (len(clean) > 1 and clean[1] == ":"):
        raise CameraFileError(file, where, f"image path {name!r} is absolute; refused "
                              "(paths must stay inside the folder)")
    p = root / clean
    if not p.resolve().is_relative_to(root.resolve()):
        raise CameraFileError(file, where, f"image path {name!r} leaves the folder; refused")
    return p


def _resolve_image(root: Path, name: str, file: Path, where: str) -> Path | None:
    """The image file named ``name`` (with or without its extension) inside ``root``."""
    p = _inside(root, name, file, where)
    if p.is_file():
        return p
    for suf in _IMAGE_SUFFIXES:
        q = p.with_name(p.name + suf)
        if q.is_file() and q.resolve().is_relative_to(root.resolve()):
            return q
    return None


# --------------------------------------------------------------------------- COLMAP


@dataclass
class SparseModel:
    """A COLMAP model read by :func:`read_colmap`: ``records`` (one per image, in the file's
    order), ``points`` [N,3] float64 world points, ``colors`` [N,3] uint8, and ``raw``, the
    exact file content (for lossless re-export)."""

    records: list[CameraRecord]
    points: np.ndarray
    colors: np.ndarray
    raw: ColmapModel = field(repr=False)
    folder: Path | None = None


def read_colmap(folder: str | os.PathLike, image_root: str | os.PathLike | None = None
                ) -> SparseModel:
    """Read a COLMAP sparse model (binary ``.bin`` preferred over text ``.txt``) from
    ``folder``, its ``sparse/0`` or ``sparse`` subfolder.

    Supported camera models: SIMPLE_PINHOLE, PINHOLE, SIMPLE_RADIAL, RADIAL, OPENCV,
    FULL_OPENCV. With ``image_root`` each record's ``path`` is its image inside that folder
    (None when missing). Image names that are absolute or leave the folder are refused.
    Raises :class:`CameraFileError`.
    """
    raw, where = _colmap.read_model(folder)
    root = None if image_root is None else Path(image_root)
    ifile = where / ("images.bin" if (where / "images.bin").is_file() else "images.txt")
    records = []
    for im in raw.images.values():
        loc = f"image {im.id} ({im.name!r})"
        p = _inside(root or where, im.name, ifile, loc)
        cam = raw.cameras[im.camera_id]
        r_cv = _colmap.quat_to_matrix(im.qvec)
        records.append(CameraRecord(
            im.name, cam.width, cam.height, cam.model, tuple(cam.params),
            r_cv * _FLIP[:, None], np.asarray(im.tvec, dtype=np.float64) * _FLIP,
            p if root is not None and p.is_file() else None, im.id, im.camera_id))
    pts = list(raw.points3D.values())
    xyz = np.array([p.xyz for p in pts], dtype=np.float64).reshape(-1, 3)
    rgb = np.array([p.rgb for p in pts], dtype=np.uint8).reshape(-1, 3)
    return SparseModel(records, xyz, rgb, raw, where)


def _to_colmap(model: SparseModel | Sequence[CameraRecord]) -> ColmapModel:
    if isinstance(model, SparseModel):
        return model.raw
    out = ColmapModel()
    keys: dict[tuple, int] = {}
    for i, r in enumerate(model):
        split_params(r.model, r.params)  # validates the model
        key = (r.model, int(r.width), int(r.height), tuple(float(v) for v in r.params))
        cid = r.camera_id if r.camera_id is not None else keys.get(key)
        if cid is None:
            cid = max([0, *out.cameras]) + 1
        if cid not in out.cameras:
            out.cameras[cid] = ColmapCamera(cid, *key)
            keys.setdefault(key, cid)
        elif (out.cameras[cid].model, out.cameras[cid].width, out.cameras[cid].height,
              out.cameras[cid].params) != key:
            raise ValueError(f"records share camera id {cid} but differ in intrinsics")
        iid = r.image_id if r.image_id is not None else i + 1
        if iid in out.images:
            raise ValueError(f"image id {iid} appears twice")
        out.images[iid] = ColmapImage(iid, _colmap.matrix_to_quat(np.asarray(r.R) * _FLIP[:, None]),
                                      tuple(float(v) for v in np.asarray(r.t) * _FLIP), cid,
                                      r.image)
    return out


def write_colmap_text(folder: str | os.PathLike,
                      model: SparseModel | Sequence[CameraRecord]) -> None:
    """Write ``cameras.txt``, ``images.txt`` and ``points3D.txt`` into ``folder`` (created if
    missing; each file written atomically). A :class:`SparseModel` is written exactly as read
    (points and tracks included); records get cameras shared by identical intrinsics and no
    points."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    _colmap.write_text(folder, _to_colmap(model))


def write_colmap_binary(folder: str | os.PathLike,
                        model: SparseModel | Sequence[CameraRecord]) -> None:
    """As :func:`write_colmap_text`, in COLMAP's binary format (``.bin``)."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    _colmap.write_binary(folder, _to_colmap(model))


# --------------------------------------------------------------------------- transforms.json

_NUM_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h", "camera_angle_x", "camera_angle_y",
             "k1", "k2", "k3", "k4", "p1", "p2")
_MAX_JSON = 512 * 2**20


def _num(c: dict, key: str, file: Path, where: str) -> float | None:
    v = c.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise CameraFileError(file, where, f"{key} must be a finite number, got {v!r}")
    return float(v)


def _image_size(p: Path | None, file: Path, where: str) -> tuple[int, int]:
    if p is None:
        raise CameraFileError(file, where, "no w/h given and the image file was not found")
    from PIL import Image

    try:
        with Image.open(p) as im:  # reads the header only
            return im.size
    except Exception as exc:
        raise CameraFileError(file, where, f"no w/h given and {p.name} cannot be read as "
                              f"an image ({type(exc).__name__})") from None


def _frame_record(c: dict, fr: dict, root: Path, file: Path, where: str) -> CameraRecord:
    name = fr.get("file_path")
    if not isinstance(name, str) or not name.strip():
        raise CameraFileError(file, where, "file_path must be a non-empty string")
    m = fr.get("transform_matrix")
    try:
        c2w = np.array(m, dtype=np.float64)
    except (TypeError, ValueError):
        c2w = np.zeros(0)
    if c2w.shape not in ((4, 4), (3, 4)) or not np.isfinite(c2w).all():
        raise CameraFileError(file, where, "transform_matrix must be a 4x4 (or 3x4) matrix of "
                              "finite numbers")
    rot = c2w[:3, :3]
    if np.abs(rot.T @ rot - np.eye(3)).max() > 1e-3 or np.linalg.det(rot) <= 0:
        raise CameraFileError(file, where, "the rotation part of transform_matrix is not a "
                              "rotation (scaled, sheared or mirrored)")
    if c.get("is_fisheye") or "FISHEYE" in str(c.get("camera_model", "")).upper():
        raise CameraFileError(file, where, "fisheye cameras are not supported")
    k = {key: _num(c, key, file, where) for key in _NUM_KEYS}
    if k["k4"]:
        raise CameraFileError(file, where, "k4 is not supported (OPENCV models use k1 k2 k3 "
                              "p1 p2)")
    path = _resolve_image(root, name, file, where)
    mask = fr.get("mask_path")
    if mask is not None and (not isinstance(mask, str) or not mask.strip()):
        raise CameraFileError(file, where, "mask_path must be a non-empty string")
    mask_file = None if mask is None else _resolve_image(root, mask, file, where)
    w, h = k["w"], k["h"]
    if w is None or h is None:
        w, h = _image_size(path, file, where)
    if w != int(w) or h != int(h) or w <= 0 or h <= 0:
        raise CameraFileError(file, where, f"image size w={w}, h={h} must be positive integers")
    w, h = int(w), int(h)
    fx, fy = k["fl_x"], k["fl_y"]
    for key in ("camera_angle_x", "camera_angle_y"):
        a = k[key]
        if a is not None and not 0 < a < math.pi:
            raise CameraFileError(file, where, f"{key} must be in (0, pi) radians, got {a}")
    if fx is None and k["camera_angle_x"] is not None:
        fx = 0.5 * w / math.tan(0.5 * k["camera_angle_x"])
    if fy is None and k["camera_angle_y"] is not None:
        fy = 0.5 * h / math.tan(0.5 * k["camera_angle_y"])
    fx, fy = (fx if fx is not None else fy), (fy if fy is not None else fx)
    if fx is None or fx <= 0 or fy <= 0:
        raise CameraFileError(file, where, "no positive focal length (fl_x/fl_y or "
                              "camera_angle_x/camera_angle_y)")
    cx = k["cx"] if k["cx"] is not None else w / 2
    cy = k["cy"] if k["cy"] is not None else h / 2
    d = [k[key] or 0.0 for key in ("k1", "k2", "p1", "p2", "k3")]
    if d[4]:
        model, params = "FULL_OPENCV", (fx, fy, cx, cy, *d[:4], d[4], 0.0, 0.0, 0.0)
    elif any(d):
        model, params = "OPENCV", (fx, fy, cx, cy, *d[:4])
    else:
        model, params = "PINHOLE", (fx, fy, cx, cy)
    r = rot.T.copy()
    return CameraRecord(name, w, h, model, tuple(float(v) for v in params), r, -r @ c2w[:3, 3],
                        path, mask=mask, mask_path=mask_file)


def read_transforms(path: str | os.PathLike) -> list[CameraRecord]:
    """Read a NeRF / instant-ngp / nerfstudio ``transforms.json``: one record per frame.

    Intrinsics (``fl_x fl_y cx cy w h``, ``camera_angle_x``/``camera_angle_y`` in radians,
    distortion ``k1 k2 k3 p1 p2``) may be global or set per frame (a frame's own keys win);
    missing ``cx``/``cy`` mean the image centre, missing ``w``/``h`` are read from the image
    header. ``file_path`` (and a frame's ``mask_path``) is relative to the file's folder, with
    or without its extension; the record's ``path`` is the image found (None if missing). Raises
    :class:`CameraFileError` naming the file and the line (JSON syntax) or frame.
    """
    file = Path(path)
    try:
        if file.stat().st_size > _MAX_JSON:
            raise CameraFileError(file, None, "file is too large for a transforms.json")
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CameraFileError(file, None, "not a UTF-8 text file") from None
    except OSError as exc:
        raise CameraFileError(file, None, f"cannot read: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CameraFileError(file, f"line {exc.lineno}", f"invalid JSON: {exc.msg}") from None
    except RecursionError:
        raise CameraFileError(file, None, "invalid JSON: nested too deeply") from None
    if not isinstance(data, dict) or not isinstance(data.get("frames"), list):
        raise CameraFileError(file, None, "expected an object with a 'frames' list")
    glob = {k: v for k, v in data.items() if k != "frames"}
    records = []
    for i, fr in enumerate(data["frames"]):
        where = f"frame {i}"
        if not isinstance(fr, dict):
            raise CameraFileError(file, where, "a frame must be an object")
        if isinstance(fr.get("file_path"), str):
            where += f" ({fr['file_path']!r})"
        records.append(_frame_record({**glob, **fr}, fr, file.parent, file, where))
    if not records:
        raise CameraFileError(file, None, "no frames")
    return records


def _transforms_keys(r: CameraRecord) -> dict[str, float | int]:
    k, c = split_params(r.model, r.params)
    if c["k4"] or c["k5"] or c["k6"]:
        raise ValueError(f"camera of {r.image!r}: k4..k6 cannot be written to transforms.json")
    out: dict[str, float | int] = {"w": int(r.width), "h": int(r.height), "fl_x": k.fx,
                                   "fl_y": k.fy, "cx": k.cx, "cy": k.cy}
    if any(c.values()):
        out.update(k1=c["k1"], k2=c["k2"], p1=c["p1"], p2=c["p2"])
        if c["k3"]:
            out["k3"] = c["k3"]
    return out


def _relative_name(name: str, folder: Path) -> str:
    """An image name as transforms.json may hold it: relative, inside ``folder``."""
    p = Path(name)
    if p.is_absolute():
        try:
            return p.resolve().relative_to(folder.resolve()).as_posix()
        except ValueError:
            raise ValueError(f"image {name!r} is not inside {folder}: transforms.json paths "
                             "must be relative to its folder (copy the photos next to it)"
                             ) from None
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        raise ValueError(f"image {name!r} leaves the folder of the transforms.json")
    return name


def write_transforms(path: str | os.PathLike, records: Sequence[CameraRecord],
                     extra: dict | None = None) -> None:
    """Write ``records`` as a transforms.json (atomically): camera-to-world matrices in OpenGL
    axes, intrinsics in pixels (global when all frames share them, else per frame),
    ``file_path`` = each record's ``image`` (an absolute one inside the file's folder is made
    relative; others outside it are refused), ``mask_path`` = its ``mask`` when set.
    ``extra``: more top-level keys (e.g. ``aabb_scale``). Floats are written in shortest
    round-trip form."""
    if not records:
        raise ValueError("no camera records to write")
    folder = Path(path).parent
    names = [_relative_name(r.image, folder) for r in records]
    masks = [None if r.mask is None else _relative_name(r.mask, folder) for r in records]
    keys = [_transforms_keys(r) for r in records]
    names_k = list(dict.fromkeys(n for k in keys for n in k))
    shared = {n: keys[0][n] for n in names_k
              if all(n in k and k[n] == keys[0][n] for k in keys)}
    if any("k1" in k for k in keys):
        shared["camera_model"] = "OPENCV"
    frames = []
    for r, k, name, mask in zip(records, keys, names, masks, strict=True):
        fr: dict = {"file_path": name}
        if mask is not None:
            fr["mask_path"] = mask
        fr.update({n: v for n, v in k.items() if n not in shared})
        fr["transform_matrix"] = r.camera_to_world().tolist()
        frames.append(fr)
    data = {**(extra or {}), **shared, "frames": frames}
    # one matrix row per line: each matrix goes in as a unique placeholder string, replaced
    # after dumping (never touching the file names or extra keys)
    token = uuid.uuid4().hex
    matrices = []
    for fr in frames:
        matrices.append(fr["transform_matrix"])
        fr["transform_matrix"] = f"{token}:{len(matrices) - 1}"
    text = json.dumps(data, indent=2)

    def rows(m: re.Match) -> str:
        start = text.rfind("\n", 0, m.start()) + 1
        line = text[start:m.start()]
        indent = len(line) - len(line.lstrip(" "))
        body = ",\n".join(" " * (indent + 2) + json.dumps(row)
                          for row in matrices[int(m.group(1))])
        return "[\n" + body + "\n" + " " * indent + "]"

    text = re.sub(f'"{token}:([0-9]+)"', rows, text)
    atomic_write_text(path, text + "\n")
