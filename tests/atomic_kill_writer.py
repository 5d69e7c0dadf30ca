"""Child program of ``test_atomic_kill.py``: exports meshes over existing files and gets killed.

``python atomic_kill_writer.py DIR MODE ROUNDS SEED``. Two versions of a textured sphere, "A"
(radius 1, reddish texture) and "B" (radius 1.5, bluish texture), are exported as
``DIR/m.obj`` (+ MTL + PNG), ``DIR/m.ply`` and ``DIR/m.glb``. Each round, the files are reset to
version A, then a forked worker overwrites them and is killed with SIGKILL:

- ``MODE=random``: the worker exports B, A, B, ... to all three files in a loop and is killed
  after a random delay;
- ``MODE=commit``: the worker exports B to ``m.obj`` once and kills itself as soon as k
  ``os.replace`` calls have completed (k = round number: before the first rename, between
  any two, or after the last, before the clean-up), so every step between the atomic
  renames of the OBJ export is a kill point.

After each kill it prints ``round R`` and waits for a line on stdin (the test checks the files
in between). Imports happen once; the workers are forks, so a round costs milliseconds.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)  # before any torch work: the workers are forks of this process

import render_core as rc  # noqa: E402

SUFFIXES = (".obj", ".ply", ".glb")


def version(name: str) -> rc.Mesh:
    """Version "A" or "B": different radius and texture, so a torn export is detectable."""
    rng = np.random.default_rng(0 if name == "A" else 1)
    base = rc.uv_sphere(48, 96, radius=1.0 if name == "A" else 1.5)
    tex = rng.random((512, 512, 3), dtype=np.float32) * 0.3  # noise: a big, slow PNG
    tex[..., 0 if name == "A" else 2] += 0.6
    return base.with_(texture=tex)


def export(mesh: rc.Mesh, folder: Path, suffixes=SUFFIXES) -> None:
    for suffix in suffixes:
        rc.save_mesh(mesh, folder / f"m{suffix}")


def _kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _worker(mode: str, k: int, folder: Path, a: rc.Mesh, b: rc.Mesh) -> None:
    if mode == "commit":
        real_replace, real_unlink = os.replace, os.unlink
        count = [0]  # renames done

        def replace(src, dst):
            if count[0] == k:
                _kill_self()
            real_replace(src, dst)
            count[0] += 1

        def unlink(path, *args, **kwargs):  # the clean-up after the last rename
            if count[0] == k:
                _kill_self()
            real_unlink(path, *args, **kwargs)

        os.replace, os.unlink = replace, unlink
        export(b, folder, (".obj",))
        os._exit(3)  # k beyond the kill points: the test asked for too many rounds
    while True:
        for mesh in (b, a):
            export(mesh, folder)


def main() -> None:
    folder, mode, rounds, seed = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
    rnd = random.Random(seed)
    a, b = version("A"), version("B")
    start = time.monotonic()
    export(a, folder)
    cycle = 2.0 * (time.monotonic() - start)  # one B-then-A loop of the random worker
    for r in range(rounds):
        export(a, folder)
        pid = os.fork()
        if pid == 0:
            try:
                _worker(mode, r, folder, a, b)
            finally:
                os._exit(4)
        if mode == "random":
            time.sleep(rnd.uniform(0.0, cycle))
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        print(f"round {r} {'killed' if killed else 'exited'}", flush=True)
        if sys.stdin.readline().strip() != "next":
            return


if __name__ == "__main__":
    main()
