"""Screenshots of the shape workflow → docs/screenshots/: shape_controls.png (the demo targets'
visual hull refined in the Geometry stage, with the Shape section, remeshing on, and the live
vertex/face count in the status bar), shape_appearance.png (after "Appearance": the frozen
geometry with its colours baked into a texture, drawn textured) and remesh_fit.png (the preset
"hull + silhouette + remeshing" in progress, in wireframe: the remeshed triangles).

Run under a display: ``xvfb-run -a -s "-screen 0 1280x800x24" python scripts/shape_shots.py``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _shots import ROOT, Studio


def remesh_fit(st: Studio, steps: int) -> None:
    """remesh_fit.png: Shape ▸ Preset "hull + silhouette + remeshing" (the studio's
    ``fit --init hull --remesh``), ``steps`` steps into the fit, drawn in wireframe."""
    from studio.model import stages

    window, s = st.window, st.window.session
    c = window.controls
    st.wait(lambda: window.images._last is not None)
    c.shape.preset.setCurrentIndex(c.shape.preset.findData(stages.BEST_SHAPE_FIT))
    c.shape.preset_apply.click()
    hull = s.initial_mesh.num_vertices
    window.images.mode.setCurrentText("Overlay")  # a silhouette fit: where the masks differ
    window.controls.display.setCurrentText("wireframe")
    window.run()  # shot while it runs: "in progress"
    st.wait(lambda: s.steps >= steps)  # the preset restarted the fit at step 0
    st.wait(lambda: window.step_count >= steps, 30)
    vp = window.viewport
    split = window.centralWidget()
    split.setSizes([640, max(split.width() - 640, 300)])  # room for the triangles
    st.wait(lambda: False, 0.3)
    vp.frame_mesh()
    vp.azimuth, vp.elevation = 20.0, 15.0
    vp.distance *= 0.7  # close enough to tell the triangles apart
    st.shot("remesh_fit")
    window.pause()
    print(f"remesh_fit: hull {hull} vertices -> {s.current_mesh().num_vertices} by step "
          f"{s.steps}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=40, help="steps before the first shot")
    ap.add_argument("--remesh-steps", type=int, default=30,
                    help="steps of the remeshing fit in remesh_fit.png")
    ap.add_argument("--only", choices=("remesh",), default=None,
                    help="make only remesh_fit.png")
    ap.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    args = ap.parse_args()
    st = Studio(Path(args.out), ".shape_shots.ini")
    if args.only == "remesh":
        remesh_fit(st, args.remesh_steps)
        st.window.close()
        return 0
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
    c.stage.buttons["geometry"].click()
    remesh_fit(st, args.remesh_steps)
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
