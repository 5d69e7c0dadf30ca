"""A synthetic photo set from an independent renderer (moderngl, offscreen), with true cameras.

A textured blob placed off the origin inside a textured room, photographed by ``n`` cameras that
are not on an orbit (azimuth, height and distance vary, each camera rolls a few degrees and aims
a little off the object), through one lens with an off-centre principal point and barrel
distortion (COLMAP's RADIAL model: f, cx, cy, k1, k2).

Each photo is rendered as an undistorted pinhole image at ``SUPERSAMPLE`` times the photo's
resolution, wide enough to cover the lens's field of view, then warped into the distorted photo
by inverse mapping: every photo pixel centre is undistorted (Newton's method on the radial
polynomial, written here, not taken from render_core) and the render is sampled bilinearly
there. The true object mask goes through the same warp and is thresholded at one half.

:meth:`PhotoSet.save` writes the photos, the masks and the true cameras in three formats: a
COLMAP text model (render_core.camera_io), a COLMAP binary model (pycolmap's own writer) and a
transforms.json (render_core.camera_io).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import trimesh

from render_core.camera_io import CameraRecord, write_colmap_text, write_transforms

SUPERSAMPLE = 2
OBJECT_CENTRE = np.array([0.7, 0.35, -0.45])
ROOM = (np.array([-5.0, -0.9, -5.5]), np.array([5.5, 4.5, 5.0]))
K1, K2 = -0.12, 0.03

_VS = """
#version 330
uniform mat4 mvp;
in vec3 pos;
in vec3 nrm;
out vec3 v_pos;
out vec3 v_nrm;
void main() { v_pos = pos; v_nrm = nrm; gl_Position = mvp * vec4(pos, 1.0); }
"""
_FS = """
#version 330
uniform int mode;  // 0 object, 1 room, 2 flat white
in vec3 v_pos;
in vec3 v_nrm;
out vec4 f;
float hash(vec3 p) {
    p = fract(p * 0.3183099 + vec3(0.71, 0.113, 0.419));
    p *= 17.0;
    return fract(p.x * p.y * p.z * (p.x + p.y + p.z));
}
float noise(vec3 x) {
    vec3 i = floor(x);
    vec3 g = fract(x);
    g = g * g * (3.0 - 2.0 * g);
    return mix(mix(mix(hash(i), hash(i + vec3(1, 0, 0)), g.x),
                   mix(hash(i + vec3(0, 1, 0)), hash(i + vec3(1, 1, 0)), g.x), g.y),
               mix(mix(hash(i + vec3(0, 0, 1)), hash(i + vec3(1, 0, 1)), g.x),
                   mix(hash(i + vec3(0, 1, 1)), hash(i + vec3(1, 1, 1)), g.x), g.y), g.z);
}
float fbm(vec3 p) {
    float s = 0.0, a = 0.5;
    for (int k = 0; k < 5; k++) { s += a * noise(p); p = p * 2.03 + vec3(1.7, 9.2, 3.1); a *= 0.5; }
    return s;
}
vec3 cell(vec3 p) {
    vec3 i = floor(p);
    return vec3(hash(i), hash(i + vec3(17.1, 3.3, 5.7)), hash(i + vec3(31.7, 11.1, 2.9)));
}
void main() {
    if (mode == 2) { f = vec4(1.0); return; }
    float scale = mode == 0 ? 7.0 : 1.6;
    vec3 c = cell(v_pos * scale) * 0.75 + 0.1;
    float n = fbm(v_pos * scale * 2.5);
    c = mix(c, vec3(n), 0.45);
    if (fract(n * 6.0) < 0.12) c *= 0.35;  // dark contour lines: corners for SIFT
    if (mode == 0) {
        float lam = max(dot(normalize(v_nrm), normalize(vec3(0.4, 0.8, 0.45))), 0.0);
        c *= 0.55 + 0.45 * lam;
    }
    f = vec4(clamp(c, 0.0, 1.0), 1.0);
}
"""


def blob_mesh() -> tuple[np.ndarray, np.ndarray]:
    """The object: a bumpy, squashed icosphere around OBJECT_CENTRE; (verts [V,3] float64,
    faces [F,3] int64, counter-clockwise seen from outside)."""
    sphere = trimesh.creation.icosphere(subdivisions=4)
    v = np.asarray(sphere.vertices, dtype=np.float64)
    x, y, z = v.T
    r = 1 + 0.12 * np.sin(3 * x + 1) * np.sin(2 * y + 0.5) + 0.08 * np.cos(4 * z - 1) * x
    v = v * r[:, None] * np.array([0.62, 0.45, 0.5]) + OBJECT_CENTRE
    return v, np.asarray(sphere.faces, dtype=np.int64)


def _room() -> np.ndarray:
    """Triangles of the room box [36,3] (seen from inside; no culling is used)."""
    lo, hi = ROOM
    c = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], float)
    v = lo + c * (hi - lo)
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    tris = [v[[a, b, cc]] for a, b, cc, _ in quads] + [v[[a, cc, d]] for a, _, cc, d in quads]
    return np.concatenate(tris)


def _rot(axis: np.ndarray, deg: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    a = math.radians(deg)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(a) * k + (1 - math.cos(a)) * k @ k


def true_cameras(n: int, width: int, height: int, seed: int) -> list[CameraRecord]:
    """``n`` RADIAL cameras (one shared lens) looking roughly at the object, not on an orbit."""
    rng = np.random.default_rng(seed)
    f = 0.95 * width
    cx, cy = width * 0.5 + 0.06 * width, height * 0.5 - 0.05 * height
    params = (f, cx, cy, K1, K2)
    out = []
    for k in range(n):
        az = math.radians(360.0 * k / n + rng.uniform(-5, 5))
        el = math.radians(rng.uniform(8, 40))
        dist = rng.uniform(2.3, 3.4)
        eye = OBJECT_CENTRE + dist * np.array([math.cos(el) * math.sin(az), math.sin(el),
                                               math.cos(el) * math.cos(az)])
        at = OBJECT_CENTRE + rng.uniform(-0.15, 0.15, 3)
        fwd = (at - eye) / np.linalg.norm(at - eye)
        s = np.cross(fwd, [0.0, 1.0, 0.0])
        s /= np.linalg.norm(s)
        u = np.cross(s, fwd)
        r = np.stack([s, u, -fwd])  # OpenGL camera axes in world coordinates (rows)
        r = _rot(np.array([0.0, 0.0, 1.0]), rng.uniform(-4, 4)) @ r  # roll about the view axis
        out.append(CameraRecord(f"photo_{k:02d}.png", width, height, "RADIAL", params, r,
                                -r @ eye, camera_id=1, image_id=k + 1))
    return out


def _undistort_r(rd: np.ndarray) -> np.ndarray:
    """Solve rd = r (1 + K1 r² + K2 r⁴) for r (Newton, float64)."""
    r = rd.copy()
    for _ in range(30):
        r2 = r * r
        g = r * (1 + K1 * r2 + K2 * r2 * r2) - rd
        dg = 1 + 3 * K1 * r2 + 5 * K2 * r2 * r2
        r = r - g / dg
    return r


def _warp_grid(rec: CameraRecord):
    """For every photo pixel centre: the undistorted normalized coordinates (x, y) [H,W]."""
    f, cx, cy = rec.params[:3]
    u = np.arange(rec.width) + 0.5
    v = np.arange(rec.height) + 0.5
    xd, yd = np.meshgrid((u - cx) / f, (v - cy) / f)
    rd = np.hypot(xd, yd)
    scale = np.where(rd > 0, _undistort_r(rd) / np.maximum(rd, 1e-300), 1.0)
    return xd * scale, yd * scale


def _gl_projection(fx, fy, cx, cy, w, h, near=0.05, far=50.0) -> np.ndarray:
    p = np.zeros((4, 4))
    p[0, 0], p[0, 2] = 2 * fx / w, 1 - 2 * cx / w
    p[1, 1], p[1, 2] = 2 * fy / h, 2 * cy / h - 1
    p[2, 2], p[2, 3] = (far + near) / (near - far), 2 * far * near / (near - far)
    p[3, 2] = -1
    return p


@dataclass
class PhotoSet:
    """``images``: n uint8 [H,W,3] distorted photos; ``masks``: n bool [H,W] true object masks
    (of the distorted photos); ``records``: the true cameras (RADIAL, OpenGL axes);
    ``verts`` [V,3] float64 and ``faces`` [F,3] int64: the object mesh; ``radius``: the scene
    radius, the RMS distance of the camera centres from their centroid."""

    images: list[np.ndarray]
    masks: list[np.ndarray]
    records: list[CameraRecord]
    verts: np.ndarray
    faces: np.ndarray

    @property
    def radius(self) -> float:
        c = np.array([r.center for r in self.records])
        return float(np.sqrt(((c - c.mean(0)) ** 2).sum(1).mean()))

    def save_photos(self, folder: Path, mask_folder: Path | None = None,
                    which: range | None = None) -> list[Path]:
        """Write the photos (``which``: their indices, default all) as ``photo_NN.png`` into
        ``folder`` and, with ``mask_folder``, their masks under the same names there."""
        from PIL import Image

        paths = []
        for k in which if which is not None else range(len(self.records)):
            name = self.records[k].image
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(self.images[k]).save(folder / name)
            if mask_folder is not None:
                mask_folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(self.masks[k].astype(np.uint8) * 255).save(mask_folder / name)
            paths.append(folder / name)
        return paths

    def write_colmap_text(self, folder: Path) -> None:
        write_colmap_text(folder, self.records)

    def write_colmap_binary(self, folder: Path) -> None:
        """The true cameras as a COLMAP binary model written by pycolmap itself."""
        import pycolmap

        folder.mkdir(parents=True, exist_ok=True)
        rec0 = self.records[0]
        recon = pycolmap.Reconstruction()
        cam = pycolmap.Camera(model="RADIAL", width=rec0.width, height=rec0.height,
                              params=list(rec0.params), camera_id=1)
        recon.add_camera_with_trivial_rig(cam)
        flip = np.array([1.0, -1.0, -1.0])
        for r in self.records:
            pose = pycolmap.Rigid3d(np.concatenate([r.R * flip[:, None],
                                                    (r.t * flip)[:, None]], 1))
            image = pycolmap.Image(name=r.image, camera_id=1, image_id=r.image_id)
            recon.add_image_with_trivial_frame(image, pose)
        recon.write_binary(str(folder))

    def write_transforms(self, path: Path) -> None:
        write_transforms(path, self.records)


def render_photoset(n: int = 24, width: int = 320, height: int = 240, seed: int = 0) -> PhotoSet:
    """Render the photo set (see the module docstring); deterministic for a given seed."""
    import moderngl

    records = true_cameras(n, width, height, seed)
    verts, faces = blob_mesh()
    mesh = trimesh.Trimesh(verts, faces, process=False)
    obj = np.concatenate([verts[faces].reshape(-1, 3),
                          np.asarray(mesh.vertex_normals)[faces].reshape(-1, 3)], 1)
    room = _room()
    room = np.concatenate([room, np.zeros_like(room)], 1)
    ss = SUPERSAMPLE
    try:
        ctx = moderngl.create_standalone_context()
    except Exception:  # no X display: EGL works headless with Mesa
        ctx = moderngl.create_standalone_context(backend="egl")
    images, masks = [], []
    try:
        prog = ctx.program(vertex_shader=_VS, fragment_shader=_FS)
        vaos = [ctx.vertex_array(prog, [(ctx.buffer(d.astype("f4").tobytes()), "3f 3f",
                                         "pos", "nrm")]) for d in (obj, room)]
        for rec in records:
            x, y = _warp_grid(rec)
            f = rec.params[0] * ss
            lo_x, hi_x, lo_y, hi_y = x.min(), x.max(), y.min(), y.max()
            wr = int(math.ceil((hi_x - lo_x) * f)) + 8
            hr = int(math.ceil((hi_y - lo_y) * f)) + 8
            cxr, cyr = -lo_x * f + 4, -lo_y * f + 4
            fbo = ctx.framebuffer([ctx.renderbuffer((wr, hr), 4)], ctx.depth_renderbuffer((wr, hr)))
            fbo.use()
            view = np.eye(4)
            view[:3, :3], view[:3, 3] = rec.R, rec.t
            mvp = _gl_projection(f, f, cxr, cyr, wr, hr) @ view
            prog["mvp"].write(mvp.T.astype("f4").tobytes())
            shots = []
            for modes in ((0, 1), (2,)):
                fbo.clear(0, 0, 0, 1)
                ctx.enable(moderngl.DEPTH_TEST)
                for vao, mode in zip(vaos, modes, strict=False):
                    prog["mode"].value = mode
                    vao.render()
                img = np.frombuffer(fbo.read(components=3), np.uint8).reshape(hr, wr, 3)[::-1]
                shots.append(torch.from_numpy(img.astype(np.float32) / 255).permute(2, 0, 1))
            fbo.release()
            # sample the pinhole render at every photo pixel's undistorted position
            ur, vr = f * x + cxr, f * y + cyr
            grid = torch.from_numpy(np.stack([ur / wr * 2 - 1, vr / hr * 2 - 1], -1)).float()
            both = torch.stack([shots[0], shots[1][:1].expand(3, -1, -1)])
            out = F.grid_sample(both, grid[None].expand(2, -1, -1, -1), "bilinear", "border",
                                align_corners=False)
            images.append((out[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
            masks.append(out[1, 0].numpy() >= 0.5)
    finally:
        ctx.release()
    return PhotoSet(images, masks, records, verts, faces)


@functools.lru_cache(maxsize=2)
def cached_photoset(n: int = 24, width: int = 320, height: int = 240, seed: int = 0) -> PhotoSet:
    """:func:`render_photoset`, rendered once per test session (treat it as read-only)."""
    return render_photoset(n, width, height, seed)
