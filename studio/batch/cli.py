"""``dibr-studio batch MANIFEST --out DIR``: every row of a manifest fitted on Ray.

MANIFEST is a JSON or CSV manifest (docs/batch.md) or a folder in the layout of
:mod:`studio.batch.layout` (its manifest is written to ``DIR/manifest.json`` first).
Exit status: 0 when every fit is done, 1 when some failed (see ``DIR/summary.csv``), 2 with one
line on bad input (every bad row of the manifest in it), 130 after Ctrl+C.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import render_core as rc

from ..cli import UsageError, _Parser
from . import manifest as mf
from .layout import LayoutError, manifest_from_folder


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="dibr-studio batch",
                description="Run many fits at once on Ray (a local instance by default).")
    p.add_argument("manifest", help="manifest (.json or .csv), or a folder "
                                    "DIR/<item>/*.png + views.json")
    p.add_argument("--out", required=True, help="output folder (one sub-folder per fit)")
    p.add_argument("--address", default=None,
                   help="Ray cluster to join (default: $RAY_ADDRESS, else a local instance)")
    p.add_argument("--cpus-per-fit", type=int, default=1, metavar="N",
                   help="CPUs of each fit, also its torch threads (1)")
    p.add_argument("--retries", type=int, default=2, metavar="K",
                   help="times a fit whose worker process died is run again (2)")
    p.add_argument("--max-parallel", type=int, default=None, metavar="N",
                   help="at most N fits at once (default: as many as the CPUs allow)")
    p.add_argument("--max-input-mb", type=float, default=mf.MAX_INPUT_BYTES / 2**20,
                   metavar="MB", help="limit on one fit's input files together (256)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def batch_main(argv: list[str]) -> int:
    """``dibr-studio batch …``; returns the exit status."""
    from .run import run

    try:
        args = build_parser().parse_args(argv)
        if args.cpus_per_fit < 1 or args.retries < 0 or not args.max_input_mb > 0 or (
                args.max_parallel is not None and args.max_parallel < 1):
            raise UsageError("--cpus-per-fit and --max-parallel must be >= 1, --retries >= 0, "
                             "--max-input-mb > 0")
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise UsageError(f"--out {out}: exists and is not a directory")
        limit = int(args.max_input_mb * 2**20)
        source = Path(args.manifest)
        if source.is_dir():
            doc = manifest_from_folder(source)
            out.mkdir(parents=True, exist_ok=True)
            path = out / "manifest.json"
            for row in doc["fits"]:  # written in DIR: paths relative to the layout folder
                for t in row["targets"]:
                    t["image"] = str((source / t["image"]).resolve())
            rc.atomic_write_text(path, json.dumps(doc, indent=1))
            rows = mf.load(path, limit)
        else:
            rows = mf.load(source, limit)
    except (UsageError, mf.ManifestError, LayoutError, OSError) as e:
        print(f"dibr-studio: error: {e}", file=sys.stderr)
        return 2
    try:
        result = run(rows, out, address=args.address or os.environ.get("RAY_ADDRESS"),
                     cpus_per_fit=args.cpus_per_fit, retries=args.retries,
                     max_parallel=args.max_parallel,
                     progress=not args.quiet)
    except KeyboardInterrupt:
        print(f"dibr-studio: interrupted; finished fits are in {out}, the same command runs "
              "the rest", file=sys.stderr)
        return 130
    except RuntimeError as e:
        print(f"dibr-studio: error: {e}", file=sys.stderr)
        return 2
    done, failed = result.by_status("done"), result.by_status("failed")
    print(f"dibr-studio: {len(done)} fits done ({len(result.skipped)} skipped as finished "
          f"before), {len(failed)} failed; report: {out / 'report.html'}")
    for rec in result.records:
        if rec["status"] == "failed":
            print(f"  {rec['name']} (row {rec['row']}): {rec['error']}", file=sys.stderr)
    return 1 if failed else 0
