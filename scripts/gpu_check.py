"""The Python stages of scripts/gpu_check.sh, and its closing table.

    python scripts/gpu_check.py env|build|fit|rendernet|report OUT_DIR [options]

Each stage appends one JSON line ``{"stage": ..., "metrics": {...}}`` to
``OUT_DIR/results.jsonl`` and exits non-zero when what it checks is wrong; the shell script
adds a line per stage with its status and time. ``report`` reads those lines, the pytest
JUnit files, the compute-sanitizer log and the benchmark's JSON, prints one table and writes it
to ``OUT_DIR/summary.txt``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import re
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the checkout, as `python -m pytest` from its root sees it

# Imported by the stages run here (module -> distribution); the GPU machine's image holds most,
# scripts/gpu_wheels.sh brings the rest.
MODULES = {
    "numpy": "numpy", "scipy": "scipy", "PIL": "pillow", "networkx": "networkx",
    "ninja": "ninja", "tqdm": "tqdm", "pytest": "pytest", "trimesh": "trimesh",
    "xatlas": "xatlas", "embreex": "embreex", "rtree": "rtree",
}
TEST_STAGES = ("tests", "sanitizer")


def record(out: Path, stage: str, **metrics) -> None:
    with open(out / "results.jsonl", "a") as f:
        f.write(json.dumps({"stage": stage, "metrics": metrics}) + "\n")


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


# -- env -----------------------------------------------------------------------------------


def cmd_env(args) -> int:
    """Interpreter, torch, GPU, and where each needed module comes from."""
    import torch

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
        info["capability"] = "{}.{}".format(*torch.cuda.get_device_capability())
    missing, shadowed = [], []
    # Modules of the wheel folder's distributions: they must import from this environment.
    dists = {w.name.split("-")[0].lower().replace("_", "-") for w in args.wheels.glob("*.whl")}
    local = [m for m, dist in MODULES.items() if dist in dists] if args.wheels.is_dir() else []
    prefix = str(Path(sys.prefix).resolve())
    info["from_wheels"] = local
    for mod in MODULES:
        try:
            m = importlib.import_module(mod)
        except Exception as exc:  # noqa: BLE001 - any import failure: report it
            missing.append(f"{MODULES[mod]} ({type(exc).__name__})")
            continue
        if mod in local and not str(Path(m.__file__).resolve()).startswith(prefix):
            shadowed.append(f"{mod} from {Path(m.__file__).parent}")
    info["missing"] = missing
    info["not_from_wheels"] = shadowed
    print(json.dumps(info, indent=1))
    record(args.out, "env", **info)
    problems = ([f"missing {', '.join(missing)}"] if missing else []) + (
        [f"not from the wheels: {', '.join(shadowed)}"] if shadowed else [])
    if args.need_gpu and not torch.cuda.is_available():
        problems.append("torch sees no CUDA device")
    if problems:
        print("gpu_check env: " + "; ".join(problems))
    return 1 if problems else 0


def cmd_arch(args) -> int:
    """The TORCH_CUDA_ARCH_LIST entry of the GPU found (nothing without one)."""
    import torch

    if torch.cuda.is_available():
        print("{}.{}".format(*torch.cuda.get_device_capability()))
    return 0


# -- build ---------------------------------------------------------------------------------


def cmd_build(args) -> int:
    """Build (or load) the variant that serves ``--device`` and check the backend is there."""
    from render_core import _build

    variant = args.device
    seconds = _build.build_seconds(variant, verbose=args.verbose)
    backends = _build.available_backends()
    record(args.out, "build", variant=variant, seconds=round(seconds, 1), backends=backends)
    print(f"{variant} extension in {seconds:.1f} s; backends {backends}")
    return 0 if args.device in backends else 1


# -- fit -----------------------------------------------------------------------------------


def _demo_problem(device: str, resolution: int):
    """The studio's demo scene (six rendered targets, an icosphere to fit) on ``device``."""
    import torch
    import torch.nn.functional as F

    import render_core as rc
    from studio.model.demo import demo_scene

    start, targets, _ = demo_scene()
    imgs = torch.stack([torch.from_numpy(t.image.copy()) for t in targets]).permute(0, 3, 1, 2)
    masks = torch.stack([torch.from_numpy(t.mask.copy()) for t in targets])[:, None]
    imgs = F.interpolate(imgs.float(), size=(resolution, resolution), mode="area")
    masks = F.interpolate(masks.float(), size=(resolution, resolution), mode="area")
    t_mask = masks[:, 0].to(device)
    t_rgb = imgs.permute(0, 2, 3, 1).to(device) * t_mask[..., None]
    cams = rc.Camera.orbit([t.azimuth for t in targets], [t.elevation for t in targets],
                           targets[0].distance, fov=targets[0].fov).to(device)
    return start.to(device), cams, t_rgb, t_mask


def _fit(device: str, steps: int, resolution: int) -> dict:
    """``steps`` Adam steps of the Fitter's default problem (vertex offsets and colours, its
    loss terms and weights) with every tensor on ``device``; times and losses."""
    import torch

    import render_core as rc
    from render_core import losses
    from render_core.fit_config import default_groups, default_weights

    torch.manual_seed(0)
    mesh, cams, t_rgb, t_mask = _demo_problem(device, resolution)
    r = rc.Renderer(resolution, shading="vertex_color", backend=device)
    offset = torch.zeros_like(mesh.vertices, requires_grad=True)
    logit = torch.zeros_like(mesh.vertices, requires_grad=True)
    lr, w = default_groups(), default_weights()
    opt = torch.optim.Adam([{"params": [offset], "lr": lr["vertices"].lr},
                            {"params": [logit], "lr": lr["colors"].lr}])

    def loss_fn():
        v = mesh.vertices + offset
        out = r.render(mesh.with_(vertices=v, vertex_colors=torch.sigmoid(logit)), cams)
        return (w["l1"] * losses.l1(rc.linear_to_srgb(out.rgb.clamp(0, 1)), t_rgb)
                + w["iou"] * losses.iou(out.alpha, t_mask)
                + w["laplacian"] * losses.laplacian(v, mesh.faces)
                + w["normal"] * losses.normal_consistency(v, mesh.faces)
                + w["edge"] * losses.edge_length(v, mesh.faces)), out

    first = None
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        loss, _ = loss_fn()
        loss.backward()
        opt.step()
        first = float(loss.detach()) if first is None else first
    _sync(device)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        last, out = loss_fn()
    iou = float(((out.alpha > 0.5) & (t_mask > 0.5)).sum() / ((out.alpha > 0.5) | (t_mask > 0.5))
                .sum())
    return {"steps": steps, "seconds": round(seconds, 2), "ms_per_step": seconds / steps * 1e3,
            "loss_start": first, "loss_end": float(last), "hard_iou": iou,
            "finite": bool(torch.isfinite(offset).all() and torch.isfinite(logit).all())}


def cmd_fit(args) -> int:
    """The demo fit on ``--device`` (and a few steps on the CPU for the speed ratio)."""
    res = _fit(args.device, args.steps, args.resolution)
    if args.compare_steps and args.device != "cpu":
        res["cpu_ms_per_step"] = _fit("cpu", args.compare_steps, args.resolution)["ms_per_step"]
    print(json.dumps(res, indent=1))
    # The fit must make progress: the loss falls (over 100 steps or more: at least halves, and
    # the silhouettes overlap well; 50 steps on the CPU reached IoU 0.99).
    long = args.steps >= 100
    ok = res["finite"] and res["loss_end"] < (0.5 if long else 1.0) * res["loss_start"] and (
        not long or res["hard_iou"] > 0.9)
    res["ok"] = bool(ok)
    record(args.out, "fit", **res)
    return 0 if ok else 1


# -- rendernet -----------------------------------------------------------------------------


def cmd_rendernet(args) -> int:
    """A RenderNet inference batch on ``--device``; agreement with the same batch on the CPU."""
    import torch
    import trimesh

    from render_core.rendernet.render import load_model, render_voxels, voxel_grid

    b = args.batch
    vox = voxel_grid(trimesh.creation.icosphere(subdivisions=4, radius=0.8))
    az = torch.linspace(0.0, 315.0, b)
    el = torch.linspace(-20.0, 40.0, b)
    scale = torch.ones(b)

    def run(device: str, reps: int):
        model = load_model().to(device)
        inputs = [t.to(device) for t in (vox, az, el, scale)]
        with torch.no_grad():
            img = render_voxels(*inputs, "phong", model=model)  # warm-up
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(reps):
                img = render_voxels(*inputs, "phong", model=model)
            _sync(device)
        assert img.device.type == device, img.device
        return img.float().cpu(), (time.perf_counter() - t0) / reps / b * 1e3

    img, ms = run(args.device, args.reps)
    res = {"batch": b, "ms_per_view": ms, "finite": bool(torch.isfinite(img).all()),
           "mean": float(img.mean())}
    if args.device != "cpu":
        ref, ms_cpu = run("cpu", 1)
        res["cpu_ms_per_view"] = ms_cpu
        res["max_abs_diff_vs_cpu"] = float((img - ref).abs().max())
    ok = res["finite"] and 0.0 < res["mean"] < 1.0 and res.get("max_abs_diff_vs_cpu", 0) < 0.05
    res["ok"] = bool(ok)
    print(json.dumps(res, indent=1))
    record(args.out, "rendernet", **res)
    return 0 if ok else 1


# -- report --------------------------------------------------------------------------------


def _junit(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        return {"error": "unreadable JUnit file"}
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    failed = []
    for case in root.iter("testcase"):
        kinds = {child.tag for child in case}
        name = f"{Path(case.get('classname', '').replace('.', '/')).name}::{case.get('name')}"
        if kinds & {"failure", "error"}:
            counts["failed"] += 1
            failed.append(name)
        elif "skipped" in kinds:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
    counts["failed_names"] = failed
    return counts


def _fmt(x, digits=1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _stage_result(stage: str, m: dict, out: Path) -> str:
    if stage == "env":
        gpu = m.get("gpu", "no GPU")
        ok = [w for w in m.get("from_wheels", []) if not any(
            x.startswith(f"{w} ") for x in m.get("not_from_wheels", []))]
        return (f"python {m.get('python')}, torch {m.get('torch')} (CUDA {m.get('torch_cuda')})"
                f", {gpu}; from the wheels: {', '.join(ok) or 'none'}")
    if stage == "install":
        return f"{m.get('wheels')} wheels from the folder; dibr-studio editable, --no-deps"
    if stage == "build":
        return f"{m.get('variant')} extension {m.get('seconds')} s; backends {m.get('backends')}"
    if stage in TEST_STAGES:
        j = _junit(out / f"{stage}.xml")
        if j is None:
            return "no JUnit report"
        if "error" in j:
            return j["error"]
        text = f"{j['passed']} passed, {j['failed']} failed, {j['skipped']} skipped"
        if stage == "sanitizer":
            text += "; " + _sanitizer_summary(out / "sanitizer.log")
        if j["failed_names"]:
            text += ": " + ", ".join(j["failed_names"][:12])
            text += " ..." if len(j["failed_names"]) > 12 else ""
        return text
    if stage == "fit":
        ratio = ""
        if m.get("cpu_ms_per_step"):
            cpu = m["cpu_ms_per_step"]
            ratio = f" (cpu {cpu:.0f}: {cpu / m['ms_per_step']:.1f}x)"
        return (f"{m.get('steps')} steps, {_fmt(m.get('ms_per_step'))} ms/step{ratio}, loss "
                f"{_fmt(m.get('loss_start'), 3)} -> {_fmt(m.get('loss_end'), 3)}, "
                f"IoU {_fmt(m.get('hard_iou'), 3)}")
    if stage == "rendernet":
        text = f"batch {m.get('batch')}: {_fmt(m.get('ms_per_view'), 2)} ms/view"
        if m.get("cpu_ms_per_view"):
            text += (f" (cpu {m['cpu_ms_per_view']:.1f}: "
                     f"{m['cpu_ms_per_view'] / m['ms_per_view']:.1f}x), max |dev-cpu| "
                     f"{m.get('max_abs_diff_vs_cpu', 0):.1e}")
        return text
    if stage == "bench":
        return "table below" if (out / "bench.json").exists() else "no results"
    return m.get("note", "")


def _sanitizer_summary(log: Path) -> str:
    if not log.exists():
        return "no sanitizer log"
    sums = re.findall(r"ERROR SUMMARY: (\d+) error", log.read_text(errors="replace"))
    return f"memcheck errors: {sum(int(s) for s in sums)}" if sums else "no ERROR SUMMARY"


def _bench_table(path: Path) -> list[str]:
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    backends, rows = data["backends"], data["rows"]
    first = backends[0]
    head = "| res | faces | op | " + " | ".join(f"{b} ms" for b in backends) + " | " + \
        " | ".join(f"{b}/{first}" for b in backends[1:]) + " |"
    lines = ["", f"Raster benchmark (median; ratios: time over {first}'s)", head,
             "|" + "---|" * (head.count("|") - 1)]
    keys = sorted({(r["res"], r["faces"], r["op"]) for r in rows},
                  key=lambda k: (k[0], k[1], ("vis", "soft", "soft_fb", "full").index(k[2])))
    for key in keys:
        t = {r["backend"]: r["seconds"] for r in rows if (r["res"], r["faces"], r["op"]) == key}
        cells = [f"{t[b] * 1e3:.2f}" if b in t else "-" for b in backends]
        ratios = [f"{t[b] / t[first]:.1f}x" if b in t and first in t else "-"
                  for b in backends[1:]]
        lines.append(f"| {key[0]}² | {key[1]:,} | {key[2]} | " + " | ".join(cells) + " | "
                     + " | ".join(ratios) + " |")
    return lines


def cmd_report(args) -> int:
    entries = []
    path = args.out / "results.jsonl"
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    metrics, status = {}, []
    for e in entries:
        if "metrics" in e:
            metrics.setdefault(e["stage"], {}).update(e["metrics"])
        if "status" in e:
            status.append(e)
    env = metrics.get("env", {})
    title = (f"dibr-studio GPU check ({args.mode}): {env.get('gpu', 'no GPU')}, torch "
             f"{env.get('torch', '?')}, arch {args.arch or '-'}")
    lines = [title, "", "| stage | status | seconds | result |", "|---|---|---|---|"]
    bad = 0
    for e in status:
        stage = e["stage"]
        m = metrics.get(stage)
        computed = e["status"] not in ("skipped", "not run") and (
            m or stage in TEST_STAGES + ("bench",))
        result = _stage_result(stage, m or {}, args.out) if computed else ""
        if e.get("note"):
            result = f"{result}; {e['note']}" if result else e["note"]
        if e["status"] not in ("ok", "skipped"):
            bad += 1
        lines.append(f"| {stage} | {e['status']} | {e.get('seconds', 0):.1f} | {result} |")
    total = sum(e.get("seconds", 0) for e in status)
    lines.append(f"| total | {'ok' if not bad else f'{bad} not ok'} | {total:.1f} | |")
    lines += _bench_table(args.out / "bench.json")
    text = "\n".join(lines)
    print(text)
    (args.out / "summary.txt").write_text(text + "\n")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("env", "arch", "build", "fit", "rendernet", "report"):
        p = sub.add_parser(name)
        p.add_argument("out", type=Path)
        p.add_argument("--device", default="cuda", choices=("cpu", "cuda"))
    sub.choices["env"].add_argument("--wheels", type=Path, default=ROOT / ".whl",
                                    help="the wheel folder installed (its modules must "
                                         "import from this environment)")
    sub.choices["env"].add_argument("--need-gpu", action="store_true")
    sub.choices["build"].add_argument("--verbose", action="store_true")
    sub.choices["fit"].add_argument("--steps", type=int, default=200)
    sub.choices["fit"].add_argument("--compare-steps", type=int, default=10)
    sub.choices["fit"].add_argument("--resolution", type=int, default=64)
    sub.choices["rendernet"].add_argument("--batch", type=int, default=8)
    sub.choices["rendernet"].add_argument("--reps", type=int, default=5)
    sub.choices["report"].add_argument("--mode", default="cuda")
    sub.choices["report"].add_argument("--arch", default="")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    fn = globals()[f"cmd_{args.cmd}"]
    return fn(args)


if __name__ == "__main__":
    sys.exit(main())
