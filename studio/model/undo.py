"""Undo/redo of edits to the settings, the targets (cameras, masks, which targets) and the start
mesh. No Qt.

Snapshot based: the session's *edit state* is its :class:`FitConfig`, the tuple of its
:class:`TargetView` objects and its start mesh. Session methods never modify a target or a mesh
in place (an edit swaps in a new object), and arrays are treated as immutable, so a snapshot is
just references and costs nothing. :class:`UndoStack` listens to the session's events and
records the state before every change, whichever method made it; undoing puts a recorded state
back through the session's own methods (``set_config``, ``set_targets``, ``restore_start``), so
views hear about it as about any edit. A change of start mesh (a file, a primitive, the visual
hull, freezing the geometry) also keeps the fit it ended (:class:`FitPoint`: checkpoint, loss
history), so undoing it continues that fit where it stood. Fit parameters and loss history are
not edits otherwise: "revert to step" and saved sessions cover those.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import render_core as rc
from render_core.fit import FitConfig, TargetView

from .session import Session
from .session_start import FitPoint


@dataclass(frozen=True, eq=False)
class EditState:
    """What undo restores: the settings, the targets and the start mesh (by identity), and for
    a state left by a change of start mesh the fit it had made (``fit``)."""

    config: FitConfig
    targets: tuple[TargetView, ...]
    mesh: rc.Mesh | None = None
    mesh_name: str = ""
    fit: FitPoint | None = None

    @classmethod
    def of(cls, session: Session) -> EditState:
        with session.locked():
            return cls(session.config.copy(), tuple(session.targets), session.initial_mesh,
                       session.mesh_name)

    def same_mesh(self, other: EditState) -> bool:
        return self.mesh is other.mesh

    def same_targets(self, other: EditState) -> bool:
        return len(self.targets) == len(other.targets) and all(
            a is b for a, b in zip(self.targets, other.targets, strict=True))

    def changed_settings(self, other: EditState) -> set[str]:
        """Names of the settings that differ (``groups.vertices.lr``, ``shading``, …)."""
        a, b = _flat(self.config.to_dict()), _flat(other.config.to_dict())
        return {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


class UndoStack:
    """Records the session's edit states; :meth:`undo` and :meth:`redo` move between them.

    Args:
        session: the session to watch (subscribes to its events).
        limit: how many states to keep.
        merge_seconds: consecutive edits of the same settings closer together than this
            (a spin box dragged, a value typed digit by digit) become one undo step.
        clock: time source in seconds (for tests).

    A session that is opened from a file (event ``"session"``) starts a fresh history.
    """

    def __init__(self, session: Session, limit: int = 100, merge_seconds: float = 1.0,
                 clock: Callable[[], float] = time.monotonic):
        self.session = session
        self.limit = int(limit)
        self.merge_seconds = float(merge_seconds)
        self._clock = clock
        self._undo: list[EditState] = []
        self._redo: list[EditState] = []
        self._current = EditState.of(session)
        self._last_edit: tuple[float, frozenset[str]] | None = None
        self._applying = False
        self._left_behind = self._current
        self.listeners: list[Callable[[], None]] = []
        self.unsubscribe = session.subscribe(self._on_event)

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def clear(self) -> None:
        """Forget every recorded state (the current one becomes the base)."""
        self._undo.clear()
        self._redo.clear()
        self._current = EditState.of(self.session)
        self._last_edit = None
        self._changed()

    def _changed(self) -> None:
        for cb in list(self.listeners):
            cb()

    def _on_event(self, event: str) -> None:
        if self._applying:
            return
        if event == "session":
            self.clear()
            return
        new = EditState.of(self.session)
        if self._current.mesh is None and new.mesh is not None:
            self._current = new  # the first mesh is the base, as the opening scene is
            self._changed()
            return
        if not new.same_mesh(self._current):
            fields = frozenset({"mesh"})
        elif new.same_targets(self._current):
            fields = frozenset(new.changed_settings(self._current))
            if not fields:
                return  # a step, reset or revert: nothing the user edited
        else:
            fields = frozenset({"targets"})
        now = self._clock()
        last = self._last_edit
        merge = (last is not None and fields == last[1] and not fields & {"targets", "mesh"}
                 and now - last[0] < self.merge_seconds and self._undo)
        if not merge:
            self._undo.append(self._left(self._current))
            del self._undo[:-self.limit]
        self._redo.clear()
        self._current = new
        self._last_edit = (now, fields)
        self._changed()

    def undo(self) -> bool:
        """Go back one edit; False when there is none."""
        return self._move(self._undo, self._redo)

    def redo(self) -> bool:
        """Re-apply the last undone edit; False when there is none."""
        return self._move(self._redo, self._undo)

    def _left(self, state: EditState) -> EditState:
        """``state`` as the session just left it: with the fit it had made when what ended it
        was a change of start mesh (:attr:`Session.replaced`)."""
        fit = self.session.replaced
        if fit is not None and fit.mesh is state.mesh and not state.same_mesh(
                EditState.of(self.session)):
            return replace(state, fit=fit)
        return state

    def _move(self, source: list, target: list) -> bool:
        """Apply the newest state of ``source``, keeping the current one on ``target``. A
        state the session refuses stays where it was (the error propagates)."""
        if not source:
            return False
        self._apply(source[-1])
        source.pop()
        target.append(self._left(self._left_behind))
        self._current = EditState.of(self.session)
        self._changed()
        return True

    def _apply(self, state: EditState) -> None:
        self._left_behind = self._current
        self._applying = True
        try:
            if not state.same_mesh(EditState.of(self.session)):
                self.session.restore_start(state.mesh, state.mesh_name, list(state.targets),
                                           state.config, state.fit)
                return
            if not state.same_targets(EditState.of(self.session)):
                self.session.set_targets(list(state.targets))
            if state.config != self.session.config:
                self.session.set_config(state.config)
        finally:
            self._applying = False
        self._last_edit = None
