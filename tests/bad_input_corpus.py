"""A corpus of bad (and odd but valid) input files, generated on demand for the tests.

``BAD_MESHES`` and ``BAD_IMAGES`` map a case name to ``(build, words)``: ``build(folder)``
writes the case into ``folder`` (a fresh directory; a case may also write beside it, in
``folder.parent``, to point outside the mesh's folder) and returns the file to load;
``words`` must all appear in the error message. Shared by the loader, CLI and GUI tests.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

import render_core as rc

TRIANGLE = "v 0 0 0\nv 1 0 0\nv 0 1 0\n"


def _rng() -> np.random.Generator:
    return np.random.default_rng(7)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def declared_png(width: int, height: int) -> bytes:
    """A valid-looking PNG of a few hundred bytes whose header declares ``width`` x ``height``
    RGB pixels (a decompression bomb: decoding it would allocate width*height*3 bytes)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 4096)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat)
            + png_chunk(b"IEND", b""))


def png16(values: np.ndarray) -> bytes:
    """A 16-bit PNG of uint16 ``values`` [H,W] (grey) or [H,W,3] (RGB) or [H,W,4] (RGBA)."""
    h, w = values.shape[:2]
    channels = 1 if values.ndim == 2 else values.shape[2]
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    rows = values.astype(">u2").reshape(h, -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)
    ihdr = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(raw))
            + png_chunk(b"IEND", b""))


def textured_square() -> rc.Mesh:
    tex = np.zeros((8, 8, 3), np.float32)
    tex[:, :4] = (0.8, 0.1, 0.1)
    tex[:, 4:] = (0.1, 0.1, 0.8)
    return rc.Mesh(vertices=[[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]],
                   faces=[[0, 1, 2], [0, 2, 3]],
                   uvs=[[0, 0], [1, 0], [1, 1], [0, 1]], texture=tex)


def colored_sphere() -> rc.Mesh:
    m = rc.icosphere(1)
    return m.with_(vertex_colors=_rng().random((m.num_vertices, 3), dtype=np.float32))


def _good_bytes(folder: Path, suffix: str) -> bytes:
    tmp = folder / f"_good{suffix}"
    rc.save_mesh(colored_sphere(), tmp)
    data = tmp.read_bytes()
    tmp.unlink()
    return data


# --------------------------------------------------------------------------- meshes


def _write(name: str, data: bytes | str):
    def build(folder: Path) -> Path:
        path = folder / name
        if isinstance(data, str):
            path.write_text(data)
        else:
            path.write_bytes(data)
        return path
    return build


def _truncated(suffix: str):
    def build(folder: Path) -> Path:
        data = _good_bytes(folder, suffix)
        if suffix == ".obj":
            data = data[: data.index(b"\nf ") + 6]  # cut inside the first face
        else:
            data = data[: len(data) // 2]
        path = folder / f"truncated{suffix}"
        path.write_bytes(data)
        return path
    return build


def _garbage(suffix: str):
    return _write(f"garbage{suffix}", _rng().integers(0, 256, 4096, dtype=np.uint8).tobytes())


def _ply_with_nan(folder: Path) -> Path:
    path = folder / "nan.ply"
    rc.save_mesh(rc.icosphere(0), path)
    data = bytearray(path.read_bytes())
    start = data.index(b"end_header\n") + len(b"end_header\n")
    data[start : start + 4] = struct.pack("<f", float("nan"))  # x of the first vertex
    path.write_bytes(bytes(data))
    return path


def _ply_without_faces(folder: Path) -> Path:
    path = folder / "points.ply"
    path.write_text("ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\n"
                    "property float y\nproperty float z\nend_header\n0 0 0\n1 0 0\n0 1 0\n")
    return path


def _obj_with_mtl(map_kd: str, texture_bytes: bytes | None = None, where: str = "inside"):
    """An OBJ + MTL whose ``map_Kd`` is ``map_kd`` (formatted with ``{outside}``, the folder
    beside the mesh's); ``texture_bytes`` is written to ``tex.png`` in the folder named by
    ``where`` ("inside" the mesh's folder or "outside" it)."""
    def build(folder: Path) -> Path:
        if texture_bytes is not None:
            base = folder if where == "inside" else folder.parent
            (base / "tex.png").write_bytes(texture_bytes)
        name = map_kd.format(outside=folder.parent)
        (folder / "m.mtl").write_text(f"newmtl mat\nmap_Kd {name}\n")
        path = folder / "m.obj"
        path.write_text("mtllib m.mtl\n" + TRIANGLE + "vt 0 0\nvt 1 0\nvt 0 1\nusemtl mat\n"
                        "f 1/1 2/2 3/3\n")
        return path
    return build


def _good_png() -> bytes:
    import io

    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (10, 200, 30)).save(buf, format="PNG")
    return buf.getvalue()


def _glb_texture_bomb(folder: Path) -> Path:
    """A textured GLB whose embedded PNG's header is patched to declare 20000x20000 pixels
    (same length, valid CRC: only the declared size changes)."""
    path = folder / "bomb.glb"
    rc.save_mesh(textured_square(), path)
    data = bytearray(path.read_bytes())
    ihdr = data.index(b"\x89PNG\r\n\x1a\n") + 12  # the chunk type "IHDR"
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", 20000, 20000)
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr : ihdr + 17])))
    path.write_bytes(bytes(data))
    return path


def _obj_symlinked_texture(folder: Path) -> Path:
    (folder.parent / "secret.png").write_bytes(_good_png())
    (folder / "tex.png").symlink_to(folder.parent / "secret.png")
    return _obj_with_mtl("tex.png")(folder)


def _obj_mtllib_outside(folder: Path) -> Path:
    (folder.parent / "evil.mtl").write_text("newmtl mat\nKd 1 1 1\n")
    path = folder / "m.obj"
    path.write_text("mtllib ../evil.mtl\n" + TRIANGLE + "usemtl mat\nf 1 2 3\n")
    return path


def _gltf_buffer_outside(folder: Path) -> Path:
    verts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32).tobytes()
    (folder.parent / "secret.bin").write_bytes(verts)
    gltf = {
        "asset": {"version": "2.0"},
        "buffers": [{"uri": "../secret.bin", "byteLength": len(verts)}],
        "bufferViews": [{"buffer": 0, "byteLength": len(verts)}],
        "accessors": [{"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3",
                       "min": [0, 0, 0], "max": [1, 1, 0]}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}}]}],
        "nodes": [{"mesh": 0}],
        "scenes": [{"nodes": [0]}],
        "scene": 0,
    }
    path = folder / "outside.gltf"
    path.write_text(json.dumps(gltf))
    return path


BAD_MESHES = {
    "obj-truncated": (_truncated(".obj"), ["line"]),
    "ply-truncated": (_truncated(".ply"), ["PLY"]),
    "glb-truncated": (_truncated(".glb"), ["GLB"]),
    "obj-garbage": (_garbage(".obj"), ["binary data"]),
    "ply-garbage": (_garbage(".ply"), ["PLY"]),
    "glb-garbage": (_garbage(".glb"), ["GLB"]),
    "obj-text-garbage": (_write("words.obj", "lorem ipsum\ndolor sit amet\n" * 50),
                         ["no vertices"]),
    "obj-index-out-of-range": (_write("oob.obj", TRIANGLE + "f 1 2 3\nf 1 2 7\n"),
                               ["line 5", "out of range"]),
    "obj-index-beyond-int64": (_write("huge.obj", TRIANGLE + "f 1 2 99999999999999999999\n"),
                               ["line 4", "out of range"]),
    "obj-face-without-corners": (_write("bare.obj", TRIANGLE + "f 1 2 3\nf \n"),
                                 ["line 5", "at least 3 corners"]),
    "obj-negative-index-before-start": (_write("neg.obj", TRIANGLE + "f -1 -2 -5\n"),
                                        ["line 4", "before the first"]),
    "obj-nan-vertex": (_write("nan.obj", "v 0 0 0\nv 1 nan 0\nv 0 1 0\nf 1 2 3\n"),
                       ["non-finite"]),
    "obj-inf-vertex": (_write("inf.obj", "v 0 0 0\nv 1 0 inf\nv 0 1 0\nf 1 2 3\n"),
                       ["non-finite"]),
    "ply-nan-vertex": (_ply_with_nan, ["non-finite"]),
    "obj-zero-faces": (_write("points.obj", TRIANGLE), ["no faces"]),
    "ply-zero-faces": (_ply_without_faces, ["no triangle faces"]),
    "empty-obj": (_write("empty.obj", ""), ["no vertices"]),
    "mtl-missing-texture": (_obj_with_mtl("gone.png"), ["gone.png", "not found"]),
    "mtl-absolute-texture": (_obj_with_mtl("{outside}/tex.png", _good_png(), "outside"),
                             ["outside the mesh's folder"]),
    "mtl-parent-texture": (_obj_with_mtl("../tex.png", _good_png(), "outside"),
                           ["../tex.png", "outside the mesh's folder"]),
    "mtl-symlink-to-outside": (_obj_symlinked_texture, ["tex.png", "outside the mesh's folder"]),
    "mtllib-parent": (_obj_mtllib_outside, ["../evil.mtl", "outside the mesh's folder"]),
    "mtl-texture-not-an-image": (_obj_with_mtl("tex.png", b"just some text\n"),
                                 ["tex.png", "not an image"]),
    "mtl-texture-bomb": (_obj_with_mtl("tex.png", declared_png(20000, 20000)),
                         ["tex.png", "20000x20000"]),
    "glb-texture-bomb": (_glb_texture_bomb, ["GLB", "texture", "20000x20000"]),
    "gltf-buffer-outside": (_gltf_buffer_outside, ["GLTF", "outside its folder"]),
}


# --------------------------------------------------------------------------- images


def _truncated_png(folder: Path) -> Path:
    import io

    buf = io.BytesIO()
    Image.fromarray(_rng().integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    path = folder / "truncated.png"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return path


def _text_chunk_bomb(folder: Path) -> Path:
    """A 4x4 PNG carrying a compressed text chunk that inflates to 20 MB."""
    import io

    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, "PNG")
    data = buf.getvalue()
    at = data.index(b"IDAT") - 4
    ztxt = png_chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"a" * 20_000_000, 9))
    path = folder / "text_bomb.png"
    path.write_bytes(data[:at] + ztxt + data[at:])
    return path


def _one_pixel(folder: Path) -> Path:
    path = folder / "dot.png"
    Image.new("RGBA", (1, 1), (255, 0, 0, 255)).save(path)
    return path


BAD_IMAGES = {
    "png-one-pixel": (_one_pixel, ["1x1"]),
    "png-declared-20000x20000": (_write("bomb.png", declared_png(20000, 20000)),
                                 ["20000x20000"]),
    "png-declared-over-limit": (_write("big.png", declared_png(9000, 9000)),
                                ["9000x9000", "limit"]),
    "png-text-file": (_write("notes.png", "this is not an image\n"), ["not an image"]),
    "png-text-chunk-bomb": (_text_chunk_bomb, ["too large"]),
    "png-truncated": (_truncated_png, ["unreadable"]),
    "jpg-garbage": (_garbage(".jpg"), ["not an image"]),
    "png-missing": (lambda folder: folder / "absent.png", ["not found"]),
}


def build(folder: Path, case: str) -> Path:
    """Write ``case`` (a key of ``BAD_MESHES`` or ``BAD_IMAGES``) into ``folder/case/``."""
    maker = (BAD_MESHES.get(case) or BAD_IMAGES[case])[0]
    sub = folder / case
    sub.mkdir(parents=True, exist_ok=True)
    return maker(sub)
