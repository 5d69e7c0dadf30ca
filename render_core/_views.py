"""Which targets a fit step renders: all of them, or a random subset (``views_per_step``).

A subset is drawn from the step number alone (a seeded permutation), so a fit continued from a
checkpoint, in another process or after a reopen, renders the same views at the same step as
the uninterrupted one: no random state needs saving. A rolled-back step (the step number does
not advance) retries the same views at the lowered learning rate.
"""

from __future__ import annotations

import numpy as np

# Fixed so that two runs of one problem agree; any value works.
_SEED = 0x5EED


def step_views(n_targets: int, per_step: int | None, step: int) -> list[int] | None:
    """The target indices step ``step`` renders, ascending; None means every target.

    ``per_step`` None, or at least ``n_targets``, renders all. Each index appears equally
    often in expectation, so the mean losses over the subset (IoU, L1: means over views)
    are unbiased estimates of the means over all targets and need no rescaling.
    """
    if per_step is None or per_step >= n_targets:
        return None
    rng = np.random.default_rng([_SEED, int(step)])
    return sorted(int(i) for i in rng.permutation(n_targets)[: int(per_step)])
