"""Opening image files safely: size limits checked from the header, before any decoding.

``open_image`` is the one way ``render_core`` and the studio read an image file (textures,
target photos). It refuses files that are not images, images over the size limits of
``render_core.limits`` (including decompression bombs: a tiny PNG declaring 20000x20000
pixels is refused from its header), and truncated or corrupt data, always with an
``ImageError`` naming the file and the problem.
"""

from __future__ import annotations

import os
import struct
import warnings
from pathlib import Path

from .limits import Limits, get_limits

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ImageError(ValueError):
    """An image file cannot be used: ``str(err)`` is ``"<path>: <problem>"``;
    ``err.path`` and ``err.problem`` hold the parts."""

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0][:200] if text else "") or type(exc).__name__


def png_declared_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) from the first 24 bytes of a PNG (its IHDR chunk), or None if the
    bytes are not a PNG's."""
    if len(head) < 24 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])


def _png_declared_size(path: Path) -> tuple[int, int] | None:
    try:
        with open(path, "rb") as fh:
            return png_declared_size(fh.read(24))
    except OSError:
        return None


def _size_problem(limits: Limits, texture: bool, width: int, height: int) -> str | None:
    if texture:
        return limits.texture_problem(width, height)
    return limits.image_problem(width, height)


def open_image(path: str | os.PathLike, *, texture: bool = False, limits: Limits | None = None):
    """Open and fully decode an image file, within the size limits.

    Args:
        path: the image file (any format Pillow reads: PNG, JPEG, ...).
        texture: check ``limits.max_texture_size`` (longest side) instead of the target-image
            limits (at least 2x2, at most ``limits.max_image_pixels``).
        limits: the limits to apply; default ``render_core.get_limits()``.

    Returns:
        A loaded ``PIL.Image.Image`` in the file's own mode (``"RGB"``, ``"RGBA"``, ``"L"``,
        ``"P"``, ``"I;16"``, ``"CMYK"``, ...); the file is closed.

    Raises:
        ImageError: missing file, not an image, over a limit (checked from the header, before
            decoding), or undecodable (truncated, corrupt).
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    limits = get_limits() if limits is None else limits
    if not path.exists():
        raise ImageError(path, "file not found")
    if not path.is_file():
        raise ImageError(path, "not a regular file")
    with warnings.catch_warnings():
        # Our own limit (checked below, from the header) replaces Pillow's bomb warning.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(path)
        except Image.DecompressionBombError:
            size = _png_declared_size(path)
            declared = f"{size[0]}x{size[1]} pixels" if size else "an absurd number of pixels"
            raise ImageError(path, f"image declares {declared}; refused without decoding "
                                   "(a decompression bomb?)") from None
        except UnidentifiedImageError:
            raise ImageError(path, "not an image file that can be read") from None
        except Exception as exc:  # OSError, SyntaxError, struct.error, ... from the plugins
            raise ImageError(path, f"unreadable image ({_describe(exc)})") from None
        try:
            width, height = im.size
            problem = _size_problem(limits, texture, width, height)
            if problem:
                raise ImageError(path, problem)
            im.load()
        except ImageError:
            im.close()
            raise
        except Exception as exc:  # truncated data, bad chunks, MemoryError, ...
            im.close()
            raise ImageError(path, f"unreadable image ({_describe(exc)})") from None
    return im


__all__ = ["ImageError", "open_image"]
