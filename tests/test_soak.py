"""Soak: 5,000 steps of the headless Fitter keep resident memory flat.

The fit runs in a fresh subprocess so that memory held by other tests (and pytest itself)
cannot mask or fake a leak. Resident set size comes from ``/proc/self/statm`` after a garbage
collection, at step 500 (everything warmed up: allocator pools, the native extension, Adam's
moments) and at step 5,000; they must differ by under 5%.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

_SOAK = r"""
import gc, json, math, os, sys
import torch
import render_core as rc
from render_core.fit import GROUPS, FitConfig, Fitter, ParamGroup, TargetView

torch.set_num_threads(1)
page = os.sysconf("SC_PAGE_SIZE")

def rss():
    gc.collect()
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * page

ico = rc.icosphere(subdivisions=1)
target = rc.Mesh(ico.vertices * torch.tensor([1.3, 0.8, 1.0]), ico.faces,
                 vertex_colors=(ico.vertices * 0.5 + 0.5).clamp(0, 1))
out = rc.Renderer(16, sigma=1e-5).render(target, rc.Camera.orbit([20.0], [15.0], 3.0, fov=50.0))
view = TargetView(rc.linear_to_srgb(out.rgb.clamp(0, 1))[0].numpy(),
                  out.frags.mask.float()[0].numpy(), 20.0, 15.0, 3.0, 50.0)
cfg = FitConfig(resolution=16)
cfg.groups = {g: ParamGroup(g in ("vertices", "colors"), 0.01) for g in GROUPS}
fitter = Fitter(rc.icosphere(subdivisions=1), [view], cfg)
report = {"rss": {}, "total": {}, "nonfinite": 0}
for i in range(1, int(sys.argv[1]) + 1):
    m = fitter.step()
    report["nonfinite"] += not math.isfinite(m.loss)
    if i in (1, 500, int(sys.argv[1])):
        report["rss"][i] = rss()
        report["total"][i] = m.loss
report["steps"] = fitter.steps
print(json.dumps(report))
"""


@pytest.mark.slow
def test_resident_memory_is_flat_over_5000_steps():
    steps = 5000
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", _SOAK, str(steps)], cwd=root, text=True,
                          capture_output=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    rss = {int(k): v for k, v in report["rss"].items()}
    total = {int(k): v for k, v in report["total"].items()}
    growth = (rss[steps] - rss[500]) / rss[500]
    print(f"RSS step 500: {rss[500] / 2**20:.1f} MiB, step {steps}: {rss[steps] / 2**20:.1f} MiB "
          f"({growth * 100:+.2f}%); loss {total[1]:.4f} -> {total[steps]:.4f}")
    assert abs(growth) < 0.05
    # The soak really optimised: every step finite and accepted, and the loss went down.
    assert report["nonfinite"] == 0 and report["steps"] == steps
    assert total[steps] < 0.5 * total[1]
