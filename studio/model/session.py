"""The studio's state, with no Qt: mesh, targets, fit settings, history, and the fit.

Views observe a :class:`Session` through :meth:`Session.subscribe`; every change made through
its methods calls the listeners with an event name (``"mesh"``, ``"targets"``, ``"config"``,
``"reset"``) on the calling thread. The fit runs in a :mod:`runner <studio.model.runner>`: in
this process by default (the CLI, tests), in a child process for the studio
(:meth:`Session.use_runner`). Every step, whatever the runner, goes through
:meth:`Session.advance` (history, snapshots, adopted learning rates), every save through
:meth:`Session.checkpoint`. Steps emit no events (the worker reports them itself).

Two locks keep threads apart, always taken in this order: the runner's, held while a step is
in flight, and the state's (:meth:`Session.locked`), held only for short reads and writes, so
a window reading the state never waits for a step.

A method that fails (bad file, bad setting) raises and leaves the session exactly as it was."""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

import render_core as rc
from render_core.fit import (
    GROUPS,
    LOSS_TERMS,
    FitConfig,
    Fitter,
    ParamGroup,
    StepResult,
    TargetView,
)

from . import files, store
from .frames import frame_of
from .runner import InProcessRunner, Runner
from .session_start import StartEditing
from .session_targets import TargetEditing
from .snapshots import Snapshots

Listener = Callable[[str], None]


class Session(TargetEditing, StartEditing):
    """Everything a fit is made of, and the fit itself (the target edits: see
    :class:`~studio.model.session_targets.TargetEditing`; replacing the start mesh:
    :class:`~studio.model.session_start.StartEditing`)."""

    def __init__(self, runner: Runner | None = None) -> None:
        self.initial_mesh: rc.Mesh | None = None
        self.mesh_name = ""
        self.targets: list[TargetView] = []
        self.config = FitConfig()
        self.history: list[dict] = []
        self._runner: Runner = InProcessRunner() if runner is None else runner
        self._steps = 0
        self.generation = 0  # bumped whenever the fit restarts, so stale results can be told
        self.revision = 0  # bumped by every change and step: autosave writes when it moved
        # Fitter.state() copies, oldest first, for revert_to_step: the start and one every
        # `snapshot_every` steps.
        self.snapshots = Snapshots()
        self.snapshot_every = 10
        # (generation, Fitter.checkpoint) the runner starts a fit of that generation from
        # instead of from scratch: set by open(), revert_to_step() and every continuation.
        self._resume: tuple[int, dict] | None = None
        self._lock = threading.RLock()
        self._run_lock = threading.RLock()  # taken before _lock, never after (see _both)
        self._listeners: list[Listener] = []
        # One line per problem the last add_targets() found without refusing the images
        # (an automatic mask that came out nearly empty or full), for the status bar / stderr.
        self.warnings: list[str] = []

    def locked(self):
        """A context manager holding the session's lock, for a consistent read of several
        attributes from another thread (``with session.locked(): ...``)."""
        return self._lock

    # -- events ------------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event)`` after each change; returns a function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _emit(self, event: str) -> None:
        self.revision += 1
        for cb in list(self._listeners):
            cb(event)

    # -- problem -----------------------------------------------------------------------------

    def set_mesh(self, mesh: rc.Mesh, name: str = "mesh") -> None:
        """Use ``mesh`` as the starting mesh; the fit restarts from it (see
        :meth:`~studio.model.session_start.StartEditing.set_start`)."""
        self.set_start(mesh, name)

    def load_mesh(self, path: str | os.PathLike) -> None:
        """Read a mesh file and start from it. Raises :class:`files.LoadError`."""
        mesh = files.load_mesh(path)
        if Path(path).suffix.lower() in (".glb", ".gltf"):
            mesh = rc.weld_seams(mesh)  # glTF splits vertices at UV seams; fits need them whole
        self.set_start(mesh, Path(path).name, loaded=True)

    def new_primitive(self, kind: str = "sphere", subdivisions: int = 3) -> None:
        """Start from an icosphere (``"sphere"``) or a cube with the given subdivision."""
        if not 0 <= subdivisions <= 6:
            raise ValueError(f"subdivisions must lie in 0..6, got {subdivisions}")
        if kind == "sphere":
            mesh = rc.icosphere(subdivisions=subdivisions)
        elif kind == "cube":
            mesh = rc.cube(subdivisions=subdivisions)
        else:
            raise ValueError(f"unknown primitive {kind!r}; use sphere or cube")
        self.set_mesh(mesh, f"{kind} ({subdivisions})")

    def start_from_hull(self, resolution: int = 128, faces: int = 5000,
                        max_misses: int = 0) -> None:
        """Start from the visual hull of the targets' masks (:mod:`studio.model.start`): the
        shape every silhouette already implies. The fit then uses a sharp soft silhouette
        (:data:`studio.model.start.HULL_SIGMA`): the hull lies within a pixel of the masks,
        and the default sigma's soft edge, about a pixel wide, would pull it inwards by that
        much. Raises ``ValueError`` naming the targets when the masks allow no hull, and then
        leaves the session unchanged."""
        from .start import HULL_SIGMA, hull_mesh

        with self._lock:
            targets = list(self.targets)
        mesh = hull_mesh(targets, resolution, faces, max_misses)
        config = self.config.copy()
        config.sigma = min(config.sigma, HULL_SIGMA)
        self.set_start(mesh, f"visual hull ({mesh.num_faces} faces)", config)

    def set_light_direction(self, direction) -> None:
        """Point the directional light along ``direction`` (world, towards the light; it is
        normalised). The fit goes on from its current parameters with that light, as after
        a revert (a new generation; Adam moments restart). Raises ``ValueError`` for anything
        but three finite numbers not all zero, ``RuntimeError`` without a mesh and a target,
        and then changes nothing. Emits ``"light"``."""
        d = np.asarray(direction, np.float64).reshape(-1)
        n = float(np.linalg.norm(d)) if d.shape == (3,) and np.isfinite(d).all() else 0.0
        if not n > 1e-9:
            raise ValueError(f"a light direction is 3 finite numbers, not all 0; got {direction}")
        with self._both():
            fitter = self.fitter()
            state = dict(fitter.state(), light_dir=fitter.light_dir.detach().new_tensor(d / n))
            self._continue_from(state)
        self._emit("light")

    def load_demo(self) -> None:
        """The built-in demo scene: procedural colourful blob targets, an icosphere start."""
        from .demo import demo_scene

        mesh, targets, config = demo_scene()
        self.set_start(mesh, "icosphere (demo)", config, targets)

    def set_problem(self, mesh: rc.Mesh, name: str, targets: list[TargetView],
                    config: FitConfig) -> None:
        """Start a new fit of ``mesh`` against ``targets`` with ``config``, all at once (as
        :meth:`load_demo`; style transfer and DeepDream come here, :mod:`.stylize`). The
        settings are validated first; a refusal changes nothing."""
        self.set_start(mesh, name, config, targets)

    # -- settings (applied at the next step) ---------------------------------------------------

    def set_config(self, config: FitConfig) -> None:
        """Replace all settings; validated first, applied where the fit runs at its next use
        (a step, a frame, an export)."""
        config = config.copy()
        config.validate()
        with self._lock:
            self.config = config
        self._emit("config")

    def set_group(self, name: str, enabled: bool | None = None, lr: float | None = None) -> None:
        if name not in GROUPS:
            raise ValueError(f"unknown parameter group {name!r}")
        cfg = self.config.copy()
        g = cfg.groups[name]
        cfg.groups[name] = ParamGroup(g.enabled if enabled is None else bool(enabled),
                                      g.lr if lr is None else float(lr))
        self.set_config(cfg)

    def set_weight(self, name: str, weight: float) -> None:
        if name not in LOSS_TERMS:
            raise ValueError(f"unknown loss term {name!r}")
        cfg = self.config.copy()
        cfg.weights[name] = float(weight)
        self.set_config(cfg)

    def set_option(self, **options) -> None:
        """Set ``shading``, ``resolution``, ``backend``, ``sigma``, ``texture_size``,
        ``large_steps`` (lambda, None for plain offsets), ``views_per_step`` (None: all),
        ``resolution_schedule`` (``[(resolution, start_step), ...]``, None: off), ``model``
        (the rendering model, :data:`render_core.fit_config.MODEL_SETTINGS`), or continuous
        remeshing: ``remesh`` (bool), ``remesh_min_edge``, ``remesh_max_edge`` (world units,
        None: automatic) and ``remesh_interval`` (steps)."""
        cfg = self.config.copy()
        for k, v in options.items():
            if k not in ("shading", "resolution", "backend", "sigma", "texture_size",
                         "large_steps", "views_per_step", "resolution_schedule", "model",
                         "remesh", "remesh_min_edge", "remesh_max_edge", "remesh_interval"):
                raise ValueError(f"unknown option {k!r}")
            setattr(cfg, k, v)
        self.set_config(cfg)

    # -- running -----------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """True when there is a mesh and at least one target."""
        return self.initial_mesh is not None and bool(self.targets)

    @property
    def runner(self) -> Runner:
        """Where the fit runs (:mod:`studio.model.runner`); in this process by default."""
        return self._runner

    def use_runner(self, runner: Runner) -> None:
        """Run the fit in ``runner`` from now on (the studio hands over a
        :class:`~studio.model.runner.ProcessRunner`, and an in-process one when it closes).
        The fit goes on exactly: the new runner starts from the old one's checkpoint."""
        with self._both():
            old = self._runner
            if old.generation == self.generation and old.fitter is not None:
                with contextlib.suppress(RuntimeError):  # a dead child: resume what we had
                    self._resume = (self.generation, old.checkpoint())
            self._runner = runner
        old.close()

    def _both(self):
        """Both locks in their one order: the runner's (held across a step in flight), then
        the state's. A method that touches the runner takes them through here."""
        stack = contextlib.ExitStack()
        stack.enter_context(self._run_lock)
        stack.enter_context(self._lock)
        return stack

    def _loaded(self) -> Runner:
        """(Runner lock held.) The runner with this generation's problem and settings: the
        one place a fit is built or told of new settings, whatever the runner. Raises
        ``RuntimeError`` without a mesh and a target."""
        r = self._runner
        with self._lock:
            if not self.ready:
                raise RuntimeError("load a mesh and at least one target first")
            gen, config = self.generation, self.config
            problem = None if r.generation == gen else (
                self.initial_mesh, list(self.targets), self.resume_checkpoint(gen))
        if problem is not None:
            r.load(gen, problem[0], problem[1], config, problem[2])
        elif r.config is not config:
            r.configure(config)
        return r

    def fitter(self) -> Fitter:
        """A :class:`Fitter` holding the fit's current parameters, in this process (with the
        in-process runner, the fit itself); built on first use."""
        with self._run_lock:
            r = self._loaded()
            r.pull()
            return r.fitter

    def _restart(self) -> None:
        self.history = []
        self.generation += 1
        self.snapshots = Snapshots(self.snapshots.limit)
        self._resume = None
        self._steps = 0

    def _continue_from(self, state: dict, new_generation: bool = True) -> None:
        """(Both locks held.) The fit goes on from the parameters ``state`` (a
        :meth:`Fitter.state`) with fresh Adam moments, as after a change of groups: a new
        generation (unless the caller just made one), so results in flight are dropped, and
        the runner starts it from :meth:`resume_checkpoint`. Raises, changing nothing of the
        session, when ``state`` does not fit the current mesh, targets and settings."""
        fitter = Fitter(self.initial_mesh, self.targets, self.config)
        fitter.restore({"state": state, "config": self.config.to_dict(), "optimizer": {}})
        if new_generation:
            self.generation += 1
        self._resume = (self.generation, fitter.checkpoint())
        self._steps = fitter.steps

    def step(self) -> dict:
        """One optimisation step (any thread); appends to the history and returns its
        record (:meth:`StepResult.record`)."""
        out = self.advance()
        if out is None:
            raise RuntimeError("the fit was restarted while the step ran")
        return out[1]

    def advance(self) -> tuple[int, dict] | None:
        """One step of the fit wherever it runs: ``(generation, record)``, or None when the
        fit was restarted while the step ran (its result is dropped). The one path of every
        step: the history, snapshots (every :attr:`snapshot_every` steps, and the start) and
        learning rates the fit halved (:meth:`_take_results`)."""
        with self._run_lock:
            r = self._loaded()
            gen = r.generation
            with self._lock:
                need_first = not self.snapshots
            first = r.state() if need_first else None  # the parameters before any step
            result = r.step()
            every = not result.rolled_back and result.step % self.snapshot_every == 0
            snap = r.state() if every else None
            with self._lock:
                if gen != self.generation:
                    return None
                if first is not None and not self.snapshots:
                    self.snapshots.record(first)
                self._take_results([result])
                if snap is not None:
                    self.snapshots.record(snap)
                self._steps = result.step
                return gen, self.history[-1]

    def pull_frame(self, view: int) -> dict:
        """The frame of ``view`` (:func:`~studio.model.frames.frame_of`), drawn where the fit
        runs, with :meth:`fitter` brought up to it. Raises ``RuntimeError`` when no fit can
        run (no mesh or no target)."""
        with self._run_lock:
            return self._loaded().pull(view)

    def _take_results(self, results: list[StepResult]) -> None:
        """(Lock held.) Append the steps' records to the history and take over the learning
        rates the fit halved after a diverging step, so the settings shown and saved are the
        ones in use. No event: this may run on the worker thread; the window refreshes its
        controls when it receives the steps."""
        self.history.extend(r.record() for r in results)
        self.revision += 1
        halved = {n: r.lr[n] for r in results for n in r.lr_halved if n in r.lr}
        if not halved:
            return
        cfg = self.config.copy()
        for name, lr in halved.items():
            cfg.groups[name] = ParamGroup(cfg.groups[name].enabled, float(lr))
        self.config = cfg

    @property
    def steps(self) -> int:
        """Accepted steps of the fit (the count its history and checkpoint agree on)."""
        with self._lock:
            return self._steps

    def reset(self) -> None:
        """Back to the initial mesh and parameters; the history is cleared."""
        with self._lock:
            self._restart()
        self._emit("reset")

    def current_mesh(self) -> rc.Mesh | None:
        """The optimised mesh (the initial one before any step), detached."""
        with self._run_lock:
            if not self.ready:
                return None if self.initial_mesh is None else self.initial_mesh.clone()
            return self.fitter().current_mesh()

    def frame(self, view: int) -> dict:
        """One frame of what the views draw, drawn here (see :func:`frame_of`); not to be
        confused with :attr:`snapshots`, the stored fit states."""
        with self._run_lock:
            return frame_of(self.fitter(), view, self.generation)

    # -- snapshots, revert, sessions on disk ---------------------------------------------------

    def snapshot_steps(self) -> list[int]:
        """The steps :meth:`revert_to_step` can go back to exactly."""
        with self._lock:
            return self.snapshots.steps()

    def revert_to_step(self, k: int) -> int:
        """Put the parameters back to the newest snapshot at or before step ``k``; returns
        its step. The loss history is cut there, the Adam moments restart (as after a change
        of groups), and the fit continues from it (a new generation, so results in flight
        are dropped). Emits ``"revert"``."""
        with self._both():
            if not self.ready or not self.snapshots:
                raise RuntimeError("nothing to revert: the fit has not run yet")
            snap = self.snapshots.at_or_before(k)
            self._continue_from(snap)
            cut = next((i for i, m in enumerate(self.history)
                        if int(m.get("step", 0)) > snap["steps"]), len(self.history))
            self.history = self.history[:cut]
            self.snapshots.drop_after(snap["steps"])
        self._emit("revert")
        return int(snap["steps"])

    def resume_checkpoint(self, generation: int) -> dict | None:
        """The checkpoint a fit of ``generation`` starts from (after open, revert or any
        continuation), or None to start from scratch."""
        with self._lock:
            if self._resume is not None and self._resume[0] == generation:
                return self._resume[1]
            return None

    def checkpoint(self) -> dict | None:
        """The fit as a :meth:`Fitter.checkpoint`, Adam moments included, wherever it runs
        (None before there is one); it agrees with :attr:`history`. Waits for a step in
        flight."""
        with self._run_lock:
            return self._checkpoint()

    def _checkpoint(self) -> dict | None:
        """(Runner lock held.) See :meth:`checkpoint`: the runner's when it holds this
        generation's fit, else the one the fit will start from."""
        with self._lock:
            gen = self.generation
            if self._runner.generation != gen:
                return self.resume_checkpoint(gen)
        return self._runner.checkpoint()

    def save(self, path: str | os.PathLike) -> Path:
        """Write the session (see :mod:`studio.model.store`) with the fit's checkpoint
        (:meth:`checkpoint`) atomically; returns the path. Waits for a step in flight."""
        with self._both():
            if self.initial_mesh is None:
                raise RuntimeError("there is nothing to save: load a mesh first")
            data = store.SessionData(self.initial_mesh, self.mesh_name, list(self.targets),
                                     self.config.copy(), list(self.history),
                                     self._checkpoint())
        try:
            return store.write_session(path, data)
        except OSError as e:
            raise OSError(f"{Path(path).name}: cannot write the session ({e.strerror or e})"
                          ) from None

    def open(self, path: str | os.PathLike) -> None:
        """Replace everything with a saved session, which continues where it stopped.

        Raises :class:`store.SessionFileError` (a :class:`files.LoadError`) and
        leaves the session unchanged when the file is bad. Emits ``"mesh"``, ``"targets"``,
        ``"config"`` and then ``"session"``."""
        data = store.read_session(path)
        with self._lock:
            self.initial_mesh = data.mesh
            self.mesh_name = data.mesh_name
            self.loaded_mesh = (data.mesh, data.mesh_name)
            self.targets = list(data.targets)
            self.config = data.config
            self._restart()
            self.history = list(data.history)
            if data.fitter is not None:
                self._resume = (self.generation, data.checkpoint)
                self._steps = data.fitter.steps
                self.snapshots.record(data.fitter.state())
        for event in ("mesh", "targets", "config", "session"):
            self._emit(event)

    # -- export ------------------------------------------------------------------------------

    def export_mesh(self, path: str | os.PathLike) -> list[Path]:
        """Write the current mesh as OBJ (+MTL+PNG), PLY or GLB, chosen by the suffix."""
        mesh = self.current_mesh()
        if mesh is None:
            raise RuntimeError("there is no mesh to export")
        return files.export_mesh(mesh, path)

    def contact_sheet(self) -> np.ndarray:
        """Targets over renders over differences, one column per view (sRGB float)."""
        with self._run_lock:
            f = self.fitter()
            out = f.render(None)
            renders = rc.linear_to_srgb(out.rgb.clamp(0, 1)).numpy()
            targets = f.target_images()[0].numpy()
        return files.contact_sheet(list(targets), list(renders))

    def export_contact_sheet(self, path: str | os.PathLike) -> None:
        files.write_png(path, self.contact_sheet())

    def export_render(self, path: str | os.PathLike, view: int = 0) -> None:
        """The differentiable render of one view, RGBA PNG (alpha = soft silhouette)."""
        frame = self.frame(view)
        files.write_png(path, np.concatenate([frame["render"], frame["alpha"][..., None]], -1))

    def export_history(self, path: str | os.PathLike) -> None:
        """Per-step metrics and the settings as JSON (non-finite values become null)."""
        def clean(v):
            return None if isinstance(v, float) and not math.isfinite(v) else v

        with self._lock:
            doc = {"config": self.config.to_dict(), "mesh": self.mesh_name,
                   "targets": [t.name for t in self.targets],
                   "history": [{k: clean(v) for k, v in m.items()} for m in self.history]}
        rc.atomic_write_text(path, json.dumps(doc, indent=1))

