"""Per-style validation PSNR of shipped weights: held-out procedural seeds and unseen meshes.

    python -m render_core.rendernet.evaluate [--weights PATH] [--shapes 24]
        [--meshes FILE ...] [--views 4] [--no-primitives] [--samples PNG]

Prints markdown tables for the model card: the held-out procedural seeds (``--shapes 0`` skips
them), the generalisation set of primitives never generated for training (render_core's
icosphere and cube, trimesh's torus / capsule / cone / annulus), and one row per mesh file
(by default the demo meshes shipped in ``assets/meshes/``). Every mesh is normalised like the
training shapes and seen from two views (``--views`` of them for the mesh files) with fixed
lights. A mesh file that cannot be read ends the run with exit code 2 and one line naming it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import trimesh

from . import data as D
from .render import WEIGHTS, load_model
from .shapes import normalize
from .train import STYLE_KEYS, evaluate, predict, psnr, scores, target
from .voxelize import voxelize

POSER_PSNR = {"phong": 25.39, "contour": 19.70, "toon": 17.77, "ao": 22.37}
DEMO_MESHES = WEIGHTS.parents[1] / "meshes"
"""The demo meshes shipped with the studio (``scripts/make_demo_meshes.py``)."""


def demo_mesh_files() -> list[Path]:
    """The shipped demo meshes, sorted by name (empty if the assets are not there)."""
    return sorted(DEMO_MESHES.glob("*.ply")) if DEMO_MESHES.is_dir() else []


def read_mesh_file(path: str | Path) -> trimesh.Trimesh:
    """A mesh file as a trimesh, through render_core's reader (``MeshError`` names the file)."""
    from ..mesh import MeshError, load_mesh

    m = load_mesh(path)
    mesh = trimesh.Trimesh(m.vertices.double().numpy(), m.faces.numpy(), process=True)
    if len(mesh.faces) == 0:
        raise MeshError("no faces left after removing degenerate ones", Path(path))
    return mesh


def unseen_meshes() -> dict[str, trimesh.Trimesh]:
    from ..primitives import cube, icosphere

    def tm(m):
        return trimesh.Trimesh(m.vertices.numpy(), m.faces.numpy())

    return {
        "icosphere": tm(icosphere(3)),
        "cube": tm(cube()),
        "torus": trimesh.creation.torus(1.0, 0.35),
        "capsule": trimesh.creation.capsule(1.0, 0.4),
        "cone": trimesh.creation.cone(0.6, 1.2, sections=48),
        "annulus": trimesh.creation.annulus(0.3, 0.7, 0.5),
    }


def mesh_item(mesh: trimesh.Trimesh, seed: int, views: int = 2) -> dict[str, np.ndarray]:
    """The cache record of :func:`data.generate` for an arbitrary mesh (``views`` poses)."""
    from . import targets as T

    mesh = normalize(mesh)
    poses = D.view_poses(seed, views)
    maps = [T.render_view(mesh, *map(float, p), seed=seed + i) for i, p in enumerate(poses)]
    return {
        "vox": voxelize(mesh).astype(np.float16), "pose": poses,
        "mask": np.stack([m["mask"] for m in maps]),
        "contour": np.stack([m["contour"] for m in maps]),
        "normal": np.stack([np.round(m["normal"] * 127) for m in maps]).astype(np.int8),
        "ao": np.stack([np.round(m["ao"] * 255) for m in maps]).astype(np.uint8),
    }


@torch.no_grad()
def per_mesh(model, name: str, item: dict) -> dict[str, float]:
    """PSNR (dB) per style of ``model`` on the two views of ``item`` (see :func:`mesh_item`)."""
    rng = np.random.default_rng(7)
    n = len(item["pose"])
    b = D.stack([item] * n, list(range(n)), D.random_light(rng, n))
    return evaluate(model, b)


def mesh_table(model, meshes: dict[str, trimesh.Trimesh], seed0: int = 5000, views: int = 2
               ) -> dict[str, dict[str, float]]:
    """Per-style PSNR for each named mesh (views and lights seeded by its position)."""
    return {name: per_mesh(model, name, mesh_item(mesh, seed0 + i, views))
            for i, (name, mesh) in enumerate(meshes.items())}


def per_image_psnr(pred: dict, val: dict) -> dict[str, float]:
    """Mean over images of each image's PSNR (dB) of :func:`train.predict`'s images — the other
    common convention; the pooled PSNR (:func:`train.scores`) is never higher."""
    res = {}
    for k in STYLE_KEYS:
        mse = ((pred[k] - target(val, k)) ** 2).mean(dim=(1, 2))
        res[k] = float((-10 * torch.log10(mse.clamp(min=1e-10))).mean())
    return res


def error_breakdown(pred: dict, val: dict) -> dict[str, dict[str, float]]:
    """Where the squared error of :func:`train.predict`'s images is, per style: shares in the
    silhouette band (pixels within 2 px of the target mask's edge), the interior and the
    background; plus, for deferred Phong, the PSNR with the true mask and the predicted normals
    and vice versa (``oracle``)."""
    from .targets import phong as phong_shade

    m = val["mask"]
    count = torch.nn.functional.conv2d(m[:, None], torch.ones(1, 1, 5, 5), padding=2)[:, 0]
    near, inside = (count > 0).float(), (count > 24.5).float()
    regions = {"band": near - inside, "interior": inside, "background": 1 - near}
    res: dict[str, dict[str, float]] = {}
    for k in ("phong", "contour", "toon", "ao", "mask"):
        e = (pred[k] - val[k]) ** 2
        res[k] = {r: float((e * w).sum() / e.sum()) for r, w in regions.items()}
        res[k]["psnr"] = psnr(pred[k], val[k])
    light, target = val["light"], val["phong"]
    res["oracle"] = {
        "true mask, predicted normals": psnr(phong_shade(pred["normal"], m, light), target),
        "predicted mask, true normals": psnr(phong_shade(val["normal"], pred["mask"], light),
                                             target),
    }
    res["fractions"] = {r: float(w.mean()) for r, w in regions.items()}
    return res


@torch.no_grad()
def sample_sheet(model, val: dict, path: Path, n: int = 4) -> None:
    """PNG of the first view of the first ``n`` held-out shapes: for each, a row of targets and
    a row of predictions, one column per style (``STYLE_KEYS``; ``phong_net``'s target is
    Phong's). The validation batch holds two views per shape, so shape i is sample 2i."""
    from PIL import Image

    first_views = {k: v[: 2 * n : 2] for k, v in val.items()}
    pred = predict(model, first_views)
    rows = []
    for i in range(len(first_views["vox"])):
        rows.append(torch.cat([target(first_views, k)[i] for k in STYLE_KEYS], 1))
        rows.append(torch.cat([pred[k][i] for k in STYLE_KEYS], 1))
    sheet = (torch.cat(rows, 0).clamp(0, 1) * 255).round().byte().numpy()
    tmp = path.with_name(path.name + ".tmp")
    Image.fromarray(sheet).save(tmp, format="PNG")
    tmp.replace(path)


def _row(name: str, r: dict[str, float]) -> str:
    return f"| {name} | " + " | ".join(f"{r[c]:.2f}" for c in STYLE_KEYS) + " |"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None)
    ap.add_argument("--shapes", type=int, default=24, help="held-out seeds (0: skip)")
    ap.add_argument("--meshes", nargs="*", type=Path, default=None,
                    help="mesh files for the generalisation table (default: assets/meshes/)")
    ap.add_argument("--views", type=int, default=4, help="views per mesh file")
    ap.add_argument("--no-primitives", action="store_true",
                    help="skip the table of render_core / trimesh primitives")
    ap.add_argument("--samples", type=Path, default=None,
                    help="also write a PNG of held-out targets and predictions here")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    files = demo_mesh_files() if args.meshes is None else args.meshes
    from ..mesh import MeshError

    try:  # read every file first: a bad one fails fast, before minutes of evaluation
        demo = {Path(p).stem: read_mesh_file(p) for p in files}
    except MeshError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    model = load_model(args.weights)
    head = "| set | " + " | ".join(STYLE_KEYS) + " |\n|---|" + "---|" * len(STYLE_KEYS)
    if args.shapes > 0 or args.samples:
        held_out = D.validation_set(D.default_cache(), max(args.shapes, 4))
    if args.samples:
        sample_sheet(model, held_out, args.samples)
    if args.shapes > 0:
        pred = predict(model, held_out)  # one forward pass feeds every table below
        print(head)
        print(_row(f"held-out seeds ({args.shapes} shapes × 2 views)", scores(pred, held_out)))
        print(_row("same, mean of per-image PSNR", per_image_psnr(pred, held_out)))
        print("| poster (single-style nets) | " + " | ".join(
            f"{POSER_PSNR[c]:.2f}" if c in POSER_PSNR else "–" for c in STYLE_KEYS) + " |")
        print()
        br = error_breakdown(pred, held_out)
        print("| style | PSNR | error share: silhouette band | interior | background |")
        print("|---|---|---|---|---|")
        for k in ("phong", "contour", "toon", "ao", "mask"):
            r = br[k]
            print(f"| {k} | {r['psnr']:.2f} | {r['band']:.2f} | {r['interior']:.2f} | "
                  f"{r['background']:.2f} |")
        fr = br["fractions"]
        print(f"(pixel fractions: band {fr['band']:.3f}, interior {fr['interior']:.3f}, "
              f"background {fr['background']:.3f})")
        for name, v in br["oracle"].items():
            print(f"deferred Phong with {name}: {v:.2f} dB")
        print()
    if not args.no_primitives:
        print(head)
        for name, r in mesh_table(model, unseen_meshes()).items():
            print(_row(name, r))
        print()
    if demo:
        print(head)
        table = mesh_table(model, demo, seed0=6000, views=args.views)
        for name, r in table.items():
            print(_row(name, r))
        mean = {c: float(np.mean([r[c] for r in table.values()])) for c in STYLE_KEYS}
        print(_row(f"**mean of {len(table)}**", mean))
    return 0


if __name__ == "__main__":
    sys.exit(main())
