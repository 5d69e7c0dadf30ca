"""Soft silhouette benchmark: the band kernels of this checkout vs an older revision's kernels.

    python benchmarks/soft_silhouette.py [--old-ref REV] [--runs 15] [--threads 2] [--cpu-time]

The older kernels are built from ``git show REV:csrc/...`` (default: the last revision before
the band silhouette) into the extension cache, once per revision. For 64^2 / 1,280 faces,
128^2 / 5,120 faces and 256^2 / 20,480 faces (icospheres, 6 orbit views each) it prints the
median over ``--runs`` interleaved runs of the native CPU soft-silhouette forward kernel and
forward + backward kernels (called directly, same inputs for both; the forward of fwd+bwd is the
one a differentiated call runs, which saves its pixel-face pairs where the revision has it),
old vs new, their ratio,
the fwd+bwd / fwd ratio of each, and whether both give the same alpha and gradient bits; then,
where this checkout has it, the new kernels given the rasterizer's mask as the coverage (what
the Renderer passes), against the old columns.
Wall-clock medians by default: on a loaded machine compare the two columns of one run, not
runs; ``--cpu-time`` times the process's CPU time instead (all threads summed), which other
busy processes disturb less.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

# As render_core sets it for its users (render_core/_omp.py), before torch starts OpenMP: idle
# threads sleep instead of spinning, which on a busy machine would take the cores the other
# thread waits for.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout
import render_core as rc  # noqa: E402
from render_core import _build  # noqa: E402
from render_core import _torch_ref as torch_ref  # noqa: E402

OLD_REF = "aa27edb"  # the last revision whose soft silhouette walks every face's grown box
CONFIGS = [(64, 3), (128, 4), (256, 5)]  # resolution, icosphere subdivisions (1,280 ... faces)
VIEWS = 6
CLOCK = time.perf_counter


def old_module(ref: str):
    """The CPU extension built from revision ``ref``'s csrc (cached per revision)."""
    from torch.utils import cpp_extension

    sha = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short=12", ref],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    names = subprocess.run(
        ["git", "-C", str(ROOT), "ls-tree", "--name-only", sha, "csrc/"],
        check=True, capture_output=True, text=True,
    ).stdout.split()
    base = _build.build_dir("cpu").parent / f"bench-old-{sha}"
    src = base / "csrc"
    src.mkdir(parents=True, exist_ok=True)
    for name in names:
        text = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{sha}:{name}"],
            check=True, capture_output=True,
        ).stdout
        path = base / name
        if not path.exists() or path.read_bytes() != text:
            path.write_bytes(text)
    build = base / "build"
    build.mkdir(exist_ok=True)
    scripts = os.path.dirname(sys.executable)
    os.environ["PATH"] = scripts + os.pathsep + os.environ.get("PATH", "")
    return cpp_extension.load(
        name=f"dibr_bench_old_{sha}",
        sources=[str(src / "bindings.cpp"), str(src / "raster_cpu.cpp")],
        extra_cflags=_build._CFLAGS,
        extra_ldflags=["-fopenmp"],
        extra_include_paths=[str(src)],
        build_directory=str(build),
    )


def scene(res: int, sub: int):
    """xy [6,V,2], valid [6,F], faces [F,3] of an icosphere seen from 6 orbit cameras, and the
    rasterizer's mask [6,H,W] (what the Renderer passes as the coverage)."""
    mesh = rc.icosphere(sub)
    cams = [rc.Camera.orbit(a, 20.0, 3.2, fov=45.0) for a in range(0, 360, 360 // VIEWS)]
    clip = torch.cat([c.to_clip(mesh.vertices) for c in cams]).detach()
    valid = torch_ref.valid_faces(torch_ref.face_vertices(clip, mesh.faces))
    mask = rc.rasterize(clip, mesh.faces, res, backend="cpu").mask
    return torch_ref.iso_xy(clip, res, res).contiguous(), valid, mesh.faces, mask


def bench_config(mods, res: int, sub: int, sigma: float, cut2: float, runs: int):
    """Median ms per (module, "f" | "fb"), whether both modules agree bit for bit, faces."""
    xy, valid, faces, mask = scene(res, sub)
    grad = torch.rand(VIEWS, res, res, generator=torch.Generator().manual_seed(0))

    def fwd(m, cov=False):
        if cov:  # the coverage given: the rasterizer's mask, as the Renderer passes it
            return m.soft_forward_covered_cpu(xy, valid, faces, mask, res, res, sigma, cut2,
                                              False)
        return m.soft_forward_cpu(xy, valid, faces, res, res, sigma, cut2)

    def fwd_bwd(m, cov=False):
        # What a differentiated call runs: the forward that saves its pixel-face pairs, where
        # the module has one.
        if cov:
            saved = m.soft_forward_covered_cpu(xy, valid, faces, mask, res, res, sigma, cut2,
                                               True)
        else:
            fwd_pairs = getattr(m, "soft_forward_pairs_cpu", m.soft_forward_cpu)
            saved = fwd_pairs(xy, valid, faces, res, res, sigma, cut2)
        g = m.soft_backward_cpu(grad, xy, faces, saved, res, res, sigma, cut2, True)
        return saved[0], g

    outs = {k: fwd_bwd(m) for k, m in mods.items()}  # warm-up, and the bit comparison
    same = all(torch.equal(a, b) for a, b in zip(outs["old"], outs["new"], strict=True))
    runs_of = {k: (lambda m=m: fwd(m), lambda m=m: fwd_bwd(m)) for k, m in mods.items()}
    if hasattr(mods["new"], "soft_forward_covered_cpu"):
        m = mods["new"]
        runs_of["cov"] = (lambda: fwd(m, True), lambda: fwd_bwd(m, True))
    times = {(k, op): [] for k in runs_of for op in ("f", "fb")}
    for _ in range(runs):
        for k, (f, fb) in runs_of.items():
            for op, fn in (("f", f), ("fb", fb)):
                start = CLOCK()
                fn()
                times[(k, op)].append((CLOCK() - start) * 1e3)
    return {key: statistics.median(v) for key, v in times.items()}, same, faces.shape[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old-ref", default=OLD_REF)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sigma", type=float, default=1 / 7000,
                    help="softness (the fit's default is 3/7000)")
    ap.add_argument("--cpu-time", action="store_true", help="time CPU time, not wall time")
    args = ap.parse_args()
    global CLOCK
    if args.cpu_time:
        CLOCK = time.process_time
    torch.set_num_threads(args.threads)
    mods = {"old": old_module(args.old_ref), "new": _build.load_variant("cpu")}
    sigma = args.sigma
    cut2 = torch_ref.cutoff2(sigma)
    clock = "CPU" if args.cpu_time else "wall"
    load = os.getloadavg()
    print(f"old = {args.old_ref}, new = this checkout; {args.threads} threads, sigma {sigma:.3g}, "
          f"median of {args.runs} interleaved runs, {clock} ms; load {load[0]:.2f}")
    print(f"{'config':>16} {'fwd old':>8} {'fwd new':>8} {'x':>5} {'f+b old':>8} {'f+b new':>8}"
          f" {'x':>5} {'f+b/f old':>9} {'f+b/f new':>9} {'same':>5}")
    for res, sub in CONFIGS:
        t, same, nfaces = bench_config(mods, res, sub, sigma, cut2, args.runs)
        print(f"{f'{res}^2/{nfaces}':>16} {t['old', 'f']:8.2f} {t['new', 'f']:8.2f} "
              f"{t['old', 'f'] / t['new', 'f']:5.2f} {t['old', 'fb']:8.2f} {t['new', 'fb']:8.2f} "
              f"{t['old', 'fb'] / t['new', 'fb']:5.2f} {t['old', 'fb'] / t['old', 'f']:9.2f} "
              f"{t['new', 'fb'] / t['new', 'f']:9.2f} {'yes' if same else 'NO':>5}")
        if ("cov", "f") in t:
            print(f"{'  with coverage':>16} {'':8} {t['cov', 'f']:8.2f} "
                  f"{t['old', 'f'] / t['cov', 'f']:5.2f} {'':8} {t['cov', 'fb']:8.2f} "
                  f"{t['old', 'fb'] / t['cov', 'fb']:5.2f}")

if __name__ == "__main__":
    main()
