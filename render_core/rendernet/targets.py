"""Ground-truth style images, rendered with render_core's own rasterizer.

The camera is the orthographic orbit camera that matches the network's resampling exactly
(see :mod:`render_core.rendernet.pose`): ``Camera.orbit(az, el, 3, ortho_height=1/scale)``.
Per view we rasterize once and derive light-independent G-buffer maps (mask, camera-space
normals, contour, ambient occlusion); the lit styles (Phong, toon) are cheap functions of the
normals and a light direction, so training can draw a fresh light for every sample.

Definitions (all images [H,W] float in [0,1], background 0):

- Phong: ``0.1 + 0.9·max(0, n·l)`` (+ ``ks·max(0, r·v)^shininess`` when ``ks > 0``) on the
  object, n the interpolated (crease-split) vertex normal, v = +z (orthographic view).
- contour: line mask of silhouette ∪ depth jumps (> ``DEPTH_JUMP`` world units between
  4-neighbours) ∪ creases (face normals of 4-neighbours more than ``CREASE_DEG`` apart).
  Both pixels of every offending neighbour pair are marked, so lines are 2 px wide at 128².
- toon: ``bands(max(0, n·l)) · (1 − contour)``, bands quantise to {0.2, 0.5, 0.8, 1.0}
  at thresholds 0.15, 0.5, 0.85 — on the object only.
- AO: fraction of ``AO_RAYS`` cosine-weighted (stratified) hemisphere rays around the face
  normal that travel ``AO_DIST`` without hitting the mesh (Embree through trimesh), then an
  edge-aware 5×5 blur (same-surface neighbours only) so the image is not noisy.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
import trimesh

from ..camera import Camera
from ..interpolate import interpolate
from ..rasterize import rasterize

CREASE_DEG = 50.0
DEPTH_JUMP = 0.1
AO_RAYS = 48
AO_DIST = 0.6
TOON_THRESH = (0.15, 0.5, 0.85)
TOON_LEVELS = (0.2, 0.5, 0.8, 1.0)
STYLES = ("phong", "contour", "toon", "ao")


def camera_for_pose(az: float, el: float, scale: float) -> Camera:
    """The orthographic orbit camera whose image is the network's output for this pose."""
    return Camera.orbit(az, el, 3.0, ortho_height=1.0 / scale, near=0.5, far=5.5)


def gbuffer(mesh: trimesh.Trimesh, az: float, el: float, scale: float, res: int = 128) -> dict:
    """Rasterize ``mesh`` and return per-pixel maps (numpy):

    mask [H,W] bool, normal [H,W,3] camera-frame shading normal, fnormal [H,W,3] camera-frame
    face normal, depth [H,W] camera-space distance along the view ray, pos [H,W,3] world
    position, face [H,W] int face index (-1 background).
    """
    sm = mesh.smooth_shaded  # vertices split at creases: smooth normals on curved parts only
    cam = camera_for_pose(az, el, scale)
    v = torch.as_tensor(np.asarray(sm.vertices), dtype=torch.float32)
    f = torch.as_tensor(np.asarray(sm.faces), dtype=torch.int64)
    with torch.no_grad():
        frags = rasterize(cam.to_clip(v), f, res, backend="torch")
        rot = cam.view[0, :3, :3]
        vn = torch.tensor(np.array(sm.vertex_normals), dtype=torch.float32)
        n = F.normalize(interpolate(vn @ rot.T, frags, f)[0], dim=-1)
        pos = interpolate(v, frags, f)[0]
        vcam = v @ rot.T + cam.view[0, :3, 3]
        depth = -interpolate(vcam[:, 2:3], frags, f)[0, ..., 0]
    face = frags.face_idx[0].numpy()
    mask = face >= 0
    fn_world = np.asarray(sm.face_normals, dtype=np.float32)
    fn = fn_world[face.clip(0)] @ rot.numpy().T
    return {
        "mask": mask,
        "normal": np.where(mask[..., None], n.numpy(), 0.0).astype(np.float32),
        "fnormal": np.where(mask[..., None], fn, 0.0).astype(np.float32),
        "depth": np.where(mask, depth.numpy(), 0.0).astype(np.float32),
        "pos": pos.numpy().astype(np.float32),
        "face": face,
        "fnormal_world": np.where(mask[..., None], fn_world[face.clip(0)], 0.0),
        "mesh": sm,
    }


def contour(g: dict, crease_deg: float = CREASE_DEG, depth_jump: float = DEPTH_JUMP) -> np.ndarray:
    """Line mask [H,W] float32: silhouette ∪ depth jumps ∪ creases, 2 px wide (both sides)."""
    m, d, fn = g["mask"], g["depth"], g["fnormal"]
    cos_t = np.cos(np.deg2rad(crease_deg))
    line = np.zeros_like(m)
    for axis in (0, 1):
        a = [slice(None)] * 2
        b = [slice(None)] * 2
        a[axis], b[axis] = slice(0, -1), slice(1, None)
        a, b = tuple(a), tuple(b)
        both = m[a] & m[b]
        edge = m[a] != m[b]
        edge |= both & (np.abs(d[a] - d[b]) > depth_jump)
        edge |= both & ((fn[a] * fn[b]).sum(-1) < cos_t)
        line[a] |= edge
        line[b] |= edge
    return line.astype(np.float32)


def _masked_blur(img: np.ndarray, g: dict, k: int = 5) -> np.ndarray:
    """Average over the k×k neighbours on the same surface (similar normal, close depth)."""
    m, fn, d = g["mask"], g["fnormal"], g["depth"]
    r = k // 2
    pad = lambda x, v=0: np.pad(x, [(r, r), (r, r)] + [(0, 0)] * (x.ndim - 2),  # noqa: E731
                                constant_values=v)
    ip, mp, fp, dp = pad(img), pad(m, False), pad(fn), pad(d)
    h, w = img.shape
    acc = np.zeros_like(img)
    cnt = np.zeros_like(img)
    for dy in range(k):
        for dx in range(k):
            sl = (slice(dy, dy + h), slice(dx, dx + w))
            ok = mp[sl] & ((fp[sl] * fn).sum(-1) > 0.9) & (np.abs(dp[sl] - d) < 0.05)
            acc += np.where(ok, ip[sl], 0.0)
            cnt += ok
    return np.where(m, acc / np.maximum(cnt, 1), 0.0).astype(np.float32)


def ambient_occlusion(g: dict, n_rays: int = AO_RAYS, max_dist: float = AO_DIST,
                      seed: int = 0) -> np.ndarray:
    """Ambient occlusion [H,W] float32 in [0,1] (1 = fully open), 0 on background."""
    m = g["mask"]
    mesh: trimesh.Trimesh = g["mesh"]
    idx = np.flatnonzero(m)
    out = np.zeros(m.size, dtype=np.float32)
    if idx.size == 0:
        return out.reshape(m.shape)
    p = g["pos"].reshape(-1, 3)[idx].astype(np.float64)
    n = g["fnormal_world"].reshape(-1, 3)[idx].astype(np.float64)
    rng = np.random.default_rng(seed)
    # stratified cosine-weighted directions (a sqrt(N)xsqrt(N) jittered grid on the disk),
    # rotated per pixel by a random angle so the residual pattern is noise, not banding
    s = int(np.ceil(np.sqrt(n_rays)))
    u1 = (np.arange(s)[:, None] + rng.random((idx.size, s, s))) / s
    u2 = (np.arange(s)[None, :] + rng.random((idx.size, s, s))) / s
    u1, u2 = u1.reshape(idx.size, -1)[:, :n_rays], u2.reshape(idx.size, -1)[:, :n_rays]
    rr, phi = np.sqrt(u1), 2 * np.pi * u2 + rng.random((idx.size, 1)) * 2 * np.pi
    local = np.stack([rr * np.cos(phi), rr * np.sin(phi), np.sqrt(np.clip(1 - u1, 0, 1))], -1)
    # orthonormal frame around n
    a = np.where(np.abs(n[:, :1]) > 0.9, [[0.0, 1.0, 0.0]], [[1.0, 0.0, 0.0]])
    t = np.cross(n, a)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    b = np.cross(n, t)
    dirs = local[..., :1] * t[:, None] + local[..., 1:2] * b[:, None] + local[..., 2:] * n[:, None]
    origins = np.repeat(p + 2e-3 * n, n_rays, axis=0)
    dirs = dirs.reshape(-1, 3)
    try:
        from trimesh.ray.ray_pyembree import RayMeshIntersector

        ray = RayMeshIntersector(mesh)
    except Exception:
        ray = trimesh.ray.ray_triangle.RayMeshIntersector(mesh)
    locs, ridx, _ = ray.intersects_location(origins, dirs, multiple_hits=False)
    hit = np.zeros(len(origins), dtype=bool)
    if len(ridx):
        dist = np.linalg.norm(locs - origins[ridx], axis=1)
        hit[ridx[dist < max_dist]] = True
    out[idx] = 1.0 - hit.reshape(idx.size, n_rays).mean(1)
    return _masked_blur(out.reshape(m.shape), g)


def phong(normal: torch.Tensor, mask: torch.Tensor, light: torch.Tensor, ks: float = 0.0,
          shininess: float = 16.0) -> torch.Tensor:
    """Phong image [...,H,W] from camera-frame normals [...,H,W,3], mask [...,H,W] and a
    camera-frame light direction [...,3] (towards the light). Differentiable in all inputs."""
    l_ = F.normalize(light, dim=-1)[..., None, None, :]
    ndl = (normal * l_).sum(-1)
    img = 0.1 + 0.9 * ndl.clamp(min=0)
    if ks > 0:
        r = 2 * ndl[..., None] * normal - l_
        img = img + ks * r[..., 2].clamp(min=0) ** shininess * (ndl > 0)
    return (img * mask).clamp(0, 1)


def toon(normal: torch.Tensor, mask: torch.Tensor, line: torch.Tensor,
         light: torch.Tensor) -> torch.Tensor:
    """Toon image [...,H,W]: quantised n·l bands times (1 − contour), object only."""
    l_ = F.normalize(light, dim=-1)[..., None, None, :]
    ndl = (normal * l_).sum(-1).clamp(min=0)
    band = torch.full_like(ndl, TOON_LEVELS[0])
    for t, lv in zip(TOON_THRESH, TOON_LEVELS[1:], strict=True):
        band = torch.where(ndl > t, torch.full_like(ndl, lv), band)
    return band * mask * (1 - line)


def render_view(mesh: trimesh.Trimesh, az: float, el: float, scale: float, res: int = 128,
                seed: int = 0) -> dict[str, np.ndarray]:
    """All light-independent maps of one view: mask, normal (float16-safe), contour, ao."""
    g = gbuffer(mesh, az, el, scale, res)
    return {
        "mask": g["mask"].astype(np.uint8),
        "normal": g["normal"],
        "contour": contour(g).astype(np.uint8),
        "ao": ambient_occlusion(g, seed=seed),
    }
