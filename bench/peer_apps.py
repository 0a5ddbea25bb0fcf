"""The peers' HTTP fronts, one uvicorn factory each (``uvicorn --factory bench.peer_apps:X``).

Every app answers ``POST /invoke`` with ``202 {"request_id", "status": "queued"}`` like
cumulo's async invoke, and ``GET /`` with 200 (the readiness probe):

- :func:`starlette_constant` and :func:`fastapi_constant` return a constant: the ceiling of
  the framework cumulo is built on, and the same for FastAPI;
- :func:`fastapi_celery` parses the JSON body and calls Celery's ``apply_async`` (``.delay``
  with a queue) on Redis;
- :func:`fastapi_rq` parses the JSON body and calls RQ's ``Queue.enqueue`` on Redis.

The enqueueing endpoints are ``async def`` and call the (blocking) Redis clients directly:
with one worker and Redis on the same machine that is faster than a thread-pool hop per
request (measured), so the peers get their best setting. The queue comes from
``BENCH_QUEUE``, Redis from ``BENCH_REDIS_URL``.
"""

from __future__ import annotations

import os
from typing import Any

import redis
from fastapi import FastAPI, Request
from rq import Queue
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bench.peer_celery import celery_noop
from bench.peer_rq import rq_noop

_CONSTANT = {"request_id": "00000000-0000-4000-8000-000000000000", "status": "queued"}


def _queue_name() -> str:
    name = os.environ.get("BENCH_QUEUE")
    if not name:
        raise RuntimeError("set BENCH_QUEUE to the queue this run may use")
    return name


def _redis_url() -> str:
    return os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def starlette_constant() -> Starlette:
    async def invoke(request: StarletteRequest) -> Response:
        return JSONResponse(_CONSTANT, status_code=202)

    async def probe(request: StarletteRequest) -> Response:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/invoke", invoke, methods=["POST"]), Route("/", probe)])


def _fastapi_with_probe() -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/")
    async def probe() -> dict[str, str]:
        return {"status": "ok"}

    return app


def fastapi_constant() -> FastAPI:
    app = _fastapi_with_probe()

    @app.post("/invoke", status_code=202)
    async def invoke() -> dict[str, str]:
        return _CONSTANT

    return app


def fastapi_celery() -> FastAPI:
    app = _fastapi_with_probe()
    queue = _queue_name()

    @app.post("/invoke", status_code=202)
    async def invoke(request: Request) -> dict[str, Any]:
        event = await request.json()
        result = celery_noop.apply_async((event,), queue=queue)
        return {"request_id": result.id, "status": "queued"}

    return app


def fastapi_rq() -> FastAPI:
    app = _fastapi_with_probe()
    queue = Queue(_queue_name(), connection=redis.Redis.from_url(_redis_url()))

    @app.post("/invoke", status_code=202)
    async def invoke(request: Request) -> dict[str, Any]:
        event = await request.json()
        job = queue.enqueue(rq_noop, event, result_ttl=0)
        return {"request_id": job.id, "status": "queued"}

    return app
