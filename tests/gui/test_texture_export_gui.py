"""Issue 19.3: a GUI export right after switching from Colours to Texture holds the texture the
fit process made from the fitted colours, exactly as the same sequence headless (it was one
flat grey; the Fitter-level cause is tested in tests/test_texture_workflow.py)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from studio.model.session import Session


def _texture_of(obj_path):
    png = obj_path.with_suffix(".png")
    return np.asarray(Image.open(png).convert("RGB"), np.float32)


def test_export_right_after_ticking_texture_holds_the_fitted_texture(window, qtbot, tmp_path):
    window.worker.step(3)
    qtbot.waitUntil(lambda: window.session.steps == 3, timeout=60000)
    window.controls.group_checks["colors"].setChecked(False)
    window.controls.group_checks["texture"].setChecked(True)  # no step after it
    gui = tmp_path / "gui.obj"
    assert window.export_mesh(gui)
    qtbot.waitUntil(lambda: not window.export_task.busy, timeout=120000)

    # The same sequence headless (the fit is deterministic): 3 steps, Texture on, export.
    headless = Session()
    headless.load_demo()
    headless.set_option(resolution=32)
    for _ in range(3):
        headless.step()
    headless.set_group("colors", enabled=False)
    headless.set_group("texture", enabled=True)
    ref = tmp_path / "headless.obj"
    headless.export_mesh(ref)

    tex, want = _texture_of(gui), _texture_of(ref)
    assert tex.shape == want.shape
    distinct = len(np.unique(tex.reshape(-1, 3), axis=0))
    assert distinct > 100, f"the exported texture has {distinct} colours: flat, not fitted"
    assert np.abs(tex - want).mean() < 1.0  # 8-bit levels: the fit's texture, not another
