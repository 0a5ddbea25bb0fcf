#!/usr/bin/env bash
# Install what the benchmarks need on a fresh machine: wrk (from the distribution's packages)
# and the Python `bench` extra (FastAPI, Celery, RQ, redis) into the project's venv.
# Idempotent: installs only what is missing. Run from anywhere: `bash bench/setup.sh`.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${CUMULO_BENCH_PYTHON:-$root/.venv/bin/python}"

if ! command -v wrk >/dev/null 2>&1; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update
    $sudo apt-get install -y wrk
fi
wrk --version 2>&1 | head -n 1 || true

if [ ! -x "$python" ]; then
    echo "no Python at $python: create the venv first (python3.11 -m venv .venv)" >&2
    exit 1
fi
if ! "$python" -c "import fastapi, celery, rq, redis, uvloop, httptools, rich" 2>/dev/null; then
    "$python" -m pip install -e "$root[bench]"
fi

# The peers (Celery, RQ) need Redis at 127.0.0.1:6379 (or BENCH_REDIS_URL).
if ! "$python" - <<'PY'
import os
import redis

redis.Redis.from_url(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")).ping()
PY
then
    echo "warning: Redis does not answer at ${BENCH_REDIS_URL:-redis://127.0.0.1:6379/0}" >&2
fi
echo "bench setup done"
