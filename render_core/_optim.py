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
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                st = self.state[p]
                if not st:
                    st["step"] = torch.zeros((), dtype=torch.float32)
                    st["exp_avg"] = torch.zeros_like(p)
                    st["exp_avg_sq"] = torch.zeros_like(p)
                st["step"] += 1
                t = float(st["step"])
                m, v = st["exp_avg"], st["exp_avg_sq"]
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                scale = (v.max() / (1 - b2 ** t)).sqrt() + group["eps"]
                step = m / ((1 - b1 ** t) * scale) * group["lr"]
                if not bool(torch.isfinite(step).all()):
                    raise OverflowError("uniform Adam step is not finite")
                p.sub_(step)
        return loss
