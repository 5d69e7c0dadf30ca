"""The viewport's photo backdrop: a target image drawn over the scene in a frame of its aspect.

Drawn in NDC after the mesh, alpha-blended with an adjustable opacity, so the user sees the
photo and the mesh at once while orbiting to line them up; the frame is outlined.
"""

from __future__ import annotations

import moderngl
import numpy as np

_QUAD_VS = """
#version 330
uniform vec4 rect;  // x0, y0, x1, y1 in NDC
in vec2 in_corner;  // (0|1, 0|1), y up
out vec2 v_uv;
void main() {
    gl_Position = vec4(mix(rect.xy, rect.zw, in_corner), 0.0, 1.0);
    v_uv = vec2(in_corner.x, 1.0 - in_corner.y);  // image row 0 at the top
}
"""

_QUAD_FS = """
#version 330
uniform sampler2D image;
uniform float opacity;
in vec2 v_uv;
out vec4 f_color;
void main() { f_color = vec4(texture(image, v_uv).rgb, opacity); }
"""

_FRAME_COLOR = (1.0, 0.85, 0.2)


def frame_rect(view_aspect: float, frame_aspect: float) -> tuple[float, float]:
    """Half extents (x, y) in NDC of the largest centred frame of ``frame_aspect`` that fits a
    view of ``view_aspect`` (both width / height)."""
    if view_aspect >= frame_aspect:
        return frame_aspect / view_aspect, 1.0
    return 1.0, view_aspect / frame_aspect


class BackdropLayer:
    """GL resources of the backdrop in one context; ``line_prog`` draws the outline (a
    program with ``mvp``, ``in_pos`` and ``in_color``, as the viewport's overlays use)."""

    def __init__(self, ctx: moderngl.Context, line_prog: moderngl.Program):
        self.ctx = ctx
        self.line_prog = line_prog
        self.prog = ctx.program(vertex_shader=_QUAD_VS, fragment_shader=_QUAD_FS)
        corners = np.array([0, 0, 1, 0, 0, 1, 1, 1], np.float32)
        self.vbo = ctx.buffer(corners.tobytes())
        self.vao = ctx.vertex_array(self.prog, [(self.vbo, "2f", "in_corner")])
        self.texture: moderngl.Texture | None = None
        self.shape: tuple[int, int] | None = None

    def set_image(self, image: np.ndarray | None) -> None:
        """Upload ``image`` [H,W,3] sRGB float in [0,1], or drop it (None)."""
        if self.texture is not None:
            self.texture.release()
            self.texture, self.shape = None, None
        if image is None:
            return
        img = np.ascontiguousarray((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8))
        self.texture = self.ctx.texture((img.shape[1], img.shape[0]), 3, img.tobytes(),
                                        alignment=1)
        self.texture.filter = (moderngl.LINEAR, moderngl.LINEAR)
        self.texture.repeat_x = self.texture.repeat_y = False
        self.shape = img.shape[:2]

    def draw(self, width: int, height: int, opacity: float) -> None:
        """Blend the image over what is drawn, in the frame that fits ``width``×``height``."""
        if self.texture is None:
            return
        ctx = self.ctx
        h, w = self.shape
        hx, hy = frame_rect(width / max(height, 1), w / h)
        ctx.disable(moderngl.DEPTH_TEST)
        ctx.enable(moderngl.BLEND)
        # Colour blends; the framebuffer's alpha stays 1 (a partly transparent widget would be
        # composited by Qt as premultiplied colour, with garish results).
        ctx.blend_func = (moderngl.SRC_ALPHA, moderngl.ONE_MINUS_SRC_ALPHA, moderngl.ZERO,
                          moderngl.ONE)
        self.prog["rect"].value = (-hx, -hy, hx, hy)
        self.prog["opacity"].value = float(opacity)
        self.texture.use(0)
        self.prog["image"].value = 0
        self.vao.render(moderngl.TRIANGLE_STRIP)
        ctx.disable(moderngl.BLEND)
        # Clip coordinates with w = 1 are NDC, so an identity mvp draws the outline; it stays
        # a pixel inside the frame so its edges are not clipped away.
        px, py = 1.0 / max(width, 1), 1.0 / max(height, 1)
        x0, y0, x1, y1 = -hx + px, -hy + py, hx - px, hy - py
        pts = [(x0, y0), (x1, y0), (x1, y0), (x1, y1), (x1, y1), (x0, y1), (x0, y1), (x0, y0)]
        data = np.array([[x, y, 0.0, *_FRAME_COLOR] for x, y in pts], np.float32)
        buf = ctx.buffer(data.tobytes())
        vao = ctx.vertex_array(self.line_prog, [(buf, "3f 3f", "in_pos", "in_color")])
        self.line_prog["mvp"].write(np.eye(4, dtype=np.float32).tobytes())
        vao.render(moderngl.LINES)
        vao.release()
        buf.release()
        ctx.enable(moderngl.DEPTH_TEST)
