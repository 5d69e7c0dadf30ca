"""The Fitter's optimizer when some groups take uniform Adam steps (Large Steps).

:class:`MixedAdam` is ``torch.optim.Adam`` for every parameter group except those marked
``uniform=True``, which get the update of :class:`render_core.large_steps.AdamUniform` (one
second-moment normaliser per tensor: its maximum). Both keep Adam's state keys (``step``,
``exp_avg``, ``exp_avg_sq``), so checkpoints, rollback (``state_dict``) and the studio's saved
sessions treat it as an Adam. Groups without the flag are updated by torch's own Adam code,
bit for bit: on the CPU with Adam's default options, its single-tensor update run as foreach
ops over every tensor at once (the same per-tensor ops with the same Python-float factors, a
few calls instead of a few per tensor); otherwise torch's ``Adam.step`` itself.

:meth:`MixedAdam.snapshot` is ``copy.deepcopy(state_dict())`` for the Fitter's per-step undo,
without deepcopy's bookkeeping.
"""

from __future__ import annotations

import copy

import torch

from .large_steps import uniform_adam_update

# Adam's options under which torch runs its single-tensor update on the CPU.
_PLAIN = (("amsgrad", False), ("weight_decay", 0), ("maximize", False), ("capturable", False),
          ("differentiable", False), ("decoupled_weight_decay", False))
_ATOMIC = (int, float, bool, str, type(None))


def _plain(group: dict) -> bool:
    return (all(group.get(k, v) == v for k, v in _PLAIN)
            and not group.get("foreach") and not group.get("fused")
            and not torch.is_tensor(group["lr"])
            and not any(torch.is_tensor(b) for b in group["betas"]))


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
        plain = [g for g in all_groups if not g.get("uniform")]
        if plain and not self._foreach_step(plain):
            try:
                self.param_groups = plain
                super().step()
            finally:
                self.param_groups = all_groups
        for group in uniform:
            for p in group["params"]:
                if p.grad is not None:
                    uniform_adam_update(p, self.state[p], group["lr"], group["betas"],
                                        group["eps"])
        return loss

    def _foreach_step(self, groups: list[dict]) -> bool:
        """torch's single-tensor Adam update of ``groups`` as foreach ops; False, having
        changed nothing, where torch would take another path (options, devices, sparse or
        complex tensors, a grad scaler)."""
        if getattr(self, "grad_scale", None) is not None or getattr(
                self, "found_inf", None) is not None:
            return False
        todo = []
        for g in groups:
            if not _plain(g):
                return False
            for p in g["params"]:
                if p.grad is None:
                    continue
                if (p.device.type != "cpu" or p.grad.device.type != "cpu" or p.grad.is_sparse
                        or torch.is_complex(p)):
                    return False
                todo.append((g, p))
        batches: dict[tuple, tuple[list, ...]] = {}
        step_dtype = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
        for g, p in todo:
            st = self.state[p]
            if len(st) == 0:  # as Adam._init_group
                st["step"] = torch.tensor(0.0, dtype=step_dtype)
                st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            b = batches.setdefault((*g["betas"], g["eps"]), ([], [], [], [], [], []))
            for lst, v in zip(b, (p, p.grad, st["exp_avg"], st["exp_avg_sq"], st["step"],
                                  g["lr"]), strict=True):
                lst.append(v)
        # torch.optim.adam._single_tensor_adam, tensor by tensor:
        #   step += 1; m.lerp_(g, 1 - b1); v.mul_(b2).addcmul_(g, g, value=1 - b2)
        #   p.addcdiv_(m, (v.sqrt() / (1 - b2^step)^0.5).add_(eps), value=-lr / (1 - b1^step))
        for (b1, b2, eps), (ps, gs, ms, vs, steps, lrs) in batches.items():
            torch._foreach_add_(steps, 1)
            torch._foreach_lerp_(ms, gs, 1 - b1)
            torch._foreach_mul_(vs, b2)
            torch._foreach_addcmul_(vs, gs, gs, 1 - b2)
            ts = [s.item() for s in steps]
            denom = torch._foreach_sqrt(vs)
            torch._foreach_div_(denom, [(1 - b2**t) ** 0.5 for t in ts])
            torch._foreach_add_(denom, eps)
            torch._foreach_addcdiv_(ps, ms, denom, [-(lr / (1 - b1**t))
                                                    for lr, t in zip(lrs, ts, strict=True)])
        return True

    def snapshot(self) -> dict:
        """``copy.deepcopy(self.state_dict())`` (for ``load_state_dict``): every state tensor
        cloned, every group's settings copied (immutable values shared, as deepcopy shares
        them), without deepcopy's per-object bookkeeping (a step a frame, so this runs every
        step)."""
        index: dict[int, int] = {}
        groups, start = [], 0
        for g in self.param_groups:
            for i, p in enumerate(g["params"], start):
                index.setdefault(id(p), i)
            packed = {k: v if isinstance(v, _ATOMIC) or (type(v) is tuple and all(
                isinstance(x, _ATOMIC) for x in v)) else copy.deepcopy(v)
                for k, v in g.items() if k != "params"}
            packed["params"] = [index[id(p)] for p in g["params"]]
            start += len(packed["params"])
            groups.append(packed)
        keys, tensors = [], []
        state: dict = {}
        for p, s in self.state.items():
            i = index[id(p)] if isinstance(p, torch.Tensor) else p
            state[i] = dict(s)
            for k, v in s.items():
                if torch.is_tensor(v):
                    keys.append((i, k))
                    tensors.append(v)
                else:
                    state[i][k] = copy.deepcopy(v)
        with torch.no_grad():
            for (i, k), v in zip(keys, torch._foreach_clone(tensors) if tensors else [],
                                 strict=True):
                state[i][k] = v
        return {"state": state, "param_groups": groups}
