#!/usr/bin/env bash
# Compile the CUDA extension with nvcc against a CUDA build of torch and import it.
# No GPU is needed: this proves the CUDA driver code compiles and links; every line of math it
# runs is shared with the CPU driver that the test suite executes.
# Without nvcc this is skipped, except under CI (CI=true), where it must run.
set -euo pipefail
source "$(dirname "$0")/_setup.sh"
if ! command -v nvcc >/dev/null 2>&1; then
  if [ "${CI:-}" = "true" ]; then
    echo "check_cuda_build: nvcc not found, but CI requires the CUDA compile check" >&2
    exit 1
  fi
  echo "check_cuda_build: nvcc not found; skipping the CUDA compile check"
  exit 0
fi
# nvcc on PATH may be a wrapper script: take the first candidate that holds a real toolkit.
nvcc_dir=$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")
for candidate in "${CUDA_HOME:-}" "${CUDA_PATH:-}" /usr/local/cuda "$nvcc_dir"; do
  if [ -n "$candidate" ] && [ -x "$candidate/bin/nvcc" ] && \
     [ -f "$candidate/include/cuda_runtime.h" ]; then
    export CUDA_HOME=$candidate
    break
  fi
done
if [ -z "${CUDA_HOME:-}" ] || [ ! -f "$CUDA_HOME/include/cuda_runtime.h" ]; then
  echo "check_cuda_build: nvcc found but no CUDA toolkit (set CUDA_HOME)" >&2
  exit 1
fi
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-"8.0;9.0"}
CUDA_VENV=${CUDA_VENV:-$ROOT/.venv-cuda}
VENV=$CUDA_VENV TORCH_SPEC=${CUDA_TORCH_SPEC:-torch==2.14.1} ensure_venv test
"$CUDA_VENV/bin/python" -m render_core.build_ext --cuda
