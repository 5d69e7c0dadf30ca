"""What the screenshot scripts share: a studio window in its own QApplication, a wait that
keeps the event loop running, and a shot that saves a widget's picture. Run the scripts
under a display (``xvfb-run -a -s "-screen 0 1280x800x24" python scripts/NAME.py``)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing


class Studio:
    """A 1280×800 studio window with a fresh session; its settings live in ``out/<ini>``."""

    def __init__(self, out: Path, ini: str, demo: bool = True) -> None:
        from studio.qt.app import set_default_gl_format

        set_default_gl_format()
        from PyQt6.QtCore import QSettings
        from PyQt6.QtWidgets import QApplication

        from studio.model.session import Session
        from studio.qt.window import MainWindow

        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.app = QApplication(sys.argv[:1])
        settings = QSettings(str(self.out / ini), QSettings.Format.IniFormat)
        self.window = MainWindow(Session(), settings=settings)
        if demo:
            self.window.load_demo()
        self.window.resize(1280, 800)
        self.window.show()

    def wait(self, cond, timeout: float = 600.0) -> None:
        """Run the event loop until ``cond()`` holds or ``timeout`` seconds have passed."""
        end = time.monotonic() + timeout
        while not cond() and time.monotonic() < end:
            self.app.processEvents()
            time.sleep(0.01)

    def shot(self, name: str, widget=None, settle: float = 0.5) -> Path:
        """Save ``widget`` (the window by default) as ``out/<name>.png`` after the last frame
        has painted; returns the path."""
        self.wait(lambda: False, settle)
        path = self.out / f"{name}.png"
        (widget or self.window).grab().save(str(path))
        print(f"wrote {path}")
        return path
