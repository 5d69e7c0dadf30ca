"""Export the training checkpoint as small shippable weights.

    python -m render_core.rendernet.export [--cache DIR] [--out assets/rendernet/weights.pt]

Writes float16 model weights plus the numbers needed to continue training (step, seconds,
next shape seed, last validation PSNR). Adam's moments are not shipped (they would triple the
size); ``train --init <weights>`` resumes from these with a fresh optimiser.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from . import data as D
from .render import WEIGHTS


def export(cache: Path, out: Path) -> dict:
    st = torch.load(cache / "ckpt.pt", weights_only=True)
    val = {}
    log = cache / "log.jsonl"
    if log.exists():
        lines = [json.loads(s) for s in log.read_text().splitlines() if s.strip()]
        val = lines[-1] if lines else {}
    meta = {"step": int(st["step"]), "seconds": float(st["seconds"]),
            "next_seed": int(st["next_seed"])}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    torch.save({"model": {k: v.half() for k, v in st["model"].items()}, **meta,
                "val": json.dumps(val)}, tmp)
    tmp.replace(out)
    (out.parent / "train_state.json").write_text(json.dumps({**meta, "last_val": val},
                                                            indent=1) + "\n")
    return {**meta, "val": val}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=D.default_cache())
    ap.add_argument("--out", type=Path, default=WEIGHTS)
    args = ap.parse_args()
    print(json.dumps(export(args.cache, args.out)))


if __name__ == "__main__":
    main()
