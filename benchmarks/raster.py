"""Rasterizer benchmark: torch reference vs native cpu backend vs an OpenGL face-id render.

    python benchmarks/raster.py [--quick] [--runs 10] [--budget 20]

For 128^2, 256^2, 512^2 x icospheres of 1,280 / 5,120 / 20,480 / 81,920 faces, the median over
``--runs`` runs of: visibility forward; soft silhouette forward; soft silhouette forward +
backward; a full ``Renderer`` Lambertian render + IoU + L1 + backward. Per backend, plus a
moderngl face-id render of the same clip-space triangles on a standalone EGL context (Mesa
llvmpipe), timed up to and including reading the face ids back (which waits for the GPU).

A torch measurement whose first run takes longer than ``--budget / runs`` seconds is repeated
fewer times (at least once); the ``n`` column says how many runs each median is over.

Peak memory: the resident set size sampled every millisecond by a background thread during
one run, minus the RSS before it (tracemalloc does not see torch's allocations, and
``ru_maxrss`` only reports the process-wide high-water mark). Free heap pages are returned to
the system before each run (``malloc_trim``), else memory freed by the previous run is reused
without moving the RSS and a run looks free.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
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


def median_time(fn: Callable[[], object], runs: int, budget: float) -> tuple[float, int]:
    """Median time (s) of ``fn`` over ``runs`` runs (fewer if one run exceeds budget/runs)."""
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


def scene(nfaces: int, res: int):
    """Icosphere mesh, a camera looking at it, clip coordinates [1,V,4] and faces [F,3]."""
    mesh = rc.icosphere(FACES[nfaces])
    cam = rc.Camera.orbit(30.0, 20.0, 3.2, fov=45.0)
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
    mesh, cam, clip, faces = scene(nfaces, res)
    rows = {}
    weight = torch.rand(1, res, res, generator=torch.Generator().manual_seed(0))
    target_alpha = rc.soft_silhouette(clip, faces, res, backend=backends[-1]).detach()
    target_rgb = torch.full((1, res, res, 3), 0.5)
    light = rc.DirectionalLight(torch.tensor([0.3, 0.5, 1.0]))
    for b in backends:

        def vis(b=b):
            if b == "torch":
                return torch_ref.visibility(clip, faces, res, res)
            return native_visibility(b, clip, faces, res, res)

        def soft_fwd(b=b):
            with torch.no_grad():
                return rc.soft_silhouette(clip, faces, res, backend=b)

        def soft_fwd_bwd(b=b):
            c = clip.clone().requires_grad_(True)
            a = rc.soft_silhouette(c, faces, res, backend=b)
            (a * weight).sum().backward()

        renderer = rc.Renderer(res, shading="lambertian", backend=b)

        def full(renderer=renderer):
            verts = mesh.vertices.clone().requires_grad_(True)
            out = renderer.render(mesh.with_(vertices=verts), cam, light=light)
            loss = rc.losses.iou(out.alpha, target_alpha) + rc.losses.l1(out.rgb, target_rgb)
            loss.backward()

        for name, fn in (
            ("vis", vis),
            ("soft", soft_fwd),
            ("soft_fb", soft_fwd_bwd),
            ("full", full),
        ):
            t, n = median_time(fn, runs, budget)
            rows[(b, name)] = (t, n, peak_rss_delta(fn))
    if gl is not None:
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
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.cpu_time:
        global CLOCK
        CLOCK = time.process_time
    res_list = args.res or ([128, 256] if args.quick else RES)
    face_list = args.faces or ([1280, 5120] if args.quick else list(FACES))
    backends = ["cpu"] if args.no_torch else ["torch", "cpu"]
    assert "cpu" in _build.available_backends(), "the native cpu backend did not build"
    gl = None if args.no_gl else GLFaceId
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; times in ms (median)\n")
    head = "| res | faces | op | torch | cpu | cpu/torch | n torch | mem torch MiB | mem cpu MiB |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    vis_gl = []
    for res in res_list:
        for nf in face_list:
            rows = bench_config(res, nf, backends, args.runs, args.budget, gl)
            for op in ("vis", "soft", "soft_fb", "full"):
                c = rows[("cpu", op)]
                t = rows.get(("torch", op))
                ratio = f"{t[0] / c[0]:.0f}x" if t else "-"
                print(
                    f"| {res}² | {nf:,} | {op} | {fmt_ms(t[0]) if t else '-'} | {fmt_ms(c[0])} "
                    f"| {ratio} | {t[1] if t else '-'} | {t[2] if t else 0:.0f} | {c[2]:.0f} |",
                    flush=True,
                )
            fb = rows[("cpu", "soft_fb")][0] / rows[("cpu", "soft")][0]
            gl_t = rows.get(("gl", "vis"))
            vis_gl.append((res, nf, rows[("cpu", "vis")][0], gl_t, fb, rows.get(("gl", "agree"))))
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
