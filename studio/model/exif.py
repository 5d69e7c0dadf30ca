"""A photo's camera from its EXIF block: the vertical fov and which camera took it.

Conventions (stated once, used everywhere):

- The fov is the *vertical* field of view, in degrees, of the photo as viewers show it (after
  the EXIF orientation is applied, as :func:`studio.model.files.load_image` does).
- ``FocalLengthIn35mmFilm`` (tag 0xA405) is read with the diagonal convention of the EXIF /
  CIPA standards: the lens shows the same *diagonal* angle of view as that focal length on a
  36×24 mm frame (diagonal √(36²+24²) ≈ 43.27 mm). The photo's own frame is then the rectangle
  of its aspect r = W/H with that diagonal, of height 43.27/√(1+r²) mm, and
  ``fov = 2·atan(height / (2·f35))``. For a 3:2 photo the height is exactly 24 mm.
- Without it, ``FocalLength`` (0x920A, mm) and the sensor's pixel density
  ``FocalPlaneYResolution``/``FocalPlaneXResolution`` (pixels per ``FocalPlaneResolutionUnit``:
  2 inch, 3 cm, 4 mm, 5 µm) give the sensor height: the photo's vertical extent in pixels
  (rescaled to the ``PixelX/YDimension`` the density refers to, when the file was resized)
  over the density. Pixels are taken as square when only one density is present.

Photos share a camera (:func:`camera_group`) when make, model, focal length and the upright
image size all agree; the group id is a stable hash of those, so photos of one camera get one
id across separate loads and sessions.
"""

from __future__ import annotations

import math
import os
import zlib
from dataclasses import dataclass

FRAME_35MM_DIAGONAL = math.hypot(36.0, 24.0)
"""Diagonal of the 36×24 mm frame, mm (the 35 mm-equivalent convention)."""

_MAKE, _MODEL, _ORIENTATION, _EXIF_IFD = 0x010F, 0x0110, 0x0112, 0x8769
_FOCAL, _FOCAL_35 = 0x920A, 0xA405
_PIXEL_X, _PIXEL_Y = 0xA002, 0xA003
_FP_XRES, _FP_YRES, _FP_UNIT = 0xA20E, 0xA20F, 0xA210
_UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0, 5: 1e-3}


@dataclass(frozen=True)
class PhotoCamera:
    """What the EXIF block says about the camera of one photo (None where it says nothing).

    ``width``/``height``: the upright image size in pixels; ``fov``: vertical, degrees.
    """

    width: int
    height: int
    make: str | None = None
    model: str | None = None
    focal_mm: float | None = None
    focal_35mm: float | None = None
    fov: float | None = None

    @property
    def known(self) -> bool:
        """Whether the EXIF names the camera (make or model) or its focal length."""
        return any(v is not None for v in (self.make, self.model, self.focal_mm,
                                           self.focal_35mm))


def fov_from_35mm(focal_35mm: float, aspect: float) -> float:
    """Vertical fov (degrees) of a photo of ``aspect`` = W/H whose lens is ``focal_35mm`` mm
    35 mm-equivalent (diagonal convention, see the module docstring)."""
    if not (focal_35mm > 0 and aspect > 0):
        raise ValueError("focal length and aspect must be positive")
    height = FRAME_35MM_DIAGONAL / math.sqrt(1.0 + aspect * aspect)
    return math.degrees(2.0 * math.atan(height / (2.0 * focal_35mm)))


def fov_from_sensor(focal_mm: float, sensor_height_mm: float) -> float:
    """Vertical fov (degrees) of a pinhole of focal ``focal_mm`` over a sensor that tall."""
    if not (focal_mm > 0 and sensor_height_mm > 0):
        raise ValueError("focal length and sensor height must be positive")
    return math.degrees(2.0 * math.atan(sensor_height_mm / (2.0 * focal_mm)))


def _number(v) -> float | None:
    try:
        x = float(v[0]) / float(v[1]) if isinstance(v, tuple) and len(v) == 2 else float(v)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return x if math.isfinite(x) and x > 0 else None


def _text(v) -> str | None:
    if isinstance(v, bytes):
        v = v.decode("ascii", "replace")
    s = str(v).strip("\x00 ").strip() if v is not None else ""
    return s or None


def camera_from_exif(exif, width: int, height: int) -> PhotoCamera:
    """:class:`PhotoCamera` from a Pillow ``Image.Exif`` of an image ``width``×``height`` as
    stored (the orientation tag turns it upright)."""
    sub = exif.get_ifd(_EXIF_IFD) if _EXIF_IFD in exif else {}

    def tag(k):
        return sub.get(k, exif.get(k))

    turned = exif.get(_ORIENTATION) in (5, 6, 7, 8)
    up_w, up_h = (height, width) if turned else (width, height)
    focal = _number(tag(_FOCAL))
    f35 = _number(tag(_FOCAL_35))
    fov = None
    if f35 is not None:
        fov = fov_from_35mm(f35, up_w / up_h)
    elif focal is not None:
        unit = _UNIT_MM.get(int(_number(tag(_FP_UNIT)) or 2))
        xres, yres = _number(tag(_FP_XRES)), _number(tag(_FP_YRES))
        # The upright vertical is the stored horizontal when the photo is turned.
        res = (xres or yres) if turned else (yres or xres)
        if unit is not None and res is not None:
            ref = _number(tag(_PIXEL_X if turned else _PIXEL_Y))
            stored = width if turned else height
            pixels = ref if ref is not None else stored
            fov = fov_from_sensor(focal, pixels / res * unit)
    if fov is not None and not 1.0 <= fov <= 170.0:
        fov = None
    return PhotoCamera(up_w, up_h, _text(tag(_MAKE)), _text(tag(_MODEL)), focal, f35, fov)


def read_camera(path: str | os.PathLike) -> PhotoCamera | None:
    """The EXIF camera of an image file, or None when it cannot be read (only the header is
    read; a damaged EXIF block counts as none)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return camera_from_exif(im.getexif(), im.width, im.height)
    except Exception:  # noqa: BLE001 - EXIF is optional: any failure means "nothing known"
        return None


def camera_group(cam: PhotoCamera | None) -> int | None:
    """The camera-group id of a photo: equal for photos whose make, model, focal lengths and
    upright size agree; None when the EXIF names no camera (a camera of its own)."""
    if cam is None or not cam.known:
        return None
    key = "|".join(str(v) for v in (cam.make, cam.model, cam.focal_mm, cam.focal_35mm,
                                    cam.width, cam.height))
    return zlib.crc32(key.encode("utf-8")) & 0x7FFFFFFF
