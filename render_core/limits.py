"""Size limits on what the loaders accept: mesh faces and vertices, image and texture pixels.

One process-wide :class:`Limits` value guards every reader (``load_mesh``, textures, the
studio's target images): a file over a limit is refused with a message naming the limit,
before the bulk of it is decoded where the format declares its size up front (PNG/JPEG
headers, PLY and binary STL headers, OBJ statement counts). Images whose header declares an
absurd size (decompression bombs) are refused from the header alone.

The defaults suit a desktop with a few GB of memory. Override them per process with
``set_limits(Limits(...))`` or with the environment variables ``DIBR_MAX_FACES``,
``DIBR_MAX_VERTICES``, ``DIBR_MAX_IMAGE_PIXELS``, ``DIBR_MAX_IMAGE_SIZE`` and
``DIBR_MAX_TEXTURE_SIZE`` (read once, the first time the limits are needed).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Caps on loaded data; each must be a positive integer.

    - ``max_faces``: triangles of a loaded mesh (after polygons are triangulated).
    - ``max_vertices``: vertices of a loaded mesh.
    - ``max_image_pixels``: width × height of a target image (a 48 MP photo fits the default).
    - ``max_image_size``: longest side, in pixels, of a target image.
    - ``max_texture_size``: longest side, in pixels, of a mesh's texture image.
    """

    max_faces: int = 5_000_000
    max_vertices: int = 5_000_000
    max_image_pixels: int = 50_000_000
    max_image_size: int = 8192
    max_texture_size: int = 8192

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"limit {f.name} must be a positive integer, got {value!r}")

    def replace(self, **changes: int) -> Limits:
        """Copy with some limits changed (validated)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Limits:
        """Defaults overridden by the ``DIBR_MAX_*`` environment variables that are set.

        Raises ``ValueError`` naming the variable when a value is not a positive integer.
        """
        environ = os.environ if environ is None else environ
        changes = {}
        for name, var in ENV_VARS.items():
            text = environ.get(var, "").strip()
            if not text:
                continue
            try:
                value = int(text.replace("_", ""))
            except ValueError:
                value = 0
            if value < 1:
                raise ValueError(f"{var}={text!r}: expected a positive integer")
            changes[name] = value
        return cls(**changes)

    # -- checks: each returns None, or a one-line problem for the caller to attach to a file --

    def mesh_problem(self, num_vertices: int, num_faces: int) -> str | None:
        """Why a mesh of this size is refused, or None."""
        if num_faces > self.max_faces:
            return (f"mesh has {num_faces:,} faces, more than the limit of {self.max_faces:,} "
                    f"(set {ENV_VARS['max_faces']} to raise it)")
        if num_vertices > self.max_vertices:
            return (f"mesh has {num_vertices:,} vertices, more than the limit of "
                    f"{self.max_vertices:,} (set {ENV_VARS['max_vertices']} to raise it)")
        return None

    def image_problem(self, width: int, height: int) -> str | None:
        """Why a target image of this size is refused, or None."""
        if width < 2 or height < 2:
            return f"image is {width}x{height} pixels; an image needs at least 2x2"
        if max(width, height) > self.max_image_size:
            return (f"image is {width}x{height} pixels, larger than the limit of "
                    f"{self.max_image_size} per side "
                    f"(set {ENV_VARS['max_image_size']} to raise it)")
        if width * height > self.max_image_pixels:
            return (f"image is {width}x{height} = {width * height:,} pixels, more than the "
                    f"limit of {self.max_image_pixels:,} "
                    f"(set {ENV_VARS['max_image_pixels']} to raise it)")
        return None

    def texture_problem(self, width: int, height: int) -> str | None:
        """Why a texture image of this size is refused, or None."""
        if width < 1 or height < 1:
            return f"texture is {width}x{height} pixels"
        if max(width, height) > self.max_texture_size:
            return (f"texture is {width}x{height} pixels, larger than the limit of "
                    f"{self.max_texture_size} per side "
                    f"(set {ENV_VARS['max_texture_size']} to raise it)")
        return None


ENV_VARS = {
    "max_faces": "DIBR_MAX_FACES",
    "max_vertices": "DIBR_MAX_VERTICES",
    "max_image_pixels": "DIBR_MAX_IMAGE_PIXELS",
    "max_image_size": "DIBR_MAX_IMAGE_SIZE",
    "max_texture_size": "DIBR_MAX_TEXTURE_SIZE",
}

_current: Limits | None = None


def get_limits() -> Limits:
    """The limits in force: those given to ``set_limits``, else defaults + environment."""
    global _current
    if _current is None:
        _current = Limits.from_env()
    return _current


def set_limits(limits: Limits | None) -> Limits | None:
    """Make ``limits`` the process-wide limits (None: back to defaults + environment).

    Returns the previous explicit value (None if there was none), so a caller can restore it.
    """
    global _current
    if limits is not None and not isinstance(limits, Limits):
        raise TypeError(f"expected Limits or None, got {type(limits).__name__}")
    previous, _current = _current, limits
    return previous


__all__ = ["ENV_VARS", "Limits", "get_limits", "set_limits"]
