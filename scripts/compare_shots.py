"""Screenshot of compare runs → docs/screenshots/compare_models.png: the demo fitted with DIB-R,
its loss curve kept (View ▸ Keep curve for comparison), then Reset and the same fit with
DIB-R + edge antialiasing drawn over it. By default the fit is RGB-only (silhouette weight 0),
where the two models differ: with the silhouette term the demo's two curves nearly coincide.

Run under a display: ``xvfb-run -a -s "-screen 0 1280x800x24" python scripts/compare_shots.py``.
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
    parser.add_argument("--steps", type=int, default=60, help="steps of each run")
    parser.add_argument("--iou-weight", type=float, default=0.0,
                        help="weight of the silhouette term (0: an RGB-only fit)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from studio.qt.app import set_default_gl_format

    set_default_gl_format()
    from PyQt6.QtCore import QSettings
    from PyQt6.QtWidgets import QApplication

    from studio.model.session import Session
    from studio.qt.window import MainWindow

    app = QApplication(sys.argv[:1])
    settings = QSettings(str(out / ".compare_shots.ini"), QSettings.Format.IniFormat)
    window = MainWindow(Session(), settings=settings)
    window.load_demo()
    window.resize(1280, 800)
    window.show()

    def wait(cond, timeout: float = 600.0) -> None:
        end = time.monotonic() + timeout
        while not cond() and time.monotonic() < end:
            app.processEvents()
            time.sleep(0.01)

    wait(lambda: window.images._last is not None)
    window.controls.display.setCurrentText("colors")
    window.controls.weights["iou"].setValue(args.iou_weight)
    box = window.controls.rendering_model
    for i, model in enumerate(("dibr", "dibr+aa")):
        if i:
            window.reset()
        box.setCurrentIndex(box.findData(model))
        window.worker.step(args.steps)
        wait(lambda: window.step_count >= args.steps)
        wait(lambda: False, 0.5)
        if not i:
            window.compare_runs.keep()
    window.losses.flush()
    wait(lambda: False, 0.6)  # let the last frame paint
    path = out / "compare_models.png"
    window.grab().save(str(path))
    print(f"wrote {path}")
    for c in window.compare_runs.kept.items:
        print(f"kept {c.label}: total {c.total[0]:.4g} -> {c.total[-1]:.4g}")
    live = window.losses.values("total")
    print(f"live {box.currentText()}: total {live[0]:.4g} -> {live[-1]:.4g}")
    Path(settings.fileName()).unlink(missing_ok=True)
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
