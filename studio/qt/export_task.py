"""File ▸ Export mesh off the GUI thread: the bake and the write run in a spawned process.

The GUI thread takes the mesh snapshot (``Session.current_mesh()``, a cheap copy) and hands it
to :class:`ExportTask`, which reports back with ``finished`` (the files written) or ``failed``
(a one-line message), both on the GUI thread.

Why a process rather than a thread: baking vertex colours first charts a UV atlas with xatlas,
which holds the interpreter lock for its whole run (about 2 s for 20k faces), so in a thread the
window would still freeze for that long. A child process has its own interpreter (as the fit
has, see ``studio/fitproc.py``); the cost is its start-up (importing torch), a second or two.

Every file is written to a temporary beside it and renamed into place (``rc.atomic_path``). A
child killed mid-write (the studio crashed or was killed) leaves that temporary behind, so each
export first sweeps the destination folder of such leftovers (:func:`sweep_stale_temps`).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import re
import stat
import threading
import time
from pathlib import Path

from PyQt6.QtCore import QObject, pyqtSignal

import render_core as rc

from ..model import child, files

STALE_AFTER = 300.0
"""Seconds since its last write after which an export's temporary file is taken for a
leftover: a live writer fills its temporary within moments of creating it."""

# The names ``rc.atomic_path`` gives temporaries (``.<stem>.<8 hex digits>.tmp<suffix>``), for
# the suffixes an export writes (the mesh formats, and an OBJ's material and texture).
_EXPORT_TEMP = re.compile(r"\..+\.[0-9a-f]{8}\.tmp\.(?i:obj|mtl|png|ply|glb|stl|off)")


def _held_open(paths: set[str]) -> set[str]:
    """Those of ``paths`` (resolved) that a process holds open. Best effort: reads ``/proc``
    where there is one (Linux), and finds nothing elsewhere or in others' processes."""
    proc = Path("/proc")
    held: set[str] = set()
    if not paths or not proc.is_dir():
        return held
    for fd_dir in proc.glob("[0-9]*/fd"):
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            with contextlib.suppress(OSError):
                target = os.readlink(os.path.join(fd_dir, fd))
                if target in paths:
                    held.add(target)
    return held


def sweep_stale_temps(folder: str | os.PathLike, older_than: float = STALE_AFTER) -> list[Path]:
    """Delete the temporary files killed exports left in ``folder``; returns those deleted.

    Conservative: only regular files of this user named as ``rc.atomic_path`` names an
    export's temporaries, not written for ``older_than`` seconds, and not held open by any
    process. Errors (an unreadable folder, a file that went away) delete nothing.
    """
    now = time.time()
    uid = os.getuid() if hasattr(os, "getuid") else None
    stale = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for e in entries:
        if not _EXPORT_TEMP.fullmatch(e.name):
            continue
        try:
            st = e.stat(follow_symlinks=False)
        except OSError:
            continue
        if (stat.S_ISREG(st.st_mode) and now - st.st_mtime > older_than
                and (uid is None or st.st_uid == uid)):
            stale.append(Path(e.path))
    held = _held_open({str(p.resolve()) for p in stale})
    removed = []
    for p in stale:
        if str(p.resolve()) in held:
            continue
        with contextlib.suppress(OSError):
            p.unlink()
            removed.append(p)
    return removed


class ExportTask(QObject):
    """One mesh export at a time, in a child process; :meth:`wait` blocks until it is done."""

    finished = pyqtSignal(list)  # [Path] written
    failed = pyqtSignal(str)
    _done = pyqtSignal(object)  # the future, from the executor's thread, to the GUI thread

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._future: cf.Future | None = None
        self._posted = threading.Event()
        self.swept: list[Path] = []  # leftovers of killed exports the last start() deleted
        self._done.connect(self._finish)

    @property
    def busy(self) -> bool:
        return self._future is not None

    def start(self, mesh: rc.Mesh, path: str | os.PathLike) -> None:
        """Export ``mesh`` to ``path`` (format by suffix); raises RuntimeError when busy."""
        if self.busy:
            raise RuntimeError("an export is already running")
        # What killed exports left there goes first (a live writer's temporaries are fresh).
        self.swept = sweep_stale_temps(Path(path).parent)
        pool = cf.ProcessPoolExecutor(max_workers=1, mp_context=child.context())
        self._future = pool.submit(files.export_mesh_job, mesh, str(Path(path)),
                                   rc.get_limits())
        pool.shutdown(wait=False)  # the child finishes this export, then exits
        posted = self._posted = threading.Event()

        def post(future: cf.Future) -> None:  # on the executor's thread
            try:
                self._done.emit(future)
            finally:
                posted.set()

        self._future.add_done_callback(post)

    def wait(self) -> None:
        """Block until the running export (if any) is done, and report it now."""
        if self._future is not None:
            cf.wait([self._future])
            # cf.wait returns once the result is set, a moment before the done callbacks
            # run: let the callback finish posting, so nothing touches this object from the
            # executor's thread after wait() (the window may be deleted right after it).
            self._posted.wait(5.0)
            self._finish(self._future)

    def _finish(self, future: cf.Future) -> None:
        if future is not self._future:
            return  # already reported by wait()
        self._future = None
        try:
            kind, value = future.result()
        except Exception as e:  # noqa: BLE001 -- the child died or the mesh did not pickle
            kind, value = "error", f"export failed ({child.error_line(e)})"
        if kind == "ok":
            self.finished.emit([Path(p) for p in value])
        else:
            self.failed.emit(str(value))
