"""COLMAP sparse models as stored on disk: text and binary cameras, images and points3D.

This module holds the file formats only, in COLMAP's own terms (OpenCV camera axes, world-to-
camera quaternion ``qw qx qy qz`` and translation, pixels with (0, 0) at the image's top-left
corner). :mod:`render_core.camera_io` converts them to the project's cameras. Binary files are
little-endian: ``cameras.bin`` = uint64 count, then per camera int32 id, int32 model id, uint64
width, uint64 height, float64 params; ``images.bin`` = uint64 count, then per image int32 id,
4 float64 quaternion, 3 float64 translation, int32 camera id, a NUL-terminated name, uint64
point count and per point float64 x, y and int64 point3D id (-1: none); ``points3D.bin`` =
uint64 count, then per point uint64 id, 3 float64 xyz, 3 uint8 rgb, float64 error, uint64 track
length and per element int32 image id, int32 point2D index.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .distortion import MODEL_PARAMS
from .io_utils import atomic_write_bytes, atomic_write_text

# COLMAP's model ids and parameter counts (all of them, so any file can be parsed; the
# supported ones are those of distortion.MODEL_PARAMS).
_MODEL_IDS = {
    0: ("SIMPLE_PINHOLE", 3), 1: ("PINHOLE", 4), 2: ("SIMPLE_RADIAL", 4), 3: ("RADIAL", 5),
    4: ("OPENCV", 8), 5: ("OPENCV_FISHEYE", 8), 6: ("FULL_OPENCV", 12), 7: ("FOV", 5),
    8: ("SIMPLE_RADIAL_FISHEYE", 4), 9: ("RADIAL_FISHEYE", 5), 10: ("THIN_PRISM_FISHEYE", 12),
    11: ("RAD_TAN_THIN_PRISM_FISHEYE", 16),
}
_MODEL_BY_NAME = {name: (mid, n) for mid, (name, n) in _MODEL_IDS.items()}
_P2D = np.dtype([("x", "<f8"), ("y", "<f8"), ("id", "<i8")])
_TRACK = np.dtype([("image", "<i4"), ("idx", "<i4")])


class CameraFileError(ValueError):
    """A camera file that cannot be read: ``str(err)`` is ``"<path>, <where>: <problem>"``
    (``where`` names the line, frame or byte offset); ``err.path``, ``err.where`` and
    ``err.problem`` hold the parts."""

    def __init__(self, path: str | os.PathLike, where: str | None, problem: str) -> None:
        self.path = Path(path)
        self.where = where
        self.problem = problem
        super().__init__(f"{path}, {where}: {problem}" if where else f"{path}: {problem}")


@dataclass
class ColmapCamera:
    id: int
    model: str
    width: int
    height: int
    params: tuple[float, ...]


@dataclass
class ColmapImage:
    """``qvec`` (qw, qx, qy, qz) and ``tvec``: world-to-camera, OpenCV axes. ``xys`` [N,2]
    float64 keypoints, ``point3D_ids`` [N] int64 (-1: none)."""

    id: int
    qvec: tuple[float, float, float, float]
    tvec: tuple[float, float, float]
    camera_id: int
    name: str
    xys: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    point3D_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


@dataclass
class ColmapPoint:
    id: int
    xyz: tuple[float, float, float]
    rgb: tuple[int, int, int]
    error: float
    image_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    point2D_idxs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


@dataclass
class ColmapModel:
    """A sparse model exactly as stored (dicts keep the file's order)."""

    cameras: dict[int, ColmapCamera] = field(default_factory=dict)
    images: dict[int, ColmapImage] = field(default_factory=dict)
    points3D: dict[int, ColmapPoint] = field(default_factory=dict)


def _check_camera(cam: ColmapCamera, path: Path, where: str) -> None:
    if cam.model not in _MODEL_BY_NAME:
        raise CameraFileError(path, where, f"unknown camera model {cam.model!r}")
    if cam.model not in MODEL_PARAMS:
        raise CameraFileError(path, where, f"camera model {cam.model} is not supported "
                              f"(supported: {', '.join(MODEL_PARAMS)})")
    n = _MODEL_BY_NAME[cam.model][1]
    if len(cam.params) != n:
        raise CameraFileError(path, where, f"camera model {cam.model} takes {n} parameters, "
                              f"got {len(cam.params)}")
    if not (0 < cam.width <= 1_000_000 and 0 < cam.height <= 1_000_000):
        raise CameraFileError(path, where, f"bad image size {cam.width} x {cam.height}")
    if not all(math.isfinite(v) for v in cam.params):
        raise CameraFileError(path, where, "camera parameters must be finite")


def _check_image(im: ColmapImage, cameras: dict, path: Path, where: str) -> None:
    if not all(math.isfinite(v) for v in (*im.qvec, *im.tvec)):
        raise CameraFileError(path, where, "pose values must be finite")
    if sum(v * v for v in im.qvec) < 1e-12:
        raise CameraFileError(path, where, "the rotation quaternion is zero")
    if im.camera_id not in cameras:
        raise CameraFileError(path, where, f"camera id {im.camera_id} is not in the cameras file")
    if not im.name:
        raise CameraFileError(path, where, "the image has no name")


def quat_to_matrix(q) -> np.ndarray:
    """Rotation matrix of a quaternion (w, x, y, z), normalized first."""
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def matrix_to_quat(r: np.ndarray) -> tuple[float, float, float, float]:
    """Unit quaternion (w, x, y, z), w >= 0, of a rotation matrix (Shepperd's method)."""
    m = np.asarray(r, dtype=np.float64)
    tr = np.trace(m)
    cand = [tr, m[0, 0], m[1, 1], m[2, 2]]
    i = int(np.argmax(cand))
    if i == 0:
        s = 2 * math.sqrt(1 + tr)
        q = [s / 4, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif i == 1:
        s = 2 * math.sqrt(1 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [(m[2, 1] - m[1, 2]) / s, s / 4, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif i == 2:
        s = 2 * math.sqrt(1 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, s / 4, (m[1, 2] + m[2, 1]) / s]
    else:
        s = 2 * math.sqrt(1 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, s / 4]
    q = np.array(q) / np.linalg.norm(q)
    if q[0] < 0:
        q = -q
    return tuple(float(v) for v in q)


# --------------------------------------------------------------------------- text


def _data_lines(path: Path):
    """(line number, stripped text) of every line; a missing or unreadable file raises."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CameraFileError(path, None, "not a UTF-8 text file") from None
    except OSError as exc:
        raise CameraFileError(path, None, f"cannot read: {exc.strerror or exc}") from None
    return [(i + 1, line.strip()) for i, line in enumerate(text.splitlines())]


def _numbers(tokens, kind, path, where, what):
    try:
        return [kind(t) for t in tokens]
    except ValueError:
        raise CameraFileError(path, where, f"{what}: expected numbers, got "
                              f"{' '.join(tokens)[:80]!r}") from None


def _read_cameras_text(path: Path) -> dict[int, ColmapCamera]:
    out: dict[int, ColmapCamera] = {}
    for n, line in _data_lines(path):
        if not line or line.startswith("#"):
            continue
        where = f"line {n}"
        tok = line.split()
        if len(tok) < 4:
            raise CameraFileError(path, where, "expected CAMERA_ID MODEL WIDTH HEIGHT PARAMS...")
        cid, w, h = _numbers([tok[0], tok[2], tok[3]], int, path, where, "id, width, height")
        params = tuple(_numbers(tok[4:], float, path, where, "camera parameters"))
        cam = ColmapCamera(cid, tok[1].upper(), w, h, params)
        _check_camera(cam, path, where)
        if cid in out:
            raise CameraFileError(path, where, f"camera id {cid} appears twice")
        out[cid] = cam
    return out


def _read_images_text(path: Path, cameras: dict) -> dict[int, ColmapImage]:
    out: dict[int, ColmapImage] = {}
    lines = _data_lines(path)
    i = 0
    while i < len(lines):
        n, line = lines[i]
        i += 1
        if not line or line.startswith("#"):
            continue
        where = f"line {n}"
        tok = line.split(maxsplit=9)
        if len(tok) < 10:
            raise CameraFileError(path, where, "expected IMAGE_ID QW QX QY QZ TX TY TZ "
                                  "CAMERA_ID NAME")
        iid, cid = _numbers([tok[0], tok[8]], int, path, where, "image id, camera id")
        pose = _numbers(tok[1:8], float, path, where, "pose")
        im = ColmapImage(iid, tuple(pose[:4]), tuple(pose[4:]), cid, tok[9])
        _check_image(im, cameras, path, where)
        if iid in out:
            raise CameraFileError(path, where, f"image id {iid} appears twice")
        if i < len(lines):  # the next line, even an empty one, holds the image's points
            n2, pts = lines[i]
            i += 1
            vals = pts.split()
            if len(vals) % 3:
                raise CameraFileError(path, f"line {n2}", "points must come as X Y POINT3D_ID "
                                      f"triples, got {len(vals)} values")
            xy = np.array(_numbers(vals[0::3] + vals[1::3], float, path, f"line {n2}",
                                   "points"), dtype=np.float64).reshape(2, -1).T
            ids = np.array(_numbers(vals[2::3], int, path, f"line {n2}", "point3D ids"),
                           dtype=np.int64)
            im.xys, im.point3D_ids = np.ascontiguousarray(xy), ids
        out[iid] = im
    return out


def _read_points_text(path: Path) -> dict[int, ColmapPoint]:
    out: dict[int, ColmapPoint] = {}
    for n, line in _data_lines(path):
        if not line or line.startswith("#"):
            continue
        where = f"line {n}"
        tok = line.split()
        if len(tok) < 8 or (len(tok) - 8) % 2:
            raise CameraFileError(path, where, "expected POINT3D_ID X Y Z R G B ERROR and "
                                  "(IMAGE_ID POINT2D_IDX) pairs")
        pid = _numbers(tok[:1], int, path, where, "point id")[0]
        xyz = tuple(_numbers(tok[1:4], float, path, where, "position"))
        rgb = tuple(_numbers(tok[4:7], int, path, where, "colour"))
        err = _numbers(tok[7:8], float, path, where, "error")[0]
        track = np.array(_numbers(tok[8:], int, path, where, "track"), dtype=np.int64)
        if not all(0 <= c <= 255 for c in rgb):
            raise CameraFileError(path, where, f"colour {rgb} is not 0..255")
        if pid in out:
            raise CameraFileError(path, where, f"point id {pid} appears twice")
        out[pid] = ColmapPoint(pid, xyz, rgb, err, track[0::2].copy(), track[1::2].copy())
    return out


def _f(v: float) -> str:
    return repr(float(v))


def write_text(folder: str | os.PathLike, model: ColmapModel) -> None:
    """Write ``cameras.txt``, ``images.txt`` and ``points3D.txt`` (atomically, floats in
    shortest round-trip form) into an existing ``folder``."""
    folder = Path(folder)
    cams = ["# Camera list with one line of data per camera:",
            "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]",
            f"# Number of cameras: {len(model.cameras)}"]
    for c in model.cameras.values():
        cams.append(" ".join([str(c.id), c.model, str(c.width), str(c.height),
                              *map(_f, c.params)]))
    ims = ["# Image list with two lines of data per image:",
           "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
           "#   POINTS2D[] as (X, Y, POINT3D_ID)",
           f"# Number of images: {len(model.images)}"]
    for im in model.images.values():
        if "\n" in im.name or im.name != im.name.strip():
            raise ValueError(f"image name {im.name!r} cannot be written to a COLMAP text file")
        ims.append(" ".join([str(im.id), *map(_f, im.qvec), *map(_f, im.tvec),
                             str(im.camera_id), im.name]))
        ims.append(" ".join(f"{_f(x)} {_f(y)} {int(p)}"
                            for (x, y), p in zip(im.xys, im.point3D_ids, strict=True)))
    pts = ["# 3D point list with one line of data per point:",
           "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)",
           f"# Number of points: {len(model.points3D)}"]
    for p in model.points3D.values():
        track = [f"{int(a)} {int(b)}" for a, b in zip(p.image_ids, p.point2D_idxs, strict=True)]
        pts.append(" ".join([str(p.id), *map(_f, p.xyz), *map(str, p.rgb), _f(p.error),
                             *track]))
    for name, lines in (("cameras.txt", cams), ("images.txt", ims), ("points3D.txt", pts)):
        atomic_write_text(folder / name, "\n".join(lines) + "\n")


# --------------------------------------------------------------------------- binary


class _Reader:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.data = path.read_bytes()
        except OSError as exc:
            raise CameraFileError(path, None, f"cannot read: {exc.strerror or exc}") from None
        self.pos = 0

    def take(self, fmt: str, what: str):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise CameraFileError(self.path, f"byte {self.pos}",
                                  f"file ends inside {what} (truncated?)")
        vals = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return vals

    def array(self, dtype: np.dtype, count: int, what: str) -> np.ndarray:
        size = dtype.itemsize * count
        if count < 0 or self.pos + size > len(self.data):
            raise CameraFileError(self.path, f"byte {self.pos}",
                                  f"file ends inside {what} ({count} entries declared)")
        out = np.frombuffer(self.data, dtype, count, self.pos).copy()
        self.pos += size
        return out

    def count(self, min_size: int, what: str) -> int:
        at = self.pos
        (n,) = self.take("<Q", what)
        if n * min_size > len(self.data) - self.pos:
            raise CameraFileError(self.path, f"byte {at}", f"declares {n} {what}, more than "
                                  "the file can hold (truncated or not a COLMAP file?)")
        return n

    def string(self, what: str) -> str:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise CameraFileError(self.path, f"byte {self.pos}", f"file ends inside {what}")
        raw = self.data[self.pos:end]
        at, self.pos = self.pos, end + 1
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CameraFileError(self.path, f"byte {at}", f"{what} is not UTF-8") from None

    def done(self) -> None:
        if self.pos != len(self.data):
            raise CameraFileError(self.path, f"byte {self.pos}",
                                  f"{len(self.data) - self.pos} unexpected bytes after the data")


def _read_cameras_bin(path: Path) -> dict[int, ColmapCamera]:
    r, out = _Reader(path), {}
    for i in range(r.count(24, "cameras")):
        at = f"camera {i} (byte {r.pos})"
        cid, mid, w, h = r.take("<iiQQ", "a camera")
        if mid not in _MODEL_IDS:
            raise CameraFileError(path, at, f"unknown camera model id {mid}")
        name, n = _MODEL_IDS[mid]
        cam = ColmapCamera(cid, name, w, h, r.take(f"<{n}d", "camera parameters"))
        _check_camera(cam, path, at)
        if cid in out:
            raise CameraFileError(path, at, f"camera id {cid} appears twice")
        out[cid] = cam
    r.done()
    return out


def _read_images_bin(path: Path, cameras: dict) -> dict[int, ColmapImage]:
    r, out = _Reader(path), {}
    for i in range(r.count(69, "images")):
        at = f"image {i} (byte {r.pos})"
        iid, *pose, cid = r.take("<i7di", "an image")
        name = r.string("an image name")
        (npts,) = r.take("<Q", "a point count")
        pts = r.array(_P2D, npts, "image points")
        im = ColmapImage(iid, tuple(pose[:4]), tuple(pose[4:]), cid, name,
                         np.stack([pts["x"], pts["y"]], -1), pts["id"].astype(np.int64))
        _check_image(im, cameras, path, at)
        if iid in out:
            raise CameraFileError(path, at, f"image id {iid} appears twice")
        out[iid] = im
    r.done()
    return out


def _read_points_bin(path: Path) -> dict[int, ColmapPoint]:
    r, out = _Reader(path), {}
    for i in range(r.count(51, "points")):
        at = f"point {i} (byte {r.pos})"
        pid, x, y, z, cr, cg, cb, err, n = r.take("<Q3d3BdQ", "a point")
        track = r.array(_TRACK, n, "a point track")
        if pid in out:
            raise CameraFileError(path, at, f"point id {pid} appears twice")
        out[pid] = ColmapPoint(pid, (x, y, z), (cr, cg, cb), err,
                               track["image"].astype(np.int64), track["idx"].astype(np.int64))
    r.done()
    return out


def write_binary(folder: str | os.PathLike, model: ColmapModel) -> None:
    """Write ``cameras.bin``, ``images.bin`` and ``points3D.bin`` (atomically) into ``folder``."""
    folder = Path(folder)
    b = [struct.pack("<Q", len(model.cameras))]
    for c in model.cameras.values():
        mid, n = _MODEL_BY_NAME[c.model]
        b.append(struct.pack(f"<iiQQ{n}d", c.id, mid, c.width, c.height, *c.params))
    cams = b"".join(b)
    b = [struct.pack("<Q", len(model.images))]
    for im in model.images.values():
        b.append(struct.pack("<i7di", im.id, *im.qvec, *im.tvec, im.camera_id))
        b.append(im.name.encode("utf-8") + b"\0")
        pts = np.zeros(len(im.point3D_ids), _P2D)
        pts["x"], pts["y"], pts["id"] = im.xys[:, 0], im.xys[:, 1], im.point3D_ids
        b.append(struct.pack("<Q", len(pts)) + pts.tobytes())
    ims = b"".join(b)
    b = [struct.pack("<Q", len(model.points3D))]
    for p in model.points3D.values():
        track = np.zeros(len(p.image_ids), _TRACK)
        track["image"], track["idx"] = p.image_ids, p.point2D_idxs
        b.append(struct.pack("<Q3d3BdQ", p.id, *p.xyz, *p.rgb, p.error, len(track)))
        b.append(track.tobytes())
    for name, data in (("cameras.bin", cams), ("images.bin", ims), ("points3D.bin", b"".join(b))):
        atomic_write_bytes(folder / name, data)


# --------------------------------------------------------------------------- folders


def find_model(folder: Path) -> tuple[Path, str]:
    """The folder holding the model (``folder`` itself, ``sparse/0`` or ``sparse`` inside
    it) and its format, ``"bin"`` or ``"txt"`` (binary wins when both are present)."""
    for sub in (folder, folder / "sparse" / "0", folder / "sparse"):
        for ext in ("bin", "txt"):
            if all((sub / f"{n}.{ext}").is_file() for n in ("cameras", "images")):
                return sub, ext
    raise CameraFileError(folder, None, "no COLMAP model here: expected cameras and images "
                          "(.bin or .txt) in the folder, in sparse/0 or in sparse")


def read_model(folder: str | os.PathLike) -> tuple[ColmapModel, Path]:
    """Read the sparse model in ``folder`` (see :func:`find_model`); ``points3D`` is optional.
    Returns the model and the folder it was found in."""
    where, ext = find_model(Path(folder))
    if ext == "bin":
        cams = _read_cameras_bin(where / "cameras.bin")
        ims = _read_images_bin(where / "images.bin", cams)
        pfile = where / "points3D.bin"
        pts = _read_points_bin(pfile) if pfile.is_file() else {}
    else:
        cams = _read_cameras_text(where / "cameras.txt")
        ims = _read_images_text(where / "images.txt", cams)
        pfile = where / "points3D.txt"
        pts = _read_points_text(pfile) if pfile.is_file() else {}
    return ColmapModel(cams, ims, pts), where
