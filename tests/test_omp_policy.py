"""OpenMP's wait policy: render_core and studio ask for passive waits before torch loads
(spinning intra-op threads stalled fits on shared cores; see benchmarks/threads.py), and
keep a policy the environment already names."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The policy after the import, and whether it was set before torch loaded (sys.modules keeps
# the order of first import).
PROBE = ("import os, sys; import {mod}; m = list(sys.modules); "
         "print(os.environ.get('OMP_WAIT_POLICY'), "
         "'torch' not in m or m.index('{first}') < m.index('torch'))")


def _probe(mod: str, policy: str | None, first: str = "render_core._omp") -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("OMP_WAIT_POLICY", None)
    if policy is not None:
        env["OMP_WAIT_POLICY"] = policy
    out = subprocess.run([sys.executable, "-c", PROBE.format(mod=mod, first=first)], env=env,
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_render_core_asks_for_passive_waits_before_torch_loads():
    assert _probe("render_core", None) == "PASSIVE True"


def test_studio_asks_for_passive_waits_and_a_named_policy_is_kept():
    assert _probe("studio", None, first="studio") == "PASSIVE True"
    assert _probe("studio.cli", None, first="studio") == "PASSIVE True"
    assert _probe("render_core", "ACTIVE") == "ACTIVE True"
