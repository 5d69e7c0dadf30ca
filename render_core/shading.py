"""Normals and the lighting models of DIB-R (Chen et al. 2019, section 3.3, eq. 7-11).

Every model splits a pixel colour into ``I = I_l * I_c + I_s`` (eq. 7): ``I_c`` is the base colour
(vertex colour or texture), ``I_l`` a lighting factor that multiplies it and ``I_s`` an additive
specular term. The functions here compute ``I_l`` and ``I_s`` from per-pixel (or per-vertex)
normals; :func:`shade` composes them.

Conventions (see ``docs/api.md``):

- Faces are counter-clockwise seen from the front, so the front normal of face ``(a, b, c)`` is
  ``(b - a) x (c - a)``.
- Light directions point **from the surface towards the light**; view directions point from the
  surface towards the eye.
- A leading batch dimension is optional everywhere. Batched light/material parameters (``[B]``
  scalars, ``[B,3]`` directions, ``[B,9]`` SH coefficients) are aligned with the *leading*
  dimension of the normals, whatever lies between (``[B,N,3]``, ``[B,H,W,3]``, ...).
- Directions (normals, light, view) are normalised inside the functions with an epsilon under the
  square root, so un-normalised interpolated normals and raw optimisable light vectors are fine,
  and a zero vector gives a zero direction with a finite gradient instead of NaN.

All functions are pure torch, work in float32 and float64 on any device, and are differentiable
with respect to every floating-point input (vertices, normals, light and material parameters).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from . import _native, _topology
from ._validate import check_faces

__all__ = [
    "LIGHT_KIND",
    "DirectionalLight",
    "PhongMaterial",
    "SHLight",
    "face_normals",
    "lambertian",
    "light_kind",
    "phong",
    "safe_normalize",
    "sh_irradiance",
    "shade",
    "vertex_normals",
]

# Which light each shading of :class:`~render_core.renderer.Renderer` takes: ``None`` (unlit),
# ``"directional"`` (a :class:`DirectionalLight` direction) or ``"sh"`` (:class:`SHLight`
# coefficients). The one place this is written down; fitters and views ask :func:`light_kind`.
LIGHT_KIND: dict[str, str | None] = {
    "vertex_color": None,
    "texture": None,
    "lambertian": "directional",
    "phong": "directional",
    "sh": "sh",
}


def light_kind(shading: str) -> str | None:
    """The light ``shading`` takes: ``None``, ``"directional"`` or ``"sh"``.

    Raises ``ValueError`` for a shading that is not one of the renderer's (:data:`LIGHT_KIND`)."""
    try:
        return LIGHT_KIND[shading]
    except KeyError:
        known = tuple(LIGHT_KIND)
        raise ValueError(f"unknown shading {shading!r}; expected one of {known}") from None


_Param = float | int | torch.Tensor
_Vector = Sequence[float] | torch.Tensor

# Epsilon of safe_normalize: x / sqrt(|x|^2 + eps^2). Small enough that the length of any real
# normal is exact to float precision, large enough that eps^2 stays a normal float32 number.
_EPS = 1e-10

# Smallest base of the specular power. Clamping before ``pow`` keeps d/d(shininess) =
# x^a ln(x) and d/dx = a x^(a-1) finite at x = 0; the clamped values are masked out afterwards.
_POW_FLOOR = 1e-6


def safe_normalize(x: torch.Tensor, eps: float = _EPS) -> torch.Tensor:
    """Normalise ``x [...,3]`` (any last dim) along the last dimension without NaN.

    Computes ``x / sqrt(|x|^2 + eps^2)``: a zero vector maps to zero with a finite gradient
    (``1/eps``), any vector much longer than ``eps`` to its unit direction. Differentiable.
    """
    return x * torch.rsqrt((x * x).sum(-1, keepdim=True) + eps * eps)


def _check_vertices(vertices: torch.Tensor) -> None:
    if not torch.is_tensor(vertices) or not vertices.is_floating_point():
        raise ValueError("vertices must be a floating-point tensor")
    if vertices.ndim < 2 or vertices.shape[-1] != 3:
        raise ValueError(f"vertices must have shape [V,3] or [B,V,3], got {tuple(vertices.shape)}")


def _face_cross(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Unnormalised face normals ``(b-a) x (c-a)`` ``[...,F,3]``; their length is twice the area."""
    f = faces.shape[0]
    corners = vertices.index_select(-2, faces.reshape(-1))
    corners = corners.reshape(*vertices.shape[:-2], f, 3, 3)
    a, b, c = corners.unbind(-2)
    return torch.linalg.cross(b - a, c - a, dim=-1)


def face_normals(vertices: torch.Tensor, faces: torch.Tensor, eps: float = _EPS) -> torch.Tensor:
    """Unit front normals of the faces.

    Args:
        vertices: ``[V,3]`` or ``[B,V,3]`` float32/float64 (any leading dims), differentiable.
        faces: ``[F,3]`` integer, counter-clockwise seen from the front.
        eps: normalisation epsilon (see :func:`safe_normalize`).

    Returns:
        ``[F,3]`` or ``[B,F,3]``, same dtype/device as ``vertices``. A zero-area face gets a zero
        (not NaN) normal, and a finite gradient.
    """
    _check_vertices(vertices)
    faces = check_faces(faces, vertices.device)
    return safe_normalize(_face_cross(vertices, faces), eps)


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor, eps: float = _EPS, *,
                   backend: str = "auto") -> torch.Tensor:
    """Area-weighted unit vertex normals.

    Each vertex sums the unnormalised cross products of its faces (so larger faces weigh more,
    and slivers barely count), then the sum is normalised. O(F) through ``index_add``.

    Args:
        vertices: ``[V,3]`` or ``[B,V,3]`` float32/float64 (any leading dims), differentiable.
        faces: ``[F,3]`` integer, counter-clockwise seen from the front.
        eps: normalisation epsilon (see :func:`safe_normalize`).
        backend: ``"torch"`` always runs the torch composition; ``"auto"``, ``"cpu"`` and
            ``"cuda"`` take the native op where it applies (below). The Renderer leaves the
            default, whatever its own backend: its torch and native renders then share the
            same normals bit for bit, which its tests compare exactly.

    Returns:
        Same shape, dtype and device as ``vertices``. Vertices used by no face (or whose face
        normals cancel) get a zero normal.

    On the CPU, once the native extension is loaded, this runs as one native op with an
    analytic backward pass (``_native.native_vertex_normals``; not twice differentiable);
    elsewhere as the torch composition :func:`_vertex_normals_torch`.
    """
    _check_vertices(vertices)
    faces = check_faces(faces, vertices.device)
    if backend == "torch":
        return _vertex_normals_torch(vertices, faces, eps)
    topo = _topology.of(faces)
    mod = _native.mesh_module(vertices, topo)
    if mod is not None:
        return _native.native_vertex_normals(mod, vertices, topo.faces, eps)
    return _vertex_normals_torch(vertices, faces, eps)


def _vertex_normals_torch(vertices: torch.Tensor, faces: torch.Tensor,
                          eps: float = _EPS) -> torch.Tensor:
    """:func:`vertex_normals` in torch ops (``faces`` checked, on the vertices' device): the
    reference of the native op, and the path of CUDA tensors."""
    cross = _face_cross(vertices, faces)
    # One scatter for the three corners: indices [3F] against the cross products repeated 3x.
    index = _topology.of(faces).corners()
    summed = torch.zeros_like(vertices).index_add(-2, index, torch.cat([cross] * 3, dim=-2))
    return safe_normalize(summed, eps)


# ---------------------------------------------------------------------------------------------
# Light and material parameters


@dataclass
class DirectionalLight:
    """A directional light with an ambient term.

    Attributes:
        direction: ``[3]`` or ``[B,3]`` (tensor or sequence) pointing from the surface towards
            the light. Need not be unit length: the shading functions normalise it, so the raw
            tensor can be optimised directly.
        intensity: scale of the direct (diffuse and specular) light; float, 0-d tensor or ``[B]``.
        ambient: light added to ``I_l`` regardless of orientation; float, 0-d tensor or ``[B]``.

    Tensor fields may require grad.
    """

    direction: _Vector
    intensity: _Param = 1.0
    ambient: _Param = 0.0


@dataclass
class SHLight:
    """Spherical-harmonics environment light, real SH bands 0-2 (DIB-R eq. 11).

    ``coeffs`` is ``[9]`` or ``[B,9]`` (one irradiance shared by all colour channels) or ``[9,C]``
    / ``[B,9,C]`` (one set per channel, usually C = 3). The coefficients are the ``w_l^m`` of the
    paper: the irradiance is ``sum_k coeffs[k] * Y_k(N)`` directly, with no extra convolution
    constants. With ``N = (x, y, z)`` the unit normal in world coordinates (+Y up), the order is::

        k  (l, m)   Y_k(N)
        0  (0,  0)  0.282095
        1  (1, -1)  0.488603 * y
        2  (1,  0)  0.488603 * z
        3  (1,  1)  0.488603 * x
        4  (2, -2)  1.092548 * x * y
        5  (2, -1)  1.092548 * y * z
        6  (2,  0)  0.315392 * (3 z^2 - 1)
        7  (2,  1)  1.092548 * x * z
        8  (2,  2)  0.546274 * (x^2 - y^2)

    So a uniform grey environment is ``coeffs[0] = level / 0.282095`` and everything else 0.
    The tensor may require grad.
    """

    coeffs: _Vector


@dataclass
class PhongMaterial:
    """Phong material (DIB-R eq. 8).

    Attributes:
        kd: diffuse reflectance ``k_d``.
        ks: specular reflectance ``k_s``.
        shininess: specular exponent ``alpha`` (>= 0).

    Each is a float, a 0-d tensor, a ``[B]`` tensor, or a tensor with the full rank of the
    output (``[B,H,W,1]`` for a per-pixel map); tensors may require grad.
    """

    kd: _Param = 1.0
    ks: _Param = 0.4
    shininess: _Param = 10.0


# ---------------------------------------------------------------------------------------------
# Parameter alignment


def _as_tensor(x, like: torch.Tensor) -> torch.Tensor:
    """``x`` as a tensor of ``like``'s dtype/device; ``.to`` keeps tensors in the graph."""
    if torch.is_tensor(x):
        return x.to(dtype=like.dtype, device=like.device)
    return torch.as_tensor(x, dtype=like.dtype, device=like.device)


def _align(p: torch.Tensor, tail: int, ndim: int, name: str) -> torch.Tensor:
    """Reshape a parameter with ``tail`` trailing feature dims to broadcast against ``ndim`` dims.

    ``p.ndim == tail``: shared by everything, left as is. ``p.ndim == tail + 1``: one value per
    batch element, reshaped to ``[B, 1, ..., 1, *features]``. ``p.ndim == ndim``: already a
    full-rank map (e.g. per-pixel), left to ordinary broadcasting.
    """
    if p.ndim == tail or p.ndim == ndim:
        return p
    if p.ndim == tail + 1:
        ones = max(ndim - tail - 1, 0)
        return p.reshape(p.shape[0], *([1] * ones), *p.shape[1:])
    raise ValueError(
        f"{name} has shape {tuple(p.shape)}: expected {tail} (shared), {tail + 1} (batched) or "
        f"{ndim} (full) dimensions"
    )


def _scalar(x: _Param, normals: torch.Tensor, name: str) -> torch.Tensor:
    return _align(_as_tensor(x, normals), 0, normals.ndim, name)


def _direction(x: _Vector, normals: torch.Tensor, name: str) -> torch.Tensor:
    d = _as_tensor(x, normals)
    if d.ndim == 0 or d.shape[-1] != 3:
        raise ValueError(f"{name} must end in a dimension of 3, got shape {tuple(d.shape)}")
    return safe_normalize(_align(d, 1, normals.ndim, name))


def _check_normals(normals: torch.Tensor, name: str = "normals") -> None:
    if not torch.is_tensor(normals) or not normals.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor")
    if normals.ndim == 0 or normals.shape[-1] != 3:
        raise ValueError(f"{name} must have shape [...,3], got {tuple(normals.shape)}")


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(-1, keepdim=True)


# ---------------------------------------------------------------------------------------------
# Lighting models


def lambertian(normals: torch.Tensor, light: DirectionalLight, kd: _Param = 1.0) -> torch.Tensor:
    """Lambertian lighting factor ``I_l = ambient + intensity * kd * max(L.N, 0)`` (eq. 10).

    Args:
        normals: ``[...,3]`` float32/float64, e.g. ``[B,H,W,3]`` interpolated normals; need not
            be unit (normalised here). Zero normals (background pixels) give ``ambient`` and a
            zero gradient.
        light: :class:`DirectionalLight`; ``direction`` ``[3]`` or ``[B,3]``, batch aligned with
            the leading dim of ``normals``.
        kd: diffuse reflectance; float, 0-d, ``[B]`` or full-rank (``[...,1]``) tensor.

    Returns:
        ``I_l [...,1]`` (the batch dim of the light is broadcast in if ``normals`` has none).
        Differentiable w.r.t. ``normals``, the light's direction/intensity/ambient and ``kd``.
    """
    _check_normals(normals)
    n = safe_normalize(normals)
    l_dir = _direction(light.direction, normals, "light.direction")
    # relu, not clamp: its gradient at exactly 0 is 0, so zero (background) normals get none.
    cos = torch.relu(_dot(n, l_dir))
    intensity = _scalar(light.intensity, normals, "light.intensity")
    ambient = _scalar(light.ambient, normals, "light.ambient")
    return ambient + intensity * _scalar(kd, normals, "kd") * cos


def phong(
    normals: torch.Tensor,
    view_dirs: torch.Tensor,
    light: DirectionalLight,
    material: PhongMaterial | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Phong lighting factors (eq. 8-9).

    ``I_l = ambient + intensity * kd * max(L.N, 0)``,
    ``I_s = intensity * ks * max(R.V, 0)^shininess`` with ``R = 2 (N.L) N - L``, and
    ``I_s = 0`` wherever ``L.N <= 0`` (no highlight on the unlit side).

    Args:
        normals: ``[...,3]`` surface normals (need not be unit).
        view_dirs: ``[...,3]`` (or ``[B,3]``/``[3]``, aligned like the light) directions from the
            surface towards the eye (need not be unit).
        light: :class:`DirectionalLight`.
        material: :class:`PhongMaterial`; default ``PhongMaterial()`` (kd 1, ks 0.4, shininess 10).

    Returns:
        ``(I_l [...,1], I_s [...,1])``. Differentiable w.r.t. normals, view directions, the light
        and every material parameter; the gradient w.r.t. ``shininess`` stays finite where
        ``R.V <= 0`` (it is zero there).
    """
    if material is None:
        material = PhongMaterial()
    _check_normals(normals)
    _check_normals(view_dirs, "view_dirs")
    n = safe_normalize(normals)
    l_dir = _direction(light.direction, normals, "light.direction")
    v = _direction(view_dirs, normals, "view_dirs")

    n_dot_l = _dot(n, l_dir)
    intensity = _scalar(light.intensity, normals, "light.intensity")
    ambient = _scalar(light.ambient, normals, "light.ambient")
    kd = _scalar(material.kd, normals, "material.kd")
    ks = _scalar(material.ks, normals, "material.ks")
    shininess = _scalar(material.shininess, normals, "material.shininess")

    i_l = ambient + intensity * kd * torch.relu(n_dot_l)

    r = 2.0 * n_dot_l * n - l_dir
    r_dot_v = _dot(r, v)
    lit = (n_dot_l > 0) & (r_dot_v > 0)
    # Clamp the base so the power and both its derivatives are finite everywhere, then select:
    # where() sends a zero gradient to the discarded branch, which is finite by construction.
    spec = torch.clamp(r_dot_v, min=_POW_FLOOR).pow(shininess)
    i_s = intensity * ks * torch.where(lit, spec, torch.zeros_like(spec))
    return i_l, i_s


def _sh_basis(n: torch.Tensor) -> torch.Tensor:
    """Real SH basis ``[...,9]`` of unit directions ``[...,3]``, in :class:`SHLight` order."""
    x, y, z = n.unbind(-1)
    return torch.stack(
        [
            torch.full_like(x, 0.282095),
            0.488603 * y,
            0.488603 * z,
            0.488603 * x,
            1.092548 * x * y,
            1.092548 * y * z,
            0.315392 * (3.0 * z * z - 1.0),
            1.092548 * x * z,
            0.546274 * (x * x - y * y),
        ],
        dim=-1,
    )


def sh_irradiance(normals: torch.Tensor, sh: SHLight) -> torch.Tensor:
    """Spherical-harmonics lighting factor ``I_l = sum_k c_k Y_k(N)`` (eq. 11).

    Args:
        normals: ``[...,3]`` float32/float64 (need not be unit; zero normals evaluate the basis at
            the zero vector, i.e. ``0.282095 c_0 - 0.315392 c_6``).
        sh: :class:`SHLight`; ``coeffs`` ``[9]``/``[B,9]`` (shared by channels) or
            ``[9,C]``/``[B,9,C]`` (per channel), batch aligned with the leading dim of ``normals``.

    Returns:
        ``[...,1]`` for shared coefficients, ``[...,C]`` for per-channel ones. Not clamped: a
        badly fitted environment can give negative light. Differentiable w.r.t. ``normals`` and
        the coefficients.
    """
    _check_normals(normals)
    c = _as_tensor(sh.coeffs, normals)
    # Bring the coefficients to [9, C] or [B, 9, C].
    if c.ndim == 1 and c.shape[0] == 9:
        c = c.unsqueeze(-1)
    elif c.ndim == 2 and c.shape[1] == 9:
        c = c.unsqueeze(-1)
    elif not ((c.ndim == 2 and c.shape[0] == 9) or (c.ndim == 3 and c.shape[1] == 9)):
        raise ValueError(
            f"SH coefficients must be [9], [B,9], [9,C] or [B,9,C], got {tuple(c.shape)}"
        )
    basis = _sh_basis(safe_normalize(normals)).unsqueeze(-1)  # [..., 9, 1]
    c = _align(c, 2, basis.ndim, "sh.coeffs")
    return (basis * c).sum(-2)


def shade(
    base_color: torch.Tensor, i_l: torch.Tensor, i_s: torch.Tensor | None = None
) -> torch.Tensor:
    """Compose the lit colour ``I = I_l * I_c + I_s`` (eq. 7).

    Args:
        base_color: ``I_c [...,3]`` linear base colour (vertex colours or texture).
        i_l: ``[...,1]`` or ``[...,3]`` lighting factor that multiplies the colour.
        i_s: optional ``[...,1]`` or ``[...,3]`` additive (specular) term.

    Returns:
        ``[...,3]`` (broadcast shape), not clamped. Differentiable w.r.t. all inputs.
    """
    out = i_l * base_color
    return out if i_s is None else out + i_s
