"""The Fitter's undo of a step that broke the render, and its learning-rate halving.

A mixin of :class:`render_core.fit.Fitter` (it uses the Fitter's parameters, optimizer and
``_forward``); :meth:`Fitter.step` decides when to call it. Kept apart because what to blame
for a non-finite loss is its own question, not part of building or stepping a fit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .fit_config import ParamGroup


def all_finite(ts) -> bool:
    """Whether every tensor of ``ts`` is finite. A finite sum has finite terms (NaN and inf
    propagate), so one sum per tensor decides, and the elementwise check runs only where the
    sum is not finite (also when finite values overflow it)."""
    for t in ts:
        t = t.detach()
        if not math.isfinite(float(t.sum())) and not bool(torch.isfinite(t).all()):
            return False
    return True


def offenders_of(groups: list[tuple[str, list[torch.Tensor]]]) -> list[str]:
    """The names of the groups ``(name, tensors)`` with a non-finite tensor."""
    return [n for n, ts in groups if not all_finite(ts)]


class FitDivergence:
    """Undo the last accepted step and halve learning rates (mixed into ``Fitter``)."""

    def _can_undo(self) -> bool:
        # In-place writes bump a tensor's version counter: a load_state, restore or any other
        # edit since the last step makes its saved values stale, and so does a new optimizer.
        if self._last is None or self._last[2] is not self._optimizer:
            return False
        return [p._version for p in self._params] == self._last[3]

    def _undo_last_step(self) -> list[str] | None:
        """Put the parameters and optimizer back to before the last accepted step and return
        the groups whose update alone makes the loss non-finite (else every group it moved).
        Returns None, changing nothing, if the loss was not finite before that step either:
        then the data or the settings are to blame, not the step."""
        saved, state, _, _ = self._last
        self._last = None
        bad = [p.detach().clone() for p in self._params]
        self._set_params(saved)
        with torch.no_grad():
            before = float(self._forward()[2])
        if not math.isfinite(before):
            self._set_params(bad)
            return None
        self._optimizer.load_state_dict(state)
        self.steps -= 1
        spans, index = {}, 0
        for pg in self._optimizer.param_groups:
            spans[pg["name"]] = range(index, index + len(pg["params"]))
            index += len(pg["params"])
        moved = [n for n, span in spans.items()
                 if any(not torch.equal(bad[i], saved[i]) for i in span)]
        blamed = []
        with torch.no_grad():
            for name in moved:
                for i in spans[name]:
                    self._params[i].copy_(bad[i])
                if not math.isfinite(float(self._forward()[2])):
                    blamed.append(name)
                for i in spans[name]:
                    self._params[i].copy_(saved[i])
        return blamed or moved

    def _halve_lr(self, names: Sequence[str]) -> None:
        """Halve the learning rate of ``names`` in the config and the optimizer."""
        for name in names:
            g = self.config.groups[name]
            self.config.groups[name] = ParamGroup(g.enabled, g.lr / 2)
        if self._optimizer is not None:
            for pg in self._optimizer.param_groups:
                pg["lr"] = self.config.groups[pg["name"]].lr
