"""The description of a fitting problem, as plain data: what :class:`~render_core.fit.Fitter` runs.

- :class:`TargetView`: one target, an sRGB image, an optional mask and the orbit camera it was
  seen from (validated on construction).
- :class:`FitConfig`: everything about a fit except the data: which :class:`ParamGroup` are
  optimised and how fast, the loss weights, the shading model, resolution, backend, softness.
- :data:`GROUPS` and :data:`LOSS_TERMS`: the names of the parameter groups and loss terms;
  :func:`default_groups` and :func:`default_weights` give settings that suit the demo scene.

Nothing here holds tensors or knows about Qt; :mod:`render_core.fit` re-exports every name.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from .rasterize import DEFAULT_SIGMA
from .renderer import SHADINGS

GROUPS = ("vertices", "colors", "texture", "light", "camera")
"""Names of the parameter groups, in display order."""

LOSS_TERMS = ("iou", "l1", "laplacian", "normal", "edge", "texture_tv")
"""Names of the loss terms; each has a weight in :attr:`FitConfig.weights`."""

FIT_MODELS = ("dibr", "dibr+aa", "softras")
"""Rendering (gradient) models a fit may use: :attr:`FitConfig.model`."""


@dataclass
class ParamGroup:
    """Whether a parameter group is optimised, and its Adam learning rate."""

    enabled: bool = False
    lr: float = 0.01


def default_groups() -> dict[str, ParamGroup]:
    """Learning rates that work for the demo scene (vertices and colours on)."""
    return {
        "vertices": ParamGroup(True, 0.01),
        "colors": ParamGroup(True, 0.05),
        "texture": ParamGroup(False, 0.05),
        "light": ParamGroup(False, 0.02),
        "camera": ParamGroup(False, 0.02),
    }


TEXTURE_TV_WEIGHT = 0.03
"""Default weight of the texture smoothness term (see tests/test_texture_fit.py)."""


def default_weights() -> dict[str, float]:
    """Loss weights in the spirit of PyTorch3D's mesh-fitting tutorial."""
    # texture_tv: total variation of the fitted texture (render_core.losses.texture_tv); it
    # only acts while the texture group is optimised.
    return {"iou": 1.0, "l1": 1.0, "laplacian": 1.0, "normal": 0.01, "edge": 1.0,
            "texture_tv": TEXTURE_TV_WEIGHT}



@dataclass
class FitConfig:
    """Everything about a fit except the data: groups, shading, weights, resolution, backend.

    ``resolution`` is the render height in pixels; the width follows the first target's aspect.
    ``sigma`` is the soft-silhouette softness (see :func:`render_core.soft_silhouette`).
    ``camera_views`` limits the ``camera`` group to these targets (indices; None = all), e.g.
    to refine the camera of one new photo while the others stay put.
    ``large_steps``: the smoothing weight lambda of the Large Steps parameterisation of the
    ``vertices`` group (:mod:`render_core.large_steps`), or None for plain per-vertex offsets.
    With lambda the group moves ``u = (I + lambda L) d`` for the displacement ``d`` from the
    starting mesh, with uniform Adam steps: whole regions move coherently, so large learning
    rates neither tangle the mesh nor need the Laplacian term (19 is the paper's setting).
    ``project_texture``: a new texture of a mesh without colours starts from the target
    images projected onto it (:func:`render_core.texture_project.initial_texture`, where the
    targets' masks see it) instead of a flat grey. A mesh with colours (or whose colours are
    being fitted) keeps starting from them, so switching to a texture keeps the look.
    ``views_per_step``: each step renders a random subset of this many targets (drawn from the
    step number, so a continued fit draws the same ones; :mod:`render_core._views`), as
    PyTorch3D's tutorial renders 2 of 20; the losses are means over views, so the subset's
    mean estimates the whole's without rescaling. None (the default, whatever the number of
    targets) renders every target every step.
    ``objective``: None (fit the targets), or a style-transfer / DeepDream setting as JSON data
    (:mod:`render_core.objectives`), whose losses then replace the targets'.
    ``model``: the rendering and gradient model, one of :data:`FIT_MODELS`: ``"dibr"`` (soft
    silhouette, hard occlusion edges), ``"dibr+aa"`` (DIB-R with edge antialiasing,
    ``Renderer(edges="antialias")``: colour losses move occlusion edges too) or ``"softras"``
    (``Renderer(model="softras")``; unlit vertex colours only: shading ``vertex_color`` with
    the texture group off).
    """

    groups: dict[str, ParamGroup] = field(default_factory=default_groups)
    weights: dict[str, float] = field(default_factory=default_weights)
    shading: str = "vertex_color"
    resolution: int = 64
    backend: str = "auto"
    sigma: float = DEFAULT_SIGMA * 3
    texture_size: int = 64
    camera_views: list[int] | None = None
    project_texture: bool = True
    large_steps: float | None = None
    views_per_step: int | None = None
    objective: dict | None = None
    model: str = "dibr"

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        if set(self.groups) != set(GROUPS):
            raise ValueError(f"groups must be exactly {GROUPS}, got {sorted(self.groups)}")
        for name, g in self.groups.items():
            if not (math.isfinite(g.lr) and g.lr >= 0):
                raise ValueError(f"learning rate of {name} must be a finite number >= 0")
        for name in LOSS_TERMS:
            w = self.weights.get(name)
            if w is None or not (math.isfinite(w) and w >= 0):
                raise ValueError(f"loss weight {name} must be a finite number >= 0")
        if self.shading not in SHADINGS:
            raise ValueError(f"unknown shading {self.shading!r}; choose one of {SHADINGS}")
        if not 8 <= int(self.resolution) <= 2048:
            raise ValueError(f"resolution must lie in 8..2048, got {self.resolution}")
        if not 4 <= int(self.texture_size) <= 4096:
            raise ValueError(f"texture size must lie in 4..4096, got {self.texture_size}")
        if not self.sigma > 0:
            raise ValueError("sigma must be positive")
        if self.camera_views is not None and any(
                isinstance(i, bool) or not isinstance(i, (int, np.integer)) or i < 0
                for i in self.camera_views):
            raise ValueError(f"camera_views must be target indices >= 0, got {self.camera_views}")
        if self.large_steps is not None and (isinstance(self.large_steps, bool) or not (
                isinstance(self.large_steps, (int, float)) and math.isfinite(self.large_steps)
                and self.large_steps > 0)):
            raise ValueError(f"large_steps must be a number > 0 (lambda) or None, got "
                             f"{self.large_steps!r}")

        if self.views_per_step is not None and (
                isinstance(self.views_per_step, bool)
                or not isinstance(self.views_per_step, (int, np.integer))
                or self.views_per_step < 1):
            raise ValueError(f"views_per_step must be a whole number >= 1 or None (all), got "
                             f"{self.views_per_step!r}")

        if self.model not in FIT_MODELS:
            raise ValueError(f"unknown model {self.model!r}; choose one of {FIT_MODELS}")
        if self.model == "softras" and (self.shading != "vertex_color"
                                        or self.groups["texture"].enabled):
            raise ValueError("model 'softras' renders unlit vertex colours only so far: it "
                             "needs shading 'vertex_color' and the texture group off")

        if self.objective is not None:
            from .objectives import objective_spec

            objective_spec(self.objective)  # raises naming the bad field

    def copy(self) -> FitConfig:
        return copy.deepcopy(self)

    def to_dict(self) -> dict:
        """A JSON-ready dictionary (for saved sessions and ``history.json``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FitConfig:
        d = dict(d)
        d["groups"] = {k: ParamGroup(**v) for k, v in d.get("groups", {}).items()}
        if "weights" in d:  # settings saved before a term existed get its default weight
            d["weights"] = {**default_weights(), **d["weights"]}
        return cls(**d)


@dataclass
class TargetView:
    """One target: an sRGB image, its mask and the orbit camera it was seen from.

    ``image`` [H,W,3] float32 sRGB in [0,1]; ``mask`` [H,W] float32 in [0,1] or None (then
    the non-black pixels are the mask: right for renders over black, not for photos, which the
    studio gives an estimated mask, ``studio.model.photo``). Camera in the orbit convention,
    degrees.

    ``camera_group``: targets with the same id were taken with one camera (one lens, one
    zoom), so camera refinement gives them one shared fov (:mod:`render_core.intrinsics`);
    None = a camera of its own. ``lock_fov``: camera refinement leaves this target's fov as it
    is (azimuth, elevation and distance are still refined).
    """

    image: np.ndarray
    mask: np.ndarray | None
    azimuth: float = 0.0
    elevation: float = 0.0
    distance: float = 3.0
    fov: float = 60.0
    name: str = ""
    camera_group: int | None = None
    lock_fov: bool = False

    def __post_init__(self) -> None:
        img = np.asarray(self.image, dtype=np.float32)
        if img.ndim != 3 or img.shape[2] != 3 or min(img.shape[:2]) < 2:
            raise ValueError(f"target image must be [H,W,3], got {img.shape}")
        if not np.isfinite(img).all():
            raise ValueError("target image has non-finite values")
        self.image = np.clip(img, 0.0, 1.0)
        if self.mask is None:
            self.mask = (self.image.max(axis=2) > 1.0 / 255).astype(np.float32)
        mask = np.asarray(self.mask, dtype=np.float32)
        if mask.shape != img.shape[:2]:
            raise ValueError(f"mask shape {mask.shape} does not match image {img.shape[:2]}")
        self.mask = np.clip(mask, 0.0, 1.0)
        for k in ("azimuth", "elevation", "distance", "fov"):
            if not math.isfinite(float(getattr(self, k))):
                raise ValueError(f"target camera {k} must be finite")
        if not self.distance > 0 or not 1 <= self.fov <= 170:
            raise ValueError("target camera needs distance > 0 and 1 <= fov <= 170")
        if self.camera_group is not None and (isinstance(self.camera_group, bool) or not
                                              isinstance(self.camera_group, (int, np.integer))):
            raise ValueError(f"camera_group must be an integer or None, got {self.camera_group!r}")
        if self.camera_group is not None:
            self.camera_group = int(self.camera_group)
        if not isinstance(self.lock_fov, (bool, np.bool_)):
            raise ValueError(f"lock_fov must be True or False, got {self.lock_fov!r}")
        self.lock_fov = bool(self.lock_fov)

    @property
    def aspect(self) -> float:
        return self.image.shape[1] / self.image.shape[0]

