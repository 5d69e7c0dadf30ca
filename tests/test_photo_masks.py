"""Automatic masks on hard photos: an off-centre textured figure over a vertical gradient
and a checker floor (whose far edge is a straight line across the frame), eight views, one
touching the bottom edge. The photos come from an independent renderer (moderngl, offscreen),
not from render_core."""

from __future__ import annotations

import math

import moderngl
import numpy as np
import pytest

from studio.model import photo

H, W = 384, 512

_VS = """
#version 330
uniform mat4 mvp;
in vec3 pos;
in vec3 col;
out vec3 v_col;
out vec3 v_pos;
void main() { v_col = col; v_pos = pos; gl_Position = mvp * vec4(pos, 1.0); }
"""
_FS = """
#version 330
uniform int mode;  // 0 object, 1 floor, 2 flat white, 3 flat black
in vec3 v_col;
in vec3 v_pos;
out vec4 f;
void main() {
    vec3 c = v_col;
    if (mode == 0) {  // patches and stripes on the hide
        float s = sin(v_pos.x * 23.0) * sin(v_pos.y * 19.0) * sin(v_pos.z * 17.0);
        c = c * (s > 0.3 ? 0.55 : 1.0);
    } else if (mode == 1) {
        float k = mod(floor(v_pos.x * 2.0) + floor(v_pos.z * 2.0), 2.0);
        c = k > 0.5 ? vec3(0.78, 0.76, 0.70) : vec3(0.30, 0.30, 0.33);
    } else if (mode == 2) { c = vec3(1.0); } else if (mode == 3) { c = vec3(0.0); }
    f = vec4(c, 1.0);
}
"""
_BG_VS = """
#version 330
in vec2 p;
out float t;
void main() { t = p.y * 0.5 + 0.5; gl_Position = vec4(p, 0.999, 1.0); }
"""
_BG_FS = """
#version 330
in float t;
out vec4 f;
void main() {
    vec3 c = mix(vec3(0.55, 0.50, 0.45), vec3(0.75, 0.85, 0.95), t);
    if (t > 0.46 && t < 0.49) c = vec3(0.55, 0.33, 0.20);  // a skirting line across the frame
    f = vec4(c, 1.0);
}
"""


def _box(lo, hi, col):
    """Triangles of an axis-aligned box: [36,6] (position, colour)."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    c = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], float)
    v = lo + c * (hi - lo)
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    tris = [v[[a, b, cc]] for a, b, cc, d in quads] + [v[[a, cc, d]] for a, b, cc, d in quads]
    p = np.concatenate(tris)
    return np.concatenate([p, np.tile(col, (len(p), 1))], 1)


def _cow():
    """A body on four legs with dark hooves, a head with a dark face, and a tail."""
    hide, dark, pink = (0.85, 0.55, 0.30), (0.07, 0.06, 0.06), (0.90, 0.60, 0.65)
    parts = [_box((-0.6, 0.45, -0.3), (0.6, 0.95, 0.3), hide)]
    for x in (-0.45, 0.35):
        for z in (-0.22, 0.12):
            parts.append(_box((x, 0.1, z), (x + 0.12, 0.5, z + 0.12), hide))
            parts.append(_box((x - 0.01, 0.0, z - 0.01), (x + 0.13, 0.1, z + 0.13), dark))
    parts.append(_box((0.6, 0.75, -0.18), (0.95, 1.15, 0.18), hide))
    parts.append(_box((0.95, 0.78, -0.14), (1.02, 1.05, 0.14), dark))  # face
    parts.append(_box((0.7, 0.72, -0.1), (0.9, 0.78, 0.1), pink))
    parts.append(_box((-0.68, 0.55, -0.03), (-0.6, 0.9, 0.03), dark))  # tail
    return np.concatenate(parts).astype("f4")


def _floor():
    s = 1.6
    q = np.array([[-s, 0, -s], [s, 0, -s], [s, 0, s], [-s, 0, -s], [s, 0, s], [-s, 0, s]], float)
    return np.concatenate([q, np.zeros((6, 3))], 1).astype("f4")


def _mvp(eye, target, fov=40.0, near=0.1, far=50.0):
    eye, target = np.asarray(eye, float), np.asarray(target, float)
    f = target - eye
    f /= np.linalg.norm(f)
    r = np.cross(f, [0, 1, 0])
    r /= np.linalg.norm(r)
    u = np.cross(r, f)
    view = np.eye(4)
    view[0, :3], view[1, :3], view[2, :3] = r, u, -f
    view[:3, 3] = -view[:3, :3] @ eye
    t = 1 / math.tan(math.radians(fov) / 2)
    proj = np.zeros((4, 4))
    proj[0, 0], proj[1, 1] = t * H / W, t
    proj[2, 2], proj[2, 3] = (far + near) / (near - far), 2 * far * near / (near - far)
    proj[3, 2] = -1
    return (proj @ view).astype("f4")


# (azimuth, elevation, distance, target offset in the image: right, up)
VIEWS = [(0, 18, 4.6, (0.3, 0.05)), (45, 22, 4.8, (-0.3, 0.0)), (90, 15, 4.4, (0.35, 0.1)),
         (135, 25, 4.9, (-0.25, 0.1)), (180, 20, 4.6, (0.3, -0.05)), (225, 15, 4.5, (-0.35, 0.05)),
         (270, 28, 5.0, (0.2, 0.0)), (315, 12, 3.0, (-0.15, -0.75))]  # the last touches the bottom


def _photos():
    ctx = moderngl.create_standalone_context()
    try:
        prog = ctx.program(vertex_shader=_VS, fragment_shader=_FS)
        bg = ctx.program(vertex_shader=_BG_VS, fragment_shader=_BG_FS)
        quad = ctx.buffer(np.array([-1, -1, 1, -1, 1, 1, -1, -1, 1, 1, -1, 1], "f4").tobytes())
        bg_vao = ctx.vertex_array(bg, [(quad, "2f", "p")])
        vaos = [ctx.vertex_array(prog, [(ctx.buffer(d.tobytes()), "3f 3f", "pos", "col")])
                for d in (_cow(), _floor())]
        fbo = ctx.framebuffer([ctx.renderbuffer((W, H), 4)], ctx.depth_renderbuffer((W, H)))
        fbo.use()
        out = []
        for az, el, dist, (dx, dy) in VIEWS:
            a, e = math.radians(az), math.radians(el)
            c = np.array([0.2, 0.55, 0.0])
            eye = c + dist * np.array([math.cos(e) * math.sin(a), math.sin(e),
                                       math.cos(e) * math.cos(a)])
            f = (c - eye) / np.linalg.norm(c - eye)
            r = np.cross(f, [0, 1, 0])
            r /= np.linalg.norm(r)
            u = np.cross(r, f)
            target = c - 0.5 * dist * (dx * r * 0.9 + dy * u * 0.7)  # the object lands off-centre
            prog["mvp"].write(_mvp(eye, target).T.tobytes())
            shots = []
            for modes in ((0, 1), (2, 3)):
                fbo.clear(0, 0, 0, 1)
                ctx.enable(moderngl.DEPTH_TEST)
                if modes[0] == 0:
                    bg_vao.render()
                for vao, mode in zip(vaos, modes, strict=True):
                    prog["mode"].value = mode
                    vao.render()
                img = np.frombuffer(fbo.read(components=3), np.uint8).reshape(H, W, 3)[::-1]
                shots.append(img.astype(np.float32) / 255)
            out.append((shots[0], shots[1][..., 0] > 0.5))
        return out
    finally:
        ctx.release()


def _iou(a, b):
    a, b = np.asarray(a) > 0.5, np.asarray(b) > 0.5
    return float((a & b).sum() / max((a | b).sum(), 1))


def _widest_false_run(mask, truth):
    """The widest run of foreground outside the true mask in any row, fraction of the width."""
    extra = (np.asarray(mask) > 0.5) & ~truth
    return max(photo._longest_run(row) for row in extra) / extra.shape[1]


@pytest.fixture(scope="module")
def shots():
    return _photos()


def test_the_photo_set_is_hard(shots):
    covers = [t.mean() for _, t in shots]
    assert all(0.03 < c < 0.4 for c in covers), covers
    assert shots[-1][1][-1].any()  # one object touches the bottom edge
    # off-centre: the object's centroid is away from the image centre in every view
    assert all(abs(np.nonzero(t)[1].mean() - W / 2) > 0.08 * W for _, t in shots[:-1])


def test_automatic_masks_match_the_true_silhouettes(shots):
    ious, runs = [], []
    for img, truth in shots:
        m = photo.auto_mask(img)
        ious.append(_iou(m, truth))
        runs.append(_widest_false_run(m, truth))
    print("per-photo IoU:", " ".join(f"{v:.3f}" for v in ious))
    print("widest false row run:", " ".join(f"{v:.2f}" for v in runs))
    assert np.mean(ious) >= 0.9, ious
    assert max(runs) <= 0.8, runs


def test_good_masks_raise_no_warning_and_implausible_ones_do(shots):
    for _, truth in shots:
        assert photo.mask_warning(truth.astype(np.float32)) is None
    m = shots[0][1].astype(np.float32).copy()
    r = int(np.nonzero(shots[0][1])[0].max()) - 3
    m[r:r + 10] = 1  # a floor strip across the frame, through the object
    assert "crosses the whole width" in photo.mask_warning(m, "p.png")
    m = np.zeros((H, W), np.float32)
    m[50:150, 50:150] = 1
    m[200:300, 300:400] = 1
    assert "2 large separate pieces" in photo.mask_warning(m, "p.png")
    m[250:300, 300:400] = 0  # now the second piece is small
    m[200:225, 300:400] = 0
    assert photo.mask_warning(m) is None
