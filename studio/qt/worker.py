"""The optimisation worker: a QObject in its own QThread that drives the fit (in a child process).

The GUI thread never runs a step. It talks to the worker through thread-safe methods
(:meth:`FitWorker.run`, :meth:`~FitWorker.pause`, :meth:`~FitWorker.step`,
:meth:`~FitWorker.request_frame`, :meth:`~FitWorker.stop`) and hears back through queued
signals: ``steps`` (the fit's generation and a batch of history records, see
:meth:`render_core.StepResult.record`) and ``frame`` (a frame of numpy arrays), each at
most ``max_fps`` times a second, so a fast fit cannot flood the event loop.
:meth:`FitWorker.fetch_checkpoint` asks the fit process for its full state (Adam moments
included) to save a session.
"""

from __future__ import annotations

import contextlib
import threading
import time

from PyQt6 import sip
from PyQt6.QtCore import QObject, QThread, pyqtSignal

from render_core.fit import StepResult

from ..model.fitproc import FitProcess
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
        self._ckpt_requests: list[tuple[threading.Event, dict]] = []

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

    def fetch_checkpoint(self, timeout: float = 30.0) -> tuple[int, dict, list[dict]] | None:
        """``(generation, checkpoint, history)`` of the fit process, after mirroring its
        latest steps into the session; ``history`` is the session's loss history at that
        moment, so the two agree. None when there is no fit or it does not answer in time.
        Blocks the calling thread for at most the step in flight (or ``timeout``)."""
        done, box = threading.Event(), {}
        with self._cond:
            if self._stopped:
                return None
            self._ckpt_requests.append((done, box))
            self._cond.notify()
        done.wait(timeout)
        return box.get("result")

    @property
    def is_running(self) -> bool:
        return self._running

    # -- the loop (worker thread) ----------------------------------------------------------

    def loop(self) -> None:
        """The worker thread's body; returns when :meth:`stop` is called.

        Steps run in a :class:`~studio.model.fitproc.FitProcess`; this thread keeps it in step with
        the session (a new problem after a load or reset, new settings) and mirrors its
        results back into the session when it reports.
        """
        proc = FitProcess()
        batch: list[StepResult] = []
        generation = -1
        last_emit = 0.0
        try:
            while True:
                with self._cond:
                    while not (self._stop or self._running or self._pending_steps
                               or self._want_frame or batch or self._ckpt_requests):
                        self._cond.wait()
                    if self._stop:
                        break
                    do_step = self._running or self._pending_steps > 0
                    if self._pending_steps > 0 and not self._running:
                        self._pending_steps -= 1
                    want_frame, self._want_frame = self._want_frame, False
                    requests, self._ckpt_requests = self._ckpt_requests, []
                try:
                    if not self.session.ready:
                        batch = []
                        continue
                    gen = self._update(proc)
                    if gen != generation:  # the fit was restarted: older steps are void
                        batch, generation = [], gen
                    if do_step:
                        batch.append(proc.call("step")[2])
                    now = time.monotonic()
                    idle = not (self._running or self._pending_steps)
                    if want_frame or (batch and (idle or now - last_emit >= self.min_interval)):
                        self._report(proc, generation, batch)
                        batch = []
                        last_emit = now
                    if requests:
                        if batch:  # the checkpoint must not be ahead of the session's history
                            self._report(proc, generation, batch)
                            batch = []
                        _, ckpt_gen, ckpt = proc.call("checkpoint")
                        with self.session.locked():
                            history = list(self.session.history)
                        for _, box in requests:
                            box["result"] = (ckpt_gen, ckpt, history)
                except Exception as e:  # a bad setting or problem must not kill the thread
                    if self._stop or sip.isdeleted(self):
                        break  # shutting down (e.g. the child ended with the interpreter)
                    self.pause()
                    self._emit("failed", f"optimisation step failed: {e}")
                    batch = []
                    self._sent_generation = None  # rebuild the child's fit from scratch
                    if not proc.process.is_alive():  # it crashed: start a fresh one
                        proc.close()
                        proc = FitProcess()
                finally:
                    for done, _ in requests:
                        done.set()
        finally:
            with self._cond:
                self._stopped = True
                for done, _ in self._ckpt_requests:
                    done.set()
                self._ckpt_requests = []
            proc.close()
        self._emit("state_changed", "stopped")

    def _emit(self, signal: str, *args) -> None:
        """Emit unless this object's C++ side is gone (the window was deleted while the
        thread was still finishing): at interpreter exit an exception here would abort."""
        if not sip.isdeleted(self):
            with contextlib.suppress(RuntimeError):  # deleted between the check and the emit
                getattr(self, signal).emit(*args)

    _sent_generation: int | None = None
    _sent_config = None

    def _update(self, proc: FitProcess) -> int:
        """Send the child what changed since last time; returns the current generation."""
        s = self.session
        with s.locked():
            gen, config = s.generation, s.config
            problem = (s.initial_mesh, list(s.targets), s.resume_checkpoint(gen)) \
                if gen != self._sent_generation else None
        if problem is not None:
            proc.call("problem", gen, problem[0], problem[1], config, problem[2])
            self._sent_generation, self._sent_config = gen, config
        elif config is not self._sent_config:
            proc.call("config", config)
            self._sent_config = config
        return gen

    def _report(self, proc: FitProcess, generation: int, batch: list[StepResult]) -> None:
        _, frame, state = proc.call("sync", self.view)
        if not self.session.sync(generation, state, batch):
            return  # restarted meanwhile; the next loop sends the new problem
        if batch:
            self.steps.emit(generation, [r.record() for r in batch])
        self.frame.emit(frame)


class WorkerThread:
    """Owns a :class:`FitWorker` and its QThread; ``shutdown()`` joins it cleanly."""

    def __init__(self, session: Session, max_fps: float = 30.0):
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
