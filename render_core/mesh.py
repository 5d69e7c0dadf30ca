"""The triangle mesh container (``Mesh``), its validation, and file loading/saving.

Colour convention: everything in a ``Mesh`` is linear; files on disk are sRGB (except glTF
``COLOR_0``, which the glTF spec defines as linear). Conversions go through
``render_core.color``.

UV convention: OBJ's. Origin at the bottom-left of the texture, v up, so texture row 0 (the
top row of the image) is v = 1. trimesh uses the same convention for every format (it flips
glTF's top-left UVs on load and back on export).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .io_utils import atomic_write_bytes
from .limits import Limits, get_limits

LOAD_SUFFIXES = (".obj", ".ply", ".glb", ".gltf", ".stl", ".off")
SAVE_SUFFIXES = (".obj", ".ply", ".glb", ".stl", ".off")


class MeshError(ValueError):
    """A mesh is malformed or a mesh file cannot be read or written.

    ``str(err)`` is ``"<path>: <problem>"`` (just the problem when there is no file);
    ``err.path`` (a ``Path`` or None) and ``err.problem`` hold the parts.
    """

    def __init__(self, problem: str, path: str | os.PathLike | None = None) -> None:
        self.problem = problem
        self.path = None if path is None else Path(path)
        super().__init__(problem if path is None else f"{path}: {problem}")


def _as_tensor(name: str, value, device: torch.device, integer: bool) -> torch.Tensor:
    """Convert one field to a float (see ``Mesh``) or int64 tensor on ``device`` without
    breaking autograd."""
    if torch.is_tensor(value):
        if value.device != device:
            raise MeshError(f"{name} is on {value.device} but vertices are on {device}")
        t = value
    else:
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError) as exc:
            raise MeshError(f"{name} is not a numeric array ({exc})") from None
        if arr.dtype.kind not in "biuf":
            raise MeshError(f"{name} is not a numeric array (dtype {arr.dtype})")
        t = torch.from_numpy(np.array(arr)).to(device)
    if integer:
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise MeshError(f"{name} must hold integer indices, got {t.dtype}")
        return t if t.dtype == torch.int64 else t.long()
    if t.dtype == torch.bool or t.is_complex():
        raise MeshError(f"{name} must be real numbers, got {t.dtype}")
    if torch.is_tensor(value) and t.dtype in (torch.float32, torch.float64):
        # Kept as is (same object, same graph): float64 meshes are what finite-difference
        # gradient checks run on.
        return t
    # Arrays, lists and other tensor dtypes follow torch's default: float32 unless a caller
    # (a float64 gradient check) changed it, as torch.tensor(list) would.
    dtype = torch.get_default_dtype()
    return t if t.dtype == dtype else t.to(dtype)


def _shape_error(name: str, expected: str, t: torch.Tensor) -> MeshError:
    return MeshError(f"{name} must have shape {expected}, got {list(t.shape)}")


def _count_nonfinite_rows(t: torch.Tensor) -> int:
    finite = torch.isfinite(t.detach())
    if bool(finite.all()):  # the common case: one reduction
        return 0
    return int((~finite).reshape(t.shape[0], -1).any(dim=1).sum())


@dataclass(eq=False)
class Mesh:
    """A triangle mesh with optional linear vertex colours and a UV texture.

    Fields (numpy arrays and nested lists are converted to tensors of torch's default float
    dtype, float32 normally; tensors keep their device and autograd graph, and float32 or
    float64 tensors are stored as the very same objects, so float64 gradient checks work):

    - ``vertices`` [V,3] float32 — positions; may require grad.
    - ``faces`` [F,3] int64 — counter-clockwise seen from the front.
    - ``vertex_colors`` [V,3] float32 linear, or None.
    - ``uvs`` [T,2] float32, or None. OBJ convention: origin bottom-left, v up.
    - ``face_uvs`` [F,3] int64 indexing ``uvs`` per face corner (UV seams), or None. Given
      ``uvs`` with T == V and no ``face_uvs``, ``face_uvs`` defaults to ``faces``.
    - ``texture`` [Ht,Wt,3] float32 linear, row 0 = top of the image (v = 1), or None.

    The constructor (and ``with_``) validates and raises ``MeshError`` naming the problem.
    """

    vertices: torch.Tensor
    faces: torch.Tensor
    vertex_colors: torch.Tensor | None = None
    uvs: torch.Tensor | None = None
    face_uvs: torch.Tensor | None = None
    texture: torch.Tensor | None = None

    def __post_init__(self) -> None:
        fields = [f.name for f in dataclasses.fields(self)]
        given = [getattr(self, n) for n in fields]
        device = next((x.device for x in given if torch.is_tensor(x)), torch.device("cpu"))
        if torch.is_tensor(self.vertices):
            device = self.vertices.device
        for name in fields:
            value = getattr(self, name)
            if value is not None:
                integer = name in ("faces", "face_uvs")
                setattr(self, name, _as_tensor(name, value, device, integer))
        self._validate()

    def _validate(self) -> None:
        v, f = self.vertices, self.faces
        if v.ndim != 2 or v.shape[1] != 3:
            raise _shape_error("vertices", "[V,3]", v)
        if f.ndim != 2 or f.shape[1] != 3:
            raise _shape_error("faces", "[F,3]", f)
        nv, nf = v.shape[0], f.shape[0]
        if nv == 0:
            raise MeshError("mesh has no vertices")
        if nf == 0:
            raise MeshError("mesh has no faces")
        fmin, fmax = int(f.min()), int(f.max())
        if fmin < 0:
            raise MeshError(f"face indices must be >= 0, found {fmin}")
        if fmax >= nv:
            raise MeshError(f"face index {fmax} is out of range for {nv} vertices")
        bad = _count_nonfinite_rows(v)
        if bad:
            raise MeshError(f"{bad} of {nv} vertices have non-finite coordinates (NaN or inf)")
        if self.vertex_colors is not None:
            c = self.vertex_colors
            if c.shape != (nv, 3):
                raise _shape_error("vertex_colors", f"[V,3] = [{nv},3]", c)
            if bad := _count_nonfinite_rows(c):
                raise MeshError(f"{bad} vertex colours are non-finite (NaN or inf)")
        if self.face_uvs is not None and self.uvs is None:
            raise MeshError("face_uvs given without uvs")
        if self.uvs is not None:
            self._validate_uvs(nv, nf)
        if self.texture is not None:
            t = self.texture
            if t.ndim != 3 or t.shape[2] != 3 or t.shape[0] == 0 or t.shape[1] == 0:
                raise _shape_error("texture", "[Ht,Wt,3] with Ht, Wt > 0", t)
            if bad := int((~torch.isfinite(t.detach())).sum()):
                raise MeshError(f"texture has {bad} non-finite values (NaN or inf)")

    def _validate_uvs(self, nv: int, nf: int) -> None:
        uv = self.uvs
        if uv.ndim != 2 or uv.shape[1] != 2 or uv.shape[0] == 0:
            raise _shape_error("uvs", "[T,2] with T > 0", uv)
        if bad := _count_nonfinite_rows(uv):
            raise MeshError(f"{bad} of {uv.shape[0]} uvs are non-finite (NaN or inf)")
        if self.face_uvs is None:
            if uv.shape[0] != nv:
                raise MeshError(
                    f"uvs has {uv.shape[0]} entries but there are {nv} vertices; "
                    "give face_uvs [F,3] to index per-corner UVs"
                )
            self.face_uvs = self.faces
            return
        fu = self.face_uvs
        if fu.shape != (nf, 3):
            raise _shape_error("face_uvs", f"[F,3] = [{nf},3]", fu)
        lo, hi = int(fu.min()), int(fu.max())
        if lo < 0 or hi >= uv.shape[0]:
            bad_index = lo if lo < 0 else hi
            raise MeshError(f"face_uvs index {bad_index} is out of range for {uv.shape[0]} uvs")

    @property
    def num_vertices(self) -> int:
        return int(self.vertices.shape[0])

    @property
    def num_faces(self) -> int:
        return int(self.faces.shape[0])

    @property
    def device(self) -> torch.device:
        return self.vertices.device

    @property
    def has_texture(self) -> bool:
        """True when texture, uvs and face_uvs are all present."""
        return self.texture is not None and self.uvs is not None and self.face_uvs is not None

    def _map(self, fn) -> Mesh:
        # Device moves, detach and clone cannot break the invariants, so skip re-validation
        # (which would also reject a mesh whose vertices an optimiser step turned into NaN).
        out = object.__new__(Mesh)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            setattr(out, f.name, None if value is None else fn(value))
        return out

    def to(self, device: str | torch.device) -> Mesh:
        """Copy on ``device`` (differentiable, like ``Tensor.to``)."""
        return self._map(lambda t: t.to(device))

    def detach(self) -> Mesh:
        """Mesh whose tensors are detached from the autograd graph (storage is shared)."""
        return self._map(lambda t: t.detach())

    def clone(self) -> Mesh:
        """Mesh with cloned tensors (``Tensor.clone``: new storage, graph kept)."""
        return self._map(lambda t: t.clone())

    def with_(self, **changes) -> Mesh:
        """Copy with some fields replaced, validated like the constructor."""
        return dataclasses.replace(self, **changes)

    def bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Axis-aligned bounding box: (min [3], max [3]) float32, differentiable."""
        return self.vertices.amin(dim=0), self.vertices.amax(dim=0)

    def __repr__(self) -> str:
        extra = []
        if self.vertex_colors is not None:
            extra.append("vertex_colors")
        if self.uvs is not None:
            extra.append(f"uvs={self.uvs.shape[0]}")
        if self.texture is not None:
            extra.append(f"texture={self.texture.shape[1]}x{self.texture.shape[0]}")
        items = ", ".join([f"V={self.num_vertices}", f"F={self.num_faces}", *extra])
        return f"Mesh({items}, device={self.device})"


# --------------------------------------------------------------------------- loading


def load_mesh(path: str | os.PathLike, limits: Limits | None = None) -> Mesh:
    """Load ``.obj`` (+ .mtl + diffuse texture), ``.ply``, ``.glb``/``.gltf``, ``.stl``, ``.off``.

    Returns a CPU ``Mesh`` with linear colours. Vertex order is kept where the format has one.
    OBJ keeps per-corner UVs (seams) without splitting vertices. glTF scenes are merged into
    one mesh with node transforms applied; glTF/PLY UVs are per vertex (vertices are already
    split at seams in those formats). STL stores no connectivity, so coincident vertices are
    welded. Every failure raises ``MeshError`` naming the file and the problem.

    ``limits`` (default ``render_core.get_limits()``) caps faces, vertices and texture size;
    where the format declares its size up front the file is refused before it is parsed.
    Texture paths in an MTL must stay inside the OBJ's folder (absolute or ``../`` names
    are refused unless a file of the same name lies beside the MTL).
    """
    limits = get_limits() if limits is None else limits
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in LOAD_SUFFIXES:
        raise MeshError(
            f"unsupported file type {suffix or '(none)'!r}; supported: {', '.join(LOAD_SUFFIXES)}",
            path,
        )
    if not path.exists():
        raise MeshError("file not found", path)
    if not path.is_file():
        raise MeshError("not a regular file", path)
    from . import _mesh_formats as formats  # trimesh is imported only when a file is read

    try:
        if suffix == ".obj":
            fields = formats.read_obj(path, limits)
        else:
            fields = formats.read_trimesh(path, limits)
        if problem := limits.mesh_problem(len(fields["vertices"]), len(fields["faces"])):
            raise MeshError(problem)
        return Mesh(**fields)
    except MeshError as exc:
        if exc.path is None:
            raise MeshError(exc.problem, path) from None
        raise
    except OSError as exc:
        raise MeshError(f"cannot read file ({exc.strerror or exc})", path) from None
    except MemoryError:
        raise MeshError("not enough memory to load it", path) from None
    except Exception as exc:  # a parser failure nobody foresaw: still one line, never a crash
        raise MeshError(f"cannot read file ({type(exc).__name__}: {exc})", path) from None


def save_mesh(mesh: Mesh, path: str | os.PathLike) -> list[Path]:
    """Save by suffix, atomically (a failed save leaves any existing file untouched, and a
    textured OBJ is never left pointing at another save's texture); returns the files written.

    - ``.obj``: positions (with ``r g b`` sRGB vertex colours when present), per-corner UVs
      (``f v/vt``, seams kept), and when textured ``<stem>.mtl`` + ``<stem>.png`` (sRGB) beside.
    - ``.ply``: binary, vertex colours as 8-bit sRGB. No texture (warns if one is dropped).
    - ``.glb``: PBR material (metallic 0, roughness 1) with the sRGB PNG texture, or COLOR_0
      vertex colours stored linear (8-bit) as the glTF spec requires. Textured meshes are
      split at UV seams, since glTF has one index per vertex.
    - ``.stl``, ``.off``: geometry only.

    Raises ``MeshError`` for an unsupported suffix, an invalid mesh (e.g. NaN vertices), or
    when the file cannot be written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SAVE_SUFFIXES:
        raise MeshError(
            f"cannot save {suffix or '(none)'!r} files; supported: {', '.join(SAVE_SUFFIXES)}", path
        )
    if not path.parent.is_dir():
        raise MeshError(f"directory {path.parent} does not exist", path)
    m = mesh.detach().to("cpu")
    try:
        m._validate()  # fields may have been changed in place (e.g. an optimiser step to NaN)
    except MeshError as exc:
        raise MeshError(f"not saved: {exc.problem}", path) from None
    arrays = {
        f.name: None if getattr(m, f.name) is None else getattr(m, f.name).numpy()
        for f in dataclasses.fields(m)
    }
    try:
        from . import _mesh_formats as formats

        if suffix == ".obj":
            return formats.write_obj(path, **arrays)
        atomic_write_bytes(path, formats.export_trimesh(suffix, **arrays))
        return [path]
    except OSError as exc:
        raise MeshError(f"cannot write file ({exc.strerror or exc})", path) from None


__all__ = ["Mesh", "MeshError", "load_mesh", "save_mesh"]
