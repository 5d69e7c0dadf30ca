"""Why two torch threads stalled on a loaded 2-core machine, and the fix: ms per fit step for
one thread, two threads with OpenMP's default (spinning) waits, two threads with passive
waits, and two with passive waits after a short spin, each in a fresh process (the wait
policy is read once, when torch loads OpenMP).

    python benchmarks/threads.py [--steps 10] [--sizes 64,128]

torch's CPU build runs its intra-op threads (``at::parallel_for`` in our kernels and in aten)
on GNU OpenMP. By default a thread that finishes its share of a parallel region, or waits for
the next one, spins for a while (300,000 rounds, about 3 ms, unless ``OMP_WAIT_POLICY`` or
``GOMP_SPINCOUNT`` say otherwise) before sleeping. With two
threads on two cores and any other busy process, the spinning thread holds a core that the
thread with the actual work is waiting for, at every one of the step's many small parallel
regions; each region then costs a scheduler time slice instead of microseconds.
``OMP_WAIT_POLICY=PASSIVE`` makes waiting threads sleep at once; ``render_core`` sets it
(unless the environment already names a policy) before it imports torch. The last row, passive
waits after a short spin, shows what waking the threads at each region costs on an idle
machine, and what a spin costs under load.

The table gives ms/step and the ratio to one thread (above 1: slower than one thread). The
load average is printed before and after: the stall needs other load to show.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPIN_ROUNDS = 10_000
"""The short spin of the last variant (``GOMP_SPINCOUNT``, about 0.1 ms): on an idle 2-core
machine it bridged the gaps between a step's parallel regions (128²: 2.5 ms a step faster than
passive waits), but under load it stalled again (62 vs 44 ms a step), so ``render_core`` keeps
plain passive waits."""

VARIANTS = (
    ("1 thread", 1, None, None),
    ("2 threads, default waits", 2, None, None),
    ("2 threads, passive waits", 2, "PASSIVE", None),
    (f"2 threads, passive, spin {SPIN_ROUNDS}", 2, "PASSIVE", SPIN_ROUNDS),
)
"""(name, torch threads, OMP_WAIT_POLICY, GOMP_SPINCOUNT: None leaves it unset, OpenMP's
default)."""


def _child(size: int, steps: int, threads: int) -> None:
    """Time the fit step in this process and print one JSON line."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import torch  # first, so OpenMP loads with the policy of this process's environment
    from fit_step import SIZES, make_targets, time_steps

    torch.set_num_threads(threads)
    sec = time_steps(size, SIZES[size], make_targets(size), "cpu", steps)
    print(json.dumps({"ms": 1000.0 * sec}))


def _run(size: int, steps: int, threads: int, policy: str | None, spin: int | None) -> float:
    full = dict(os.environ, PYTHONPATH=str(ROOT))
    full.pop("OMP_WAIT_POLICY", None)
    full.pop("GOMP_SPINCOUNT", None)
    if policy is not None:
        full["OMP_WAIT_POLICY"] = policy
    if spin is not None:
        full["GOMP_SPINCOUNT"] = str(spin)
    out = subprocess.run([sys.executable, __file__, "--child", str(size), str(steps),
                          str(threads)], env=full, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["ms"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10, help="timed steps per run (default 10)")
    ap.add_argument("--sizes", default="64,128", help="render heights, of 64,128,256")
    ap.add_argument("--child", nargs=3, type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(*args.child)
        return 0
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    print(f"cores: {os.cpu_count()}; load average before: "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    header = f"{'size':<6} {'variant':<32} {'ms/step':>9} {'vs 1 thread':>12}"
    print(header)
    print("-" * len(header))
    for size in sizes:
        one = None
        for name, threads, policy, spin in VARIANTS:
            ms = _run(size, args.steps, threads, policy, spin)
            one = ms if one is None else one
            print(f"{size:<6} {name:<32} {ms:>9.1f} {ms / one:>12.2f}", flush=True)
    print("load average after: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
