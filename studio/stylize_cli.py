"""``dibr-studio stylize`` and ``dibr-studio dream``: NMR's style transfer and 3D DeepDream,
headless, on the same Session and Fitter as the studio.

Writes what ``dibr-studio fit`` writes (``mesh.obj``/``.ply``/``.glb``, ``contact_sheet.png``
— the style image over the render —, ``history.json``) plus ``before_after.png``: the start
and the result from three views. Exit status 0 on success, 2 with one line on bad input.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from render_core.features import FeatureError

from .cli import UsageError, _apply_limits, _pairs, _Parser, write_outputs
from .model import files
from .model.session import Session
from .model.stylize import DEFAULT_RESOLUTION, start_dream, start_style_transfer
from .model.stylize_sheet import before_after_sheet

WEIGHTS = ("style", "dream", "content", "laplacian", "edge", "tv")


def _parser(kind: str) -> argparse.ArgumentParser:
    what = "style transfer" if kind == "stylize" else "3D DeepDream"
    p = _Parser(prog=f"dibr-studio {kind}", description=f"NMR {what} of a mesh, headless.")
    p.add_argument("--mesh", required=True, help="the mesh to change (OBJ, PLY, GLB, ...)")
    if kind == "stylize":
        p.add_argument("--style", required=True, metavar="IMG", help="style image (PNG/JPEG)")
    else:
        p.add_argument("--layer", default=None, help="layer whose activations grow, e.g. "
                                                     "conv3_1 (default: the extractor's)")
        p.add_argument("--channel", type=int, default=None, help="one channel of the layer "
                                                                 "(default: all)")
    p.add_argument("--features", default="random", metavar="random|FILE",
                   help="'random' (built-in, offline) or a torchvision VGG-16/19 state_dict")
    p.add_argument("--weight", action="append", default=[], metavar="TERM=W",
                   help=f"objective weight, TERM in {','.join(WEIGHTS)}")
    p.add_argument("--optimize", default="vertices,colors",
                   help="groups that move: vertices,colors,texture (default vertices,colors)")
    p.add_argument("--resolution", type=int, default=DEFAULT_RESOLUTION,
                   help=f"render height in pixels ({DEFAULT_RESOLUTION})")
    p.add_argument("--views", type=int, default=4, help="random views per step (4)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random views (0)")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--session", metavar="FILE", help="also save the fit as a session (.zip)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--limit", action="append", default=[], metavar="NAME=N",
                   help="raise or lower a size limit on inputs (see dibr-studio fit --help)")
    return p


def _setup(kind: str, argv: list[str]) -> tuple[argparse.Namespace, Session]:
    args = _parser(kind).parse_args(argv)
    if args.steps < 0:
        raise UsageError("--steps must be >= 0")
    _apply_limits(args.limit)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a directory")
    groups = [g.strip() for g in args.optimize.split(",") if g.strip()]
    session = Session()
    session.load_mesh(args.mesh)
    common = dict(features=args.features, weights=_pairs(args.weight, WEIGHTS, "--weight"),
                  groups=groups, resolution=args.resolution, views=args.views, seed=args.seed)
    if kind == "stylize":
        start_style_transfer(session, args.style, **common)
    else:
        start_dream(session, args.layer, args.channel, **common)
    return args, session


def _main(kind: str, argv: list[str]) -> int:
    try:
        args, session = _setup(kind, argv)
    except (UsageError, files.LoadError, FeatureError, ValueError, RuntimeError) as e:
        print(f"dibr-studio: error: {e}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    from tqdm import tqdm

    start_mesh = session.current_mesh()
    t0 = time.monotonic()
    metrics: dict = {}
    bar = tqdm(range(args.steps), desc=kind, unit="step", disable=args.quiet, dynamic_ncols=True)
    for _ in bar:
        metrics = session.step()
        bar.set_postfix(loss=f"{metrics['total']:.4f}", iou=f"{metrics['silhouette_iou']:.3f}",
                        refresh=False)
    bar.close()
    out = Path(args.out)
    try:
        write_outputs(session, out)
        files.write_png(out / "before_after.png",
                        before_after_sheet(start_mesh, session.current_mesh(), session.config))
        if args.session:
            session.save(args.session)
    except (OSError, ValueError, RuntimeError) as e:
        print(f"dibr-studio: error: cannot write outputs to {out}: {e}", file=sys.stderr)
        return 2
    print(f"dibr-studio: {kind}: {args.steps} steps in {time.monotonic() - t0:.1f} s, "
          f"silhouette IoU vs start {metrics.get('silhouette_iou', 1.0):.3f}; wrote {out}")
    return 0


def stylize_main(argv: list[str]) -> int:
    """``dibr-studio stylize --mesh M --style IMG --steps N --out DIR``; the exit status."""
    return _main("stylize", argv)


def dream_main(argv: list[str]) -> int:
    """``dibr-studio dream --mesh M --layer L --steps N --out DIR``; the exit status."""
    return _main("dream", argv)
