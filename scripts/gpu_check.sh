#!/usr/bin/env bash
# The CUDA path verified in one command on a machine with an NVIDIA GPU and no network.
#
#   bash scripts/gpu_check.sh [--dry] [WHEEL_DIR]       (from the repository root or anywhere)
#
# Stages, each under its own timeout (and all within GPU_CHECK_BUDGET seconds, default 470; 900
# with --dry), so a hang in one still reports the others:
#   install    the wheels of WHEEL_DIR (default .whl, made by scripts/gpu_wheels.sh) and the
#              project itself (editable, --no-deps), with no package index
#   env        Python, torch, the GPU, and where every needed module comes from
#   build      the CUDA extension for the GPU found (TORCH_CUDA_ARCH_LIST = its capability)
#   tests      the backend-parametrised tests, their cuda cases (pytest -m cuda)
#   sanitizer  compute-sanitizer memcheck over a few cuda tests, if compute-sanitizer exists
#   fit        a 200-step demo fit on cuda (and 10 steps on the CPU for the ratio)
#   rendernet  a RenderNet inference batch on cuda, compared with the CPU
#   bench      benchmarks/raster.py: cuda vs cpu vs the torch backend on cuda, 256² and 512²,
#              5k and 80k faces (last: a budget cut keeps the rows measured so far)
# then one table (scripts/gpu_check.py report). Everything goes to GPU_CHECK_OUT (default
# ./gpu-check-out): gpu-check.log (the full log), results.jsonl, tests.xml, sanitizer.xml,
# sanitizer.log, bench.json and summary.txt (the table). Exits 1 if any stage is not ok.
#
# The Python is GPU_CHECK_PYTHON (default python3, which must hold a CUDA build of torch).
# --dry runs every stage that needs no GPU, as CI does (scripts/test.sh): a fresh venv that
# sees the base Python's packages (torch, ...) behind its own, the install from WHEEL_DIR into
# it, then build, tests, fit, rendernet and bench on the CPU, at small sizes.
set -euo pipefail
SELF=$(readlink -f "${BASH_SOURCE[0]}")
ROOT=$(cd "$(dirname "$SELF")/.." && pwd)
cd "$ROOT"

now_ms() { date +%s%3N; }

# -- stages (run as `bash gpu_check.sh --stage NAME` under timeout) ---------------------------

stage_install() {
  export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PIP_NO_INDEX=1
  local wheels=() isolation=(--no-build-isolation)
  if [ -d "$WHEELS" ]; then
    mapfile -t wheels < <(find "$WHEELS" -maxdepth 1 -type f -name '*.whl' | sort)
  fi
  echo "installing ${#wheels[@]} wheels from $WHEELS"
  if ((${#wheels[@]})); then
    # --ignore-installed: the folder's versions, also over ones the Python already sees (and
    # nothing outside it is ever uninstalled).
    "$PY" -m pip install -q --no-deps --no-cache-dir --ignore-installed "${wheels[@]}"
    # The build requirements (setuptools, wheel) come from the folder too.
    isolation=(--find-links "$WHEELS")
  fi
  # Editable: a built wheel of the project holds neither csrc/ nor assets/, which render_core
  # finds next to its package (the native sources, the RenderNet weights).
  "$PY" -m pip install -q --no-deps --no-cache-dir --ignore-installed "${isolation[@]}" \
    -e "$ROOT"
  "$PY" -m pip list 2>/dev/null | grep -i -E '^(dibr-studio|torch|numpy|trimesh|xatlas) ' || true
  printf '{"stage": "install", "metrics": {"wheels": %d}}\n' "${#wheels[@]}" \
    >>"$OUT_DIR/results.jsonl"
}

stage_env() {
  local gpu=(--need-gpu)
  if [ "$DRY" = 1 ]; then gpu=(); fi
  "$PY" scripts/gpu_check.py env "$OUT_DIR" --wheels "$WHEELS" "${gpu[@]}"
}

stage_build() {
  "$PY" scripts/gpu_check.py build "$OUT_DIR" --device "$DEVICE"
}

stage_tests() {
  local files
  mapfile -t files < <(grep -l -E 'native_backend|NATIVE_BACKENDS' tests/test_*.py)
  if [ "$DRY" = 1 ]; then  # a cpu sample of the same tests (the full suite runs them all)
    "$PY" -m pytest -q -p no:cacheprovider -o timeout=300 --junitxml "$OUT_DIR/tests.xml" \
      -m "not cuda" tests/test_native.py -k "gradcheck or deterministic or visibility"
  else
    "$PY" -m pytest -q -p no:cacheprovider -o timeout=120 --junitxml "$OUT_DIR/tests.xml" \
      -m cuda "${files[@]}"
  fi
}

stage_sanitizer() {
  # Without the caching allocator every tensor is its own allocation, so memcheck sees an
  # access past a tensor's end even where the cache would have had memory there.
  PYTORCH_NO_CUDA_MEMORY_CACHING=1 "$SANITIZER" --tool memcheck --error-exitcode 86 \
    --print-limit 20 --log-file "$OUT_DIR/sanitizer.log" \
    "$PY" -m pytest -q -p no:cacheprovider --junitxml "$OUT_DIR/sanitizer.xml" -m cuda \
    tests/test_native.py tests/test_native_frags.py \
    -k "gradcheck or empty_and_offscreen or deterministic_mode"
}

stage_fit() {
  if [ "$DRY" = 1 ]; then
    "$PY" scripts/gpu_check.py fit "$OUT_DIR" --device cpu --steps 20 --compare-steps 0
  else
    "$PY" scripts/gpu_check.py fit "$OUT_DIR" --device cuda --steps 200 --compare-steps 10
  fi
}

stage_rendernet() {
  if [ "$DRY" = 1 ]; then
    "$PY" scripts/gpu_check.py rendernet "$OUT_DIR" --device cpu --batch 2 --reps 1
  else
    "$PY" scripts/gpu_check.py rendernet "$OUT_DIR" --device cuda --batch 8 --reps 5
  fi
}

stage_bench() {
  if [ "$DRY" = 1 ]; then
    "$PY" benchmarks/raster.py --backends cpu,torch --res 64 --faces 1280 --runs 1 \
      --budget 2 --no-gl --json "$OUT_DIR/bench.json"
  else
    "$PY" benchmarks/raster.py --backends cuda,cpu,torch-cuda --res 256 512 \
      --faces 5120 81920 --runs 3 --budget 2 --no-gl --json "$OUT_DIR/bench.json"
  fi
}

if [ "${1:-}" = "--stage" ]; then
  "stage_$2"
  exit
fi

# -- driver ------------------------------------------------------------------------------------

DRY=0
if [ "${1:-}" = "--dry" ]; then
  DRY=1
  shift
fi
WHEELS=$(readlink -f "${1:-$ROOT/.whl}")
OUT_DIR=${GPU_CHECK_OUT:-$ROOT/gpu-check-out}
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
BUDGET=${GPU_CHECK_BUDGET:-$([ "$DRY" = 1 ] && echo 900 || echo 470)}
LOG=$OUT_DIR/gpu-check.log
for f in gpu-check.log results.jsonl tests.xml sanitizer.xml sanitizer.log bench.json \
  summary.txt; do
  rm -f "${OUT_DIR:?}/$f"
done
T0=$(now_ms)
DEADLINE=$((T0 + BUDGET * 1000))
export PYTHONUNBUFFERED=1 DRY WHEELS OUT_DIR

record() {  # record STAGE STATUS MS [NOTE]
  printf '{"stage": "%s", "status": "%s", "seconds": %d.%03d, "note": "%s"}\n' \
    "$1" "$2" $(($3 / 1000)) $(($3 % 1000)) "${4:-}" >>"$OUT_DIR/results.jsonl"
  printf 'gpu_check: %-10s %-16s %5d s %s\n' "$1" "$2" $(($3 / 1000)) "${4:-}"
}

run_stage() {  # run_stage NAME MAX_SECONDS: stage_NAME under its own timeout
  local name=$1 max=$2 rc=0 status t0 left limit
  t0=$(now_ms)
  left=$(((DEADLINE - t0) / 1000))
  if ((left < 15)); then
    record "$name" "not run" 0 "no time left of the $BUDGET s budget"
    return 0
  fi
  limit=$((max < left ? max : left))
  printf '\n===== %s (limit %d s)\n' "$name" "$limit" >>"$LOG"
  timeout --kill-after=10 "$limit" bash "$SELF" --stage "$name" >"$OUT_DIR/stage.out" 2>&1 \
    || rc=$?
  cat "$OUT_DIR/stage.out" >>"$LOG"
  case $rc in
    0) status=ok ;;
    124 | 137) status=TIMEOUT ;;
    *) status="FAIL (exit $rc)" ;;
  esac
  local note=""
  if ((rc)); then  # the stage's last line says why, in the table (the log has the rest)
    note=$(grep -v '^[[:space:]]*$' "$OUT_DIR/stage.out" | tail -n 1 | tr -d '"\\' | cut -c1-160)
  fi
  rm -f "$OUT_DIR/stage.out"
  record "$name" "$status" $(($(now_ms) - t0)) "$note"
}

if [ "$DRY" = 1 ]; then
  # A fresh venv standing in for the GPU machine's Python: the base Python's packages (torch
  # and the rest of what that image holds) are visible behind the venv's own site-packages, so
  # whatever the wheel folder installs is what gets imported (the env stage checks that).
  BASE=${GPU_CHECK_BASE_PYTHON:-}
  if [ -z "$BASE" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then BASE=$ROOT/.venv/bin/python; else BASE=python3; fi
  fi
  if ! "$BASE" -c 'import torch' 2>/dev/null; then
    echo "gpu_check --dry: $BASE has no torch (set GPU_CHECK_BASE_PYTHON)" >&2
    exit 2
  fi
  TMP=$(mktemp -d)
  trap 'rm -rf "$TMP"' EXIT
  "$BASE" -m venv "$TMP/venv"
  PY=$TMP/venv/bin/python
  site=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  "$BASE" -c 'import sysconfig as s; print("\n".join(sorted({s.get_paths()[k]
    for k in ("purelib", "platlib")})))' >"$site/_gpu_check_base.pth"
  DEVICE=cpu
  ARCH=""
  echo "gpu_check --dry: venv from $BASE; wheels $WHEELS; output $OUT_DIR"
else
  PY=${GPU_CHECK_PYTHON:-python3}
  DEVICE=cuda
  ARCH=$("$PY" scripts/gpu_check.py arch "$OUT_DIR" 2>>"$LOG" || true)
  # shellcheck source=scripts/_setup.sh
  source "$ROOT/scripts/_setup.sh"
  find_cuda_home || echo "gpu_check: no CUDA toolkit found (nvcc, headers)" | tee -a "$LOG"
  if [ -n "$ARCH" ]; then export TORCH_CUDA_ARCH_LIST=$ARCH; fi
  echo "gpu_check: $PY, GPU capability ${ARCH:-none}, CUDA_HOME ${CUDA_HOME:-none}; output" \
    "$OUT_DIR"
  nvidia-smi -L >>"$LOG" 2>&1 || true
fi
export PY DEVICE

run_stage install 180
run_stage env 60
if [ "$DRY" = 0 ] && [ -z "$ARCH" ]; then
  for s in build tests sanitizer fit rendernet bench; do
    record "$s" "not run" 0 "no CUDA device"
  done
else
  run_stage build 360
  run_stage tests 300
  SANITIZER=$(command -v compute-sanitizer || true)
  if [ -z "$SANITIZER" ] && [ -x "${CUDA_HOME:-/usr/local/cuda}/bin/compute-sanitizer" ]; then
    SANITIZER=${CUDA_HOME:-/usr/local/cuda}/bin/compute-sanitizer
  fi
  export SANITIZER
  if [ "$DRY" = 1 ]; then
    record sanitizer skipped 0 "needs a GPU"
  elif [ -z "$SANITIZER" ]; then
    record sanitizer skipped 0 "compute-sanitizer not found"
  else
    run_stage sanitizer 180
  fi
  run_stage fit 120
  run_stage rendernet 120
  # Last: the one stage whose results a budget cut leaves partly there (rows so far).
  run_stage bench 200
fi
echo
rc=0
"$PY" scripts/gpu_check.py report "$OUT_DIR" --mode "$([ "$DRY" = 1 ] && echo dry || echo cuda)" \
  --arch "$ARCH" || rc=$?
echo "full log: $LOG"
exit "$rc"
