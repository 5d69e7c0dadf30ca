# Shared setup for scripts/studio.sh and scripts/test.sh: OS packages and the virtualenv.
# Sourced, not run. Honours PYTHON (default python3.11) and TORCH_SPEC (default torch==2.13.0,
# the CPU build; use e.g. TORCH_SPEC=torch==2.14.1 for a CUDA build).

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3.11}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
VENV=${VENV:-$ROOT/.venv}

# Qt's xcb platform plugin, Xvfb for windows without a screen, Mesa for OpenGL (llvmpipe).
OS_PACKAGES=(xvfb xauth libgl1 libegl1 libgl1-mesa-dri libxkbcommon-x11-0 libxcb-cursor0
  libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-xinerama0 libfontconfig1 libdbus-1-3)

ensure_os_packages() {
  command -v dpkg >/dev/null 2>&1 || return 0
  local missing=() p
  for p in "${OS_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      echo "dibr-studio: please install: apt-get install ${missing[*]}" >&2
      return 0
    fi
  fi
  echo "dibr-studio: installing OS packages: ${missing[*]}" >&2
  $sudo apt-get update -qq && \
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
}

ensure_venv() {  # ensure_venv EXTRAS
  if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
  fi
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
  # torch first and pinned: an unpinned requirement would pull a multi-GB CUDA build.
  "$VENV/bin/python" -m pip install -q "$TORCH_SPEC"
  "$VENV/bin/python" -m pip install -q -e "$ROOT[$1]"
}

find_cuda_home() {  # export CUDA_HOME: the first candidate holding a real toolkit; 1 if none
  # nvcc on PATH may be a wrapper script: take the first candidate with nvcc and the headers.
  local nvcc_dir="" candidate
  if command -v nvcc >/dev/null 2>&1; then
    nvcc_dir=$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")
  fi
  for candidate in "${CUDA_HOME:-}" "${CUDA_PATH:-}" /usr/local/cuda "$nvcc_dir"; do
    if [ -n "$candidate" ] && [ -x "$candidate/bin/nvcc" ] && \
       [ -f "$candidate/include/cuda_runtime.h" ]; then
      export CUDA_HOME=$candidate
      return 0
    fi
  done
  return 1
}
