"""The target edits of :class:`studio.model.session.Session`: adding targets and changing
their cameras, lenses and masks, so that a running fit keeps its parameters. No Qt.

A part of ``Session`` (its base class), kept apart because it is one idea: every edit goes
through :meth:`TargetEditing._swap_targets`, which continues the fit from its current
parameters with the new targets. It uses the session's locks, events and fit
(``_both``, ``_lock``, ``_restart``, ``_emit``, ``_checkpoint``, ``_continue_from``, ``fitter``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path

import numpy as np

from render_core.fit import TargetView

from . import exif, files, photo


def _camera(t: TargetView) -> tuple:
    if t.is_orbit:
        return (t.azimuth, t.elevation, t.distance, t.fov)
    return (t.pose.tobytes(), t.intrinsics)


class TargetEditing:
    """The target half of a :class:`~studio.model.session.Session`."""

    def add_target(self, path: str | os.PathLike, azimuth: float = 0.0, elevation: float = 0.0,
                   distance: float = 3.0, fov: float | None = None) -> TargetView:
        """Read a target image (alpha → mask) seen from the given orbit camera, and add it
        (fov None: the photo's EXIF fov, else 60°)."""
        return self.add_targets([path], [(azimuth, elevation, distance, fov)])[0]

    def add_targets(self, paths: list, views: list[tuple[float, float, float, float]],
                    framing: str = "letterbox") -> list[TargetView]:
        """Read several targets, each with ``(azimuth, elevation, distance, fov)``; all are
        read and checked before any is added, so a bad file leaves the session unchanged.

        The alpha channel is the mask; a photo without one gets the automatic mask of
        :mod:`studio.model.photo`, and one that came out (nearly) empty or full is reported in
        :attr:`warnings`. Targets share the first target's aspect: another is letterboxed
        or cropped (``framing``) to it and its fov converted (see :mod:`studio.model.photo`).
        A fov of None is the photo's EXIF one (60° without); photos whose EXIF camera and
        size agree share a ``camera_group`` (:mod:`studio.model.exif`)."""
        if len(paths) != len(views):
            raise ValueError(f"{len(paths)} target images but {len(views)} views")
        if framing not in photo.FRAMINGS:
            raise ValueError(f"unknown framing {framing!r}; use one of {photo.FRAMINGS}")
        new: list[TargetView] = []
        warnings = []
        for path, (az, el, dist, fov) in zip(paths, views, strict=True):
            rgb, alpha = files.load_image(path)
            cam = exif.read_camera(path)
            fov = fov if fov is not None else (cam.fov if cam and cam.fov else 60.0)
            first = self.targets[0] if self.targets else (new[0] if new else None)
            try:
                p = photo.prepare_photo(rgb, alpha, float(fov),
                                        None if first is None else first.aspect, framing,
                                        Path(path).name)
                new.append(TargetView(p.image, p.mask, az, el, dist, p.fov, Path(path).name,
                                      camera_group=exif.camera_group(cam)))
            except ValueError as e:
                raise files.LoadError(path, str(e)) from None
            if p.warning:
                warnings.append(p.warning)
        with self._lock:
            self.warnings = warnings
            self.targets.extend(new)
            self._restart()
        self._emit("targets")
        return new

    def add_target_view(self, target: TargetView) -> None:
        with self._lock:
            self.targets.append(target)
            self._restart()
        self._emit("targets")

    def set_targets(self, targets: list[TargetView]) -> None:
        """Replace the targets (undo and redo come here). A running fit keeps its parameters,
        as after a camera edit or a removal (:meth:`_swap_targets`): a target that was there
        before keeps its camera refinement unless its camera differs; a new one starts from
        its own camera."""
        with self._both():
            old = self.targets
            rows, new_cameras = [], []
            for k, t in enumerate(targets):
                j = next((j for j, o in enumerate(old) if o is t),
                         k if k < len(old) else None)
                rows.append(0 if j is None else j)
                if j is None or _camera(old[j]) != _camera(t):
                    new_cameras.append(k)
            if not old:
                self.targets = list(targets)
                self._restart()
            else:
                self._swap_targets(list(targets), new_cameras, rows)
        self._emit("targets")

    def _target_index(self, index: int) -> int:
        if not isinstance(index, (int, np.integer)) or not 0 <= index < len(self.targets):
            raise IndexError(f"no target {index!r}; there are {len(self.targets)}")
        return int(index)

    def _replace_target(self, index: int, **changes) -> TargetView:
        """Swap target ``index`` for a validated copy with ``changes`` (see
        :meth:`_swap_targets`)."""
        with self._both():
            i = self._target_index(index)
            new = dataclasses.replace(self.targets[i], **changes)  # validates; may raise
            new_camera = any(k in changes for k in ("azimuth", "elevation", "distance", "fov",
                                                    "pose", "intrinsics"))
            self._swap_targets(self.targets[:i] + [new] + self.targets[i + 1:],
                               [i] if new_camera else [])
        self._emit("targets")
        return new

    def _swap_targets(self, targets: list[TargetView], new_cameras: list[int],
                      rows: list[int] | None = None) -> None:
        """Replace the targets (both locks held). A running fit keeps its parameters (mesh,
        colours, texture, light and the camera refinement of targets whose camera did not
        change), as after a revert: a new generation and fresh Adam moments; the loss history
        goes on (the fit does), the snapshots restart (they hold the old targets' cameras).
        ``new_cameras`` are targets whose camera was set anew (their refinement restarts from
        it); ``rows[k]`` is the old index of new target k when targets went away. Starts from
        scratch, history cleared, when the old state does not fit."""
        ckpt = self._checkpoint() if self.ready else None
        history = self.history
        self.targets = list(targets)
        self._restart()
        if ckpt is None or not self.targets or self.initial_mesh is None:
            return
        delta = ckpt["state"]["cam_delta"]
        delta = (delta if rows is None else delta[rows]).clone()
        delta[new_cameras] = 0.0
        state = dict(ckpt["state"], cam_delta=delta)
        with contextlib.suppress(ValueError, RuntimeError):  # else from scratch
            self._continue_from(state, new_generation=False)  # _restart made one
            self.history = history

    def set_target_camera(self, index: int, azimuth: float, elevation: float, distance: float,
                          fov: float) -> TargetView:
        """Give target ``index`` a new orbit camera (degrees); the fit goes on from its
        current parameters (see :meth:`_swap_targets`).

        Raises ``IndexError`` or ``ValueError`` (non-finite values, distance <= 0, fov outside
        1..170) and then leaves the session unchanged."""
        return self._replace_target(index, azimuth=float(azimuth), elevation=float(elevation),
                                    distance=float(distance), fov=float(fov), pose=None,
                                    intrinsics=None)

    def set_target_pinhole(self, index: int, R, t, fx: float, fy: float, cx: float,
                           cy: float) -> TargetView:
        """Give target ``index`` a general pinhole camera: world-to-camera ``R`` [3,3], ``t``
        [3] (OpenGL axes) and intrinsics in pixels of its image. As
        :meth:`set_target_camera` otherwise."""
        pose = np.concatenate([np.asarray(R, np.float64).reshape(3, 3),
                               np.asarray(t, np.float64).reshape(3, 1)], 1)
        return self._replace_target(index, pose=pose,
                                    intrinsics=(float(fx), float(fy), float(cx), float(cy)))

    def set_target_lens(self, index: int, camera_group: int | None,
                        lock_fov: bool) -> TargetView:
        """Say which photos share a camera (targets with one ``camera_group`` id share one
        fov in camera refinement; None: a camera of its own) and whether refinement keeps
        this target's fov (``lock_fov``). The fit goes on from its current parameters."""
        return self._replace_target(index, camera_group=camera_group, lock_fov=bool(lock_fov))

    def set_target_mask(self, index: int, mask: np.ndarray) -> TargetView:
        """Give target ``index`` a new mask ([H,W] float in [0,1], the image's size); the fit
        goes on from its current parameters."""
        return self._replace_target(index, mask=np.array(mask, dtype=np.float32))

    def remove_target(self, index: int) -> TargetView:
        """Remove target ``index`` and return it; the fit goes on without it."""
        with self._both():
            i = self._target_index(index)
            removed = self.targets[i]
            views = self.config.camera_views
            if views is not None:  # the indices after i move down by one
                self.config = self.config.copy()
                self.config.camera_views = [v - (v > i) for v in views if v != i]
            rows = [k for k in range(len(self.targets)) if k != i]
            self._swap_targets([self.targets[k] for k in rows], [], rows)
        self._emit("targets")
        return removed

    def load_target_mask(self, index: int, path: str | os.PathLike,
                         framing: str = "letterbox") -> TargetView:
        """Use an image file as target ``index``'s mask: its alpha if it has one, else its
        brightness; an image of the photo's own aspect is framed like the photo was.
        Raises :class:`files.LoadError`."""
        rgb, alpha = files.load_image(path)
        with self._lock:
            shape = self.targets[self._target_index(index)].image.shape[:2]
        m = alpha if alpha is not None else rgb.mean(axis=2)
        try:
            return self.set_target_mask(index, photo.fit_mask_to(m, shape, framing))
        except ValueError as e:
            raise files.LoadError(path, str(e)) from None

    def adopt_fitted_cameras(self, indices: list[int] | None = None) -> None:
        """Make the cameras refined by the fit (the camera group) the targets' own cameras;
        the fit goes on from them. ``indices`` limits this to some targets."""
        with self._both():
            if not self.ready:
                raise RuntimeError("there is no fit whose cameras could be adopted")
            fitted = self.fitter().fitted_cameras()
            chosen = range(len(self.targets)) if indices is None else indices
            targets = list(self.targets)
            rows = sorted({self._target_index(i) for i in chosen})
            for i in rows:  # the refined pose is a general camera (it may roll, or pan)
                R, t, intr = fitted[i]
                targets[i] = dataclasses.replace(
                    targets[i], pose=np.concatenate([R, t[:, None]], 1), intrinsics=intr)
            self._swap_targets(targets, rows)
        self._emit("targets")
