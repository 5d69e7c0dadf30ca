"""GUI tests: real windows with OpenGL, under Xvfb (``xvfb-run -a -s "-screen 0 1280x800x24"``).

The default QSurfaceFormat (OpenGL 3.3 core) must be set before pytest-qt creates the
QApplication, hence ``pytest_configure``. Without a display every test here is skipped, except
under CI (``CI=true``), where a missing display is a failure, never a silent skip.
"""

from __future__ import annotations

import os

import pytest

HAS_DISPLAY = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def pytest_configure(config):
    if HAS_DISPLAY:
        from studio.qt.app import set_default_gl_format

        set_default_gl_format()


def pytest_collection_modifyitems(config, items):
    here = os.path.dirname(__file__)
    skip = pytest.mark.skip(reason="needs a display: run under xvfb-run")
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.gui)
            if not HAS_DISPLAY and os.environ.get("CI") != "true":
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def studio_data(tmp_path, monkeypatch):
    """Autosaves and the running marker go to a temporary folder, never the user's."""
    folder = tmp_path / "studio-data"
    monkeypatch.setenv("DIBR_STUDIO_DATA", str(folder))
    return folder


@pytest.fixture
def settings(tmp_path):
    from PyQt6.QtCore import QSettings

    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def window(qtbot, settings):
    """The main window with the demo scene at a small, fast fit resolution."""
    from studio.model.session import Session
    from studio.qt.window import MainWindow

    session = Session()
    win = MainWindow(session, settings=settings)
    qtbot.addWidget(win)
    win.load_demo()
    session.set_option(resolution=32)
    win.show()
    qtbot.waitExposed(win)
    # generous: the first frame waits for the fit process to start (and import torch)
    qtbot.waitUntil(lambda: win.images._last is not None, timeout=60000)
    yield win
    win.worker.pause()
    win.close()

