"""The Style menu and the RenderNet camera fit in a real window."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PyQt6.QtWidgets import QPushButton
from scipy.ndimage import distance_transform_edt

import render_core as rc
from render_core.rendernet.render import WEIGHTS

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not WEIGHTS.exists(), reason="no shipped RenderNet weights")


def _shown(window, style: str, qtbot) -> np.ndarray:
    qtbot.waitUntil(lambda: window.style_menu.shown_style == style, timeout=60000)
    return window.images._last["render"].copy()


def test_style_menu_lists_analytic_and_rendernet_styles(window):
    titles = [a.text() for a in window.menuBar().actions()]
    assert "St&yle" in titles
    keys = set(window.style_menu.actions)
    assert set(rc.SHADINGS) <= keys
    assert {f"rendernet:{s}" for s in ("phong", "contour", "toon", "ao")} <= keys
    assert window.style_menu.actions[window.session.config.shading].isChecked()


def test_switching_to_rendernet_styles_and_back(window, qtbot):
    window.session.set_option(resolution=64)  # lines 2 px wide at 128² stay visible
    shading = window.session.config.shading
    qtbot.waitUntil(lambda: window.images._last["render"].shape[0] == 64, timeout=20000)
    analytic = _shown(window, shading, qtbot)
    gen = window.session.generation

    window.style_menu.actions["rendernet:contour"].trigger()
    contour = _shown(window, "contour", qtbot)[..., 0]
    assert window.images.glw.ci.getItem(0, 0).text == "RenderNet contour"
    # contour pixels concentrate on the silhouette of the mesh the fit shows (within 3.5 px at
    # 64²: RenderNet's weak perspective draws a sphere ~1.5 px smaller than perspective does)
    inside = window.style_menu._snap["alpha"] > 0.5
    dist = np.where(inside, distance_transform_edt(inside), distance_transform_edt(~inside))
    band, interior, outside = dist <= 3.5, inside & (dist > 6), ~inside & (dist > 6)
    assert contour[band].mean() > 10 * contour[interior].mean()
    assert contour[band].mean() > 10 * contour[outside].mean()
    assert contour[band].sum() > 0.8 * contour.sum()

    window.style_menu.actions["rendernet:ao"].trigger()
    ao = _shown(window, "ao", qtbot)[..., 0]
    assert ao[interior].mean() > 0.5 and ao[outside].mean() < 0.05  # lit object, dark ground
    assert np.abs(ao - contour).mean() > 0.05

    # the analytic fit was never touched: same settings, same fit
    assert window.session.config.shading == shading and window.session.generation == gen
    window.style_menu.actions[shading].trigger()
    back = _shown(window, shading, qtbot)
    assert window.images.glw.ci.getItem(0, 0).text == "Render"
    assert np.array_equal(back, analytic)


def test_changing_the_shading_elsewhere_leaves_rendernet(window, qtbot):
    window.style_menu.set_style("rendernet:toon")
    _shown(window, "toon", qtbot)
    window.controls.shading.setCurrentText("lambertian")  # the control panel's shading box
    _shown(window, "lambertian", qtbot)
    assert window.style_menu.actions["lambertian"].isChecked()


def _critter_window(qtbot, settings, az, el, dist, fov):
    from studio.model.session import Session
    from studio.qt.window import MainWindow

    mesh = rc.load_mesh(ROOT / "assets" / "meshes" / "critter.ply")
    cam = rc.Camera.orbit(az, el, dist, fov=fov)
    light = rc.DirectionalLight(torch.tensor(rc.fit.DEFAULT_LIGHT), intensity=0.8, ambient=0.3)
    out = rc.Renderer(96, shading="lambertian").render(mesh.with_(vertex_colors=None), cam,
                                                        light=light)
    img = rc.linear_to_srgb(out.rgb[0].clamp(0, 1)).numpy()
    session = Session()
    session.set_mesh(mesh, "critter")
    session.add_target_view(rc.TargetView(img, out.alpha[0].numpy(), az + 20, el - 20, dist,
                                          fov, "critter"))
    session.set_option(shading="lambertian", resolution=48)
    win = MainWindow(session, settings=settings)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    return win


FAST_FIT = {"grid": (1, 1), "stages": ((4, 12, 1.0), (2, 10, 1.0), (1, 10, 1.0)), "lr": 2.0}


@pytest.mark.slow
def test_rendernet_camera_fit_from_the_optimise_menu(qtbot, settings, monkeypatch):
    from studio.qt.style_menu import StyleMenu

    monkeypatch.setattr(StyleMenu, "fit_options", FAST_FIT)
    az, el = 40.0, 25.0
    win = _critter_window(qtbot, settings, az, el, 8.0, 15.0)
    try:
        action = next(a for m in win.menuBar().actions() if m.text() == "&Optimise"
                      for a in m.menu().actions() if "RenderNet" in a.text())
        with qtbot.waitSignal(win.style_menu.fit_finished, timeout=300000) as blocker:
            action.trigger()
            assert win.style_menu.progress is not None and win.style_menu.progress.isVisible()
        fit = blocker.args[0]
        t = win.session.targets[0]
        assert (t.azimuth, t.elevation) == pytest.approx((fit.azimuth, fit.elevation))
        assert abs((t.azimuth - az + 180) % 360 - 180) < 5 and abs(t.elevation - el) < 5
        assert win.style_menu.job is None and win.style_menu.progress is None
        assert np.allclose(win.session.fitter().light_direction(), fit.light, atol=1e-5)
        assert "RenderNet fit" in win.statusBar().currentMessage()
    finally:
        win.close()


def test_rendernet_camera_fit_can_be_cancelled(qtbot, settings, monkeypatch):
    from studio.qt.style_menu import StyleMenu

    monkeypatch.setattr(StyleMenu, "fit_options", FAST_FIT)
    errors = []
    monkeypatch.setattr("studio.qt.window.QMessageBox.critical",
                        lambda parent, title, text: errors.append(text))
    win = _critter_window(qtbot, settings, 40.0, 25.0, 8.0, 15.0)
    try:
        before = win.session.targets[0]
        assert win.style_menu.fit_camera(0)
        assert not win.style_menu.fit_camera(0)  # one at a time
        assert len(errors) == 1 and "already running" in errors[0]
        win.style_menu.progress.findChild(QPushButton).click()  # the dialog's Cancel
        assert win.style_menu.job is None
        qtbot.wait(300)
        assert win.session.targets[0] is before
    finally:
        win.close()
