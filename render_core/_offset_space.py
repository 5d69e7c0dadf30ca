"""How the Fitter's ``offset`` tensor maps to the vertices' displacement (FitConfig.large_steps).

With lambda None the offset *is* the displacement ``d``; with a lambda it is
``u = (I + lambda L) d`` (Large Steps) and ``d = (I + lambda L)^-1 u`` comes from one sparse
solve with a factor made once per space (:class:`render_core.large_steps.SmoothParameterization`).
"""

from __future__ import annotations

import torch


class OffsetSpace:
    """The space of an offset: ``lam`` (None, or the large_steps lambda) and its factor."""

    def __init__(self, lam: float | None, faces: torch.Tensor, like: torch.Tensor):
        self.lam = None if lam is None else float(lam)
        self._smooth = None
        if self.lam is not None:
            from .large_steps import SmoothParameterization

            self._smooth = SmoothParameterization(torch.zeros_like(like), faces, self.lam)

    def displacement(self, offset: torch.Tensor) -> torch.Tensor:
        """The displacement [V,3] an offset of this space stands for (differentiable)."""
        return offset if self._smooth is None else self._smooth.vertices(offset)

    def offset_of(self, displacement: torch.Tensor) -> torch.Tensor:
        """The offset of this space that stands for ``displacement`` [V,3]."""
        return displacement if self._smooth is None else self._smooth.to_u(displacement)

    def move(self, offset: torch.Tensor, new: OffsetSpace) -> None:
        """Rewrite ``offset`` in place from this space to ``new``, keeping the displacement."""
        with torch.no_grad():
            offset.copy_(new.offset_of(self.displacement(offset).detach().clone()))
