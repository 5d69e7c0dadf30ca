"""Rasterizer benchmark: torch reference vs native cpu (and cuda) backends vs OpenGL face ids.

    python benchmarks/raster.py [--quick] [--runs 10] [--budget 20]
        [--backends torch,cpu | cuda,cpu,torch-cuda] [--json PATH]

For 128^2, 256^2, 512^2 x icospheres of 1,280 / 5,120 / 20,480 / 81,920 faces, the median over
``--runs`` runs of: visibility forward; soft silhouette forward; soft silhouette forward +
backward; a full ``Renderer`` Lambertian render + IoU + L1 + backward. Per backend, plus a
moderngl face-id render of the same clip-space triangles on a standalone EGL context (Mesa
llvmpipe), timed up to and including reading the face ids back (which waits for the GPU).

``--backends`` names what is timed: ``torch`` and ``cpu`` on CPU tensors, ``cuda`` and
``torch-cuda`` (the torch backend) on CUDA tensors; a CUDA run is timed up to
``torch.cuda.synchronize()``. The first name is the one compared: the ratio columns are each
other backend's time over its time.

A torch measurement whose first run takes longer than ``--budget / runs`` seconds is repeated
fewer times (at least once); the ``n`` column says how many runs each median is over.

Peak memory on the CPU: the resident set size sampled every millisecond by a background thread
during one run, minus the RSS before it (tracemalloc does not see torch's allocations, and
``ru_maxrss`` only reports the process-wide high-water mark). Free heap pages are returned to
the system before each run (``malloc_trim``), else memory freed by the previous run is reused
without moving the RSS and a run looks free. On CUDA: the peak of
``torch.cuda.max_memory_allocated`` over one run, minus the allocation before it.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import statistics
import sys
import threading
import time
from collections.abc import Callable

import numpy as np
import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))  # checkout
import render_core as rc  # noqa: E402
from render_core import _build  # noqa: E402
from render_core import _torch_ref as torch_ref  # noqa: E402
from render_core._native import native_visibility  # noqa: E402

FACES = {1280: 3, 5120: 4, 20480: 5, 81920: 6}  # faces -> icosphere subdivisions
RES = [128, 256, 512]


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def _release_free_memory() -> None:
    """Hand the allocator's free pages back to the system, so that memory an earlier run freed
    (and would lend to the next one without the RSS moving) does not hide the next run's use."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def peak_rss_delta(fn: Callable[[], object]) -> float:
    """Peak RSS growth (MiB) while ``fn`` runs, sampled at ~1 kHz."""
    if _on_cuda(fn):
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    _release_free_memory()
    base = _rss()
    peak = base
    done = threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _rss())
            time.sleep(0.001)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    fn()
    done.set()
    t.join()
    peak = max(peak, _rss())
    return (peak - base) / 2**20


CLOCK = time.perf_counter  # --cpu-time: time.process_time, immune to other busy processes
# name -> (render_core backend, device)
BACKENDS = {"torch": ("torch", "cpu"), "cpu": ("cpu", "cpu"), "cuda": ("cuda", "cuda"),
            "torch-cuda": ("torch", "cuda")}


def _on_cuda(fn) -> bool:
    return getattr(fn, "device", "cpu") == "cuda"


def _synced(fn: Callable[[], object]) -> Callable[[], object]:
    """``fn`` and then, for a CUDA one, a wait for the device (its time counts)."""
    if not _on_cuda(fn):
        return fn

    def run():
        fn()
        torch.cuda.synchronize()

    return run


def median_time(fn: Callable[[], object], runs: int, budget: float) -> tuple[float, int]:
    """Median time (s) of ``fn`` over ``runs`` runs (fewer if one run exceeds budget/runs)."""
    fn = _synced(fn)
    start = CLOCK()
    fn()
    first = CLOCK() - start
    n = runs if first * runs <= budget else max(1, int(budget / max(first, 1e-9)))
    times = [first]
    for _ in range(n - 1):
        start = CLOCK()
        fn()
        times.append(CLOCK() - start)
    return statistics.median(times), len(times)


def scene(nfaces: int, res: int, device: str = "cpu"):
    """Icosphere mesh, a camera looking at it, clip coordinates [1,V,4] and faces [F,3]."""
    mesh = rc.icosphere(FACES[nfaces]).to(device)
    cam = rc.Camera.orbit(30.0, 20.0, 3.2, fov=45.0).to(device)
    clip = cam.to_clip(mesh.vertices).detach()
    return mesh, cam, clip, mesh.faces


class GLFaceId:
    """Face ids of clip-space triangles by OpenGL (gl_PrimitiveID into an R32I target)."""

    def __init__(self, res: int):
        import moderngl

        self.ctx = moderngl.create_standalone_context(backend="egl")
        self.prog = self.ctx.program(
            vertex_shader="""#version 330
                in vec4 in_clip;
                void main() { gl_Position = in_clip; }""",
            fragment_shader="""#version 330
                out int face_id;
                void main() { face_id = gl_PrimitiveID; }""",
        )
        self.color = self.ctx.renderbuffer((res, res), components=1, dtype="i4")
        self.depth = self.ctx.depth_renderbuffer((res, res))
        self.fbo = self.ctx.framebuffer([self.color], self.depth)
        self.res = res
        self.renderer = self.ctx.info.get("GL_RENDERER", "?")

    def setup(self, clip: torch.Tensor, faces: torch.Tensor):
        vbo = self.ctx.buffer(clip[0].numpy().astype("f4").tobytes())
        ibo = self.ctx.buffer(faces.numpy().astype("i4").tobytes())
        self.vao = self.ctx.vertex_array(self.prog, [(vbo, "4f", "in_clip")], ibo)

    def render(self) -> np.ndarray:
        import moderngl

        self.fbo.use()
        self.ctx.enable(moderngl.DEPTH_TEST)
        self.fbo.clear(depth=1.0)
        self.color.glo  # noqa: B018 - keep the attachment alive
        self.vao.render(moderngl.TRIANGLES)
        data = self.fbo.read(components=1, dtype="i4")
        return np.frombuffer(data, dtype=np.int32)


def bench_config(res: int, nfaces: int, backends: list[str], runs: int, budget: float, gl):
    rows = {}
    for name in backends:
        b, device = BACKENDS[name]
        mesh, cam, clip, faces = scene(nfaces, res, device)
        weight = torch.rand(1, res, res, generator=torch.Generator().manual_seed(0)).to(device)
        native = "cuda" if device == "cuda" else "cpu"
        target_alpha = rc.soft_silhouette(clip, faces, res, backend=native).detach()
        target_rgb = torch.full((1, res, res, 3), 0.5, device=device)
        light = rc.DirectionalLight(torch.tensor([0.3, 0.5, 1.0], device=device))

        def vis(b=b, clip=clip, faces=faces):
            if b == "torch":
                return torch_ref.visibility(clip, faces, res, res)
            return native_visibility(b, clip, faces, res, res)

        def soft_fwd(b=b, clip=clip, faces=faces):
            with torch.no_grad():
                return rc.soft_silhouette(clip, faces, res, backend=b)

        def soft_fwd_bwd(b=b, clip=clip, faces=faces, weight=weight):
            c = clip.clone().requires_grad_(True)
            a = rc.soft_silhouette(c, faces, res, backend=b)
            (a * weight).sum().backward()

        renderer = rc.Renderer(res, shading="lambertian", backend=b)

        def full(renderer=renderer, mesh=mesh, cam=cam, light=light, ta=target_alpha,
                 tr=target_rgb):
            verts = mesh.vertices.clone().requires_grad_(True)
            out = renderer.render(mesh.with_(vertices=verts), cam, light=light)
            loss = rc.losses.iou(out.alpha, ta) + rc.losses.l1(out.rgb, tr)
            loss.backward()

        for op, fn in (
            ("vis", vis),
            ("soft", soft_fwd),
            ("soft_fb", soft_fwd_bwd),
            ("full", full),
        ):
            fn.device = device
            t, n = median_time(fn, runs, budget)
            rows[(name, op)] = (t, n, peak_rss_delta(fn))
    if gl is not None:
        _, _, clip, faces = scene(nfaces, res)
        g = gl(res)
        g.setup(clip, faces)
        ids = g.render()
        ours = native_visibility("cpu", clip, faces, res, res)[0].flip(0).reshape(-1).numpy()
        agree = float(np.mean(ids[ours >= 0] == ours[ours >= 0])) if (ours >= 0).any() else 1.0
        t, n = median_time(g.render, max(runs, 20), budget)
        rows[("gl", "vis")] = (t, n, 0.0)
        rows[("gl", "agree")] = (agree, 0, 0.0)
        g.ctx.release()
    return rows


def fmt_ms(t: float) -> str:
    return f"{t * 1e3:.1f}" if t < 10 else f"{t:.1f}s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="128^2 and 256^2, 1,280 and 5,120 faces")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--budget", type=float, default=20.0, help="seconds per torch measurement")
    ap.add_argument("--no-torch", action="store_true", help="skip the (slow) torch backend")
    ap.add_argument("--no-gl", action="store_true", help="skip the OpenGL face-id render")
    ap.add_argument("--threads", type=int, help="torch/ATen threads (default: torch's choice)")
    ap.add_argument("--cpu-time", action="store_true", help="process CPU time, not wall time")
    ap.add_argument("--res", type=int, nargs="*", help="resolutions (default 128 256 512)")
    ap.add_argument("--faces", type=int, nargs="*", help="face counts (default all four)")
    ap.add_argument("--backends", default=None,
                    help=f"comma-separated, from {','.join(BACKENDS)}; the first is compared "
                         "(default: torch,cpu, or cpu with --no-torch)")
    ap.add_argument("--json", metavar="PATH", help="also write every measurement as JSON")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.cpu_time:
        global CLOCK
        CLOCK = time.process_time
    res_list = args.res or ([128, 256] if args.quick else RES)
    face_list = args.faces or ([1280, 5120] if args.quick else list(FACES))
    if args.backends:
        backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    else:
        backends = ["cpu"] if args.no_torch else ["cpu", "torch"]
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown or not backends:
        ap.error(f"--backends: unknown {unknown}; choose from {list(BACKENDS)}")
    for b in {BACKENDS[b][0] for b in backends} - {"torch"}:
        assert b in _build.available_backends(), f"the native {b} backend is not available"
    gl = None if args.no_gl or "cpu" not in backends else GLFaceId
    first, others = backends[0], backends[1:]
    dev = f", {torch.cuda.get_device_name()}" if any("cuda" in b for b in backends) else ""
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads{dev}; "
          "times in ms (median)\n")
    head = ("| res | faces | op | " + " | ".join(backends) + " | "
            + "".join(f"{o}/{first} | " for o in others)
            + "".join(f"n {b} | " for b in backends) + " | ".join(f"mem {b} MiB" for b in backends)
            + " |")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    vis_gl, records = [], []
    for res in res_list:
        for nf in face_list:
            rows = bench_config(res, nf, backends, args.runs, args.budget, gl)
            for op in ("vis", "soft", "soft_fb", "full"):
                r = [rows[(b, op)] for b in backends]
                ratios = [f"{x[0] / r[0][0]:.1f}x" for x in r[1:]]
                print(
                    f"| {res}² | {nf:,} | {op} | " + " | ".join(fmt_ms(x[0]) for x in r) + " | "
                    + "".join(f"{x} | " for x in ratios) + "".join(f"{x[1]} | " for x in r)
                    + " | ".join(f"{x[2]:.0f}" for x in r) + " |",
                    flush=True,
                )
                records += [
                    {"res": res, "faces": nf, "op": op, "backend": b, "seconds": x[0],
                     "runs": x[1], "mem_mib": x[2]}
                    for b, x in zip(backends, r, strict=True)
                ]
            if args.json:  # after every configuration: a run stopped midway keeps its rows
                with open(args.json, "w") as f:
                    json.dump({"torch": torch.__version__, "backends": backends,
                               "rows": records}, f, indent=1)
            if "cpu" in backends:
                fb = rows[("cpu", "soft_fb")][0] / rows[("cpu", "soft")][0]
                gl_t = rows.get(("gl", "vis"))
                vis_gl.append((res, nf, rows[("cpu", "vis")][0], gl_t, fb,
                               rows.get(("gl", "agree"))))
    if not vis_gl:
        return
    print(
        "\n| res | faces | cpu vis ms | GL face-id ms | cpu/GL | GL agrees | soft fwd+bwd / fwd |"
    )
    print("|---|---|---|---|---|---|---|")
    for res, nf, cv, gl_t, fb, agree in vis_gl:
        g = f"{gl_t[0] * 1e3:.2f}" if gl_t else "-"
        r = f"{cv / gl_t[0]:.2f}" if gl_t else "-"
        a = f"{agree[0] * 100:.2f}%" if agree else "-"
        print(f"| {res}² | {nf:,} | {cv * 1e3:.2f} | {g} | {r} | {a} | {fb:.2f} |")


if __name__ == "__main__":
    main()
