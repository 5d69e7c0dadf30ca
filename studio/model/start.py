"""Where a shape fit starts: the visual hull of the targets' masks. No Qt."""

from __future__ import annotations

import render_core as rc
from render_core.fit import TargetView
from render_core.shape_presets import HULL_SIGMA  # noqa: F401  (the sigma of a hull start)
from render_core.visual_hull import VisualHullError, visual_hull


def target_cameras(targets: list[TargetView]) -> rc.Camera:
    """The targets' own cameras (as typed or adopted, before any refinement), one per target."""
    return rc.Camera.cat([t.camera() for t in targets])


def hull_mesh(targets: list[TargetView], resolution: int = 128, faces: int = 5000,
              max_misses: int = 0) -> rc.Mesh:
    """The visual hull of the targets' masks seen from their cameras (see
    :func:`render_core.visual_hull.visual_hull`): a closed mesh of about ``faces`` faces.

    Raises ``ValueError`` naming the targets when the masks are empty, full or disagree so that
    nothing survives the carve."""
    if not targets:
        raise ValueError("a visual hull needs at least one target")
    names = [t.name or f"view {i + 1}" for i, t in enumerate(targets)]
    try:
        return visual_hull([t.mask for t in targets], target_cameras(targets),
                           resolution=resolution, faces=faces, max_misses=max_misses,
                           names=names)
    except VisualHullError as e:
        raise ValueError(f"cannot start from the visual hull: {e}") from None
