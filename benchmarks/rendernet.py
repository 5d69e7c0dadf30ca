"""RenderNet timing on this CPU: inference ms per view and style, and training step time.

    python benchmarks/rendernet.py [--threads 1] [--weights PATH]

Prints one line per measurement; the model card quotes these numbers.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import trimesh

from render_core.rendernet.model import Config, RenderNet, count_macs, count_params
from render_core.rendernet.pose import resample
from render_core.rendernet.render import WEIGHTS, load_model, render_voxels, voxel_grid
from render_core.rendernet.voxelize import voxelize


def timeit(fn, reps: int = 5) -> float:
    fn()  # warm-up (allocator, oneDNN primitive caches)
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--weights", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.8)
    print(f"threads={args.threads}")
    print(f"voxelize 5120-face mesh at 32^3: {timeit(lambda: voxelize(sphere)):.1f} ms")
    model = load_model(args.weights) if (args.weights or WEIGHTS.exists()) else RenderNet()
    model.eval()
    print(f"params={count_params(model)} GMAC/view={count_macs(model) / 1e9:.2f}")
    vox = voxel_grid(sphere)
    one = [torch.tensor([v]) for v in (30.0, 20.0, 1.0)]
    for style in ("phong", "contour", "toon", "ao", "normal"):
        with torch.no_grad():
            ms = timeit(lambda s=style: render_voxels(vox, *one, s, model=model))
        print(f"inference {style:8s} 1 view 128^2: {ms:.1f} ms")
    with torch.no_grad():
        persp = torch.tensor([1 / 3.2])
        ms = timeit(lambda: render_voxels(vox, *one, "phong", model=model, persp=persp))
    print(f"inference phong    1 view 128^2, perspective (frustum grid): {ms:.1f} ms")
    with torch.no_grad():
        b8 = [t.expand(8) for t in one]
        ms = timeit(lambda: render_voxels(vox, *b8, "phong", model=model)) / 8
    print(f"inference phong batch 8: {ms:.1f} ms/view")

    # one optimiser step as train.py takes it: batch 8, 32x32-column crops
    net = RenderNet(Config())
    opt = torch.optim.Adam(net.parameters(), 1e-4)
    v8 = torch.rand(8, 1, 32, 32, 32)
    pose = [torch.rand(8) * 360, torch.rand(8) * 60, torch.ones(8)]
    light = torch.nn.functional.normalize(torch.rand(8, 3) + 0.2, dim=-1)

    def step(crop: int, b: int):
        cam = resample(v8[:b], *(p[:b] for p in pose), (64, 64, 64), window=(0, 0, crop))
        out = net(cam, light[:b])
        loss = sum(o.mean() for o in out.values())
        opt.zero_grad()
        loss.backward()
        opt.step()

    print(f"train step batch 8, 32-col crops: {timeit(lambda: step(32, 8), 3):.0f} ms")
    print(f"train step batch 2, full 64 cols: {timeit(lambda: step(64, 2), 3):.0f} ms")


if __name__ == "__main__":
    main()
