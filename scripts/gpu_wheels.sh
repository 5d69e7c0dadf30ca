#!/usr/bin/env bash
# Download, where pip reaches a package index, exactly the wheels that scripts/gpu_check.sh
# needs on a GPU machine without network: the project's dependencies and build requirements
# that such a machine's Python (a CUDA build of torch with numpy, scipy, pillow, networkx,
# ninja, tqdm, pytest and pytest-timeout already there) lacks.
#
#   bash scripts/gpu_wheels.sh [--python-version 3.12] [DIR]      (DIR default: .whl)
#
# Wheels are for CPython of that version on manylinux x86-64 (pure-Python ones too), one
# version of each, the versions the test suite runs with; DIR is emptied of wheels first.
# About 17 MB, most of it embreex. Bring DIR along and run `bash scripts/gpu_check.sh DIR`.
# The GUI's packages (PyQt6, moderngl, ...) are not needed there: no GUI test runs.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY_VERSION=3.12
if [ "${1:-}" = "--python-version" ]; then
  PY_VERSION=${2:?--python-version needs a value such as 3.12}
  shift 2
fi
DIR=${1:-$ROOT/.whl}
# trimesh and xatlas: dependencies of render_core; embreex and rtree: the voxelizer's ray
# casting (RenderNet); setuptools, wheel and wheel's packaging: the editable install's build
# requirements (pip builds in an isolated environment that sees only this folder).
WHEELS=(trimesh==5.2.0 xatlas==0.0.11 embreex==4.4.0.post1 rtree==1.4.1
  setuptools==84.2.1 wheel==0.48.0 packaging==26.4)
PIP_PYTHON=${PIP_PYTHON:-}
if [ -z "$PIP_PYTHON" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PIP_PYTHON=$ROOT/.venv/bin/python; else
    PIP_PYTHON=python3
  fi
fi
abi="cp${PY_VERSION//./}"
mkdir -p "$DIR"
rm -f "$DIR"/*.whl
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 \
  manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
"$PIP_PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version "$PY_VERSION" \
  --implementation cp --abi "$abi" --abi abi3 --abi none "${platforms[@]}" -d "$DIR" \
  "${WHEELS[@]}"
count=$(find "$DIR" -maxdepth 1 -type f -name '*.whl' | wc -l)
if [ "$count" -ne "${#WHEELS[@]}" ]; then
  echo "gpu_wheels: expected ${#WHEELS[@]} wheels in $DIR, found $count" >&2
  exit 1
fi
echo "gpu_wheels: $count wheels for CPython $PY_VERSION in $DIR ($(du -sh "$DIR" | cut -f1))"
