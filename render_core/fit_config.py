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
import torch

from .camera import Camera
from .rasterize import DEFAULT_SIGMA
from .renderer import SHADINGS
from .resolution_schedule import check_schedule, normalize_schedule

GROUPS = ("vertices", "colors", "texture", "light", "camera")
"""Names of the parameter groups, in display order."""

LOSS_TERMS = ("iou", "l1", "laplacian", "normal", "edge", "texture_tv")
"""Names of the loss terms; each has a weight in :attr:`FitConfig.weights`."""

FIT_MODELS = ("dibr", "dibr+aa", "softras", "nmr")
"""Rendering (gradient) models a fit renders with (:meth:`FitConfig.rendering_model`)."""

MODEL_SETTINGS = ("auto", *FIT_MODELS)
"""The values :attr:`FitConfig.model` takes: ``"auto"`` or one of :data:`FIT_MODELS`."""


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
    ``resolution_schedule``: coarse to fine, ``[(resolution, start_step), ...]`` with increasing
    start steps (:mod:`render_core.resolution_schedule`): from each start step the fit renders
    at that resolution (targets resampled to it), with ``sigma`` scaled to keep the soft edge
    as many pixels wide as it is at ``resolution``; before the first start, ``resolution``.
    None: ``resolution`` throughout.
    ``model``: the rendering and gradient model, ``"auto"`` (the default) or one of
    :data:`FIT_MODELS`. ``"auto"`` renders with ``"dibr+aa"`` when the fit has a colour loss
    (an L1 weight above 0, or an ``objective``) and with ``"dibr"`` otherwise
    (:meth:`rendering_model`): on benchmarks/gradient_models.py antialiasing moves an
    occlusion edge that plain DIB-R cannot, and fits a camera pose and a texture closer, at
    1.0-1.5x the time of a step, while a silhouette-only fit gets the same gradients from both
    (the antialiased colours carry no loss), so it keeps the cheaper one. ``"dibr"`` (soft
    silhouette, hard occlusion edges), ``"dibr+aa"`` (DIB-R with edge antialiasing,
    ``Renderer(edges="antialias")``: colour losses move occlusion edges too), ``"softras"``
    (``Renderer(model="softras")``; unlit vertex colours only: shading ``vertex_color`` with
    the texture group off) or ``"nmr"`` (``Renderer(model="nmr")``, the Neural 3D Mesh
    Renderer's approximate rasterisation gradient: hard silhouette and colours, every edge
    pulled by the colour change its sweep would bring; every shading, textures included;
    ``sigma`` is not used).
    ``remesh``: continuous remeshing of the mesh during the fit (:mod:`render_core.remesh`):
    every ``remesh_interval`` accepted steps edges are split, collapsed and flipped towards a
    per-vertex reference length that adapts between ``remesh_min_edge`` and
    ``remesh_max_edge`` (world units; None: derived from the render's pixel size and the
    mesh). The vertex and face count then change between steps; per-vertex parameters and
    their optimiser moments are carried through. Needs the texture group off and no texture
    shown (a UV texture cannot follow a changing mesh: freeze the geometry first).
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
    resolution_schedule: list[tuple[int, int]] | None = None
    model: str = "auto"
    remesh: bool = False
    remesh_min_edge: float | None = None
    remesh_max_edge: float | None = None
    remesh_interval: int = 5

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
        check_schedule(self.resolution_schedule)

        if self.model not in MODEL_SETTINGS:
            raise ValueError(f"unknown model {self.model!r}; choose one of {MODEL_SETTINGS}")
        if self.model == "softras" and (self.shading != "vertex_color"
                                        or self.groups["texture"].enabled):
            raise ValueError("model 'softras' renders unlit vertex colours only so far: it "
                             "needs shading 'vertex_color' and the texture group off")

        if not isinstance(self.remesh, bool):
            raise ValueError(f"remesh must be true or false, got {self.remesh!r}")
        for name in ("remesh_min_edge", "remesh_max_edge"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                                  or not math.isfinite(v) or v <= 0):
                raise ValueError(f"{name} must be a length > 0 or None (automatic), got {v!r}")
        if (self.remesh_min_edge is not None and self.remesh_max_edge is not None
                and self.remesh_min_edge >= self.remesh_max_edge):
            raise ValueError(f"remesh_min_edge ({self.remesh_min_edge}) must be smaller than "
                             f"remesh_max_edge ({self.remesh_max_edge})")
        if (isinstance(self.remesh_interval, bool)
                or not isinstance(self.remesh_interval, (int, np.integer))
                or self.remesh_interval < 1):
            raise ValueError(f"remesh_interval must be a whole number >= 1, got "
                             f"{self.remesh_interval!r}")
        if self.remesh and (self.groups["texture"].enabled or self.shading == "texture"):
            raise ValueError("remeshing cannot keep a UV texture: turn off the texture group "
                             "and texture shading, or turn remeshing off (geometry first, "
                             "then freeze it and fit a texture)")

        if self.objective is not None:
            from .objectives import objective_spec

            objective_spec(self.objective)  # raises naming the bad field

    def has_colour_loss(self) -> bool:
        """Whether the loss compares colours: an L1 weight above 0, or an objective (style
        transfer, DeepDream), whose losses are on the rendered colours."""
        return self.weights.get("l1", 0.0) > 0 or self.objective is not None

    def rendering_model(self) -> str:
        """The model of :data:`FIT_MODELS` a fit with these settings renders with:
        :attr:`model`, or for ``"auto"`` ``"dibr+aa"`` with a colour loss
        (:meth:`has_colour_loss`) and ``"dibr"`` without."""
        if self.model != "auto":
            return self.model
        return "dibr+aa" if self.has_colour_loss() else "dibr"

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
        # Settings saved before the model was a setting rendered with plain DIB-R; they keep it
        # rather than take the newer "auto" default.
        d.setdefault("model", "dibr")
        if "resolution_schedule" in d:  # JSON holds the pairs as lists
            d["resolution_schedule"] = normalize_schedule(d["resolution_schedule"])
        return cls(**d)


@dataclass
class TargetView:
    """One target: an sRGB image, its mask and the pinhole camera it was seen from.

    ``image`` [H,W,3] float32 sRGB in [0,1]; ``mask`` [H,W] float32 in [0,1] or None (then
    the non-black pixels are the mask: right for renders over black, not for photos, which the
    studio gives an estimated mask, ``studio.model.photo``).

    The camera is either an *orbit* camera (``azimuth``, ``elevation``, ``distance``, ``fov``
    in degrees about the world origin, principal point at the image centre: the positional
    fields, or :meth:`orbit`) or a *general* pinhole (:meth:`from_camera`): ``pose`` [3,4]
    float64, the world-to-camera ``[R | t]`` in OpenGL camera axes (``x_cam = R x + t``,
    looking down -Z), and ``intrinsics`` ``(fx, fy, cx, cy)`` in pixels of this image ((0, 0)
    its top-left corner). A general camera's orbit fields are derived from it (its centre's
    azimuth, elevation and distance from the origin, the vertical fov of ``fy``): a summary
    to show, not a second camera. :meth:`world_to_camera` and :meth:`pixel_intrinsics` give
    every target's camera alike.

    ``camera_group``: targets with the same id were taken with one camera (one lens, one
    zoom), so camera refinement gives them one shared fov (:mod:`render_core.intrinsics`);
    None = a camera of its own. ``lock_fov``: camera refinement leaves this target's fov as it
    is (its pose is still refined). ``lock_camera``: camera refinement leaves this target's
    camera (pose and fov) as it is.
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
    pose: np.ndarray | None = None
    intrinsics: tuple[float, float, float, float] | None = None
    lock_camera: bool = False

    @classmethod
    def orbit(cls, image: np.ndarray, mask: np.ndarray | None, azimuth: float = 0.0,
              elevation: float = 0.0, distance: float = 3.0, fov: float = 60.0,
              **kw) -> TargetView:
        """A target seen from an orbit camera (degrees; see ``Camera.orbit``)."""
        return cls(image, mask, azimuth, elevation, distance, fov, **kw)

    @classmethod
    def from_camera(cls, image: np.ndarray, mask: np.ndarray | None, R, t, fx: float,
                    fy: float, cx: float, cy: float, convention: str = "opengl",
                    **kw) -> TargetView:
        """A target seen from a general pinhole: world-to-camera ``R`` [3,3] and ``t`` [3]
        (``convention`` ``"opengl"``, or ``"opencv"`` for COLMAP's axes: +Y down, +Z
        forward) and intrinsics in pixels of ``image``."""
        R = np.asarray(R, dtype=np.float64).reshape(3, 3)
        t = np.asarray(t, dtype=np.float64).reshape(3)
        if convention == "opencv":
            flip = np.array([1.0, -1.0, -1.0])
            R, t = R * flip[:, None], t * flip
        elif convention != "opengl":
            raise ValueError(f"convention must be 'opengl' or 'opencv', got {convention!r}")
        return cls(image, mask, pose=np.concatenate([R, t[:, None]], 1),
                   intrinsics=(float(fx), float(fy), float(cx), float(cy)), **kw)

    @property
    def is_orbit(self) -> bool:
        """True for an orbit camera, False for a general pinhole (``pose`` set)."""
        return self.pose is None

    def world_to_camera(self) -> tuple[np.ndarray, np.ndarray]:
        """``(R [3,3], t [3])`` float64, ``x_cam = R x + t`` in OpenGL camera axes."""
        if self.pose is not None:
            return self.pose[:, :3].copy(), self.pose[:, 3].copy()
        a, e = math.radians(self.azimuth), math.radians(min(max(self.elevation, -90 + 1e-4),
                                                                90 - 1e-4))
        eye = self.distance * np.array([math.cos(e) * math.sin(a), math.sin(e),
                                        math.cos(e) * math.cos(a)])
        f = -eye / np.linalg.norm(eye)
        s = np.cross(f, [0.0, 1.0, 0.0])
        s /= np.linalg.norm(s)
        R = np.stack([s, np.cross(s, f), -f])
        return R, -R @ eye

    def pixel_intrinsics(self) -> tuple[float, float, float, float]:
        """``(fx, fy, cx, cy)`` in pixels of this target's image."""
        if self.intrinsics is not None:
            return tuple(float(v) for v in self.intrinsics)
        h, w = self.image.shape[:2]
        f = h / (2 * math.tan(math.radians(self.fov) / 2))
        return f, f, w / 2, h / 2

    def camera(self, near: float = 0.1, far: float = 100.0) -> Camera:
        """This target's camera as a one-camera :class:`~render_core.camera.Camera`
        (float32; an orbit target's equals ``Camera.orbit`` at its aspect)."""
        R, t = self.world_to_camera()
        h, w = self.image.shape[:2]
        return Camera.from_intrinsics(torch.tensor(R, dtype=torch.float32),
                                      torch.tensor(t, dtype=torch.float32),
                                      *self.pixel_intrinsics(), w, h, near, far)

    def _check_general_camera(self) -> None:
        if (self.pose is None) != (self.intrinsics is None):
            raise ValueError("a general camera needs both pose and intrinsics")
        if self.pose is None:
            return
        pose = np.asarray(self.pose, dtype=np.float64)
        if pose.shape != (3, 4) or not np.isfinite(pose).all():
            raise ValueError(f"camera pose must be a finite [3,4] [R|t], got shape {pose.shape}")
        R = pose[:, :3]
        if np.abs(R @ R.T - np.eye(3)).max() > 1e-4 or np.linalg.det(R) < 0:
            raise ValueError("camera pose R must be a rotation (orthonormal, det +1)")
        if np.abs(R @ R.T - np.eye(3)).max() > 1e-12:  # tidy up a rounded rotation, once
            u, _, vt = np.linalg.svd(R)
            pose = np.concatenate([u @ vt, pose[:, 3:]], 1)
        intr = tuple(float(v) for v in np.asarray(self.intrinsics, dtype=np.float64).reshape(-1))
        if len(intr) != 4 or not all(math.isfinite(v) for v in intr):
            raise ValueError(f"camera intrinsics must be 4 finite numbers (fx, fy, cx, cy), got "
                             f"{self.intrinsics!r}")
        if not (intr[0] > 0 and intr[1] > 0):
            raise ValueError("camera focal lengths fx, fy must be positive")
        self.pose, self.intrinsics = pose, intr
        eye = -pose[:, :3].T @ pose[:, 3]
        d = float(np.linalg.norm(eye))
        if not d > 1e-9:
            raise ValueError("camera centre lies at the world origin (the refinement's pivot)")
        az = math.degrees(math.atan2(eye[0], eye[2]))
        prev = float(self.azimuth) if math.isfinite(float(self.azimuth)) else 0.0
        self.azimuth = az + 360.0 * round((prev - az) / 360.0)  # the turn nearest the given one
        self.elevation = math.degrees(math.asin(max(-1.0, min(1.0, eye[1] / d))))
        self.distance = d
        self.fov = math.degrees(2 * math.atan(self.image.shape[0] / (2 * intr[1])))

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
        self._check_general_camera()
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
        if not isinstance(self.lock_camera, (bool, np.bool_)):
            raise ValueError(f"lock_camera must be True or False, got {self.lock_camera!r}")
        self.lock_camera = bool(self.lock_camera)

    @property
    def aspect(self) -> float:
        return self.image.shape[1] / self.image.shape[0]

