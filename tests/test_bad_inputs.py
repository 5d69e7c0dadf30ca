"""Hardened input handling: every file of the bad-input corpus gives one clear line naming the
file and the problem — from the loaders, from the session (left unchanged) and from the CLI
(exit status 2) — and odd but valid images load with the right values. Also the size limits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bad_input_corpus import BAD_IMAGES, BAD_MESHES, build, declared_png, png16
from PIL import Image

import render_core as rc
from studio.__main__ import main
from studio.model import files
from studio.model.session import Session

pytestmark = pytest.mark.timeout(60)  # a hang is a failure

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def default_limits():
    """Every test starts and ends with the default limits (the CLI sets process-wide ones)."""
    previous = rc.set_limits(rc.Limits())
    yield
    rc.set_limits(previous)


def _assert_one_line(message: str, *words: str) -> None:
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)


def good_target(folder: Path) -> Path:
    img = np.zeros((16, 16, 4), np.uint8)
    img[4:12, 4:12] = (200, 90, 40, 255)
    path = folder / "good_target.png"
    Image.fromarray(img).save(path)
    return path


# --------------------------------------------------------------------------- loaders


def _assert_clear_load_errors(path: Path, words, core_error, core_load, studio_load):
    """``core_load`` (render_core) raises ``core_error`` naming the path and the problem on
    one line, ``studio_load`` (studio.model.files) a ``LoadError`` naming the file; returns that."""
    with pytest.raises(core_error) as info:
        core_load(path)
    _assert_one_line(str(info.value), str(path), *words)
    with pytest.raises(files.LoadError) as info:
        studio_load(path)
    _assert_one_line(str(info.value), path.name, *words)
    return info.value


@pytest.mark.parametrize("case", sorted(BAD_MESHES))
def test_bad_mesh_is_a_clear_error(case, tmp_path):
    path = build(tmp_path, case)
    error = _assert_clear_load_errors(path, BAD_MESHES[case][1], rc.MeshError, rc.load_mesh,
                                      files.load_mesh)
    assert isinstance(error, ValueError)


@pytest.mark.parametrize("case", sorted(BAD_IMAGES))
def test_bad_image_is_a_clear_error(case, tmp_path):
    path = build(tmp_path, case)
    _assert_clear_load_errors(path, BAD_IMAGES[case][1], rc.ImageError, rc.open_image,
                              files.load_image)


@pytest.mark.parametrize("size", [(20000, 20000), (9000, 9000), (60000, 2)])
def test_oversized_images_are_refused_from_the_header(size, tmp_path, monkeypatch):
    from PIL import ImageFile

    decoded = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load",
                        lambda self: decoded.append(self.size) or real_load(self))
    path = tmp_path / "big.png"
    path.write_bytes(declared_png(*size))
    with pytest.raises(files.LoadError, match=f"{size[0]}x{size[1]}"):
        files.load_image(path)
    with pytest.raises(rc.ImageError, match=f"{size[0]}x{size[1]}"):
        rc.open_image(path, texture=True)
    assert decoded == []


def test_session_is_untouched_by_every_bad_file(tmp_path):
    s = Session()
    s.load_mesh(_start_mesh(tmp_path))
    s.add_target(good_target(tmp_path), 0.0, 0.0, 3.0)
    mesh, targets, generation = s.initial_mesh, list(s.targets), s.generation
    events = []
    s.subscribe(events.append)
    for case in BAD_MESHES:
        with pytest.raises(files.LoadError):
            s.load_mesh(build(tmp_path, case))
    for case in BAD_IMAGES:
        bad = build(tmp_path, case)
        with pytest.raises(files.LoadError):
            s.add_targets([good_target(tmp_path), bad], [(0, 0, 3, 60), (90, 0, 3, 60)])
    assert s.initial_mesh is mesh and s.targets == targets and s.generation == generation
    assert events == []


def _start_mesh(folder: Path) -> Path:
    path = folder / "start.obj"
    rc.save_mesh(rc.icosphere(1), path)
    return path


def test_mutated_mesh_files_fail_cleanly(tmp_path):
    # Seeded byte flips, insertions and cuts of valid files: each loads or raises a MeshError
    # from a check that foresaw the problem, never the catch-all for unexpected exceptions.
    import random
    import warnings

    from bad_input_corpus import colored_sphere, textured_square

    rnd = random.Random(5)
    goods = {}
    for suffix in (".obj", ".ply", ".glb", ".stl", ".off"):
        mesh = {".obj": textured_square(), ".glb": textured_square(), ".ply": colored_sphere()}
        rc.save_mesh(mesh.get(suffix, rc.icosphere(1)), tmp_path / f"good{suffix}")
        goods[suffix] = (tmp_path / f"good{suffix}").read_bytes()
    for n in range(300):
        suffix = rnd.choice(sorted(goods))
        data = bytearray(goods[suffix])
        for _ in range(rnd.randint(1, 6)):
            i = rnd.randrange(len(data) + 1)
            op = rnd.random()
            if op < 0.5 and i < len(data):
                data[i] = rnd.randrange(256)
            elif op < 0.8:
                data[i:i] = rnd.choice([b"9", b"-", b"nan", b"/", b"\n", b" ", b"e99", b"f "])
            else:
                del data[i : i + rnd.randint(1, 40)]
        path = tmp_path / f"mutant{n}{suffix}"
        path.write_bytes(bytes(data))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                rc.load_mesh(path)
            except rc.MeshError as exc:
                assert "cannot read file (" not in str(exc), str(exc)


# --------------------------------------------------------------------------- odd but valid


def _load_bytes(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return files.load_image(path)


def test_16_bit_grey_png_is_scaled_by_65535(tmp_path):
    values = np.random.default_rng(0).integers(0, 65536, (5, 7)).astype(np.uint16)
    rgb, mask = _load_bytes(tmp_path, "grey16.png", png16(values))
    assert mask is None and rgb.shape == (5, 7, 3) and rgb.dtype == np.float32
    np.testing.assert_allclose(rgb, np.repeat(values[..., None] / 65535.0, 3, axis=2), atol=1e-6)
    # The same picture in 8 bits reads (almost) the same: no stretching by the maximum.
    dark = (values // 4).astype(np.uint16)
    rgb_dark, _ = _load_bytes(tmp_path, "dark16.png", png16(dark))
    assert rgb_dark.max() <= 0.25 + 1e-6


def test_16_bit_rgba_png_keeps_colour_and_mask(tmp_path):
    values = np.random.default_rng(1).integers(0, 65536, (4, 6, 4)).astype(np.uint16)
    rgb, mask = _load_bytes(tmp_path, "rgba16.png", png16(values))
    np.testing.assert_allclose(rgb, values[..., :3] / 65535.0, atol=1.0 / 255 + 1e-6)
    np.testing.assert_allclose(mask, values[..., 3] / 65535.0, atol=1.0 / 255 + 1e-6)


def test_grey_and_grey_alpha_png(tmp_path):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(grey, "L").save(tmp_path / "l.png")
    rgb, mask = files.load_image(tmp_path / "l.png")
    assert mask is None
    np.testing.assert_allclose(rgb, np.repeat(grey[..., None] / 255.0, 3, axis=2), atol=1e-6)
    alpha = (grey > 100).astype(np.uint8) * 255
    Image.fromarray(np.stack([grey, alpha], axis=2), "LA").save(tmp_path / "la.png")
    rgb, mask = files.load_image(tmp_path / "la.png")
    np.testing.assert_array_equal(mask, alpha / 255.0)
    np.testing.assert_allclose(rgb[..., 1], grey / 255.0, atol=1e-6)


def test_palette_png_colours_and_transparency_mask(tmp_path):
    palette = [255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (253 * 3)
    index = np.array([[0, 1, 2, 0], [2, 2, 1, 0]], np.uint8)
    im = Image.fromarray(index, "P")
    im.putpalette(palette)
    im.save(tmp_path / "p.png", transparency=0)  # palette entry 0 (red) is transparent
    rgb, mask = files.load_image(tmp_path / "p.png")
    colours = np.array(palette[:9], np.float32).reshape(3, 3) / 255.0
    np.testing.assert_allclose(rgb[index != 0], colours[index[index != 0]], atol=1e-6)
    np.testing.assert_array_equal(mask, (index != 0).astype(np.float32))


def test_cmyk_jpeg_is_converted_to_rgb(tmp_path):
    # Cyan = (255, 0, 0, 0) in CMYK is (0, 255, 255) in RGB; yellow over the right half.
    im = Image.new("CMYK", (16, 16), (255, 0, 0, 0))
    im.paste((0, 0, 255, 0), (8, 0, 16, 16))
    im.save(tmp_path / "cmyk.jpg", quality=95)
    assert Image.open(tmp_path / "cmyk.jpg").mode == "CMYK"
    rgb, mask = files.load_image(tmp_path / "cmyk.jpg")
    assert mask is None and rgb.shape == (16, 16, 3)
    np.testing.assert_allclose(rgb[4:12, 1:6].mean(axis=(0, 1)), [0, 1, 1], atol=0.05)
    np.testing.assert_allclose(rgb[4:12, 10:15].mean(axis=(0, 1)), [1, 1, 0], atol=0.05)


def test_exif_orientation_is_applied(tmp_path):
    # Stored 8 wide x 4 tall with a red left half; orientation 6 means "rotate 90° clockwise to
    # display", so the upright image is 4 wide x 8 tall with red on top.
    pixels = np.zeros((4, 8, 3), np.uint8)
    pixels[:, :4] = (255, 0, 0)
    pixels[:, 4:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels).save(tmp_path / "photo.jpg", quality=95, exif=exif)
    rgb, _ = files.load_image(tmp_path / "photo.jpg")
    assert rgb.shape == (8, 4, 3)
    assert rgb[:3, :, 0].mean() > 0.8 and rgb[:3, :, 2].mean() < 0.2
    assert rgb[5:, :, 2].mean() > 0.8 and rgb[5:, :, 0].mean() < 0.2


def test_absolute_texture_path_falls_back_to_the_file_beside_the_mtl(tmp_path):
    folder = tmp_path / "mesh"
    folder.mkdir()
    Image.new("RGB", (4, 4), (0, 255, 0)).save(tmp_path / "tex.png")  # outside: never read
    Image.new("RGB", (4, 4), (255, 0, 0)).save(folder / "tex.png")
    (folder / "m.mtl").write_text(f"newmtl mat\nmap_Kd {tmp_path / 'tex.png'}\n")
    (folder / "m.obj").write_text("mtllib m.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\n"
                                  "vt 0 1\nusemtl mat\nf 1/1 2/2 3/3\n")
    mesh = rc.load_mesh(folder / "m.obj")
    np.testing.assert_allclose(mesh.texture.numpy(), np.broadcast_to([1.0, 0, 0], (4, 4, 3)))


def test_texture_in_a_subfolder_is_fine(tmp_path):
    (tmp_path / "maps").mkdir()
    Image.new("RGB", (4, 2), (0, 0, 255)).save(tmp_path / "maps" / "t.png")
    (tmp_path / "m.mtl").write_text("newmtl mat\nmap_Kd maps/../maps/t.png\n")
    (tmp_path / "m.obj").write_text("mtllib m.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\n"
                                    "vt 0 1\nusemtl mat\nf 1/1 2/2 3/3\n")
    assert rc.load_mesh(tmp_path / "m.obj").texture.shape == (2, 4, 3)


# --------------------------------------------------------------------------- limits


def test_face_and_vertex_limits(tmp_path):
    path = _start_mesh(tmp_path)  # 80 faces, 42 vertices
    assert rc.load_mesh(path, limits=rc.Limits(max_faces=80, max_vertices=42)).num_faces == 80
    with pytest.raises(rc.MeshError, match="80 faces, more than the limit of 79"):
        rc.load_mesh(path, limits=rc.Limits(max_faces=79))
    with pytest.raises(rc.MeshError, match="42 vertices, more than the limit of 41"):
        rc.load_mesh(path, limits=rc.Limits(max_vertices=41))
    # Quads count as the triangles they become.
    quads = tmp_path / "quads.obj"
    quads.write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nf 1 2 3 4\n")
    with pytest.raises(rc.MeshError, match="2 faces"):
        rc.load_mesh(quads, limits=rc.Limits(max_faces=1))
    rc.set_limits(rc.Limits(max_faces=79))
    with pytest.raises(files.LoadError, match="limit"):
        files.load_mesh(path)


@pytest.mark.parametrize("suffix", [".ply", ".stl"])
def test_declared_face_count_is_refused_before_parsing(suffix, tmp_path, monkeypatch):
    import trimesh

    path = tmp_path / f"m{suffix}"
    rc.save_mesh(rc.icosphere(1), path)
    parsed = []
    monkeypatch.setattr(trimesh, "load_scene", lambda *a, **k: parsed.append(a))
    with pytest.raises(rc.MeshError, match="80 faces"):
        rc.load_mesh(path, limits=rc.Limits(max_faces=50))
    assert parsed == []


def test_texture_size_limit(tmp_path):
    mesh = rc.Mesh(vertices=[[0, 0, 0], [1, 0, 0], [0, 1, 0]], faces=[[0, 1, 2]],
                   uvs=[[0, 0], [1, 0], [0, 1]], texture=np.full((8, 32, 3), 0.5, np.float32))
    for suffix in (".obj", ".glb"):
        rc.save_mesh(mesh, tmp_path / f"m{suffix}")
        assert rc.load_mesh(tmp_path / f"m{suffix}", limits=rc.Limits(max_texture_size=32))
        with pytest.raises(rc.MeshError, match="32x8 pixels, larger than the limit of 31"):
            rc.load_mesh(tmp_path / f"m{suffix}", limits=rc.Limits(max_texture_size=31))


def test_image_pixel_limit(tmp_path):
    Image.new("RGB", (40, 30)).save(tmp_path / "im.png")
    assert files.load_image(tmp_path / "im.png")[0].shape == (30, 40, 3)
    rc.set_limits(rc.Limits(max_image_pixels=1199))
    with pytest.raises(files.LoadError, match="40x30 = 1,200 pixels, more than the limit"):
        files.load_image(tmp_path / "im.png")


def test_limits_from_environment():
    env = {"DIBR_MAX_FACES": "1_000", "DIBR_MAX_TEXTURE_SIZE": " 512 "}
    assert rc.Limits.from_env(env) == rc.Limits(max_faces=1000, max_texture_size=512)
    assert rc.Limits.from_env({}) == rc.Limits()
    for bad in ("ten", "0", "-5", "1.5"):
        with pytest.raises(ValueError, match="DIBR_MAX_IMAGE_PIXELS"):
            rc.Limits.from_env({"DIBR_MAX_IMAGE_PIXELS": bad})
    with pytest.raises(ValueError, match="max_faces"):
        rc.Limits(max_faces=0)


# --------------------------------------------------------------------------- CLI


def _fit_argv(tmp_path, mesh: Path | None, target: Path) -> list[str]:
    argv = ["fit", "--target", str(target), "--view", "0,0,3", "--steps", "0", "--quiet",
            "--resolution", "16", "--out", str(tmp_path / "out")]
    return argv + (["--mesh", str(mesh)] if mesh else [])


def _cli_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("dibr-studio: error:"), err
    return err


@pytest.mark.parametrize("case", sorted(BAD_MESHES) + sorted(BAD_IMAGES))
def test_cli_exits_2_with_one_line(case, tmp_path, capsys):
    bad = build(tmp_path, case)
    if case in BAD_MESHES:
        argv = _fit_argv(tmp_path, bad, good_target(tmp_path))
    else:
        argv = _fit_argv(tmp_path, None, bad)
    assert main(argv) == 2
    err = _cli_error(capsys)
    assert bad.name in err
    assert not (tmp_path / "out").exists()


def test_cli_limit_flag(tmp_path, capsys):
    argv = _fit_argv(tmp_path, _start_mesh(tmp_path), good_target(tmp_path))
    assert main([*argv, "--limit", "faces=79"]) == 2
    assert "more than the limit of 79" in _cli_error(capsys)
    for bad in ("faces=0", "faces=1.5", "faces=inf", "wings=3", "faces"):
        assert main([*argv, "--limit", bad]) == 2
        assert "--limit" in _cli_error(capsys)


@pytest.mark.parametrize("case, env", [
    ("png-declared-20000x20000", {}),
    ("mtl-parent-texture", {}),
    ("start", {"DIBR_MAX_FACES": "10"}),
])
def test_cli_subprocess_exits_2_with_one_line(case, env, tmp_path):
    if case == "start":
        argv = _fit_argv(tmp_path, _start_mesh(tmp_path), good_target(tmp_path))
        words = ["start.obj", "80 faces", "limit of 10"]
    elif case in BAD_MESHES:
        bad = build(tmp_path, case)
        argv = _fit_argv(tmp_path, bad, good_target(tmp_path))
        words = [bad.name, *BAD_MESHES[case][1]]
    else:
        bad = build(tmp_path, case)
        argv = _fit_argv(tmp_path, None, bad)
        words = [bad.name, *BAD_IMAGES[case][1]]
    run_env = {**os.environ, "PYTHONPATH": str(REPO), "DIBR_NO_EXT": "1", **env}
    proc = subprocess.run([sys.executable, "-m", "studio", *argv], capture_output=True,
                          text=True, timeout=60, env=run_env, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    _assert_one_line(err, "dibr-studio: error:", *words)
    assert proc.stdout == ""


def test_save_mesh_reports_the_files_it_wrote(tmp_path):
    from bad_input_corpus import textured_square

    written = rc.save_mesh(textured_square(), tmp_path / "sq.obj")
    assert [p.name for p in written] == ["sq.obj", "sq.mtl", "sq.png"]
    # Over an existing export the stand-in copies are gone afterwards.
    rc.save_mesh(textured_square().with_(texture=np.zeros((2, 2, 3))), tmp_path / "sq.obj")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sq.mtl", "sq.obj", "sq.png"]
    assert rc.load_mesh(tmp_path / "sq.obj").texture.shape == (2, 2, 3)
    assert rc.save_mesh(rc.icosphere(0), tmp_path / "ico.ply") == [tmp_path / "ico.ply"]


def test_missing_material_library_warns_and_loads_the_geometry(tmp_path):
    # Spec change (issue 11 item 6): like Blender, MeshLab and trimesh, not a refusal.
    (tmp_path / "m.obj").write_text("mtllib gone.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\n"
                                    "vt 1 0\nvt 0 1\nusemtl mat\nf 1/1 2/2 3/3\n")
    with pytest.warns(UserWarning, match="gone.mtl"):
        mesh = rc.load_mesh(tmp_path / "m.obj")
    assert mesh.num_faces == 1 and mesh.texture is None


def test_material_library_outside_the_folder_is_still_refused(tmp_path):
    folder = tmp_path / "mesh"
    folder.mkdir()
    (folder / "m.obj").write_text("mtllib ../evil.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\n"
                                  "usemtl mat\nf 1 2 3\n")
    with pytest.raises(rc.MeshError, match="outside the mesh's folder"):
        rc.load_mesh(folder / "m.obj")
