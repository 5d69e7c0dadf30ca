"""What the views draw of a fit, as plain numpy data that can cross a process boundary. No Qt."""

from __future__ import annotations

import numpy as np

import render_core as rc
from render_core.fit import Fitter


def frame_of(fitter: Fitter, view: int, generation: int) -> dict:
    """One frame of what the views draw: sRGB render/target images, the mesh, cameras and light.

    Keys: ``render`` [H,W,3], ``alpha`` [H,W], ``target`` [H,W,3], ``mask`` [H,W] (numpy,
    sRGB), ``mesh`` (dict of numpy arrays or None: ``vertices faces vertex_colors uvs face_uvs
    texture``, linear colours), ``cameras`` list of (view [4,4], fov, aspect), ``projections``
    their projections [4,4] (intrinsics with the principal point), ``light`` [3],
    ``step``, ``view`` and ``generation``. Plain data, so it can cross a process boundary.
    """
    view = int(np.clip(view, 0, len(fitter.targets) - 1))
    out = fitter.render(view)
    t_rgb, t_mask = fitter.target_images()
    cams = fitter.cameras()
    mesh = fitter.current_mesh()
    fields = ("vertices", "faces", "vertex_colors", "uvs", "face_uvs", "texture")
    return {
        "render": rc.linear_to_srgb(out.rgb[0].clamp(0, 1)).numpy(),
        "alpha": out.alpha[0].numpy(),
        "target": t_rgb[view].numpy(),
        "mask": t_mask[view].numpy(),
        "mesh": {k: None if getattr(mesh, k) is None else getattr(mesh, k).numpy()
                 for k in fields},
        "cameras": [(cams.view[i].double().numpy(), float(cams.fov[i]), float(cams.aspect[i]))
                    for i in range(len(cams))],
        "projections": [cams.proj[i].double().numpy() for i in range(len(cams))],
        "light": fitter.light_direction(),
        "step": fitter.steps,
        "view": view,
        "generation": generation,
    }
