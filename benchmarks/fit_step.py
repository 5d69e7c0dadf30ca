"""Interactive speed of the studio's fit step: ms per :meth:`render_core.fit.Fitter.step`.

    python benchmarks/fit_step.py [--steps 20] [--sizes 64,128,256] [--threads N] [--skip-torch]

The problem is the studio's demo scene (:mod:`studio.model.demo`): the six demo cameras see
the demo object, rendered at the fit resolution, and an icosphere is fitted to them with the
``vertices``, ``colors``, ``light`` and ``camera`` groups on and Lambertian shading. Sizes
(render height, start mesh):

- 64: 64x64, icosphere with 3 subdivisions (1,280 faces)
- 128: 128x128, icosphere with 4 subdivisions (5,120 faces)
- 256: 256x256, icosphere with 5 subdivisions (20,480 faces)

Each size runs once with the native CPU kernels (``backend="cpu"``) and once with the pure
torch rasterizer (``backend="torch"``, the baseline, measured in the same run so the ratio
is comparable on a loaded machine; ``--skip-torch`` leaves it out). A run is 3 warm-up steps
and then ``--steps`` timed steps (``time.perf_counter``); the table gives the mean ms/step,
steps/s and the ratio native/torch of the ms/step (below 1: native is faster). The target is
30 steps/s (at most 33 ms a step) at 128x128 with 5,120 faces on the native backend.

The load average at the start and torch's thread count are printed first: wall times from a
shared machine are only comparable within one run.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout, not an installed copy
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
    return FitConfig(groups=groups, shading="lambertian", resolution=resolution, backend=backend,
                     views_per_step=views_per_step)


def time_steps(resolution: int, subdivisions: int, targets: list[TargetView], backend: str,
               steps: int, views_per_step: int | None = None) -> float:
    """Mean seconds per ``Fitter.step()`` after :data:`WARMUP` untimed steps."""
    fitter = Fitter(rc.icosphere(subdivisions=subdivisions), targets,
                    make_config(resolution, backend, views_per_step))
    for _ in range(WARMUP):
        fitter.step()
    t0 = time.perf_counter()
    for _ in range(steps):
        fitter.step()
    return (time.perf_counter() - t0) / steps


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20, help="timed steps per run (default 20)")
    ap.add_argument("--sizes", default="64,128,256", help="render heights, of 64,128,256")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads(N)")
    ap.add_argument("--views-per-step", type=int, default=None, metavar="K",
                    help="render a random K of the 6 targets per step (default: all)")
    ap.add_argument("--skip-torch", action="store_true", help="leave out the torch baseline")
    args = ap.parse_args(argv)
    if args.steps < 1:
        ap.error("--steps must be >= 1")
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        ap.error(f"--sizes must be a comma-separated list of {sorted(SIZES)}")
    bad = [s for s in sizes if s not in SIZES]
    if bad or not sizes:
        ap.error(f"--sizes must be taken from {sorted(SIZES)}, got {args.sizes!r}")
    if args.threads is not None:
        if args.threads < 1:
            ap.error("--threads must be >= 1")
        torch.set_num_threads(args.threads)

    load = os.getloadavg()
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"torch threads: {torch.get_num_threads()}")
    views = "6 views" if args.views_per_step is None else f"{args.views_per_step} of 6 views"
    print(f"{WARMUP} warm-up steps, {args.steps} timed steps; {views} per step; groups "
          f"{', '.join(GROUPS_ON)}; lambertian shading")
    print()
    backends = ["cpu"] if args.skip_torch else ["cpu", "torch"]
    header = f"{'size':<14} {'backend':<8} {'ms/step':>9} {'steps/s':>8} {'native/torch':>13}"
    print(header)
    print("-" * len(header))
    native_ms: dict[int, float] = {}
    for res in sizes:
        sub = SIZES[res]
        faces = 20 * 4**sub
        targets = make_targets(res)
        ms: dict[str, float] = {}
        for backend in backends:
            try:
                ms[backend] = 1000.0 * time_steps(res, sub, targets, backend, args.steps,
                                                     args.views_per_step)
            except Exception as exc:  # e.g. the native kernels are not built here
                ms[backend] = math.nan
                print(f"  ({backend} failed at {res}: {type(exc).__name__}: {exc})")
        if "cpu" in ms:
            native_ms[res] = ms["cpu"]
        for backend in backends:
            t = ms[backend]
            rate = 1000.0 / t if t > 0 else math.nan
            ratio = ""
            if backend == "cpu" and "torch" in ms:
                ratio = f"{ms['cpu'] / ms['torch']:.2f}"
            label = f"{res}x{res}/{faces}f"
            name = "native" if backend == "cpu" else backend
            print(f"{label:<14} {name:<8} {t:>9.1f} {rate:>8.1f} {ratio:>13}")

    print()
    limit_ms = 1000.0 / TARGET_STEPS_PER_S
    goal = (f"target: >= {TARGET_STEPS_PER_S:.0f} steps/s (<= {limit_ms:.0f} ms/step) at "
            f"{TARGET_SIZE}x{TARGET_SIZE}/5120f, native backend")
    t = native_ms.get(TARGET_SIZE)
    if t is None:
        print(f"{goal}: not measured (add {TARGET_SIZE} to --sizes)")
    elif math.isnan(t):
        print(f"{goal}: not measured (the native run failed)")
    else:
        verdict = "met" if t <= limit_ms else "NOT met"
        print(f"{goal}: {verdict} ({t:.1f} ms/step, {1000.0 / t:.1f} steps/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
