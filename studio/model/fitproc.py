"""The fit's own process, driven over a pipe by :class:`~studio.model.runner.ProcessRunner`.
No Qt.

Why a process: Python threads share one interpreter lock. A fit step at interactive sizes is
mostly many small torch calls whose Python dispatch holds that lock, and every Python callback
of the GUI (each pyqtgraph item painted, each slot) must wait for it, so a fit in a thread makes
the window stutter. In a child process the fit has its own interpreter; the worker thread only
sends a command and sleeps in ``recv`` (which releases the lock) until the answer comes.

Protocol (tuples; the child answers every command with one message):
    ("problem", generation, mesh, targets, config[, checkpoint])
                                                    → ("ok",)       build a new Fitter (and
                                                                    continue from checkpoint)
    ("config", config)                              → ("ok",)       apply settings
    ("step",)                                       → ("step", generation, metrics)
    ("state",)                                      → ("state", state)
    ("sync", view)                                  → ("sync", frame, state)
    ("checkpoint",)                                 → ("checkpoint", generation, checkpoint)
    ("quit",)                                       → (exits)
Any failure answers ("error", message) and leaves the child running.
"""

from __future__ import annotations

import os

from . import child


def fit_threads() -> int:
    """Intra-op threads for the fit process: ``DIBR_FIT_THREADS`` when set to a positive
    integer, else every core. The process runs at a lower priority (``child.NICENESS``), so the
    window still comes first whenever it needs a core; OpenMP's passive waits
    (``render_core._omp``) keep the fit's idle threads off the cores it does not use."""
    value = os.environ.get("DIBR_FIT_THREADS", "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    return max(1, os.cpu_count() or 1)


def _serve(conn) -> None:
    """The child's loop (runs in the spawned process)."""
    from render_core.fit import Fitter

    from .frames import frame_of

    child.become_background(fit_threads())  # the window comes first when both need a core
    fitter = None
    generation = -1
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        kind = msg[0]
        if kind == "quit":
            return
        try:
            if kind == "problem":
                _, gen, mesh, targets, config, *ckpt = msg
                new = Fitter(mesh, targets, config)
                if ckpt and ckpt[0] is not None:
                    new.restore(ckpt[0])  # Adam moments and all: the run goes on exactly
                    new.apply_config(config)
                fitter, generation = new, gen
                conn.send(("ok",))
            elif fitter is None:
                conn.send(("error", "no problem loaded"))
            elif kind == "config":
                fitter.apply_config(msg[1])
                conn.send(("ok",))
            elif kind == "step":
                conn.send(("step", generation, fitter.step()))
            elif kind == "state":
                conn.send(("state", fitter.state()))
            elif kind == "sync":
                conn.send(("sync", frame_of(fitter, msg[1], generation), fitter.state()))
            elif kind == "checkpoint":
                conn.send(("checkpoint", generation, fitter.checkpoint()))
            else:
                conn.send(("error", f"unknown command {kind!r}"))
        except Exception as e:  # report, keep serving: a bad setting must not kill the fit
            conn.send(("error", f"{type(e).__name__}: {e}"))


class FitProcess:
    """Client side: starts the child and exchanges one message per call."""

    def __init__(self) -> None:
        self._conn, self.process = child.start(_serve, (), "dibr-studio-fit")

    def call(self, *msg):
        """Send a command and wait for its answer; raises RuntimeError on ("error", …)."""
        self._conn.send(msg)
        reply = self._conn.recv()
        if reply[0] == "error":
            raise RuntimeError(reply[1])
        return reply

    def close(self, timeout: float = 5.0) -> None:
        try:
            self._conn.send(("quit",))
        except (BrokenPipeError, OSError):
            pass
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout)
        self._conn.close()
