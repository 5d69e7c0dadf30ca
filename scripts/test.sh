#!/usr/bin/env bash
# Install dibr-studio with its test dependencies into .venv and run the full test suite:
# unit tests, native-extension tests, GUI tests in real windows under Xvfb, and (where nvcc
# exists) a compile-and-import check of the CUDA extension against a CUDA build of torch.
set -euo pipefail
source "$(dirname "$0")/_setup.sh"
ensure_os_packages
ensure_venv "studio,test,rendernet"
cd "$ROOT"
"$VENV/bin/ruff" check render_core studio tests benchmarks scripts
# The layer contracts of pyproject.toml: render_core and studio.model import no Qt/GL.
"$VENV/bin/lint-imports"
bash "$ROOT/scripts/check_cuda_build.sh"
# Build the native CPU extension up front: a compile failure fails the run here, and no test
# (the GUI tests among them) waits on a first-use build.
"$VENV/bin/python" -m render_core.build_ext
exec xvfb-run -a -s "-screen 0 1280x800x24" "$VENV/bin/python" -m pytest "$@"
