"""File I/O of the studio: target images in, PNGs and meshes out. No Qt.

Every reader raises :class:`LoadError` naming the file and the problem; the GUI shows it in a
dialog, the CLI prints it and exits with status 2.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

import render_core as rc

MESH_SUFFIXES = (".obj", ".ply", ".glb", ".gltf", ".stl", ".off")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
EXPORT_SUFFIXES = (".obj", ".ply", ".glb")
MAX_IMAGE_SIDE = rc.Limits().max_image_size  # default; rc.get_limits() is what applies


class LoadError(ValueError):
    """A file could not be used: ``str()`` is one line naming the file and the problem."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{Path(path).name}: {problem}")


def load_image(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a PNG/JPEG target: ``(rgb [H,W,3] float32 sRGB in [0,1], alpha [H,W] or None)``.

    Any mode Pillow reads is accepted: grey, palette, CMYK, 8 or 16 bits per channel (16-bit
    grey is scaled by 65535, so it matches the same picture stored in 8 bits). The alpha
    channel (or a palette's transparency) becomes the mask. A photo's EXIF orientation is
    applied, so the image is upright as viewers show it. Size limits are
    ``rc.get_limits()``'s, checked from the header before decoding. Raises :class:`LoadError`.
    """
    p = Path(path)
    try:
        im = rc.open_image(p)
    except rc.ImageError as e:
        raise LoadError(p, e.problem) from None
    try:
        with im:
            ImageOps.exif_transpose(im, in_place=True)
            return _rgb_alpha(im)
    except Exception as e:  # a damaged EXIF block, a mode that cannot convert, MemoryError
        raise LoadError(p, f"unreadable image ({str(e) or type(e).__name__})") from None


def _rgb_alpha(im: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im, dtype=np.float32)
        if im.mode != "F":
            arr = arr / 65535.0
        arr = np.clip(arr, 0.0, 1.0)
        return np.repeat(arr[..., None], 3, axis=2), None
    has_alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
    arr = np.asarray(im.convert("RGBA" if has_alpha else "RGB"), dtype=np.float32) / 255.0
    if has_alpha:
        return np.ascontiguousarray(arr[..., :3]), np.ascontiguousarray(arr[..., 3])
    return arr, None


def load_mesh(path: str | os.PathLike) -> rc.Mesh:
    """Read a mesh through ``rc.load_mesh``; raises :class:`LoadError` on any problem."""
    p = Path(path)
    if not p.is_file():
        raise LoadError(p, "file not found")
    if p.suffix.lower() not in MESH_SUFFIXES:
        raise LoadError(p, f"unsupported mesh format {p.suffix or '(none)'}; "
                           f"use one of {' '.join(MESH_SUFFIXES)}")
    try:
        mesh = rc.load_mesh(p)
    except rc.MeshError as e:
        raise LoadError(p, e.problem) from None
    except Exception as e:  # trimesh raises many types on bad files; all become one message
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise LoadError(p, f"cannot read mesh ({msg})") from None
    if mesh.num_faces == 0:
        raise LoadError(p, "mesh has no faces")
    return mesh


def to_uint8(img: np.ndarray) -> np.ndarray:
    """[H,W,C] float in [0,1] → uint8 (rounded)."""
    return (np.clip(np.asarray(img, np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def write_png(path: str | os.PathLike, img: np.ndarray) -> None:
    """Write an sRGB float [H,W,3|4] or uint8 image as PNG, atomically."""
    arr = img if img.dtype == np.uint8 else to_uint8(img)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    rc.atomic_write_bytes(path, buf.getvalue())


def export_mesh(mesh: rc.Mesh, path: str | os.PathLike) -> list[Path]:
    """Save through ``rc.save_mesh`` (OBJ writes its MTL and texture PNG alongside).

    Returns the files written. What is written looks like the render (``rc.prepare_export``):
    OBJ and GLB get vertex colours baked into a texture; PLY gets vertex colours (a texture's
    colour at each vertex when the mesh is textured, as PLY cannot carry one).
    """
    p = Path(path)
    if p.suffix.lower() not in EXPORT_SUFFIXES:
        raise LoadError(p, f"cannot export to {p.suffix or '(none)'}; use .obj, .ply or .glb")
    return rc.save_mesh(rc.prepare_export(mesh, p.suffix), p)


def export_mesh_job(mesh: rc.Mesh, path: str, limits: rc.Limits) -> tuple[str, object]:
    """:func:`export_mesh` for a child process (see ``studio.qt.export_task``), under ``limits``.

    Returns ``("ok", [written file paths as str])`` or ``("error", one-line message)``: the
    message crosses the process boundary as text, as :class:`LoadError` does not pickle.
    """
    rc.set_limits(limits)
    try:
        return "ok", [str(p) for p in export_mesh(mesh, path)]
    except (LoadError, rc.MeshError, ValueError, RuntimeError, OSError) as e:
        return "error", str(e) or type(e).__name__
    except Exception as e:  # noqa: BLE001 -- anything else still reaches the user's dialog
        return "error", f"{Path(path).name}: export failed ({type(e).__name__}: {e})"


def contact_sheet(targets: list[np.ndarray], renders: list[np.ndarray], pad: int = 4) -> np.ndarray:
    """One image: a column per view with target / render / |difference| rows. sRGB float."""
    cols = []
    for t, r in zip(targets, renders, strict=True):
        d = np.clip(np.abs(t - r) * 2.0, 0.0, 1.0)
        h, w = t.shape[:2]
        gap = np.ones((pad, w, 3), np.float32)
        cols.append(np.concatenate([t, gap, r, gap, d], axis=0))
    h = cols[0].shape[0]
    gap = np.ones((h, pad, 3), np.float32)
    parts = []
    for c in cols:
        parts += [c, gap]
    return np.concatenate(parts[:-1], axis=1)
