"""The Targets tab's editor of a registered (general pinhole) camera: its centre, its
orientation as Euler angles and its intrinsics in pixels, each a spin box.

Angles (degrees) describe the camera-to-world rotation ``C = Ry(yaw)·Rx(pitch)·Rz(roll)``
(``R = Cᵀ`` is the target's world-to-camera rotation, OpenGL camera axes, looking down −Z):
all zero looks down world −Z with +Y up; yaw turns the camera about world +Y, pitch tilts
it up (positive) or down, roll turns it about its own view axis. Pitch ±90° is gimbal lock
(yaw and roll then share one axis).

An edit changes only the value edited: the others are taken from the target's exact camera,
never from the (rounded) spin boxes, so a registered camera never drifts or becomes an orbit
camera by being touched. Each edit is one ``Session.set_target_pinhole`` call (one undo step).
"""

from __future__ import annotations

import math

import numpy as np
from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import QDoubleSpinBox, QFormLayout, QHBoxLayout, QWidget

CENTRE = ("x", "y", "z")
ANGLES = ("yaw", "pitch", "roll")
INTRINSICS = ("fx", "fy", "cx", "cy")


def _rx(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0, 0], [0, c, -s], [0, s, c]])


def _ry(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1.0, 0], [-s, 0, c]])


def _rz(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def rotation_from_euler(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """World-to-camera ``R`` [3,3] of the Euler angles (degrees; see the module doc)."""
    c = _ry(math.radians(yaw)) @ _rx(math.radians(pitch)) @ _rz(math.radians(roll))
    return c.T


def euler_from_rotation(R: np.ndarray) -> tuple[float, float, float]:
    """``(yaw, pitch, roll)`` degrees of a world-to-camera rotation (inverse of
    :func:`rotation_from_euler`; at gimbal lock the roll is taken as 0)."""
    c = np.asarray(R, np.float64).T
    pitch = math.asin(max(-1.0, min(1.0, -c[1, 2])))
    if abs(c[1, 2]) > 1 - 1e-12:  # gimbal lock: yaw and roll turn about one axis
        return math.degrees(math.atan2(-c[2, 0], c[0, 0])), math.degrees(pitch), 0.0
    yaw = math.atan2(c[0, 2], c[2, 2])
    roll = math.atan2(c[1, 0], c[1, 1])
    return math.degrees(yaw), math.degrees(pitch), math.degrees(roll)


def camera_values(R: np.ndarray, t: np.ndarray, intrinsics) -> dict[str, float]:
    """Every spin box's value for a camera ``R``, ``t``, ``(fx, fy, cx, cy)``."""
    centre = -np.asarray(R).T @ np.asarray(t)
    vals = dict(zip(CENTRE, (float(v) for v in centre), strict=True))
    vals.update(zip(ANGLES, euler_from_rotation(R), strict=True))
    vals.update(zip(INTRINSICS, (float(v) for v in intrinsics), strict=True))
    return vals


def edited_camera(R: np.ndarray, t: np.ndarray, intrinsics, key: str, value: float):
    """``(R, t, (fx, fy, cx, cy))`` of the camera with only ``key`` set to ``value``: the
    centre stays when the angles change, the orientation when the centre does, the pose when
    an intrinsic does."""
    R, t = np.asarray(R, np.float64), np.asarray(t, np.float64)
    intr = [float(v) for v in intrinsics]
    if key in INTRINSICS:
        intr[INTRINSICS.index(key)] = float(value)
        return R, t, tuple(intr)
    centre = -R.T @ t
    if key in CENTRE:
        centre = centre.copy()
        centre[CENTRE.index(key)] = float(value)
    elif key in ANGLES:
        angles = list(euler_from_rotation(R))
        angles[ANGLES.index(key)] = float(value)
        R = rotation_from_euler(*angles)
    else:
        raise ValueError(f"unknown camera value {key!r}")
    return R, -R @ centre, tuple(intr)


class PinholeEditor(QWidget):
    """Spin boxes of a registered camera; :attr:`edited` says which value the user changed
    (``key``, ``value``)."""

    edited = pyqtSignal(str, float)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.spins: dict[str, QDoubleSpinBox] = {}
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        specs = {"x": (-1e4, 1e4, 4), "y": (-1e4, 1e4, 4), "z": (-1e4, 1e4, 4),
                 "yaw": (-360, 360, 2), "pitch": (-90, 90, 2), "roll": (-360, 360, 2),
                 "fx": (0.01, 1e6, 2), "fy": (0.01, 1e6, 2), "cx": (-1e5, 1e5, 2),
                 "cy": (-1e5, 1e5, 2)}
        tips = {"x": "Camera centre, world units", "z": "Camera centre, world units",
                "yaw": "Turn about world +Y (degrees)",
                "pitch": "Tilt up (+) or down (degrees)",
                "roll": "Turn about the view axis (degrees)",
                "fx": "Focal length, pixels of the photo", "cx": "Principal point, pixels "
                "from the photo's top-left corner"}
        for k, (lo, hi, dec) in specs.items():
            spin = QDoubleSpinBox()
            spin.setRange(lo, hi)
            spin.setDecimals(dec)
            spin.setKeyboardTracking(False)
            spin.setToolTip(tips.get(k, tips.get(k.replace("y", "x"), "")))
            spin.valueChanged.connect(lambda v, k=k: self._changed(k, v))
            self.spins[k] = spin
        self._filling = False
        self._values: dict[str, float] = {}
        for label, keys in (("Centre x y z", CENTRE), ("Yaw pitch roll °", ANGLES),
                            ("Focal fx fy px", INTRINSICS[:2]),
                            ("Principal cx cy px", INTRINSICS[2:])):
            row = QHBoxLayout()
            for k in keys:
                row.addWidget(self.spins[k])
            form.addRow(label, row)

    def show_camera(self, R: np.ndarray, t: np.ndarray, intrinsics) -> None:
        """Fill the spin boxes from a camera (no signal)."""
        self._values = camera_values(R, t, intrinsics)
        self._filling = True
        for k, spin in self.spins.items():
            spin.setValue(self._values[k])
        self._filling = False

    def _changed(self, key: str, value: float) -> None:
        if self._filling:
            return
        spin = self.spins[key]
        if abs(value - self._values.get(key, math.inf)) <= 0.5 * 10 ** -spin.decimals():
            return  # only the spin box's rounding differs
        self.edited.emit(key, float(value))
