#!/usr/bin/env bash
# Set up cumulo in ./.venv (first run only) and run a server on http://127.0.0.1:8900 with the
# example functions deployed, on embedded SQLite under ./.cumulo. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import cumulo.app" 2>/dev/null; then
  .venv/bin/pip install --quiet --upgrade pip
  .venv/bin/pip install --quiet -e .
fi
# --max-function-mb 2500: the inference example's environment (torch, CPU build, and
# sentence-transformers) is about 1.4 GB installed, over the default limit of 500 MB.
exec .venv/bin/cumulo server --data-dir "${CUMULO_DATA_DIR:-.cumulo}" --examples examples \
  --max-function-mb 2500 "$@"
