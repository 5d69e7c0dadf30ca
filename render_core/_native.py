"""The native ops: autograd Functions over the kernels of the built extension (``_build.py``).

Each op has the contract and numerics of its torch reference in ``_torch_ref.py``; ``name`` is
the backend, ``"cpu"`` or ``"cuda"``, already resolved by the caller, and every tensor must be
on that backend's device. The kernels of a backend are named ``<op>_<backend>`` in the module
(``soft_forward_cpu``, ``soft_forward_cuda``, ...), found by :func:`_kernel`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.autograd.function import once_differentiable

from . import _build, _glue_threads
from ._build import native_module
from ._torch_ref import cutoff2

_deterministic = False


def set_deterministic(flag: bool = True) -> None:
    """Use order-independent reductions in native backward passes (matters on CUDA only).

    The CPU backend is always deterministic. The CUDA backward passes add partial gradients
    into the vertices with atomics by default (fast; the last bits vary run to run): per
    (tile, face) for the soft silhouette, per pixel for barycentrics and interpolation. In
    deterministic mode they write per-(tile, face) slots or per-face sums (pixels grouped by
    face) and sum them per vertex in a fixed order, as the CPU backend always does.
    ``torch.use_deterministic_algorithms(True)`` selects the same mode.
    """
    global _deterministic
    _deterministic = bool(flag)


def is_deterministic() -> bool:
    """Whether native backward passes use the deterministic reduction."""
    return _deterministic or torch.are_deterministic_algorithms_enabled()


def empty_cache() -> int:
    """Free the host memory the native kernels keep between calls; the bytes it spanned.

    The CPU soft silhouette keeps its buffer of pixel-face pairs (saved for the backward pass)
    from one call to the next, so that a fit's steps reuse memory already mapped instead of
    faulting it in again every step: tens of MB at 128x128, a few hundred at 256x256 with 20k
    faces (at most 512 MiB, per float type). Call this after a fit to give that memory back, as
    ``torch.cuda.empty_cache()`` does for the CUDA caching allocator; a buffer still held by a
    live autograd graph is freed with the graph. The fragment ops' backward passes also keep
    their last groupings (pixels by face, corners by vertex, with a copy of the keys they were
    made from, reused only for equal keys): those go too. Builds nothing: with no native module
    loaded it frees nothing and returns 0.
    """
    freed = 0
    for mod in list(_build._modules.values()):
        if mod is not None and hasattr(mod, "release_buffers_cpu"):
            freed += int(mod.release_buffers_cpu())
    return freed


def _kernel(name: str, op: str) -> Callable:
    """The kernel ``op`` (e.g. ``"soft_forward"``) of backend ``name`` ("cpu" or "cuda");
    inside ``_glue_threads.serial_glue`` a CPU kernel runs on the intra-op threads it set
    aside."""
    mod = native_module(name)
    assert mod is not None, name
    fn = getattr(mod, f"{op}_{name}")
    return fn if name != "cpu" else _glue_threads.kernel(fn)


def _cuda_flags(name: str) -> tuple[bool, ...]:
    """The trailing arguments of a barycentrics/interpolation backward kernel: only the CUDA
    ones take the deterministic flag (the CPU ones always reduce in a fixed order)."""
    return (is_deterministic(),) if name == "cuda" else ()


def _check_device(name: str, *tensors: torch.Tensor) -> None:
    want = "cuda" if name == "cuda" else "cpu"
    for t in tensors:
        if t.device.type != want:
            raise ValueError(f"backend {name!r} needs {want} tensors, got {t.device}")


def native_visibility(name: str, clip: torch.Tensor, faces: torch.Tensor, h: int, w: int):
    """Nearest face per pixel with a native kernel: clip [B,V,4], faces [F,3] -> [B,H,W] int64.

    Same contract as ``_torch_ref.visibility`` (float32 numerics, ties to the lower face).
    """
    _check_device(name, clip, faces)
    fwd = _kernel(name, "vis_forward")
    return fwd(clip.detach().to(torch.float32).contiguous(), faces.contiguous(), h, w)


class _NativeSoftSilhouette(torch.autograd.Function):
    """alpha = 1 - prod_j (1 - exp(-d_j / sigma)) with native forward and backward passes."""

    @staticmethod
    def forward(ctx, xy, valid, faces, h, w, sigma, eps, name, covered):  # type: ignore[override]
        cut2 = cutoff2(sigma, eps)
        # With a gradient to come, the CPU forward saves its pixel-face pairs for the backward.
        pairs = name == "cpu" and ctx.needs_input_grad[0]
        if covered is not None and name == "cpu":
            saved = _kernel(name, "soft_forward_covered")(
                xy.detach(), valid, faces, covered, h, w, sigma, cut2, pairs
            )
        else:
            op = "soft_forward_pairs" if pairs else "soft_forward"
            saved = _kernel(name, op)(xy.detach(), valid, faces, h, w, sigma, cut2)
        ctx.name, ctx.dims = name, (h, w, sigma, cut2)
        ctx.save_for_backward(xy, faces, *saved)
        return saved[0]

    @staticmethod
    def backward(ctx, grad_alpha):  # type: ignore[override]
        if not ctx.needs_input_grad[0]:
            return (None,) * 9
        xy, faces, *saved = ctx.saved_tensors
        h, w, sigma, cut2 = ctx.dims
        grad_xy = _kernel(ctx.name, "soft_backward")(
            grad_alpha.contiguous(),
            xy.detach(),
            faces,
            saved,
            h,
            w,
            sigma,
            cut2,
            is_deterministic(),
        )
        return grad_xy, None, None, None, None, None, None, None, None


def native_soft_silhouette(
    name: str,
    xy: torch.Tensor,
    valid: torch.Tensor,
    faces: torch.Tensor,
    h: int,
    w: int,
    sigma: float,
    eps: float,
    covered: torch.Tensor | None = None,
) -> torch.Tensor:
    """Native DIB-R soft silhouette: alpha [B,H,W], differentiable w.r.t. ``xy``.

    xy [B,V,2] float32/float64 isotropic-NDC vertex positions (see ``_torch_ref.iso_xy``),
    valid [B,F] bool faces in front of the eye, faces [F,3] int64. Same contract as
    ``_torch_ref.SoftSilhouette``. ``covered`` [B,H,W] bool, where given, is the coverage the
    CPU kernels take instead of computing it (see ``rasterize.soft_silhouette``).
    """
    _check_device(name, xy, valid, faces)
    return _NativeSoftSilhouette.apply(xy, valid, faces, h, w, sigma, eps, name, covered)


class _NativeBarycentrics(torch.autograd.Function):
    """(bary, depth) of each pixel's face with native forward and backward passes."""

    @staticmethod
    def forward(ctx, clip, faces, face_idx, name):  # type: ignore[override]
        bary, depth = _kernel(name, "bary_forward")(clip.detach(), faces, face_idx)
        ctx.name = name
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(clip, faces, face_idx)
        return bary, depth

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_bary, grad_depth):  # type: ignore[override]
        if not ctx.needs_input_grad[0] or (grad_bary is None and grad_depth is None):
            return None, None, None, None
        clip, faces, face_idx = ctx.saved_tensors
        args = (clip.detach(), faces, face_idx, grad_bary, grad_depth)
        grad = _kernel(ctx.name, "bary_backward")(*args, *_cuda_flags(ctx.name))
        return grad, None, None, None


def native_barycentrics(
    name: str, clip: torch.Tensor, faces: torch.Tensor, face_idx: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Native ``_torch_ref.barycentrics``: clip [B,V,4] float32/float64, faces [F,3] int64
    (F > 0), face_idx [B,H,W] int64 with entries in [-1, F) -> bary [B,H,W,3], depth [B,H,W],
    both differentiable w.r.t. ``clip``. Same contract and numerics as the torch version.
    """
    _check_device(name, clip, faces, face_idx)
    return _NativeBarycentrics.apply(clip.contiguous(), faces.contiguous(), face_idx, name)


class _NativeInterpolate(torch.autograd.Function):
    """sum_k bary_k attr[faces[face_idx, k]] with native forward and backward passes."""

    @staticmethod
    def forward(ctx, attr, bary, faces, face_idx, name):  # type: ignore[override]
        out = _kernel(name, "interp_forward")(attr.detach(), faces, face_idx, bary.detach())
        ctx.name = name
        ctx.save_for_backward(attr, bary, faces, face_idx)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):  # type: ignore[override]
        if not any(ctx.needs_input_grad[:2]):
            return None, None, None, None, None
        attr, bary, faces, face_idx = ctx.saved_tensors
        args = (attr.detach(), faces, face_idx, bary.detach(), grad_out)
        grad_attr, grad_bary = _kernel(ctx.name, "interp_backward")(*args, *_cuda_flags(ctx.name))
        return (
            grad_attr if ctx.needs_input_grad[0] else None,
            grad_bary if ctx.needs_input_grad[1] else None,
            None,
            None,
            None,
        )


def native_interpolate(
    name: str, attr: torch.Tensor, bary: torch.Tensor, faces: torch.Tensor, face_idx: torch.Tensor
) -> torch.Tensor:
    """Native ``_torch_ref.interpolate_attributes``: attr [BA,V,C] (BA = 1 or B), bary
    [B,H,W,3] of attr's float dtype, faces [F,3] int64 indices into attr (F > 0), face_idx
    [B,H,W] int64 in [-1, F) -> [B,H,W,C] (0 on background), differentiable w.r.t. ``attr``
    and ``bary``.
    """
    _check_device(name, attr, bary, faces, face_idx)
    return _NativeInterpolate.apply(
        attr.contiguous(), bary.contiguous(), faces.contiguous(), face_idx.contiguous(), name
    )


class _NativeImageLosses(torch.autograd.Function):
    """(soft IoU loss, sRGB L1 loss) of a render against its targets in one native pass, and
    the hard IoU's pixel counts (not differentiable)."""

    @staticmethod
    def forward(ctx, rgb, alpha, t_rgb, t_mask, name):  # type: ignore[override]
        out, enc = _kernel(name, "image_loss_forward")(rgb.detach(), alpha.detach(), t_rgb,
                                                       t_mask)
        ctx.name = name
        ctx.save_for_backward(rgb, alpha, t_rgb, t_mask, out, enc)
        counts = out[2 + 2 * rgb.shape[0]:].view(-1, 2)
        ctx.mark_non_differentiable(counts)
        return out[0], out[1], counts

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_iou, grad_l1, _grad_counts):  # type: ignore[override]
        rgb, alpha, t_rgb, t_mask, out, enc = ctx.saved_tensors
        grad = torch.stack([grad_iou, grad_l1])
        g_rgb, g_alpha = _kernel(ctx.name, "image_loss_backward")(
            rgb.detach(), alpha.detach(), t_rgb, t_mask, out, enc, grad)
        return (g_rgb if ctx.needs_input_grad[0] else None,
                g_alpha if ctx.needs_input_grad[1] else None, None, None, None)


def native_image_losses(name: str, rgb: torch.Tensor, alpha: torch.Tensor, t_rgb: torch.Tensor,
                        t_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Native ``render_core._fused.image_losses``: rgb [B,H,W,3] linear, alpha [B,H,W], t_rgb
    [B,H,W,3] sRGB and t_mask [B,H,W] (not differentiable), all of one float dtype ->
    (iou loss, l1 loss), 0-d, differentiable w.r.t. ``rgb`` and ``alpha``, and the hard IoU's
    pixel counts [B,2] (intersection, union of ``alpha > 0.5`` and ``t_mask > 0.5``; in the
    float dtype, exact integers; not differentiable)."""
    _check_device(name, rgb, alpha, t_rgb, t_mask)
    return _NativeImageLosses.apply(rgb, alpha, t_rgb.contiguous(), t_mask.contiguous(), name)


class _NativeAntialias(torch.autograd.Function):
    """Edge antialiasing with native forward and backward passes."""

    @staticmethod
    def forward(ctx, color, clip, face_idx, depth, faces, topo, name):  # type: ignore[override]
        args = (face_idx, depth, clip.detach(), faces, topo)
        out = _kernel(name, "aa_forward")(color.detach(), *args)
        ctx.name = name
        ctx.save_for_backward(color, clip, face_idx, depth, faces, topo)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):  # type: ignore[override]
        if not any(ctx.needs_input_grad[:2]):
            return (None,) * 7
        color, clip, face_idx, depth, faces, topo = ctx.saved_tensors
        args = (color.detach(), face_idx, depth, clip.detach(), faces, topo, grad_out)
        grad_color, grad_clip = _kernel(ctx.name, "aa_backward")(*args, *_cuda_flags(ctx.name))
        return (
            grad_color if ctx.needs_input_grad[0] else None,
            grad_clip if ctx.needs_input_grad[1] else None,
            None,
            None,
            None,
            None,
            None,
        )


def native_antialias(
    name: str,
    color: torch.Tensor,
    face_idx: torch.Tensor,
    depth: torch.Tensor,
    clip: torch.Tensor,
    faces: torch.Tensor,
    topo: torch.Tensor,
) -> torch.Tensor:
    """Native ``_torch_ref.antialias``: color [B,H,W,C] float32/float64, face_idx [B,H,W]
    int64, depth [B,H,W] and clip [B,V,4] of color's dtype, faces and topo [F,3] int64 ->
    [B,H,W,C], differentiable w.r.t. ``color`` and ``clip``. Same contract as the torch one.
    """
    _check_device(name, color, face_idx, depth, clip, faces, topo)
    return _NativeAntialias.apply(
        color.contiguous(),
        clip.contiguous(),
        face_idx.contiguous(),
        depth.contiguous(),
        faces.contiguous(),
        topo.contiguous(),
        name,
    )


def native_nmr_grad(name: str, color, face_idx, depth, xy, z, valid, grad_out) -> torch.Tensor:
    """Native ``_nmr_ref.nmr_grad_xy``: the NMR gradient dL/d(screen X, Y) [B,F,3,2] of every
    face corner (same arguments, same numerics; nothing differentiated)."""
    _check_device(name, color, face_idx, depth, xy, z, valid, grad_out)
    return _kernel(name, "nmr_backward")(
        color.contiguous(), face_idx.contiguous(), depth.contiguous(), xy.contiguous(),
        z.contiguous(), valid.contiguous(), grad_out.contiguous())


class _NativeSoftRas(torch.autograd.Function):
    """SoftRas colour and silhouette with native forward and backward passes."""

    @staticmethod
    def forward(ctx, xy, zn, colors, valid, faces, bg, dims, name):  # type: ignore[override]
        h, w, sigma, gamma, eps = dims
        cut2 = cutoff2(sigma)
        args = (xy.detach(), zn.detach(), colors.detach(), valid, faces, bg)
        rgb, alpha, *saved = _kernel(name, "softras_forward")(
            *args, h, w, sigma, gamma, eps, cut2)
        ctx.name, ctx.dims = name, (h, w, sigma, gamma, eps, cut2)
        ctx.save_for_backward(xy, zn, colors, valid, faces, bg, rgb, alpha, *saved)
        return rgb, alpha

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_rgb, grad_alpha):  # type: ignore[override]
        if not any(ctx.needs_input_grad[:3]):
            return (None,) * 8
        xy, zn, colors, valid, faces, bg, *saved = ctx.saved_tensors
        g_xy, g_zn, g_col = _kernel(ctx.name, "softras_backward")(
            grad_rgb.contiguous(), grad_alpha.contiguous(), xy.detach(), zn.detach(),
            colors.detach(), valid, faces, bg, saved, *ctx.dims, *_cuda_flags(ctx.name))
        need = ctx.needs_input_grad
        return (g_xy if need[0] else None, g_zn if need[1] else None,
                g_col if need[2] else None, None, None, None, None, None)


SOFTRAS_MAX_CHANNELS = 4
"""Colour channels the native SoftRas kernels take (``SR_MAX_C`` in csrc/softras_kernels.h);
more go through the torch reference."""


def native_softras(name: str, xy: torch.Tensor, zn: torch.Tensor, colors: torch.Tensor,
                   valid: torch.Tensor, faces: torch.Tensor, bg: torch.Tensor, h: int, w: int,
                   sigma: float, gamma: float, eps: float):
    """Native ``_softras_ref.softras``: xy [B,V,2] isotropic-NDC positions, zn [B,V] depths
    (1 near, 0 far), colors [B,V,C] (C <= 4), all of one float dtype; valid [B,F] bool,
    faces [F,3] int64, bg [C] (not differentiable) -> (rgb [B,H,W,C], alpha [B,H,W]),
    differentiable w.r.t. ``xy``, ``zn`` and ``colors``."""
    _check_device(name, xy, zn, colors, valid, faces, bg)
    return _NativeSoftRas.apply(xy.contiguous(), zn.contiguous(), colors.contiguous(), valid,
                                faces.contiguous(), bg.contiguous(),
                                (h, w, sigma, gamma, eps), name)


class _NativeLambertian(torch.autograd.Function):
    """Lambertian shading of covered pixels (``_fused.lambertian_covered``), native passes."""

    @staticmethod
    def forward(ctx, attrs, direction, intensity, ambient, kd, bidx, values, slots, eps,
                name):  # type: ignore[override]
        args = (bidx, direction, intensity, ambient, kd, values, slots, eps)
        ctx.name, ctx.consts = name, (values, slots, eps)
        out, aux, light = _kernel(name, "shade_forward")(attrs, *args)
        ctx.save_for_backward(attrs, direction, intensity, ambient, kd, bidx, aux, light)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):  # type: ignore[override]
        attrs, direction, intensity, ambient, kd, bidx, aux, light = ctx.saved_tensors
        need = ctx.needs_input_grad
        grads = _kernel(ctx.name, "shade_backward")(
            attrs, bidx, direction, intensity, ambient, kd, *ctx.consts, [aux, light], grad,
            any(need[1:5]))
        return (*(g if n else None for g, n in zip(grads, need[:5], strict=True)),
                None, None, None, None, None)


def native_lambertian(name: str, attrs: torch.Tensor, direction: torch.Tensor, scalars: tuple,
                      values: list[float], bidx: torch.Tensor | None, slots: int,
                      eps: float) -> torch.Tensor:
    """Native ``render_core._fused.lambertian_covered``: attrs [P,6] (colour, normal), direction
    [3] or [1 or slots,3], scalars (intensity, ambient, kd) each a tensor of 1 or ``slots``
    values or None (then ``values`` holds the constant), bidx [P] int64 (None when ``slots``
    is 1), all of one float dtype -> lit [P,3], differentiable w.r.t. every tensor but
    ``bidx``."""
    _check_device(name, attrs, direction)
    return _NativeLambertian.apply(attrs, direction, *scalars, bidx, values, slots, eps, name)


# ---------------------------------------------------------------------------------------------
# Mesh ops: area-weighted vertex normals (shading.vertex_normals) and the mesh regularisers of
# losses.py, as serial CPU loops with analytic backward passes (csrc/mesh_ops.h). Each replaces
# a composition of many small torch ops and autograd nodes. The public functions take this
# path only where it applies (see :func:`mesh_module`) and otherwise run their torch code. The
# backward passes are once-differentiable: no double backward through them.

# Bits of ``want`` (MESH_LAPLACIAN, MESH_NORMAL, MESH_EDGE in csrc/mesh_ops.h).
MESH_LAPLACIAN, MESH_NORMAL, MESH_EDGE = 1, 2, 4


def mesh_module(vertices: torch.Tensor, topo) -> object | None:
    """The extension module for the native mesh ops on ``vertices`` with topology ``topo``
    (a ``_topology.Topology``), or None where they do not apply: vertices not float32/float64
    on the CPU, face indices outside the vertices, or the extension not loaded yet. The mesh
    ops never build the extension themselves: they use it once a native backend has loaded it
    (the Renderer and Fitter do on their first native call)."""
    if vertices.device.type != "cpu" or vertices.dtype not in (torch.float32, torch.float64):
        return None
    lo, hi = topo.index_range()
    if lo < 0 or hi >= vertices.shape[-2]:
        return None  # the torch code raises its usual error
    return loaded_module()


def loaded_module() -> object | None:
    """The native extension if this process has loaded it (any variant), else None."""
    if _build._disabled():
        return None
    for mod in list(_build._modules.values()):
        if mod is not None and hasattr(mod, "mesh_reg_forward_cpu"):
            return mod
    return None


class _NativeVertexNormals(torch.autograd.Function):
    @staticmethod
    def forward(ctx, vertices, faces, eps, mod):  # type: ignore[override]
        normals, summed = mod.vertex_normals_forward_cpu(vertices.detach(), faces, eps)
        ctx.save_for_backward(vertices, summed)
        ctx.faces, ctx.eps, ctx.mod = faces, eps, mod
        return normals

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):  # type: ignore[override]
        vertices, summed = ctx.saved_tensors
        g = ctx.mod.vertex_normals_backward_cpu(vertices.detach(), ctx.faces, summed, grad,
                                                ctx.eps)
        return g, None, None, None


def native_vertex_normals(mod, vertices: torch.Tensor, faces: torch.Tensor,
                          eps: float) -> torch.Tensor:
    """``shading.vertex_normals`` natively: vertices [...,V,3] on the CPU, faces [F,3]
    contiguous int64 with indices in range (see :func:`mesh_module`)."""
    return _NativeVertexNormals.apply(vertices, faces.contiguous(), float(eps), mod)


class _NativeMeshRegularizers(torch.autograd.Function):
    @staticmethod
    def forward(ctx, vertices, mod, topo_args, want, eps):  # type: ignore[override]
        lap, normal, edge, saved = mod.mesh_reg_forward_cpu(vertices.detach(), *topo_args, want,
                                                            eps)
        ctx.save_for_backward(vertices, saved)
        ctx.mod, ctx.topo_args, ctx.want = mod, topo_args, want
        return lap, normal, edge

    @staticmethod
    @once_differentiable
    def backward(ctx, g_lap, g_normal, g_edge):  # type: ignore[override]
        vertices, saved = ctx.saved_tensors
        g = ctx.mod.mesh_reg_backward_cpu(vertices.detach(), *ctx.topo_args, ctx.want, saved,
                                          float(g_lap), float(g_normal), float(g_edge))
        return g, None, None, None, None


def native_mesh_regularizers(mod, vertices: torch.Tensor, topo, want: int,
                             eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(laplacian, normal consistency, edge length) of ``losses`` natively, each a 0-d tensor
    (0 where not in ``want``, a mask of MESH_*): vertices [...,V,3] on the CPU, ``topo`` the
    faces' ``_topology.Topology`` with indices in range (see :func:`mesh_module`)."""
    n = vertices.shape[-2]
    degree, _ = topo.degree(n, vertices.dtype)
    pairs = topo.adjacency() if want & MESH_NORMAL else _NO_PAIRS
    args = (topo.faces.contiguous(), topo.edges(), pairs, degree, topo.n_connected(n))
    return _NativeMeshRegularizers.apply(vertices, mod, args, int(want), float(eps))


_NO_PAIRS = torch.zeros(0, 2, dtype=torch.int64)
