"""The OpenGL viewport: the current mesh drawn live with moderngl inside a QOpenGLWidget.

It uses render_core's own camera matrices (``rc.Camera.orbit``), so for the same camera the GL
view and the differentiable render cover the same pixels; :meth:`Viewport.render_offscreen`
exposes that for tests. Mouse: left-drag orbits, right/middle-drag (or shift+left) pans, the
wheel zooms, double-click frames the mesh again.

Camera alignment: :meth:`Viewport.set_backdrop` shows a target photo over the mesh with an
adjustable opacity, in a frame of the photo's aspect (outlined); while it is shown the orbit
turns about the origin, as the targets' orbit cameras do, and :meth:`Viewport.frame_camera`
gives the orbit camera of that frame, so "Use this view" makes the photo's camera the view.

General cameras (registered photos: roll, off-centre principal point): :meth:`set_pinhole`
shows the scene from one, in its image's centred frame, with the matrices of
``rc.Camera.from_intrinsics`` (:mod:`studio.qt.view_camera`); dragging or zooming turns or
moves that camera itself (roll and principal point kept, no jump), panning leaves it for an
orbit camera standing where it stood (:meth:`leave_pinhole`), and
:meth:`frame_pinhole` gives the general camera that the frame shows.
"""

from __future__ import annotations

import math

import moderngl
import numpy as np
from PyQt6.QtCore import QPointF, Qt
from PyQt6.QtGui import QMouseEvent, QWheelEvent
from PyQt6.QtOpenGLWidgets import QOpenGLWidget

import render_core as rc

from .backdrop import BackdropLayer, frame_rect
from .mesh_buffers import MeshBuffers
from .view_camera import (
    Pinhole,
    dolly_pinhole,
    frame_pinhole,
    frustum_lines,
    orbit_of,
    orbit_pinhole,
    pinhole_matrices,
)

__all__ = ["MODES", "Pinhole", "Viewport", "frustum_lines"]

MODES = ("shaded", "wireframe", "colors", "texture")
"""Display modes offered to the user (``silhouette`` is kept for tests)."""

_MESH_VS = """
#version 330
uniform mat4 mvp;
in vec3 in_pos;
in vec3 in_normal;
in vec3 in_color;
in vec2 in_uv;
out vec3 v_normal;
out vec3 v_color;
out vec2 v_uv;
void main() {
    gl_Position = mvp * vec4(in_pos, 1.0);
    v_normal = in_normal;
    v_color = in_color;
    v_uv = in_uv;
}
"""

# Colours arrive linear (as render_core keeps them) and are encoded to sRGB here, the display
# step of the colour rule.
_MESH_FS = """
#version 330
uniform int mode;        // 0 shaded, 1 colours, 2 texture, 3 silhouette
uniform vec3 light_dir;
uniform sampler2D tex;
in vec3 v_normal;
in vec3 v_color;
in vec2 v_uv;
out vec4 f_color;
vec3 to_srgb(vec3 c) {
    c = clamp(c, 0.0, 1.0);
    return mix(12.92 * c, 1.055 * pow(c, vec3(1.0 / 2.4)) - 0.055, step(0.0031308, c));
}
void main() {
    if (mode == 3) { f_color = vec4(1.0); return; }
    if (mode == 1) { f_color = vec4(to_srgb(v_color), 1.0); return; }
    if (mode == 2) { f_color = vec4(texture(tex, v_uv).rgb, 1.0); return; }
    vec3 n = normalize(v_normal);
    float d = abs(dot(n, normalize(light_dir)));
    f_color = vec4(to_srgb(vec3(0.6) * (0.25 + 0.75 * d)), 1.0);
}
"""

_LINE_VS = """
#version 330
uniform mat4 mvp;
in vec3 in_pos;
in vec3 in_color;
out vec3 v_color;
void main() { gl_Position = mvp * vec4(in_pos, 1.0); v_color = in_color; }
"""

_LINE_FS = """
#version 330
in vec3 v_color;
out vec4 f_color;
void main() { f_color = vec4(v_color, 1.0); }
"""

_BACKGROUND = (0.13, 0.14, 0.16)
DEFAULT_FOV = 45.0


class Viewport(QOpenGLWidget):
    """Live view of the mesh, the target cameras and the light.

    Feed it with :meth:`set_mesh` (topology, once per mesh) and :meth:`update_mesh` (new vertex
    positions / colours / texture, every frame); :meth:`set_cameras` and :meth:`set_light`
    set the overlays.
    """

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumSize(320, 240)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.mode = "shaded"
        self.azimuth, self.elevation, self.distance = 30.0, 20.0, 3.5
        self.center = np.zeros(3)
        self.fov = DEFAULT_FOV
        self.ctx: moderngl.Context | None = None
        self._vertices = np.zeros((0, 3), np.float32)
        self._faces = np.zeros((0, 3), np.int64)
        self._colors: np.ndarray | None = None
        self._uvs: np.ndarray | None = None
        self._face_uvs: np.ndarray | None = None
        self._texture: np.ndarray | None = None
        self._edges = np.zeros((0, 2), np.int64)
        self._frusta: list[tuple[np.ndarray, float, float]] = []
        self._frusta_proj: list[np.ndarray | None] = []
        self.pinhole: Pinhole | None = None  # a general camera shown instead of the orbit
        self._selected = 0
        self._light: np.ndarray | None = None
        self._dirty = True
        self._tex_dirty = True
        self._drag: tuple[QPointF, Qt.MouseButton, bool] | None = None
        self._backdrop: np.ndarray | None = None  # [H,W,3] sRGB float
        self._backdrop_dirty = False
        self.backdrop_opacity = 0.5
        self.frames_drawn = 0

    # -- data ---------------------------------------------------------------------------

    def set_mesh(self, vertices, faces, colors=None, uvs=None, face_uvs=None, texture=None):
        """A new mesh (new topology: any vertex and face count). Arrays are numpy; colours and
        texture linear in [0,1]. Nothing of the previous mesh is kept (its texture neither)."""
        self._faces = np.asarray(faces, np.int64).reshape(-1, 3)
        e = np.sort(self._faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
        self._edges = np.unique(e, axis=0)
        self._uvs = None if uvs is None else np.asarray(uvs, np.float32)
        self._face_uvs = None if face_uvs is None else np.asarray(face_uvs, np.int64)
        self._texture = None
        self._vertices = np.zeros((0, 3), np.float32)  # so update_mesh takes any count
        self.update_mesh(vertices, colors, texture)

    @property
    def vertex_count(self) -> int:
        """Vertices of the mesh shown."""
        return len(self._vertices)

    @property
    def has_uvs(self) -> bool:
        """Whether the mesh shown carries UVs (set by :meth:`set_mesh`)."""
        return self._uvs is not None

    def update_mesh(self, vertices, colors=None, texture=None) -> None:
        """New vertex positions (same topology), optionally new colours / texture. Raises
        ``ValueError`` for another vertex count: a new topology goes through :meth:`set_mesh`."""
        vertices = np.asarray(vertices, np.float32).reshape(-1, 3)
        if len(self._vertices) and len(vertices) != len(self._vertices):
            raise ValueError(f"update_mesh got {len(vertices)} vertices for a mesh of "
                             f"{len(self._vertices)}; a new topology needs set_mesh")
        self._vertices = vertices
        self._colors = None if colors is None else np.asarray(colors, np.float32)
        if texture is not None:
            self._texture = np.asarray(texture, np.float32)
            self._tex_dirty = True
        self._dirty = True
        self.update()

    def set_cameras(self, cameras: list[tuple[np.ndarray, float, float]], selected: int = 0,
                    projections: list[np.ndarray] | None = None):
        """Target cameras to draw as frusta: ``(view [4,4], fov degrees, aspect)`` each, and
        optionally their projections [4,4] (then the frusta show their own intrinsics: an
        off-centre principal point)."""
        self._frusta = list(cameras)
        self._frusta_proj = list(projections) if projections is not None else \
            [None] * len(self._frusta)
        self._selected = selected
        self.update()

    def set_light(self, direction: np.ndarray | None) -> None:
        """Direction towards the light (drawn as a line from the origin), or None."""
        self._light = None if direction is None else np.asarray(direction, np.float64)
        self.update()

    def set_backdrop(self, image: np.ndarray | None, opacity: float | None = None,
                     fov: float | None = None) -> None:
        """Show ``image`` ([H,W,3] sRGB float in [0,1]) over the mesh in a frame of its aspect,
        or nothing (None). The orbit then turns about the origin (panning is off), and with
        ``fov`` the view's fov is set so the frame spans that vertical fov (the target's)."""
        self._backdrop = None if image is None else np.clip(np.asarray(image, np.float32), 0, 1)
        self._backdrop_dirty = True
        if opacity is not None:
            self.set_backdrop_opacity(opacity)
        if self._backdrop is None:
            self.fov = DEFAULT_FOV
        else:
            self.center = np.zeros(3)
            if fov is not None:
                self._match_frame_fov(fov, self._backdrop.shape[1] / self._backdrop.shape[0])
        self.update()

    def _match_frame_fov(self, fov: float, frame_aspect: float) -> None:
        _, half_h = frame_rect(self.width() / max(self.height(), 1), frame_aspect)
        t = math.tan(math.radians(fov) / 2) / half_h
        self.fov = float(np.clip(math.degrees(2 * math.atan(t)), 1.0, 170.0))

    def set_backdrop_opacity(self, opacity: float) -> None:
        self.backdrop_opacity = float(np.clip(opacity, 0.0, 1.0))
        self.update()

    @property
    def has_backdrop(self) -> bool:
        return self._backdrop is not None

    def frame_camera(self, frame_aspect: float) -> tuple[float, float, float, float]:
        """``(azimuth, elevation, distance, fov)`` of the orbit camera that sees exactly the
        centred frame of ``frame_aspect`` (W/H) drawn in this view: the same eye, and the fov
        of the frame's height (narrower than the view's when the frame is letterboxed in it).
        Azimuth in (-180, 180]. The orbit must turn about the origin (it does with a
        backdrop); otherwise a ``ValueError`` says so. Of the orbit: see :meth:`leave_pinhole`."""
        if np.linalg.norm(self.center) > 1e-9:
            raise ValueError("the view is panned away from the origin; double-click the "
                             "viewport with a photo shown to centre it")
        _, half_h = frame_rect(self.width() / max(self.height(), 1), frame_aspect)
        fov = math.degrees(2 * math.atan(half_h * math.tan(math.radians(self.fov) / 2)))
        az = -((-self.azimuth + 180.0) % 360.0 - 180.0)
        return float(az), float(self.elevation), float(self.distance), float(fov)

    def set_pinhole(self, cam: Pinhole | None) -> None:
        """Show the scene from a general camera (roll and principal point included) in its
        image's centred frame, or go back to the orbit camera (None, the orbit as it was)."""
        self.pinhole = cam
        self.update()

    def leave_pinhole(self) -> None:
        """Go on as an orbit camera from where the general camera stands (see
        :func:`~studio.qt.view_camera.orbit_of`); turning about the origin while a photo is
        shown, as its orbit camera does. Nothing to do in orbit mode."""
        if self.pinhole is None:
            return
        w, h = max(1, self.width()), max(1, self.height())
        az, el, dist, center, fov = orbit_of(self.pinhole, w, h, self._backdrop is not None)
        self.azimuth, self.elevation, self.distance, self.center, self.fov = \
            az, el, dist, center, fov
        self.pinhole = None
        self.update()

    def frame_pinhole(self, size: tuple[int, int]) -> Pinhole:
        """The general camera (intrinsics in pixels of a ``size = (W, H)`` image) that sees
        what the centred frame of ``W/H`` shows in this view, orbit or general: for a
        general camera shown in a frame of its own size, that camera again."""
        w, h = max(1, self.width()), max(1, self.height())
        view, proj = self.matrices(w, h)
        return frame_pinhole(view, proj, w, h, size)

    def look_through(self, azimuth: float, elevation: float, distance: float, fov: float,
                     frame_aspect: float) -> None:
        """Orbit to a target's camera, so the frame shows what that camera sees (the inverse
        of :meth:`frame_camera`; the view's own fov is widened when the frame is narrower)."""
        self._match_frame_fov(fov, frame_aspect)
        self.azimuth, self.elevation = float(azimuth), float(np.clip(elevation, -89.0, 89.0))
        self.distance = float(distance)
        self.center = np.zeros(3)
        self.pinhole = None
        self.update()

    def set_mode(self, mode: str) -> None:
        if mode not in MODES + ("silhouette",):
            raise ValueError(f"unknown display mode {mode!r}")
        self.mode = mode
        self.update()

    def frame_mesh(self, include_cameras: bool = False) -> None:
        """Point the orbit at the mesh and back off until it (and the target cameras) fit.

        With a photo shown the automatic framing of a new problem (``include_cameras``) keeps
        the view: the user is lining it up with the photo."""
        if include_cameras and (self._backdrop is not None or self.pinhole is not None):
            return
        self.leave_pinhole()
        if len(self._vertices):
            lo, hi = self._vertices.min(0), self._vertices.max(0)
            self.center = (lo + hi) / 2.0
            radius = float(np.linalg.norm(hi - lo)) / 2.0 * 1.1
            if self._backdrop is not None:  # keep turning about the origin, as targets do
                radius = float(np.linalg.norm(np.abs(self._vertices).max(0))) * 1.1
                self.center = np.zeros(3)
            if include_cameras and self._frusta:
                eyes = np.array([np.linalg.inv(v)[:3, 3] for v, _, _ in self._frusta])
                radius = max(radius, float(np.linalg.norm(eyes - self.center, axis=1).max()))
            # Fit the narrower of the two fields of view (the widget is often tall and thin).
            half = math.atan(math.tan(math.radians(self.fov) / 2)
                             * min(1.0, self.width() / max(self.height(), 1)))
            self.distance = max(radius / math.sin(half), 0.1)
        self.update()

    # -- camera -------------------------------------------------------------------------

    def matrices(self, width: int | None = None, height: int | None = None):
        """``(view, proj)`` [4,4] float64 of the view: the orbit camera, built by
        ``rc.Camera.orbit``, or the general camera (:meth:`set_pinhole`), built by
        ``rc.Camera.from_intrinsics``."""
        width = width or max(1, self.width())
        height = height or max(1, self.height())
        if self.pinhole is not None:
            return pinhole_matrices(self.pinhole, width, height)
        cam = rc.Camera.orbit(self.azimuth, self.elevation, self.distance,
                              at=tuple(float(c) for c in self.center), fov=self.fov,
                              aspect=width / height, near=0.05, far=200.0)
        return cam.view[0].double().numpy(), cam.proj[0].double().numpy()

    def mousePressEvent(self, e: QMouseEvent) -> None:  # noqa: N802 (Qt API)
        pan = e.button() != Qt.MouseButton.LeftButton or bool(
            e.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        self._drag = (e.position(), e.button(), pan)

    def mouseMoveEvent(self, e: QMouseEvent) -> None:  # noqa: N802
        if self._drag is None:
            return
        last, _, pan = self._drag
        d = e.position() - last
        self._drag = (e.position(), self._drag[1], pan)
        if d.x() == 0 and d.y() == 0:
            return
        if self.pinhole is not None and not pan:  # turn the general camera itself: no jump
            self.set_pinhole(orbit_pinhole(self.pinhole, -d.x() * 0.5, d.y() * 0.5,
                                           self._backdrop is not None))
            return
        self.leave_pinhole()
        if pan and self._backdrop is not None:
            return  # a photo's camera orbits the origin: panning could not be matched
        if pan:
            view, _ = self.matrices()
            scale = 2 * self.distance * math.tan(math.radians(self.fov) / 2) / max(self.height(), 1)
            right, up = view[0, :3], view[1, :3]
            self.center = self.center - right * d.x() * scale + up * d.y() * scale
        else:
            self.azimuth -= d.x() * 0.5
            self.elevation = float(np.clip(self.elevation + d.y() * 0.5, -89.0, 89.0))
        self.update()

    def mouseReleaseEvent(self, e: QMouseEvent) -> None:  # noqa: N802
        self._drag = None

    def mouseDoubleClickEvent(self, e: QMouseEvent) -> None:  # noqa: N802
        self.frame_mesh()

    def wheelEvent(self, e: QWheelEvent) -> None:  # noqa: N802
        if self.pinhole is not None:  # move the general camera itself, as orbiting does
            self.set_pinhole(dolly_pinhole(self.pinhole, 0.999 ** e.angleDelta().y(),
                                           self._backdrop is not None))
            return
        self.distance = float(np.clip(self.distance * 0.999 ** e.angleDelta().y(), 0.05, 500))
        self.update()

    # -- GL -----------------------------------------------------------------------------

    def initializeGL(self) -> None:  # noqa: N802
        self.ctx = moderngl.create_context()
        self._mesh_prog = self.ctx.program(vertex_shader=_MESH_VS, fragment_shader=_MESH_FS)
        self._line_prog = self.ctx.program(vertex_shader=_LINE_VS, fragment_shader=_LINE_FS)
        self._gpu = MeshBuffers(self.ctx, self._mesh_prog, self._line_prog)
        self._backdrop_layer = BackdropLayer(self.ctx, self._line_prog)
        self._dirty = self._tex_dirty = self._backdrop_dirty = True

    def _upload(self) -> None:
        self._gpu.upload(self._vertices, self._faces, self._edges, self._colors, self._uvs,
                         self._face_uvs)
        if self._tex_dirty and self._texture is not None:
            self._gpu.upload_texture(self._texture)
        self._dirty = self._tex_dirty = False

    def _overlay_vertices(self) -> np.ndarray:
        parts = []
        projs = self._frusta_proj + [None] * (len(self._frusta) - len(self._frusta_proj))
        for i, ((view, fov, aspect), proj) in enumerate(zip(self._frusta, projs, strict=False)):
            col = [1.0, 0.85, 0.2] if i == self._selected else [0.35, 0.7, 1.0]
            seg = frustum_lines(np.asarray(view, np.float64), fov, aspect, 0.35,
                                None if proj is None else np.asarray(proj, np.float64))
            parts.append(np.concatenate([seg, np.tile([col], (len(seg), 1))], 1))
        if self._light is not None:
            d = self._light / max(np.linalg.norm(self._light), 1e-12)
            seg = np.array([d * 1.3, d * 2.2], np.float32)
            parts.append(np.concatenate([seg, [[1.0, 1.0, 0.4]] * 2], 1))
        axes = np.array([[0, 0, 0, 0.8, 0.25, 0.25], [0.6, 0, 0, 0.8, 0.25, 0.25],
                         [0, 0, 0, 0.3, 0.8, 0.3], [0, 0.6, 0, 0.3, 0.8, 0.3],
                         [0, 0, 0, 0.3, 0.45, 0.9], [0, 0, 0.6, 0.3, 0.45, 0.9]])
        parts.append(axes)
        return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)

    def _draw(self, fbo, view, proj, mode: str, overlays: bool) -> None:
        ctx = self.ctx
        fbo.use()
        bg = (0.0, 0.0, 0.0) if mode == "silhouette" else _BACKGROUND
        fbo.clear(*bg, 1.0, depth=1.0)
        ctx.enable(moderngl.DEPTH_TEST)
        ctx.disable(moderngl.CULL_FACE)
        if self._dirty or self._tex_dirty:
            self._upload()
        mvp = (proj @ view).astype(np.float32)
        mvp_bytes = np.ascontiguousarray(mvp.T).tobytes()  # GLSL wants column-major
        gpu = self._gpu
        if gpu.vao is not None:
            self._mesh_prog["mvp"].write(mvp_bytes)
            code = {"shaded": 0, "wireframe": 0, "colors": 1, "texture": 2, "silhouette": 3}[mode]
            if mode == "texture" and self._texture is None:
                code = 1 if self._colors is not None else 0
            self._mesh_prog["mode"].value = code
            eye = np.linalg.inv(view)[:3, 3]
            self._mesh_prog["light_dir"].value = tuple(float(x) for x in eye - self.center)
            gpu.texture.use(0)
            if mode == "wireframe":
                # Push faces back so the edges drawn on top win the depth test.
                ctx.polygon_offset = (1.0, 1.0)
            gpu.vao.render(moderngl.TRIANGLES)
            ctx.polygon_offset = (0.0, 0.0)
            if mode == "wireframe" and gpu.edge_vao is not None:
                self._line_prog["mvp"].write(mvp_bytes)
                gpu.edge_vao.render(moderngl.LINES)
        if overlays:
            data = self._overlay_vertices()
            buf = ctx.buffer(data.tobytes())
            vao = ctx.vertex_array(self._line_prog, [(buf, "3f 3f", "in_pos", "in_color")])
            self._line_prog["mvp"].write(mvp_bytes)
            vao.render(moderngl.LINES)
            vao.release()
            buf.release()

    def paintGL(self) -> None:  # noqa: N802
        if self.ctx is None:
            return
        ratio = self.devicePixelRatioF()
        w, h = int(self.width() * ratio), int(self.height() * ratio)
        fbo = self.ctx.detect_framebuffer(self.defaultFramebufferObject())
        fbo.viewport = (0, 0, w, h)
        view, proj = self.matrices(w, h)
        self._draw(fbo, view, proj, self.mode, overlays=True)
        if self._backdrop_dirty:
            self._backdrop_layer.set_image(self._backdrop)
            self._backdrop_dirty = False
        self._backdrop_layer.draw(w, h, self.backdrop_opacity)
        self.frames_drawn += 1

    def render_offscreen(self, view: np.ndarray, proj: np.ndarray, size: tuple[int, int],
                         mode: str = "silhouette") -> np.ndarray:
        """Draw the mesh with the given matrices into an ``(H, W)`` image; uint8 [H,W,3].

        Row 0 is the top row (the ``glReadPixels`` flip is undone), as in render_core. Needs
        the widget to have been shown once (it owns the GL context).
        """
        if self.ctx is None:
            raise RuntimeError("the viewport has no GL context yet (show it first)")
        h, w = size
        self.makeCurrent()
        try:
            color = self.ctx.renderbuffer((w, h))
            depth = self.ctx.depth_renderbuffer((w, h))
            fbo = self.ctx.framebuffer(color_attachments=[color], depth_attachment=depth)
            fbo.viewport = (0, 0, w, h)
            self._draw(fbo, np.asarray(view, np.float64), np.asarray(proj, np.float64), mode,
                       overlays=False)
            raw = fbo.read(components=3, alignment=1)
            for obj in (fbo, color, depth):
                obj.release()
        finally:
            self.doneCurrent()
        return np.frombuffer(raw, np.uint8).reshape(h, w, 3)[::-1].copy()
