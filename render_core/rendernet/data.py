"""Training / validation data: procedural shapes, voxel grids and style targets, cached on disk.

One ``.npz`` per shape seed under ``<cache>/shapes/`` holds (compressed):
    vox     [32,32,32] float16 fractional occupancy (z, y, x)
    pose    [V,3] float32 (azimuth, elevation, scale) per view
    mask    [V,128,128] uint8, contour [V,128,128] uint8
    normal  [V,128,128,3] int8 camera-frame normals × 127
    ao      [V,128,128] uint8 ambient occlusion × 255
Light-dependent targets (Phong, toon) are computed on the fly from the normals, so every sample
gets a fresh light. Training seeds count up from 0; validation seeds start at ``VAL_SEED0`` and
are never used in training.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from . import targets as T
from .shapes import make_shape
from .voxelize import voxelize

VAL_SEED0 = 1_000_000
VIEWS = 4
RES = 128
EL_RANGE = (-20.0, 60.0)
SCALE_RANGE = (0.9, 1.3)


def default_cache() -> Path:
    """Cache directory (never in git): $RENDERNET_CACHE or ~/.cache/dibr-studio/rendernet."""
    env = os.environ.get("RENDERNET_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "dibr-studio" / "rendernet"


def view_poses(seed: int, views: int = VIEWS) -> np.ndarray:
    rng = np.random.default_rng([seed, 0x504F5345])
    az = rng.uniform(0, 360, views)
    el = rng.uniform(*EL_RANGE, views)
    sc = rng.uniform(*SCALE_RANGE, views)
    return np.stack([az, el, sc], -1).astype(np.float32)


def generate(seed: int, views: int = VIEWS, res: int = RES) -> dict[str, np.ndarray]:
    """Shape ``seed`` -> voxel grid and per-view maps (see module doc)."""
    mesh, _ = make_shape(seed)
    poses = view_poses(seed, views)
    maps = [T.render_view(mesh, *map(float, p), res=res, seed=seed * 31 + i)
            for i, p in enumerate(poses)]
    return {
        "vox": voxelize(mesh).astype(np.float16),
        "pose": poses,
        "mask": np.stack([m["mask"] for m in maps]),
        "contour": np.stack([m["contour"] for m in maps]),
        "normal": np.stack([np.round(m["normal"] * 127) for m in maps]).astype(np.int8),
        "ao": np.stack([np.round(m["ao"] * 255) for m in maps]).astype(np.uint8),
    }


def load_or_generate(seed: int, cache: Path) -> dict[str, np.ndarray]:
    path = cache / "shapes" / f"{seed}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError):  # a torn write from a killed run: regenerate
            pass
    d = generate(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{seed}.tmp.npz")
    np.savez_compressed(tmp, **d)
    os.replace(tmp, path)  # atomic: a killed run never leaves a half-written cache entry
    return d


def random_light(rng: np.random.Generator, n: int) -> np.ndarray:
    """Camera-frame light directions [n,3], towards the viewer's hemisphere (z >= 0.2)."""
    v = rng.normal(size=(n, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    v[:, 2] = np.abs(v[:, 2])
    v[:, 2] = np.maximum(v[:, 2], 0.2)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


class Pool:
    """In-memory set of shapes (as stored in the cache), sampled uniformly by (shape, view)."""

    def __init__(self, cache: Path, max_shapes: int = 4000):
        self.cache, self.max_shapes = cache, max_shapes
        self.items: list[dict[str, np.ndarray]] = []

    def add(self, seed: int) -> None:
        self.items.append(load_or_generate(seed, self.cache))
        if len(self.items) > self.max_shapes:
            self.items.pop(0)

    def __len__(self) -> int:
        return len(self.items)

    def batch(self, rng: np.random.Generator, n: int) -> dict[str, torch.Tensor]:
        """n random (shape, view) samples with fresh lights -> tensors (see :func:`stack`)."""
        picks = [(int(rng.integers(len(self.items))), int(rng.integers(VIEWS))) for _ in range(n)]
        return stack([self.items[i] for i, _ in picks], [v for _, v in picks],
                     random_light(rng, n))


def stack(items: list[dict], views: list[int], light: np.ndarray) -> dict[str, torch.Tensor]:
    """Samples -> vox [B,1,32,32,32], az/el/scale [B], light [B,3], and targets [B,H,W]
    (mask, contour, ao, phong, toon) + normal [B,H,W,3]."""
    vox = torch.from_numpy(np.stack([it["vox"] for it in items]).astype(np.float32))[:, None]
    pose = torch.from_numpy(np.stack([it["pose"][v] for it, v in zip(items, views, strict=True)]))
    g = lambda k: np.stack([it[k][v] for it, v in zip(items, views, strict=True)])  # noqa: E731
    mask = torch.from_numpy(g("mask").astype(np.float32))
    contour = torch.from_numpy(g("contour").astype(np.float32))
    normal = torch.from_numpy(g("normal").astype(np.float32) / 127.0)
    normal = torch.nn.functional.normalize(normal, dim=-1) * mask[..., None]
    ao = torch.from_numpy(g("ao").astype(np.float32) / 255.0)
    lt = torch.from_numpy(light)
    return {
        "vox": vox, "az": pose[:, 0], "el": pose[:, 1], "scale": pose[:, 2], "light": lt,
        "mask": mask, "contour": contour, "normal": normal, "ao": ao,
        "phong": T.phong(normal, mask, lt), "toon": T.toon(normal, mask, contour, lt),
    }


def validation_set(cache: Path, n_shapes: int = 24) -> dict[str, torch.Tensor]:
    """Fixed held-out batch: seeds VAL_SEED0.., first two views each, fixed lights."""
    items, views = [], []
    for k in range(n_shapes):
        it = load_or_generate(VAL_SEED0 + k, cache)
        items += [it, it]
        views += [0, 1]
    rng = np.random.default_rng(12345)
    return stack(items, views, random_light(rng, len(items)))
