#!/usr/bin/env bash
# Install dibr-studio into .venv and launch it on the built-in demo scene.
# Without a display it runs the headless demo fit instead (writes out/demo/).
set -euo pipefail
source "$(dirname "$0")/_setup.sh"
ensure_os_packages
ensure_venv studio,rendernet
cd "$ROOT"
exec "$VENV/bin/dibr-studio" "$@"
