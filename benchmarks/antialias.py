"""Edge antialiasing benchmark: rc.antialias forward + backward against DIB-R's render.

    python benchmarks/antialias.py [--runs 7] [--threads 1] [--backends cpu,torch]

Scene: an icosphere of 5,120 faces with vertex colours, seen from one orbit camera, at 128^2
and 256^2. For each backend it times, as medians over ``--runs`` interleaved runs:

* ``dibr``: ``Renderer(res)`` render (rasterize, interpolate, soft silhouette) + backward of
  ``rgb.sum() + alpha.sum()`` to the vertices and colours: the baseline;
* ``aa``: ``rc.antialias`` alone on that render's colours, forward + backward;
* ``dibr+aa``: ``Renderer(res, edges="antialias")`` render + the same backward;
* ``softras``: ``Renderer(res, model="softras")`` render + the same backward (SoftRas has only
  its torch reference so far: it runs on the torch backend whatever the row's backend).

and prints the ratios aa / dibr, dibr+aa / dibr and softras / dibr, measured in the same run.
Wall-clock medians: on a loaded machine compare the columns of one run, not runs.
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


def time_dibr(renderer, sphere, colors, cam) -> float:
    v = sphere.vertices.clone().requires_grad_(True)
    c = colors.clone().requires_grad_(True)
    t0 = CLOCK()
    out = renderer.render(rc.Mesh(v, sphere.faces, vertex_colors=c), cam)
    (out.rgb.sum() + out.alpha.sum()).backward()
    return CLOCK() - t0


def time_aa(rgb, frags, clip, faces, topo, backend) -> float:
    col = rgb.detach().clone().requires_grad_(True)
    cl = clip.detach().clone().requires_grad_(True)
    t0 = CLOCK()
    out = rc.antialias(col, frags, cl, faces, topo, backend=backend)
    out.sum().backward()
    return CLOCK() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--backends", default="cpu,torch")
    ap.add_argument("--no-softras", action="store_true", help="skip the SoftRas column")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sphere, colors, cam = scene()
    topo = rc.antialias_topology(sphere.faces)
    clip = cam.to_clip(sphere.vertices)
    backends = [b for b in args.backends.split(",") if b in rc.available_backends()]
    print(
        f"antialias fwd+bwd vs DIB-R render fwd+bwd, 5,120 faces, {args.threads} threads, "
        f"median of {args.runs} (ms)"
    )
    print(
        "| backend | res | dibr | aa | dibr+aa | softras | aa / dibr | dibr+aa / dibr "
        "| softras / dibr |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for backend in backends:
        for res in RESOLUTIONS:
            hard = rc.Renderer(res, backend=backend)
            soft = rc.Renderer(res, backend=backend, edges="antialias")
            sras = rc.Renderer(res, backend=backend, model="softras")
            mesh = rc.Mesh(sphere.vertices, sphere.faces, vertex_colors=colors)
            ref = hard.render(mesh, cam)
            times = {"dibr": [], "aa": [], "dibr+aa": [], "softras": []}
            for _ in range(args.runs + 1):  # the first round warms up (builds, caches)
                times["dibr"].append(time_dibr(hard, sphere, colors, cam))
                times["aa"].append(time_aa(ref.rgb, ref.frags, clip, sphere.faces, topo, backend))
                times["dibr+aa"].append(time_dibr(soft, sphere, colors, cam))
                if not args.no_softras:
                    times["softras"].append(time_dibr(sras, sphere, colors, cam))
            med = {k: statistics.median(v[1:] or [float("nan")]) * 1e3 for k, v in times.items()}
            ratio = {k: med[k] / med["dibr"] for k in ("aa", "dibr+aa", "softras")}
            print(
                f"| {backend} | {res}^2 | {med['dibr']:.1f} | {med['aa']:.1f} | "
                f"{med['dibr+aa']:.1f} | {med['softras']:.1f} | {ratio['aa']:.2f} | "
                f"{ratio['dibr+aa']:.2f} | {ratio['softras']:.2f} |"
            )


if __name__ == "__main__":
    main()
