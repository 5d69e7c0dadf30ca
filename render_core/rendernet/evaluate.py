"""Per-style validation PSNR of shipped weights: held-out procedural seeds and unseen meshes.

    python -m render_core.rendernet.evaluate [--weights PATH] [--shapes 24]

Prints markdown tables for the model card. The generalisation set is meshes of kinds never
generated for training (render_core's primitives and trimesh's torus / capsule / cone /
annulus), normalised like the training shapes, two views each with fixed lights.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import trimesh

from . import data as D
from .model import images
from .render import load_model
from .shapes import normalize
from .train import STYLE_KEYS, evaluate, psnr
from .voxelize import voxelize

POSER_PSNR = {"phong": 25.39, "contour": 19.70, "toon": 17.77, "ao": 22.37}


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


def mesh_item(mesh: trimesh.Trimesh, seed: int) -> dict[str, np.ndarray]:
    """The cache record of :func:`data.generate` for an arbitrary mesh."""
    from . import targets as T

    mesh = normalize(mesh)
    poses = D.view_poses(seed, 2)
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
    rng = np.random.default_rng(7)
    b = D.stack([item, item], [0, 1], D.random_light(rng, 2))
    out = model.render_pose(b["vox"], b["az"], b["el"], b["scale"], b["light"])
    im = images(out, b["light"])
    return {k: psnr(im[k], b["phong" if k == "phong_net" else k]) for k in STYLE_KEYS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None)
    ap.add_argument("--shapes", type=int, default=24)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = load_model(args.weights)
    cols = list(STYLE_KEYS)
    head = "| set | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols)
    val = evaluate(model, D.validation_set(D.default_cache(), args.shapes))
    print(head)
    print(f"| held-out seeds ({args.shapes} shapes × 2 views) | "
          + " | ".join(f"{val[c]:.2f}" for c in cols) + " |")
    print("| poster (single-style nets) | " + " | ".join(
        f"{POSER_PSNR[c]:.2f}" if c in POSER_PSNR else "–" for c in cols) + " |")
    print()
    print(head)
    for i, (name, mesh) in enumerate(unseen_meshes().items()):
        r = per_mesh(model, name, mesh_item(mesh, 5000 + i))
        print(f"| {name} | " + " | ".join(f"{r[c]:.2f}" for c in cols) + " |")


if __name__ == "__main__":
    main()
