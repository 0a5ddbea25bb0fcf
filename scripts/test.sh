#!/usr/bin/env bash
# Set up cumulo with its test tools in ./.venv and run every check: ruff, mypy --strict, pytest.
# Needs the services of DESIGN.md on 127.0.0.1 (PostgreSQL 5432 with database `test`).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -e ".[dev]"
echo "== ruff"
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
echo "== mypy --strict"
.venv/bin/mypy
echo "== pytest"
.venv/bin/pytest "$@"
