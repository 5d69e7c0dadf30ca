"""``dibr-studio fit --photos DIR [--cameras PATH|auto] ...``: a textured mesh from photos.

Stages, each reported on stderr with its wall time:

1. cameras (structure from motion with ``--cameras auto``, the default; else a COLMAP model
   folder or a transforms.json), undistortion, masks (``--masks``, else automatic: from the
   photo set, :mod:`studio.model.multiview_masks`, when the cameras come with sparse points,
   else from each photo alone) and normalisation
   (:func:`studio.model.photo_folder.load_photo_folder`);
2. start: the visual hull of the masks (``--init sphere`` starts from an icosphere instead);
3. shape: ``--steps`` steps on the vertices (and the cameras with ``--refine-cameras``) against
   the silhouettes;
4. texture: ``--texture-steps`` steps on a UV texture that starts from the photos projected
   onto the shape;
5. exports: the mesh (OBJ with its texture, PLY, GLB), the contact sheet, the history, and the
   fitted cameras as ``cameras/transforms.json`` beside the undistorted photos they describe
   (``cameras/images``), in the normalised world or, with ``--original-frame``, in the
   cameras' own.

The other ``fit`` options (``--optimize``, ``--lr``, ``--weight``, ``--resolution``,
``--views-per-step``, ``--texture-size`` ...) apply to the shape stage.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

PHOTO_VIEWS_PER_STEP = 6  # each step renders 6 of the photos (the loss is their mean)
_MASKS_FROM = {"folder": " (from --masks)", "photo set": " (from the photo set)",
               "each photo": " (each from its photo alone)"}


def add_arguments(p) -> None:
    """The ``--photos`` options of ``dibr-studio fit``."""
    p.add_argument("--photos", metavar="DIR",
                   help="fit a textured mesh to a folder of photos (cameras, masks, "
                        "undistortion, normalisation, visual hull, shape, texture)")
    p.add_argument("--cameras", default=None, metavar="PATH|auto",
                   help="with --photos: a COLMAP model folder or a transforms.json, or auto "
                        "(structure from motion; the default)")
    p.add_argument("--masks", default=None, metavar="DIR",
                   help="with --photos: masks named like the photos (default: automatic, "
                        "from the photo set when the cameras come with 3-D points)")
    p.add_argument("--max-side", type=int, default=512, metavar="N",
                   help="with --photos: the targets' longer side at most (512)")
    p.add_argument("--texture-steps", type=int, default=100, metavar="N",
                   help="with --photos: steps of the texture stage (100)")
    p.add_argument("--refine-cameras", action="store_true",
                   help="with --photos: refine the cameras (6-DoF and focal) with the shape")
    p.add_argument("--original-frame", action="store_true",
                   help="with --photos: write the fitted cameras in the cameras' own world, "
                        "not the normalised one")


class _Stages:
    """``dibr-studio: <stage> ... done in S s`` lines on stderr, and the times."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.times: dict[str, float] = {}
        self._last = None

    def progress(self, stage: str, done: int, total: int) -> None:
        if self.quiet:
            return
        if stage != self._last:
            self._last = stage
            print(f"dibr-studio: {stage} ...", file=sys.stderr, flush=True)
        if total and done == total:
            print(f"dibr-studio: {stage}: {done}/{total}", file=sys.stderr, flush=True)

    def done(self, stage: str, seconds: float, note: str = "") -> None:
        self.times[stage] = self.times.get(stage, 0.0) + seconds
        if not self.quiet:
            print(f"dibr-studio: {stage} done in {seconds:.1f} s{note}", file=sys.stderr,
                  flush=True)


def _steps(session, n: int, stage: str, quiet: bool) -> dict:
    from tqdm import tqdm

    metrics: dict = {}
    bar = tqdm(range(n), desc=stage, unit="step", disable=quiet, dynamic_ncols=True,
               file=sys.stderr)
    for _ in bar:
        metrics = session.step()
        bar.set_postfix(loss=f"{metrics['total']:.4f}", iou=f"{metrics['silhouette_iou']:.3f}",
                        refresh=False)
    bar.close()
    return metrics


def check_arguments(args, usage_error) -> None:
    """Refuse option combinations ``--photos`` cannot take (raises ``usage_error``)."""
    if not args.photos:
        for name in ("cameras", "masks"):
            if getattr(args, name) is not None:
                raise usage_error(f"--{name} needs --photos DIR")
        if args.refine_cameras or args.original_frame:
            raise usage_error("--refine-cameras and --original-frame need --photos DIR")
        return
    if args.demo or args.mesh or getattr(args, "targets", None) or args.session:
        raise usage_error("--photos takes no --demo, --mesh, --target or --session")
    if args.init not in (None, "hull", "sphere"):
        raise usage_error("--photos starts from the visual hull (or --init sphere)")
    if not 32 <= args.max_side <= 4096:
        raise usage_error("--max-side must lie in 32..4096")
    if args.texture_steps < 0:
        raise usage_error("--texture-steps must be >= 0")


def photos_main(args, configure, write_outputs) -> int:
    """Run ``fit --photos`` (arguments already checked); ``configure(session, args)``
    applies the shared fit options, ``write_outputs(session, out)`` the exports."""
    from studio.model import files
    from studio.model.photo_folder import load_photo_folder, write_fitted_transforms
    from studio.model.poses import Cancelled, PoseError
    from studio.model.session import Session

    stages = _Stages(args.quiet)
    out = Path(args.out)
    t0 = time.monotonic()
    try:
        pf = load_photo_folder(args.photos, args.cameras or "auto", masks=args.masks,
                               max_side=args.max_side, progress=stages.progress,
                               clock=time.monotonic)
    except (files.LoadError, PoseError, ValueError) as e:
        print(f"dibr-studio: error: {e}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Cancelled):
        print("dibr-studio: cancelled", file=sys.stderr)
        return 130
    for stage, sec in pf.timings.items():
        stages.done(stage, sec, _MASKS_FROM.get(pf.masks_from, "") if stage == "masks" else "")
    for p in pf.unregistered:
        print(f"dibr-studio: warning: could not register {p} (no camera found for it); "
              "fitting without it", file=sys.stderr)
    for w in pf.warnings:
        print(f"dibr-studio: warning: {w}", file=sys.stderr)
    session = Session()
    cfg = session.config.copy()
    for name, g in cfg.groups.items():
        g.enabled = name == "vertices" or (name == "camera" and args.refine_cameras)
    cfg.weights["l1"] = 0.0  # the shape stage follows the silhouettes
    cfg.views_per_step = min(PHOTO_VIEWS_PER_STEP, len(pf.targets))
    session.set_config(cfg)
    session.set_targets(pf.targets)
    t = time.monotonic()
    try:
        if args.init == "sphere":
            session.new_primitive("sphere", 3 if args.subdivisions is None else args.subdivisions)
        else:
            session.start_from_hull(args.hull_resolution, args.hull_faces)
        configure(session, args)
    except ValueError as e:
        print(f"dibr-studio: error: {e}", file=sys.stderr)
        return 2
    stages.done("start", time.monotonic() - t, f" ({session.mesh_name})")
    t = time.monotonic()
    m = _steps(session, args.steps, "shape", args.quiet)
    stages.done("shape", time.monotonic() - t, f" (IoU {m.get('silhouette_iou', float('nan')):.3f})"
                if m else "")
    t = time.monotonic()
    cfg = session.config.copy()
    for name, g in cfg.groups.items():
        g.enabled = name == "texture"
    cfg.weights["l1"] = 1.0
    session.set_config(cfg)
    m = _steps(session, args.texture_steps, "texture", args.quiet)
    stages.done("texture", time.monotonic() - t)
    t = time.monotonic()
    try:
        write_outputs(session, out)
        f = session.fitter()
        cams = out / "cameras"
        (cams / "images").mkdir(parents=True, exist_ok=True)
        records = []
        for tv, rec in zip(pf.targets, pf.records, strict=True):
            name = f"images/{Path(rec.image).stem}.png"
            files.write_png(cams / name, np.asarray(tv.image, np.float32))
            records.append(rec.__class__(**{**rec.__dict__, "image": name}))
        write_fitted_transforms(cams / "transforms.json", records, f.fitted_cameras(),
                                pf.targets, pf.transform if args.original_frame else None,
                                pf.transform)
    except (OSError, ValueError, RuntimeError) as e:
        print(f"dibr-studio: error: cannot write outputs to {out}: {e}", file=sys.stderr)
        return 2
    stages.done("export", time.monotonic() - t)
    total = time.monotonic() - t0
    print(f"dibr-studio: {len(pf.targets)} photos, {session.steps} steps in {total:.1f} s; "
          f"wrote {out}", file=sys.stderr)
    return 0
