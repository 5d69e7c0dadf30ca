"""Pose recovery through RenderNet on the demo meshes: the model card's pose table.

    python scripts/rendernet_pose_table.py [--search default|single|both] [--camera long|close|both]

For each mesh in ``assets/meshes/``: an analytic Lambertian render (render_core, perspective,
grey) at azimuth 40°, elevation 25° is the target; ``studio.model.neural.fit_camera`` (the code
behind Optimise ▸ Fit camera and light with RenderNet) starts 20° off in both angles, also fits the
light, and the error of the recovered (azimuth, elevation) is printed in degrees, one markdown
row per camera and search. "default" is the studio's multi-hypothesis coarse-to-fine search;
"single" is one hypothesis and 32 steps.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import render_core as rc  # noqa: E402
from studio.model import neural as N  # noqa: E402

CAMERAS = {"long": ("long lens (distance 8, fov 15°)", 8.0, 15.0),
           "close": ("studio default (distance 3.2, fov 45°)", 3.2, 45.0)}
SEARCHES = {"default": ("default search", {}),
            "single": ("1 hypothesis, 32 steps",
                       {"grid": (1, 1), "stages": ((4, 12, 1.0), (2, 10, 1.0), (1, 10, 1.0)),
                        "lr": 2.0})}
TRUE_AZ, TRUE_EL, OFF = 40.0, 25.0, 20.0


def target(mesh: rc.Mesh, dist: float, fov: float, res: int = 128):
    cam = rc.Camera.orbit(TRUE_AZ, TRUE_EL, dist, fov=fov)
    light = rc.DirectionalLight(torch.tensor(rc.fit.DEFAULT_LIGHT), intensity=0.8, ambient=0.3)
    out = rc.Renderer(res, shading="lambertian").render(mesh.with_(vertex_colors=None), cam,
                                                         light=light)
    return rc.linear_to_srgb(out.rgb[0].clamp(0, 1)).numpy(), out.alpha[0].numpy()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--search", choices=("default", "single", "both"), default="default")
    ap.add_argument("--camera", choices=("long", "close", "both"), default="both")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    files = sorted((ROOT / "assets" / "meshes").glob("*.ply"))
    meshes = {p.stem: rc.load_mesh(p) for p in files}
    cams = list(CAMERAS) if args.camera == "both" else [args.camera]
    searches = list(SEARCHES) if args.search == "both" else [args.search]
    shader = N.NeuralShader()
    print("| camera | search | " + " | ".join(meshes) + " |")
    print("|---|---|" + "---|" * len(meshes))
    for c in cams:
        label, dist, fov = CAMERAS[c]
        for s in searches:
            slabel, kw = SEARCHES[s]
            cells = []
            for mesh in meshes.values():
                img, mask = target(mesh, dist, fov)
                torch.manual_seed(0)
                t = time.perf_counter()
                v = mesh.vertices.numpy().astype(np.float64)
                fit = N.fit_camera(v, mesh.faces.numpy(), img, mask,
                                   (TRUE_AZ + OFF, TRUE_EL - OFF, dist, fov), "phong",
                                   shader=shader, **kw)
                d_az = (fit.azimuth - TRUE_AZ + 180) % 360 - 180
                cells.append(f"{d_az:+.1f}, {fit.elevation - TRUE_EL:+.1f}")
                print(f"  {c}/{s}: {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
            print(f"| {label} | {slabel} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
