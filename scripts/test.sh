#!/usr/bin/env bash
# Set up cumulo with its test tools in ./.venv and run every check: ruff, mypy --strict, pytest.
# Needs PostgreSQL on 127.0.0.1:5432 (database `test`, trust auth) and NATS on 127.0.0.1:4222.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -e ".[dev]"
# The console's end-to-end tests drive Debian's Chromium (Playwright with executable_path;
# no browser download). Installed here when this user can; on CI a missing one fails them.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing chromium (Debian package)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }
  else
    echo "chromium is not installed: the console's browser tests will fail (apt-get install chromium)" >&2
  fi
fi
echo "== ruff"
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
echo "== mypy --strict"
.venv/bin/mypy
echo "== pytest"
.venv/bin/pytest "$@"
