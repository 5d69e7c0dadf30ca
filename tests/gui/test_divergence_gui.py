"""A diverging fit in the studio: the notice in the status bar and the halved learning rate in
the controls (the fit runs in the child process; the session and the window follow it)."""

from __future__ import annotations

import math


def test_divergence_notice_and_halved_rate(window, qtbot):
    s = window.session
    colors_lr = s.config.groups["colors"].lr
    # Vertices thrown to 1e30 in one step: the next render's loss is not finite.
    s.set_group("vertices", lr=1e30)
    window.worker.step(4)
    qtbot.waitUntil(lambda: window.last_notice is not None, timeout=30000)
    qtbot.waitUntil(lambda: not window.worker._pending_steps, timeout=30000)
    notice = window.last_notice
    assert "diverged" in notice and "vertex positions" in notice
    assert window.statusBar().currentMessage() == notice
    lr = s.config.groups["vertices"].lr
    assert lr <= 5e29 and s.config.groups["colors"].lr == colors_lr
    spin = window.controls.group_lrs["vertices"]
    assert "Halved" in spin.toolTip() and spin.styleSheet()
    assert spin.value() == min(lr, spin.maximum())
    # The fit went on without NaNs: the mirrored parameters are finite.
    mesh = s.current_mesh()
    assert math.isfinite(float(mesh.vertices.abs().max()))
    assert window.last_error is None
