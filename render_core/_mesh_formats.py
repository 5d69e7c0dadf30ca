"""Per-format reading and writing behind ``load_mesh`` / ``save_mesh`` (internal).

Readers return a dict of numpy arrays for the ``Mesh`` constructor, with colours and textures
already decoded to linear. They raise ``MeshError`` without a path; ``load_mesh`` adds it.
trimesh and PIL are imported here only, so importing ``render_core.mesh`` stays cheap.
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
from pathlib import Path

import numpy as np

from . import _obj
from .color import linear_to_srgb, linear_to_srgb8, srgb_to_linear
from .image_io import ImageError, open_image, png_declared_size
from .io_utils import atomic_write_bytes, atomic_write_text
from .limits import Limits
from .mesh import MeshError

_MATERIAL = "material_0"


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0][:200] if text else "") or type(exc).__name__


# --------------------------------------------------------------------------- images


def decode_image(im, limits: Limits | None = None) -> np.ndarray:
    """PIL image -> linear float32 [H,W,3]: sRGB decoded, alpha dropped, 16-bit grey aware.

    With ``limits``, an image over ``limits.max_texture_size`` is refused before decoding
    (images embedded in glTF files arrive here still lazily opened)."""
    if limits is not None and (problem := limits.texture_problem(*im.size)):
        raise MeshError(problem)
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        srgb = np.repeat((np.asarray(im, dtype=np.float32) / 65535.0)[..., None], 3, axis=2)
    elif im.mode == "F":
        srgb = np.repeat(np.asarray(im, dtype=np.float32)[..., None], 3, axis=2)
    else:
        srgb = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    return srgb_to_linear(srgb).astype(np.float32)


def read_texture(path: Path, limits: Limits | None = None) -> np.ndarray:
    """Image file -> linear float32 [H,W,3]; any failure is a ``MeshError`` naming the image."""
    try:
        with open_image(path, texture=True, limits=limits) as im:
            return decode_image(im)
    except ImageError as exc:
        if exc.problem == "file not found":
            raise MeshError(f"texture {path} not found") from None
        raise MeshError(f"cannot read texture {path}: {exc.problem}") from None
    except Exception as exc:  # a mode PIL cannot convert, MemoryError, ...
        raise MeshError(f"cannot read texture {path}: {_describe(exc)}") from None


def encode_png(texture_linear: np.ndarray) -> bytes:
    """PNG bytes (8-bit sRGB) of a linear float [H,W,3] image."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(linear_to_srgb8(texture_linear)).save(buf, format="PNG")
    return buf.getvalue()


# --------------------------------------------------------------------------- OBJ


def _inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def _find_file(base: Path, name: str, root: Path, what: str) -> Path | None:
    """A file referenced by an OBJ/MTL, which must lie inside ``root`` (the OBJ's folder):
    ``name`` relative to ``base``, or (as exporters often write absolute paths from another
    machine) its bare name in ``base``. Never a file outside ``root``: a mesh someone sends
    must not make the studio read (and maybe export as a texture) any other file on disk, so
    an absolute or ``../`` name with no same-named file in ``base`` is refused."""
    name = name.strip().strip('"').replace("\\", "/")
    if not name:
        return None
    ref = Path(name)
    direct = ref if ref.is_absolute() else base / ref
    bare = base / ref.name
    for candidate in (direct, bare):
        if ref.name and _inside(candidate, root) and candidate.is_file():
            return candidate
    if not _inside(direct, root):
        raise MeshError(f"{what} {name!r} lies outside the mesh's folder and there is no "
                        f"{ref.name or name!r} in {base}; refused (copy it next to the mesh)")
    return None


def _obj_textures(obj_path: Path, mtllibs: list[str], used: set[str]) -> dict[str, Path]:
    """Texture image per used material that has a ``map_Kd``."""
    if not used:
        return {}
    found: dict[str, tuple[Path, str]] = {}
    root = obj_path.parent
    for lib in mtllibs:
        # `mtllib a.mtl b.mtl` lists several files, but names may also contain spaces.
        whole = " " in lib.strip() and _find_file(root, lib, root, "material library")
        names = [lib] if whole or " " not in lib.strip() else lib.split()
        for name in names:
            mtl_path = _find_file(root, name, root, "material library")
            if mtl_path is None:  # as Blender, MeshLab and trimesh do: geometry, no texture
                warnings.warn(f"{obj_path}: material library {name!r} not found in "
                              f"{obj_path.parent}; loaded without its materials", stacklevel=4)
                continue
            try:
                text = mtl_path.read_bytes().decode("utf-8", errors="replace")
            except OSError as exc:
                raise MeshError(
                    f"cannot read material library {mtl_path}: {exc.strerror}"
                ) from None
            for material, tex in _obj.parse_mtl(text).items():
                if tex:
                    found[material] = (mtl_path.parent, tex)
    textures = {}
    for material in sorted(used & found.keys()):
        base, tex = found[material]
        tex_path = _find_file(base, tex, root, "texture")
        if tex_path is None:
            raise MeshError(f"texture {tex!r} of material {material!r} not found in {base}")
        textures[material] = tex_path
    return textures


def _count_statements(data: bytes, key: bytes) -> int:
    """Lines starting with ``key`` (e.g. ``b"f "``): a cheap lower bound before parsing."""
    return data.count(b"\n" + key) + data.startswith(key)


def read_obj(path: Path, limits: Limits) -> dict:
    data = path.read_bytes()
    if b"\x00" in data:
        raise MeshError("contains binary data, not a text OBJ file")
    # Refuse an oversized file before parsing it (polygons give at least one triangle each).
    problem = limits.mesh_problem(_count_statements(data, b"v "), _count_statements(data, b"f "))
    if problem:
        raise MeshError(problem)
    try:
        obj = _obj.parse_obj(data.decode("utf-8", errors="replace"))
    except ValueError as exc:
        raise MeshError(str(exc)) from None
    used = {m for m in obj.face_materials if m is not None}
    images = set(_obj_textures(path, obj.mtllibs, used).values())
    if len(images) > 1:
        # A Mesh holds one texture; trimesh packs several into one atlas (and splits vertices
        # at UV seams, which is the price of that rarer case). Each image is checked first.
        for image in images:
            read_texture(image, limits)
        return read_trimesh(path, limits)
    fields: dict = {"vertices": obj.vertices, "faces": obj.faces}
    if obj.colors is not None:
        fields["vertex_colors"] = srgb_to_linear(obj.colors).astype(np.float32)
    if obj.uvs is not None:
        fields.update(uvs=obj.uvs, face_uvs=obj.face_uvs)
    if images:
        fields["texture"] = read_texture(images.pop(), limits)
    return fields


def write_obj(path: Path, vertices, faces, vertex_colors, uvs, face_uvs, texture) -> list[Path]:
    """``path`` (+ ``<stem>.mtl`` and ``<stem>.png`` when textured); returns the files written.

    Each file is written atomically and the OBJ last, so its rename is the commit point: a
    reader (or the next launch, after a crash) sees the old trio or the new one, never the new
    OBJ with an old texture nor the reverse. Overwriting ``<stem>.png`` while the old OBJ still
    uses it would break that, so over an existing OBJ the new one is first committed pointing
    at a copy of the MTL and PNG under content-derived names (``<stem>-<hash>.mtl/.png``),
    then the usual names are written and committed again, and the copies are removed.
    """
    colors = None if vertex_colors is None else linear_to_srgb(vertex_colors.astype(np.float64))
    if texture is not None and uvs is None:
        warnings.warn(f"{path}: texture not saved, the mesh has no UVs", stacklevel=3)
        texture = None
    if texture is None:
        atomic_write_text(path, _obj.format_obj(vertices, faces, colors, uvs, face_uvs))
        return [path]
    png_bytes = encode_png(texture)

    def commit(png: Path, mtl: Path) -> None:
        atomic_write_bytes(png, png_bytes)
        atomic_write_text(mtl, _obj.format_mtl(_MATERIAL, png.name))
        atomic_write_text(path, _obj.format_obj(vertices, faces, colors, uvs, face_uvs,
                                                mtl.name, _MATERIAL))

    png, mtl = path.with_suffix(".png"), path.with_suffix(".mtl")
    if path.exists():
        tag = hashlib.sha256(png_bytes).hexdigest()[:10]
        stand_ins = [path.with_name(f"{path.stem}-{tag}{ext}") for ext in (".png", ".mtl")]
        commit(*stand_ins)
        commit(png, mtl)
        for stand_in in stand_ins:
            stand_in.unlink(missing_ok=True)
    else:
        commit(png, mtl)
    return [path, mtl, png]


# --------------------------------------------------------------------------- via trimesh


def _to_unit(values: np.ndarray) -> np.ndarray:
    """Colour array of any stored dtype -> float in [0, 1]."""
    values = np.asarray(values)
    if np.issubdtype(values.dtype, np.integer):
        return values.astype(np.float64) / np.iinfo(values.dtype).max
    return values.astype(np.float64)


def _material_color(material) -> tuple[object | None, np.ndarray | None]:
    """(base colour image or None, linear RGB factor or None) of a trimesh material."""
    from trimesh.visual.material import PBRMaterial

    if isinstance(material, PBRMaterial):
        factor = material.baseColorFactor
        factor = None if factor is None else _to_unit(factor)[:3]
        return material.baseColorTexture, factor
    # SimpleMaterial (OBJ): its Kd is not a colour the renderer uses.
    return getattr(material, "image", None), None


def _promote_vertex_colors(geom) -> None:
    """glTF COLOR_0 next to an untextured material lands in ``visual.vertex_attributes``,
    which trimesh drops when it bakes a scene into one mesh: turn it into plain vertex colours
    (times the material's base colour factor, as glTF viewers show it) before that happens."""
    from trimesh.visual import ColorVisuals

    visual = getattr(geom, "visual", None)
    if getattr(visual, "kind", None) != "texture" or "color" not in visual.vertex_attributes:
        return
    image, factor = _material_color(visual.material)
    colors = visual.vertex_attributes["color"]
    if image is not None or len(colors) != len(geom.vertices):
        return
    rgb = _to_unit(colors)[:, :3] * (1.0 if factor is None else factor)
    rgb8 = np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)
    geom.visual = ColorVisuals(geom, vertex_colors=_rgba8(rgb8))


_PLY_ELEMENT = re.compile(rb"^element\s+(vertex|face)\s+(\d+)\s*$", re.MULTILINE)


def _declared_size(path: Path, suffix: str) -> tuple[int, int]:
    """(vertices, faces) a PLY or binary STL header declares, 0 where unknown: checked
    against the limits before trimesh allocates anything."""
    with open(path, "rb") as fh:
        head = fh.read(65536)
    if suffix == ".ply":
        end = head.find(b"end_header")
        counts = dict(_PLY_ELEMENT.findall(head[: end if end >= 0 else len(head)]))
        return int(counts.get(b"vertex", 0)), int(counts.get(b"face", 0))
    if suffix == ".stl" and len(head) >= 84 and not head.lstrip().startswith(b"solid"):
        faces = int(np.frombuffer(head[80:84], "<u4")[0])
        return 0, faces
    return 0, 0


def _check_glb_images(path: Path, limits: Limits) -> None:
    """Refuse a GLB whose embedded texture declares a size over the limit, from the image's
    header. trimesh would quietly drop a texture Pillow refuses as a decompression bomb; this
    names the problem instead. Anything malformed is left for trimesh to report."""
    import json
    import struct

    from PIL import Image

    with open(path, "rb") as fh:
        head = fh.read(20)
        if len(head) < 20 or head[:4] != b"glTF" or head[16:20] != b"JSON":
            return
        (json_len,) = struct.unpack("<I", head[12:16])
        try:
            doc = json.loads(fh.read(json_len))
            bin_start = 20 + json_len + 8  # the BIN chunk's data, after its 8-byte header
            for image in doc.get("images", []):
                view = doc["bufferViews"][image["bufferView"]]
                fh.seek(bin_start + int(view.get("byteOffset", 0)))
                blob = fh.read(min(int(view["byteLength"]), 1 << 16))  # the header is enough
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                    try:
                        size = Image.open(io.BytesIO(blob)).size
                    except Image.DecompressionBombError:
                        dims = png_declared_size(blob)
                        declared = f"{dims[0]}x{dims[1]}" if dims else "an absurd number of"
                        raise MeshError(f"the GLB file's texture declares {declared} pixels; "
                                        "refused (a decompression bomb?)") from None
                if problem := limits.texture_problem(*size):
                    raise MeshError(f"the GLB file's {problem}")
        except MeshError:
            raise
        except Exception:  # malformed JSON, views or images: trimesh reports those
            return


def read_trimesh(path: Path, limits: Limits) -> dict:
    """Any format trimesh reads; a scene is merged into one mesh with transforms applied."""
    import trimesh

    suffix = path.suffix.lower()
    kind = suffix[1:].upper()
    if problem := limits.mesh_problem(*_declared_size(path, suffix)):
        raise MeshError(problem)
    if suffix == ".glb":
        _check_glb_images(path, limits)
    try:
        scene = trimesh.load_scene(str(path), file_type=suffix[1:], process=False)
        for part in scene.geometry.values():
            _promote_vertex_colors(part)
        geom = scene.to_geometry()
    except ImportError:
        # trimesh reaches for optional text-encoding detectors when a file is not valid
        # binary and not UTF-8 either: report the file, not the missing module.
        raise MeshError(f"not a valid {kind} file") from None
    except Exception as exc:  # trimesh raises anything from ValueError to KeyError
        if "escapes resolver root" in str(exc):  # a glTF buffer or image URI like ../x.bin
            raise MeshError(f"cannot read as {kind}: it references a file outside its folder "
                            "(refused)") from None
        raise MeshError(f"cannot read as {kind}: {_describe(exc)}") from None
    if not isinstance(geom, trimesh.Trimesh) or len(geom.faces) == 0:
        raise MeshError(f"the {kind} file contains no triangle faces")
    if suffix == ".stl":
        geom.merge_vertices()  # STL is a triangle soup: weld it, or every triangle is loose

    vertices = np.asarray(geom.vertices, dtype=np.float64)
    faces = np.asarray(geom.faces, dtype=np.int64)
    fields: dict = {"vertices": vertices, "faces": faces}
    # glTF defines COLOR_0 and baseColorFactor as linear; every other format stores sRGB.
    linear_file = suffix in (".glb", ".gltf")
    visual = geom.visual
    rgb = None
    if visual.kind in ("vertex", "face"):
        rgb = _to_unit(visual.vertex_colors)[:, :3]
    elif visual.kind == "texture":
        if visual.uv is not None and len(visual.uv) == len(vertices):
            fields.update(uvs=np.asarray(visual.uv, dtype=np.float64), face_uvs=faces)
        image, factor = _material_color(visual.material)
        if image is not None:
            try:
                texture = decode_image(image, limits)
            except MeshError:
                raise
            except Exception as exc:  # lazily opened by trimesh: decoding errors show here
                problem = f"cannot read the {kind} file's texture: {_describe(exc)}"
                raise MeshError(problem) from None
            if factor is not None:
                texture = texture * factor.astype(np.float32)
            fields["texture"] = texture
        elif factor is not None and rgb is None and linear_file:
            fields["vertex_colors"] = np.tile(factor, (len(vertices), 1))
    if rgb is not None:
        fields["vertex_colors"] = rgb if linear_file else srgb_to_linear(rgb)
    return fields


def _split_seams(vertices, faces, uvs, face_uvs):
    """One vertex per distinct (position, uv) corner pair, for formats with a single index.
    ``np.unique`` sorts by vertex index, so a mesh without seams keeps its vertex order."""
    pairs = np.stack([faces.reshape(-1), face_uvs.reshape(-1)], axis=1)
    unique, inverse = np.unique(pairs, axis=0, return_inverse=True)
    return vertices[unique[:, 0]], inverse.reshape(-1, 3), uvs[unique[:, 1]]


def _rgba8(rgb8: np.ndarray) -> np.ndarray:
    return np.concatenate([rgb8, np.full((len(rgb8), 1), 255, np.uint8)], axis=1)


def export_trimesh(suffix: str, vertices, faces, vertex_colors, uvs, face_uvs, texture) -> bytes:
    """File bytes for ``.glb``, ``.ply``, ``.stl`` or ``.off``."""
    import trimesh
    from PIL import Image
    from trimesh.visual import TextureVisuals
    from trimesh.visual.material import PBRMaterial

    textured = texture is not None and uvs is not None
    dropped = []
    if suffix == ".glb":
        # glTF's default material is fully metallic, which renders dark: ask for a matte one.
        material = {"metallicFactor": 0.0, "roughnessFactor": 1.0}
        if textured:
            vertices, faces, uv = _split_seams(vertices, faces, uvs, face_uvs)
            image = Image.fromarray(linear_to_srgb8(texture))
            visual = TextureVisuals(uv=uv, material=PBRMaterial(baseColorTexture=image, **material))
            # Viewers multiply COLOR_0 into the texture; the studio shows the texture alone.
            if vertex_colors is not None:
                dropped.append("vertex colours (the texture is used)")
        else:
            visual = TextureVisuals(material=PBRMaterial(baseColorFactor=[255] * 4, **material))
            if vertex_colors is not None:
                linear8 = np.round(np.clip(vertex_colors, 0, 1) * 255).astype(np.uint8)
                visual.vertex_attributes["color"] = _rgba8(linear8)
        mesh = trimesh.Trimesh(vertices, faces, visual=visual, process=False, validate=False)
        data = mesh.export(file_type="glb")
    else:
        colors = None
        if vertex_colors is not None and suffix == ".ply":
            colors = _rgba8(linear_to_srgb8(vertex_colors))
        elif vertex_colors is not None:
            dropped.append("vertex colours")
        if texture is not None:
            dropped.append("texture")
        mesh = trimesh.Trimesh(vertices, faces, vertex_colors=colors, process=False, validate=False)
        kwargs = {"encoding": "binary"} if suffix == ".ply" else {}
        data = mesh.export(file_type=suffix[1:], **kwargs)
    if dropped:
        warnings.warn(f"{suffix} export does not store: {', '.join(dropped)}", stacklevel=3)
    return data.encode() if isinstance(data, str) else data
