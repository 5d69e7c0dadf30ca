"""Native CPU visibility on stacked layers: many screen-filling triangles whose depths are
equal (ties go to the lower face), a few ulps apart, or crossing, in shuffled face order.
Every tile is then fully covered by early faces, so the CPU tile pass skips later faces by
their nearest possible depth, and evaluates a tile row as vector lanes: the face per pixel
must stay exactly that of a dense evaluation of the kernel's float32 fragment test (every
face at every pixel, the same operations one at a time in torch, ties to the lower face)."""

import pytest
import torch

from render_core import _build
from render_core._native import native_visibility

pytestmark = pytest.mark.skipif(_build.native_module("cpu") is None,
                                reason="native cpu extension not built")


def layered_scene(seed: int, layers: int = 24):
    """clip [1,V,4] float32 of `layers` screen-covering triangle pairs, faces [F,3]."""
    g = torch.Generator().manual_seed(seed)
    base = torch.tensor([0.31, -0.2, 0.05], dtype=torch.float32)[seed % 3]
    verts, faces = [], []
    corners = torch.tensor([[-1.3, -1.3], [1.3, -1.3], [1.3, 1.3], [-1.3, 1.3]])
    w_tie = 0.5 + 1.5 * torch.rand(4, generator=g)
    for k in range(layers):
        kind = k % 3
        w = 0.5 + 1.5 * torch.rand(4, generator=g)  # perspective: z/w and x/w vary
        if kind == 0:  # the same triangles at the shared depth: exact ties between these layers
            z = torch.full((4,), float(base))
            w = w_tie
        elif kind == 1:  # flat, a few ulps nearer or farther
            steps = int(torch.randint(-3, 4, (1,), generator=g))
            z = torch.full((4,), float(base))
            for _ in range(abs(steps)):
                z = torch.nextafter(z, torch.full_like(z, -1.0 if steps < 0 else 1.0))
        else:  # tilted through the shared depth: crosses the flat layers inside the image
            tilt = (torch.rand(2, generator=g) - 0.5) * 0.02
            z = base + corners[:, 0] * tilt[0] + corners[:, 1] * tilt[1]
        v = torch.stack([corners[:, 0] * w, corners[:, 1] * w, z * w, w], 1)
        o = 4 * k
        verts.append(v)
        faces += [[o, o + 1, o + 2], [o, o + 2, o + 3]]
    clip = torch.cat(verts).to(torch.float32).unsqueeze(0)
    faces = torch.tensor(faces, dtype=torch.long)
    perm = torch.randperm(faces.shape[0], generator=g)  # layers in shuffled face order
    return clip, faces[perm]


def dense_visibility(clip: torch.Tensor, faces: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Nearest face per pixel [H,W] of image 0, by the operations of the kernel's float32
    fragment test (homogeneous edge functions, inclusive edges, -1 <= z <= 1), each rounded on
    its own; depth ties go to the lower face. For faces in front of the eye with a pixel box
    covering the image (the kernel's setup rejects nothing here)."""
    v = clip[0][faces]  # [F,3,4] float32
    x, y, z, ww = v[..., 0], v[..., 1], v[..., 2], v[..., 3]
    e = []
    for k in range(3):
        a, b = (k + 1) % 3, (k + 2) % 3
        e.append((y[:, a] * ww[:, b] - ww[:, a] * y[:, b],
                  ww[:, a] * x[:, b] - x[:, a] * ww[:, b],
                  x[:, a] * y[:, b] - y[:, a] * x[:, b]))
    two_w = torch.tensor(2.0 / w, dtype=torch.float32)
    two_h = torch.tensor(2.0 / h, dtype=torch.float32)
    px = (torch.arange(w, dtype=torch.float32) + 0.5) * two_w - 1.0
    py = 1.0 - (torch.arange(h, dtype=torch.float32) + 0.5) * two_h
    px, py = px.view(1, 1, w), py.view(1, h, 1)
    ev = [(px * c0.view(-1, 1, 1) + py * c1.view(-1, 1, 1)) + c2.view(-1, 1, 1)
          for c0, c1, c2 in e]  # [F,H,W] each
    den = (ev[0] + ev[1]) + ev[2]
    pos = (ev[0] >= 0) & (ev[1] >= 0) & (ev[2] >= 0) & (den > 0)
    neg = (ev[0] <= 0) & (ev[1] <= 0) & (ev[2] <= 0) & (den < 0)
    wk = [ww[:, k, None, None] for k in range(3)]
    zk = [z[:, k, None, None] for k in range(3)]
    num_w = (ev[0] * wk[0] + ev[1] * wk[1]) + ev[2] * wk[2]
    num_z = (ev[0] * zk[0] + ev[1] * zk[1]) + ev[2] * zk[2]
    zz = num_z / num_w
    ok = (pos | neg) & (num_w != 0) & (zz >= -1) & (zz <= 1)
    # the kernel orders depths by their bits: -0 below +0
    bits = zz.view(torch.int32)
    order = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
    best = torch.where(ok, order, torch.full_like(order, 0x7FFFFFFF)).min(0, keepdim=True).values
    win = ok & (order == best)
    fidx = torch.arange(faces.shape[0]).view(-1, 1, 1).expand_as(win)
    first = torch.where(win, fidx, torch.full_like(fidx, faces.shape[0])).min(0).values
    return torch.where(first == faces.shape[0], torch.full_like(first, -1), first)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_stacked_layers_match_reference_exactly(seed):
    clip, faces = layered_scene(seed)
    h, w = 37, 45  # partial tiles on two sides
    ref = dense_visibility(clip, faces, h, w).unsqueeze(0)
    got = native_visibility("cpu", clip, faces, h, w)
    assert (ref >= 0).all()  # every pixel covered: the tiles fill up early
    assert len(torch.unique(ref)) > 3  # several layers win somewhere
    assert torch.equal(got, ref)
