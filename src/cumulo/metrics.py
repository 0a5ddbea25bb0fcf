"""Prometheus metrics, in a registry of the app's own (no process-wide globals).

Counters and the duration histogram are updated as invocations end; gauges derived from the
store and the pool are read when ``/metrics`` is scraped.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cumulo.models import Function, Invocation
from cumulo.runtime.base import PoolStats

DURATION_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900,
                      3600, 4 * 3600, 24 * 3600)  # fmt: skip


class _Snapshot(Collector):
    """Gauges computed at scrape time from the store and the pool."""

    def __init__(self) -> None:
        self.by_status: Mapping[tuple[str, str, str], int] = {}
        self.pool: PoolStats | None = None

    def collect(self) -> Iterator[Metric]:
        rows = GaugeMetricFamily(
            "cumulo_invocations",
            "Invocations kept in the store, by status",
            labels=["namespace", "function", "status"],
        )
        depth = GaugeMetricFamily(
            "cumulo_queue_depth", "Invocations waiting to run", labels=["namespace", "function"]
        )
        for (ns, fn, status), count in sorted(self.by_status.items()):
            rows.add_metric([ns, fn, status], count)
            if status == "queued":
                depth.add_metric([ns, fn], count)
        yield rows
        yield depth
        if self.pool is not None:
            yield GaugeMetricFamily(
                "cumulo_instances_live", "Live instances", value=self.pool.instances_live
            )
            yield GaugeMetricFamily(
                "cumulo_instances_idle", "Idle (warm) instances", value=self.pool.instances_idle
            )
            yield GaugeMetricFamily("cumulo_zygotes", "Live zygotes", value=self.pool.zygotes)
            yield CounterMetricFamily(
                "cumulo_cold_starts", "Instances forked", value=self.pool.cold_starts_total
            )


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._finished = Counter(
            "cumulo_invocations_finished",
            "Invocations that reached a terminal status",
            ["namespace", "function", "status"],
            registry=self.registry,
        )
        self._accepted = Counter(
            "cumulo_invocations_accepted",
            "Async invocations committed",
            ["namespace", "function"],
            registry=self.registry,
        )
        self._throttled = Counter(
            "cumulo_invocations_throttled",
            "Invocations refused with RequestLimitExceeded (max_qps)",
            ["namespace", "function"],
            registry=self.registry,
        )
        self._runs = Counter("cumulo_runs_started", "Runs started", registry=self.registry)
        self._duration = Histogram(
            "cumulo_invocation_duration_seconds",
            "Run time of finished invocations",
            ["namespace", "function"],
            buckets=DURATION_BUCKETS_S,
            registry=self.registry,
        )
        self._snapshot = _Snapshot()
        self.registry.register(self._snapshot)

    def accepted(self, fn: Function) -> None:
        self._accepted.labels(fn.namespace, fn.name).inc()

    def throttled(self, fn: Function) -> None:
        self._throttled.labels(fn.namespace, fn.name).inc()

    def run_started(self) -> None:
        self._runs.inc()

    def observe(self, inv: Invocation) -> None:
        self._finished.labels(inv.namespace, inv.function_name, inv.status.value).inc()
        if inv.duration_ms is not None:
            self._duration.labels(inv.namespace, inv.function_name).observe(inv.duration_ms / 1000)

    def render(self, by_status: Mapping[tuple[str, str, str], int], pool: PoolStats) -> bytes:
        self._snapshot.by_status = by_status
        self._snapshot.pool = pool
        return generate_latest(self.registry)
