"""The batch driver: every row a Ray task, results written here atomically. No Qt.

:func:`run` starts a local Ray instance (``ray.init()``) unless one is running in this process
or ``address`` (or ``RAY_ADDRESS``) names a cluster to join. Each row runs as one task of
``cpus_per_fit`` CPUs (:func:`studio.batch.worker.run_fit`) with its input files as an argument,
so they travel through Ray's object store; a task whose process dies is retried ``retries``
times by Ray. At most two tasks per free slot are in flight, so a manifest of any length holds
little memory. Each finished fit is written to ``DIR/<name>/`` at once, all or nothing: its
files go to a temporary folder that is renamed into place, ``result.json`` (with the row's
key) among them. A fit whose ``result.json`` has the row's key is skipped on the next run.

Ctrl+C (``KeyboardInterrupt``) cancels the tasks in flight, writes the summary of what
finished and raises on; the same command later runs only the rest.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import render_core as rc

from . import manifest as mf
from . import report
from .worker import run_fit, write_blobs

RESULT = "result.json"
POLL_S = 0.2


@dataclass
class BatchResult:
    """What :func:`run` did: one record per row (see :mod:`studio.batch.report`)."""

    out: Path
    records: list[dict]
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    interrupted: bool = False

    def by_status(self, status: str) -> list[str]:
        return [r["name"] for r in self.records if r["status"] == status]


def _ray():
    try:
        import ray
    except ImportError:
        raise RuntimeError("dibr-studio batch needs Ray: pip install 'dibr-studio[batch]'"
                           ) from None
    return ray


def finished(out: Path, row: mf.FitRow) -> dict | None:
    """The record of ``row`` in ``out`` when it finished with the row's current key."""
    try:
        rec = json.loads((out / row.name / RESULT).read_text())
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) and rec.get("key") == row.key() else None


def _write_fit(out: Path, name: str, files: dict[str, bytes], record: dict) -> None:
    """All of a fit's files appear at once under ``out/name`` (or none do)."""
    tmp = out / f".tmp-{name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        write_blobs(tmp, files, "output")
        rc.atomic_write_text(tmp / RESULT, json.dumps(record, indent=1))
        dest = out / name
        old = out / f".old-{name}-{uuid.uuid4().hex[:8]}"
        if dest.exists():
            dest.rename(old)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _clean_leftovers(out: Path) -> None:
    for p in out.glob(".tmp-*"):
        shutil.rmtree(p, ignore_errors=True)
    for p in out.glob(".old-*"):
        shutil.rmtree(p, ignore_errors=True)


def _record(row: mf.FitRow, key: str, res: dict, attempts: int) -> dict:
    m = res.get("metrics") or {}
    return {"name": row.name, "row": row.number, "key": key, "status": res["status"],
            "error": res.get("error", ""), "steps": res.get("steps", 0),
            "losses": {k: v for k, v in m.items() if isinstance(v, (int, float))
                       and not isinstance(v, bool)
                       and k not in ("step", "undone", "silhouette_iou")
                       and not k.startswith("lr_")},
            "silhouette_iou": m.get("silhouette_iou"), "wall_s": res.get("wall_s"),
            "cpu_s": res.get("cpu_s"),
            "worker": res.get("worker", ""), "attempts": attempts,
            "warnings": res.get("warnings", []), "loss_curve": res.get("history", [])}


def _make_progress_actor(ray):
    @ray.remote(num_cpus=0, max_restarts=-1)
    class Progress:
        """Collects the workers' progress reports until the driver takes them."""

        def __init__(self):
            self.events = []

        def report(self, name, info):
            self.events.append((name, info))

        def take(self):
            out, self.events = self.events, []
            return out

    return Progress.remote()


def run(manifest, out, *, address: str | None = None, cpus_per_fit: int = 1,
        retries: int = 2, max_parallel: int | None = None,
        max_input_bytes: int = mf.MAX_INPUT_BYTES,
        on_event: Callable[[str, str, dict], None] | None = None,
        progress: bool = False, ray_init: dict | None = None) -> BatchResult:
    """Run every row of ``manifest`` (a path, a parsed document or a list of
    :class:`~studio.batch.manifest.FitRow`) into the folder ``out``; see the module doc.

    ``on_event(kind, name, info)`` is called on this thread for ``"start"`` (a worker took the
    fit; ``info["pid"]``, ``info["attempt"]``), ``"step"``, ``"done"``, ``"failed"`` and
    ``"skipped"``. ``max_parallel``: at most this many fits at once (default: as many as
    the cluster's CPUs allow). ``progress``: draw a progress bar on stderr. ``ray_init``:
    extra arguments of ``ray.init`` when this call starts Ray. Raises
    :class:`~studio.batch.manifest.ManifestError` before running anything when a row is bad,
    ``KeyboardInterrupt`` after a clean stop."""
    if cpus_per_fit < 1 or retries < 0 or (max_parallel is not None and max_parallel < 1):
        raise ValueError("cpus_per_fit and max_parallel must be >= 1, retries >= 0")
    if isinstance(manifest, (str, os.PathLike)):
        rows = mf.load(manifest, max_input_bytes)
    elif isinstance(manifest, list) and all(isinstance(r, mf.FitRow) for r in manifest):
        rows = manifest
    else:
        rows = mf.parse(manifest, max_input_bytes=max_input_bytes)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _clean_leftovers(out)
    emit = on_event or (lambda kind, name, info: None)
    records: dict[str, dict] = {}
    todo: list[tuple[mf.FitRow, str]] = []
    result = BatchResult(out, [])
    for row in rows:
        rec = finished(out, row)
        if rec is not None and rec.get("status") == "done":
            records[row.name] = rec
            result.skipped.append(row.name)
            emit("skipped", row.name, rec)
        else:
            todo.append((row, row.key()))
    ray = _ray() if todo else None
    started_ray = False
    bar = report.ProgressBar(len(rows), len(result.skipped), enabled=progress)
    try:
        if todo:
            if not ray.is_initialized():
                # no usage report to Ray's servers on the user's behalf (RAY_USAGE_STATS_ENABLED=1
                # turns it back on)
                os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
                ray.init(address=address, **(ray_init or {}))
                started_ray = True
            _schedule(ray, todo, out, cpus_per_fit, retries, max_parallel, records, result,
                      emit, bar)
    except KeyboardInterrupt:
        result.interrupted = True
        raise
    finally:
        bar.close()
        result.records = [records[r.name] for r in rows if r.name in records]
        report.write_all(out, result.records, [r.name for r in rows])
        if started_ray:
            ray.shutdown()
    return result


def _schedule(ray, todo, out, cpus_per_fit, retries, max_parallel, records, result, emit,
              bar) -> None:
    cpus = int(ray.cluster_resources().get("CPU", 1))
    slots = max(1, cpus // cpus_per_fit)
    # two per slot keep every slot busy while the driver writes results; a cap is a cap
    window = 2 * slots if max_parallel is None else min(max_parallel, slots)
    task = ray.remote(run_fit).options(num_cpus=cpus_per_fit, max_retries=retries,
                                       retry_exceptions=False, name="dibr-studio-fit")
    actor = _make_progress_actor(ray)
    pending = list(todo)
    in_flight: dict = {}  # ref -> (row, key)
    attempts: dict[str, int] = {}
    try:
        while pending or in_flight:
            while pending and len(in_flight) < window:
                row, key = pending.pop(0)
                blobs = {name: p.read_bytes() for name, p in row.inputs.items()}
                ref = task.remote(row.name, row.fit_argv("{IN}"), row.extra_settings(), blobs,
                                  cpus_per_fit, actor)
                in_flight[ref] = (row, key)
            done, _ = ray.wait(list(in_flight), num_returns=1, timeout=POLL_S)
            for name, info in ray.get(actor.take.remote()):
                kind = info.pop("event")
                if kind == "start":
                    attempts[name] = attempts.get(name, 0) + 1
                    info["attempt"] = attempts[name]
                    bar.started(name)
                elif kind == "step":
                    bar.step(name, info)
                if kind != "end":
                    emit(kind, name, info)
            for ref in done:
                row, key = in_flight.pop(ref)
                try:
                    res = ray.get(ref)
                except ray.exceptions.RayError as e:
                    n = attempts.get(row.name, retries + 1)
                    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
                    res = {"status": "failed", "error": f"the worker died {n} time(s), "
                           f"retries used up ({type(e).__name__}: {first})"}
                rec = _record(row, key, res, attempts.get(row.name, 1))
                if res["status"] == "done":
                    _write_fit(out, row.name, res["files"], rec)
                    result.ran.append(row.name)
                records[row.name] = rec
                bar.finished(row.name, res["status"])
                emit(res["status"], row.name, rec)
    except BaseException:
        for ref in in_flight:
            ray.cancel(ref)  # KeyboardInterrupt in the task: its worker lives on
        raise
    finally:
        ray.kill(actor)
