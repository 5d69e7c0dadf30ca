"""Bounded snapshots of a fit's parameters, for "revert mesh to step k". No Qt.

A snapshot is a :meth:`Fitter.state` (detached copies and the step counters). The list stays
short however long the fit runs: past its limit it is thinned to every other snapshot, always
keeping the oldest and the newest, so early steps stay reachable at coarser spacing.
"""

from __future__ import annotations

MAX_SNAPSHOTS = 200
"""Default bound on the number of snapshots kept."""


class Snapshots:
    """Fitter states in step order, at most ``limit`` of them."""

    def __init__(self, limit: int = MAX_SNAPSHOTS):
        self.limit = max(2, int(limit))
        self._items: list[dict] = []

    def __len__(self) -> int:
        return len(self._items)

    def steps(self) -> list[int]:
        """The steps that can be restored exactly, oldest first."""
        return [int(s["steps"]) for s in self._items]

    def record(self, state: dict) -> None:
        """Add a state (a newer one of the same step replaces it)."""
        if self._items and self._items[-1]["steps"] == state["steps"]:
            self._items[-1] = state
            return
        self._items.append(state)
        if len(self._items) > self.limit:
            self._items = self._items[:-1:2] + self._items[-1:]

    def at_or_before(self, step: int) -> dict:
        """The newest state whose step is at most ``step``; ``ValueError`` when none is."""
        older = [s for s in self._items if s["steps"] <= int(step)]
        if not older:
            first = self._items[0]["steps"] if self._items else "none"
            raise ValueError(f"no snapshot at or before step {step}; the oldest is {first}")
        return older[-1]

    def copy(self) -> Snapshots:
        """Another list of the same states (they are never changed in place)."""
        out = Snapshots(self.limit)
        out._items = list(self._items)
        return out

    def drop_after(self, step: int) -> None:
        """Forget the states of steps after ``step`` (they belong to an abandoned branch)."""
        self._items = [s for s in self._items if s["steps"] <= int(step)]
