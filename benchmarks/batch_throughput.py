"""Throughput of ``dibr-studio batch``: fits per minute with 1 fit at a time and with one fit
per core, on one local Ray instance, measured in one run and printed as ratios.

Each fit is the demo scene (6 views at 64 px, icosphere start) for ``--steps`` steps with all
its exports, so a fit's fixed costs (loading, exports, moving files) count as they do in a real
batch. The Ray workers are warmed up first (their imports and the native extension's load are
paid once per worker process, not per fit). Usage::

    python benchmarks/batch_throughput.py [--fits 4] [--steps 30] [--cpus N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout, not an installed copy; Ray's workers too:
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT),
                                                         os.environ.get("PYTHONPATH")]))

import ray  # noqa: E402

import studio.batch as sb  # noqa: E402


def _rows(n: int, steps: int, prefix: str) -> dict:
    return {"defaults": {"demo": True, "steps": steps},
            "fits": [{"name": f"{prefix}{i}"} for i in range(n)]}


def _measure(doc: dict, out: Path, **kw) -> tuple[float, list[dict]]:
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    result = sb.run(doc, out, **kw)
    wall = time.perf_counter() - t0
    bad = result.by_status("failed")
    if bad:
        raise SystemExit(f"fits failed: {bad}: {result.records[0].get('error')}")
    return wall, result.records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fits", type=int, default=4, help="fits per configuration (4)")
    ap.add_argument("--steps", type=int, default=30, help="steps per fit (30)")
    ap.add_argument("--cpus", type=int, default=os.cpu_count() or 2,
                    help="CPUs of the local Ray instance (all)")
    args = ap.parse_args()
    cores = args.cpus
    t0 = time.perf_counter()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no network
    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
    start_s = time.perf_counter() - t0
    tmp = Path(tempfile.mkdtemp(prefix="batch-bench-"))
    try:
        # warm-up: one fit per worker, so every configuration finds its workers imported
        warm_s, _ = _measure(_rows(cores, 1, "warm"), tmp / "warm")
        configs = [
            ("1 at a time, 1 thread", dict(cpus_per_fit=1, max_parallel=1)),
            (f"1 at a time, {cores} threads", dict(cpus_per_fit=cores)),
            (f"{cores} at a time (one per core), 1 thread each", dict(cpus_per_fit=1)),
        ]
        rows = []
        for i, (label, kw) in enumerate(configs):
            wall, recs = _measure(_rows(args.fits, args.steps, f"c{i}_"), tmp / f"c{i}", **kw)
            per_fit = sum(r["wall_s"] for r in recs) / len(recs)
            cpu = sum(r["cpu_s"] for r in recs) / len(recs)
            rows.append((label, wall, args.fits / wall * 60.0, per_fit, cpu))
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    base = rows[0][2]
    print(f"dibr-studio batch throughput: {args.fits} demo fits x {args.steps} steps per "
          f"configuration, {cores} CPUs, local Ray (start {start_s:.1f} s, warm-up "
          f"{warm_s:.1f} s)")
    print(f"{'configuration':<44} {'wall s':>8} {'fits/min':>9} {'vs 1 at a time':>15} "
          f"{'wall s/fit':>11} {'CPU s/fit':>10}")
    for label, wall, fpm, per_fit, cpu in rows:
        print(f"{label:<44} {wall:8.1f} {fpm:9.2f} {fpm / base:14.2f}x {per_fit:11.1f} "
              f"{cpu:10.1f}")
    print("wall s/fit: in the worker; CPU s/fit: the worker process's CPU time (all threads), "
          "what a fit costs when the cores are not shared with other work")


if __name__ == "__main__":
    main()
