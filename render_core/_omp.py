"""OpenMP's wait policy, set before torch loads its OpenMP runtime.

torch's CPU build runs intra-op threads (``at::parallel_for`` in the native kernels and in
aten) on GNU OpenMP, which by default lets an idle thread spin for a while before it sleeps.
On a machine whose cores are shared with other busy processes, a spinning thread holds a core
that the thread with the actual work is waiting for, at each of a fit step's many small
parallel regions: two threads on a loaded 2-core machine ran a step 3-12x slower than one
(``benchmarks/threads.py``). Passive waits (sleep at once) remove the stall.

The policy is read once, when the OpenMP runtime loads with torch, so :func:`passive_waits`
must run before the first ``import torch`` of the process: importing this module runs it, and
``render_core`` imports it first thing (``studio`` sets the same before anything else). An
``OMP_WAIT_POLICY`` already in the environment is kept.
"""

from __future__ import annotations

import os
import sys


def passive_waits() -> bool:
    """Ask OpenMP for passive waits unless the environment names a policy; returns whether
    it can still take effect in this process (torch not imported yet)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return "torch" not in sys.modules


passive_waits()
