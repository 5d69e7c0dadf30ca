"""Render a mesh (or a voxel grid) in a RenderNet style through a render_core camera.

The network sees the world cube [-1,1]^3 as a 32³ fractional-occupancy grid, so the object must
lie inside the unit ball around the origin (``shapes.normalize`` does that) and the camera must
look at the origin. A perspective camera is mapped to the weak-perspective pose that matches
its scale at the eye distance (no foreshortening, as the original).
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from ..camera import Camera
from .model import Config, RenderNet, images, load_grown
from .pose import camera_persp, camera_to_pose, rotation
from .voxelize import voxelize

WEIGHTS = Path(__file__).resolve().parents[2] / "assets" / "rendernet" / "weights.pt"
STYLES = ("phong", "contour", "toon", "ao", "normal", "mask", "phong_net")
DEFAULT_LIGHT_CAM = (0.35, 0.5, 0.79)  # camera frame: upper right, in front


@functools.lru_cache(maxsize=4)
def _load(path: str) -> RenderNet:
    st = torch.load(path, weights_only=True)  # state_dicts and numbers only, never pickle
    model = RenderNet(Config())
    load_grown(model, {k: v.float() for k, v in st["model"].items()})
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)  # gradients flow to inputs (pose, light, grid), not weights
    return model


def load_model(path: str | Path | None = None) -> RenderNet:
    """The shipped network (``assets/rendernet/weights.pt``) or ``path``; cached, eval mode."""
    return _load(str(path or WEIGHTS))


def voxel_grid(mesh, res: int = 32) -> torch.Tensor:
    """Mesh (render_core ``Mesh``, trimesh, or anything with vertices/faces) -> [1,1,Z,Y,X]."""
    return torch.from_numpy(voxelize(mesh, res))[None, None]


def _light_to_camera(light, az, el, b: int) -> torch.Tensor:
    if light is None:
        return torch.tensor(DEFAULT_LIGHT_CAM, device=az.device).expand(b, 3)
    d = getattr(light, "direction", light)  # DirectionalLight or a tensor
    d = torch.as_tensor(d, dtype=torch.float32, device=az.device)
    d = d.expand(b, 3) if d.dim() == 1 else d
    return (rotation(az, el) @ d.unsqueeze(-1)).squeeze(-1)  # world -> camera frame


def render_voxels(vox: torch.Tensor, az: torch.Tensor, el: torch.Tensor, scale: torch.Tensor,
                  style: str, light_cam: torch.Tensor | None = None,
                  model: RenderNet | None = None, persp: torch.Tensor | None = None
                  ) -> torch.Tensor:
    """Network render of voxel grids for explicit poses.

    Args:
        vox: [B,1,32,32,32] or [1,1,32,32,32] occupancy (z, y, x) over [-1,1]^3.
        az, el, scale: [B] degrees, degrees, 1/ortho half-height.
        style: one of ``STYLES``.
        light_cam: [B,3] light direction in the camera frame (default upper right, front).
        persp: [B] 1/(eye distance) for a perspective camera (a frustum camera grid, see
            ``pose.frustum_grid``); None: weak perspective, as the network was trained.
    Returns:
        [B,128,128,C] float32 in [0,1] (C=3 for ``normal`` as (n+1)/2, else 1).
        Differentiable w.r.t. vox, az, el, scale, light_cam and persp.
    """
    if style not in STYLES:
        raise ValueError(f"unknown RenderNet style {style!r}; choose one of {STYLES}")
    model = model or load_model()
    b = az.shape[0]
    if light_cam is None:
        light_cam = torch.tensor(DEFAULT_LIGHT_CAM, device=az.device).expand(b, 3)
    out = model.render_pose(vox, az, el, scale, light_cam, persp)
    if style == "normal":
        return (out["normal"] + 1) / 2
    return images(out, light_cam)[style].unsqueeze(-1)


def render_styles(vox: torch.Tensor, az: torch.Tensor, el: torch.Tensor, scale: torch.Tensor,
                  light_cam: torch.Tensor | None = None, model: RenderNet | None = None,
                  persp: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Every style from one forward pass (switching styles then costs nothing).

    Same arguments as :func:`render_voxels`. Returns ``{style: [B,128,128,C]}`` for every
    name in ``STYLES`` (C=3 for ``normal``, else 1).
    """
    model = model or load_model()
    if light_cam is None:
        light_cam = torch.tensor(DEFAULT_LIGHT_CAM, device=az.device).expand(az.shape[0], 3)
    out = model.render_pose(vox, az, el, scale, light_cam, persp)
    res = {k: v.unsqueeze(-1) for k, v in images(out, light_cam).items()}
    res["normal"] = (out["normal"] + 1) / 2
    return res


def light_to_world(light_cam: torch.Tensor, az: torch.Tensor, el: torch.Tensor) -> torch.Tensor:
    """Camera-frame light directions [B,3] of poses (az, el) [B] -> world frame [B,3]."""
    return (rotation(az, el).transpose(-1, -2) @ light_cam.unsqueeze(-1)).squeeze(-1)


def render(mesh, camera: Camera, style: str, light=None, *, vox: torch.Tensor | None = None,
           model: RenderNet | None = None) -> torch.Tensor:
    """RenderNet image of ``mesh`` seen by ``camera``.

    Args:
        mesh: a render_core ``Mesh`` / trimesh inside the unit ball (ignored if ``vox`` given).
        camera: render_core ``Camera`` [B] looking at the origin (orbit or look-at; ortho or
            perspective, square aspect). Differentiable through ``camera.eye`` and
            ``ortho_height``/``fov``. A perspective camera is rendered through a frustum
            camera grid (foreshortening included; the eye is kept at distance ≥ 1/0.9).
        style: "phong" (deferred: analytic shading of the predicted normal map), "contour",
            "toon", "ao", "normal", "mask", or "phong_net" (the network's own Phong head).
        light: world-space direction towards the light, [3]|[B,3] tensor or a
            ``DirectionalLight``; None = a fixed camera-relative key light.
        vox: optional [1|B,1,32,32,32] grid to render instead of voxelizing ``mesh``
            (differentiable).
    Returns:
        [B,128,128,C] float32 in [0,1].
    """
    az, el, scale = camera_to_pose(camera)
    if vox is None:
        vox = voxel_grid(mesh)
    light_cam = None if light is None else _light_to_camera(light, az, el, az.shape[0])
    persp = camera_persp(camera)
    persp = None if persp is None else persp.float()
    return render_voxels(vox, az.float(), el.float(), scale.float(), style, light_cam, model,
                         persp)
