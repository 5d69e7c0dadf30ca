"""``dibr-studio``: the window (demo scene by default), or ``dibr-studio fit …`` /
``dibr-studio cameras …`` headless."""

from __future__ import annotations

import sys
from pathlib import Path

USAGE = """usage: dibr-studio [FILE ...]        open the studio (the demo scene without files)
       dibr-studio fit --demo --out DIR [--steps N]
       dibr-studio fit [--mesh M] --target IMG --view AZ,EL,DIST[,FOV] [...] \\
                       --optimize vertices,colors,... --steps N --out DIR
       dibr-studio fit --help           all fitting options
       dibr-studio cameras DIR [--out transforms.json] [--normalize]
                                        camera poses from a folder of photos
       dibr-studio batch MANIFEST --out DIR [--address ADDR] [--cpus-per-fit N] [--retries K]
                                        many fits at once on Ray (docs/batch.md)
       dibr-studio stylize --mesh M --style IMG --steps N --out DIR
                                        2D-to-3D style transfer (NMR)
       dibr-studio dream --mesh M --layer L --steps N --out DIR
                                        3D DeepDream (NMR)"""

HEADLESS_DEMO_DIR = "out/demo"


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if argv and argv[0] == "fit":
        from .cli import fit_main

        return fit_main(argv[1:])
    if argv and argv[0] == "batch":
        from .batch.cli import batch_main

        return batch_main(argv[1:])
    if argv and argv[0] == "cameras":
        from .poses_cli import cameras_main

        return cameras_main(argv[1:])
    if argv and argv[0] in ("stylize", "dream"):
        from . import stylize_cli

        return getattr(stylize_cli, f"{argv[0]}_main")(argv[1:])
    if argv and argv[0].startswith("-"):
        print(f"dibr-studio: error: unknown option {argv[0]} (see dibr-studio --help)",
              file=sys.stderr)
        return 2
    if argv and not Path(argv[0]).exists():
        print(f"dibr-studio: error: {argv[0]!r} is neither a subcommand (fit, cameras, batch, "
              f"stylize, dream) nor an existing file (see dibr-studio --help)", file=sys.stderr)
        return 2
    from .qt.app import has_display, run_gui

    if not has_display():
        from .cli import fit_main

        print(f"dibr-studio: no display found; running the headless demo fit instead "
              f"(results in ./{HEADLESS_DEMO_DIR})", file=sys.stderr)
        return fit_main(["--demo", "--out", HEADLESS_DEMO_DIR])
    return run_gui(argv)


if __name__ == "__main__":
    sys.exit(main())
