"""End to end from photos: the synthetic 24-photo set through ``dibr-studio fit --photos``.

Renders the photo set of ``tests/_photoset.py`` (moderngl; run under ``xvfb-run`` or with EGL),
writes its photos (and, with ``--true-masks``, its object masks), runs

    dibr-studio fit --photos DIR [--masks MASKS] --cameras auto ...

as a user would (a child process), and measures:

- the wall time of each stage (from the CLI's stderr lines);
- the novel-view silhouette IoU: the true object and the exported mesh rasterised from
  ``--novel`` cameras of another draw of the set's camera rig (never seen by the fit), after a
  similarity (Umeyama, on the camera centres) from the true world to the fit's normalised one;
- the colour error: the mean absolute sRGB difference (0..255) between the exported textured
  mesh rendered from each fitted camera and the undistorted photo, over the pixels it covers.

With ``--mask-iou`` it first measures the automatic masks on their own, in this process:
structure from motion on the photos, then every photo and its true mask undistorted with the
estimated camera, and the IoU per photo of each photo's own automatic mask
(``studio.model.photo.auto_mask``) and of the photo set's (``multiview_masks``) against the
true mask, with their wall times.

Prints one table. Nothing is asserted (see tests/test_photo_fit.py and
tests/test_photo_multiview_masks.py for the tests).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import render_core as rc  # noqa: E402
from render_core.camera_io import read_transforms  # noqa: E402
from render_core.scene_normalize import umeyama  # noqa: E402


def _mask(verts, faces, rec, size) -> np.ndarray:
    h, w = size
    s = w / rec.width
    pin = replace(rec, model="PINHOLE", params=tuple(v * s for v in rec.intrinsics),
                  width=w, height=h)
    clip = pin.to_camera(dtype=torch.float64).to_clip(torch.as_tensor(verts, dtype=torch.float64))
    return rc.rasterize(clip.float(), torch.as_tensor(faces), (h, w)).mask[0].numpy()


def mask_iou(ps, photos: Path, work: Path) -> None:
    """Print the automatic masks' IoU against the true masks (see the module docstring)."""
    from studio.model import photo
    from studio.model.multiview_masks import multiview_masks
    from studio.model.poses import estimate_poses

    t = time.monotonic()
    result = estimate_poses(sorted(photos.glob("*.png")), work)
    t_sfm = time.monotonic() - t
    index = {r.image: k for k, r in enumerate(ps.records)}
    images, truth, records, single = [], [], [], []
    t_single = 0.0
    for r in result.records:
        k = index[r.image]
        rgb = ps.images[k].astype(np.float32) / 255
        t = time.monotonic()
        m1 = photo.auto_mask(rgb)
        t_single += time.monotonic() - t
        img, m, _, rec = r.undistort(rgb, ps.masks[k].astype(np.float32), keep="valid")
        _, m1u, _, _ = r.undistort(rgb, m1, keep="valid")
        images.append(np.clip(np.asarray(img, np.float32), 0, 1))
        truth.append(np.asarray(m) > 0.5)
        single.append(np.asarray(m1u) > 0.5)
        records.append(rec)
    t = time.monotonic()
    multi = [m > 0.5 for m in multiview_masks(images, records, result.points)]
    t_multi = time.monotonic() - t

    def iou(a, b):
        return float((a & b).sum() / max((a | b).sum(), 1))

    print(f"{len(records)} photos registered (structure from motion {t_sfm:.1f} s)")
    print("| masks | IoU min | IoU mean | seconds |\n|---|---|---|---|")
    for name, ms, sec in (("single-image auto_mask", single, t_single),
                          ("multi-view", multi, t_multi)):
        v = [iou(a, b) for a, b in zip(ms, truth, strict=True)]
        print(f"| {name} | {min(v):.3f} | {np.mean(v):.3f} | {sec:.1f} |")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--photos", type=int, default=24)
    p.add_argument("--cameras", default="auto", help="auto, or 'true' for the true cameras")
    p.add_argument("--true-masks", action="store_true",
                   help="give the set's object masks (--masks); else automatic masks")
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--texture-steps", type=int, default=60)
    p.add_argument("--resolution", type=int, default=96)
    p.add_argument("--novel", type=int, default=8, help="novel views for the IoU")
    p.add_argument("--keep", type=Path, default=None, help="keep the files in this folder")
    p.add_argument("--mask-iou", action="store_true",
                   help="first measure the automatic masks against the true ones")
    args = p.parse_args()
    from _photoset import render_photoset, true_cameras

    ps = render_photoset(args.photos)
    with tempfile.TemporaryDirectory(prefix="photo-fit-") as tmp:
        root = args.keep or Path(tmp)
        ps.save_photos(root / "photos", root / "masks")
        if args.mask_iou:
            mask_iou(ps, root / "photos", root / "mask-iou")
        cmd = [sys.executable, "-m", "studio", "fit", "--photos", str(root / "photos"),
               "--steps", str(args.steps), "--texture-steps", str(args.texture_steps),
               "--resolution", str(args.resolution), "--out", str(root / "out")]
        if args.cameras == "true":
            ps.write_transforms(root / "photos" / "transforms.json")
            cmd += ["--cameras", str(root / "photos" / "transforms.json")]
        if args.true_masks:
            cmd += ["--masks", str(root / "masks")]
        t0 = time.monotonic()
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        run = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.monotonic() - t0
        if run.returncode != 0:
            print(run.stderr, file=sys.stderr)
            return run.returncode
        stages = {m.group(1): float(m.group(2))
                  for m in re.finditer(r"dibr-studio: (\w+) done in ([0-9.]+) s", run.stderr)}
        fitted = read_transforms(root / "out" / "cameras" / "transforms.json")
        by_name = {Path(r.image).stem: r for r in fitted}
        pairs = [(t, by_name[Path(t.image).stem]) for t in ps.records
                 if Path(t.image).stem in by_name]
        sim = umeyama(np.array([t.center for t, _ in pairs]),
                      np.array([f.center for _, f in pairs]))
        mesh = rc.load_mesh(root / "out" / "mesh.obj")
        true_v = sim.apply_to_points(ps.verts)
        novel = sim.apply_to_records(true_cameras(args.novel, ps.records[0].width,
                                                  ps.records[0].height, seed=11))
        ious = []
        for rec in novel:
            a = _mask(true_v, ps.faces, rec, (240, 320))
            b = _mask(mesh.vertices.double().numpy(), mesh.faces.numpy(), rec, (240, 320))
            ious.append(float((a & b).sum() / max((a | b).sum(), 1)))
        errs = []
        for r in fitted:
            photo = rc.srgb_to_linear(torch.from_numpy(
                np.asarray(__import__("PIL.Image").Image.open(r.path).convert("RGB"),
                           np.float32) / 255))
            out = rc.Renderer((r.height, r.width), shading="texture", sigma=1e-5).render(
                mesh, r.to_camera())
            cover = out.frags.mask[0].numpy()
            diff = (rc.linear_to_srgb(out.rgb[0].clamp(0, 1)) - rc.linear_to_srgb(photo)).abs()
            errs.append(float(diff.numpy()[cover].mean() * 255))
    unregistered = run.stderr.count("could not register")
    print(json.dumps({"photos": args.photos, "registered": len(fitted),
                      "unregistered": unregistered, "masks": "true" if args.true_masks
                      else "automatic", "cameras": args.cameras}))
    print("| stage | seconds |\n|---|---|")
    for k, v in stages.items():
        print(f"| {k} | {v:.1f} |")
    print(f"| total (wall) | {wall:.1f} |")
    print(f"novel-view silhouette IoU: min {min(ious):.3f}, mean {np.mean(ious):.3f} "
          f"({len(ious)} views)")
    print(f"colour error (mean |sRGB| over covered pixels, 0..255): mean {np.mean(errs):.1f}, "
          f"worst view {max(errs):.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
