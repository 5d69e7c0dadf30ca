"""Visual hull benchmark: the coarse-to-fine carve against a plain numpy carve, and accuracy.

    python benchmarks/visual_hull.py [--resolution 128] [--views 20] [--size 64] [--threads 1]

For every demo mesh in assets/meshes (normalised to unit radius): 20 masks at 64² rendered by
the hard rasterizer from cameras on a spiral (two turns of azimuth, elevation -30..60 degrees,
distance 2.7, fov 50). Printed per mesh:

- ``bounds+carve``: render_core.visual_hull's ``carve_voxels`` on the default bounds (deriving
  them included); ``carve``: the same grid carved again (the carve alone);
- ``numpy``: a straightforward numpy carve of the same grid (every voxel centre projected in
  every view, one view at a time), measured in the same run; ``ratio``: its CPU time over
  ``carve``'s;
- ``same``: whether both carves agree voxel for voxel;
- ``hull``: wall time of the whole ``visual_hull`` (carve, marching cubes, smoothing,
  decimation to 5000 faces) and its face count;
- Chamfer-L2 and F-score@0.02 of the hull against the true mesh (20k area-weighted samples
  each, render_core.shape_metrics).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from render_core import _carve
from render_core.camera import Camera
from render_core.mesh import load_mesh
from render_core.rasterize import rasterize
from render_core.shape_metrics import chamfer_l2, f_score, normalize_unit_radius
from render_core.visual_hull import _tables, carve_voxels, visual_hull

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "meshes"


def numpy_carve(masks: np.ndarray, cams: Camera, lo: np.ndarray, voxel: float, dims) -> np.ndarray:
    """The baseline: project every voxel centre in every view and look its pixel up."""
    axes = [lo[a] + (np.arange(dims[a]) + 0.5) * voxel for a in range(3)]
    pts = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    hom = np.concatenate([pts, np.ones((len(pts), 1))], 1)
    full = cams.full_matrix.double().numpy()
    zrow = cams.view[:, 2].double().numpy()
    keep = np.ones(len(pts), bool)
    seen = np.zeros(len(pts), bool)
    n, h, w = masks.shape
    for k in range(n):
        clip = hom @ full[k].T
        ok = (clip[:, 3] > 1e-9) & (hom @ zrow[k] < 0)
        wk = np.where(ok, clip[:, 3], 1.0)
        j = np.floor((clip[:, 0] / wk + 1) * (w / 2)).astype(np.int64)
        i = np.floor((1 - clip[:, 1] / wk) * (h / 2)).astype(np.int64)
        ok &= (i >= 0) & (i < h) & (j >= 0) & (j < w)
        inside = np.zeros(len(pts), bool)
        inside[ok] = masks[k][i[ok], j[ok]]
        keep &= inside | ~ok
        seen |= ok
    return (keep & seen).reshape(dims)


def spiral_cameras(n: int) -> Camera:
    az = torch.linspace(0.0, 720.0, n + 1)[:-1]
    el = torch.linspace(-30.0, 60.0, n)
    return Camera.orbit(az, el, 2.7, fov=50.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--views", type=int, default=20)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--faces", type=int, default=5000)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cams = spiral_cameras(args.views)
    print(f"{args.resolution}^3 grid, {args.views} masks at {args.size}^2, "
          f"{torch.get_num_threads()} thread(s)")
    print("times: wall/CPU seconds (CPU = this process's, steadier on a shared machine)")
    print(f"{'mesh':12s} {'bounds+carve':>12s} {'carve':>12s} {'numpy':>12s} {'ratio':>6s} "
          f"{'same':>5s} {'hull':>12s} {'faces':>6s} {'chamfer':>9s} {'F@0.02':>7s}")
    for path in sorted(ASSETS.glob("*.ply")):
        mesh = normalize_unit_radius(load_mesh(path))
        clip = cams.to_clip(mesh.vertices.float())
        masks = rasterize(clip, mesh.faces, (args.size, args.size)).face_idx >= 0
        t0, c0 = time.perf_counter(), time.process_time()
        occ, lo, voxel = carve_voxels(masks, cams, args.resolution)
        t_all, c_all = time.perf_counter() - t0, time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        occ2 = _carve.carve(_tables(list(masks), cams), lo, voxel, tuple(occ.shape), 0)
        t_carve, c_carve = time.perf_counter() - t0, time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        ref = numpy_carve(masks.numpy(), cams, lo.numpy(), voxel, tuple(occ.shape))
        t_np, c_np = time.perf_counter() - t0, time.process_time() - c0
        same = bool(np.array_equal(ref, occ.numpy()))
        t0, c0 = time.perf_counter(), time.process_time()
        hull = visual_hull(masks, cams, args.resolution, faces=args.faces)
        t_hull, c_hull = time.perf_counter() - t0, time.process_time() - c0
        cd = chamfer_l2(hull, mesh)
        fs = f_score(hull, mesh, 0.02)
        same &= bool(np.array_equal(ref, occ2.numpy()))
        print(f"{path.stem:12s} {t_all:6.2f}/{c_all:5.2f} {t_carve:6.2f}/{c_carve:5.2f} "
              f"{t_np:6.2f}/{c_np:5.2f} {c_np / c_carve:6.1f} {str(same):>5s} "
              f"{t_hull:6.2f}/{c_hull:5.2f} {hull.num_faces:6d} {cd:9.5f} {fs:7.3f}", flush=True)


if __name__ == "__main__":
    main()
