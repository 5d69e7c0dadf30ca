"""Interactive speed of the studio's fit step: ms per :meth:`render_core.fit.Fitter.step`, this
checkout against base revisions' implementations timed in the same run.

    python benchmarks/fit_step.py [--steps 20] [--sizes 64,128,256] [--threads N]
                                  [--base REV,... | --no-base] [--torch] [--views-per-step K]
                                  [--iou-steps 200]

The problem is the studio's demo scene (:mod:`studio.model.demo`): the six demo cameras see
the demo object, rendered at the fit resolution, and an icosphere is fitted to them with the
``vertices``, ``colors``, ``light`` and ``camera`` groups on and Lambertian shading. Sizes
(render height, start mesh):

- 64: 64x64, icosphere with 3 subdivisions (1,280 faces)
- 128: 128x128, icosphere with 4 subdivisions (5,120 faces)
- 256: 256x256, icosphere with 5 subdivisions (20,480 faces)

The baselines are previous implementations: each of ``--base REV,...`` (default
:data:`BASE_REVS`: the code the issue measured, and the code before its items 2 and 3) is
extracted with ``git archive`` into a temporary folder and the same timing loop runs there, in a
subprocess, interleaved with this checkout's (also a subprocess), so all see the same machine;
a base's native extension is built on first use and cached. Every process gets this process's
environment (``render_core`` sets OpenMP's passive waits here, so a base is not handicapped by
the spinning threads that ``benchmarks/threads.py`` measures). ``--torch`` adds the pure torch
rasterizer as another baseline (minutes at 256).

A run is 3 warm-up steps and then ``--steps`` timed steps; each implementation runs
``--rounds`` times, interleaved, and the fastest run counts (other load only adds time). The
table gives the mean wall ms/step (``time.perf_counter``), steps/s and the speedup base/this,
and the process CPU ms/step (``time.process_time``, all threads summed) with its speedup,
which a loaded machine disturbs less than the wall clock. The target is 30 steps/s (at most
33 ms a step) and 5x the first base at 128x128 with 5,120 faces.

Results unchanged: each implementation runs ``--iou-steps`` (200) steps of the same fit at
64x64 with 1,280 faces (the studio's demo size) and prints the hard silhouette IoU it reaches;
the target is this checkout within :data:`IOU_TOLERANCE` of every base.

Then the soft silhouette alone (this checkout, native CPU, the fitted icosphere's start in
the six demo views): forward and forward + backward ms, their ratio (target <= 3), and the
growth of the fwd+bwd cost with 4x the pixels (same faces) and 4x the faces (same pixels).

The load average is printed at the start and the end: wall times from a shared machine are
only comparable within one run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
CODE = Path(os.environ.get("DIBR_BENCH_CODE", HERE))  # whose render_core a child times
sys.path.insert(0, str(CODE))
import render_core as rc  # noqa: E402  (before torch: it sets OpenMP's wait policy)

# isort: split
import torch  # noqa: E402

from render_core.fit import FitConfig, Fitter, TargetView  # noqa: E402
from render_core.fit_config import default_groups  # noqa: E402
from studio.model.demo import DEMO_DISTANCE, DEMO_FOV, DEMO_VIEWS, demo_object  # noqa: E402

SIZES = {64: 3, 128: 4, 256: 5}
"""Render height -> icosphere subdivisions of the start mesh (20 * 4**s faces)."""
GROUPS_ON = ("vertices", "colors", "light", "camera")
WARMUP = 3
TARGET_SIZE = 128
TARGET_STEPS_PER_S = 30.0
TARGET_SPEEDUP = 5.0
IOU_TOLERANCE = 0.002
BASE_REVS = ("aa27edb", "0e45f15")
"""The bases timed by default: the implementation issue 14 measured (the last commit before any
of its speed work), and the last commit before its items 2 and 3 (after the band-only soft
silhouette of item 1)."""


def make_targets(resolution: int) -> list[TargetView]:
    """The six demo views of the demo object at ``resolution``, as the studio's targets."""
    obj = demo_object()
    az = [a for a, _ in DEMO_VIEWS]
    el = [e for _, e in DEMO_VIEWS]
    cams = rc.Camera.orbit(az, el, DEMO_DISTANCE, fov=DEMO_FOV)
    with torch.no_grad():
        out = rc.Renderer(resolution, shading="vertex_color", sigma=1e-5).render(obj, cams)
    rgb = rc.linear_to_srgb(out.rgb.clamp(0, 1)).numpy()
    mask = out.frags.mask.float().numpy()
    return [TargetView(rgb[i], mask[i], az[i], el[i], DEMO_DISTANCE, DEMO_FOV, f"view {i + 1}")
            for i in range(len(DEMO_VIEWS))]


def make_config(resolution: int, backend: str, views_per_step: int | None = None) -> FitConfig:
    groups = default_groups()
    for name in GROUPS_ON:
        groups[name].enabled = True
    extra = {} if views_per_step is None else {"views_per_step": views_per_step}
    cfg = FitConfig(groups=groups, shading="lambertian", resolution=resolution, backend=backend,
                    **extra)  # (the oldest base has no views_per_step setting)
    if hasattr(cfg, "model"):  # the base revision has no model setting and no antialiasing:
        cfg.model = "dibr"     # time the same computation in both (the default is now "auto")
    return cfg


def time_steps(resolution: int, subdivisions: int, targets: list[TargetView], backend: str,
               steps: int, views_per_step: int | None = None) -> float:
    """Mean seconds per ``Fitter.step()`` after :data:`WARMUP` untimed steps."""
    return time_steps_cpu(resolution, subdivisions, targets, backend, steps, views_per_step)[0]


def time_steps_cpu(resolution: int, subdivisions: int, targets: list[TargetView], backend: str,
                   steps: int, views_per_step: int | None = None) -> tuple[float, float]:
    """Mean wall and process CPU seconds per ``Fitter.step()`` after the warm-up steps."""
    fitter = Fitter(rc.icosphere(subdivisions=subdivisions), targets,
                    make_config(resolution, backend, views_per_step))
    for _ in range(WARMUP):
        fitter.step()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        fitter.step()
    return (time.perf_counter() - t0) / steps, (time.process_time() - c0) / steps


# -- the soft silhouette alone -------------------------------------------------------------

def _soft_scene(resolution: int, subdivisions: int):
    """Clip-space vertices [6,V,4] and faces of the start icosphere in the six demo views."""
    mesh = rc.icosphere(subdivisions=subdivisions)
    cams = rc.Camera.orbit([a for a, _ in DEMO_VIEWS], [e for _, e in DEMO_VIEWS],
                           DEMO_DISTANCE, fov=DEMO_FOV)
    return cams.to_clip(mesh.vertices).detach(), mesh.faces


def time_soft(resolution: int, subdivisions: int, reps: int) -> tuple[float, float]:
    """Median ms of the native soft silhouette's forward and forward + backward."""
    clip, faces = _soft_scene(resolution, subdivisions)
    sigma = FitConfig().sigma
    grad = torch.rand(clip.shape[0], resolution, resolution,
                      generator=torch.Generator().manual_seed(0))

    def fwd():
        with torch.no_grad():
            rc.soft_silhouette(clip, faces, resolution, sigma=sigma, backend="cpu")

    def fwd_bwd():
        x = clip.clone().requires_grad_(True)
        a = rc.soft_silhouette(x, faces, resolution, sigma=sigma, backend="cpu")
        a.backward(grad)

    out = []
    for fn in (fwd, fwd_bwd):
        fn()
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            ts.append(1000.0 * (time.perf_counter() - t0))
        out.append(sorted(ts)[len(ts) // 2])
    return out[0], out[1]


# -- processes ---------------------------------------------------------------------------------

def child(args) -> None:
    """Time one configuration in this process (code from DIBR_BENCH_CODE); one JSON line."""
    if args.threads:
        torch.set_num_threads(args.threads)
    res, backend = args.child
    res = int(res)
    wall, cpu = time_steps_cpu(res, SIZES[res], make_targets(res), backend, args.steps,
                               args.views_per_step)
    print(json.dumps({"ms": 1000.0 * wall, "cpu_ms": 1000.0 * cpu}))


def final_iou(resolution: int, steps: int) -> float:
    """The hard silhouette IoU after ``steps`` steps of the benchmark's fit at ``resolution``
    (its mean over the views, from the step after the last: the parameters ``steps`` reached)."""
    fitter = Fitter(rc.icosphere(subdivisions=SIZES[resolution]), make_targets(resolution),
                    make_config(resolution, "cpu"))
    for _ in range(steps):
        fitter.step()
    return float(fitter.step().iou)


def iou_child(args) -> None:
    """``final_iou`` in this process (code from DIBR_BENCH_CODE); one JSON line."""
    if args.threads:
        torch.set_num_threads(args.threads)
    print(json.dumps({"iou": final_iou(int(args.iou_child), args.iou_steps)}))


def _run_json(code: Path, extra: list[str], args, what: str) -> dict | None:
    """Run this script with ``extra`` arguments on ``code``'s implementation in a subprocess;
    its last stdout line parsed as JSON, or None (after printing why) if it fails."""
    cmd = [sys.executable, str(Path(__file__).resolve()), *extra]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    env = dict(os.environ, DIBR_BENCH_CODE=str(code), PYTHONPATH=str(code))
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        print(f"  ({code.name} failed {what}: {tail})")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_iou_child(code: Path, res: int, args) -> float:
    """``final_iou`` of ``code``'s implementation, in a subprocess (nan if it fails)."""
    got = _run_json(code, ["--iou-child", str(res), "--iou-steps", str(args.iou_steps)], args,
                    f"the {res} fit")
    return math.nan if got is None else got["iou"]


def run_child(code: Path, res: int, backend: str, args) -> tuple[float, float]:
    """(wall, CPU) ms/step of ``code``'s implementation, timed in a subprocess (nan if it
    fails)."""
    extra = ["--child", str(res), backend, "--steps", str(args.steps)]
    if args.views_per_step:
        extra += ["--views-per-step", str(args.views_per_step)]
    got = _run_json(code, extra, args, f"{backend} at {res}")
    return (math.nan, math.nan) if got is None else (got["ms"], got["cpu_ms"])


def best_of(code: Path, res: int, backend: str, args) -> tuple[float, float]:
    """The lower (wall, CPU) ms/step of ``--rounds`` runs: other load only ever adds time."""
    runs = [run_child(code, res, backend, args) for _ in range(args.rounds)]
    return min(r[0] for r in runs), min(r[1] for r in runs)


def extract(rev: str, into: Path) -> Path:
    """``git archive`` of ``rev`` of this repository, unpacked under ``into``."""
    data = subprocess.run(["git", "-C", str(HERE), "archive", "--format=tar", rev],
                          check=True, capture_output=True).stdout
    dest = into / f"base-{rev}"
    dest.mkdir()
    tar_path = into / "base.tar"
    tar_path.write_bytes(data)
    with tarfile.open(tar_path) as tar:
        tar.extractall(dest, filter="data")
    return dest


def _fmt(ms: float) -> tuple[str, str]:
    if math.isnan(ms):
        return "-", "-"
    return f"{ms:.1f}", f"{1000.0 / ms:.1f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20, help="timed steps per run (default 20)")
    ap.add_argument("--sizes", default="64,128,256", help="render heights, of 64,128,256")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads(N)")
    ap.add_argument("--views-per-step", type=int, default=None, metavar="K",
                    help="render a random K of the 6 targets per step (default: all)")
    ap.add_argument("--base", default=",".join(BASE_REVS),
                    help=f"base revisions, comma-separated (default {','.join(BASE_REVS)})")
    ap.add_argument("--no-base", action="store_true", help="leave out the base revision")
    ap.add_argument("--torch", action="store_true", help="add the torch rasterizer baseline")
    ap.add_argument("--soft-reps", type=int, default=7, help="soft silhouette repetitions")
    ap.add_argument("--rounds", type=int, default=2,
                    help="runs of each implementation, interleaved; the fastest counts")
    ap.add_argument("--iou-steps", type=int, default=200,
                    help="steps of the results check: each implementation's demo-size fit "
                         "(64) reaches the same silhouette IoU (default 200; 0 skips it)")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--iou-child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.steps < 1:
        ap.error("--steps must be >= 1")
    if args.threads is not None and args.threads < 1:
        ap.error("--threads must be >= 1")
    if args.child:
        child(args)
        return 0
    if args.iou_child:
        iou_child(args)
        return 0
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        ap.error(f"--sizes must be a comma-separated list of {sorted(SIZES)}")
    bad = [s for s in sizes if s not in SIZES]
    if bad or not sizes:
        ap.error(f"--sizes must be taken from {sorted(SIZES)}, got {args.sizes!r}")
    if args.threads:
        torch.set_num_threads(args.threads)

    revs = [r.strip() for r in args.base.split(",") if r.strip()]
    load = os.getloadavg()
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
          f"({os.cpu_count()} cores)")
    print(f"torch threads: {torch.get_num_threads()}; OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY')}")
    views = "6 views" if args.views_per_step is None else f"{args.views_per_step} of 6 views"
    print(f"{WARMUP} warm-up steps, {args.steps} timed steps; {views} per step; groups "
          f"{', '.join(GROUPS_ON)}; lambertian shading; bases {', '.join(revs)}")
    print()
    with tempfile.TemporaryDirectory(prefix="fit-step-base-") as tmp:
        bases = {} if args.no_base else {rev: extract(rev, Path(tmp)) for rev in revs}
        impls = [("this", HERE)] + list(bases.items())
        header = (f"{'size':<14} {'code':<8} {'ms/step':>9} {'steps/s':>8} {'cpu ms':>8} "
                  f"{'this is x faster':>17} {'(cpu)':>7}")
        print(header)
        print("-" * len(header))
        this_ms: dict[int, float] = {}
        ratio_at: dict[int, dict[str, float]] = {}
        for res in sizes:
            runs: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in impls}
            for _ in range(args.rounds):  # interleaved, so drifting load hits all alike
                for name, code in impls:
                    runs[name].append(run_child(code, res, "cpu", args))
            best = {name: (min(r[0] for r in rs), min(r[1] for r in rs))
                    for name, rs in runs.items()}
            ms, cpu = best["this"]
            this_ms[res], ratio_at[res] = ms, {}
            label = f"{res}x{res}/{20 * 4 ** SIZES[res]}f"
            for name, _ in impls:
                b_ms, b_cpu = best[name]
                a_, b_ = _fmt(b_ms)
                sp = csp = ""
                if name != "this":
                    ratio_at[res][name] = b_ms / ms
                    sp = "-" if math.isnan(b_ms / ms) else f"{b_ms / ms:.2f}x"
                    csp = "-" if math.isnan(b_cpu / cpu) else f"{b_cpu / cpu:.2f}x"
                print(f"{label:<14} {name:<8} {a_:>9} {b_:>8} {b_cpu:>8.1f} {sp:>17} {csp:>7}")
                label = ""
            if args.torch:
                t_ms = best_of(HERE, res, "torch", args)[0]
                print(f"{'':<14} {'torch':<8} {_fmt(t_ms)[0]:>9} {_fmt(t_ms)[1]:>8}")
            print(flush=True)
        if args.iou_steps > 0:
            print(f"results unchanged: hard silhouette IoU after a {args.iou_steps}-step fit at "
                  f"64x64/1280f (target: within {IOU_TOLERANCE} of every base)")
            ious = {name: run_iou_child(code, 64, args) for name, code in impls}
            for name, _ in impls:
                d = "" if name == "this" else f"  (this - base: {ious['this'] - ious[name]:+.4f})"
                print(f"  {name:<8} {ious[name]:.4f}{d}")
            print()
    print()
    limit_ms = 1000.0 / TARGET_STEPS_PER_S
    t = this_ms.get(TARGET_SIZE)
    first = revs[0] if revs and not args.no_base else None
    goal = (f"target at {TARGET_SIZE}x{TARGET_SIZE}/5120f: >= {TARGET_STEPS_PER_S:.0f} steps/s "
            f"(<= {limit_ms:.0f} ms) and >= {TARGET_SPEEDUP:.0f}x the first base ({first})")
    if t is None or math.isnan(t):
        print(f"{goal}: not measured")
    else:
        sp = ratio_at[TARGET_SIZE].get(first, math.nan) if first else math.nan
        ok = t <= limit_ms and not math.isnan(sp) and sp >= TARGET_SPEEDUP
        print(f"{goal}: {'met' if ok else 'NOT met'} ({t:.1f} ms/step, {1000.0 / t:.1f} "
              f"steps/s, {sp:.2f}x)")

    print()
    print("soft silhouette alone (native cpu, median of --soft-reps):")
    header = f"{'size':<14} {'fwd ms':>8} {'fwd+bwd ms':>11} {'fwd+bwd/fwd':>12}"
    print(header)
    print("-" * len(header))
    soft = {}
    for res, sub in ((64, 3), (128, 3), (128, 4), (128, 5), (256, 4), (256, 5)):
        f, fb = time_soft(res, sub, args.soft_reps)
        soft[(res, sub)] = fb
        label = f"{res}x{res}/{20 * 4 ** sub}f"
        print(f"{label:<14} {f:>8.2f} {fb:>11.2f} {fb / f:>12.2f}", flush=True)
    print(f"growth of fwd+bwd with 4x pixels: {soft[(128, 3)] / soft[(64, 3)]:.2f}x "
          f"(1,280 faces), {soft[(256, 4)] / soft[(128, 4)]:.2f}x (5,120 faces); "
          f"with 4x faces: {soft[(128, 4)] / soft[(128, 3)]:.2f}x, "
          f"{soft[(128, 5)] / soft[(128, 4)]:.2f}x (128x128)")
    load = os.getloadavg()
    print(f"load average at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
