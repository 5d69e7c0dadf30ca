"""The loss terms of 2D-to-3D style transfer and 3D DeepDream (NMR §4.2, Gatys et al. 2016).

- :func:`gram` and :func:`style_distance`: Gram matrices of feature maps and their relative
  squared distance to a style image's, summed over layers.
- :func:`activation_norm`: the RMS of a layer's (or one channel's) activations, what DeepDream
  raises.
- :func:`edge_stretch` and :func:`color_tv`: keep a deformed mesh's edge lengths near the
  start's, and smooth a vertex-colour field (the TV term when colours, not a texture, move).

Silhouette IoU, the Laplacian and texture TV come from :mod:`render_core.losses`. All
functions are differentiable in their tensor arguments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from .losses import unique_edges

__all__ = ["activation_norm", "color_tv", "edge_stretch", "gram", "style_distance"]


def gram(features: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Gram matrices ``[B,C,C]`` of features ``[B,C,h,w]``: ``F Fᵀ / (h w)``, or with pixel
    ``weights`` ``[B,1,h,w]`` (e.g. an object's coverage) ``F diag(w) Fᵀ / sum(w)``: the
    statistics of the weighted pixels only."""
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w)
    if weights is None:
        return f @ f.transpose(1, 2) / (h * w)
    wt = weights.reshape(b, 1, h * w).to(f.dtype)
    return (f * wt) @ f.transpose(1, 2) / wt.sum(-1, keepdim=True).clamp_min(1e-6)


def style_distance(features: Mapping[str, torch.Tensor], style_grams: Mapping[str, torch.Tensor],
                   layers: Sequence[str], coverage: torch.Tensor | None = None) -> torch.Tensor:
    """Sum over ``layers`` of ``mean_b |G_b - G_style|² / |G_style|²`` (Frobenius norms).

    With ``coverage`` ``[B,H,W]`` (an alpha in [0,1], differentiable), each layer's Gram
    matrix weighs its pixels by the coverage area-resampled to the layer's size: the style
    is asked of the object, not of the background around it.

    Each layer's distance is relative to the style's own Gram norm, so layers of very
    different activation scales weigh alike and the total is about 1 for unrelated images
    (Gatys et al. weight each layer by 1/(4 C² (hw)²) for the same purpose).

    Args:
        features: layer name → ``[B,C,h,w]`` (differentiable).
        style_grams: layer name → ``[C,C]`` or ``[1,C,C]`` (the style image's :func:`gram`).
    Returns:
        0-d tensor >= 0.
    """
    total = None
    for name in layers:
        f = features[name]
        wt = None if coverage is None else F.interpolate(
            coverage[:, None].to(f.dtype), size=f.shape[-2:], mode="area")
        g = gram(f, wt)
        gs = style_grams[name].reshape(1, *g.shape[1:]).to(g.dtype)
        d = ((g - gs) ** 2).sum((1, 2)).mean() / (gs ** 2).sum().clamp_min(1e-12)
        total = d if total is None else total + d
    if total is None:
        raise ValueError("style_distance needs at least one layer")
    return total


def activation_norm(features: torch.Tensor, channel: int | None = None) -> torch.Tensor:
    """RMS of activations ``[B,C,h,w]`` (of one ``channel`` when given), mean over the batch.

    Returns a 0-d tensor >= 0; its gradient is defined at 0 (a small epsilon inside the root).
    """
    f = features if channel is None else features[:, int(channel):int(channel) + 1]
    return torch.sqrt((f * f).mean((1, 2, 3)) + 1e-12).mean()


def edge_stretch(vertices: torch.Tensor, start: torch.Tensor, faces: torch.Tensor
                 ) -> torch.Tensor:
    """Mean over unique edges of ``((|e| - |e0|) / |e0|)²``: 0 when every edge keeps its
    starting length, whatever the rigid motion. ``vertices`` [V,3] differentiable, ``start``
    [V,3] the starting positions (edges of length 0 there count with length 1e-8)."""
    edges = unique_edges(faces)
    if edges.shape[0] == 0:
        return vertices.sum() * 0
    e = vertices[edges[:, 0]] - vertices[edges[:, 1]]
    e0 = (start[edges[:, 0]] - start[edges[:, 1]]).norm(dim=-1).clamp_min(1e-8)
    length = torch.sqrt((e * e).sum(-1) + 1e-20)
    return (((length - e0) / e0) ** 2).mean()


def color_tv(colors: torch.Tensor, faces: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Total variation of a vertex-colour field ``[V,C]``: mean over unique edges of the
    Charbonnier-smoothed L1 difference of the two ends' colours, summed over channels (the
    graph analogue of :func:`render_core.losses.texture_tv`)."""
    edges = unique_edges(faces)
    if edges.shape[0] == 0:
        return colors.sum() * 0
    d = colors[edges[:, 0]] - colors[edges[:, 1]]
    return (torch.sqrt(d * d + eps * eps) - eps).sum(-1).mean()
