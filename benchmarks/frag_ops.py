"""The fit step's hard-raster ops alone: ms of the native CPU visibility, barycentrics and
interpolation passes (forward and backward), this checkout against a base revision timed in
the same run.

    python benchmarks/frag_ops.py [--base REV] [--threads 1,2] [--reps 100] [--rounds 2]

The scene is the fit benchmark's (benchmarks/fit_step.py) at 128x128: the 5,120-face start
icosphere in the six demo views. The interpolation runs as the Renderer runs it: through the
covered pixels' own [1,1,P] fragments, 6 channels (vertex colours and normals side by side).
Each op is run ``--reps`` times after a warm-up and its fastest run counts (other load only
adds time); each implementation runs in a subprocess (``git archive`` of ``--base``, default
``main``, for the base), ``--rounds`` times interleaved, the fastest round counting. The table
gives ms per op and the speedup base/this; the load average is printed at the start and end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
CODE = Path(os.environ.get("DIBR_BENCH_CODE", HERE))  # whose render_core a child times
sys.path.insert(0, str(CODE))
sys.path.insert(0, str(HERE / "benchmarks"))

OPS = ("vis", "bary_fwd", "bary_bwd", "interp_fwd", "interp_bwd")


def child(threads: int, reps: int) -> dict[str, float]:
    """Fastest ms of each op in this process (render_core from ``CODE``)."""
    import render_core as rc  # before torch: it sets OpenMP's wait policy

    # isort: split
    import torch

    from render_core._native import _kernel
    from studio.model.demo import DEMO_DISTANCE, DEMO_FOV, DEMO_VIEWS

    torch.set_num_threads(threads)
    mesh = rc.icosphere(subdivisions=4)
    cams = rc.Camera.orbit([a for a, _ in DEMO_VIEWS], [e for _, e in DEMO_VIEWS],
                           DEMO_DISTANCE, fov=DEMO_FOV)
    clip = cams.to_clip(mesh.vertices).detach().float().contiguous()
    faces = mesh.faces.long().contiguous()
    k = {name: _kernel("cpu", name) for name in
         ("vis_forward", "bary_forward", "bary_backward", "interp_forward", "interp_backward")}
    face_idx = k["vis_forward"](clip, faces, 128, 128)
    bary, _ = k["bary_forward"](clip, faces, face_idx)
    sel = face_idx.reshape(-1).ge(0).nonzero().squeeze(1)
    p = sel.numel()
    fi1 = face_idx.reshape(-1)[sel].view(1, 1, p)
    b1 = bary.reshape(-1, 3)[sel].view(1, 1, p, 3).contiguous()
    g = torch.Generator().manual_seed(0)
    attr = torch.rand(1, clip.shape[1], 6, generator=g)
    grad_out = torch.rand(1, 1, p, 6, generator=g)
    grad_bary = torch.rand(*bary.shape, generator=g)
    ops = {
        "vis": lambda: k["vis_forward"](clip, faces, 128, 128),
        "bary_fwd": lambda: k["bary_forward"](clip, faces, face_idx),
        "bary_bwd": lambda: k["bary_backward"](clip, faces, face_idx, grad_bary, None),
        "interp_fwd": lambda: k["interp_forward"](attr, faces, fi1, b1),
        "interp_bwd": lambda: k["interp_backward"](attr, faces, fi1, b1, grad_out),
    }
    out = {}
    for name in OPS:
        fn = ops[name]
        for _ in range(5):
            fn()
        best = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        out[name] = 1000.0 * best
    return out


def run(code: Path, threads: int, reps: int) -> dict[str, float]:
    env = dict(os.environ, DIBR_BENCH_CODE=str(code), PYTHONPATH=str(code))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(threads),
           "--reps", str(reps)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="main", help="base revision (default main)")
    ap.add_argument("--threads", default="1,2", help="torch thread counts (default 1,2)")
    ap.add_argument("--reps", type=int, default=100, help="runs per op (default 100)")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default 2)")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.reps)))
        return 0
    from fit_step import extract

    print("load average at start:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    with tempfile.TemporaryDirectory() as tmp:
        base = extract(args.base, Path(tmp))
        print(f"{'threads':>7} {'op':>11} {'this ms':>8} {args.base + ' ms':>12} {'base/this':>9}")
        for threads in [int(t) for t in args.threads.split(",")]:
            this = {o: float("inf") for o in OPS}
            ref = dict(this)
            for _ in range(args.rounds):
                for acc, code in ((this, HERE), (ref, base)):
                    got = run(code, threads, args.reps)
                    for o in OPS:
                        acc[o] = min(acc[o], got[o])
            for o in OPS:
                print(f"{threads:>7} {o:>11} {this[o]:8.3f} {ref[o]:12.3f} "
                      f"{ref[o] / this[o]:8.2f}x")
            tot_t, tot_b = sum(this.values()), sum(ref.values())
            print(f"{threads:>7} {'all':>11} {tot_t:8.3f} {tot_b:12.3f} {tot_b / tot_t:8.2f}x")
    print("load average at end:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
