"""Screenshots of the mask editor on a hard photo (a floor line crossing the frame) →
docs/screenshots/mask_editor_before.png (the automatic mask of an older revision of
studio/model/photo.py, read with ``git show``) and mask_editor_after.png (the current one).

Run under a display: ``xvfb-run -a -s "-screen 0 1280x800x24" python scripts/mask_editor_shots.py``.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def _old_photo_module(rev: str):
    src = subprocess.run(["git", "show", f"{rev}:studio/model/photo.py"], cwd=ROOT,
                         check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "photo_old.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("photo_old", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["photo_old"] = mod
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--old", default="7db1d51", help="revision of the 'before' algorithm")
    ap.add_argument("--view", type=int, default=4, help="which photo of the test set")
    args = ap.parse_args()
    import test_photo_masks
    from PyQt6.QtWidgets import QApplication

    import render_core as rc
    from studio.model import photo
    from studio.qt.mask_editor import MaskEditorDialog

    app = QApplication.instance() or QApplication(sys.argv)
    img, _ = test_photo_masks._photos()[args.view]
    out = ROOT / "docs" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    for tag, mod in (("before", _old_photo_module(args.old)), ("after", photo)):
        mask = mod.auto_mask(img)
        saved = photo.foreground_score
        photo.foreground_score = mod.foreground_score
        try:
            target = rc.TargetView(img, mask, 0.0, 0.0, 4.0, 40.0, f"cow {args.view} ({tag})")
            dlg = MaskEditorDialog(target)
            dlg.resize(900, 760)
            dlg.show()
            for _ in range(20):
                app.processEvents()
            dlg.grab().save(str(out / f"mask_editor_{tag}.png"))
            dlg.close()
        finally:
            photo.foreground_score = saved
        print(tag, out / f"mask_editor_{tag}.png")


if __name__ == "__main__":
    main()
