"""Inverse rendering through RenderNet: recover pose (and light) from an image, MAP-style.

Minimise ``||I − f(V, θ, η)||²`` over pose θ = (azimuth, elevation, scale) and, optionally,
the camera-frame light η, for a known voxel grid V. As the original does, several hypotheses
are started (a grid of poses around the initial guess), scored, and narrowed coarse-to-fine:
each stage optimises the survivors with Adam on blurred/downsampled images, then keeps the best
fraction for the next, sharper stage.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .model import RenderNet
from .pose import MAX_PERSP
from .render import DEFAULT_LIGHT_CAM, load_model, render_voxels

STAGES = ((4, 25, 0.34), (2, 20, 0.34), (1, 20, 1.0))
"""(downsample, Adam steps, fraction kept): 9 -> 3 -> 1 hypotheses, blurred -> sharp."""

Progress = Callable[[int, int, float], bool | None]
"""``progress(steps_done, steps_total, best_loss)`` after every Adam step; return False to stop
early (the best hypothesis so far is returned)."""


@dataclass
class PoseFit:
    az: float
    el: float
    scale: float
    light: tuple[float, float, float]
    loss: float


def _down(img: torch.Tensor, f: int) -> torch.Tensor:
    """[B,H,W,C] -> average-pooled by f (the coarse levels see blurred images: wider basins)."""
    if f == 1:
        return img
    return F.avg_pool2d(img.permute(0, 3, 1, 2), f).permute(0, 2, 3, 1)


def fit_pose(target: torch.Tensor, vox: torch.Tensor, style: str,
             init: tuple[float, float, float] = (0.0, 20.0, 1.0),
             light: torch.Tensor | None = None, fit_light: bool = False,
             spread: tuple[float, float] = (20.0, 10.0), grid: tuple[int, int] = (3, 3),
             stages: tuple[tuple[int, int, float], ...] = STAGES,
             lr: float = 1.5, model: RenderNet | None = None,
             progress: Progress | None = None, fov: float | None = None) -> PoseFit:
    """Recover the pose (and light) of ``target`` through the network.

    Args:
        target: [H,W,C] or [1,H,W,C] image in ``style`` (128² as the network renders).
        vox: [1,1,32,32,32] voxel grid of the object.
        style: a RenderNet style (see ``render.STYLES``).
        init: initial (azimuth, elevation, scale) guess.
        light: [3] camera-frame light (initial value when ``fit_light``).
        spread, grid: hypotheses on a ``grid[0]×grid[1]`` lattice ±spread (az, el) around init.
        stages: (downsample factor, Adam steps, fraction of hypotheses kept afterwards).
        lr: Adam step size in degrees (scale and light use lr/100).
        progress: optional callback, see :data:`Progress`.
        fov: the vertical field of view (degrees) of a perspective target: the network then
            renders through a frustum grid whose eye distance follows the fitted scale,
            1/distance = scale·tan(fov/2). None: weak perspective.
    Returns:
        The best :class:`PoseFit`.
    """
    model = model or load_model()
    if target.dim() == 3:
        target = target.unsqueeze(0)
    a0, e0, s0 = init
    na, ne = grid
    da = torch.linspace(-spread[0], spread[0], na) if na > 1 else torch.zeros(1)
    de = torch.linspace(-spread[1], spread[1], ne) if ne > 1 else torch.zeros(1)
    az = (a0 + da[:, None].expand(na, ne)).reshape(-1).clone()
    el = (e0 + de[None, :].expand(na, ne)).reshape(-1).clone()
    sc = torch.full_like(az, s0)
    lt = torch.as_tensor(light if light is not None else DEFAULT_LIGHT_CAM, dtype=torch.float32)
    lt = lt.expand(az.shape[0], 3).clone()
    losses = None
    total, done, stop = sum(st[1] for st in stages), 0, False
    t = None if fov is None else math.tan(math.radians(fov) / 2)

    def draw(az, el, sc, lt):
        persp = None if t is None else (sc * t).clamp(max=MAX_PERSP)
        return render_voxels(vox, az, el, sc, style, F.normalize(lt, dim=-1), model, persp)

    for factor, steps, keep in stages:
        params = [az.requires_grad_(), el.requires_grad_(), sc.requires_grad_()]
        groups = [{"params": params[:2], "lr": lr}, {"params": [sc], "lr": lr / 100}]
        if fit_light:
            groups.append({"params": [lt.requires_grad_()], "lr": lr / 100})
        opt = torch.optim.Adam(groups)
        tgt = _down(target, factor)
        for _ in range(steps):
            img = _down(draw(az, el, sc, lt), factor)
            per = ((img - tgt) ** 2).mean(dim=(1, 2, 3))
            opt.zero_grad()
            per.sum().backward()  # hypotheses are independent: one backward for all
            opt.step()
            with torch.no_grad():
                sc.clamp_(0.5, 2.0)
                el.clamp_(-89.0, 89.0)
            done += 1
            if progress is not None and progress(done, total, float(per.detach().min())) is False:
                stop = True
                break
        with torch.no_grad():
            img = _down(draw(az, el, sc, lt), factor)
            losses = ((img - tgt) ** 2).mean(dim=(1, 2, 3))
            k = max(1, int(round(keep * az.shape[0])))
            idx = losses.argsort()[:k]
            az, el, sc, lt = (t.detach()[idx].clone() for t in (az, el, sc, lt))
            losses = losses[idx]
        if stop:
            break
    best_l = F.normalize(lt[0], dim=-1)
    return PoseFit(float(az[0]), float(el[0]), float(sc[0]), tuple(best_l.tolist()),
                   float(losses[0]))
