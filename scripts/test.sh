#!/usr/bin/env bash
# Install dibr-studio with its test dependencies into .venv and run the full test suite:
# unit tests, native-extension tests, GUI tests in real windows under Xvfb, (where nvcc
# exists) a compile-and-import check of the CUDA extension against a CUDA build of torch, and
# the dry run of scripts/gpu_check.sh.
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
# The GPU check's dry run (scripts/gpu_check.sh --dry): its install from a wheel folder into a
# fresh venv and its stages that need no GPU, so the script is known to work before a GPU
# machine is at hand. Runs with the full suite (no arguments, as CI runs it) or GPU_CHECK_DRY=1.
if [ $# -eq 0 ] || [ "${GPU_CHECK_DRY:-}" = 1 ]; then
  py_version=$("$VENV/bin/python" -c 'import sys; print("{}.{}".format(*sys.version_info))')
  PIP_PYTHON="$VENV/bin/python" bash "$ROOT/scripts/gpu_wheels.sh" --python-version \
    "$py_version" "$ROOT/.whl-dry"
  GPU_CHECK_OUT="$ROOT/out/gpu-check-dry" GPU_CHECK_BASE_PYTHON="$VENV/bin/python" \
    bash "$ROOT/scripts/gpu_check.sh" --dry "$ROOT/.whl-dry"
fi
exec xvfb-run -a -s "-screen 0 1280x800x24" "$VENV/bin/python" -m pytest "$@"
