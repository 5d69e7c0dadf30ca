"""visual_hull: pixel convention, exact carve, surface topology and accuracy, bad input.

Oracles: the design.md pixel-centre formula and the hard rasterizer; a brute-force numpy carve
written here; the analytic visual hull of a sphere (the intersection of its silhouette cones);
trimesh's own watertightness, winding and Euler characteristic.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh

from render_core import _carve
from render_core.camera import Camera
from render_core.primitives import icosphere
from render_core.rasterize import rasterize
from render_core.visual_hull import VisualHullError, carve_voxels, default_bounds, visual_hull

RES = 64
DIST = 2.7
FOV = 50.0
AXES = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float)


def axis_cameras() -> Camera:
    """Six cameras on the ±X, ±Y, ±Z axes looking at the origin."""
    ups = np.array([[0, 1, 0]] * 2 + [[0, 0, -1], [0, 0, 1]] + [[0, 1, 0]] * 2, float)
    return Camera.look_at(torch.tensor(AXES * DIST), (0.0, 0.0, 0.0), torch.tensor(ups), fov=FOV)


def masks_of(vertices, faces, cams: Camera, res=RES) -> torch.Tensor:
    v = torch.as_tensor(np.asarray(vertices), dtype=torch.float32)
    f = torch.as_tensor(np.asarray(faces), dtype=torch.int64)
    return rasterize(cams.to_clip(v), f, (res, res)).face_idx >= 0


def hull_trimesh(mesh) -> trimesh.Trimesh:
    return trimesh.Trimesh(mesh.vertices.numpy(), mesh.faces.numpy(), process=False)


def assert_clean_closed(tm: trimesh.Trimesh):
    assert tm.is_watertight
    assert tm.is_winding_consistent
    assert tm.volume > 0  # outward (counter-clockwise seen from outside)
    assert float(tm.area_faces.min()) > 0
    edges = np.sort(tm.edges, 1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert (counts == 2).all()  # 2-manifold: every edge in exactly two faces


# ---------------------------------------------------------------- projection convention


def test_point_lands_on_the_design_pixel():
    """A point built from design.md's pixel-centre formula falls in that pixel, in the carve's
    look-up and in the rasterizer's image."""
    h, w, row, col = 8, 12, 2, 9
    cam = Camera.look_at((0.0, 0.0, 3.0), fov=90.0, aspect=w / h)
    x_ndc, y_ndc = 2 * (col + 0.5) / w - 1, 1 - 2 * (row + 0.5) / h
    depth = 3.0  # the origin plane; tan(45°) = 1
    p = torch.tensor([[x_ndc * depth * (w / h), y_ndc * depth, 0.0]], dtype=torch.float64)
    u, v = _carve.pixel_coords(cam.to(dtype=torch.float64).to_clip(p)[0], h, w)
    assert abs(float(u[0]) - (col + 0.5)) < 1e-5 and abs(float(v[0]) - (row + 0.5)) < 1e-5
    mask = torch.zeros(h, w, dtype=torch.bool)
    mask[row, col] = True
    tables = _carve.ViewTables([mask], cam.full_matrix.double(), cam.view[:, 2, :].double())
    assert int(tables.classify_points(p, 0)[0]) == _carve.INSIDE
    shifted = torch.zeros_like(mask)
    shifted[row, col - 1] = True
    tables = _carve.ViewTables([shifted], cam.full_matrix.double(), cam.view[:, 2, :].double())
    assert int(tables.classify_points(p, 0)[0]) == _carve.OUTSIDE
    # The rasterizer paints the same pixel for a tiny triangle around the point.
    s = 0.02
    tri = p.float() + torch.tensor([[-s, -s, 0.0], [s, -s, 0.0], [0.0, s, 0.0]])
    frag = rasterize(cam.to_clip(tri), torch.tensor([[0, 1, 2]]), (h, w))
    assert torch.equal(frag.face_idx[0] >= 0, mask)
    # Behind the camera: unseen.
    behind = torch.tensor([[0.0, 0.0, 5.0]], dtype=torch.float64)
    assert int(tables.classify_points(behind, 0)[0]) == _carve.UNSEEN


# ---------------------------------------------------------------- exact carve


def brute_force_carve(masks, cams: Camera, lo, voxel, dims, max_misses):
    """Every voxel centre in every view, plain numpy."""
    m = cams.full_matrix.double().numpy()
    axes = [lo[a] + (np.arange(dims[a]) + 0.5) * voxel for a in range(3)]
    pts = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    hom = np.concatenate([pts, np.ones((len(pts), 1))], 1)
    misses = np.zeros(len(pts), int)
    seen = np.zeros(len(pts), bool)
    for k, mask in enumerate(masks):
        mask = np.asarray(mask)
        h, w = mask.shape
        clip = hom @ m[k].T
        zcam = hom @ cams.view[k, 2].double().numpy()
        ok = (clip[:, 3] > 1e-9) & (zcam < 0)
        wsafe = np.where(ok, clip[:, 3], 1.0)
        j = np.floor((clip[:, 0] / wsafe + 1) * w / 2).astype(int)
        i = np.floor((1 - clip[:, 1] / wsafe) * h / 2).astype(int)
        ok &= (i >= 0) & (i < h) & (j >= 0) & (j < w)
        inside = np.zeros(len(pts), bool)
        inside[ok] = mask[i[ok], j[ok]]
        misses += ok & ~inside
        seen |= ok
    return ((misses <= max_misses) & seen).reshape(dims)


@pytest.mark.parametrize("max_misses", [0, 1])
def test_carve_equals_brute_force(max_misses):
    cams = Camera.orbit([0.0, 70.0, 150.0, 230.0, 300.0], [-20.0, 40.0, 10.0, 60.0, -5.0], DIST,
                        fov=FOV)
    torus = trimesh.creation.torus(major_radius=0.6, minor_radius=0.25)
    masks = masks_of(torus.vertices, torus.faces, cams, 48)
    occ, lo, voxel = carve_voxels(masks, cams, resolution=40, max_misses=max_misses)
    ref = brute_force_carve(masks.numpy(), cams, lo.numpy(), voxel, occ.shape, max_misses)
    assert occ.sum() > 1000
    assert np.array_equal(occ.numpy(), ref)


# ---------------------------------------------------------------- sphere: accuracy


def cone_sdf(points: np.ndarray, radius: float) -> np.ndarray:
    """Signed distance [P,6] to each axis camera's silhouette cone of a sphere at the origin."""
    out = []
    for axis in AXES:
        eye = axis * DIST
        rel = points - eye
        length = np.linalg.norm(rel, axis=1)
        cos_t = np.clip((rel @ -axis) / length, -1, 1)
        theta = np.arccos(cos_t)
        alpha = math.asin(radius / DIST)
        out.append(length * np.sin(np.clip(theta - alpha, -math.pi / 2, math.pi / 2)))
    return np.stack(out, 1)


def test_sphere_hull_is_the_intersection_of_its_silhouette_cones():
    radius = 0.8
    sphere = icosphere(4, radius)
    cams = axis_cameras()
    masks = masks_of(sphere.vertices, sphere.faces, cams)
    resolution = 48
    mesh = visual_hull(masks, cams, resolution=resolution, faces=3000)
    tm = hull_trimesh(mesh)
    assert_clean_closed(tm)
    assert tm.euler_number == 2 and len(tm.split(only_watertight=False)) == 1
    _, _, voxel = carve_voxels(masks, cams, resolution=resolution)
    # Within one voxel (0.054 here; a mask pixel's footprint at the centre is 0.039).
    tol = voxel
    v = tm.vertices
    n = tm.vertex_normals
    inward = cone_sdf(v - tol * n, radius).max(1)
    outward = cone_sdf(v + tol * n, radius).max(1)
    assert (inward < 0).all(), f"{(inward >= 0).sum()} vertices more than {tol:.3f} outside"
    assert (outward > 0).all(), f"{(outward <= 0).sum()} vertices more than {tol:.3f} inside"
    assert np.abs(cone_sdf(v, radius).max(1)).max() < tol


# ---------------------------------------------------------------- torus: genus


def test_torus_keeps_its_hole():
    torus = trimesh.creation.torus(major_radius=0.6, minor_radius=0.25)
    torus.apply_transform(trimesh.transformations.rotation_matrix(-math.pi / 2, [1, 0, 0]))
    # Side views too low to see through the hole, one from straight above and one from below
    # (their tunnels through the hole coincide: an oblique view would cut a second one).
    az = [0.0, 60.0, 120.0, 180.0, 240.0, 300.0, 0.0, 0.0]
    el = [30.0, -30.0, 30.0, -30.0, 30.0, -30.0, 90.0, -90.0]
    cams = Camera.orbit(az, el, DIST, fov=FOV)
    masks = masks_of(torus.vertices, torus.faces, cams)
    mesh = visual_hull(masks, cams, resolution=56, faces=2000)
    tm = hull_trimesh(mesh)
    assert_clean_closed(tm)
    assert tm.euler_number == 0  # genus 1
    assert len(tm.split(only_watertight=False)) == 1
    assert abs(mesh.num_faces - 2000) <= 200
    # The hole is open: the axis through it is outside the hull.
    axis = np.stack([np.zeros(9), np.linspace(-0.3, 0.3, 9), np.zeros(9)], 1)
    assert not tm.contains(axis).any()


# ---------------------------------------------------------------- max_misses


def test_one_bad_mask_is_tolerated_with_max_misses_one():
    sphere = icosphere(3, 0.8)
    cams = Camera.orbit([0.0, 45.0, 90.0, 135.0, 180.0, 225.0, 270.0, 315.0],
                        [10.0, -20.0, 30.0, 0.0, -10.0, 20.0, 40.0, -30.0], DIST, fov=FOV)
    clean = masks_of(sphere.vertices, sphere.faces, cams)
    bad = clean.clone()
    bad[2, 24:40, 24:40] = False  # a wrong hole in one photo's mask
    bounds = [[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]
    ref, _, _ = carve_voxels(clean, cams, 40, bounds=bounds)
    strict, _, _ = carve_voxels(bad, cams, 40, bounds=bounds)
    tolerant, _, _ = carve_voxels(bad, cams, 40, bounds=bounds, max_misses=1)
    lost_strict = int((ref & ~strict).sum())
    assert lost_strict > 0.05 * int(ref.sum())  # the hole carves a tunnel
    assert not bool((ref & ~tolerant).any())  # tolerated: nothing the clean masks keep is lost
    assert int((tolerant & ~ref).sum()) < 0.15 * int(ref.sum())  # and not much more is kept
    vol_strict = hull_trimesh(visual_hull(bad, cams, 40, bounds=bounds, faces=1000)).volume
    vol_tol = hull_trimesh(visual_hull(bad, cams, 40, bounds=bounds, faces=1000,
                                       max_misses=1)).volume
    assert vol_tol > 1.05 * vol_strict


# ---------------------------------------------------------------- faces and bad input


def test_face_count_is_honoured():
    sphere = icosphere(3, 0.8)
    cams = axis_cameras()
    masks = masks_of(sphere.vertices, sphere.faces, cams)
    for target in (500, 1500):
        mesh = visual_hull(masks, cams, resolution=40, faces=target)
        assert abs(mesh.num_faces - target) <= 0.1 * target
        assert_clean_closed(hull_trimesh(mesh))
    full = visual_hull(masks, cams, resolution=40, faces=None)
    assert full.num_faces > 1500


def test_bad_input_names_the_targets():
    sphere = icosphere(2, 0.8)
    cams = axis_cameras()
    masks = masks_of(sphere.vertices, sphere.faces, cams)
    names = ["right", "left", "top", "bottom", "front", "back"]
    empty = masks.clone()
    empty[3] = False
    with pytest.raises(VisualHullError, match="bottom: the mask is empty"):
        visual_hull(empty, cams, 24, names=names)
    full = masks.clone()
    full[4] = True
    with pytest.raises(VisualHullError, match="front: the mask is full"):
        visual_hull(full, cams, 24, names=names)
    with pytest.raises(VisualHullError, match="target 2: the mask is empty"):
        visual_hull([masks[0], masks[1] & False] + list(masks[2:]), cams, 24)
    with pytest.raises(VisualHullError, match="5 masks but 6 cameras"):
        visual_hull(masks[:5], cams, 24)
    with pytest.raises(VisualHullError, match="top: the mask is 64x32"):
        visual_hull([m if k != 2 else m[:32] for k, m in enumerate(masks)], cams, 24,
                    names=names)
    with pytest.raises(VisualHullError, match="3 names given for 6 masks"):
        visual_hull(masks, cams, 24, names=names[:3])
    # One view sees the object in a corner: nothing is inside every silhouette.
    off = masks.clone()
    off[1] = False
    off[1, :6, :6] = True
    with pytest.raises(VisualHullError, match="left carve away what the other views keep"):
        visual_hull(off, cams, 24, names=names)
    with pytest.raises(VisualHullError, match="faces must be an integer >= 20"):
        visual_hull(masks, cams, 24, faces=5)
    with pytest.raises(VisualHullError, match="max_misses must be a non-negative integer"):
        visual_hull(masks, cams, 24, max_misses=-1)
    with pytest.raises(VisualHullError, match="bounds must be"):
        visual_hull(masks, cams, 24, bounds=[[0, 0, 0], [0, 1, 1]])
    assert issubclass(VisualHullError, ValueError)


def test_float_masks_of_different_sizes():
    """A list of float masks (> 0.5 = inside) at different sizes carves like the brute force."""
    torus = trimesh.creation.torus(major_radius=0.6, minor_radius=0.25)
    cams = Camera.orbit([10.0, 100.0, 200.0, 290.0], [20.0, -30.0, 50.0, 0.0], DIST, fov=FOV)
    sizes = [64, 40, 52, 33]
    masks = [0.2 + 0.6 * masks_of(torus.vertices, torus.faces, cams[k], n)[0].double().numpy()
             for k, n in enumerate(sizes)]
    occ, lo, voxel = carve_voxels(masks, cams, resolution=32)
    ref = brute_force_carve([m > 0.5 for m in masks], cams, lo.numpy(), voxel, occ.shape, 0)
    assert occ.sum() > 500
    assert np.array_equal(occ.numpy(), ref)


def test_two_objects_give_two_components_inside_the_default_bounds():
    a, b = icosphere(3, 0.3), icosphere(3, 0.3)
    va = a.vertices + torch.tensor([0.55, 0.1, 0.0])
    vb = b.vertices + torch.tensor([-0.55, -0.1, 0.0])
    verts = torch.cat([va, vb])
    tris = torch.cat([a.faces, b.faces + a.num_vertices])
    cams = axis_cameras()
    masks = masks_of(verts, tris, cams)
    lo, hi = default_bounds(masks, cams)
    assert bool((lo < verts.min(0).values.double()).all())
    assert bool((hi > verts.max(0).values.double()).all())
    assert float((hi - lo).max()) < 2 * float((verts.max(0).values - verts.min(0).values).max())
    mesh = visual_hull(masks, cams, resolution=48, faces=1500)
    parts = hull_trimesh(mesh).split(only_watertight=False)
    assert len(parts) == 2
    centres = sorted(p.vertices.mean(0)[0] for p in parts)
    assert abs(centres[0] + 0.55) < 0.05 and abs(centres[1] - 0.55) < 0.05
    for p in parts:
        assert_clean_closed(p)
        assert p.euler_number == 2
