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
if ! find_cuda_home; then
  echo "check_cuda_build: nvcc found but no CUDA toolkit (set CUDA_HOME)" >&2
  exit 1
fi
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-"8.0;9.0"}
CUDA_VENV=${CUDA_VENV:-$ROOT/.venv-cuda}
VENV=$CUDA_VENV TORCH_SPEC=${CUDA_TORCH_SPEC:-torch==2.14.1} ensure_venv test
"$CUDA_VENV/bin/python" -m render_core.build_ext --cuda
