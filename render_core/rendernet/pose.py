"""Network pose (azimuth, elevation, scale) and the rigid resampling of a voxel grid.

Pose convention (degrees, matching ``Camera.orbit``): the camera sits at
``(cos e·sin a, sin e, cos e·cos a)`` looking at the origin with +Y up; the image is an
orthographic view of half-height ``1/scale`` (weak perspective). The world->camera rotation
rows are x = (cos a, 0, −sin a), y = (−sin e·sin a, cos e, −sin e·cos a),
z = (cos e·sin a, sin e, cos e·cos a) — exactly ``Camera.look_at``'s view matrix.

Camera grid layout [B,C,D,H,W]: W = image columns (camera x, left to right), H = image rows
(camera y, top row = +y), D = depth (index 0 nearest the camera, camera z = +1). Voxel grids
are [B,C,Z,Y,X] over the world cube [-1,1]^3 (``align_corners=False`` centres).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rotation(az: torch.Tensor, el: torch.Tensor) -> torch.Tensor:
    """World->camera rotation [B,3,3] for azimuth/elevation [B] in degrees (differentiable)."""
    a, e = torch.deg2rad(az), torch.deg2rad(el)
    ca, sa, ce, se = torch.cos(a), torch.sin(a), torch.cos(e), torch.sin(e)
    z = torch.zeros_like(a)
    rows = [
        torch.stack([ca, z, -sa], -1),
        torch.stack([-se * sa, ce, -se * ca], -1),
        torch.stack([ce * sa, se, ce * ca], -1),
    ]
    return torch.stack(rows, -2)


def camera_grid_theta(az: torch.Tensor, el: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``affine_grid`` matrices [B,3,4] mapping camera-grid coords to voxel-grid coords.

    Normalised output coords n = (col, row, depth) in [-1,1] map to camera-space
    (h·n_x, −h·n_y, −n_z) with h = 1/scale (rows run top->bottom, depth front->back), and the
    world point is Rᵀ of that. The depth extent stays [-1,1]: scale zooms the image only.
    """
    r_t = rotation(az, el).transpose(-1, -2)
    h = 1.0 / scale
    diag = torch.stack([h, -h, -torch.ones_like(h)], -1)  # [B,3]
    lin = r_t * diag[:, None, :]
    return torch.cat([lin, torch.zeros_like(lin[..., :1])], -1)


def frustum_grid(az: torch.Tensor, el: torch.Tensor, scale: torch.Tensor, persp: torch.Tensor,
                 size: tuple[int, int, int]) -> torch.Tensor:
    """``grid_sample`` coordinates [B,D,H,W,3] of a perspective camera grid.

    As :func:`camera_grid_theta`, but each depth slice is scaled by its distance from the eye:
    normalised (n_x, n_y, n_z) maps to camera space (h·n_x·f, −h·n_y·f, −n_z) with
    f = 1 + persp·n_z, persp = 1/(eye distance). A grid column is then a ray of the pinhole
    camera whose image half-height at the origin is h = 1/scale (so scale = 1/(d·tan(fov/2))),
    and the network renders that camera's perspective image. persp = 0 is the orthographic grid.
    """
    d, h, w = size

    def centres(n: int) -> torch.Tensor:  # affine_grid's align_corners=False sample points
        return (torch.arange(n, dtype=scale.dtype, device=scale.device) * 2 + 1) / n - 1

    nz, ny, nx = torch.meshgrid(centres(d), centres(h), centres(w), indexing="ij")
    hh = (1.0 / scale)[:, None, None, None]
    f = 1 + nz * persp[:, None, None, None]
    cam = torch.stack([hh * nx * f, -hh * ny * f, (-nz).expand_as(f)], -1)
    return cam @ rotation(az, el).to(scale.dtype)[:, None, None]  # world = Rᵀ·cam (rows)


def resample(vox: torch.Tensor, az: torch.Tensor, el: torch.Tensor, scale: torch.Tensor,
             size: tuple[int, int, int], window: tuple[int, int, int] | None = None,
             persp: torch.Tensor | None = None) -> torch.Tensor:
    """Rigidly transform voxel grids into the camera frame by trilinear resampling.

    Args:
        vox: [B,C,Z,Y,X] (or [C,Z,Y,X], broadcast) float occupancy/features over [-1,1]^3.
        az, el, scale: [B] pose (degrees, degrees, 1/ortho half-height).
        size: (D, H, W) of the camera grid.
        window: optional (row0, col0, n): resample only the full-depth block of n×n columns
            starting there (the training column crop) — identical values, a fraction of the cost.
        persp: optional [B] 1/(eye distance) of a perspective camera (see
            :func:`frustum_grid`); None is the weak-perspective (orthographic) grid the network
            was trained on.
    Returns:
        [B,C,D,H,W]; zeros outside the voxel cube. Differentiable w.r.t. vox, the pose and
        persp.
    """
    b = az.shape[0]
    if vox.dim() == 4:
        vox = vox.unsqueeze(0)
    if vox.shape[0] == 1 and b > 1:
        vox = vox.expand(b, *vox.shape[1:])
    if persp is not None:
        grid = frustum_grid(az.to(vox.dtype), el.to(vox.dtype), scale.to(vox.dtype),
                            persp.to(vox.dtype), size)
    else:
        theta = camera_grid_theta(az, el, scale).to(vox.dtype)
        grid = F.affine_grid(theta, [b, vox.shape[1], *size], align_corners=False)
    if window is not None:
        r, c, n = window
        grid = grid[:, :, r:r + n, c:c + n]
    return F.grid_sample(vox, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def camera_to_pose(camera) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Recover (az, el, scale) [B] from a render_core ``Camera`` looking at the origin.

    The direction of the eye gives azimuth/elevation (differentiable through ``camera.eye``);
    scale is ``1/ortho_height`` for orthographic cameras, and for a perspective camera the weak
    perspective fit ``1/(d·tan(fov/2))`` at the eye distance d (no foreshortening).
    """
    eye = camera.eye
    d = eye.norm(dim=-1)
    el = torch.rad2deg(torch.asin((eye[:, 1] / d).clamp(-1, 1)))
    az = torch.rad2deg(torch.atan2(eye[:, 0], eye[:, 2]))
    if camera.ortho_height is not None:
        scale = 1.0 / camera.ortho_height
    else:
        scale = 1.0 / (d * torch.tan(torch.deg2rad(camera.fov) / 2))
    return az, el, scale


MAX_PERSP = 0.9
"""Largest 1/(eye distance) a frustum grid takes: the eye must stay outside the [-1,1] depth
range of the grid (closer cameras are clamped to distance 1/0.9)."""


def camera_persp(camera) -> torch.Tensor | None:
    """[B] 1/(eye distance) of a perspective ``Camera`` for :func:`resample`'s ``persp``
    (clamped to :data:`MAX_PERSP`); None for an orthographic camera."""
    if camera.ortho_height is not None:
        return None
    return (1.0 / camera.eye.norm(dim=-1)).clamp(max=MAX_PERSP)
