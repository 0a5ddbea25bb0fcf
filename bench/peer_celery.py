"""The Celery peer: its app on the Redis at ``BENCH_REDIS_URL`` and its no-op task.

Celery's worker finds its app as a module attribute (``celery -A
bench.peer_celery:celery_app worker``), so this module holds one; building it does no I/O
(Celery connects lazily). Results are ignored (the peer's cheapest setting); a task marks
itself done with one Redis ``INCR`` when given a counter key.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery  # type: ignore[import-untyped]

from bench.peer_rq import mark_done

celery_app = Celery(
    "cumulo_bench", broker=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
)
celery_app.conf.update(
    task_ignore_result=True,
    task_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    # No broadcast mailbox: nothing here uses remote control, and it would leave a key
    # outside the run's own names in Redis.
    worker_enable_remote_control=False,
)


@celery_app.task(name="cumulo_bench.noop", ignore_result=True)  # type: ignore[untyped-decorator]
def celery_noop(event: Any, counter_key: str | None = None) -> None:
    """The Celery no-op: counts itself done in ``counter_key`` when given."""
    mark_done(counter_key)
