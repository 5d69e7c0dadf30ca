"""Settings for shape fits that start from the visual hull: silhouettes alone, or lit RGB targets.

:func:`shape_fit_config` returns the :class:`~render_core.fit_config.FitConfig` the project
uses for refining a hull (``dibr-studio fit --preset``). Only the ``vertices`` group moves, with
the Large Steps parameterisation and no Laplacian, normal or edge term (the parameterisation
keeps the surface smooth), on a sharp soft silhouette (:data:`HULL_SIGMA`).

- ``"silhouette"``: the soft-silhouette IoU alone (the hull already matches the masks; the fit
  trims what the voxel grid and the smoothing left).
- ``"lit"``: lit RGB targets under a known directional light (the Fitter's default light,
  Lambertian) add the L1 colour term, weighted high: shading is what shows the surface where
  silhouettes say nothing (a dent, a concavity no view sees edge-on).

Measured on ``benchmarks/shape_fit.py`` (20 views at 64², unit-radius shapes; ``--rgb`` for
lit targets), 150 steps from the hull. Lit: on the dented sphere Chamfer-L2 0.00041 against
the hull's 0.00072 (43% lower; the same settings without the colour term end at 0.00069, so
shading is what digs the dent); lower than the hull on 6 of 7 shapes (not the vase: 0.00311
against 0.00297), F-score higher on all 7; the mug's inside stays mostly filled (0.00899
against 0.00909). Silhouette: Chamfer lower than the hull on 5 of 7 (the mug and the vase are
1-2% higher), F-score higher on all 7. Tuning (dented sphere): a learning
rate of 0.01 was the fastest that stayed stable (0.03 stalled higher); an L1 weight of 20
beat 1 and 5 (the colour term is small next to the IoU once the silhouettes agree); lambda 5
reached in 75 steps what lambda 19 reached in 300, and 2 was no better than 5.

``remesh=True`` adds continuous remeshing (``FitConfig.remesh``, automatic edge lengths of
1-2 pixels, :mod:`render_core._fit_remesh`) at a vertex learning rate of 0.01
(:data:`REMESH_LR`): each pass moves vertices slightly (a split vertex lies on its edge,
inside a curved surface), which the silhouette preset's 0.001 does not win back (figure, 150
steps from the hull: the loss went 0.037 -> 0.038 with remeshing at 0.001, 0.022 at 0.003,
0.012 at 0.01; without remeshing at 0.001, 0.014). Measured, silhouettes, 150 steps from the
hull (``benchmarks/shape_fit.py --methods default_fixed,default_remesh``), Chamfer-L2 / F@0.02
without -> with remeshing: mug 0.00916/.569 -> 0.00854/.579, vase 0.00302/.629 ->
0.00282/.628, dented sphere 0.00072/.835 -> 0.00068/.835, critter 0.00031/.958 ->
0.00031/.956, figure 0.00026/.968 -> 0.00023/.974; with remeshing every one beats the hull on
both numbers, at about twice the time (the mesh refines to 1-pixel edges). Lit targets gain
less and lose on two (mug 0.00898 -> 0.00921, vase 0.00315 -> 0.00361; dented sphere 0.00041
-> 0.00040, critter 0.00030 -> 0.00029), so the lit preset stays without it by default.
``dibr-studio fit --init hull --remesh`` uses the silhouette preset with remeshing.

Concavities no view sees edge-on (the mug's and the vase's insides) stay mostly filled at the
benchmark's budget (150 steps) with every model and setting measured, so the lit preset keeps
DIB-R, fixed topology and its rate. Measured with ``benchmarks/shape_fit.py --rgb --model M
--tune ...`` (lit task, 150 steps unless stated), Chamfer-L2 and the height of the cavity's
floor on the axis (the hull's cap 0.609, the mug's floor -0.511; vase: hull 0.924, floor
-0.804): dibr (the preset) mug 0.00898 / floor 0.583, vase 0.00315; dibr+aa 0.00882 / 0.577,
vase 0.00285 (but dented sphere 0.00043 against 0.00041, critter 0.00031 against 0.00030);
dibr+aa with remeshing 0.00892 / 0.594, vase 0.00296; nmr 0.00933 / 0.617 (the cap rises), vase
0.00299; dibr+aa with L1 weight 100 0.00890 / 0.572; lambda 20 0.00896 / 0.577. Larger rates do
dig: dibr+aa at 0.03 for 300 steps sinks the mug's cap to 0.116, at 0.1 decaying to 0.003 to
0.157, but into a bowl halfway down, which is farther from the true surface than the flat cap
was (the hull's cap lies near the rim, its walls and bottom within a wall's thickness of the
inner ones): Chamfer 0.00927 and 0.00954, and the vase degrades (0.00525, 0.00404). Only long
runs at a high rate open the mug: DIB-R at 0.1 decaying to 0.01 over 1500 steps (ten times the
benchmark's budget) ends 36% under the hull (0.00582, floor -0.135, though F@0.02 falls to
0.511 from 0.561 as the near wall folds), while the same run tangles the vase (0.01103, 3.7x
the hull) and loses a little on the dented sphere, critter and figure (with remeshing as well:
mug 0.01308, vase 0.01151); a rate schedule is not a preset setting either. On a small cup
(``tests/test_lit_cavity.py``: 32 rows, 8 views, 120 steps) the rate alone does it: at 0.1 the
cap sinks from the hull's 0.61 to 0.06 (the floor: -0.25), at the preset's 0.01 to 0.50. Why
the digging is slow: Lambertian shading shows normals, not depth, and the inner floor has the
cap's normal. What differs inside the rim is which wall each view sees there, a different one
from every azimuth, so the per-view gradients on the cap disagree: at the hull, summed over the
cap's vertices, 7 of the 20 views push it in and 7 out with DIB-R (the net push, over the sum
of its sizes, -0.21: outwards), 8 and 6 with dibr+aa (+0.11), 4 and 10 with nmr (-0.77); on the
dented sphere's dent 7 push in and 2 out (+0.91). The occlusion gradients of dibr+aa and nmr
need an occlusion edge, and at the hull the rim meets the cap in a crease: the near rim hides
the cap only once it has sunk.
"""

from __future__ import annotations

from .fit_config import GROUPS, FitConfig, ParamGroup
from .rasterize import DEFAULT_SIGMA

HULL_SIGMA = DEFAULT_SIGMA / 10
"""Soft-silhouette sigma for refining a hull at 64 rows. Measured on the 20-view, 64² shape
benchmark: refining the critter's hull at the Fitter's default sigma (3x DEFAULT_SIGMA)
dropped its F-score@0.02 from 0.94 to 0.005 in 150 steps, as the surface shrank by about a
pixel towards the soft edge; at this sigma it rose to 0.96."""

SHAPE_PRESETS = ("silhouette", "lit")
"""The names :func:`shape_fit_config` takes."""

_SETTINGS = {
    # large_steps lambda, vertex learning rate, L1 weight, shading, views per step
    "silhouette": (19.0, 0.001, 0.0, "vertex_color", 2),
    "lit": (5.0, 0.01, 20.0, "lambertian", 4),
}


REMESH_LR = {"silhouette": 0.01, "lit": 0.01}
"""Vertex learning rate of a preset with remeshing: each pass moves vertices a little (a
split vertex lies on its edge, inside a curved surface), which the fit must win back."""


def shape_fit_config(kind: str = "lit", resolution: int = 64, remesh: bool = False) -> FitConfig:
    """The settings for refining a visual hull against ``kind`` targets (``"silhouette"`` or
    ``"lit"``, see the module notes), rendering ``resolution`` rows (sigma is
    :data:`HULL_SIGMA` at 64 rows, scaled to keep the soft edge's width in pixels), with
    continuous remeshing when ``remesh`` (and then the vertex rate :data:`REMESH_LR`)."""
    if kind not in _SETTINGS:
        raise ValueError(f"unknown shape preset {kind!r}; choose one of {SHAPE_PRESETS}")
    lam, lr, w_l1, shading, views = _SETTINGS[kind]
    if remesh:
        lr = REMESH_LR[kind]
    cfg = FitConfig(resolution=int(resolution), shading=shading,
                    sigma=HULL_SIGMA * (64 / int(resolution)) ** 2, large_steps=lam,
                    views_per_step=views, remesh=bool(remesh),
                    model="dibr")  # what the numbers above were measured with
    cfg.groups = {g: ParamGroup(g == "vertices", lr if g == "vertices" else cfg.groups[g].lr)
                  for g in GROUPS}
    cfg.weights.update(iou=1.0, l1=w_l1, laplacian=0.0, normal=0.0, edge=0.0)
    cfg.validate()
    return cfg
