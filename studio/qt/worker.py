"""The optimisation worker: a QObject in its own QThread that steps the session's fit (which
runs in a child process while the window is open).

The GUI thread never runs a step. It talks to the worker through thread-safe methods
(:meth:`FitWorker.run`, :meth:`~FitWorker.pause`, :meth:`~FitWorker.step`,
:meth:`~FitWorker.request_frame`, :meth:`~FitWorker.stop`) and hears back through queued
signals: ``steps`` (the fit's generation and a batch of history records, see
:meth:`render_core.StepResult.record`) and ``frame`` (a frame of numpy arrays), each at
most ``max_fps`` times a second, so a fast fit cannot flood the event loop. Saving needs nothing
from the worker: :meth:`Session.save` takes the fit's checkpoint itself.
"""

from __future__ import annotations

import contextlib
import threading
import time

from PyQt6 import sip
from PyQt6.QtCore import QObject, QThread, pyqtSignal

from ..model.runner import InProcessRunner, ProcessRunner
from ..model.session import Session


class FitWorker(QObject):
    """Steps the session's fit while running, or a requested number of times."""

    steps = pyqtSignal(int, list)
    frame = pyqtSignal(dict)
    state_changed = pyqtSignal(str)  # "running", "paused", "stopped"
    failed = pyqtSignal(str)

    def __init__(self, session: Session, max_fps: float = 30.0):
        super().__init__()
        self.session = session
        self.min_interval = 1.0 / max_fps
        self.view = 0
        self._cond = threading.Condition()
        self._running = False
        self._pending_steps = 0
        self._want_frame = False
        self._stop = False
        self._stopped = False

    # -- commands (any thread) -----------------------------------------------------------

    def run(self) -> None:
        """Step continuously until paused."""
        with self._cond:
            self._running = True
            self._cond.notify()
        self.state_changed.emit("running")

    def pause(self) -> None:
        """Stop stepping after the current step (which still reports)."""
        with self._cond:
            self._running = False
            self._pending_steps = 0
            self._cond.notify()
        self._emit("state_changed", "paused")

    def step(self, n: int = 1) -> None:
        """Run ``n`` more steps, then pause."""
        with self._cond:
            self._pending_steps += max(0, int(n))
            self._cond.notify()

    def request_frame(self, view: int | None = None) -> None:
        """Send a fresh frame (e.g. after reset or a settings change) even when paused."""
        with self._cond:
            if view is not None:
                self.view = int(view)
            self._want_frame = True
            self._cond.notify()

    def stop(self) -> None:
        """End the loop; the thread can then quit."""
        with self._cond:
            self._stop = True
            self._running = False
            self._cond.notify()

    @property
    def is_running(self) -> bool:
        return self._running

    # -- the loop (worker thread) ----------------------------------------------------------

    def loop(self) -> None:
        """The worker thread's body; returns when :meth:`stop` is called.

        Every step is :meth:`Session.advance` and every frame :meth:`Session.pull_frame`:
        the session runs its fit in a :class:`~studio.model.runner.ProcessRunner` (see
        :class:`WorkerThread`), so this thread only waits on the child's answers.
        """
        batch: list[dict] = []
        generation = -1
        last_emit = 0.0
        try:
            while True:
                with self._cond:
                    while not (self._stop or self._running or self._pending_steps
                               or self._want_frame or batch):
                        self._cond.wait()
                    if self._stop:
                        break
                    do_step = self._running or self._pending_steps > 0
                    if self._pending_steps > 0 and not self._running:
                        self._pending_steps -= 1
                    want_frame, self._want_frame = self._want_frame, False
                try:
                    if not self.session.ready:
                        batch = []
                        continue
                    if do_step:
                        out = self.session.advance()
                        if out is not None:
                            if out[0] != generation:  # the fit was restarted: older steps void
                                batch, generation = [], out[0]
                            batch.append(out[1])
                    now = time.monotonic()
                    idle = not (self._running or self._pending_steps)
                    if want_frame or (batch and (idle or now - last_emit >= self.min_interval)):
                        frame = self.session.pull_frame(self.view)
                        if batch:
                            self._emit("steps", generation, batch)
                        self._emit("frame", frame)
                        batch = []
                        last_emit = now
                except Exception as e:  # a bad setting or problem must not kill the thread
                    if self._stop or sip.isdeleted(self):
                        break  # shutting down (e.g. the child ended with the interpreter)
                    self.pause()
                    self._emit("failed", f"optimisation step failed: {e}")
                    batch = []
        finally:
            self._stopped = True
        self._emit("state_changed", "stopped")

    def _emit(self, signal: str, *args) -> None:
        """Emit unless this object's C++ side is gone (the window was deleted while the
        thread was still finishing): at interpreter exit an exception here would abort."""
        if not sip.isdeleted(self):
            with contextlib.suppress(RuntimeError):  # deleted between the check and the emit
                getattr(self, signal).emit(*args)


class WorkerThread:
    """Owns a :class:`FitWorker` and its QThread; ``shutdown()`` joins it cleanly."""

    def __init__(self, session: Session, max_fps: float = 30.0):
        # The fit runs in a child process while the window is open, and back in this process
        # after (each handover keeps the fit exactly: see Session.use_runner).
        session.use_runner(ProcessRunner())
        self.session = session
        self.thread = QThread()
        self.thread.setObjectName("fit-worker")
        self.worker = FitWorker(session, max_fps)
        self.worker.moveToThread(self.thread)
        self.thread.started.connect(self.worker.loop)
        self.thread.start()

    def shutdown(self, timeout_ms: int = 10000) -> None:
        self.worker.stop()
        self.thread.quit()
        self.thread.wait(timeout_ms)
        self.session.use_runner(InProcessRunner())
