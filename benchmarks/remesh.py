"""Remeshing cost vs one fit step, measured in the same run.

    python benchmarks/remesh.py [--runs 10] [--subdivisions 4] [--threads N]

Baseline "fit step": one forward + backward of ``render_core.renderer.Renderer`` (Lambertian,
soft silhouette) for 6 orbit views at 128^2 on an icosphere (subdivisions 4: 5,120 faces), with
an L1 + silhouette loss against a fixed target. Remesh pass: :func:`render_core.remesh.remesh`
on the same mesh after a random vertex jitter, with a per-vertex target length around the
mesh's mean edge length (about 2-5 % of its edges are split or collapsed, a few flipped: the
steady state of a fit), and once with a target 0.7x the mean (a refinement pass, most edges
split). Also the validation alone (no operation), and the steady pass without it (what
``ContinuousRemesher`` runs after its first call). Medians over ``--runs``
interleaved runs.

In the Fitter (``FitConfig.remesh``): the same problem (5,120 faces, 6 views at 128^2) fitted
by :class:`render_core.fit.Fitter` with the vertices group (plain offsets, and large steps);
its step against what one pass costs it on the steady pass's vertices and target lengths above
(the pass without validation, as after the first, plus the rebase, the carried moments, the
optimizer and, with large steps, the new Cholesky factor), each pass from the same restored
checkpoint. Large steps run twice: with the factor the library picks (``auto``: LAPACK's
banded Cholesky for this size, see ``render_core._sparse_factor.BAND_MAX_ENTRIES``) and with
CHOLMOD forced for every factor (``cholmod``: what a pass used before), in the same run.

Measured (shared 2-core machine, load average 8-9, ``--threads 1 --runs 15``, two rounds
alternating with the previous version of the code, ratios of a pass to a step of the same
Fitter): stand-alone steady pass 0.18-0.23 of the renderer's step, 0.16 without validation;
in the Fitter, plain offsets 0.12-0.14; large steps 0.19 and 0.19 (CHOLMOD forced: 0.26 and 0.24;
the previous code: 0.29 and 0.27). Of a large-steps pass (about 39 ms at that load, against
30 ms for the plain pass), the banded factor is about 7-10 ms where CHOLMOD took 20-30 ms, and
the system matrix (now one sort of int64 keys into CSR) about 1 ms. At the default
``remesh_interval`` of 5 a pass costs about 0.04 of a step on average.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout
from render_core.camera import Camera  # noqa: E402
from render_core.mesh import Mesh  # noqa: E402
from render_core.primitives import icosphere  # noqa: E402
from render_core.remesh import remesh  # noqa: E402
from render_core.renderer import Renderer  # noqa: E402


def median_ms(fns: dict, runs: int) -> dict:
    """Median wall time (ms) of each function; the runs are interleaved so that all of them
    see the same machine load."""
    for fn in fns.values():
        fn()  # warm-up (extension load, allocator)
    times = {k: [] for k in fns}
    for _ in range(runs):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: 1000 * statistics.median(t) for k, t in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--subdivisions", type=int, default=4)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    base = icosphere(args.subdivisions)
    v0, f0 = base.vertices, base.faces
    print(f"mesh: {v0.shape[0]} vertices, {f0.shape[0]} faces; torch threads "
          f"{torch.get_num_threads()}")

    cams = Camera.orbit(torch.arange(6) * 60.0, torch.tensor([20.0, -20] * 3), 3.0)
    renderer = Renderer(128, shading="lambertian")
    with torch.no_grad():
        target = renderer.render(Mesh(v0 * 0.9, f0), cams)
    param = v0.clone().requires_grad_()

    def step():
        out = renderer.render(Mesh(param, f0), cams)
        loss = (out.rgb - target.rgb).abs().mean() + (out.alpha - target.alpha).abs().mean()
        param.grad = None
        loss.backward()

    g = torch.Generator().manual_seed(0)
    el = float((v0[f0] - v0[f0.roll(1, 1)]).norm(dim=-1).mean())
    vj = v0 + torch.randn(v0.shape, generator=g) * 0.1 * el
    tl = el * torch.exp((torch.rand(v0.shape[0], generator=g) - 0.5) * 0.8)
    attrs = {"exp_avg": torch.randn(v0.shape, generator=g),
             "exp_avg_sq": torch.rand(v0.shape, generator=g)}
    res = remesh(vj, f0, tl, attrs)
    print(f"steady pass: {res.num_collapsed} collapses, {res.num_split} splits, "
          f"{res.num_flipped} flips")
    res_fine = remesh(vj, f0, 0.7 * tl, attrs)
    print(f"refining pass: {res_fine.num_collapsed} collapses, {res_fine.num_split} splits, "
          f"{res_fine.num_flipped} flips")

    ms = median_ms({
        "step": step,
        "remesh": lambda: remesh(vj, f0, tl, attrs),
        "known": lambda: remesh(vj, f0, tl, attrs, validate=False),
        "fine": lambda: remesh(vj, f0, 0.7 * tl, attrs),
        "none": lambda: remesh(vj, f0, tl, attrs, collapse=False, split=False, flip=False),
    }, args.runs)
    t_step, t_remesh, t_known, t_fine, t_none = (
        ms[k] for k in ("step", "remesh", "known", "fine", "none"))
    print(f"fit step (6 views 128^2, fwd+bwd): {t_step:8.1f} ms")
    print(f"remesh pass, steady state:        {t_remesh:8.1f} ms  ratio {t_remesh / t_step:.2f}")
    print(f"  the same, validate=False:       {t_known:8.1f} ms  ratio {t_known / t_step:.2f}"
          "  (ContinuousRemesher after its first call)")
    print(f"remesh pass, refining (0.7x):     {t_fine:8.1f} ms  ratio {t_fine / t_step:.2f}")
    print(f"validation only (no operation):   {t_none:8.1f} ms  ratio {t_none / t_step:.2f}")
    for label, t in (("validated", t_remesh), ("unvalidated", t_known)):
        verdict = "meets" if t <= 0.2 * t_step else "MISSES"
        print(f"steady-state pass, {label}: {verdict} the target (<= 20 % of a step)")
    in_fitter(base, cams, renderer, vj, tl, args.runs)


def in_fitter(base, cams, renderer, vj, tl, runs: int) -> None:
    """A Fitter's step against one remesh pass inside it (see above)."""
    from render_core.fit import GROUPS, FitConfig, Fitter, ParamGroup, TargetView

    with torch.no_grad():
        out = renderer.render(Mesh(base.vertices * torch.tensor([1.0, 0.8, 0.9]), base.faces),
                              cams)
    az, elev = torch.arange(6) * 60.0, torch.tensor([20.0, -20] * 3)
    targets = [TargetView(out.rgb[i].clamp(0, 1).numpy(), out.alpha[i].numpy(), float(az[i]),
                          float(elev[i]), 3.0, 60.0) for i in range(6)]
    from render_core import _sparse_factor

    band_limit = _sparse_factor.BAND_MAX_ENTRIES
    for lam, solver in ((None, ""), (19.0, "auto"), (19.0, "cholmod")):
        # "cholmod": every factor by CHOLMOD (the banded LAPACK factor of small systems off),
        # the solver this pass used before; the same problem, for comparison.
        _sparse_factor.BAND_MAX_ENTRIES = 0 if solver == "cholmod" else band_limit
        cfg = FitConfig(resolution=128, shading="lambertian", large_steps=lam, remesh=True,
                        remesh_interval=10**6, remesh_min_edge=float(tl.min()),
                        remesh_max_edge=float(tl.max()))
        cfg.groups = {g: ParamGroup(g == "vertices", 1e-3) for g in GROUPS}
        f = Fitter(base, targets, cfg)
        f.step()
        ck = f.checkpoint()
        step_ms, pass_ms = [], []
        for _ in range(runs + 1):
            f.restore(ck)
            t0 = time.perf_counter()
            f.step()
            step_ms.append(1000 * (time.perf_counter() - t0))
            f.restore(ck)
            f._remesher.ref_length = tl.clone()
            f._remesher._last_faces = f.faces  # known faces: no validation, as in a run
            t0 = time.perf_counter()
            f._remesh_now(vj)
            pass_ms.append(1000 * (time.perf_counter() - t0))
        t_step, t_pass = statistics.median(step_ms[1:]), statistics.median(pass_ms[1:])
        _sparse_factor.BAND_MAX_ENTRIES = band_limit
        label = f"{lam}{' (' + solver + ' factor)' if solver else ''}"
        print(f"Fitter, large_steps={label}: step {t_step:.1f} ms, a pass inside it "
              f"{t_pass:.1f} ms (to {f.faces.shape[0]} faces): ratio {t_pass / t_step:.2f} "
              f"({'meets' if t_pass <= 0.2 * t_step else 'MISSES'} the 20 % target)")


if __name__ == "__main__":
    main()
