"""Killing the process mid-export leaves the old or the new file, never a broken one.

A child program (``atomic_kill_writer.py``) exports two distinguishable versions of a textured
mesh, A and B, over existing files and is killed with SIGKILL — at random moments during a
loop of OBJ (+MTL+PNG), PLY and GLB exports, and at every step between the renames of one
OBJ export. After each kill, every destination must load and be wholly A or wholly B: an OBJ
with one version's geometry and the other's texture is a torn export and fails the test.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import render_core as rc

WRITER = Path(__file__).with_name("atomic_kill_writer.py")
REPO = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and fork are POSIX"),
]


def version_of(path: Path) -> str:
    """"A" or "B" for a file the writer exported, checking geometry and texture agree."""
    mesh = rc.load_mesh(path)  # raises if the file is broken
    radius = float(mesh.vertices.norm(dim=1).max())
    geometry = {1.0: "A", 1.5: "B"}.get(round(radius, 3))
    assert geometry is not None, f"{path.name}: radius {radius} is neither version's"
    if path.suffix != ".ply":
        assert mesh.texture is not None, f"{path.name}: texture missing"
        red, _, blue = mesh.texture.mean(dim=(0, 1)).tolist()
        texture = "A" if red > blue else "B"
        assert texture == geometry, f"{path.name}: torn, geometry {geometry}, texture {texture}"
    return geometry


def run_rounds(folder: Path, mode: str, rounds: int, seed: int = 0):
    """Yield (round, killed) after each kill, while the writer waits."""
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), str(folder), mode, str(rounds), str(seed)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "DIBR_NO_EXT": "1"},
    )
    try:
        for r in range(rounds):
            line = proc.stdout.readline().split()
            assert line[:2] == ["round", str(r)], (line, proc.stderr.read() if not line else "")
            yield r, line[2] == "killed"
            proc.stdin.write("next\n")
            proc.stdin.flush()
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_every_kill_point_of_an_obj_export(tmp_path):
    # Over an existing OBJ a textured export makes six renames: stand-in PNG, MTL, OBJ (the
    # commit point: the new version from here on), then the PNG, MTL and OBJ under their usual
    # names; kill point k is "after k renames". Before the first commit the old version must be
    # there, after it the new one, and the texture always matches the geometry.
    seen = []
    for k, killed in run_rounds(tmp_path, "commit", rounds=7):
        assert killed, f"kill point {k} was never reached"
        seen.append(version_of(tmp_path / "m.obj"))
    assert seen == ["A"] * 3 + ["B"] * 4
    # The last round was killed before the stand-ins were removed; exporting the same mesh
    # again (same texture, same stand-in names) removes them.
    assert len(list(tmp_path.glob("m-*"))) == 2
    rc.save_mesh(rc.load_mesh(tmp_path / "m.obj"), tmp_path / "m.obj")
    visible = {p.name for p in tmp_path.iterdir() if not p.name.startswith(".")}
    assert visible == {"m.obj", "m.mtl", "m.png", "m.ply", "m.glb"}


def test_random_kills_during_exports(tmp_path):
    versions = []
    for _, killed in run_rounds(tmp_path, "random", rounds=6, seed=11):
        assert killed
        versions.append([version_of(tmp_path / f"m{s}") for s in (".obj", ".ply", ".glb")])
    assert all(v in ("A", "B") for row in versions for v in row)


def test_torn_obj_is_detected(tmp_path):
    # The check above can fail: a plain write of B's texture next to A's OBJ is caught.
    sys.path.insert(0, str(WRITER.parent))
    try:
        from atomic_kill_writer import version
    finally:
        sys.path.remove(str(WRITER.parent))
    rc.save_mesh(version("A"), tmp_path / "m.obj")
    rc.save_mesh(version("B"), tmp_path / "b.obj")
    (tmp_path / "m.png").write_bytes((tmp_path / "b.png").read_bytes())
    with pytest.raises(AssertionError, match="torn"):
        version_of(tmp_path / "m.obj")
    assert np.isfinite(rc.load_mesh(tmp_path / "b.obj").vertices.numpy()).all()
