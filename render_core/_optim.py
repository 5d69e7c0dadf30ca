"""The Fitter's optimizer when some groups take uniform Adam steps (Large Steps).

:class:`MixedAdam` is ``torch.optim.Adam`` for every parameter group except those marked
``uniform=True``, which get the update of :class:`render_core.large_steps.AdamUniform` (one
second-moment normaliser per tensor: its maximum). Both keep Adam's state keys (``step``,
``exp_avg``, ``exp_avg_sq``), so checkpoints, rollback (``state_dict``) and the studio's saved
sessions treat it as an Adam. Groups without the flag are updated by torch's own Adam code,
bit for bit.
"""

from __future__ import annotations

import torch

from .large_steps import uniform_adam_update


class MixedAdam(torch.optim.Adam):
    """Adam, with uniform (max-normalised) steps for the groups that ask for them."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        all_groups = self.param_groups
        uniform = [g for g in all_groups if g.get("uniform")]
        try:
            self.param_groups = [g for g in all_groups if not g.get("uniform")]
            if self.param_groups:
                super().step()
        finally:
            self.param_groups = all_groups
        for group in uniform:
            for p in group["params"]:
                if p.grad is not None:
                    uniform_adam_update(p, self.state[p], group["lr"], group["betas"],
                                        group["eps"])
        return loss
