"""Wavefront OBJ/MTL text parsing and formatting (internal to ``render_core.mesh``).

OBJ is read and written here rather than through trimesh because OBJ indexes positions and
texture coordinates separately (``f v/vt``) and trimesh cannot keep that: by default it splits
every vertex on a UV seam into several vertices and reorders them, and with
``maintain_order=True`` it keeps one UV per vertex and silently drops the others. Reading the
indices directly keeps vertex order, unreferenced vertices and seams exactly, so a seam is a
seam in UV space only and never a crack when vertex positions are optimised.

Functions here raise ``ValueError`` with a message describing the problem (with a line number
where there is one); the mesh reader turns it into ``MeshError`` and ``load_mesh`` adds the
file name.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np


@dataclass
class ObjData:
    """Parsed OBJ contents. Indices are 0-based; colours are as stored (sRGB floats)."""

    vertices: np.ndarray  # [V,3] float64
    faces: np.ndarray  # [F,3] int64, polygons fan-triangulated
    colors: np.ndarray | None  # [V,3] float64 sRGB, from `v x y z r g b`
    uvs: np.ndarray | None  # [T,2] float64
    face_uvs: np.ndarray | None  # [F,3] int64 into uvs
    face_materials: list[str | None] = field(default_factory=list)  # per triangle
    mtllibs: list[str] = field(default_factory=list)


_MAX_INDEX = 2**62


def _resolve(raw: int, count: int, kind: str, lineno: int) -> int:
    """OBJ index (1-based, or negative = relative to the elements read so far) -> 0-based."""
    if raw > _MAX_INDEX:  # would not fit an int64 index array
        raise ValueError(f"line {lineno}: {kind} index {raw} is out of range")
    if raw > 0:
        return raw - 1
    if raw < 0 and count + raw >= 0:
        return count + raw
    if raw == 0:
        raise ValueError(f"line {lineno}: {kind} index 0 is invalid (OBJ indices start at 1)")
    raise ValueError(f"line {lineno}: relative {kind} index {raw} refers before the first {kind}")


def parse_obj(text: str) -> ObjData:
    """Parse OBJ text. Supports v (with optional r g b), vt, f (v, v/vt, v//vn, v/vt/vn,
    negative indices, n-gons), mtllib, usemtl; other statements are ignored.

    Well-formed files of uniform layout take a vectorised path; anything unusual or wrong
    goes through the line-by-line parser, which gives the same result or a precise error.
    """
    fast = _parse_vectorized(text)
    return fast if fast is not None else _parse_lines(text)


def _parse_lines(text: str) -> ObjData:
    verts: list[list[float]] = []
    colors: list[list[float] | None] = []
    uvs: list[list[float]] = []
    faces: list[tuple[int, int, int]] = []
    tex: list[tuple[int, int, int]] = []
    face_lines: list[int] = []
    face_mats: list[str | None] = []
    mtllibs: list[str] = []
    material: str | None = None
    any_tex = False
    missing_tex = -1  # a uv index meaning "this corner had no vt"

    lines = text.replace("\\\r\n", " ").replace("\\\n", " ").splitlines()
    for lineno, line in enumerate(lines, start=1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        key = parts[0]
        try:
            if key == "v":
                if len(parts) < 4:
                    raise ValueError
                verts.append([float(p) for p in parts[1:4]])
                # `v x y z w` has 4 numbers; `v x y z r g b` (MeshLab, Blender) has 6 or 7.
                colors.append([float(p) for p in parts[4:7]] if len(parts) >= 7 else None)
            elif key == "vt":
                if len(parts) < 2:
                    raise ValueError
                uvs.append([float(parts[1]), float(parts[2]) if len(parts) > 2 else 0.0])
            elif key == "f":
                if len(parts) < 4:
                    raise ValueError(f"line {lineno}: a face needs at least 3 corners: {line!r}")
                vi, ti = [], []
                for corner in parts[1:]:
                    fields = corner.split("/")
                    vi.append(_resolve(int(fields[0]), len(verts), "vertex", lineno))
                    if len(fields) > 1 and fields[1]:
                        ti.append(_resolve(int(fields[1]), len(uvs), "texture", lineno))
                        any_tex = True
                    else:
                        ti.append(missing_tex)
                for k in range(1, len(vi) - 1):  # fan triangulation keeps the winding
                    faces.append((vi[0], vi[k], vi[k + 1]))
                    tex.append((ti[0], ti[k], ti[k + 1]))
                    face_lines.append(lineno)
                    face_mats.append(material)
            elif key == "mtllib":
                mtllibs.append(line.strip()[len("mtllib") :].strip())
            elif key == "usemtl":
                material = line.strip()[len("usemtl") :].strip() or None
        except ValueError as exc:
            if str(exc).startswith("line "):
                raise
            raise ValueError(f"line {lineno}: cannot parse {line.strip()[:80]!r}") from None

    if not verts:
        raise ValueError("no vertices (`v` lines) found; is this an OBJ file?")
    if not faces:
        raise ValueError("no faces (`f` lines) found")
    v = np.asarray(verts, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    bad = np.flatnonzero(f.max(axis=1) >= len(v))
    if len(bad):
        i = bad[0]
        raise ValueError(
            f"line {face_lines[i]}: vertex index {int(f[i].max()) + 1} is out of range, "
            f"the file has {len(v)} vertices (max index in file {int(f.max()) + 1})"
        )

    uv_arr = face_uv = None
    if any_tex:
        uv_arr = np.asarray(uvs, dtype=np.float64).reshape(-1, 2)
        face_uv = np.asarray(tex, dtype=np.int64)
        bad = np.flatnonzero(face_uv.max(axis=1) >= len(uv_arr))
        if len(bad):
            i = bad[0]
            raise ValueError(
                f"line {face_lines[i]}: texture index {int(face_uv[i].max()) + 1} is out of "
                f"range, the file has {len(uv_arr)} texture coordinates"
            )
        if (face_uv == missing_tex).any():
            # Faces without `vt` get a (0, 0) coordinate so every face has per-corner UVs.
            uv_arr = np.concatenate([uv_arr, np.zeros((1, 2))])
            face_uv[face_uv == missing_tex] = len(uv_arr) - 1

    col = None
    if any(c is not None for c in colors):
        col = np.asarray([c if c is not None else [1.0, 1.0, 1.0] for c in colors])
    return ObjData(v, f, col, uv_arr, face_uv, face_mats, mtllibs)


def _rows(lines: list[str], dtype) -> np.ndarray | None:
    """Equal-length rows of numbers parsed in one call, or None if they differ or don't parse."""
    width = len(lines[0].split())
    try:
        flat = np.array(" ".join(lines).split(), dtype=dtype)
    except (ValueError, OverflowError):
        return None
    if width == 0 or flat.size != width * len(lines):
        return None
    return flat.reshape(len(lines), width)


def _parse_vectorized(text: str) -> ObjData | None:
    """``parse_obj`` for uniform, valid files, or None to defer to the line-by-line parser."""
    if "\\\n" in text or "\\\r\n" in text:  # line continuations
        return None
    lines = text.replace("\t", " ").splitlines()
    if any(line[:1] == " " and line.strip() for line in lines):  # indented statements
        return None
    v_lines = [line[2:] for line in lines if line.startswith("v ")]
    vt_lines = [line[3:] for line in lines if line.startswith("vt ")]
    mtllibs = [line[6:].strip() for line in lines if line.startswith("mtllib ")]
    f_lines: list[str] = []
    poly_mats: list[str | None] = []
    material = None
    for line in lines:
        if line.startswith("f "):
            f_lines.append(line[2:])
            poly_mats.append(material)
        elif line.startswith("usemtl") and line.split()[0] == "usemtl":
            material = line[6:].strip() or None
    if not v_lines or not f_lines:
        return None
    counts = np.array([len(line.split()) for line in f_lines])
    if (counts < 3).any():
        return None
    joined = " ".join(f_lines)
    first = f_lines[0].split()[0]
    slashes, double = first.count("/"), "//" in first
    total = int(counts.sum())
    if (
        "-" in joined
        or joined.count("/") != slashes * total
        or joined.count("//") != (total if double else 0)
    ):
        return None
    width = 1 if slashes == 0 else 2 if (slashes == 1 or double) else 3
    corners = _rows([joined.replace("/", " ")], np.int64)
    if corners is None or corners.size != width * total:
        return None
    corners = corners.reshape(total, width) - 1
    if (corners < 0).any():
        return None

    # Fan-triangulate every polygon: triangle k of a polygon starting at s is (s, s+k, s+k+1).
    ntri = counts - 2
    poly = np.repeat(np.arange(len(counts)), ntri)
    first_tri = np.cumsum(ntri) - ntri
    k = np.arange(int(ntri.sum())) - first_tri[poly] + 1
    start = (np.cumsum(counts) - counts)[poly]
    tri = np.stack([start, start + k, start + k + 1], axis=1)

    v = _rows(v_lines, np.float64)
    if v is None or v.shape[1] < 3:
        return None
    faces = corners[:, 0][tri]
    if faces.max() >= len(v):
        return None
    uvs = face_uvs = None
    if slashes and not double:
        uvs = _rows(vt_lines, np.float64) if vt_lines else None
        if uvs is None:
            return None
        uvs = uvs[:, :2] if uvs.shape[1] >= 2 else np.pad(uvs, ((0, 0), (0, 1)))
        face_uvs = corners[:, 1][tri]
        if face_uvs.max() >= len(uvs):
            return None
    colors = v[:, 3:6] if v.shape[1] >= 6 else None
    mats = np.array(poly_mats, dtype=object)[poly].tolist()
    return ObjData(v[:, :3], faces, colors, uvs, face_uvs, mats, mtllibs)


_MAP_OPTION_ARGS = {
    "-blendu": 1, "-blendv": 1, "-boost": 1, "-mm": 2, "-texres": 1, "-clamp": 1,
    "-bm": 1, "-imfchan": 1, "-type": 1, "-o": 3, "-s": 3, "-t": 3,
}  # fmt: skip


def _map_filename(args: list[str]) -> str:
    """The file name of a ``map_Kd [options] file`` statement (names may contain spaces)."""
    i = 0
    while i < len(args) and args[i] in _MAP_OPTION_ARGS:
        n = _MAP_OPTION_ARGS[args[i]]
        i += 1
        # -o/-s/-t take 1 to 3 numbers: consume only the ones that are numbers.
        for _ in range(n):
            if i < len(args) - 1 and _is_number(args[i]):
                i += 1
    return " ".join(args[i:])


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def parse_mtl(text: str) -> dict[str, str | None]:
    """Material name -> diffuse texture file name as written (``map_Kd``), or None."""
    materials: dict[str, str | None] = {}
    current: str | None = None
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "newmtl":
            current = line.strip()[len("newmtl") :].strip()
            materials[current] = None
        elif parts[0] == "map_Kd" and current is not None and len(parts) > 1:
            materials[current] = _map_filename(parts[1:]) or None
    return materials


def format_obj(
    vertices: np.ndarray,
    faces: np.ndarray,
    colors: np.ndarray | None = None,
    uvs: np.ndarray | None = None,
    face_uvs: np.ndarray | None = None,
    mtllib: str | None = None,
    material: str | None = None,
) -> str:
    """OBJ text for a triangle mesh (0-based numpy arrays; colours already sRGB in [0, 1]).

    ``%.9g`` round-trips float32 exactly.
    """
    buf = io.StringIO()
    buf.write("# dibr-studio\n")
    if mtllib:
        buf.write(f"mtllib {mtllib}\n")
    if colors is not None:
        np.savetxt(buf, np.hstack([vertices, colors]), fmt="v %.9g %.9g %.9g %.6f %.6f %.6f")
    else:
        np.savetxt(buf, vertices, fmt="v %.9g %.9g %.9g")
    if uvs is not None and face_uvs is not None:
        np.savetxt(buf, uvs, fmt="vt %.9g %.9g")
    if material:
        buf.write(f"usemtl {material}\n")
    if uvs is not None and face_uvs is not None:
        corners = np.stack([faces + 1, face_uvs + 1], axis=2).reshape(-1, 6)
        np.savetxt(buf, corners, fmt="f %d/%d %d/%d %d/%d")
    else:
        np.savetxt(buf, faces + 1, fmt="f %d %d %d")
    return buf.getvalue()


def format_mtl(material: str, texture_file: str | None) -> str:
    """MTL text for one plain diffuse material, optionally with a diffuse texture."""
    text = f"# dibr-studio\nnewmtl {material}\nKa 0 0 0\nKd 1 1 1\nKs 0 0 0\nNs 1\nd 1\nillum 1\n"
    if texture_file:
        text += f"map_Kd {texture_file}\n"
    return text
