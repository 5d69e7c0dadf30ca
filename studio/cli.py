"""Headless fitting: ``dibr-studio fit …`` runs the same Fitter as the GUI, with a progress bar.

Writes ``DIR/mesh.obj`` (+ ``.mtl``/``.png`` when textured), ``DIR/mesh.ply``, ``DIR/mesh.glb``,
``DIR/contact_sheet.png`` (targets over renders over differences) and ``DIR/history.json``.
``--session FILE`` continues a saved session when FILE exists and saves the fit to it at the end.
Exit status 0 on success, 2 with a one-line message on bad input.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

import render_core as rc
from render_core.fit import GROUPS, LOSS_TERMS, ParamGroup
from render_core.fit_config import MODEL_SETTINGS

from .model import files
from .model.session import Session


class UsageError(Exception):
    """Bad command-line input: reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of usage + message
        raise UsageError(message)


class _TargetAction(argparse.Action):
    """``--target IMG`` starts a target; the ``--view`` after it gives its camera."""

    def __call__(self, parser, ns, value, option_string=None):
        targets = getattr(ns, "targets", None) or []
        if option_string == "--target":
            targets.append({"path": value, "view": None, "mask": None})
        elif option_string == "--mask":
            if not targets or targets[-1].get("mask") is not None:
                raise UsageError("--mask must follow the --target it belongs to")
            targets[-1]["mask"] = value
        else:
            if not targets or targets[-1]["view"] is not None:
                raise UsageError("--view must follow the --target it describes")
            targets[-1]["view"] = _parse_view(value)
        ns.targets = targets


def _parse_view(text: str) -> tuple[float, float, float, float | None]:
    try:
        parts = [float(p) for p in text.split(",")]
    except ValueError:
        raise UsageError(f"--view {text!r}: expected AZ,EL,DIST[,FOV] in degrees") from None
    if len(parts) not in (3, 4):
        raise UsageError(f"--view {text!r}: expected AZ,EL,DIST[,FOV] in degrees")
    if len(parts) == 3:
        parts.append(None)  # the photo's EXIF fov, 60 without (Session.add_targets)
    return tuple(parts)  # type: ignore[return-value]


def _join_negative_views(argv: list[str]) -> list[str]:
    """``--view -45,20,3`` as ``--view=-45,20,3``: argparse takes a value that starts with
    ``-`` for an option, so a following word that parses as numbers is joined to it."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--view" and i + 1 < len(argv) and argv[i + 1].startswith("-"):
            try:
                [float(p) for p in argv[i + 1].split(",")]
            except ValueError:
                pass
            else:
                out.append(f"--view={argv[i + 1]}")
                i += 2
                continue
        out.append(word)
        i += 1
    return out


def _pairs(items: list[str], names, what: str) -> dict[str, float]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in names:
            raise UsageError(f"{what} {item!r}: expected NAME=VALUE with NAME in {','.join(names)}")
        try:
            out[name] = float(value)
        except ValueError:
            raise UsageError(f"{what} {item!r}: {value!r} is not a number") from None
    return out


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="dibr-studio fit", description="Fit a mesh to target images, headless.")
    p.add_argument("--demo", action="store_true", help="fit the built-in demo scene")
    p.add_argument("--mesh", help="starting mesh (default: an icosphere)")
    p.add_argument("--init", choices=("sphere", "hull", "mesh"), default=None,
                   help="where the fit starts: an icosphere, the visual hull of the targets' "
                        "masks, or the --mesh file (default: --mesh when given, else sphere)")
    p.add_argument("--hull-resolution", type=int, default=128, metavar="N",
                   help="voxels along the longest side of the visual hull's grid (128)")
    p.add_argument("--hull-faces", type=int, default=5000, metavar="N",
                   help="faces of the visual hull mesh (5000)")
    p.add_argument("--subdivisions", type=int, default=None,
                   help="icosphere subdivisions of the starting sphere (3); not with --demo")
    p.add_argument("--target", action=_TargetAction, metavar="IMG",
                   help="target image (PNG/JPEG; alpha = mask); repeat for more views")
    p.add_argument("--view", action=_TargetAction, metavar="AZ,EL,DIST[,FOV]",
                   help="orbit camera of the preceding --target, degrees (FOV default 60)")
    p.add_argument("--mask", action=_TargetAction, metavar="IMG",
                   help="mask of the preceding --target: its alpha, else its brightness")
    p.add_argument("--optimize", default=None,
                   help=f"comma-separated groups from {','.join(GROUPS)} "
                        "(default: vertices,colors)")
    p.add_argument("--lr", action="append", default=[], metavar="GROUP=LR",
                   help="learning rate of a group, e.g. vertices=0.01")
    p.add_argument("--weight", action="append", default=[], metavar="TERM=W",
                   help=f"loss weight, TERM in {','.join(LOSS_TERMS)}")
    p.add_argument("--shading", choices=rc.SHADINGS, default=None)
    p.add_argument("--resolution", type=int, default=None,
                   help=f"render height in pixels (default {PHOTO_RESOLUTION} for --target "
                        "images, the demo's and a session's own otherwise)")
    p.add_argument("--texture-size", type=int, default=None, metavar="N",
                   help="side of the fitted UV texture in texels")
    p.add_argument("--large-steps", type=float, default=None, metavar="LAMBDA",
                   help="move the vertices with the Large Steps parameterisation "
                        "u = (I + LAMBDA L) offset and uniform Adam (19 is the paper's value; "
                        "0 turns it off)")
    p.add_argument("--views-per-step", type=int, default=None, metavar="K",
                   help="render a random K of the targets each step (the loss is their mean); "
                        "0 or absent: all targets")
    p.add_argument("--shape-preset", choices=rc.SHAPE_PRESETS, default=None,
                   help="settings for refining a visual hull (use with --init hull): "
                        "'silhouette' (masks only) or 'lit' (lit RGB targets under the known "
                        "default light, Lambertian); other options given override them")
    p.add_argument("--remesh", action=argparse.BooleanOptionalAction, default=None,
                   help="remesh continuously while fitting: edges split, collapse and flip "
                        "towards lengths that follow how each region still moves (needs a "
                        "closed mesh and no texture shown); with --init hull and no "
                        "--shape-preset it also picks the 'silhouette' preset")
    p.add_argument("--remesh-edge", default=None, metavar="MIN,MAX",
                   help="smallest and largest edge length of remeshing, world units; 'auto' "
                        "for either (default auto,auto: 1.5 and 6 pixels at the targets' "
                        "distance, bounded by the mesh's size)")
    p.add_argument("--remesh-interval", type=int, default=None, metavar="N",
                   help="remesh every N accepted steps (5)")
    p.add_argument("--resolution-schedule", default=None, metavar="RES:STEP,...",
                   help="coarse to fine: render at RES from step STEP on, e.g. "
                        "64:0,128:100,256:200 (targets resampled, sigma scaled per level); "
                        "'off' turns it off")
    p.add_argument("--backend", default=None, choices=("auto", "torch", "cpu", "cuda"))
    p.add_argument("--model", default=None, choices=MODEL_SETTINGS,
                   help="rendering/gradient model: auto (default: dibr+aa when the fit has a "
                        "colour loss, i.e. an L1 weight above 0, else dibr), dibr, dibr+aa "
                        "(edge antialiasing: colour losses move occlusion edges), softras "
                        "(unlit vertex colours only), nmr (Neural 3D Mesh Renderer's "
                        "approximate gradient at every edge; any shading)")
    p.add_argument("--session", metavar="FILE",
                   help="a saved session (.zip): continued when it exists (then it holds the "
                        "mesh, targets and settings), and written at the end")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--limit", action="append", default=[], metavar="NAME=N",
                   help="raise or lower a size limit on inputs, NAME in "
                        f"{','.join(LIMIT_NAMES)} (defaults: rc.Limits; env DIBR_MAX_*)")
    from .photos_cli import add_arguments  # fit --photos DIR (a folder of photos)

    add_arguments(p)
    return p


PHOTO_RESOLUTION = 128  # photos need more than the demo's 64 rows


def _parse_edges(text: str) -> tuple[float | None, float | None]:
    """``--remesh-edge MIN,MAX``: two lengths > 0, or ``auto`` (None) for either."""
    parts = [x.strip() for x in str(text).split(",")]
    out: list[float | None] = []
    try:
        if len(parts) != 2:
            raise ValueError
        for x in parts:
            v = None if x == "auto" else float(x)
            if v is not None and not (v > 0 and v < float("inf")):
                raise ValueError
            out.append(v)
    except ValueError:
        raise UsageError(f"--remesh-edge {text!r}: expected MIN,MAX, two lengths > 0 or "
                         "'auto', e.g. 0.02,0.1 or auto,0.1") from None
    if out[0] is not None and out[1] is not None and out[0] >= out[1]:
        raise UsageError(f"--remesh-edge {text!r}: MIN must be smaller than MAX")
    return out[0], out[1]


def _configure(session: Session, args, fresh_targets: bool = False) -> None:
    cfg = session.config.copy()
    preset = args.shape_preset
    if preset is None and getattr(args, "remesh", None) and getattr(args, "init", None) == "hull":
        preset = "silhouette"  # `--init hull --remesh` alone: the best shape fit there is
    if preset is not None:
        res = args.resolution or (PHOTO_RESOLUTION if fresh_targets else cfg.resolution)
        cfg = rc.shape_fit_config(preset, res, remesh=bool(getattr(args, "remesh", None)))
    if args.optimize is not None:
        wanted = [g.strip() for g in args.optimize.split(",") if g.strip()]
        bad = [g for g in wanted if g not in GROUPS]
        if bad or not wanted:
            raise UsageError(f"--optimize: unknown group(s) {','.join(bad) or '(none)'}; "
                             f"choose from {','.join(GROUPS)}")
        for g in GROUPS:
            cfg.groups[g] = ParamGroup(g in wanted, cfg.groups[g].lr)
    for g, lr in _pairs(args.lr, GROUPS, "--lr").items():
        cfg.groups[g] = ParamGroup(cfg.groups[g].enabled, lr)
    cfg.weights.update(_pairs(args.weight, LOSS_TERMS, "--weight"))
    if args.shading:
        cfg.shading = args.shading
    if args.resolution is not None:
        cfg.resolution = args.resolution
    elif fresh_targets:
        cfg.resolution = PHOTO_RESOLUTION
    if args.texture_size is not None:
        cfg.texture_size = args.texture_size
    if args.backend:
        cfg.backend = args.backend
    if args.large_steps is not None:
        cfg.large_steps = args.large_steps or None
    if args.views_per_step is not None:
        cfg.views_per_step = args.views_per_step or None
    if args.resolution_schedule is not None:
        try:
            cfg.resolution_schedule = (None if args.resolution_schedule == "off" else
                                       rc.parse_resolution_schedule(args.resolution_schedule))
        except ValueError as e:
            raise UsageError(f"--resolution-schedule: {e}") from None
    if getattr(args, "model", None):
        cfg.model = args.model
    if getattr(args, "remesh", None) is not None:
        cfg.remesh = args.remesh
    if getattr(args, "remesh_edge", None) is not None:
        cfg.remesh_min_edge, cfg.remesh_max_edge = _parse_edges(args.remesh_edge)
    if getattr(args, "remesh_interval", None) is not None:
        cfg.remesh_interval = args.remesh_interval
    if cfg == session.config:
        return  # a resumed session keeps its settings (and its optimizer's learning rates)
    try:
        session.set_config(cfg)
    except ValueError as e:
        raise UsageError(str(e)) from None


LIMIT_NAMES = ("faces", "vertices", "image_pixels", "image_size", "texture_size")


def _apply_limits(items: list[str]) -> None:
    """``--limit NAME=N`` on top of the defaults and the ``DIBR_MAX_*`` environment."""
    changes = {}
    for name, value in _pairs(items, LIMIT_NAMES, "--limit").items():
        if not 1 <= value < 2**63 or value != int(value):  # also refuses nan and inf
            raise UsageError(f"--limit {name}={value:g}: expected a positive integer")
        changes[f"max_{name}"] = int(value)
    rc.set_limits(rc.get_limits().replace(**changes))


def _load(args) -> Session:
    s = Session()
    init = args.init or ("mesh" if args.mesh else "sphere")
    if init == "mesh" and not args.mesh:
        raise UsageError("--init mesh needs --mesh FILE")
    if init != "mesh" and args.mesh:
        raise UsageError(f"--init {init} starts from no file; drop --mesh or use --init mesh")
    if init != "sphere" and args.subdivisions is not None:
        raise UsageError(f"--subdivisions sets the starting sphere; not with --init {init}")
    if args.session and Path(args.session).exists():
        if args.init:
            raise UsageError(f"--session {args.session} exists and holds the mesh; "
                             "give no --init with it")
        if args.demo or args.mesh or getattr(args, "targets", None):
            raise UsageError(f"--session {args.session} exists and holds the problem; "
                             "give no --demo, --mesh or --target with it")
        s.open(args.session)
    elif args.demo:
        if args.mesh or getattr(args, "targets", None):
            raise UsageError("--demo takes no --mesh or --target")
        if args.subdivisions is not None:
            raise UsageError("--demo takes no --subdivisions (the demo starts from its own sphere)")
        s.load_demo()
    else:
        targets = getattr(args, "targets", None) or []
        if not targets:
            raise UsageError("give at least one --target IMG --view AZ,EL,DIST[,FOV] (or --demo)")
        for t in targets:
            if t["view"] is None:
                raise UsageError(f"--target {t['path']}: missing its --view AZ,EL,DIST[,FOV]")
        if args.mesh:
            s.load_mesh(args.mesh)
        else:
            s.new_primitive("sphere", 3 if args.subdivisions is None else args.subdivisions)
        s.add_targets([t["path"] for t in targets], [t["view"] for t in targets])
        for i, t in enumerate(targets):
            if t.get("mask") is not None:
                s.load_target_mask(i, t["mask"])
        for warning in s.warnings:
            print(f"dibr-studio: warning: {warning}", file=sys.stderr)
    if init == "hull":
        if not 8 <= args.hull_resolution <= 512:
            raise UsageError("--hull-resolution must lie in 8..512")
        s.start_from_hull(args.hull_resolution, args.hull_faces)
    _configure(s, args, fresh_targets=bool(getattr(args, "targets", None)))
    return s


def write_outputs(session: Session, out: Path) -> list[Path]:
    """The exports of a finished fit (also used by the GUI's tests)."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in ("mesh.obj", "mesh.ply", "mesh.glb"):
        written += session.export_mesh(out / name)
    session.export_contact_sheet(out / "contact_sheet.png")
    session.export_history(out / "history.json")
    return written + [out / "contact_sheet.png", out / "history.json"]


def prepare_fit(args) -> Session:
    """The checked problem of parsed ``fit`` arguments, size limits applied (``fit`` and
    ``batch`` share it). Raises :class:`UsageError`, ``files.LoadError`` or ``ValueError``."""
    check_fit_arguments(args)
    return _load(args)


def check_fit_arguments(args) -> None:
    """The checks of parsed ``fit`` arguments that need no file, size limits applied."""
    from .photos_cli import check_arguments

    if args.steps < 0:
        raise UsageError("--steps must be >= 0")
    if args.subdivisions is not None and not 0 <= args.subdivisions <= 6:
        raise UsageError("--subdivisions must lie in 0..6")
    if getattr(args, "remesh_interval", None) is not None and args.remesh_interval < 1:
        raise UsageError("--remesh-interval must be >= 1")
    if getattr(args, "remesh_edge", None) is not None:
        _parse_edges(args.remesh_edge)
    _apply_limits(args.limit)
    check_arguments(args, UsageError)


def run_steps(session: Session, steps: int, quiet: bool = True, on_step=None) -> dict:
    """``steps`` fit steps with a progress bar (none when ``quiet``); returns the last step's
    metrics ({} for none). ``on_step(metrics)`` after each step (``batch`` reports progress)."""
    from tqdm import tqdm

    metrics: dict = {}
    bar = tqdm(range(steps), desc="fitting", unit="step", disable=quiet, dynamic_ncols=True)
    for _ in bar:
        metrics = session.step()
        bar.set_postfix(loss=f"{metrics['total']:.4f}", iou=f"{metrics['silhouette_iou']:.3f}",
                        refresh=False)
        if on_step is not None:
            on_step(metrics)
    bar.close()
    return metrics


def fit_main(argv: list[str]) -> int:
    """``dibr-studio fit …``; returns the exit status."""
    try:
        args = build_parser().parse_args(_join_negative_views(argv))
        check_fit_arguments(args)
        if args.photos:
            from .photos_cli import photos_main

            out = Path(args.out)
            if out.exists() and not out.is_dir():
                raise UsageError(f"--out {out}: exists and is not a directory")
            if args.threads:
                torch.set_num_threads(args.threads)
            return photos_main(args, lambda s, a: _configure(s, a, fresh_targets=True),
                               write_outputs)
        session = _load(args)
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise UsageError(f"--out {out}: exists and is not a directory")
    except (UsageError, files.LoadError, ValueError) as e:
        print(f"dibr-studio: error: {e}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    steps_before = session.steps
    start = time.monotonic()
    metrics = run_steps(session, args.steps, quiet=args.quiet)
    elapsed = time.monotonic() - start
    try:
        write_outputs(session, out)
    except (OSError, ValueError, RuntimeError) as e:
        print(f"dibr-studio: error: cannot write outputs to {out}: {e}", file=sys.stderr)
        return 2
    if args.session:
        try:
            session.save(args.session)
        except (OSError, ValueError, RuntimeError) as e:
            print(f"dibr-studio: error: cannot save the session: {e}", file=sys.stderr)
            return 2
    iou = metrics.get("silhouette_iou", float("nan"))
    run = session.steps - steps_before
    total = f" ({session.steps} in the session)" if steps_before else ""
    mesh = session.current_mesh()
    size = f", {mesh.num_vertices} vertices, {mesh.num_faces} faces" if mesh is not None else ""
    model = session.config.rendering_model()
    print(f"dibr-studio: {run} steps in {elapsed:.1f} s{total}, silhouette IoU {iou:.3f}"
          f"{size}, model {model}; wrote {out}")
    return 0
