"""The Fitter's state: what a mirror adopts (:meth:`state` / :meth:`load_state`) and what
continues a fit exactly (:meth:`checkpoint` / :meth:`restore`).

A mixin of :class:`render_core.fit.Fitter`; the formats are documented on each method and
checked by :mod:`render_core.checkpoint`.
"""

from __future__ import annotations

import torch

from ._offset_space import OffsetSpace
from .checkpoint import (
    adam_moments,
    check_optimizer,
    check_state,
    check_topology,
    load_adam_moments,
)
from .fit_config import FitConfig
from .shading import light_kind


class FitState:
    """State, checkpoint and restore of a Fitter (mixed into ``Fitter``)."""

    _STATE = ("offset", "color_logit", "tex_logit", "uvs", "face_uvs", "light_dir", "sh",
              "cam_delta")
    _TOPOLOGY = ("base_vertices", "faces", "remesh_ref_length")
    """State tensors of the topology (optional in a checkpoint: absent, the start's)."""

    def state(self) -> dict:
        """The optimised values (detached copies) and step counters, for :meth:`load_state`.

        Lets another Fitter of the same problem mirror this one, e.g. across processes.
        ``offset_space`` is the ``large_steps`` lambda ``offset`` is expressed for (None:
        the displacement itself).

        The topology the values belong to (remeshing changes it, :mod:`render_core._fit_remesh`):
        ``base_vertices`` [V,3] (the vertices ``offset`` displaces), ``faces`` [F,3] int64,
        ``remesh_ref_length`` [V] (the remesher's per-vertex reference edge length; None
        without one) and ``remesh_steps`` (its step counter; 0 without one). ``base_vertices``
        and ``faces`` are shared, not copied: the Fitter never writes them in place.
        """
        out = {k: None if getattr(self, k) is None else getattr(self, k).detach().clone()
               for k in self._STATE}
        r = self._remesher
        out.update(steps=self.steps, rejected=self.rejected, offset_space=self._space.lam,
                   base_vertices=self.base.vertices, faces=self.faces,
                   remesh_ref_length=None if r is None else r.ref_length.clone(),
                   remesh_steps=0 if r is None else int(r.steps))
        return out

    def load_state(self, state: dict) -> None:
        """Adopt values from :meth:`state` of a Fitter of the same problem (not the optimizer
        moments: a mirror is for viewing and export, not for continuing the run). An
        ``offset`` made for another ``large_steps`` lambda (``offset_space``; absent: this
        Fitter's own) is converted, so the mesh is the one the state describes.

        A state of another topology (``base_vertices`` / ``faces``, e.g. after remeshing)
        is adopted with it: this Fitter's start mesh becomes the state's, and its optimizer,
        if any, is rebuilt (moments restart). A state without them keeps this Fitter's
        topology (then its tensors must fit it)."""
        space = state.get("offset_space", self._space.lam)
        verts, faces = state.get("base_vertices"), state.get("faces")
        changed = False
        if verts is not None and faces is not None and not (
                verts is self.base.vertices and faces is self.faces):
            same = (tuple(faces.shape) == tuple(self.faces.shape)
                    and tuple(verts.shape) == tuple(self.base.vertices.shape)
                    and torch.equal(faces.to(self.faces), self.faces)
                    and torch.equal(verts.to(self.base.vertices), self.base.vertices))
            if not same:
                changed = True
                like = self.base.vertices
                self._adopt_topology(verts.detach().to(like.device, like.dtype).clone(),
                                     faces.detach().to(like.device, torch.int64).clone())
        with torch.no_grad():
            for k in self._STATE:
                v = state[k]
                cur = getattr(self, k)
                if v is None or cur is None or cur.shape != v.shape:
                    setattr(self, k, None if v is None else v.clone())
                else:
                    cur.copy_(v)
        self.steps, self.rejected = int(state["steps"]), int(state["rejected"])
        if space != self._space.lam:  # the state's offset is in another space: bring it here
            OffsetSpace(space, self.faces, self.base.vertices).move(self.offset, self._space)
        self._load_remesher(state)
        if changed:
            self._last = None
            # The start colours of this topology: the constant start of a mesh without
            # colours, else the best known, the state's own.
            self._color_logit0 = (self._color_logit0[:1].expand_as(self.color_logit).clone()
                                  if not self.has_colors else self.color_logit.detach().clone())
            if self._optimizer is not None:
                self._build_optimizer()

    def checkpoint(self) -> dict:
        """Everything needed to continue this fit exactly, as tensors and plain data.

        Keys: ``state`` (as :meth:`state`), ``config`` (:meth:`FitConfig.to_dict`) and
        ``optimizer``: ``{group name: {"lr": float, "moments": [None or {"step": [] float32,
        "exp_avg": T, "exp_avg_sq": T}, one per tensor of the group]}}`` for the groups the
        Adam optimizer currently holds (``lr`` is the optimizer's, which may differ from the
        config's). All tensors are detached copies, on the CPU.
        """
        opt = {} if self._optimizer is None else adam_moments(self._optimizer)
        state = {k: v.cpu() if isinstance(v, torch.Tensor) else v
                 for k, v in self.state().items()}
        return {"state": state, "config": self.config.to_dict(), "optimizer": opt}

    def restore(self, ckpt: dict) -> None:
        """Continue from :meth:`checkpoint` of a Fitter of the same problem (same mesh and
        targets): parameters, step counters, settings, Adam moments and learning rates.

        A checkpoint whose ``optimizer`` is empty or missing restarts the moments (as after
        a change of groups). Raises ``ValueError`` naming the first member that does not fit
        this problem, before anything changes.
        """
        try:
            config = FitConfig.from_dict(ckpt["config"])
            config.validate()
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"checkpoint settings: {e}") from None
        state = ckpt.get("state")
        if not isinstance(state, dict):
            raise ValueError("checkpoint has no parameter state")
        cam = state.get("cam_delta")
        if isinstance(cam, torch.Tensor) and tuple(cam.shape) == (len(self.targets), 4):
            # An orbit-only refinement (format-1 sessions): the same cameras as 6-DoF steps;
            # its Adam moments do not carry over (the camera group's restart).
            state = {**state, "cam_delta": self._camera_group.from_orbit_delta(
                cam, config.camera_views)}
            opt = dict(ckpt.get("optimizer") or {})
            if isinstance(opt.get("camera"), dict):
                opt["camera"] = {**opt["camera"], "moments": [None]}
            ckpt = {**ckpt, "optimizer": opt}
        nv, nf = check_topology(state, self.base.vertices.shape[0], self.faces.shape[0])
        check_state(state, self._STATE, nv, nf, len(self.targets))
        params = {"vertices": state["offset"], "colors": state["color_logit"],
                  "texture": state["tex_logit"], "camera": state["cam_delta"],
                  "light": state["sh" if light_kind(config.shading) == "sh" else "light_dir"]}
        opt = ckpt.get("optimizer") or {}
        check_optimizer(opt, {n for n, g in config.groups.items() if g.enabled}, params)
        # A checkpoint's offset is expressed for its own settings' large_steps lambda.
        self.load_state({"offset_space": config.large_steps, **state})
        if state["tex_logit"] is not None:  # the loaded texture is at its own size already
            self._tex_size = int(state["tex_logit"].shape[0])
        self._opt_key = None  # rebuild the optimizer around the loaded tensors
        self.apply_config(config)
        if self._optimizer is None or not opt:
            return
        load_adam_moments(self._optimizer, opt, self.base.vertices.dtype)
