#!/usr/bin/env bash
# Refresh the console screenshots in docs/images (shown in the README): runs the console's
# browser tests with their screenshots pointed there. Needs ./.venv (bash scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p docs/images
CUMULO_SCREENSHOT_DIR="$PWD/docs/images" .venv/bin/pytest -q tests/e2e "$@"
