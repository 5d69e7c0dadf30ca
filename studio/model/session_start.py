"""The start-mesh half of :class:`studio.model.session.Session`: replacing the mesh a fit starts
from so that undo can bring the old one back with the fit it had made. No Qt.

A part of ``Session`` (its base class), kept apart because it is one idea. Every replacement of
the start mesh (a file, a primitive, the visual hull, "freeze geometry",
:mod:`studio.model.stages`) goes through :meth:`StartEditing.set_start`, which first keeps the
fit it ends as a :class:`FitPoint` in :attr:`StartEditing.replaced`, so
:class:`~studio.model.undo.UndoStack` can record it with the state it leaves; undo and redo come
back through :meth:`StartEditing.restore_start`, which continues that fit exactly (Adam moments,
loss history, snapshots). It uses the session's locks, events and fit (``_both``, ``_lock``,
``_restart``, ``_emit``, ``_checkpoint``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import render_core as rc
from render_core.fit import FitConfig, Fitter, TargetView

from .snapshots import Snapshots


@dataclass(eq=False)
class FitPoint:
    """A fit as it stood when its start mesh was replaced: its checkpoint (None when it had
    not run), loss history, step count and snapshots, for :meth:`StartEditing.restore_start`."""

    mesh: rc.Mesh | None
    checkpoint: dict | None = None
    history: list[dict] = field(default_factory=list)
    steps: int = 0
    snapshots: Snapshots | None = None


class StartEditing:
    """The start-mesh half of a :class:`~studio.model.session.Session`."""

    replaced: FitPoint | None = None
    """The fit that the latest :meth:`set_start` or :meth:`restore_start` ended (its ``mesh``
    is the start mesh it had), for the undo stack."""
    loaded_mesh: tuple[rc.Mesh, str] | None = None
    """The mesh the user opened (a file, or a saved session's start) and its name, for
    "Start from ▸ loaded mesh"; None when none was."""

    def _fit_point(self) -> FitPoint:
        """(Both locks held.) The fit as it stands, for :attr:`replaced`."""
        ckpt = None
        if self.initial_mesh is not None and self.ready:
            with contextlib.suppress(RuntimeError, ValueError):  # a dead child: no progress
                ckpt = self._checkpoint()
        return FitPoint(self.initial_mesh, ckpt, list(self.history), int(self._steps),
                        self.snapshots)

    def set_start(self, mesh: rc.Mesh, name: str, config: FitConfig | None = None,
                  targets: list[TargetView] | None = None, loaded: bool = False) -> None:
        """Start the fit afresh from ``mesh`` (copied), with new settings and targets when
        given, all at once (one undo step). The fit it ends is kept in :attr:`replaced`.
        ``loaded``: the mesh is one the user opened (:attr:`loaded_mesh`). Settings are
        validated first; a refusal changes nothing. Emits ``"mesh"`` (then ``"targets"``,
        ``"config"`` for what was given)."""
        if config is not None:
            config = config.copy()
            config.validate()
        mesh = mesh.detach().clone()
        with self._both():
            self.replaced = self._fit_point()
            self.initial_mesh = mesh
            self.mesh_name = name
            if targets is not None:
                self.targets = list(targets)
            if config is not None:
                self.config = config
            if loaded:
                self.loaded_mesh = (mesh, name)
            self._restart()
        self._emit("mesh")
        if targets is not None:
            self._emit("targets")
        if config is not None:
            self._emit("config")

    def restore_start(self, mesh: rc.Mesh | None, name: str, targets: list[TargetView],
                      config: FitConfig, fit: FitPoint | None) -> bool:
        """Put back a start mesh with its targets and settings (undo and redo come here) and,
        when ``fit`` holds one, continue the fit it had made exactly. Returns False when that
        fit no longer fits (it then starts afresh). The fit this ends goes to
        :attr:`replaced`. Emits ``"mesh"``, ``"targets"`` and ``"config"``."""
        config = config.copy()
        config.validate()
        resumed = True
        with self._both():
            self.replaced = self._fit_point()
            self.initial_mesh = mesh
            self.mesh_name = name
            self.targets = list(targets)
            self.config = config
            self._restart()
            if fit is not None and fit.checkpoint is not None and self.ready:
                try:  # refuse here, not at the next step, a fit that does not match
                    Fitter(mesh, self.targets, config).restore(fit.checkpoint)
                except (ValueError, RuntimeError, KeyError, IndexError):
                    resumed = False
                else:
                    self._resume = (self.generation, fit.checkpoint)
                    self.history = list(fit.history)
                    self._steps = fit.steps
                    if fit.snapshots is not None:
                        self.snapshots = fit.snapshots.copy()
        for event in ("mesh", "targets", "config"):
            self._emit(event)
        return resumed
