"""RenderNet in the studio, without Qt: neural-style images of the current mesh for a target
view, and the fit of a target's camera (and light) through the network.

Geometry. RenderNet sees the world cube [-1,1]³ through cameras that look at the origin, as the
studio's orbit cameras do. The mesh is scaled about the origin (not re-centred, so the cameras
stay exact) by ``s = RADIUS / max|v|``; an orbit camera (azimuth a, elevation e, distance d,
vertical fov f) is then the network pose ``(a, e, 1 / (s·d·tan(f/2)))``, exactly how
``rc.rendernet.camera_to_pose`` maps a perspective camera, rendered through a frustum camera
grid with ``persp = 1/(s·d)`` so near parts are foreshortened as in the viewport. The
network's square 128² image spans that half-height both ways; a target of aspect w/h spans it
vertically, so the square is the target's central h×h block (padded or cropped sideways).
A registered (general pinhole) camera is mapped by :mod:`studio.model.neural_camera`: the
network's pose takes its centre and ``fy``; roll, pan, ``fx`` and the principal point are an
exact image warp of the network's output.

Colour. RenderNet images are values in [0,1] (shading, line or occlusion amounts) and are shown
as they are. To fit a target in the ``phong`` style, its linear luminance on the mask is
stretched to Phong's range (0.1..1): photos and analytic renders each have their own exposure
and ambient term, while the network's Phong is ``0.1 + 0.9·max(0, n·l)``. Other styles read
the target's luminance as is (a line drawing for ``contour``, an occlusion image for ``ao``).
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

import render_core as rc

from . import child
from .neural_camera import NetView, moved_camera, net_to_view, pinhole_to_pose, view_to_net

NEURAL_STYLES = ("phong", "contour", "toon", "ao")
"""The RenderNet styles the studio offers."""
FIT_STYLES = NEURAL_STYLES + ("mask",)
"""Styles a target can be fitted in: the neural styles and the silhouette alone."""
LIT_STYLES = ("phong", "toon")
"""Styles that depend on the light (a pose fit in these also fits the light)."""
NET_RES = 128
_LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)  # Rec. 709, on linear RGB


# -- geometry ------------------------------------------------------------------------------------


def unit_scale(vertices: np.ndarray) -> float:
    """Scale about the origin that puts the farthest vertex at ``rc.rendernet.RADIUS``."""
    r = float(np.linalg.norm(np.asarray(vertices, np.float64), axis=1).max(initial=0.0))
    if not math.isfinite(r) or r <= 0:
        raise ValueError("the mesh has no finite extent for RenderNet to render")
    return rc.rendernet.RADIUS / r


def orbit_of_view(view: np.ndarray) -> tuple[float, float, float]:
    """``(azimuth, elevation, distance)`` (degrees) of a world->camera matrix [4,4] whose
    camera looks at the origin (the studio's orbit cameras)."""
    v = np.asarray(view, np.float64)
    eye = torch.from_numpy(-v[:3, :3].T @ v[:3, 3])
    az, el, _ = rc.rendernet.camera_to_pose(rc.Camera.look_at(eye))
    return float(az[0]), float(el[0]), float(eye.norm())


def orbit_to_pose(azimuth: float, elevation: float, distance: float, fov: float,
                  s: float) -> tuple[float, float, float]:
    """Orbit camera (degrees, world units) of a mesh scaled by ``s`` -> network pose
    (``rc.rendernet.camera_to_pose`` of the camera in the scaled world; azimuth in [-180, 180])."""
    az, el, scale = rc.rendernet.camera_to_pose(_scaled_orbit(azimuth, elevation, distance, fov, s))
    return float(az[0]), float(el[0]), float(scale[0])


def _scaled_orbit(azimuth: float, elevation: float, distance: float, fov: float,
                  s: float) -> rc.Camera:
    """The orbit camera seen from the mesh's scaled world (eye distance ``s·distance``)."""
    return rc.Camera.orbit(torch.tensor([azimuth], dtype=torch.float64), elevation,
                           s * distance, fov=fov)


def net_persp(distance: float, s: float) -> float:
    """``persp`` (1/eye distance, clamped) of an orbit camera at ``distance`` from a mesh scaled
    by ``s``: the network renders the studio's perspective view through a frustum grid."""
    return float(rc.rendernet.camera_persp(_scaled_orbit(0.0, 0.0, distance, 60.0, s))[0])


def pose_to_orbit(azimuth: float, elevation: float, scale: float, fov: float,
                  s: float) -> tuple[float, float, float, float]:
    """Inverse of :func:`orbit_to_pose` at a given fov: ``(azimuth, elevation, distance, fov)``
    with the azimuth wrapped to [-180, 180)."""
    az = (azimuth + 180.0) % 360.0 - 180.0
    return az, elevation, 1.0 / (s * scale * math.tan(math.radians(fov) / 2)), fov


def to_target_frame(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """A square network image [N,N,C] -> the target's frame [h,w,C]: resized to h×h and
    padded with black (wide targets) or cropped (tall ones) sideways."""
    t = torch.from_numpy(np.ascontiguousarray(img, np.float32)).permute(2, 0, 1)[None]
    t = F.interpolate(t, size=(h, h), mode="bilinear", align_corners=False, antialias=True)
    sq = t[0].permute(1, 2, 0).numpy()
    if w >= h:
        left = (w - h) // 2
        out = np.zeros((h, w, sq.shape[2]), np.float32)
        out[:, left:left + h] = sq
        return out
    left = (h - w) // 2
    return np.ascontiguousarray(sq[:, left:left + w])


def from_target_frame(img: np.ndarray, n: int = NET_RES) -> np.ndarray:
    """The inverse of :func:`to_target_frame`: [H,W,C] -> the central square as [n,n,C]."""
    img = np.asarray(img, np.float32)
    h, w = img.shape[:2]
    if w >= h:
        left = (w - h) // 2
        sq = img[:, left:left + h]
    else:
        left = (h - w) // 2
        sq = np.zeros((h, h, img.shape[2]), np.float32)
        sq[:, left:left + w] = img
    t = torch.from_numpy(np.ascontiguousarray(sq)).permute(2, 0, 1)[None]
    t = F.interpolate(t, size=(n, n), mode="area") if h >= n else \
        F.interpolate(t, size=(n, n), mode="bilinear", align_corners=False)
    return t[0].permute(1, 2, 0).numpy()


def mesh_key(vertices: np.ndarray, faces: np.ndarray) -> bytes:
    """A digest of a mesh's vertices and faces: one voxel grid per mesh version."""
    h = hashlib.blake2b(digest_size=16)
    for a in (vertices, faces):
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype, a.shape)).encode())
        h.update(a.tobytes())
    return h.digest()


# -- rendering -----------------------------------------------------------------------------------


class NeuralShader:
    """RenderNet images of meshes seen by orbit cameras, with voxel grids cached per mesh
    version and every style of the latest few forwards cached, so switching styles for the
    frame on screen is free. Use it from one thread at a time."""

    def __init__(self, model=None, grids: int = 4, frames: int = 8):
        self._model = model
        self._grids: OrderedDict[bytes, tuple[torch.Tensor, float]] = OrderedDict()
        self._frames: OrderedDict[tuple, dict[str, np.ndarray]] = OrderedDict()
        self._sizes = (grids, frames)

    @property
    def model(self):
        if self._model is None:
            self._model = rc.rendernet.load_model()
        return self._model

    @staticmethod
    def _remember(cache: OrderedDict, key, value, size: int) -> None:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > size:
            cache.popitem(last=False)

    def grid(self, vertices: np.ndarray, faces: np.ndarray) -> tuple[torch.Tensor, float]:
        """``(voxel grid [1,1,32,32,32], scale s)`` of the mesh scaled into the unit ball."""
        key = mesh_key(vertices, faces)
        hit = self._grids.get(key)
        if hit is None:
            s = unit_scale(vertices)
            scaled = rc.Mesh(torch.as_tensor(np.asarray(vertices, np.float32) * s),
                             torch.as_tensor(np.asarray(faces, np.int64)))
            hit = (rc.rendernet.voxel_grid(scaled), s)
            self._remember(self._grids, key, hit, self._sizes[0])
        else:
            self._grids.move_to_end(key)
        return hit

    @torch.no_grad()
    def styles(self, vertices: np.ndarray, faces: np.ndarray,
               camera: tuple[float, float, float, float] | NetView,
               light: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Every RenderNet style [128,128,C] (numpy, [0,1]) of the mesh seen by the orbit
        ``camera`` (azimuth, elevation, distance, fov), or by a general pinhole
        (:class:`~studio.model.neural_camera.NetView`: the network's camera at its centre
        with its ``fy``, looking at the origin); ``light`` is the world direction towards
        the light, or None for the network's camera-relative key light."""
        vox, s = self.grid(vertices, faces)
        if isinstance(camera, NetView):  # a general pinhole: its centre and fy (see below)
            az, el, sc, pp = pinhole_to_pose(camera, s)
        else:
            az, el, sc = orbit_to_pose(*camera, s)
            pp = net_persp(camera[2], s)
        lt = None if light is None else tuple(np.round(np.asarray(light, np.float64), 6))
        key = (mesh_key(vertices, faces), round(az, 4), round(el, 4), round(sc, 6),
               round(pp, 6), lt)
        hit = self._frames.get(key)
        if hit is not None:
            return hit
        a, e, c = (torch.tensor([float(x)]) for x in (az, el, sc))
        persp = torch.tensor([pp])
        light_cam = None
        if light is not None:
            d = torch.as_tensor(np.asarray(light, np.float32))[None]
            light_cam = F.normalize((rc.rendernet.rotation(a, e) @ d[..., None])[..., 0], dim=-1)
        out = rc.rendernet.render_styles(vox, a, e, c, light_cam, model=self.model,
                                         persp=persp)
        res = {k: v[0].numpy() for k, v in out.items()}
        self._remember(self._frames, key, res, self._sizes[1])
        return res

    def image(self, vertices: np.ndarray, faces: np.ndarray,
              camera: tuple[float, float, float, float] | NetView, style: str,
              size: tuple[int, int],
              light: np.ndarray | None = None) -> np.ndarray:
        """The ``style`` image (any of ``rc.rendernet.STYLES``, e.g. ``"mask"`` too) as RGB
        [h,w,3] float32 in [0,1] in the target frame ``size``; ``camera`` an orbit tuple or a
        :class:`~studio.model.neural_camera.NetView` of that size (exact pinhole mapping)."""
        if style not in rc.rendernet.STYLES:
            raise ValueError(f"unknown RenderNet style {style!r}; choose one of "
                             f"{', '.join(rc.rendernet.STYLES)}")
        img = self.styles(vertices, faces, camera, light)[style]
        if isinstance(camera, NetView):  # roll, pan, principal point: warped, ray by ray
            if tuple(size) != tuple(camera.size):
                raise ValueError(f"image size {tuple(size)} is not the camera's {camera.size}")
            img = net_to_view(img, camera)
        else:
            img = to_target_frame(img, *size)
        return np.clip(np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img, 0.0, 1.0)


# -- fitting a target's camera -------------------------------------------------------------------


@dataclass
class CameraFit:
    """The result of :func:`fit_camera`: an orbit camera (degrees), the world direction
    towards the light (lit styles) or None, the final image loss and the style used."""

    azimuth: float
    elevation: float
    distance: float
    fov: float
    light: tuple[float, float, float] | None
    loss: float
    style: str


def style_target(image: np.ndarray, mask: np.ndarray | None, style: str,
                 view: NetView | None = None) -> torch.Tensor:
    """A target (sRGB [H,W,3] in [0,1], mask [H,W]) as an image in ``style``: [128,128,1],
    seen by the network's camera (``view``: a registered camera, warped ray by ray, see
    :func:`~studio.model.neural_camera.view_to_net`; None: the central square)."""
    img = np.asarray(image, np.float32)
    m = np.ones(img.shape[:2], np.float32) if mask is None else np.asarray(mask, np.float32)
    to_net = from_target_frame if view is None else (lambda x: view_to_net(x, view, NET_RES))
    if style == "mask":
        return torch.from_numpy(to_net(np.clip(m, 0.0, 1.0)[..., None]))
    if style == "phong":
        y = rc.srgb_to_linear(img) @ _LUMA
        fg = y[m > 0.5]
        if fg.size:
            lo, hi = np.percentile(fg, [2.0, 98.0])
            y = 0.1 + 0.9 * (y - lo) / max(hi - lo, 1e-3)
    else:
        y = img @ _LUMA
    y = np.clip(y, 0.0, 1.0) * m
    return torch.from_numpy(np.ascontiguousarray(to_net(y[..., None]), np.float32))


def fit_camera(vertices: np.ndarray, faces: np.ndarray, image: np.ndarray,
               mask: np.ndarray | None, camera: tuple[float, float, float, float],
               style: str = "phong", light: np.ndarray | None = None,
               progress: Callable[[int, int, float], bool | None] | None = None,
               shader: NeuralShader | None = None, view: NetView | None = None,
               **fit_kwargs) -> CameraFit:
    """Recover the orbit camera (and, for lit styles, the light) of a target image through
    RenderNet: ``rc.rendernet.fit_pose`` from the target's current ``camera`` (azimuth,
    elevation, distance, fov), several hypotheses narrowed coarse to fine.

    ``light`` is the starting world light direction (None: the network's key light);
    ``progress`` and ``fit_kwargs`` go to ``fit_pose`` (e.g. ``grid``, ``stages``). The fov is
    kept; the fitted scale becomes the distance. ``view``: the target's registered camera
    (whose centre and ``fy`` ``camera`` summarises): the target is warped into the network's
    look-at view first, so roll, pan and principal point are respected; the fit moves the
    centre only (:func:`apply_camera_fit`).
    """
    if style not in FIT_STYLES:
        raise ValueError(f"cannot fit in style {style!r}; choose one of {', '.join(FIT_STYLES)}")
    shader = shader or NeuralShader()
    vox, s = shader.grid(vertices, faces)
    az, el, sc = orbit_to_pose(*camera, s)
    light_cam = None
    if light is not None:
        d = torch.as_tensor(np.asarray(light, np.float32))[None]
        r = rc.rendernet.rotation(torch.tensor([float(az)]), torch.tensor([float(el)]))
        light_cam = F.normalize((r @ d[..., None])[0, :, 0], dim=0)
        if float(light_cam[2]) < 0.2:  # behind the object: never seen in training
            light_cam = None
    lit = style in LIT_STYLES
    fit_kwargs.setdefault("fov", camera[3])  # perspective: the frustum follows the distance
    fit = rc.rendernet.fit_pose(style_target(image, mask, style, view), vox, style,
                                init=(az, el, sc), light=light_cam, fit_light=lit,
                                model=shader.model, progress=progress, **fit_kwargs)
    world = None
    if lit:
        lw = rc.rendernet.light_to_world(torch.tensor([fit.light]), torch.tensor([fit.az]),
                                         torch.tensor([fit.el]))[0]
        world = tuple(float(x) for x in F.normalize(lw, dim=0))
    return CameraFit(*pose_to_orbit(fit.az, fit.el, fit.scale, camera[3], s), world, fit.loss,
                     style)


def fit_target_camera(session, index: int, style: str = "phong",
                      progress: Callable[[int, int, float], bool | None] | None = None,
                      **fit_kwargs) -> CameraFit:
    """:func:`fit_camera` for target ``index`` of a studio session, from its current mesh,
    camera and (when the shading is lit) light. Does not change the session."""
    job = camera_fit_job(session, index, style)
    return fit_camera(**job, progress=progress, **fit_kwargs)


def camera_fit_job(session, index: int, style: str) -> dict:
    """The plain data :func:`fit_camera` needs for target ``index`` (picklable)."""
    if not 0 <= index < len(session.targets):
        raise ValueError(f"there is no target view {index + 1}")
    mesh = session.current_mesh()
    if mesh is None:
        raise ValueError("load a mesh first")
    t = session.targets[index]
    light = None
    if rc.light_kind(session.config.shading) == "directional":
        light = np.asarray(session.fitter().light_direction(), np.float64)
    return {"vertices": mesh.vertices.numpy(), "faces": mesh.faces.numpy(), "image": t.image,
            "mask": t.mask, "camera": (t.azimuth, t.elevation, t.distance, t.fov),
            "style": style, "light": light,
            "view": None if t.is_orbit else NetView.of_target(t)}


def apply_camera_fit(session, index: int, fit: CameraFit) -> None:
    """Give target ``index`` the fitted camera, and the fit the fitted light when the
    session's shading is lit (the session's own camera and light setters). A registered
    target stays registered: its centre moves to the fitted eye, its roll, pan and
    intrinsics stay (:func:`~studio.model.neural_camera.moved_camera`)."""
    t = session.targets[index]
    if t.is_orbit:
        session.set_target_camera(index, fit.azimuth, fit.elevation, fit.distance, fit.fov)
    else:
        R, tt = moved_camera(*t.world_to_camera(), fit.azimuth, fit.elevation, fit.distance)
        session.set_target_pinhole(index, R, tt, *t.pixel_intrinsics())
    if fit.light is not None and rc.light_kind(session.config.shading) == "directional":
        session.set_light_direction(fit.light)


# -- the fit in a child process ------------------------------------------------------------------


def _serve_fit(conn, job: dict, fit_kwargs: dict) -> None:
    """Child process body: run :func:`fit_camera`, reporting over ``conn``:
    ("progress", done, total, loss) ... then ("done", CameraFit fields) or ("error", text)."""
    child.become_background(1)  # the window and the fit come first

    def progress(done: int, total: int, loss: float) -> None:
        conn.send(("progress", done, total, loss))

    try:
        fit = fit_camera(**job, progress=progress, **fit_kwargs)
        conn.send(("done", asdict(fit)))
    except Exception as e:  # reported to the window as one line
        conn.send(("error", child.error_line(e)))
    finally:
        conn.close()


class CameraFitJob:
    """A :func:`fit_camera` running in its own process (the network's backward passes would
    otherwise compete with the window for the interpreter). Poll it; cancel kills it."""

    def __init__(self, job: dict, **fit_kwargs):
        self._conn, self.process = child.start(_serve_fit, (job, fit_kwargs),
                                               "dibr-studio-rendernet-fit", duplex=False)
        self.result: CameraFit | None = None
        self.error: str | None = None
        self.progress = (0, 1, math.nan)

    @property
    def finished(self) -> bool:
        return self.result is not None or self.error is not None

    def poll(self) -> bool:
        """Read what the child sent so far (never blocks); True once it has finished."""
        try:
            while not self.finished and self._conn.poll():
                msg = self._conn.recv()
                if msg[0] == "progress":
                    self.progress = tuple(msg[1:])
                elif msg[0] == "done":
                    self.result = CameraFit(**msg[1])
                else:
                    self.error = msg[1]
        except (EOFError, OSError):
            if not self.finished:
                self.error = "the RenderNet fit process ended unexpectedly"
        if self.finished:
            self.close()
        return self.finished

    def cancel(self) -> None:
        """Stop the fit now (no result)."""
        if not self.finished:
            self.error = "cancelled"
        self.close()

    def close(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(5.0)
        self._conn.close()
