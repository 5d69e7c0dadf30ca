"""Screenshots of style transfer and 3D DeepDream in the studio → docs/screenshots/
(style_transfer_dialog.png, style_transfer.png, deepdream.png), driven through the same
dialogs a user opens from Optimise ▸ Style transfer… / DeepDream….

Run under a display: ``xvfb-run -a -s "-screen 0 1280x800x24" python scripts/stylize_shots.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from _shots import ROOT, Studio


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=80, help="steps of each run before its shot")
    ap.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    args = ap.parse_args()
    st = Studio(Path(args.out), ".stylize_shots.ini", demo=False)
    window = st.window
    from studio.qt import stylize_dialogs

    def wait(cond, timeout: float = 900.0) -> None:
        st.wait(cond, timeout)

    def shot(widget, name: str) -> None:
        st.shot(name, widget)

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
    Path(window.settings.fileName()).unlink(missing_ok=True)
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
