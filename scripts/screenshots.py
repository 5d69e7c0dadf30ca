"""Screenshots of the studio window → docs/screenshots/: the demo initial, mid-run and after
fitting, and a photo being aligned (the photo as the viewport's backdrop, the Targets dock).

Run under a display, e.g. ``xvfb-run -a -s "-screen 0 1280x800x24" python scripts/screenshots.py``.
The window is 1280x800, the size the layout is designed for.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from _shots import ROOT, Studio


def photo_like(size=(240, 320), azimuth=40.0, elevation=20.0, distance=4.2, fov=45.0):
    """A photo-like image of the demo object: lit, over a textured backdrop, no alpha."""
    import numpy as np

    import render_core as rc
    from studio.model.demo import demo_object

    h, w = size
    cam = rc.Camera.orbit(azimuth, elevation, distance, fov=fov, aspect=w / h)
    light = rc.DirectionalLight([0.3, 1.0, 0.6], intensity=0.8, ambient=0.3)
    out = rc.Renderer((h, w), shading="lambertian", sigma=1e-5).render(demo_object(4), cam,
                                                                        light=light)
    cov = out.frags.mask[0].float().numpy()[..., None]
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    g = 0.45 + 0.2 * xx + 0.1 * np.sin(5 * yy)
    wall = np.stack([g + 0.06, g, g - 0.05], -1)
    wall -= ((np.floor(xx * 12) + np.floor(yy * 12)) % 2)[..., None] * 0.1
    wall += np.random.default_rng(0).normal(0, 0.025, wall.shape)
    fg = rc.linear_to_srgb(out.rgb[0].clamp(0, 1)).numpy()
    return np.clip(fg * cov + wall * (1 - cov), 0, 1).astype(np.float32)


def rendernet_shot(window, wait, shot) -> None:
    """The critter demo mesh with targets rendered from it, shown in RenderNet's toon style."""
    import torch

    import render_core as rc

    mesh = rc.load_mesh(ROOT / "assets" / "meshes" / "critter.ply")
    views = [(30.0, 20.0), (120.0, 10.0), (250.0, 30.0)]
    cams = rc.Camera.orbit([a for a, _ in views], [e for _, e in views], 3.2, fov=45.0)
    light = rc.DirectionalLight(torch.tensor(rc.fit.DEFAULT_LIGHT), intensity=0.8, ambient=0.3)
    out = rc.Renderer(128, shading="lambertian").render(mesh, cams, light=light)
    rgb = rc.linear_to_srgb(out.rgb.clamp(0, 1)).numpy()
    targets = [rc.TargetView(rgb[i], out.alpha[i].numpy(), a, e, 3.2, 45.0, f"critter {a:.0f}°")
               for i, (a, e) in enumerate(views)]
    window.session.set_mesh(mesh, "critter.ply")
    window.session.set_targets(targets)
    window.session.set_option(shading="lambertian", resolution=128)
    window.controls.display.setCurrentText("shaded")
    window.style_menu.set_style("rendernet:toon")
    wait(lambda: False, 3.0)  # the fit process rebuilds the problem and sends a frame
    wait(lambda: window.style_menu.shown_style == "toon", 120.0)
    window.viewport.frame_mesh()
    shot("rendernet_style")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    parser.add_argument("--mid", type=int, default=15, help="step of the mid-run shot")
    parser.add_argument("--final", type=int, default=150, help="step of the final shot")
    parser.add_argument("--rendernet-only", action="store_true",
                        help="only the shot of a RenderNet style")
    args = parser.parse_args(argv)
    st = Studio(Path(args.out), ".screenshots.ini")
    window, wait = st.window, st.wait

    def shot(name: str) -> None:
        st.shot(name, settle=0.4)

    wait(lambda: window.images._last is not None)
    if args.rendernet_only:
        rendernet_shot(window, wait, shot)
        Path(window.settings.fileName()).unlink(missing_ok=True)
        window.close()
        return 0
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

    # Aligning a photo: the demo object as the mesh, a photo of it (no alpha, so the mask is
    # automatic) with a guessed camera, the viewport orbiting towards the photo's view.
    import tempfile

    from PyQt6.QtWidgets import QDockWidget

    from studio.model import files
    from studio.model.demo import demo_object

    window.images.mode.setCurrentIndex(0)
    with tempfile.TemporaryDirectory() as tmp:
        files.write_png(Path(tmp) / "photo.png", photo_like())
        window.session.set_mesh(demo_object(4), "demo object")
        window.session.set_targets([])
        window.session.add_targets([Path(tmp) / "photo.png"], [(0.0, 0.0, 4.2, 45.0)])
    window.findChild(QDockWidget, "targets").raise_()
    window.targets_panel.list.setCurrentRow(0)
    window.controls.display.setCurrentText("colors")
    wait(lambda: False, 4.0)  # the fit process rebuilds the problem and sends a frame
    vp = window.viewport
    vp.azimuth, vp.elevation, vp.distance = 32.0, 14.0, 4.2  # close to the photo's view
    vp.update()
    shot("photo_alignment")
    rendernet_shot(window, wait, shot)
    Path(window.settings.fileName()).unlink(missing_ok=True)
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
