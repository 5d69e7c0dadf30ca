"""NMR benchmark: ``Renderer(model="nmr")`` forward + backward against DIB-R's, same run.

    python benchmarks/nmr.py [--runs 7] [--threads 1] [--backends cpu[,torch]]

Scene: an icosphere of 5,120 faces with vertex colours, seen from one orbit camera, at 128^2
and 256^2; the loss is the L1 distance of ``rgb`` and ``alpha`` to a render of the sphere
shifted sideways and squashed (so every sign of dP occurs and the sign rule keeps both the
outside and the inside cases busy). For each backend it times, as medians over ``--runs``
interleaved runs, render + backward to the vertices and colours with

* ``dibr``: ``Renderer(res)`` (rasterize, interpolate, soft silhouette): the baseline;
* ``nmr``: ``Renderer(res, model="nmr")`` (rasterize, interpolate, the NMR sweep gradient);

and prints nmr / dibr. Wall-clock medians: on a loaded machine compare the columns of one run,
not runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout
import render_core as rc  # noqa: E402

RESOLUTIONS = (128, 256)
CLOCK = time.perf_counter


def scene():
    sphere = rc.icosphere(4)  # 5,120 faces
    colors = (sphere.vertices * 0.5 + 0.5).clamp(0, 1)
    cam = rc.Camera.orbit([30.0], [20.0], 3.0, fov=45.0)
    return sphere, colors, cam


def target(res, sphere, colors, cam):
    moved = sphere.vertices * torch.tensor([1.1, 0.8, 1.0]) + torch.tensor([0.15, 0.05, 0.0])
    out = rc.Renderer(res, silhouette=False).render(
        rc.Mesh(moved, sphere.faces, vertex_colors=colors.flip(-1).contiguous()), cam)
    return out.rgb.detach(), out.alpha.detach()


def time_model(renderer, sphere, colors, cam, tgt) -> float:
    v = sphere.vertices.clone().requires_grad_(True)
    c = colors.clone().requires_grad_(True)
    t0 = CLOCK()
    out = renderer.render(rc.Mesh(v, sphere.faces, vertex_colors=c), cam)
    ((out.rgb - tgt[0]).abs().sum() + (out.alpha - tgt[1]).abs().sum()).backward()
    return CLOCK() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--backends", default="cpu",
                    help="comma-separated; torch (the dense reference) is slow: seconds a run")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sphere, colors, cam = scene()
    backends = [b for b in args.backends.split(",") if b in rc.available_backends()]
    print(f"NMR vs DIB-R render fwd+bwd, 5,120 faces, {args.threads} threads, "
          f"median of {args.runs} (ms)")
    print("| backend | res | dibr | nmr | nmr / dibr |")
    print("|---|---|---|---|---|")
    for backend in backends:
        for res in RESOLUTIONS:
            tgt = target(res, sphere, colors, cam)
            rends = {m: rc.Renderer(res, backend=backend, model=m) for m in ("dibr", "nmr")}
            times = {m: [] for m in rends}
            for r in rends.values():  # warm-up (builds, caches)
                time_model(r, sphere, colors, cam, tgt)
            for _ in range(args.runs):
                for m, r in rends.items():
                    times[m].append(time_model(r, sphere, colors, cam, tgt))
            med = {m: statistics.median(t) * 1e3 for m, t in times.items()}
            print(f"| {backend} | {res} | {med['dibr']:.1f} | {med['nmr']:.1f} | "
                  f"{med['nmr'] / med['dibr']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
