"""Coarse to fine: the render resolution of each fit step (``FitConfig.resolution_schedule``).

A schedule is a list of ``(resolution, start_step)`` pairs with strictly increasing start steps:
from ``start_step`` on, the fit renders (and compares against targets resampled to)
``resolution`` rows, until the next pair's start. Before the first pair's start the fit uses
``FitConfig.resolution``. The level is a function of the step number alone, so a fit continued
from a checkpoint or a saved session renders at the same resolution as the uninterrupted one.

The soft silhouette's ``sigma`` is a squared distance in NDC; kept as it is, the soft edge
would be the same width in NDC at every level, i.e. twice as many pixels wide at twice the
resolution, and the shrink it causes against hard masks (about one soft-edge width) would not
get any smaller with detail. So ``FitConfig.sigma`` is read as the softness at
``FitConfig.resolution``, and each level uses ``sigma * (resolution / level)**2``: the same
width in pixels, a finer one in the world.

:func:`pixel_size` gives the world size of one pixel at the object, the length a remesher's
target edge length should follow (about one to two pixels: finer edges than a pixel are not
seen by the silhouette or shading loss).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Schedule = list[tuple[int, int]]


def parse_resolution_schedule(text: str) -> Schedule:
    """``"64:0,128:100,256:200"`` -> ``[(64, 0), (128, 100), (256, 200)]`` (checked).

    Raises ``ValueError`` with a one-line message on anything else.
    """
    pairs = []
    for item in (s.strip() for s in str(text).split(",")):
        if not item:
            continue
        res, sep, step = item.partition(":")
        try:
            if not sep:
                raise ValueError
            pairs.append((int(res), int(step)))
        except ValueError:
            raise ValueError(f"resolution schedule item {item!r}: expected RES:STEP, e.g. "
                             "64:0,128:100") from None
    if not pairs:
        raise ValueError("resolution schedule is empty; expected RES:STEP,... e.g. 64:0,128:100")
    schedule = normalize_schedule(pairs)
    check_schedule(schedule)
    return schedule


def format_resolution_schedule(schedule: Sequence[Sequence[int]] | None) -> str:
    """The inverse of :func:`parse_resolution_schedule` ("" for None)."""
    return ",".join(f"{int(r)}:{int(s)}" for r, s in schedule or [])


def normalize_schedule(schedule) -> Schedule | None:
    """A schedule as a list of ``(int, int)`` tuples (JSON gives lists); None stays None.
    Values that are not pairs of whole numbers are left for :func:`check_schedule` to name."""
    if schedule is None:
        return None
    try:
        out = []
        for pair in schedule:
            r, s = pair
            if any(isinstance(x, bool) or float(x) != int(x) for x in (r, s)):
                return schedule
            out.append((int(r), int(s)))
        return out
    except (TypeError, ValueError):
        return schedule


def check_schedule(schedule) -> None:
    """Raise ``ValueError`` naming what is wrong with a ``resolution_schedule``."""
    if schedule is None:
        return
    prefix = "resolution_schedule"
    if isinstance(schedule, (str, bytes)) or not isinstance(schedule, Sequence) or not schedule:
        raise ValueError(f"{prefix} must be a non-empty list of (resolution, start_step) pairs "
                         f"or None, got {schedule!r}")
    last = -1
    for pair in schedule:
        if (not isinstance(pair, Sequence) or isinstance(pair, (str, bytes)) or len(pair) != 2
                or any(isinstance(x, bool) or not isinstance(x, int) for x in pair)):
            raise ValueError(f"{prefix}: {pair!r} is not a (resolution, start_step) pair of "
                             "whole numbers")
        res, step = pair
        if not 8 <= res <= 2048:
            raise ValueError(f"{prefix}: resolution {res} is outside 8..2048")
        if step < 0:
            raise ValueError(f"{prefix}: start step {step} is negative")
        if step <= last:
            raise ValueError(f"{prefix}: start steps must increase, got {step} after {last}")
        last = step


def level_at(resolution: int, sigma: float, schedule, step: int) -> tuple[int, float]:
    """The ``(resolution, sigma)`` a fit renders with at ``step`` (completed steps so far)."""
    level = int(resolution)
    for res, start in schedule or []:
        if int(step) >= start:
            level = int(res)
    return level, float(sigma) * (int(resolution) / level) ** 2


def pixel_size(resolution: int, distance: float, fov: float) -> float:
    """World size of one pixel (vertical) at ``distance`` from a pinhole with vertical field of
    view ``fov`` degrees rendering ``resolution`` rows."""
    return 2.0 * float(distance) * math.tan(math.radians(float(fov)) / 2.0) / int(resolution)
