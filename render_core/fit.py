"""Fitter: the one optimisation loop of the project, shared by the studio GUI and the CLI.

A problem is described by plain data: a starting :class:`Mesh`, a list of :class:`TargetView`
(an sRGB image, an optional mask and a pinhole camera each) and a :class:`FitConfig` (which
parameter groups are optimised and how fast, the shading model, loss weights, resolution,
backend), all defined in :mod:`render_core.fit_config` and re-exported here. :class:`Fitter`
turns that into tensors and an Adam optimizer and runs :meth:`Fitter.step`. Nothing here knows
about Qt.

Parameter groups (all optional, each with its own learning rate):

- ``vertices``: an offset added to the starting vertices (as in PyTorch3D's mesh-fitting
  tutorial), regularised by Laplacian smoothing, normal consistency and edge length; with
  ``large_steps`` (lambda) the group moves ``u = (I + lambda L) offset`` with uniform Adam
  steps (Nicolet et al. 2021, :mod:`render_core.large_steps`); with ``remesh`` the mesh is
  remeshed every few steps and the fit goes on on the new topology
  (:mod:`render_core._fit_remesh`).
- ``colors``: per-vertex colours, optimised as logits so they stay in (0, 1).
- ``texture``: a UV texture (``texture_size``² texels), also as logits; a mesh without UVs
  gets an xatlas atlas (spherical UVs without xatlas), and the texture starts from its colours
  (without any, from the targets projected onto it: :mod:`render_core.texture_project`);
  ``texture_tv`` smooths it (total variation on the texel grid).
- ``light``: the directional light's direction, or the SH coefficients with ``shading="sh"``.
- ``camera``: a 6-DoF pose step (axis-angle about the origin + translation) and the fov
  (focal length) of every target's general pinhole camera (:mod:`render_core._camera_group`);
  targets of one ``camera_group`` share one fov, a ``lock_fov`` target keeps its own
  (:mod:`render_core.intrinsics`) and a ``lock_camera`` one its whole camera.

Colour: renders are linear, targets are sRGB (as on disk); the L1 term encodes the render with
:func:`linear_to_srgb` and compares in sRGB, so what is fitted is what the user sees.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ._camera_group import N_PARAMS, CameraGroup
from ._fit_divergence import FitDivergence, offenders_of
from ._fit_remesh import FitRemesh
from ._fit_state import FitState
from ._fused import hard_iou_of_counts, image_losses
from ._glue_threads import all_threads, step_glue
from ._heap import keep_freed_memory
from ._offset_space import OffsetSpace
from ._optim import MixedAdam
from ._views import step_views
from .bake import DEFAULT_DILATION, bake_attribute, dilate, uv_fragments
from .camera import Camera
from .fit_config import (
    GROUPS,
    LOSS_TERMS,
    FitConfig,
    ParamGroup,
    TargetView,
    default_groups,
    default_weights,
)
from .losses import hard_iou, mesh_regularizers, texture_tv, weighted_sum
from .mesh import Mesh
from .objectives import Objective
from .renderer import Renderer, RenderOutput
from .resolution_schedule import level_at
from .shading import DirectionalLight, SHLight, light_kind
from .step_result import StepResult
from .texture_project import initial_texture, texel_coverage_warning
from .uv import generate_uvs

# The problem description lives in fit_config; its names stay importable from here.
__all__ = [
    "DEFAULT_LIGHT",
    "GROUPS",
    "LOSS_TERMS",
    "FitConfig",
    "Fitter",
    "ParamGroup",
    "StepResult",
    "TargetView",
    "default_groups",
    "default_weights",
]

DEFAULT_LIGHT = (0.4, 0.8, 0.6)
_SH_DC = 0.282095


def _logit(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(1e-3, 1 - 1e-3)
    return torch.log(x) - torch.log1p(-x)


class Fitter(FitState, FitDivergence, FitRemesh):
    """Builds the parameters and Adam optimizer for a problem and runs one step at a time.

    Args:
        mesh: the starting mesh (copied; linear colours).
        targets: one or more :class:`TargetView`.
        config: a :class:`FitConfig` (copied).

    Not thread-safe: call it from one thread at a time (the studio's session holds a lock).
    """

    def __init__(self, mesh: Mesh, targets: Sequence[TargetView], config: FitConfig):
        if not targets:
            raise ValueError("a fit needs at least one target")
        keep_freed_memory()
        config = config.copy()
        config.validate()
        self.config = config
        self.targets = list(targets)
        self.steps = 0
        self.rejected = 0
        self.base = mesh.detach().clone()
        self.faces = self.base.faces
        v = self.base.vertices
        self.offset = torch.zeros_like(v)
        base_colors = self.base.vertex_colors
        if base_colors is None:
            base_colors = torch.full_like(v, 0.5)
        self.color_logit = _logit(base_colors.clone())
        self._color_logit0 = self.color_logit.detach().clone()
        self.has_colors = self.base.vertex_colors is not None
        self.uvs, self.face_uvs, self.tex_logit = None, None, None
        if self.base.uvs is not None:  # a texture to optimise goes on the mesh's own UVs
            self.uvs, self.face_uvs = self.base.uvs, self.base.face_uvs
        if self.base.texture is not None and self.base.uvs is not None:
            self.tex_logit = _logit(self.base.texture.clone())
        self.light_dir = torch.tensor(DEFAULT_LIGHT, dtype=v.dtype)
        self.sh = torch.zeros(9, 3, dtype=v.dtype)
        self.sh[0] = 1.0 / _SH_DC
        self._camera_group = CameraGroup(self.targets, v.dtype)
        self.cam_delta = torch.zeros(len(self.targets), N_PARAMS, dtype=v.dtype)
        # The space ``offset`` is expressed in: the displacement itself, or u = (I + lam L) d.
        self._space = OffsetSpace(None, self.faces, v)
        self._optimizer: torch.optim.Optimizer | None = None
        self._opt_key: tuple | None = None
        self._render_key: tuple | None = None
        self.apply_config(config)

    # -- configuration -------------------------------------------------------------------

    def apply_config(self, config: FitConfig) -> None:
        """Adopt new settings; takes effect at the next step. Parameters keep their values.

        Learning rates change in place; enabling or disabling a group rebuilds the optimizer
        (its moments restart); shading, resolution, sigma or backend rebuild the renderer and
        resample the targets.
        """
        config = config.copy()
        config.validate()
        if config.camera_views is not None and max(config.camera_views, default=-1) >= len(
                self.targets):
            raise ValueError(f"camera_views {config.camera_views} names a target beyond the "
                             f"{len(self.targets)} there are")
        self._check_remesh(config)
        self.config = config
        if config.large_steps != self._space.lam:
            self._set_offset_space(config.large_steps)
        n_tex = int(config.texture_size)
        if self._needs_texture() and self.tex_logit is None:
            n = n_tex
            if self.uvs is None:
                self.uvs, self.face_uvs = generate_uvs(self.base.vertices, self.faces, n)
            # Start from the colours the mesh shows now, so switching to a texture keeps the look
            # (also when the Colours group was just turned off: what it fitted is the look).
            tex = torch.full((n, n, 3), 0.5, dtype=self.base.vertices.dtype)
            fitted = not torch.equal(self.color_logit.detach(), self._color_logit0)
            if self.has_colors or config.groups["colors"].enabled or fitted:
                tex = bake_attribute(torch.sigmoid(self.color_logit.detach()), self.faces,
                                     self.uvs, self.face_uvs, n, backend=config.backend)
            elif config.project_texture:  # no colours to keep: what the targets show
                verts = self.base.vertices + self._displacement().detach()
                tex = initial_texture(verts, self.faces, self.uvs, self.face_uvs, self.targets,
                                      self._camera_group.cameras(
                                          self.cam_delta.detach(), config.camera_views,
                                          self._render_size()), n, tex, config.backend)
            self.tex_logit = _logit(tex)
        elif self.tex_logit is not None and self._tex_size not in (None, n_tex):
            # Another texture size was chosen: carry what has been fitted over to it.
            tex = torch.sigmoid(self.tex_logit.detach()).permute(2, 0, 1)[None]
            tex = F.interpolate(tex, size=(n_tex, n_tex), mode="bilinear", align_corners=False,
                                antialias=n_tex < tex.shape[-1])
            tex = tex[0].permute(1, 2, 0)
            # Filtering blends chart borders with the gutter: regrow the gutter from the charts.
            covered = uv_fragments(self.uvs, self.face_uvs, n_tex, config.backend).face_idx[0] >= 0
            self.tex_logit = _logit(dilate(tex, covered, DEFAULT_DILATION).contiguous())
        self._tex_size = n_tex
        warn = texel_coverage_warning(n_tex, config.resolution) if self._needs_texture() else None
        if warn and warn != self._tex_warning:
            warnings.warn(warn, stacklevel=2)
        self._tex_warning = warn
        self._follow_schedule()
        self._follow_objective()
        # The light group's tensor depends on the shading (direction vs SH coefficients).
        opt_key = (tuple((n, g.enabled) for n, g in config.groups.items()),
                   light_kind(config.shading) == "sh", config.large_steps,
                   None if self.tex_logit is None else tuple(self.tex_logit.shape))
        if opt_key != self._opt_key:
            self._build_optimizer()
            self._opt_key = opt_key
        else:
            for pg in self._optimizer.param_groups:
                pg["lr"] = config.groups[pg["name"]].lr
        self._sync_remesher()

    objective: Objective | None = None  # what the loss is, when not the targets
    _objective_key: tuple | None = None
    _tex_size: int | None = None  # texture_size last applied (a change resamples the texture)
    _tex_warning: str | None = None  # the texel-coverage warning last given (once per setting)

    def _needs_texture(self) -> bool:
        return self.config.groups["texture"].enabled or self.config.shading == "texture"

    def _effective_shading(self) -> str:
        # Optimising a texture under unlit vertex-colour shading means showing the texture, and
        # so does a textured mesh without vertex colours (as lit shadings do): a loaded texture
        # is the mesh's look, not a grey to be replaced by new colours.
        if self.config.shading == "vertex_color" and (
                self.config.groups["texture"].enabled
                or (self.base.has_texture and not self.has_colors)):
            return "texture"
        return self.config.shading

    def _level(self) -> tuple[int, float]:
        """(resolution, sigma) of the current step: the config's, or its schedule's level."""
        c = self.config
        return level_at(c.resolution, c.sigma, c.resolution_schedule, self.steps)

    def _render_size(self) -> tuple[int, int]:
        h = self._level()[0]
        return h, max(1, round(h * self.targets[0].aspect))

    def _follow_schedule(self) -> None:
        """Rebuild the renderer and resample the targets when the settings or the
        resolution schedule's level at this step call for another render."""
        key = (self.config.shading, *self._level(), self.config.backend,
               self._effective_shading(), self.config.rendering_model())
        if key != self._render_key:
            self._build_renderer()
            self._render_key = key
            self._follow_objective()

    def _follow_objective(self) -> None:
        """Style transfer / DeepDream replace the target losses (render_core.objectives); the
        objective is rebuilt when it or the render changes."""
        objective_key = (repr(self.config.objective), self._render_key)
        if objective_key != self._objective_key:
            self.objective = None if self.config.objective is None else Objective(
                self.config.objective, self)
            self._objective_key = objective_key

    def _build_renderer(self) -> None:
        self.resolution = h, w = self._render_size()
        sigma = self._level()[1]
        # The model rendered with (FitConfig.rendering_model: "auto" resolved), for display.
        self.rendering_model = model = self.config.rendering_model()
        if model == "softras" and self._effective_shading() != "vertex_color":
            raise ValueError("model 'softras' renders unlit vertex colours only so far; this "
                             "mesh shows a texture (it has no vertex colours)")
        self.renderer = Renderer((h, w), shading=self._effective_shading(),
                                 backend=self.config.backend, sigma=sigma,
                                 edges="antialias" if model == "dibr+aa" else "hard",
                                 model=model if model in ("softras", "nmr") else "dibr")
        imgs, masks = [], []
        for t in self.targets:
            img = torch.from_numpy(np.ascontiguousarray(t.image)).permute(2, 0, 1)[None]
            msk = torch.from_numpy(np.ascontiguousarray(t.mask))[None, None]
            # Area resampling keeps thin parts of the silhouette as partial coverage.
            img = F.interpolate(img, size=(h, w), mode="area") if img.shape[-2:] != (h, w) else img
            msk = F.interpolate(msk, size=(h, w), mode="area") if msk.shape[-2:] != (h, w) else msk
            imgs.append(img[0].permute(1, 2, 0))
            masks.append(msk[0, 0])
        dtype = self.base.vertices.dtype
        self.t_mask = torch.stack(masks).to(dtype)
        # Compare over a black background, as the render has one.
        self.t_rgb = torch.stack(imgs).to(dtype) * self.t_mask[..., None]

    def _group_tensors(self) -> dict[str, list[torch.Tensor]]:
        return {"vertices": [self.offset], "colors": [self.color_logit], "camera": [self.cam_delta],
                "light": [self.sh if light_kind(self.config.shading) == "sh" else self.light_dir],
                "texture": [self.tex_logit] if self.tex_logit is not None else []}

    def _build_optimizer(self) -> None:
        groups = []
        tensors = self._group_tensors()
        for name in GROUPS:
            for t in tensors[name]:
                t.requires_grad_(False)
        for name in GROUPS:
            g = self.config.groups[name]
            if g.enabled and tensors[name]:
                for t in tensors[name]:
                    t.requires_grad_(True)
                groups.append({"params": tensors[name], "lr": g.lr, "name": name,
                               "uniform": name == "vertices" and self._space.lam is not None})
        self._params = [p for g in groups for p in g["params"]]
        self._optimizer = MixedAdam(groups) if groups else None

    # -- the vertex parameterisation -----------------------------------------------------

    def _displacement(self) -> torch.Tensor:
        """The vertices' displacement from the starting mesh [V,3] (differentiable)."""
        return self._space.displacement(self.offset)

    def _set_offset_space(self, lam: float | None) -> None:
        """Express ``offset`` for ``lam`` (None: the displacement itself), keeping the mesh
        where it is; the optimizer is rebuilt by the caller (its moments would not fit)."""
        new = OffsetSpace(lam, self.faces, self.base.vertices)
        self._space.move(self.offset, new)
        self._space = new

    # -- the model ---------------------------------------------------------------------------

    def _mesh(self) -> Mesh:
        fields = {"vertices": self.base.vertices + self._displacement()}
        if self.has_colors or self.config.groups["colors"].enabled:
            fields["vertex_colors"] = torch.sigmoid(self.color_logit)
        if self.tex_logit is not None and self._effective_shading() != "vertex_color":
            fields.update(uvs=self.uvs, face_uvs=self.face_uvs,
                          texture=torch.sigmoid(self.tex_logit))
        return self.base.with_(**fields)

    def _cameras(self) -> Camera:
        return self._camera_group.cameras(self.cam_delta, self.config.camera_views,
                                          self.resolution)

    def _light(self):
        kind = light_kind(self.config.shading)
        if kind == "sh":
            return SHLight(self.sh)
        if kind == "directional":
            return DirectionalLight(self.light_dir, intensity=0.8, ambient=0.3)
        return None

    def _losses(self, out: RenderOutput, verts: torch.Tensor,
                views: list[int] | None = None) -> dict[str, torch.Tensor]:
        w = self.config.weights
        t_mask, t_rgb = ((self.t_mask, self.t_rgb) if views is None
                         else (self.t_mask[views], self.t_rgb[views]))
        # iou(alpha, t_mask) and l1(linear_to_srgb(rgb.clamp(0, 1)), t_rgb), in one pass.
        # (The same pass counts the hard IoU's pixels, for step's metric.)
        iou_term, l1_term, self._iou_counts = image_losses(
            out.rgb, out.alpha, t_rgb, t_mask, self.config.backend, counts=True)
        terms = {"iou": iou_term, "l1": l1_term}
        zero = verts.sum() * 0
        geometry = self.config.groups["vertices"].enabled
        want = tuple(bool(geometry and w[k]) for k in ("laplacian", "normal", "edge"))
        regs = (mesh_regularizers(verts, self.faces, want, self.config.backend)
                if any(want) else (zero,) * 3)
        for k, term, on in zip(("laplacian", "normal", "edge"), regs, want, strict=True):
            terms[k] = term if on else zero
        terms["texture_tv"] = (texture_tv(torch.sigmoid(self.tex_logit))
                               if self.config.groups["texture"].enabled and w["texture_tv"]
                               and self.tex_logit is not None else zero)
        return terms

    # -- public API --------------------------------------------------------------------------

    def step(self) -> StepResult:
        """One Adam step on every enabled group.

        Returns a :class:`StepResult`: the ``loss`` (total) and each term of
        :data:`LOSS_TERMS` (unweighted values), the ``iou`` (hard IoU of ``alpha > 0.5``
        against the target masks, averaged over views, for the parameters before the step),
        ``step``, ``rolled_back``, ``undone``, and the groups whose rate was halved
        (``lr_halved``) with their new learning rates (``lr``).

        Divergence: a step whose loss, gradients or new parameters are not finite is rolled
        back (every parameter and the optimizer state stay as they were) and the learning rate
        of the offending groups is halved, in :attr:`config` too, so the run never ends in NaNs
        and does not repeat the same overshoot. The offenders are

        - the groups whose new values are not finite, when the update overflowed (every
          group, if the optimizer itself fails on a step size beyond float range);
        - the groups with non-finite gradients, when the loss was finite but its gradient not;
        - when the loss itself is not finite: parameters are finite (every accepted step is
          checked), so the previous step moved them where the render breaks down (a camera
          behind the mesh, vertices at 1e30). That step is undone too (``undone``; ``steps``
          goes back by one) and blamed on the groups whose update alone makes the loss
          non-finite (all that moved, if none does alone). With no step to undo (the first
          one, or right after an undo or a settings change), or if the loss is not finite
          before that step either, nothing is undone and no rate is halved: a non-finite loss
          at unchanged parameters comes from the data, not from the step size.

        Threads: where the render is native CPU kernels, the step's torch ops between them run
        on one thread and the kernels on all (:mod:`render_core._glue_threads`).
        """
        with step_glue(self.config, self._effective_shading(), self.base.vertices.device):
            return self._step()

    def _step(self) -> StepResult:
        self._follow_schedule()
        views = step_views(len(self.targets), self.config.views_per_step, self.steps)
        self._iou_counts = None
        out, terms, total = self._forward(views)
        values = {k: float(v.detach()) for k, v in terms.items()}
        loss = float(total.detach())
        if self.objective is not None:  # the start's silhouettes from the objective's views
            iou = hard_iou(out.alpha.detach(), self.objective.reference)
        elif self._iou_counts is not None:  # counted by the image losses' pass (_losses)
            iou = hard_iou_of_counts(self._iou_counts)
        else:
            iou = hard_iou(out.alpha.detach(),
                           self.t_mask if views is None else self.t_mask[views])
        offenders: list[str] = []
        undone = False
        rolled_back = not math.isfinite(loss)
        if rolled_back and self._can_undo():
            blamed = self._undo_last_step()
            undone = blamed is not None
            offenders = blamed or []
        elif self._optimizer is not None and total.requires_grad:
            self._clear_grads()
            total.backward()
            groups = [(pg["name"], pg["params"]) for pg in self._optimizer.param_groups]
            offenders = offenders_of([(n, [p.grad for p in ps if p.grad is not None])
                                    for n, ps in groups])
            if not offenders:
                with torch.no_grad():
                    saved = torch._foreach_clone(self._params)
                state = self._optimizer.snapshot()  # copy.deepcopy(state_dict()), faster
                try:
                    self._optimizer.step()
                    offenders = offenders_of(groups)
                except (RuntimeError, OverflowError):
                    # Adam refuses a step size beyond float range (lr near 1e38) before it
                    # updates anything; which group cannot be told, so all are slowed.
                    offenders = [n for n, _ in groups]
                if offenders:
                    self._set_params(saved)
                    self._optimizer.load_state_dict(state)
                else:
                    # Kept for one step: if the next loss is not finite, this step is undone.
                    self._last = (saved, state, self._optimizer,
                                  [p._version for p in self._params])
            rolled_back = bool(offenders)
            self._clear_grads()
        if rolled_back:
            self.rejected += 1
            self._last = None
        else:
            self.steps += 1
            with all_threads():  # remeshing (render_core._fit_remesh), when due
                self._after_accepted_step()
        self._halve_lr(offenders)
        return StepResult(loss, values, iou,
                          self.steps, rolled_back, undone,
                          {n: self.config.groups[n].lr for n in offenders}, tuple(offenders))

    # (saved parameters, optimizer state, the optimizer, parameter versions) from before the
    # last accepted step, while nothing else has touched the parameters since.
    _last: tuple | None = None
    # The hard IoU's pixel counts [B,2] of the render _losses last scored (its fused image
    # losses count them); step reads them for its metric instead of counting again.
    _iou_counts: torch.Tensor | None = None

    def _forward(self, views: list[int] | None = None
                 ) -> tuple[RenderOutput, dict[str, torch.Tensor], torch.Tensor]:
        """Render the target views (``views``, None: all) and evaluate the loss: ``(output,
        terms, total)``."""
        mesh = self._mesh()
        if self.objective is not None:
            return self.objective.forward(self, mesh)
        cams = self._cameras()
        if views is not None:
            cams = cams[torch.tensor(views)]
        out = self.renderer.render(mesh, cams, light=self._light())
        terms = self._losses(out, mesh.vertices, views)
        w = self.config.weights
        return out, terms, weighted_sum([terms[k] for k in LOSS_TERMS], [w[k] for k in LOSS_TERMS])

    def _clear_grads(self) -> None:
        """``optimizer.zero_grad(set_to_none=True)``: the optimizer's tensors are ``_params``."""
        for p in self._params:
            p.grad = None

    def _set_params(self, values: Sequence[torch.Tensor]) -> None:
        with torch.no_grad():
            for p, v in zip(self._params, values, strict=True):
                p.copy_(v)

    def current_mesh(self) -> Mesh:
        """The mesh as currently optimised, detached (linear colours, texture if any)."""
        with torch.no_grad():
            return self._mesh().detach().clone()

    def cameras(self) -> Camera:
        """The targets' cameras as currently optimised, detached, batch = number of targets."""
        with torch.no_grad():
            return self._cameras().detach()

    def camera_params(self) -> np.ndarray:
        """[N,4] current (azimuth, elevation, distance, fov) per target, degrees: where each
        camera's centre lies seen from the origin, and its vertical fov (a camera whose pose
        was not refined reports its target's own values)."""
        return self._camera_group.orbit_params(self.cam_delta, self.config.camera_views)

    def fitted_cameras(self) -> list[tuple[np.ndarray, np.ndarray, tuple[float, ...]]]:
        """Each target's camera as currently optimised: ``(R [3,3], t [3], (fx, fy, cx,
        cy))``, world-to-camera in OpenGL axes (float64) and intrinsics in pixels of the
        target's own image."""
        return self._camera_group.fitted(self.cam_delta, self.config.camera_views)

    def light_direction(self) -> np.ndarray:
        """[3] unit vector towards the directional light (the fitted one when optimised)."""
        d = self.light_dir.detach().cpu().numpy().astype(np.float64)
        return d / max(np.linalg.norm(d), 1e-12)

    def render(self, view: int | None = None) -> RenderOutput:
        """Render the current state (no grad) from target ``view``, or from all when None."""
        self._follow_schedule()
        with torch.no_grad():
            cams = self._cameras()
            if view is not None:
                cams = cams[int(view)]
            return self.renderer.render(self._mesh(), cams, light=self._light())

    def target_images(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The targets at the fit resolution: sRGB [N,H,W,3] (over black) and masks [N,H,W]."""
        self._follow_schedule()
        return self.t_rgb, self.t_mask
