"""Starting the GUI: the OpenGL surface format, the QApplication, the window with a scene."""

from __future__ import annotations

import os
import sys

from PyQt6.QtGui import QSurfaceFormat


def set_default_gl_format() -> None:
    """OpenGL 3.3 core with a depth buffer; must run before the QApplication exists."""
    fmt = QSurfaceFormat()
    fmt.setVersion(3, 3)
    fmt.setProfile(QSurfaceFormat.OpenGLContextProfile.CoreProfile)
    fmt.setDepthBufferSize(24)
    QSurfaceFormat.setDefaultFormat(fmt)


def has_display() -> bool:
    """True when a window can be shown (X11 or Wayland, or any non-Linux desktop)."""
    if not sys.platform.startswith("linux"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def run_gui(paths: list[str]) -> int:
    """Open the window with ``paths`` loaded, or the demo scene when there are none."""
    set_default_gl_format()
    from PyQt6.QtWidgets import QApplication

    from ..model.session import Session
    from .window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("dibr-studio")
    session = Session()
    window = MainWindow(session)
    if paths:
        session.new_primitive("sphere", 3)
        window.open_paths(paths)
    else:
        window.load_demo()
    window.show()
    return app.exec()
