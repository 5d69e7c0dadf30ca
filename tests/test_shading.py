"""Tests for render_core.shading: normals, Lambertian, Phong and spherical-harmonics lighting."""

from __future__ import annotations

import math

import pytest
import torch
from torch.autograd import gradcheck

from render_core.primitives import _icosahedron
from render_core.shading import (
    DirectionalLight,
    PhongMaterial,
    SHLight,
    face_normals,
    lambertian,
    phong,
    safe_normalize,
    sh_irradiance,
    shade,
    vertex_normals,
)


def icosahedron(dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit icosahedron (float64 before any cast), faces counter-clockwise seen from outside."""
    v, f = _icosahedron()
    return torch.tensor(v, dtype=dtype), torch.tensor(f)


def unit(*xyz: float, dtype=torch.float64) -> torch.Tensor:
    v = torch.tensor(xyz, dtype=dtype)
    return v / v.norm()


# ---------------------------------------------------------------------------------------------
# Normals


def test_single_triangle_normal_follows_ccw_winding():
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
    f = torch.tensor([[0, 1, 2]])
    assert torch.allclose(face_normals(v, f), torch.tensor([[0.0, 0, 1]]))
    assert torch.allclose(face_normals(v, f.flip(1)), torch.tensor([[0.0, 0, -1]]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_icosahedron_face_normals_outward_unit(dtype):
    v, f = icosahedron(dtype)
    n = face_normals(v, f)
    assert n.shape == (20, 3) and n.dtype == dtype
    assert torch.allclose(n.norm(dim=-1), torch.ones(20, dtype=dtype), atol=1e-6)
    centroids = v[f].mean(dim=1)
    # Outward: parallel to the centroid direction (the icosahedron is centred at the origin).
    cos = (n * safe_normalize(centroids)).sum(-1)
    assert torch.allclose(cos, torch.ones(20, dtype=dtype), atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_icosahedron_vertex_normals_are_radial(dtype):
    v, f = icosahedron(dtype)
    n = vertex_normals(v, f)
    assert n.shape == v.shape and n.dtype == dtype
    # By symmetry each vertex's five equal faces average to the radial direction.
    assert torch.allclose(n, v, atol=1e-6)


def test_normals_batched_and_broadcast():
    v, f = icosahedron()
    scale = torch.tensor([1.0, 2.0, 0.5], dtype=v.dtype).reshape(3, 1, 1)
    vb = v * scale + torch.tensor([0.3, -0.2, 0.1], dtype=v.dtype)
    fn = face_normals(vb, f)
    vn = vertex_normals(vb, f)
    assert fn.shape == (3, 20, 3) and vn.shape == (3, 12, 3)
    for b in range(3):
        assert torch.allclose(fn[b], face_normals(vb[b], f))
        assert torch.allclose(vn[b], vertex_normals(vb[b], f))


def test_vertex_normals_are_area_weighted():
    # Vertex 0 is shared by a big triangle facing +Z and a small one facing +X.
    v = torch.tensor(
        [[0.0, 0, 0], [2, 0, 0], [0, 2, 0], [0, 0.1, 0], [0, 0, 0.1]], dtype=torch.float64
    )
    f = torch.tensor([[0, 1, 2], [0, 3, 4]])
    expected = safe_normalize(torch.tensor([0.0, 0, 4]) + torch.tensor([0.01, 0, 0]))
    assert torch.allclose(vertex_normals(v, f)[0], expected.double())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_degenerate_faces_give_finite_normals_and_gradients(dtype):
    v = torch.tensor(
        [
            [0.0, 0, 0], [1, 0, 0], [0, 1, 0],  # a proper face
            [2.0, 2, 2], [2, 2, 2], [2, 2, 2],  # collapsed to a point
            [0.0, 0, 1], [1, 0, 1], [2, 0, 1],  # collinear
        ],
        dtype=dtype,
        requires_grad=True,
    )  # fmt: skip
    f = torch.tensor([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    fn = face_normals(v, f)
    vn = vertex_normals(v, f)
    assert torch.isfinite(fn).all() and torch.isfinite(vn).all()
    assert torch.allclose(fn[1:], torch.zeros(2, 3, dtype=dtype))
    weights = torch.randn_like(fn)
    (g,) = torch.autograd.grad((fn * weights).sum() + (vn * torch.randn_like(vn)).sum(), v)
    assert torch.isfinite(g).all()


def test_normals_reject_bad_shapes():
    v, f = icosahedron()
    with pytest.raises(ValueError):
        face_normals(v, f[:, :2])
    with pytest.raises(ValueError):
        vertex_normals(v[:, :2], f)
    with pytest.raises(ValueError):
        face_normals(v, f.double())


def test_normals_gradcheck():
    v, f = icosahedron()
    v = v + 0.05 * torch.randn(v.shape, generator=torch.Generator().manual_seed(0), dtype=v.dtype)
    v.requires_grad_(True)
    assert gradcheck(lambda x: face_normals(x, f), (v,))
    assert gradcheck(lambda x: vertex_normals(x, f), (v,))


# ---------------------------------------------------------------------------------------------
# Lambertian


def test_lambertian_is_kd_cos():
    n = torch.tensor([[0.0, 0, 1], [0, 1, 0], [0, 0, -1]], dtype=torch.float64)
    theta = math.radians(30.0)
    light = DirectionalLight([math.sin(theta), 0.0, math.cos(theta)])
    out = lambertian(n, light, kd=0.7)
    assert out.shape == (3, 1)
    expected = torch.tensor([[0.7 * math.cos(theta)], [0.0], [0.0]], dtype=torch.float64)
    assert torch.allclose(out, expected)


def test_lambertian_ambient_intensity_and_unnormalised_inputs():
    n = torch.tensor([0.0, 0.0, 3.0])  # length 3: normalised inside
    light = DirectionalLight(torch.tensor([0.0, 0.0, 10.0]), intensity=2.0, ambient=0.1)
    assert torch.allclose(lambertian(n, light, kd=0.5), torch.tensor([0.1 + 2.0 * 0.5]))
    back = DirectionalLight([0.0, 0.0, -1.0], ambient=0.25)
    assert torch.allclose(lambertian(n, back), torch.tensor([0.25]))


def test_lambertian_batched_light_broadcasts_over_pixels():
    b, h, w = 2, 4, 5
    n = torch.zeros(b, h, w, 3)
    n[..., 2] = 1.0
    light = DirectionalLight(torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 1.0]]))
    out = lambertian(n, light, kd=torch.tensor([1.0, 0.5]))
    assert out.shape == (b, h, w, 1)
    assert torch.allclose(out[0], torch.ones(h, w, 1))
    assert torch.allclose(out[1], torch.full((h, w, 1), 0.5 / math.sqrt(2.0)))
    # A single unbatched normal takes the light's batch.
    assert lambertian(torch.tensor([0.0, 0.0, 1.0]), light).shape == (2, 1)


def test_lambertian_zero_normal_has_zero_gradient():
    n = torch.zeros(4, 3, dtype=torch.float64, requires_grad=True)
    light = DirectionalLight([0.3, 0.4, 0.5], ambient=0.2)
    out = lambertian(n, light)
    assert torch.allclose(out, torch.full((4, 1), 0.2, dtype=torch.float64))
    (g,) = torch.autograd.grad(out.sum(), n)
    assert torch.equal(g, torch.zeros_like(g))


def test_lambertian_rejects_bad_direction():
    with pytest.raises(ValueError):
        lambertian(torch.ones(2, 3), DirectionalLight([1.0, 0.0]))


def test_lambertian_gradcheck():
    gen = torch.Generator().manual_seed(1)
    d = torch.tensor([[0.2, 0.3, 1.0], [-0.4, 0.1, 0.9]], dtype=torch.float64)
    # Half the pixels lit (normals near the light), half back-lit (near its opposite): every
    # L.N is far from the max(., 0) kink.
    sign = torch.tensor([1.0, -1.0], dtype=torch.float64).repeat(6).reshape(1, 3, 4, 1)
    noise = 0.3 * torch.randn(2, 3, 4, 3, generator=gen, dtype=torch.float64)
    n = sign * d[:, None, None, :] + noise
    dots = (safe_normalize(n) * safe_normalize(d)[:, None, None]).sum(-1)
    assert (dots.abs() > 0.3).all()
    n.requires_grad_(True)
    d.requires_grad_(True)
    intensity = torch.tensor([1.2, 0.8], dtype=torch.float64, requires_grad=True)
    kd = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)

    def fn(n_, d_, i_, kd_):
        return lambertian(n_, DirectionalLight(d_, intensity=i_, ambient=0.1), kd=kd_)

    assert gradcheck(fn, (n, d, intensity, kd))


# ---------------------------------------------------------------------------------------------
# Phong


def test_phong_highlight_peaks_where_reflection_meets_view():
    n = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    light = DirectionalLight(unit(1.0, 0.0, 1.0))  # 45 degrees: R = (-1, 0, 1)/sqrt(2)
    mat = PhongMaterial(kd=0.6, ks=0.5, shininess=20.0)
    angles = torch.linspace(-80.0, 80.0, 161, dtype=torch.float64)
    rad = torch.deg2rad(angles)
    views = torch.stack([torch.sin(rad), torch.zeros_like(rad), torch.cos(rad)], dim=-1)
    i_l, i_s = phong(n.expand(161, 3), views, light, mat)
    assert i_l.shape == i_s.shape == (161, 1)
    assert torch.allclose(i_l, torch.full_like(i_l, 0.6 / math.sqrt(2.0)))
    peak = int(i_s.argmax())
    assert angles[peak] == -45.0
    assert torch.isclose(i_s[peak, 0], torch.tensor(0.5, dtype=torch.float64))
    # Off the peak: ks * cos(delta)^shininess.
    assert math.isclose(i_s[peak + 10, 0].item(), 0.5 * math.cos(math.radians(10.0)) ** 20.0)


def test_phong_no_highlight_on_unlit_side_or_behind():
    n = torch.tensor([[0.0, 0.0, 1.0]])
    back = DirectionalLight([0.0, 0.3, -1.0])
    i_l, i_s = phong(n, torch.tensor([[0.0, -0.3, 1.0]]), back)
    assert i_l.item() == 0.0 and i_s.item() == 0.0
    front = DirectionalLight([0.0, 0.0, 1.0])
    # R = N; a view direction more than 90 degrees away gets nothing.
    _, i_s = phong(n, torch.tensor([[1.0, 0.0, -0.1]]), front)
    assert i_s.item() == 0.0


def test_phong_default_material_and_intensity():
    n = torch.tensor([0.0, 1.0, 0.0])
    light = DirectionalLight([0.0, 1.0, 0.0], intensity=2.0, ambient=0.05)
    i_l, i_s = phong(n, torch.tensor([0.0, 1.0, 0.0]), light)
    assert torch.allclose(i_l, torch.tensor([0.05 + 2.0]))
    assert torch.allclose(i_s, torch.tensor([2.0 * 0.4]))


def test_phong_shininess_gradient_finite_where_dark():
    n = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    v = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, -0.2]], dtype=torch.float64)  # 2nd: R.V < 0
    shininess = torch.tensor(5.0, dtype=torch.float64, requires_grad=True)
    ks = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    light = DirectionalLight([0.1, 0.0, 1.0])
    _, i_s = phong(n, v, light, PhongMaterial(ks=ks, shininess=shininess))
    i_s.sum().backward()
    assert torch.isfinite(shininess.grad) and torch.isfinite(ks.grad)
    assert i_s[1].item() == 0.0


def test_phong_batched_views_and_material():
    n = torch.zeros(2, 3, 3, 3)
    n[..., 2] = 1.0
    light = DirectionalLight(torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]))
    eye_dirs = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])  # [B,3] view directions
    mat = PhongMaterial(kd=1.0, ks=torch.tensor([0.2, 0.6]), shininess=8.0)
    i_l, i_s = phong(n, eye_dirs, light, mat)
    assert i_l.shape == i_s.shape == (2, 3, 3, 1)
    assert torch.allclose(i_s[0], torch.full((3, 3, 1), 0.2))
    assert torch.allclose(i_s[1], torch.full((3, 3, 1), 0.6))


def test_phong_gradcheck():
    gen = torch.Generator().manual_seed(2)
    d = torch.tensor([0.3, 0.2, 1.0], dtype=torch.float64)
    # Normals and views scattered around the configuration where the highlight is visible,
    # so R.V and L.N stay well inside (0, 1).
    n = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64) + 0.2 * torch.randn(
        6, 3, generator=gen, dtype=torch.float64
    )
    v = torch.tensor([-0.3, -0.2, 1.0], dtype=torch.float64) + 0.2 * torch.randn(
        6, 3, generator=gen, dtype=torch.float64
    )
    nn_ = safe_normalize(n)
    ld = safe_normalize(d)
    r = 2 * (nn_ * ld).sum(-1, keepdim=True) * nn_ - ld
    assert ((r * safe_normalize(v)).sum(-1) > 0.3).all()
    assert ((nn_ * ld).sum(-1) > 0.3).all()
    ks = torch.tensor(0.4, dtype=torch.float64)
    shininess = torch.tensor(7.0, dtype=torch.float64)
    for t in (n, v, d, ks, shininess):
        t.requires_grad_(True)

    def fn(n_, v_, d_, ks_, a_):
        i_l, i_s = phong(n_, v_, DirectionalLight(d_, ambient=0.1), PhongMaterial(0.8, ks_, a_))
        return i_l, i_s

    assert gradcheck(fn, (n, v, d, ks, shininess))


# ---------------------------------------------------------------------------------------------
# Spherical harmonics


def _sphere_dirs(n: int = 50, dtype=torch.float64) -> torch.Tensor:
    gen = torch.Generator().manual_seed(3)
    return safe_normalize(torch.randn(n, 3, generator=gen, dtype=dtype))


def test_sh_constant_band():
    dirs = _sphere_dirs()
    c = torch.zeros(9, dtype=torch.float64)
    c[0] = 2.0
    out = sh_irradiance(dirs, SHLight(c))
    assert out.shape == (50, 1)
    assert torch.allclose(out, torch.full_like(out, 0.282095 * 2.0))


def test_sh_first_band_and_order():
    dirs = _sphere_dirs()
    x, y, z = dirs.unbind(-1)
    # c1 -> y, c2 -> z, c3 -> x (the real SH order m = -1, 0, 1).
    for k, comp in ((1, y), (2, z), (3, x)):
        c = torch.zeros(9, dtype=torch.float64)
        c[k] = 1.5
        out = sh_irradiance(dirs, SHLight(c))
        assert torch.allclose(out[:, 0], 1.5 * 0.488603 * comp)
    # A known case: normal +Y under the y coefficient.
    up = sh_irradiance(torch.tensor([0.0, 2.0, 0.0]), SHLight([0, 1.0, 0, 0, 0, 0, 0, 0, 0]))
    assert torch.allclose(up, torch.tensor([0.488603]))


def test_sh_second_band():
    dirs = _sphere_dirs()
    x, y, z = dirs.unbind(-1)
    expected = [
        1.092548 * x * y,
        1.092548 * y * z,
        0.315392 * (3 * z * z - 1),
        1.092548 * x * z,
        0.546274 * (x * x - y * y),
    ]
    for k, e in zip(range(4, 9), expected, strict=True):
        c = torch.zeros(9, dtype=torch.float64)
        c[k] = 1.0
        assert torch.allclose(sh_irradiance(dirs, SHLight(c))[:, 0], e)


def test_sh_basis_is_orthonormal():
    # Monte Carlo over the sphere: integral of Y_i Y_j = delta_ij.
    dirs = _sphere_dirs(200_000)
    basis = torch.stack(
        [
            sh_irradiance(dirs, SHLight(torch.eye(9, dtype=torch.float64)[k]))[:, 0]
            for k in range(9)
        ],
        dim=-1,
    )
    gram = 4 * math.pi * basis.T @ basis / dirs.shape[0]
    assert torch.allclose(gram, torch.eye(9, dtype=torch.float64), atol=0.03)


def test_sh_shapes_batched_and_per_channel():
    b, h, w = 2, 3, 4
    n = safe_normalize(torch.randn(b, h, w, 3))
    c9 = torch.randn(9)
    cb9 = torch.randn(b, 9)
    cb93 = torch.randn(b, 9, 3)
    c93 = torch.randn(9, 3)
    assert sh_irradiance(n, SHLight(c9)).shape == (b, h, w, 1)
    out_b = sh_irradiance(n, SHLight(cb9))
    assert out_b.shape == (b, h, w, 1)
    assert torch.allclose(out_b[1], sh_irradiance(n[1], SHLight(cb9[1])), atol=1e-6)
    out_c = sh_irradiance(n, SHLight(cb93))
    assert out_c.shape == (b, h, w, 3)
    for ch in range(3):
        ref = sh_irradiance(n[1], SHLight(cb93[1, :, ch]))
        assert torch.allclose(out_c[1, ..., ch : ch + 1], ref, atol=1e-6)
    assert sh_irradiance(n, SHLight(c93)).shape == (b, h, w, 3)
    with pytest.raises(ValueError):
        sh_irradiance(n, SHLight(torch.randn(8)))


def test_sh_gradcheck():
    gen = torch.Generator().manual_seed(4)
    n = torch.randn(2, 5, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    c = torch.randn(2, 9, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    c_shared = torch.randn(9, generator=gen, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda n_, c_: sh_irradiance(n_, SHLight(c_)), (n, c))
    assert gradcheck(lambda n_, c_: sh_irradiance(n_, SHLight(c_)), (n, c_shared))


# ---------------------------------------------------------------------------------------------
# Composition and dtypes


def test_shade_composes_eq7():
    base = torch.tensor([[0.2, 0.4, 0.6]])
    i_l = torch.tensor([[0.5]])
    i_s = torch.tensor([[0.1]])
    assert torch.allclose(shade(base, i_l), torch.tensor([[0.1, 0.2, 0.3]]))
    assert torch.allclose(shade(base, i_l, i_s), torch.tensor([[0.2, 0.3, 0.4]]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtypes_are_preserved(dtype):
    n = torch.randn(2, 4, 3, dtype=dtype)
    light = DirectionalLight([0.0, 1.0, 1.0])
    assert lambertian(n, light).dtype == dtype
    i_l, i_s = phong(n, torch.randn(2, 4, 3, dtype=dtype), light)
    assert i_l.dtype == i_s.dtype == dtype
    assert sh_irradiance(n, SHLight(torch.randn(9))).dtype == dtype
