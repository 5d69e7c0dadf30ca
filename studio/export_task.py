"""File ▸ Export mesh off the GUI thread: the bake and the write run in a spawned process.

The GUI thread takes the mesh snapshot (``Session.current_mesh()``, a cheap copy) and hands it
to :class:`ExportTask`, which reports back with ``finished`` (the files written) or ``failed``
(a one-line message), both on the GUI thread.

Why a process rather than a thread: baking vertex colours first charts a UV atlas with xatlas,
which holds the interpreter lock for its whole run (about 2 s for 20k faces), so in a thread the
window would still freeze for that long. A child process has its own interpreter (as the fit
has, see ``studio/fitproc.py``); the cost is its start-up (importing torch), a second or two.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
from pathlib import Path

from PyQt6.QtCore import QObject, pyqtSignal

import render_core as rc

from . import files


class ExportTask(QObject):
    """One mesh export at a time, in a child process; :meth:`wait` blocks until it is done."""

    finished = pyqtSignal(list)  # [Path] written
    failed = pyqtSignal(str)
    _done = pyqtSignal(object)  # the future, from the executor's thread, to the GUI thread

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._future: cf.Future | None = None
        self._done.connect(self._finish)

    @property
    def busy(self) -> bool:
        return self._future is not None

    def start(self, mesh: rc.Mesh, path: str | os.PathLike) -> None:
        """Export ``mesh`` to ``path`` (format by suffix); raises RuntimeError when busy."""
        if self.busy:
            raise RuntimeError("an export is already running")
        # spawn: never fork a process that holds Qt and GL state
        pool = cf.ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn"))
        self._future = pool.submit(files.export_mesh_job, mesh, str(Path(path)),
                                   rc.get_limits())
        pool.shutdown(wait=False)  # the child finishes this export, then exits
        self._future.add_done_callback(self._done.emit)

    def wait(self) -> None:
        """Block until the running export (if any) is done, and report it now."""
        if self._future is not None:
            cf.wait([self._future])
            self._finish(self._future)

    def _finish(self, future: cf.Future) -> None:
        if future is not self._future:
            return  # already reported by wait()
        self._future = None
        try:
            kind, value = future.result()
        except Exception as e:  # noqa: BLE001 -- the child died or the mesh did not pickle
            kind, value = "error", f"export failed ({type(e).__name__}: {e})"
        if kind == "ok":
            self.finished.emit([Path(p) for p in value])
        else:
            self.failed.emit(str(value))
