"""Build the native extension ahead of time: ``python -m render_core.build_ext [--cuda] [--force]``.

Builds (or loads from the cache) the CPU variant, and with ``--cuda`` the CUDA variant too,
imports each module and prints one line with the time taken. Exits 1 on failure, so CI can use
it as the compile check (the CUDA variant compiles and imports without a GPU).
"""

from __future__ import annotations

import argparse
import sys

from . import _build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m render_core.build_ext", description=__doc__)
    parser.add_argument("--cuda", action="store_true", help="also build the CUDA variant")
    parser.add_argument("--force", action="store_true", help="rebuild even if cached")
    parser.add_argument("--verbose", action="store_true", help="show compiler commands")
    args = parser.parse_args(argv)
    variants = ["cpu", "cuda"] if args.cuda else ["cpu"]
    status = 0
    for variant in variants:
        try:
            seconds = _build.build_seconds(variant, force=args.force, verbose=args.verbose)
            mod = _build.load_variant(variant)
            ok = hasattr(mod, "vis_forward_cpu") and (
                variant == "cpu" or hasattr(mod, "vis_forward_cuda")
            )
            if not ok:
                raise RuntimeError(f"module {mod.__name__} lacks its entry points")
            print(f"render_core: {variant} extension ok in {seconds:.1f} s ({mod.__file__})")
        except Exception as exc:  # noqa: BLE001 - report any failure as one line and exit 1
            print(f"render_core: {variant} extension FAILED: {exc}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
