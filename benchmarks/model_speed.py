"""Render speed of each gradient model: forward + backward, as a ratio against DIB-R's.

    python benchmarks/model_speed.py [--runs 5] [--threads 1] [--backend auto]

Scene: an icosphere of 5,120 faces with vertex colours, 6 orbit views in one batch, at 128² and
256². Every model of ``render_core.fit_config.FIT_MODELS`` (so a model added there is measured
without an edit here) renders through the Renderer the Fitter builds for it (``Fitter.renderer``
of a fit with that ``FitConfig.model``), then ``rgb.sum() + alpha.sum()`` is backpropagated to
the vertices and colours. Medians over ``--runs`` interleaved runs (one warm-up each); the
ratios to ``dibr`` come from the same run. Wall-clock times on a shared machine are noisy:
compare the ratios, and read the load printed in the header.

Measured (1 thread, 2-core machine at load 10 from other work, after the soft-silhouette speed
work of issue 14), ms and ratio to dibr:

    res  dibr          dibr+aa  softras  nmr
    128  183.5 (1.00)  1.57     15.20    4.04
    256  626.0 (1.00)  1.46     20.14    5.97

(Before that work, at load 9.5: 128: 304.8 ms, 0.99, 12.70, 3.47; 256: 1510.6 ms, 1.27,
11.47, 4.86 — DIB-R's soft silhouette got about twice as fast, the others' ratios rose.)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout
import render_core as rc  # noqa: E402
from render_core.fit import FitConfig, Fitter, TargetView  # noqa: E402
from render_core.fit_config import FIT_MODELS  # noqa: E402

RESOLUTIONS = (128, 256)
VIEWS = ((0.0, 20.0), (60.0, -15.0), (120.0, 30.0), (180.0, 0.0), (240.0, -25.0), (300.0, 15.0))
CLOCK = time.perf_counter


def scene(res: int):
    sphere = rc.icosphere(4, radius=0.8)  # 5,120 faces
    colors = (sphere.vertices * 0.5 + 0.5).clamp(0, 1).contiguous()
    mesh = rc.Mesh(sphere.vertices, sphere.faces, vertex_colors=colors)
    cams = rc.Camera.orbit([a for a, _ in VIEWS], [e for _, e in VIEWS], 3.0, fov=40.0)
    out = rc.Renderer(res).render(mesh, cams)
    targets = [TargetView(out.rgb[i].clamp(0, 1).numpy(), out.frags.mask[i].float().numpy(),
                          a, e, 3.0, 40.0) for i, (a, e) in enumerate(VIEWS)]
    return mesh, cams, targets


def renderer_for(model: str, res: int, backend: str, mesh, targets):
    """The Renderer a fit with ``model`` uses, or the reason it cannot be built."""
    try:
        return Fitter(mesh, targets, FitConfig(resolution=res, model=model,
                                               backend=backend)).renderer
    except ValueError as e:
        return str(e)


def time_once(renderer, mesh, cams) -> float:
    v = mesh.vertices.clone().requires_grad_(True)
    c = mesh.vertex_colors.clone().requires_grad_(True)
    t0 = CLOCK()
    out = renderer.render(rc.Mesh(v, mesh.faces, vertex_colors=c), cams)
    (out.rgb.sum() + out.alpha.sum()).backward()
    return CLOCK() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--models", default=",".join(FIT_MODELS))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    models = args.models.split(",")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"render fwd+bwd, 5,120 faces, {len(VIEWS)} views, backend {args.backend}, "
          f"{args.threads} threads, median of {args.runs}, load {load:.2f}")
    print("| res | model | ms | x dibr |")
    print("|---|---|---|---|")
    for res in RESOLUTIONS:
        mesh, cams, targets = scene(res)
        renderers = {m: renderer_for(m, res, args.backend, mesh, targets) for m in models}
        live = {m: r for m, r in renderers.items() if not isinstance(r, str)}
        times: dict[str, list[float]] = {m: [] for m in live}
        for r in live.values():
            time_once(r, mesh, cams)  # warm-up (first build, caches)
        for _ in range(args.runs):
            for m, r in live.items():
                times[m].append(time_once(r, mesh, cams))
        med = {m: 1000 * statistics.median(t) for m, t in times.items()}
        base = med.get("dibr")
        for m in models:
            if m not in live:
                print(f"| {res} | {m} | refused ({renderers[m]}) | |")
                continue
            ratio = f"{med[m] / base:.2f}" if base else "n/a"
            print(f"| {res} | {m} | {med[m]:.1f} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
