"""What one :meth:`render_core.fit.Fitter.step` reports, and its flat record for histories."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["StepResult"]


@dataclass(frozen=True)
class StepResult:
    """One optimisation step.

    ``loss`` is the weighted total and ``terms`` each unweighted term of
    :data:`render_core.fit.LOSS_TERMS`; ``iou`` the hard silhouette IoU of the parameters
    before the step; ``step`` the accepted steps after it. ``rolled_back``: the step was
    refused as diverging (``undone``: the step before it was taken back too); ``lr_halved``
    the groups whose learning rate was halved for it, with their new rates in ``lr``."""

    loss: float
    terms: dict[str, float]
    iou: float
    step: int
    rolled_back: bool = False
    undone: bool = False
    lr: dict[str, float] = field(default_factory=dict)
    lr_halved: tuple[str, ...] = ()

    def record(self) -> dict:
        """The flat, JSON-ready metrics kept in a session's history, its session file and
        history.json: each term, ``total``, ``silhouette_iou``, ``step``, ``rolled_back``,
        ``undone``, ``lr_halved`` (comma-joined, ``""`` when none) and ``lr_<group>`` for
        each halved group."""
        out: dict = dict(self.terms)
        out.update(total=self.loss, silhouette_iou=self.iou, step=self.step,
                   rolled_back=self.rolled_back, undone=self.undone,
                   lr_halved=",".join(self.lr_halved))
        out.update({f"lr_{name}": lr for name, lr in self.lr.items()})
        return out
