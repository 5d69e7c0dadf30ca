"""Per-step mesh ops of a fit: the native vertex normals and mesh regularisers against the torch
compositions they replace, timed in the same run.

    python benchmarks/mesh_ops.py [--subdivisions 4] [--reps 200] [--threads N]

For an icosphere (4 subdivisions: 5,120 faces, the fit_step benchmark's mesh at 128x128) with
jittered float32 vertices that require grad: ms of the forward pass and of forward + backward
(of a weighted sum of the outputs) for ``vertex_normals``, ``laplacian``,
``normal_consistency``, ``edge_length`` and the Fitter's fused ``mesh_regularizers`` (all
three), each against its torch reference. Each measurement is the best of 5 rounds of
``--reps`` calls, native and torch rounds interleaved; the table gives both and torch/native.

With ``--fit-blocks N`` (default 6), then the fit_step benchmark's Fitter at 128x128 (5,120
faces, its threads): blocks of 5 ``Fitter.step()`` calls alternate between the native mesh ops
and their torch code (the native path switched off in-process), N blocks each, so both see the
same load; the best block's wall and process CPU ms/step of each, and their difference.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import render_core as rc  # noqa: E402

# isort: split
import torch  # noqa: E402

from render_core import _build  # noqa: E402
from render_core import losses as L  # noqa: E402
from render_core.shading import _vertex_normals_torch, vertex_normals  # noqa: E402


def _torch_regs(v, f):
    return L._laplacian_torch(v, f), L._normal_consistency_torch(v, f), L._edge_length_torch(v, f)


def _time(fn, v, reps: int, backward: bool) -> float:
    t0 = time.perf_counter()
    for _ in range(reps):
        out = fn(v)
        if backward:
            total = sum(o.sum() for o in out) if isinstance(out, tuple) else out.sum()
            total.backward()
    return (time.perf_counter() - t0) / reps * 1e3


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subdivisions", type=int, default=4)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--fit-blocks", type=int, default=6)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    assert _build.native_module("cpu") is not None, _build._why_not("cpu")
    mesh = rc.icosphere(subdivisions=args.subdivisions)
    f = mesh.faces.to(torch.int64)
    g = torch.Generator().manual_seed(0)
    v = (mesh.vertices + 0.01 * torch.randn(mesh.vertices.shape, generator=g)).float()
    v.requires_grad_(True)
    ops = [
        ("vertex_normals", lambda x: vertex_normals(x, f), lambda x: _vertex_normals_torch(x, f)),
        ("laplacian", lambda x: L.laplacian(x, f), lambda x: L._laplacian_torch(x, f)),
        ("normal_consistency", lambda x: L.normal_consistency(x, f),
         lambda x: L._normal_consistency_torch(x, f)),
        ("edge_length", lambda x: L.edge_length(x, f), lambda x: L._edge_length_torch(x, f)),
        ("mesh_regularizers (3)", lambda x: L.mesh_regularizers(x, f),
         lambda x: _torch_regs(x, f)),
    ]
    print(f"load average {os.getloadavg()[0]:.2f}; {f.shape[0]} faces, "
          f"{torch.get_num_threads()} threads, best of 5 x {args.reps}")
    print(f"{'op':24s} {'fwd native':>10s} {'fwd torch':>10s} {'ratio':>6s} "
          f"{'f+b native':>10s} {'f+b torch':>10s} {'ratio':>6s}")
    for name, native, ref in ops:
        for fn in (native, ref):  # warm up (topology tables, allocator)
            _time(fn, v, 5, True)
        row = []
        for backward in (False, True):
            best = {"n": float("inf"), "t": float("inf")}
            for _ in range(5):
                for key, fn in (("n", native), ("t", ref)):
                    with torch.set_grad_enabled(True):
                        best[key] = min(best[key], _time(fn, v, args.reps, backward))
            row.append((best["n"], best["t"]))
        (fn_, ft_), (bn, bt) = row
        print(f"{name:24s} {fn_:10.3f} {ft_:10.3f} {ft_ / fn_:6.1f} "
              f"{bn:10.3f} {bt:10.3f} {bt / bn:6.1f}")
    if args.fit_blocks:
        _fit_ab(args.fit_blocks)
    print(f"load average {os.getloadavg()[0]:.2f}")
    return 0


def _fit_ab(blocks: int, steps: int = 5) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import fit_step as fs

    from render_core import _native

    fitter = fs.Fitter(rc.icosphere(subdivisions=4), fs.make_targets(128),
                       fs.make_config(128, "auto"))
    loaded = _native.loaded_module
    best = {"native": (float("inf"),) * 2, "torch": (float("inf"),) * 2}
    for _ in range(3):
        fitter.step()
    try:
        for _ in range(blocks):
            for key in ("native", "torch"):
                _native.loaded_module = loaded if key == "native" else (lambda: None)
                fitter.step()  # one untimed step after switching
                w0, c0 = time.perf_counter(), time.process_time()
                for _ in range(steps):
                    fitter.step()
                w, c = time.perf_counter() - w0, time.process_time() - c0
                best[key] = tuple(min(a, b / steps * 1e3) for a, b in zip(best[key], (w, c),
                                                                           strict=True))
    finally:
        _native.loaded_module = loaded
    (wn, cn), (wt, ct) = best["native"], best["torch"]
    print(f"Fitter.step 128x128/5120f, {torch.get_num_threads()} threads, best of {blocks} "
          f"blocks of {steps}: wall ms native {wn:.1f} torch {wt:.1f} (-{wt - wn:.2f}); "
          f"cpu ms native {cn:.1f} torch {ct:.1f} (-{ct - cn:.2f})")


if __name__ == "__main__":
    raise SystemExit(main())
