"""Shared intrinsics for camera refinement: one fov per camera group, per-target fov locks.

Photos taken with one camera (one phone, one zoom setting) have one field of view. Refining a
free fov for every photo lets each one trade fov against distance and azimuth to overfit its
own silhouette; tying them together removes that freedom. :class:`~render_core.fit.TargetView`
carries ``camera_group`` (an int, or None for a camera of its own) and ``lock_fov``; this
module turns those into the fov the :class:`~render_core.fit.Fitter` renders each target with.

Rules (see :func:`fov_layout`):

- A target whose fov is *free* is refined: its camera is refined (``FitConfig.camera_views``
  is None or names it, and not ``lock_camera``; see :mod:`render_core._camera_group`) and its
  ``lock_fov`` is False.
- Free targets with the same ``camera_group`` share one fov parameter. It starts at the mean
  of their starting fovs (the same value when the photos came from one camera) and is stored
  in the fov slot of the group's first free member (its *leader*); the other members' slots
  stay unused (no gradient, so Adam never moves them).
- A target that is not free keeps its own starting fov, whatever its group.
- ``camera_group`` None: a group of its own (the fov is refined per target, as before).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class FovLayout:
    """Where each target's fov comes from: ``fov = start + free · scale · delta[leader]``.

    ``leader`` [N] int64 (index of the cam_delta row whose fov slot drives the target),
    ``free`` [N] (1.0 if refined, 0.0 if fixed), ``start`` [N] starting fov in degrees.
    """

    leader: torch.Tensor
    free: torch.Tensor
    start: torch.Tensor

    def fov(self, delta_fov: torch.Tensor, scale: float) -> torch.Tensor:
        """[N] fovs in degrees from the fov column ``delta_fov`` [N] of the camera deltas
        (differentiable w.r.t. ``delta_fov``; only the leaders' entries get a gradient)."""
        return self.start.to(delta_fov) + self.free.to(delta_fov) * scale * delta_fov[self.leader]

    def groups(self) -> list[list[int]]:
        """The free targets by shared fov parameter: lists of target indices, leader first."""
        out: dict[int, list[int]] = {}
        for i, (lead, f) in enumerate(zip(self.leader.tolist(), self.free.tolist(), strict=True)):
            if f:
                out.setdefault(lead, []).append(i)
        return list(out.values())


def fov_layout(fovs: Sequence[float], camera_groups: Sequence[int | None],
               locked: Sequence[bool], refined: Sequence[bool],
               dtype: torch.dtype = torch.float32) -> FovLayout:
    """Build the :class:`FovLayout` for N targets.

    Args:
        fovs: the N starting vertical fovs, degrees.
        camera_groups: each target's camera group id, or None for a camera of its own.
        locked: each target's ``lock_fov``.
        refined: whether each target's camera is refined at all (``camera_views``).
    """
    n = len(fovs)
    if not len(camera_groups) == len(locked) == len(refined) == n:
        raise ValueError("fovs, camera_groups, locked and refined must have one entry per target")
    leader = list(range(n))
    free = [bool(r) and not bool(lk) for r, lk in zip(refined, locked, strict=True)]
    start = [float(f) for f in fovs]
    members: dict[int, list[int]] = {}
    for i, g in enumerate(camera_groups):
        if free[i] and g is not None:
            members.setdefault(int(g), []).append(i)
    for idx in members.values():
        mean = sum(start[i] for i in idx) / len(idx)
        for i in idx:
            leader[i] = idx[0]
            start[i] = mean
    return FovLayout(torch.tensor(leader, dtype=torch.int64),
                     torch.tensor([1.0 if f else 0.0 for f in free], dtype=dtype),
                     torch.tensor(start, dtype=dtype))
