"""Mesh validation, file round trips (OBJ/PLY/GLB/STL/OFF), load failures, atomic writes,
and the procedural primitives.

Round trips compare per-face-corner attributes (vertices[faces], uvs[face_uvs]) so a format
that splits vertices at UV seams still passes.
"""

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from render_core.color import linear_to_srgb, srgb8_to_linear
from render_core.io_utils import atomic_path, atomic_write_bytes
from render_core.mesh import Mesh, MeshError, load_mesh, save_mesh
from render_core.primitives import cube, icosphere, uv_sphere

SRGB_STEP = 1.0 / 255.0


# --------------------------------------------------------------------------- helpers


def seam_mesh() -> Mesh:
    """A square of two triangles where vertex 0 has two different UVs (a seam), plus a random
    sRGB-8-bit texture (so quantisation on save is lossless up to rounding)."""
    rng = np.random.default_rng(1)
    tex8 = rng.integers(0, 256, size=(6, 10, 3), dtype=np.uint8)
    return Mesh(
        vertices=[[0, 0, 0], [1, 0, 0], [1, 1, 0.25], [0, 1, 0]],
        faces=[[0, 1, 2], [0, 2, 3]],
        uvs=[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.3, 0.7]],
        face_uvs=[[0, 1, 2], [4, 2, 3]],
        texture=srgb8_to_linear(tex8),
    )


def colored_sphere() -> Mesh:
    m = icosphere(1)
    rng = np.random.default_rng(2)
    return m.with_(vertex_colors=rng.random((m.num_vertices, 3), dtype=np.float32))


def corners(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return t[idx].reshape(idx.shape[0], 3, -1)


def assert_same_geometry(a: Mesh, b: Mesh, atol: float = 1e-6) -> None:
    assert a.num_faces == b.num_faces
    torch.testing.assert_close(
        corners(b.vertices, b.faces), corners(a.vertices, a.faces), atol=atol, rtol=0
    )


def assert_same_uvs(a: Mesh, b: Mesh) -> None:
    assert b.uvs is not None and b.face_uvs is not None
    torch.testing.assert_close(
        corners(b.uvs, b.face_uvs), corners(a.uvs, a.face_uvs), atol=1e-6, rtol=0
    )


def srgb_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((linear_to_srgb(a) - linear_to_srgb(b)).abs().max())


# --------------------------------------------------------------------------- Mesh


def test_mesh_converts_and_keeps_autograd():
    v = torch.rand(4, 3, requires_grad=True)
    m = Mesh(v, np.array([[0, 1, 2], [0, 2, 3]], dtype=np.int32))
    assert m.vertices is v and m.faces.dtype == torch.int64
    assert m.num_vertices == 4 and m.num_faces == 2 and m.device == v.device
    m.vertices.sum().backward()
    assert v.grad is not None

    # float64 tensors are kept (gradient checks); half precision and arrays become float32.
    v64 = torch.rand(4, 3, dtype=torch.float64, requires_grad=True)
    m = Mesh(v64, [[0, 1, 2]], vertex_colors=np.ones((4, 3)))
    assert m.vertices is v64 and m.vertex_colors.dtype == torch.float32
    v16 = torch.rand(4, 3, dtype=torch.float16, requires_grad=True)
    m = Mesh(v16, [[0, 1, 2]])
    assert m.vertices.dtype == torch.float32 and m.vertices.requires_grad
    lo, hi = m.bounds()
    (hi - lo).sum().backward()
    assert v16.grad is not None


def test_mesh_methods():
    m = seam_mesh()
    assert m.has_texture and not icosphere(0).has_texture
    assert m.detach().vertices.requires_grad is False
    c = m.clone()
    assert c.vertices.data_ptr() != m.vertices.data_ptr()
    torch.testing.assert_close(c.texture, m.texture)
    assert m.to("cpu").device == torch.device("cpu")
    moved = m.with_(vertices=m.vertices + 1)
    torch.testing.assert_close(moved.bounds()[0], m.bounds()[0] + 1)
    assert moved.faces is m.faces
    # Per-vertex UVs without face_uvs default to the faces.
    pv = Mesh(m.vertices, m.faces, uvs=torch.rand(4, 2))
    assert torch.equal(pv.face_uvs, pv.faces)
    assert "V=4" in repr(m) and "F=2" in repr(m)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"vertices": np.zeros((0, 3)), "faces": np.zeros((0, 3), int)}, ["no vertices"]),
        ({"vertices": np.zeros((3, 3)), "faces": np.zeros((0, 3), int)}, ["no faces"]),
        ({"vertices": np.zeros((3, 3)), "faces": [[0, 1, 7]]}, ["out of range", "7", "3"]),
        ({"vertices": np.zeros((3, 3)), "faces": [[0, -1, 2]]}, [">= 0", "-1"]),
        (
            {"vertices": [[0, 0, np.nan], [1, 0, 0], [0, np.inf, 0]], "faces": [[0, 1, 2]]},
            ["2 of 3", "non-finite"],
        ),
        ({"vertices": np.zeros((3, 2)), "faces": [[0, 1, 2]]}, ["vertices", "[V,3]"]),
        ({"vertices": np.zeros((3, 3)), "faces": [[0, 1, 2, 0]]}, ["faces", "[F,3]"]),
        ({"vertices": np.zeros((3, 3)), "faces": [[0.0, 1.0, 2.0]]}, ["integer"]),
        (
            {"vertices": np.zeros((3, 3)), "faces": [[0, 1, 2]], "vertex_colors": np.zeros((2, 3))},
            ["vertex_colors", "[3,3]"],
        ),
        (
            {"vertices": np.zeros((3, 3)), "faces": [[0, 1, 2]], "face_uvs": [[0, 1, 2]]},
            ["face_uvs", "without uvs"],
        ),
        (
            {
                "vertices": np.zeros((3, 3)),
                "faces": [[0, 1, 2]],
                "uvs": np.zeros((2, 2)),
                "face_uvs": [[0, 1, 5]],
            },
            ["face_uvs", "5", "out of range"],
        ),
        (
            {"vertices": np.zeros((3, 3)), "faces": [[0, 1, 2]], "uvs": np.zeros((5, 2))},
            ["uvs", "face_uvs"],
        ),
        (
            {"vertices": np.zeros((3, 3)), "faces": [[0, 1, 2]], "texture": np.zeros((4, 4))},
            ["texture", "[Ht,Wt,3]"],
        ),
        ({"vertices": "abc", "faces": [[0, 1, 2]]}, ["vertices", "numeric"]),
    ],
)
def test_validation_errors(kwargs, words):
    with pytest.raises(MeshError) as info:
        Mesh(**kwargs)
    assert isinstance(info.value, ValueError)
    for word in words:
        assert word in str(info.value)


def test_with_validates_but_detach_does_not():
    m = icosphere(0)
    with pytest.raises(MeshError, match="non-finite"):
        m.with_(vertices=torch.full((12, 3), float("nan")))
    # An optimiser step may turn vertices NaN in place; copying must still work so the
    # caller can roll back.
    m.vertices[0, 0] = float("nan")
    assert torch.isnan(m.detach().clone().vertices).any()


# --------------------------------------------------------------------------- round trips


def test_obj_round_trip_with_seams_and_texture(tmp_path):
    m = seam_mesh()
    path = tmp_path / "square.obj"
    save_mesh(m, path)
    assert {p.name for p in tmp_path.iterdir()} == {"square.obj", "square.mtl", "square.png"}
    back = load_mesh(path)
    # Our OBJ reader keeps v/vt indexing: no split vertices, same order, both UVs of vertex 0.
    assert back.num_vertices == m.num_vertices
    torch.testing.assert_close(back.vertices, m.vertices)
    assert torch.equal(back.faces, m.faces)
    assert_same_uvs(m, back)
    assert back.texture.shape == m.texture.shape
    assert srgb_error(back.texture, m.texture) <= SRGB_STEP + 1e-6


def test_obj_written_is_standard(tmp_path):
    """trimesh, an independent reader, sees the same per-corner UVs and an unflipped image."""
    import trimesh

    m = seam_mesh()
    save_mesh(m, tmp_path / "square.obj")
    tm = trimesh.load(tmp_path / "square.obj", process=False)
    other = Mesh(tm.vertices, tm.faces, uvs=tm.visual.uv)
    assert other.num_vertices == 5  # trimesh splits the seam vertex
    assert_same_geometry(m, other)
    assert_same_uvs(m, other)
    png = np.asarray(Image.open(tmp_path / "square.png"))
    np.testing.assert_array_equal(png, np.round(linear_to_srgb(m.texture.numpy()) * 255))


def test_obj_vertex_colors_round_trip(tmp_path):
    m = colored_sphere()
    save_mesh(m, tmp_path / "c.obj")
    assert not (tmp_path / "c.mtl").exists()
    back = load_mesh(tmp_path / "c.obj")
    torch.testing.assert_close(back.vertices, m.vertices)
    assert srgb_error(back.vertex_colors, m.vertex_colors) <= 1e-5


def test_ply_round_trip_vertex_colors(tmp_path):
    m = colored_sphere()
    save_mesh(m, tmp_path / "c.ply")
    back = load_mesh(tmp_path / "c.ply")
    torch.testing.assert_close(back.vertices, m.vertices)  # PLY keeps order
    assert torch.equal(back.faces, m.faces)
    assert srgb_error(back.vertex_colors, m.vertex_colors) <= 0.5 * SRGB_STEP + 1e-6
    # Stored as 8-bit sRGB: the file's codes are the encoded colours.
    import trimesh

    stored = trimesh.load(tmp_path / "c.ply", process=False).visual.vertex_colors[:, :3]
    expected = np.round(linear_to_srgb(m.vertex_colors.numpy()) * 255)
    np.testing.assert_array_equal(stored, expected)


def test_glb_round_trip_vertex_colors(tmp_path):
    m = colored_sphere()
    save_mesh(m, tmp_path / "c.glb")
    back = load_mesh(tmp_path / "c.glb")
    assert_same_geometry(m, back)
    # glTF COLOR_0 is linear: 8-bit quantisation happens in linear space.
    got, want = corners(back.vertex_colors, back.faces), corners(m.vertex_colors, m.faces)
    assert float((got - want).abs().max()) <= 0.5 * SRGB_STEP + 1e-6


def test_glb_round_trip_texture(tmp_path):
    m = seam_mesh()
    save_mesh(m, tmp_path / "t.glb")
    back = load_mesh(tmp_path / "t.glb")
    assert back.num_vertices == 5  # glTF has one index per vertex: the seam is split
    assert_same_geometry(m, back)
    assert_same_uvs(m, back)
    assert srgb_error(back.texture, m.texture) <= SRGB_STEP + 1e-6


def test_textured_sphere_all_formats_agree(tmp_path):
    m = uv_sphere(6, 12).with_(texture=torch.rand(8, 16, 3))
    save_mesh(m, tmp_path / "s.obj")
    save_mesh(m, tmp_path / "s.glb")
    for name in ("s.obj", "s.glb"):
        back = load_mesh(tmp_path / name)
        assert_same_geometry(m, back)
        assert_same_uvs(m, back)


@pytest.mark.parametrize("suffix", [".stl", ".off"])
def test_geometry_only_formats(tmp_path, suffix):
    m = cube(2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        save_mesh(m, tmp_path / f"c{suffix}")
    back = load_mesh(tmp_path / f"c{suffix}")
    assert back.num_vertices == m.num_vertices  # STL is welded back together
    assert_same_geometry(m, back)


def test_dropped_data_warns(tmp_path):
    with pytest.warns(UserWarning, match="texture"):
        save_mesh(seam_mesh(), tmp_path / "t.ply")


def test_multi_texture_obj_is_packed(tmp_path):
    (tmp_path / "m.obj").write_text(
        "mtllib m.mtl\nv 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\n"
        "vt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\n"
        "usemtl a\nf 1/1 2/2 3/3\nusemtl b\nf 1/1 3/3 4/4\n"
    )
    (tmp_path / "m.mtl").write_text("newmtl a\nmap_Kd a.png\nnewmtl b\nmap_Kd sub\\b.png\n")
    Image.new("RGB", (4, 4), (255, 0, 0)).save(tmp_path / "a.png")
    (tmp_path / "sub").mkdir()
    Image.new("RGB", (4, 4), (0, 0, 255)).save(tmp_path / "sub" / "b.png")
    m = load_mesh(tmp_path / "m.obj")
    assert m.has_texture and m.num_faces == 2


def test_obj_parser_features(tmp_path):
    path = tmp_path / "q.obj"
    path.write_text(
        "# comment\no thing\nv 0 0 0 1 0 0\nv 1 0 0 0 1 0\nv 1 1 0 0 0 1\nv 0 1 0 1 1 1\n"
        "vn 0 0 1\ns off\nf -4//1 -3//1 -2//1 -1//1\n"
    )
    m = load_mesh(path)
    assert m.faces.tolist() == [[0, 1, 2], [0, 2, 3]]  # quad fan-triangulated, winding kept
    torch.testing.assert_close(m.vertex_colors[:2], torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]))


@pytest.mark.parametrize(
    "text",
    [
        "v 0 0 0\r\nv 1 0 0\r\nv 1 1 0\r\nv 0 1 0\r\nusemtl a b\r\nf 1 2 3 4\r\nusemtl\r\n"
        "f 1 3 4\r\n",
        "mtllib x y.mtl\nv 0 0 0 1\nv 1 0 0 1\nv 1 1 0 1\nvt 0\nvt 1\nvt 0.5\nusemtl m\n"
        "f 1/1/1 2/2/1 3/3/1\nf 3/3/1 2/2/1 1/1/1\n",
        "v 0 0 0 .1 .2 .3\nv 1 0 0 .4 .5 .6\nv 1 1 0 .7 .8 .9\nv 0 1 0 1 1 1\nv 2 2 2 0 0 0\n"
        "f 1//1 2//1 3//1 4//1 5//1\n",
        "v 0 0 0\nv 1 0 0\nv 1 1 0\nvt 0 0\nvt 1 0\nvt 1 1\nf 1/1 2/2 3/3\nusemtl q\n"
        "f 1/3 2/2 3/1\nf 1/1 3/3 2/2 1/2\n",
        "v\t0 0 0\nv 1 0 0\nv 1 1 0\nf\t1 2 3\n",
    ],
)
def test_obj_fast_and_careful_parsers_agree(text):
    from render_core import _obj

    fast, careful = _obj._parse_vectorized(text), _obj._parse_lines(text)
    assert fast is not None, "expected the vectorised path to handle this file"
    for name in ("vertices", "faces", "colors", "uvs", "face_uvs"):
        a, b = getattr(fast, name), getattr(careful, name)
        assert (a is None) == (b is None), name
        if a is not None:
            np.testing.assert_array_equal(a, b, err_msg=name)
    assert fast.face_materials == careful.face_materials and fast.mtllibs == careful.mtllibs


# --------------------------------------------------------------------------- load failures


def _expect_load_error(path, *words):
    with pytest.raises(MeshError) as info:
        load_mesh(path)
    assert str(path) in str(info.value)
    for word in words:
        assert word in str(info.value)
    return info.value


@pytest.mark.parametrize("suffix", [".obj", ".ply", ".glb"])
def test_truncated_files(tmp_path, suffix):
    m = colored_sphere() if suffix != ".obj" else seam_mesh()
    good = tmp_path / f"good{suffix}"
    save_mesh(m, good)
    data = good.read_bytes()
    if suffix == ".obj":
        data = data[: data.index(b"\nf ") + 6]  # cut in the middle of the first face
    else:
        data = data[: len(data) // 2]
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(data)
    _expect_load_error(bad)


@pytest.mark.parametrize("suffix", [".obj", ".ply", ".glb", ".gltf", ".stl", ".off"])
def test_garbage_files(tmp_path, suffix):
    path = tmp_path / f"garbage{suffix}"
    path.write_bytes(np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    _expect_load_error(path)


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "empty.obj").write_text("")
    _expect_load_error(tmp_path / "empty.obj", "no vertices")
    (tmp_path / "points.obj").write_text("v 0 0 0\nv 1 0 0\n")
    _expect_load_error(tmp_path / "points.obj", "no faces")
    _expect_load_error(tmp_path / "missing.obj", "not found")
    _expect_load_error(tmp_path, "unsupported")  # a directory has no mesh suffix
    (tmp_path / "x.fbx").write_text("")
    _expect_load_error(tmp_path / "x.fbx", "unsupported")


def test_obj_bad_contents(tmp_path):
    path = tmp_path / "oob.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\nf 1 2 9\n")
    _expect_load_error(path, "line 5", "9", "3 vertices", "out of range")
    path.write_text("v 0 0 0\nv 1 0 nan\nv 0 1 0\nf 1 2 3\n")
    _expect_load_error(path, "non-finite")
    path.write_text("v 0 0 0\nv 1 zero 0\nv 0 1 0\nf 1 2 3\n")
    _expect_load_error(path, "line 2")
    path.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nf 1/1 2/2 3/1\n")
    _expect_load_error(path, "texture index 2")


def test_obj_missing_material_files(tmp_path):
    path = tmp_path / "t.obj"
    path.write_text("mtllib t.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nusemtl m\nf 1/1 2/1 3/1\n")
    # Spec change (issue 11 item 6): a missing material library warns and the geometry loads.
    with pytest.warns(UserWarning, match="t.mtl.*not found"):
        mesh = load_mesh(path)
    assert mesh.num_faces == 1 and mesh.texture is None
    (tmp_path / "t.mtl").write_text("newmtl m\nmap_Kd -s 1 1 1 gone.png\n")
    _expect_load_error(path, "gone.png", "not found")
    (tmp_path / "gone.png").write_bytes(b"not a png")
    _expect_load_error(path, "gone.png", "cannot read texture")


# --------------------------------------------------------------------------- atomic writes


def test_atomic_path_failure_keeps_old_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".bin" and tmp != target
        tmp.write_bytes(b"half-writ")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]  # no temporary left behind

    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_failed_save_keeps_old_file(tmp_path, monkeypatch):
    from render_core import _obj

    path = tmp_path / "m.obj"
    save_mesh(icosphere(0), path)
    before = path.read_bytes()

    def explode(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(_obj, "format_obj", explode)
    with pytest.raises(RuntimeError):
        save_mesh(icosphere(1), path)
    assert path.read_bytes() == before
    with pytest.raises(MeshError, match="does not exist"):
        save_mesh(icosphere(0), tmp_path / "nowhere" / "m.obj")
    broken = icosphere(0)
    broken.vertices[3] = float("nan")  # changed in place after validation
    with pytest.raises(MeshError, match="not saved: 1 of 12 vertices"):
        save_mesh(broken, path)
    assert path.read_bytes() == before


# --------------------------------------------------------------------------- primitives


def _check_closed_outward(m: Mesh) -> None:
    v = m.vertices.double()
    f = m.faces
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    normals = torch.cross(b - a, c - a, dim=1)
    centroids = (a + b + c) / 3
    assert ((normals * (centroids - v.mean(0))).sum(1) > 0).all(), "a face points inward"
    assert float(torch.linalg.det(torch.stack([a, b, c], 1)).sum() / 6) > 0  # signed volume
    directed = torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    undirected, counts = torch.unique(directed.sort(1).values, dim=0, return_counts=True)
    assert (counts == 2).all(), "not watertight"
    # Consistent orientation: each edge is used once in each direction.
    assert len(torch.unique(directed, dim=0)) == len(directed)


@pytest.mark.parametrize(
    ("s", "faces"), [(0, 20), (1, 80), (3, 1280), (4, 5120), (5, 20480), (6, 81920)]
)
def test_icosphere(s, faces):
    m = icosphere(s, radius=2.0)
    assert m.num_faces == faces == 20 * 4**s and m.num_vertices == 10 * 4**s + 2
    assert m.vertices.dtype == torch.float32 and m.faces.dtype == torch.int64
    torch.testing.assert_close(m.vertices.norm(dim=1), torch.full((m.num_vertices,), 2.0))
    if s <= 4:
        _check_closed_outward(m)


@pytest.mark.parametrize("s", [0, 1, 3])
def test_cube(s):
    m = cube(s, size=3.0)
    n = s + 1
    assert m.num_faces == 12 * n * n and m.num_vertices == 6 * n * n + 2
    lo, hi = m.bounds()
    torch.testing.assert_close(lo, torch.full((3,), -1.5))
    torch.testing.assert_close(hi, torch.full((3,), 1.5))
    _check_closed_outward(m)


@pytest.mark.parametrize(("rings", "segments"), [(16, 32), (2, 3), (5, 7)])
def test_uv_sphere(rings, segments):
    m = uv_sphere(rings, segments)
    assert m.num_faces == 2 * segments * (rings - 1)
    assert m.num_vertices == 2 + (rings - 1) * segments
    _check_closed_outward(m)
    uv = corners(m.uvs, m.face_uvs)
    assert float(uv.min()) >= 0 and float(uv.max()) <= 1
    # No triangle spans the u = 0/1 seam (no stretched seam strip).
    assert float((uv[..., 0].amax(1) - uv[..., 0].amin(1)).max()) <= 1.0 / segments + 1e-6
    # v is 1 at the +Y pole and 0 at the -Y pole (OBJ convention, v up).
    ys = corners(m.vertices, m.faces)[..., 1]
    torch.testing.assert_close(
        uv[..., 1], (torch.asin(ys.clamp(-1, 1)) / torch.pi + 0.5), atol=1e-5, rtol=0
    )


def _colored_part(mesh: Mesh):
    """A trimesh mesh carrying COLOR_0 beside a matte material, as glTF exporters write it."""
    import trimesh
    from trimesh.visual import TextureVisuals
    from trimesh.visual.material import PBRMaterial

    visual = TextureVisuals(material=PBRMaterial(metallicFactor=0.0, roughnessFactor=1.0))
    rgb8 = np.round(mesh.vertex_colors.numpy() * 255).astype(np.uint8)
    visual.vertex_attributes["color"] = np.concatenate([rgb8, np.full((len(rgb8), 1), 255)], 1)
    return trimesh.Trimesh(mesh.vertices.numpy(), mesh.faces.numpy(), visual=visual, process=False)


@pytest.mark.parametrize("file_type", ["glb", "gltf"])
def test_gltf_scene_is_merged_with_transforms_and_colors(tmp_path, file_type):
    import trimesh

    m = colored_sphere()
    scene = trimesh.Scene()
    scene.add_geometry(_colored_part(m), node_name="a", geom_name="a")
    shift = np.eye(4)
    shift[:3, 3] = [5.0, 0.0, 0.0]
    scene.add_geometry(_colored_part(m), node_name="b", geom_name="b", transform=shift)
    exported = scene.export(file_type=file_type)
    if file_type == "glb":
        path = tmp_path / "s.glb"
        path.write_bytes(exported)
    else:  # a .gltf plus external buffer files it references
        for name, data in exported.items():
            (tmp_path / name).write_bytes(data)
        path = next(tmp_path.glob("*.gltf"))
    back = load_mesh(path)
    assert back.num_faces == 2 * m.num_faces and back.vertex_colors is not None
    got = corners(back.vertices, back.faces)
    assert float(got[..., 0].max()) == pytest.approx(6.0, abs=1e-5)  # unit sphere moved to +5
    assert float(got[..., 0].min()) == pytest.approx(-1.0, abs=1e-5)
    want = corners(m.vertex_colors, m.faces).repeat(2, 1, 1)
    assert float((corners(back.vertex_colors, back.faces) - want).abs().max()) <= SRGB_STEP
