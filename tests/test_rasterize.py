"""Coverage, visibility and depth of the rasterizer against independent ray casting."""

import math

import numpy as np
import pytest
import torch

from render_core.camera import Camera
from render_core.interpolate import interpolate
from render_core.rasterize import rasterize

BACKENDS = ["torch", "cpu"]


def pixel_ndc(h, w):
    xs = 2 * (np.arange(w) + 0.5) / w - 1
    ys = 1 - 2 * (np.arange(h) + 0.5) / h
    return np.meshgrid(xs, ys)  # X[i, j], Y[i, j]


def edge_distance(px, py, tri):
    """Distance of points to the nearest edge of a 2D triangle (numpy)."""
    d = np.full(px.shape, np.inf)
    for k in range(3):
        a, b = tri[k], tri[(k + 1) % 3]
        ab = b - a
        t = np.clip(((px - a[0]) * ab[0] + (py - a[1]) * ab[1]) / (ab @ ab), 0, 1)
        qx, qy = a[0] + t * ab[0], a[1] + t * ab[1]
        d = np.minimum(d, np.hypot(px - qx, py - qy))
    return d


def inside_2d(px, py, tri):
    def cross(ax, ay, bx, by):
        return ax * by - ay * bx

    e = [
        cross(tri[(k + 1) % 3, 0] - tri[k, 0], tri[(k + 1) % 3, 1] - tri[k, 1],
              px - tri[k, 0], py - tri[k, 1])
        for k in range(3)
    ]
    return ((e[0] > 0) & (e[1] > 0) & (e[2] > 0)) | ((e[0] < 0) & (e[1] < 0) & (e[2] < 0))


@pytest.mark.parametrize("backend", BACKENDS)
def test_single_triangle_coverage_matches_point_in_triangle(backend):
    rng = np.random.default_rng(1)
    h, w = 48, 64
    px, py = pixel_ndc(h, w)
    checked = 0
    for _ in range(30):
        while True:
            tri = rng.uniform(-1.1, 1.1, (3, 2))
            e1, e2 = tri[1] - tri[0], tri[2] - tri[0]
            area = 0.5 * abs(e1[0] * e2[1] - e1[1] * e2[0])
            if area > 0.05:
                break
        wv = rng.uniform(0.5, 3.0, 3)
        z = rng.uniform(-0.5, 0.5, 3)
        clip = np.concatenate([tri * wv[:, None], (z * wv)[:, None], wv[:, None]], 1)
        frags = rasterize(torch.tensor(clip[None], dtype=torch.float32), torch.tensor([[0, 1, 2]]),
                          (h, w), backend=backend)
        expect = inside_2d(px, py, tri)
        sure = edge_distance(px, py, tri) > 1e-4
        got = frags.face_idx[0].numpy() == 0
        assert np.array_equal(got[sure], expect[sure])
        checked += expect.sum()
    assert checked > 1000


def cast_rays(cam: Camera, verts: np.ndarray, faces: np.ndarray, h: int, w: int):
    """Independent reference: nearest ray/triangle hit per pixel in world space.

    Returns (face index or -1, camera-space depth -z of the hit, distance in NDC to the
    nearest projected edge of the hit face, gap to the second-nearest hit).
    """
    view = cam.view[0].double().numpy()
    rot, eye = view[:3, :3], cam.eye[0].double().numpy()
    t = math.tan(math.radians(float(cam.fov[0])) / 2)
    aspect = float(cam.aspect[0])
    px, py = pixel_ndc(h, w)
    d_cam = np.stack([px * t * aspect, py * t, -np.ones_like(px)], -1)
    d_world = d_cam @ rot  # rot^T applied to row vectors
    tri = verts[faces]  # [F,3,3]
    o = eye
    e1 = tri[:, 1] - tri[:, 0]
    e2 = tri[:, 2] - tri[:, 0]
    best = np.full((h, w), -1)
    best_t = np.full((h, w), np.inf)
    second_t = np.full((h, w), np.inf)
    for f in range(len(faces)):
        pvec = np.cross(d_world, e2[f])
        det = pvec @ e1[f]
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / det
            s = o - tri[f, 0]
            u = (pvec @ s) * inv
            q = np.cross(s, e1[f])
            v = (d_world @ q) * inv
            tt = (q @ e2[f]) * inv
        hit = (u >= 0) & (v >= 0) & (u + v <= 1) & (tt > 0) & np.isfinite(tt)
        closer = hit & (tt < best_t)
        second_t = np.where(closer, best_t, np.where(hit, np.minimum(second_t, tt), second_t))
        best_t = np.where(closer, tt, best_t)
        best = np.where(closer, f, best)
    depth = best_t  # d_cam has z = -1, so the ray parameter is the camera-space depth
    with np.errstate(invalid="ignore"):
        gap = second_t - best_t  # inf - inf on background: NaN, never trusted
    return best, depth, np.nan_to_num(gap, nan=np.inf)


def projected_edge_distance(cam, verts, faces, face_idx, h, w):
    clip = cam.to_clip(torch.tensor(verts, dtype=torch.float64)).numpy()[0]
    ndc = clip[:, :2] / clip[:, 3:]
    px, py = pixel_ndc(h, w)
    out = np.full((h, w), np.inf)
    for f in np.unique(face_idx[face_idx >= 0]):
        m = face_idx == f
        out[m] = edge_distance(px[m], py[m], ndc[faces[f]])
    return out


def random_scene(seed, n=12):
    rng = np.random.default_rng(seed)
    verts, faces = [], []
    for k in range(n):
        c = rng.uniform(-1, 1, 3)
        tri = c + rng.normal(0, 0.6, (3, 3))
        verts.append(tri)
        faces.append([3 * k, 3 * k + 1, 3 * k + 2])
    return np.concatenate(verts), np.array(faces)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("near", [0.5, 2.0])  # with near=2 NDC depths take both signs
def test_overlapping_triangles_resolve_to_nearest_under_perspective(backend, seed, near):
    verts, faces = random_scene(seed)
    h, w = 40, 56
    cam = Camera.look_at((0.4, 0.3, 4.0), fov=50.0, aspect=w / h, near=near, far=20.0)
    cam = cam.to(dtype=torch.float64)
    ref, ref_depth, gap = cast_rays(cam, verts, faces, h, w)
    clip = cam.to_clip(torch.tensor(verts))
    frags = rasterize(clip.float(), torch.tensor(faces), (h, w), backend=backend)
    got = frags.face_idx[0].numpy()
    edge = np.minimum(
        projected_edge_distance(cam, verts, faces, ref, h, w),
        projected_edge_distance(cam, verts, faces, got, h, w),
    )
    sure = (edge > 1e-4) & (gap > 1e-4)
    assert (ref >= 0).sum() > 200
    assert (np.where(sure, got, 0) != np.where(sure, ref, 0)).sum() == 0
    # Interpolating camera-space depth with the barycentrics gives the hit depth.
    cam_z = -cam.to_view(torch.tensor(verts))[0, :, 2:]
    frags64 = rasterize(clip, torch.tensor(faces), (h, w), backend=backend)
    depth = interpolate(cam_z, frags64, torch.tensor(faces))[0, ..., 0].numpy()
    fg = (ref >= 0) & sure
    np.testing.assert_allclose(depth[fg], ref_depth[fg], atol=1e-4, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_mesh_coverage_and_depth(backend):
    import trimesh

    m = trimesh.creation.icosphere(subdivisions=2, radius=1.0)
    verts = np.asarray(m.vertices) * np.array([1.0, 0.7, 1.2])
    faces = np.asarray(m.faces)
    h = w = 48
    cam = Camera.orbit(35.0, 25.0, 3.5, fov=55.0).to(dtype=torch.float64)
    ref, ref_depth, gap = cast_rays(cam, verts, faces, h, w)
    clip = cam.to_clip(torch.tensor(verts))
    frags = rasterize(clip, torch.tensor(faces), (h, w), backend=backend)
    got = frags.face_idx[0].numpy()
    edge = np.minimum(
        projected_edge_distance(cam, verts, faces, ref, h, w),
        projected_edge_distance(cam, verts, faces, got, h, w),
    )
    sure = edge > 1e-4
    assert np.array_equal(got[sure], ref[sure])
    cam_z = -cam.to_view(torch.tensor(verts))[0, :, 2:]
    depth = interpolate(cam_z, frags, torch.tensor(faces))[0, ..., 0].numpy()
    fg = (ref >= 0) & sure
    np.testing.assert_allclose(depth[fg], ref_depth[fg], atol=1e-4, rtol=0)
    # NDC depth is the projection of that camera-space depth.
    n, f = float(cam.near[0]), float(cam.far[0])
    zn = (f + n) / (f - n) - 2 * f * n / ((f - n) * depth[fg])
    np.testing.assert_allclose(frags.depth[0].numpy()[fg], zn, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bary_sum_to_one_and_background(backend):
    verts, faces = random_scene(5)
    cam = Camera.look_at((0.0, 0.0, 4.0))
    frags = rasterize(cam.to_clip(torch.tensor(verts, dtype=torch.float32)),
                      torch.tensor(faces), 32, backend=backend)
    fg = frags.face_idx >= 0
    assert fg.any() and (~fg).any()
    s = frags.bary.sum(-1)
    assert torch.allclose(s[fg], torch.ones_like(s[fg]), atol=1e-5)
    assert (frags.bary[~fg] == 0).all()
    assert (frags.depth[~fg] == 1).all()
    assert (frags.bary >= 0).all() and (frags.bary <= 1).all()


def test_pixel_center_convention():
    # A triangle covering exactly the left half of a 4x4 image's top-left pixel centre set.
    h = w = 4
    # Pixel (0,0) centre: x=-0.75, y=0.75. A tiny triangle around it covers only that pixel.
    tri = torch.tensor([[[-0.8, 0.7, 0, 1], [-0.7, 0.7, 0, 1], [-0.75, 0.8, 0, 1]]])
    frags = rasterize(tri, torch.tensor([[0, 1, 2]]), (h, w), backend="torch")
    assert frags.face_idx[0, 0, 0] == 0
    assert (frags.face_idx >= 0).sum() == 1
