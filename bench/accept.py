"""Accept throughput: async invoke over HTTP, acknowledged only once durably committed.

``wrk -c32 -d10s`` POSTs a small JSON event with the bearer header to each system in turn,
each served by one uvicorn worker with the same options (uvloop + httptools):

- ``cumulo``: an async-run function with ``max_qps`` far above the load whose one slot
  (``max_concurrency`` 1) is taken by a long run, so the accepted events wait in the queue, as
  the peers' jobs wait in Redis (no worker runs while they are measured); afterwards the
  invocations in the store are counted and compared with wrk's 2xx count;
- ``cumulo-draining``: the same with a no-op handler and ``--max-concurrency`` (2) slots, so
  the node also claims, runs and finishes the events while it accepts them;
- ``cumulo-scf``: as ``cumulo``, through the SCF API: ``POST /`` with an ``Invoke`` (Event)
  signed by the official SDK (TC3-HMAC-SHA256; wrk replays one signed request, which holds
  within the 5-minute clock window), so the signature check and SCF's envelope are measured;
- ``fastapi+rq``: a FastAPI endpoint calling RQ's ``enqueue`` on Redis;
- ``fastapi+celery``: a FastAPI endpoint calling Celery's ``.delay`` (``apply_async``) on Redis;
- ``starlette-constant``: the framework cumulo is built on, returning a constant (the ceiling);
- ``fastapi-constant``: the same with FastAPI.

Run: ``.venv/bin/python -m bench.accept [--duration-s 10] [--connections 32]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python bench/accept.py`: import `bench` from the root
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
from collections.abc import Sequence
from typing import Any

import httpx
from rq import Queue

from bench import _common, _wrk
from bench._report import Check, Report, emit, ratio

EVENT_BODY = '{"job": "resize", "width": 640, "height": 480}'
NOOP_SOURCE = "def main_handler(event, context):\n    return None\n"
BLOCKER_SOURCE = "import time\n\ndef main_handler(event, context):\n    time.sleep(3600)\n"
PEERS = {
    "starlette-constant": "bench.peer_apps:starlette_constant",
    "fastapi-constant": "bench.peer_apps:fastapi_constant",
    "fastapi+rq": "bench.peer_apps:fastapi_rq",
    "fastapi+celery": "bench.peer_apps:fastapi_celery",
}
SYSTEMS = ("cumulo", "cumulo-scf", "cumulo-draining", *PEERS)


def _wrk_run(url: str, headers: dict[str, str], args: argparse.Namespace) -> _wrk.WrkResult:
    return _wrk.run(
        url,
        body=EVENT_BODY,
        headers=headers,
        connections=args.connections,
        duration_s=args.duration_s,
        threads=args.threads,
    )


def _warm_up(url: str, headers: dict[str, str], args: argparse.Namespace) -> None:
    """A short run before the measured one (connections, imports, caches)."""
    if args.warmup_s > 0:
        _wrk.run(url, body=EVENT_BODY, headers=headers, duration_s=args.warmup_s, threads=1)


def measure_peer(system: str, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    tag = _common.run_id()
    env = {"BENCH_QUEUE": tag, "BENCH_REDIS_URL": _common.REDIS_URL}
    headers = {"Content-Type": "application/json", "Authorization": "Bearer peer-token"}
    with (
        _common.redis_scope(tag) as client,
        _common.uvicorn_server(PEERS[system], root, env=env) as url,
    ):
        queue = Queue(tag, connection=client)

        def stored() -> int:
            # Celery's Redis transport keeps a queue as a list named after it.
            return int(client.llen(tag)) if system == "fastapi+celery" else queue.count

        _warm_up(f"{url}/invoke", headers, args)
        before = stored()
        result = _wrk_run(f"{url}/invoke", headers, args)
        row = result.summary()
        if system in ("fastapi+celery", "fastapi+rq"):
            row["stored"] = stored() - before
    return row


def _signed_invoke(server: _common.CumuloServer, function: str) -> tuple[str, dict[str, str]]:
    """An SCF ``Invoke`` (Event) request for ``function``, built and signed by the official
    SDK with a fresh API key: its body and headers."""
    import json

    from tencentcloud.common import credential
    from tencentcloud.common.http.request import RequestInternal
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile
    from tencentcloud.scf.v20180416 import scf_client

    with server.client() as client:
        key = client.post("/v1/keys", json={"description": "bench"}).json()
    endpoint = server.url.removeprefix("http://")
    profile = ClientProfile(httpProfile=HttpProfile(endpoint=endpoint, protocol="http"))
    scf = scf_client.ScfClient(
        credential.Credential(key["secret_id"], key["secret_key"]), "ap-guangzhou", profile
    )
    params = {"FunctionName": function, "InvocationType": "Event", "ClientContext": EVENT_BODY}
    req = RequestInternal(scf._get_endpoint(), "POST", "/", header={})
    scf._build_req_with_tc3_signature("Invoke", params, req)
    check = httpx.post(server.url + "/", content=req.data, headers=dict(req.header))
    answer = json.loads(check.text)["Response"]
    if "Error" in answer:
        raise _common.BenchError(f"the signed SCF Invoke was refused: {answer['Error']}")
    return str(req.data), {k: str(v) for k, v in req.header.items() if k.lower() != "host"}


def measure_cumulo_scf(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    config: dict[str, Any] = {"async_run": True, "max_qps": 1_000_000, "timeout_s": 7200}
    config["max_concurrency"] = 1
    with _common.cumulo_server(root) as server, server.client(timeout_s=120.0) as client:
        _common.create_function(client, "noop", BLOCKER_SOURCE, **config)
        body, headers = _signed_invoke(server, "noop")
        _wrk.run(server.url + "/", body=body, headers=headers, duration_s=args.warmup_s, threads=1)
        before = len(_common.list_invocations(client, "noop"))
        result = _wrk.run(
            server.url + "/",
            body=body,
            headers=headers,
            connections=args.connections,
            duration_s=args.duration_s,
            threads=args.threads,
        )
        stored = len(_common.list_invocations(client, "noop")) - before
    row = result.summary()
    row["stored"] = stored
    # SCF answers 200 with an error envelope too: every 2xx must have made a row.
    row["lost"] = max(0, result.ok_2xx - stored)
    print(f"cumulo-scf: wrk 2xx = {result.ok_2xx}, invocations stored = {stored}", file=sys.stderr)
    return row


def measure_cumulo(root: Path, args: argparse.Namespace, draining: bool) -> dict[str, Any]:
    config: dict[str, Any] = {"async_run": True, "max_qps": 1_000_000, "timeout_s": 7200}
    source = NOOP_SOURCE
    if not draining:
        config["max_concurrency"] = 1
        source = BLOCKER_SOURCE
    elif args.max_concurrency > 0:
        config["max_concurrency"] = args.max_concurrency
    with _common.cumulo_server(root) as server, server.client(timeout_s=120.0) as client:
        _common.create_function(client, "warmup", source, **config)
        _common.create_function(client, "noop", source, **config)
        headers = {"Content-Type": "application/json", **server.headers}
        _warm_up(server.url + _common.invocations_path("warmup"), headers, args)
        result = _wrk_run(server.url + _common.invocations_path("noop"), headers, args)
        stored = len(_common.list_invocations(client, "noop"))
    row = result.summary()
    row["stored"] = stored
    # Requests still in flight when wrk stops may be committed without wrk counting a reply,
    # so `stored` may exceed the 2xx count by up to the number of connections; never fall
    # short of it.
    row["lost"] = max(0, result.ok_2xx - stored)
    print(f"cumulo: wrk 2xx = {result.ok_2xx}, invocations stored = {stored}", file=sys.stderr)
    return row


def run(args: argparse.Namespace) -> Report:
    rows: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    with _common.work_dir("accept") as root:
        for system in args.systems:
            try:
                if system == "cumulo-scf":
                    rows[system] = measure_cumulo_scf(root / system, args)
                elif system.startswith("cumulo"):
                    rows[system] = measure_cumulo(root / system, args, draining=system != "cumulo")
                else:
                    rows[system] = measure_peer(system, root, args)
            except (_common.BenchError, httpx.HTTPError) as exc:
                notes.append(_common.did_not_run(system, exc))

    def rps(system: str) -> float | None:
        return rows[system]["requests_per_s"] if system in rows else None

    cumulo = rows.get("cumulo", {})
    ratios = {
        "cumulo/rq": ratio(rps("cumulo"), rps("fastapi+rq")),
        "cumulo/celery": ratio(rps("cumulo"), rps("fastapi+celery")),
        "cumulo/ceiling": ratio(rps("cumulo"), rps("starlette-constant")),
        "cumulo/fastapi-constant": ratio(rps("cumulo"), rps("fastapi-constant")),
        "cumulo-draining/celery": ratio(rps("cumulo-draining"), rps("fastapi+celery")),
        "cumulo-scf/cumulo": ratio(rps("cumulo-scf"), rps("cumulo")),
        "cumulo-scf/celery": ratio(rps("cumulo-scf"), rps("fastapi+celery")),
        "cumulo-scf/rq": ratio(rps("cumulo-scf"), rps("fastapi+rq")),
    }
    checks = [
        Check("accepted/s", rps("cumulo"), ">=", 5000, "req/s"),
        Check("p99 under load", cumulo.get("p99_ms"), "<=", 15, "ms"),
        Check("x RQ", ratios["cumulo/rq"], ">=", 3),
        Check("x Celery", ratios["cumulo/celery"], ">=", 5),
        Check("x constant (ceiling)", ratios["cumulo/ceiling"], ">=", 0.5),
        Check("non-2xx", cumulo.get("non_2xx"), "<=", 0),
        Check("accepted but not stored", cumulo.get("lost"), "<=", 0),
    ]
    notes.append(
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration_s}s, body {EVENT_BODY}; "
        "one uvicorn worker per system with " + " ".join(_common.UVICORN_OPTIONS)
    )
    return Report("accept", rows, ratios, checks, notes)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration-s", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--warmup-s", type=int, default=1)
    parser.add_argument(
        "--max-concurrency",
        type=int,
        default=2,
        help="cumulo-draining function's max_concurrency while it drains the load (0: unset)",
    )
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    report = run(parse_args(argv))
    emit(report)
    return 0 if report.rows else 1


if __name__ == "__main__":
    sys.exit(main())
