"""A tiny fitting problem on disk for the batch tests: 32x32 renders of the demo object."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import render_core as rc
from studio.model import files
from studio.model.demo import demo_object

VIEWS = ((0.0, 15.0, 3.2, 45.0), (120.0, -10.0, 3.2, 45.0), (240.0, 30.0, 3.2, 45.0))


def write_scene(folder: Path, size: int = 32) -> dict:
    """Targets (RGBA PNG, alpha = mask) and a start mesh; returns their paths and views."""
    folder.mkdir(parents=True, exist_ok=True)
    obj = demo_object(subdivisions=2)
    cams = rc.Camera.orbit([v[0] for v in VIEWS], [v[1] for v in VIEWS], VIEWS[0][2],
                           fov=VIEWS[0][3])
    out = rc.Renderer(size, shading="vertex_color", sigma=1e-5).render(obj, cams)
    rgb = rc.linear_to_srgb(out.rgb.clamp(0, 1)).numpy()
    mask = out.frags.mask.float().numpy()
    images = []
    for i in range(len(VIEWS)):
        p = folder / f"view{i}.png"
        files.write_png(p, np.concatenate([rgb[i], mask[i][..., None]], -1))
        images.append(p)
    start = folder / "start.obj"
    rc.save_mesh(rc.icosphere(1), start)
    garbage = folder / "garbage.obj"
    garbage.write_text("v 0 0 0\nf 1 2 3\nthis is not an obj file\n")
    return {"images": images, "views": VIEWS, "start": start, "garbage": garbage}


def write_manifest(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc, indent=1))
    return path
