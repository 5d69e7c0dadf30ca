"""Screenshots of the shape workflow → docs/screenshots/: shape_controls.png (the demo targets'
visual hull refined in the Geometry stage, with the Shape section, remeshing on, and the live
vertex/face count in the status bar) and shape_appearance.png (after "Appearance": the frozen
geometry with its colours baked into a texture, drawn textured).

Run under a display: ``xvfb-run -a -s "-screen 0 1280x800x24" python scripts/shape_shots.py``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _shots import ROOT, Studio


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=40, help="steps before the first shot")
    ap.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    args = ap.parse_args()
    st = Studio(Path(args.out), ".shape_shots.ini")
    window, s = st.window, st.window.session
    c = window.controls
    st.wait(lambda: window.images._last is not None)
    c.shape.start_buttons["hull"].click()
    c.shape.preset.setCurrentIndex(c.shape.preset.findData("silhouette"))
    c.shape.preset_apply.click()
    c.group_checks["colors"].setChecked(True)  # the hull is grey: fit its colours too
    c.weights["l1"].setValue(1.0)
    c.shape.remesh.setChecked(True)
    c.shape.remesh_interval.setValue(5)
    window.worker.step(args.steps)
    st.wait(lambda: s.steps >= args.steps)
    st.wait(lambda: window.images._last is not None and window.step_count >= args.steps, 30)
    window.controls.display.setCurrentText("wireframe")
    window.viewport.frame_mesh()
    st.shot("shape_controls")
    c.stage.buttons["appearance"].click()
    window.worker.step(10)
    st.wait(lambda: s.steps >= 10)
    window.controls.display.setCurrentText("texture")
    window.viewport.frame_mesh()
    st.shot("shape_appearance")
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
