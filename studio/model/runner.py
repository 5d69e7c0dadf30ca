"""Where a session's fit runs: in this process (the CLI, tests) or in a child process (the
studio). No Qt.

A :class:`~studio.model.session.Session` drives exactly one runner, through the same six calls
whatever the runner — :meth:`Runner.load`, :meth:`~Runner.configure`, :meth:`~Runner.step`,
:meth:`~Runner.state`, :meth:`~Runner.pull` and :meth:`~Runner.checkpoint` — and keeps
everything else in one place: the loss history, snapshots for "revert to step", learning
rates the fit halved after a diverging step, and checkpoints for saving.

Each runner holds a :class:`~render_core.fit.Fitter` in *this* process, :attr:`Runner.fitter`,
that the views and exports read. For :class:`InProcessRunner` it is the fit itself; for
:class:`ProcessRunner` it is built from the same problem and brought up to the child's
parameters by :meth:`~Runner.pull` (parameters only: the Adam moments stay in the child and
come back with :meth:`~Runner.checkpoint`).

A runner is not thread-safe: the session calls it under its own runner lock.
"""

from __future__ import annotations

from render_core.fit import FitConfig, Fitter, StepResult, TargetView
from render_core.mesh import Mesh

from .frames import frame_of


class Runner:
    """The interface (and the bookkeeping both implementations share)."""

    def __init__(self) -> None:
        self.generation = -1  # of the problem loaded; -1: none
        self.config: FitConfig | None = None  # the settings the fit runs with
        self.fitter: Fitter | None = None

    @staticmethod
    def _build(mesh: Mesh, targets: list[TargetView], config: FitConfig,
               checkpoint: dict | None) -> Fitter:
        fitter = Fitter(mesh, targets, config)
        if checkpoint is not None:
            fitter.restore(checkpoint)  # Adam moments and all: the run goes on exactly
            fitter.apply_config(config)
        return fitter

    def load(self, generation: int, mesh: Mesh, targets: list[TargetView], config: FitConfig,
             checkpoint: dict | None = None) -> None:
        """Start the fit of ``generation`` (from ``checkpoint``, a :meth:`Fitter.checkpoint`,
        when given). Raises, keeping the previous fit, when the problem is refused."""
        raise NotImplementedError

    def configure(self, config: FitConfig) -> None:
        """Apply new settings to the running fit."""
        raise NotImplementedError

    def step(self) -> StepResult:
        """One optimisation step."""
        raise NotImplementedError

    def state(self) -> dict:
        """The fit's :meth:`Fitter.state` (parameters and step count)."""
        raise NotImplementedError

    def pull(self, view: int | None = None) -> dict | None:
        """Bring :attr:`fitter` up to the fit's parameters; with ``view``, also return that
        view's frame (:func:`~studio.model.frames.frame_of`), drawn where the fit runs."""
        raise NotImplementedError

    def checkpoint(self) -> dict:
        """The fit's :meth:`Fitter.checkpoint` (Adam moments included)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the runner holds; a later call starts afresh."""
        self.generation, self.config, self.fitter = -1, None, None


class InProcessRunner(Runner):
    """Steps a :class:`Fitter` in the calling thread (the CLI, tests, scripts)."""

    def load(self, generation, mesh, targets, config, checkpoint=None) -> None:
        self.fitter = self._build(mesh, targets, config, checkpoint)
        self.generation, self.config = generation, config

    def configure(self, config: FitConfig) -> None:
        self.fitter.apply_config(config)
        self.config = config

    def step(self) -> StepResult:
        return self.fitter.step()

    def state(self) -> dict:
        return self.fitter.state()

    def pull(self, view: int | None = None) -> dict | None:
        return None if view is None else frame_of(self.fitter, view, self.generation)

    def checkpoint(self) -> dict:
        return self.fitter.checkpoint()


class ProcessRunner(Runner):
    """Steps the fit in a child process (:mod:`studio.model.fitproc`), so a window in this
    process keeps its interpreter to itself. The child starts at once (it imports torch while
    the caller goes on; ``start=False``: on first use) and again after it died (the next
    :meth:`load` rebuilds the fit there)."""

    def __init__(self, start: bool = True) -> None:
        super().__init__()
        self._proc = None
        if start:
            from .fitproc import FitProcess

            self._proc = FitProcess()

    def _call(self, *msg):
        from .fitproc import FitProcess

        if self._proc is None:
            self._proc = FitProcess()
        try:
            return self._proc.call(*msg)
        except RuntimeError:  # the child refused the command and goes on serving
            if msg[0] != "config":
                self.generation = -1  # its fit may be half-changed: reload it before use
            raise
        except (EOFError, OSError) as e:  # the child is gone
            self._drop_process()
            raise RuntimeError(f"the fit process ended unexpectedly ({type(e).__name__})"
                               ) from None

    def _drop_process(self) -> None:
        proc, self._proc = self._proc, None
        self.generation = -1
        if proc is not None:
            proc.close(timeout=1.0)

    def load(self, generation, mesh, targets, config, checkpoint=None) -> None:
        local = self._build(mesh, targets, config, checkpoint)  # refuses bad input here first
        self._call("problem", generation, mesh, targets, config, checkpoint)
        self.fitter, self.generation, self.config = local, generation, config

    def configure(self, config: FitConfig) -> None:
        self._call("config", config)
        self.fitter.apply_config(config)
        self.config = config

    def step(self) -> StepResult:
        return self._call("step")[2]

    def state(self) -> dict:
        return self._call("state")[1]

    def pull(self, view: int | None = None) -> dict | None:
        if view is None:
            self.fitter.load_state(self.state())
            return None
        _, frame, state = self._call("sync", view)
        self.fitter.load_state(state)
        return frame

    def checkpoint(self) -> dict:
        return self._call("checkpoint")[2]

    def close(self) -> None:
        self._drop_process()
        super().close()
