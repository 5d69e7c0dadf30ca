"""Screenshots of style transfer and 3D DeepDream in the studio → docs/screenshots/
(style_transfer_dialog.png, style_transfer.png, deepdream.png), driven through the same
dialogs a user opens from Optimise ▸ Style transfer… / DeepDream….

Run under a display: ``xvfb-run -a -s "-screen 0 1280x800x24" python scripts/stylize_shots.py``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=80, help="steps of each run before its shot")
    ap.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    args = ap.parse_args()
    out = Path(args.out)
    from PyQt6.QtCore import QSettings
    from PyQt6.QtWidgets import QApplication

    from studio.qt.app import set_default_gl_format

    set_default_gl_format()
    from studio.model.session import Session
    from studio.qt import stylize_dialogs
    from studio.qt.window import MainWindow

    app = QApplication(sys.argv[:1])
    settings = QSettings(str(out / ".stylize_shots.ini"), QSettings.Format.IniFormat)
    window = MainWindow(Session(), settings=settings)
    window.resize(1280, 800)
    window.show()

    def wait(cond, timeout: float = 900.0) -> None:
        end = time.monotonic() + timeout
        while not cond() and time.monotonic() < end:
            app.processEvents()
            time.sleep(0.01)

    def shot(widget, name: str) -> None:
        wait(lambda: False, 0.5)  # let the last frame paint
        path = out / f"{name}.png"
        widget.grab().save(str(path))
        print(f"wrote {path}")

    window.open_mesh(ROOT / "assets" / "meshes" / "vase.ply")
    dlg = stylize_dialogs.open_dialog(window, "style")
    dlg.source.setCurrentIndex(2)  # Generated: painting
    dlg.resolution.setValue(96)
    wait(lambda: False, 0.5)
    shot(dlg, "style_transfer_dialog")
    dlg.accept()
    wait(lambda: window.images._last is not None and window.images._last["target"].shape[0] == 96)
    window.controls.display.setCurrentText("colors")
    window.run()
    wait(lambda: window.step_count >= args.steps)
    window.pause()
    window.losses.flush()
    shot(window, "style_transfer")

    window.open_mesh(ROOT / "assets" / "meshes" / "critter.ply")
    dlg = stylize_dialogs.open_dialog(window, "dream")
    dlg.layer.setCurrentText("conv2_1")
    dlg.resolution.setValue(96)
    dlg.accept()
    wait(lambda: window.session.config.objective is not None
         and window.session.config.objective["kind"] == "dream")
    window.run()
    wait(lambda: window.step_count >= args.steps)
    window.pause()
    window.losses.flush()
    shot(window, "deepdream")
    Path(settings.fileName()).unlink(missing_ok=True)
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
