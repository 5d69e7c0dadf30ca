"""RenderNet neural shaders: one CNN renders voxelized shapes as Phong, contour, toon and AO.

Public API: :func:`render` (mesh + camera + style -> image), :func:`render_voxels`,
:func:`load_model`, :func:`fit_pose` (inverse rendering of pose/light), ``STYLES``.
Training: ``python -m render_core.rendernet.train``; see ``assets/rendernet/MODEL_CARD.md``.
"""

from .inverse import PoseFit, fit_pose
from .render import STYLES, load_model, render, render_voxels, voxel_grid

__all__ = ["STYLES", "PoseFit", "fit_pose", "load_model", "render", "render_voxels", "voxel_grid"]
