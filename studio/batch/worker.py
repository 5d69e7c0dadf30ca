"""One fit of a batch, as a Ray worker runs it: the very code of ``dibr-studio fit``. No Qt.

:func:`run_fit` gets the row's ``fit`` arguments and its input files as bytes (so a cluster
needs no shared file system), writes them into a private temporary folder, parses the arguments
with the ``fit`` parser, loads the problem with :func:`studio.cli.prepare_fit`, runs
:func:`studio.cli.run_steps` and writes the outputs with :func:`studio.cli.write_outputs`, then
hands the output files back as bytes for the driver to write. Nothing here imports Ray: the
driver wraps :func:`run_fit` as a task (:mod:`studio.batch.run`), and tests can call it directly.

A fit that raises comes back as ``{"status": "failed", "error": "..."}``; only the death of the
process itself (killed, out of memory) is left to Ray's retries.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import tempfile
import time
import traceback
from pathlib import Path

PROGRESS_EVERY_S = 0.5
"""At most one progress report per fit in this time (plus the first and last step)."""


def write_blobs(folder: Path, blobs: dict[str, bytes], what: str = "input") -> None:
    """Write ``{relative name: bytes}`` under ``folder``; a name leaving it is refused."""
    for name, data in blobs.items():
        p = (folder / name).resolve()
        if not p.is_relative_to(folder.resolve()):
            raise ValueError(f"{what} name {name!r} leaves the fit's folder")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def _read_outputs(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes()
            for p in sorted(out.rglob("*")) if p.is_file()}


def _plain_fit(args, extra: dict, out: Path, err: io.StringIO, report) -> dict:
    """A row of images with cameras (or the demo): the code of ``dibr-studio fit``."""
    from studio import cli

    with contextlib.redirect_stderr(err):
        session = cli.prepare_fit(args)
    if extra:  # FitConfig fields without a `fit` option, on top of what it set
        cfg = session.config.copy()
        for k, v in extra.items():
            setattr(cfg, k, v)
        session.set_config(cfg)
    last = [0.0]

    def on_step(m: dict) -> None:
        now = time.monotonic()
        k = int(m.get("step", 0))
        if now - last[0] >= PROGRESS_EVERY_S or k in (1, args.steps):
            last[0] = now
            report(event="step", step=k, steps=args.steps, loss=float(m["total"]),
                   iou=float(m["silhouette_iou"]))

    metrics = cli.run_steps(session, args.steps, quiet=True, on_step=on_step)
    cli.write_outputs(session, out)
    return {"status": "done", "files": _read_outputs(out), "steps": session.steps,
            "metrics": metrics, "history": [m.get("total") for m in session.history]}


def _photo_fit(args, extra: dict, out: Path, err: io.StringIO) -> dict:
    """A photo-folder row: the code of ``fit --photos`` (:func:`studio.photos_cli.photos_main`),
    its stage lines kept for the error; metrics and history from its ``history.json``."""
    import json

    from studio import cli
    from studio.photos_cli import photos_main

    def configure(session, a) -> None:  # as `fit --photos` does, then the extra fields
        cli._configure(session, a, fresh_targets=True)
        if extra:
            cfg = session.config.copy()
            for k, v in extra.items():
                setattr(cfg, k, v)
            session.set_config(cfg)

    cli.check_fit_arguments(args)
    lines = io.StringIO()
    with contextlib.redirect_stderr(lines):
        code = photos_main(args, configure, cli.write_outputs)
    for line in lines.getvalue().splitlines():  # its warnings (not its closing line)
        if line.startswith("dibr-studio: warning: "):
            err.write(line + "\n")
    if code != 0:
        errors = [line.removeprefix("dibr-studio: error: ")
                  for line in lines.getvalue().splitlines() if "error:" in line]
        raise RuntimeError(errors[-1] if errors else f"fit --photos exited with {code}")
    history = json.loads((out / "history.json").read_text())["history"]
    return {"status": "done", "files": _read_outputs(out), "steps": len(history),
            "metrics": history[-1] if history else {},
            "history": [m.get("total") for m in history]}


def run_fit(name: str, argv: list[str], extra: dict, blobs: dict[str, bytes], threads: int,
            progress=None) -> dict:
    """Run one row (see the module doc). ``argv``: ``fit`` arguments with input paths relative
    to the fit's folder; ``extra``: FitConfig fields ``fit`` has no option for; ``threads``:
    torch's intra-op threads (the task's CPU share); ``progress``: an actor handle with
    ``report.remote(name, dict)`` or None. Returns a dict with ``status`` ("done" or
    "failed"), ``error``, ``files`` ({name: bytes}), ``steps``, ``metrics`` (the last step's),
    ``history`` (the total loss per step), ``wall_s``, ``cpu_s`` (CPU time of the worker
    process, all threads), ``worker``, ``warnings``."""
    import torch

    import render_core as rc
    from studio import cli
    from studio.model import files

    start, cpu_start = time.monotonic(), time.process_time()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    result: dict = {"name": name, "status": "failed", "error": "", "files": {}, "steps": 0,
                    "metrics": {}, "history": [], "worker": worker, "warnings": []}

    def report(**kw):
        if progress is not None:
            progress.report.remote(name, {"worker": worker, "pid": os.getpid(), **kw})

    report(event="start")
    torch.set_num_threads(max(1, int(threads)))  # torch ignores OMP_NUM_THREADS once imported
    limits = rc.get_limits()  # a worker process runs many fits: leave its limits as found
    folder = Path(tempfile.mkdtemp(prefix="dibr-batch-"))
    err = io.StringIO()
    try:
        write_blobs(folder / "in", blobs)
        full = [a.replace("{IN}", str(folder / "in")) for a in argv]
        args = cli.build_parser().parse_args([*full, "--quiet", "--out", str(folder / "out")])
        if args.photos:
            result.update(_photo_fit(args, extra, folder / "out", err))
        else:
            result.update(_plain_fit(args, extra, folder / "out", err, report))
    except (cli.UsageError, files.LoadError, ValueError, RuntimeError, OSError) as e:
        result["error"] = str(e) or type(e).__name__
    except Exception as e:  # noqa: BLE001 -- one fit's bug must not end the batch
        tail = traceback.extract_tb(e.__traceback__)[-1]
        result["error"] = (f"{type(e).__name__}: {e} (at {Path(tail.filename).name}:"
                           f"{tail.lineno})")
    finally:
        rc.set_limits(limits)
        shutil.rmtree(folder, ignore_errors=True)
    result["warnings"] = [line.removeprefix("dibr-studio: warning: ")
                          for line in err.getvalue().splitlines() if line.strip()]
    result["wall_s"] = time.monotonic() - start
    result["cpu_s"] = time.process_time() - cpu_start  # all of the process's threads
    report(event="end", status=result["status"])
    return result
