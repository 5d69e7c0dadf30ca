"""Screenshots of the studio window: initial, mid-run, after fitting → docs/screenshots/.

Run under a display, e.g. ``xvfb-run -a -s "-screen 0 1280x800x24" python scripts/screenshots.py``.
The window is 1280x800, the size the layout is designed for.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    parser.add_argument("--mid", type=int, default=15, help="step of the mid-run shot")
    parser.add_argument("--final", type=int, default=150, help="step of the final shot")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from studio.app import set_default_gl_format

    set_default_gl_format()
    from PyQt6.QtCore import QSettings
    from PyQt6.QtWidgets import QApplication

    from studio.main_window import MainWindow
    from studio.session import Session

    app = QApplication(sys.argv[:1])
    settings = QSettings(str(out / ".screenshots.ini"), QSettings.Format.IniFormat)
    window = MainWindow(Session(), settings=settings)
    window.load_demo()
    window.resize(1280, 800)
    window.show()

    def wait(cond, timeout: float = 600.0) -> None:
        end = time.monotonic() + timeout
        while not cond() and time.monotonic() < end:
            app.processEvents()
            time.sleep(0.01)

    def shot(name: str) -> None:
        wait(lambda: False, 0.4)  # let the last frame paint
        path = out / f"{name}.png"
        window.grab().save(str(path))
        print(f"wrote {path}")

    wait(lambda: window.images._last is not None)
    shot("initial")
    window.controls.display.setCurrentText("colors")
    window.run()
    wait(lambda: window.step_count >= args.mid)
    window.pause()
    shot("mid_run")
    window.run()
    wait(lambda: window.step_count >= args.final)
    window.pause()
    window.images.mode.setCurrentIndex(1)
    shot("fitted")
    Path(settings.fileName()).unlink(missing_ok=True)
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
