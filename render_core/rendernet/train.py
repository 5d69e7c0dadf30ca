"""Train RenderNet: ``python -m render_core.rendernet.train --minutes 150``.

Resumable: every few minutes ``<cache>/ckpt.pt`` (model + Adam state + step + elapsed seconds
+ next shape seed; state_dicts and plain numbers only, loaded with ``weights_only=True``) and,
on a new best validation score, ``<cache>/best.pt`` (float16 model weights). Validation PSNR per
style on held-out seeds goes to ``<cache>/log.jsonl``. Re-running the same command continues
where the last run stopped; ``--init`` seeds a fresh cache from shipped weights.

Column-crop trick (as the original): the camera grid is resampled in full, then a random
full-depth block of ``crop``×``crop`` columns and the matching 2×crop image window are trained
on; at test time the network runs fully convolutionally. Crops start at 32 columns and switch to
the full 64 after ``--full-after`` steps (batch shrinks to keep the cost per step constant).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import data as D
from .model import Config, RenderNet, images, load_grown
from .pose import resample

STYLE_KEYS = ("phong", "phong_net", "contour", "toon", "ao")


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = F.mse_loss(a, b).item()
    return 10 * math.log10(1.0 / max(mse, 1e-10))


def losses(out: dict, batch: dict, r0: int = 0, c0: int = 0) -> dict[str, torch.Tensor]:
    """Per-head losses on the image window [r0:r0+h, c0:c0+w] of the full-size targets."""
    h, w = out["mask"].shape[-2:]
    t = {k: v[:, r0:r0 + h, c0:c0 + w] for k, v in batch.items()
         if k in ("mask", "contour", "ao", "phong", "toon", "normal")}
    bce = F.binary_cross_entropy_with_logits
    m = t["mask"]
    cos = (out["normal"] * t["normal"]).sum(-1)
    l_normal = ((1 - cos) * m).sum() / m.sum().clamp(min=1)
    # the deferred Phong image is the one we ship, so train it on its own metric too
    ph = images(out, batch["light"])["phong"]
    return {
        "mask": bce(out["mask"], m),
        "normal": l_normal,
        "phong_def": 4 * F.mse_loss(ph, t["phong"]),
        "phong": bce(out["phong"], t["phong"]),
        "contour": 2 * bce(out["contour"], t["contour"]),
        "toon": bce(out["toon"], t["toon"]),
        "ao": bce(out["ao"], t["ao"]),
    }


@torch.no_grad()
def predict(model: RenderNet, val: dict, chunk: int = 8) -> dict[str, torch.Tensor]:
    """Every style image [N,h,w] (see :func:`model.images`) and ``normal`` [N,h,w,3] of a
    validation batch, in eval mode, ``chunk`` samples per forward."""
    was_training = model.training
    model.eval()
    parts = []
    for i in range(0, val["vox"].shape[0], chunk):
        sl = slice(i, i + chunk)
        out = model.render_pose(val["vox"][sl], val["az"][sl], val["el"][sl], val["scale"][sl],
                                val["light"][sl])
        parts.append({**images(out, val["light"][sl]), "normal": out["normal"]})
    model.train(was_training)  # the shipped model stays in eval mode
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def target(val: dict, style: str) -> torch.Tensor:
    """The target images of ``style`` in a batch (the Phong head is scored against Phong)."""
    return val["phong" if style == "phong_net" else style]


def scores(pred: dict, val: dict) -> dict[str, float]:
    """PSNR (dB) per style of :func:`predict`'s images over the batch (one pooled MSE)."""
    return {k: psnr(pred[k], target(val, k)) for k in STYLE_KEYS}


def evaluate(model: RenderNet, val: dict, chunk: int = 8) -> dict[str, float]:
    """Validation PSNR (dB) per style over the held-out batch (whole images, background too)."""
    return scores(predict(model, val, chunk), val)


def _save(obj, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)  # atomic: a kill mid-save never corrupts the checkpoint


def lr_at(step: int, base: float) -> float:
    """Exponential decay, halving every 12k steps, floored at base/20 (resume-safe: by step)."""
    return max(base * 0.5 ** (step / 12000), base / 20)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0, help="wall-clock budget of this run")
    ap.add_argument("--cache", type=Path, default=D.default_cache())
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--lr-cap", type=float, default=1.0,
                    help="upper bound on the scheduled learning rate (anneal a resumed run)")
    ap.add_argument("--full-after", type=int, default=20000)
    ap.add_argument("--init-shapes", type=int, default=150)
    ap.add_argument("--gen-every", type=int, default=6, help="add a new shape every N steps")
    ap.add_argument("--val-every", type=float, default=5.0, help="minutes")
    ap.add_argument("--ckpt-every", type=float, default=3.0, help="minutes")
    ap.add_argument("--val-shapes", type=int, default=24)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--init", type=Path, default=None, help="start from these model weights")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cache: Path = args.cache
    cache.mkdir(parents=True, exist_ok=True)

    model = RenderNet(Config())
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.999))
    step, seconds, next_seed, best = 0, 0.0, 0, -1e9
    ckpt = cache / "ckpt.pt"
    if ckpt.exists():
        st = torch.load(ckpt, weights_only=True)
        grown = load_grown(model, st["model"])
        if grown:
            names = sorted({k.split(".")[0] for k in grown})
            print(f"new modules, initialised fresh (Adam restarts): {names}")
        if "opt" in st and not grown:
            opt.load_state_dict(st["opt"])
        step, seconds = int(st["step"]), float(st["seconds"])
        next_seed, best = int(st["next_seed"]), float(st.get("best", -1e9))
        print(f"resumed at step {step} ({seconds / 60:.1f} min trained, {next_seed} shapes)")
    elif args.init is not None:
        st = torch.load(args.init, weights_only=True)
        load_grown(model, {k: v.float() for k, v in st["model"].items()})
        step, seconds = int(st.get("step", 0)), float(st.get("seconds", 0.0))
        next_seed = int(st.get("next_seed", 0))
        print(f"initialised from {args.init.name} at step {step}")

    print("building validation set ...", flush=True)
    val = D.validation_set(cache, args.val_shapes)
    pool = D.Pool(cache)
    n0 = max(next_seed, args.init_shapes)
    for s in tqdm(range(n0), desc="shapes", mininterval=5):
        # on a fresh machine only the newest shapes are regenerated; cached ones load fast
        if s >= n0 - args.init_shapes or (cache / "shapes" / f"{s}.npz").exists():
            pool.add(s)
    next_seed = n0
    rng = np.random.default_rng([step, 99])
    g = model.cfg.grid

    def checkpoint():
        _save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
               "seconds": seconds, "next_seed": next_seed, "best": best}, ckpt)

    t_start = time.time()
    t_ckpt = t_val = time.time()
    bar = tqdm(total=None, initial=step, desc="train", mininterval=10)
    while time.time() - t_start < args.minutes * 60:
        t0 = time.time()
        full = step >= args.full_after
        crop = g if full else g // 2
        bsz = max(1, args.batch // 4) if full else args.batch
        for gr in opt.param_groups:
            gr["lr"] = min(lr_at(step, args.lr), args.lr_cap)
        b = pool.batch(rng, bsz)
        r, c = (2 * int(rng.integers(0, (g - crop) // 2 + 1)) for _ in range(2))
        cam = resample(b["vox"], b["az"], b["el"], b["scale"], (g, g, g), window=(r, c, crop))
        out = model(cam, b["light"])
        parts = losses(out, b, 2 * r, 2 * c)
        loss = sum(parts.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        step += 1
        if step % args.gen_every == 0:
            pool.add(next_seed)
            next_seed += 1
        seconds += time.time() - t0
        bar.update(1)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}", shapes=len(pool), crop=crop)
        now = time.time()
        if now - t_val > args.val_every * 60:
            res = evaluate(model, val)
            score = sum(res[k] for k in ("phong", "contour", "toon", "ao"))
            rec = {"step": step, "minutes": round(seconds / 60, 2), "shapes": next_seed, **res}
            with open(cache / "log.jsonl", "a") as f:
                f.write(json.dumps(rec) + "\n")
            bar.write(" ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in rec.items()))
            if score > best:
                best = score
                _save({"model": {k: v.half() for k, v in model.state_dict().items()},
                       "step": step, "seconds": seconds, "next_seed": next_seed,
                       "val": json.dumps(res)}, cache / "best.pt")
            t_val = time.time()
        if now - t_ckpt > args.ckpt_every * 60:
            checkpoint()
            t_ckpt = time.time()
    checkpoint()
    bar.close()
    print(f"stopped at step {step}, {seconds / 60:.1f} min trained in total")


if __name__ == "__main__":
    main()
