"""Before / after sheets of a style-transfer or DeepDream run: the start mesh and the result
from three views, side by side (the CLI's ``before_after.png`` and docs' sample sheet). No Qt."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw

import render_core as rc
from render_core.fit import FitConfig
from render_core.objectives import objective_spec

SHEET_VIEWS = ((30.0, 25.0), (150.0, 25.0), (270.0, 25.0))
"""(azimuth, elevation) of the sheet's three columns, degrees."""


def render_views(mesh: rc.Mesh, config: FitConfig, size: int = 192,
                 views=SHEET_VIEWS) -> np.ndarray:
    """sRGB renders [N,size,size,3] of ``mesh`` over white, lit as the fit was, from ``views``
    at the objective's distance and fov around the mesh's centre."""
    spec = objective_spec(config.objective or {"kind": "style"})
    v = mesh.vertices.detach().float()
    centre = (v.min(0).values + v.max(0).values) / 2
    radius = float((v - centre).norm(dim=-1).max())
    az = torch.tensor([a for a, _ in views])
    el = torch.tensor([e for _, e in views])
    cams = rc.Camera.orbit(az, el, spec["distance"] * radius, at=centre, fov=spec["fov"])
    shading = config.shading if config.shading != "sh" else "lambertian"
    if shading == "texture" and not mesh.has_texture:
        shading = "vertex_color"
    r = rc.Renderer(size, shading=shading, sigma=rc.DEFAULT_SIGMA)
    light = None
    if rc.light_kind(shading) == "directional":
        light = rc.DirectionalLight(torch.tensor((0.4, 0.8, 0.6)), intensity=0.8, ambient=0.3)
    with torch.no_grad():
        out = r.render(mesh.detach(), cams, light)
    a = out.alpha[..., None]
    return (rc.linear_to_srgb(out.rgb.clamp(0, 1)) * a + (1 - a)).numpy()


def before_after_sheet(before: rc.Mesh, after: rc.Mesh, config: FitConfig,
                       style: np.ndarray | None = None, size: int = 192) -> np.ndarray:
    """sRGB [H,W,3]: a row of the start, a row of the result (three views each), labelled;
    with ``style``, a last column shows the style image."""
    rows = [render_views(before, config, size), render_views(after, config, size)]
    pad, label = 6, 18
    cols = len(SHEET_VIEWS) + (style is not None)
    h = label + 2 * (size + pad) + pad
    w = 70 + cols * (size + pad)
    sheet = np.full((h, w, 3), 0.13, np.float32)
    for r, imgs in enumerate(rows):
        y = label + pad + r * (size + pad)
        for c, img in enumerate(imgs):
            x = 70 + c * (size + pad)
            sheet[y:y + size, x:x + size] = img
    if style is not None:
        s = torch.from_numpy(np.ascontiguousarray(style, np.float32)).permute(2, 0, 1)[None]
        s = torch.nn.functional.interpolate(s, size=(size, size), mode="area")[0]
        x = 70 + len(SHEET_VIEWS) * (size + pad)
        sheet[label + pad:label + pad + size, x:x + size] = s.permute(1, 2, 0).numpy()
    im = Image.fromarray((np.clip(sheet, 0, 1) * 255 + 0.5).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    for r, text in enumerate(("before", "after")):
        draw.text((8, label + pad + r * (size + pad) + size // 2 - 6), text, fill=(230, 230, 230))
    for c, (az, el) in enumerate(SHEET_VIEWS):
        draw.text((70 + c * (size + pad) + 4, 3), f"azimuth {az:g}, elevation {el:g}",
                  fill=(200, 200, 200))
    if style is not None:
        draw.text((70 + len(SHEET_VIEWS) * (size + pad) + 4, 3), "style", fill=(200, 200, 200))
    return np.asarray(im, np.float32) / 255.0
