"""The RQ peer's no-op job, and how every peer job marks itself done.

This module imports nothing but ``redis``: RQ's forking worker imports the job's module in
each work horse, so anything heavier here would be charged to RQ on every job.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import redis


@functools.cache
def _redis(url: str) -> redis.Redis:
    # One connection pool per process, made on first use (after any fork).
    return redis.Redis.from_url(url)


def mark_done(counter_key: str | None) -> None:
    """``INCR counter_key`` on the Redis at ``BENCH_REDIS_URL`` (no-op without a key), so a
    benchmark can count completions without a result backend."""
    if counter_key:
        _redis(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")).incr(counter_key)


def rq_noop(event: Any, counter_key: str | None = None) -> None:
    """The RQ no-op job: counts itself done in ``counter_key`` when given."""
    mark_done(counter_key)
