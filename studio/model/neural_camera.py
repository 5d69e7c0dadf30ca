"""RenderNet seen from a general pinhole camera (a registered photo's), without Qt.

What the network's pose can represent. ``rc.rendernet`` renders through a camera that looks
at the world origin with +Y up, square image, principal point at its centre, one focal
length: ``(azimuth, elevation, scale)`` plus ``persp`` (1/eye distance) for the perspective
frustum grid. From a real camera :func:`pinhole_to_pose` takes the parts it can hold exactly:
the camera *centre* (azimuth, elevation and distance of the eye, through
``rc.rendernet.camera_to_pose`` and ``camera_persp`` of the camera itself, not of an orbit
summary) and the *vertical focal length* ``fy`` (the scale). It cannot hold roll, a view
direction that misses the origin (pan/tilt), a principal point off the image centre, or
``fx != fy``.

Those are applied after the network, in image space: a pinhole's rotation about its centre and
a change of intrinsics are a homography of its image, so :func:`net_to_view` resamples the
network's image (rendered from the same centre with the same ``fy``, looking at the origin)
into the real camera's frame exactly, ray by ray. The approximation: what the network's square
view does not see (a camera panned far off the origin, a principal point far off-centre) is
black, and the image is resampled once more (bilinear). :func:`exactly_representable` tells
whether a camera needs the warp at all. A camera with no roll, looking at the origin, ``fx ==
fy`` and a centred principal point maps to exactly today's orbit mapping
(:func:`studio.model.neural.orbit_to_pose`, ``net_persp``, ``to_target_frame``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

import render_core as rc


@dataclass(frozen=True)
class NetView:
    """A pinhole camera for RenderNet: world-to-camera ``R`` [3,3], ``t`` [3] (OpenGL camera
    axes), ``intrinsics`` ``(fx, fy, cx, cy)`` in pixels of an image of ``size`` ``(h, w)``."""

    R: np.ndarray
    t: np.ndarray
    intrinsics: tuple[float, float, float, float]
    size: tuple[int, int]

    @classmethod
    def of_target(cls, target, size: tuple[int, int] | None = None) -> NetView:
        """A ``TargetView``'s camera, its intrinsics scaled to ``size`` (same aspect; None:
        the target image's size)."""
        h0, w0 = target.image.shape[:2]
        h, w = size or (h0, w0)
        fx, fy, cx, cy = target.pixel_intrinsics()
        k = h / h0
        R, t = target.world_to_camera()
        return cls(R, t, (fx * k, fy * k, cx * k, cy * k), (int(h), int(w)))

    def key(self) -> tuple:
        """A hashable summary (for caches)."""
        return (tuple(np.round(np.asarray(self.R, np.float64).ravel(), 9)),
                tuple(np.round(np.asarray(self.t, np.float64).ravel(), 9)),
                tuple(round(float(v), 6) for v in self.intrinsics), tuple(self.size))


def _scaled_camera(view: NetView, s: float) -> rc.Camera:
    """The camera in the mesh's scaled world (``x' = s·x``: same rotation, ``t' = s·t``)."""
    h, w = view.size
    return rc.Camera.from_intrinsics(torch.tensor(np.asarray(view.R, np.float64)),
                                     torch.tensor(s * np.asarray(view.t, np.float64)),
                                     *(float(v) for v in view.intrinsics), w, h)


def pinhole_to_pose(view: NetView, s: float) -> tuple[float, float, float, float]:
    """``(azimuth, elevation, scale, persp)`` of the network for the camera's centre and
    vertical focal length in a world scaled by ``s`` (see the module doc)."""
    cam = _scaled_camera(view, s)
    az, el, scale = rc.rendernet.camera_to_pose(cam)
    persp = rc.rendernet.camera_persp(cam)
    return float(az[0]), float(el[0]), float(scale[0]), float(persp[0])


def _look_rotation(view: NetView) -> np.ndarray:
    """The network's world-to-camera rotation for this camera's centre (looks at the origin)."""
    eye = -np.asarray(view.R, np.float64).T @ np.asarray(view.t, np.float64)
    az = math.degrees(math.atan2(eye[0], eye[2]))
    el = math.degrees(math.asin(max(-1.0, min(1.0, eye[1] / np.linalg.norm(eye)))))
    return rc.rendernet.rotation(torch.tensor([az], dtype=torch.float64),
                                 torch.tensor([el], dtype=torch.float64))[0].numpy()


def exactly_representable(view: NetView, atol: float = 1e-6) -> bool:
    """True when the network's pose is this camera: no roll, looking at the origin,
    ``fx == fy`` and the principal point at the image centre (no warp needed)."""
    h, w = view.size
    fx, fy, cx, cy = view.intrinsics
    return (np.allclose(np.asarray(view.R), _look_rotation(view), atol=atol)
            and abs(fx - fy) <= atol * fy and abs(cx - w / 2) <= atol * w
            and abs(cy - h / 2) <= atol * h)


def net_grid(view: NetView) -> torch.Tensor:
    """``grid_sample`` coordinates [1,h,w,2] (align_corners=False) of the network's image for
    every pixel centre of the camera's image, and a validity mask [h,w] (rays in front of the
    network's camera)."""
    h, w = view.size
    fx, fy, cx, cy = view.intrinsics
    v, u = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
    rays = np.stack([(u - cx) / fx, -(v - cy) / fy, -np.ones_like(u)], -1)  # camera axes
    net = rays @ (_look_rotation(view) @ np.asarray(view.R, np.float64).T).T
    depth = -net[..., 2]
    ok = depth > 1e-9
    k = 2 * fy / h  # 1 / tan(fov/2) of the network's camera: the same fy
    safe = np.where(ok, depth, 1.0)
    gx = np.where(ok, k * net[..., 0] / safe, 2.0)
    gy = np.where(ok, -k * net[..., 1] / safe, 2.0)
    return torch.from_numpy(np.stack([gx, gy], -1)[None]), torch.from_numpy(ok)


def net_to_view(img: np.ndarray, view: NetView) -> np.ndarray:
    """A square network image [N,N,C] -> the camera's frame [h,w,C]: ray by ray (exact for a
    pinhole; black where the network's view does not reach)."""
    grid, ok = net_grid(view)
    src = torch.from_numpy(np.ascontiguousarray(img, np.float32)).permute(2, 0, 1)[None]
    out = F.grid_sample(src, grid.float(), mode="bilinear", padding_mode="zeros",
                        align_corners=False)[0].permute(1, 2, 0)
    return (out * ok[..., None]).numpy()


def view_to_net(img: np.ndarray, view: NetView, n: int = 128) -> np.ndarray:
    """The inverse of :func:`net_to_view`: the camera's image [h,w,C] seen by the network's
    camera (same centre and ``fy``, looking at the origin) as [n,n,C]; black where the real
    camera does not see. Bilinear, no prefilter: a photo much larger than the network's
    view aliases a little (the camera fit compares at 128², coarse to fine)."""
    h, w = view.size
    fx, fy, cx, cy = view.intrinsics
    k = 2 * fy / h
    c = (np.arange(n) + 0.5) * 2 / n - 1
    gy, gx = np.meshgrid(c, c, indexing="ij")
    rays = np.stack([gx / k, -gy / k, -np.ones_like(gx)], -1)  # the network camera's axes
    cam = rays @ (np.asarray(view.R, np.float64) @ _look_rotation(view).T).T
    depth = -cam[..., 2]
    ok = depth > 1e-9
    safe = np.where(ok, depth, 1.0)
    u = cx + fx * cam[..., 0] / safe
    v = cy - fy * cam[..., 1] / safe
    grid = np.stack([np.where(ok, 2 * u / w - 1, 2.0), np.where(ok, 2 * v / h - 1, 2.0)], -1)
    src = torch.from_numpy(np.ascontiguousarray(img, np.float32)).permute(2, 0, 1)[None]
    out = F.grid_sample(src, torch.from_numpy(grid[None]).float(), mode="bilinear",
                        padding_mode="zeros", align_corners=False)[0].permute(1, 2, 0)
    return (out * torch.from_numpy(ok)[..., None]).numpy()


def moved_camera(view_R: np.ndarray, view_t: np.ndarray, azimuth: float, elevation: float,
                 distance: float) -> tuple[np.ndarray, np.ndarray]:
    """A general camera ``(R, t)`` moved to the eye of an orbit ``(azimuth, elevation,
    distance)`` (a RenderNet fit), keeping its rotation relative to the look-at-the-origin
    frame (its roll and pan): the network's pose moves the centre, the rest stays."""
    R = np.asarray(view_R, np.float64)
    old = _look_rotation(NetView(R, np.asarray(view_t, np.float64), (1, 1, 0, 0), (1, 1)))
    rel = R @ old.T
    new = rc.rendernet.rotation(torch.tensor([float(azimuth)], dtype=torch.float64),
                                torch.tensor([float(elevation)], dtype=torch.float64))[0].numpy()
    R2 = rel @ new
    eye = float(distance) * new[2]  # the network's +z row is the eye's direction
    return R2, -R2 @ eye


def frame_view(view: np.ndarray, fov: float, target, size: tuple[int, int]) -> NetView:
    """The :class:`NetView` of a fit frame of a registered ``target``: the frame's
    world-to-camera ``view`` [4,4] and vertical ``fov`` (the fit's refined camera) with the
    target's aspect of focal lengths and principal point, at the frame's ``size``."""
    h, w = size
    v = np.asarray(view, np.float64)
    fx0, fy0, cx0, cy0 = target.pixel_intrinsics()
    k = h / target.image.shape[0]
    fy = h / (2 * math.tan(math.radians(float(fov)) / 2))
    return NetView(v[:3, :3], v[:3, 3], (fy * fx0 / fy0, fy, cx0 * k, cy0 * k), (h, w))
