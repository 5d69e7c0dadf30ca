"""RenderNet neural shaders: one CNN renders voxelized shapes as Phong, contour, toon and AO.

Public API: :func:`render` (mesh + camera + style -> image), :func:`render_voxels`,
:func:`render_styles` (every style of one forward), :func:`load_model`, :func:`fit_pose`
(inverse rendering of pose/light), ``STYLES``; the pose conventions :func:`camera_to_pose`,
:func:`camera_persp` (perspective cameras: ``persp`` = 1/eye distance, at most ``MAX_PERSP``),
:func:`rotation`, :func:`light_to_world`, and ``RADIUS``, the radius meshes are normalised
to (the network sees the world cube [-1,1]³).
Training: ``python -m render_core.rendernet.train``; see ``assets/rendernet/MODEL_CARD.md``.
"""

from .inverse import PoseFit, fit_pose
from .pose import MAX_PERSP, camera_persp, camera_to_pose, rotation
from .render import (
    STYLES,
    light_to_world,
    load_model,
    render,
    render_styles,
    render_voxels,
    voxel_grid,
)
from .shapes import RADIUS

__all__ = ["MAX_PERSP", "RADIUS", "STYLES", "PoseFit", "camera_persp", "camera_to_pose",
           "fit_pose", "light_to_world", "load_model", "render", "render_styles", "render_voxels",
           "rotation", "voxel_grid"]
