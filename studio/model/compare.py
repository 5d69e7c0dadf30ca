"""Runs side by side, with no Qt: loss curves kept for comparison, and the rendering models'
names as the studio shows them.

The studio keeps a finished run's total-loss curve (:meth:`KeptCurves.keep`), labelled with its
rendering model and step count, so that a new run with another model, started from the same
initial state (Reset), is drawn over it. Kept curves belong to the window, not to the session:
Reset, a change of model or an undo leaves them; only :meth:`KeptCurves.clear` removes them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from render_core.fit_config import MODEL_SETTINGS, FitConfig

MODEL_LABELS = {"auto": "Automatic (DIB-R + antialiasing for colour losses)", "dibr": "DIB-R",
                "dibr+aa": "DIB-R + edge antialiasing", "softras": "SoftRas", "nmr": "NMR"}
"""What the studio calls each of :data:`render_core.fit_config.MODEL_SETTINGS`."""


def model_label(model: str) -> str:
    """The display name of a rendering model (its key when the studio has no name for it)."""
    return MODEL_LABELS.get(model, model)


def model_choices() -> list[tuple[str, str]]:
    """``(key, label)`` of every rendering model setting a fit accepts, in FitConfig's order
    (``"auto"`` first)."""
    return [(m, model_label(m)) for m in MODEL_SETTINGS]


def auto_label(config: FitConfig) -> str:
    """The label of the ``"auto"`` setting under ``config``'s losses, saying what it renders
    with (``"Automatic (now DIB-R + edge antialiasing)"``), whatever ``config.model`` is."""
    return f"Automatic (now {model_label(replace(config, model='auto').rendering_model())})"


@dataclass(frozen=True)
class KeptCurve:
    """One kept run: ``steps`` (int64 [N]) and the weighted total loss at each (float64 [N],
    NaN where a step recorded none), the model it ran with and its label."""

    label: str
    model: str
    steps: np.ndarray
    total: np.ndarray


class KeptCurves:
    """The curves kept for comparison, oldest first; ``listeners`` are called (no argument)
    after every change."""

    def __init__(self) -> None:
        self.items: list[KeptCurve] = []
        self.listeners: list[Callable[[], None]] = []

    def keep(self, history: list[dict], model: str) -> KeptCurve:
        """Keep the run whose per-step records are ``history`` (``Session.history``: dicts
        with ``step`` and ``total``), rendered with ``model``. The label names the model and
        the last step (``"DIB-R, 80 steps"``), numbered when the same label is kept twice.
        Raises ``ValueError`` when the history has no step."""
        if not history:
            raise ValueError("there is no loss curve to keep: run the fit first")
        steps = np.array([int(m.get("step", i + 1)) for i, m in enumerate(history)], np.int64)
        total = np.array([float(m.get("total", np.nan)) for m in history], np.float64)
        base = f"{model_label(model)}, {int(steps[-1])} steps"
        taken = {c.label for c in self.items}
        label, n = base, 1
        while label in taken:
            n += 1
            label = f"{base} ({n})"
        curve = KeptCurve(label, model, steps, total)
        self.items.append(curve)
        self._changed()
        return curve

    def clear(self) -> None:
        """Forget every kept curve."""
        if self.items:
            self.items = []
            self._changed()

    def _changed(self) -> None:
        for cb in list(self.listeners):
            cb()
