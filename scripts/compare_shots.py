"""Screenshot of compare runs → docs/screenshots/compare_models.png: the demo fitted with DIB-R,
its loss curve kept (View ▸ Keep curve for comparison), then Reset and the same fit with
DIB-R + edge antialiasing drawn over it. By default the fit is RGB-only (silhouette weight 0),
where the two models differ: with the silhouette term the demo's two curves nearly coincide.

Run under a display: ``xvfb-run -a -s "-screen 0 1280x800x24" python scripts/compare_shots.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from _shots import ROOT, Studio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    parser.add_argument("--steps", type=int, default=60, help="steps of each run")
    parser.add_argument("--iou-weight", type=float, default=0.0,
                        help="weight of the silhouette term (0: an RGB-only fit)")
    args = parser.parse_args(argv)
    st = Studio(Path(args.out), ".compare_shots.ini")
    window, wait = st.window, st.wait

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
    st.shot("compare_models", settle=0.6)
    for c in window.compare_runs.kept.items:
        print(f"kept {c.label}: total {c.total[0]:.4g} -> {c.total[-1]:.4g}")
    live = window.losses.values("total")
    print(f"live {box.currentText()}: total {live[0]:.4g} -> {live[-1]:.4g}")
    Path(window.settings.fileName()).unlink(missing_ok=True)
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
