"""Before / after sample sheets of style transfer and 3D DeepDream on a shipped demo mesh →
docs/stylize_sample_sheet.png and docs/deepdream_sample_sheet.png (three views each), made
with the same Session, objective and sheet code as ``dibr-studio stylize`` / ``dream``.

Prints the held-out numbers (views no step drew): style distance and silhouette IoU against
the start, or the activation norm. ``python scripts/stylize_sample_sheet.py [--steps N]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing


def _held_out(fitter, count: int = 8, seed: int = 987654) -> tuple[float, float]:
    return fitter.objective.held_out(fitter, seed, count)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mesh", default=str(ROOT / "assets" / "meshes" / "vase.ply"))
    ap.add_argument("--dream-mesh", default=str(ROOT / "assets" / "meshes" / "critter.ply"))
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--out", default=str(ROOT / "docs"))
    args = ap.parse_args()
    from studio.model import files
    from studio.model.session import Session
    from studio.model.stylize import procedural_style, start_dream, start_style_transfer
    from studio.model.stylize_sheet import before_after_sheet

    out = Path(args.out)
    style = procedural_style("painting")
    for kind, mesh_path in (("style", args.mesh), ("dream", args.dream_mesh)):
        s = Session()
        s.load_mesh(mesh_path)
        start = s.current_mesh()
        if kind == "style":
            start_style_transfer(s, style, resolution=args.resolution)
        else:
            start_dream(s, "conv2_1", resolution=args.resolution)
        before, iou0 = _held_out(s.fitter())
        t0 = time.monotonic()
        for _ in range(args.steps):
            s.step()
        after, iou = _held_out(s.fitter())
        name = "stylize_sample_sheet.png" if kind == "style" else "deepdream_sample_sheet.png"
        sheet = before_after_sheet(start, s.current_mesh(), s.config,
                                   style if kind == "style" else None)
        files.write_png(out / name, sheet)
        what = "style distance" if kind == "style" else "activation norm (conv2_1)"
        print(f"{kind}: {Path(mesh_path).name}, {args.steps} steps at {args.resolution} px in "
              f"{time.monotonic() - t0:.0f} s; held-out {what} {before:.4f} -> {after:.4f} "
              f"(x{after / before:.2f}), silhouette IoU vs start {iou:.3f}; wrote {out / name}")


if __name__ == "__main__":
    main()
