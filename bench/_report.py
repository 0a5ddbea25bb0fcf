"""How a benchmark states its results: rows per system, ratios, and checks against targets.

A :class:`Report` prints as one JSON document (for machines, and for keeping) followed by
rich tables: the systems side by side, then the ratios and targets.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from rich.console import Console
from rich.markup import escape
from rich.table import Table


@dataclass(frozen=True, slots=True)
class Check:
    """One target: ``value op target`` (``op`` is ``">="`` or ``"<="``). ``value`` is None
    when the benchmark could not measure it; such a check neither passes nor fails."""

    name: str
    value: float | None
    op: Literal[">=", "<="]
    target: float
    unit: str = ""

    @property
    def passed(self) -> bool | None:
        if self.value is None or math.isnan(self.value):
            return None
        return self.value >= self.target if self.op == ">=" else self.value <= self.target

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


@dataclass(frozen=True, slots=True)
class Report:
    """What one benchmark found. ``rows`` maps a system's name to its metrics (JSON values);
    ``ratios`` maps "a/b" to a ratio or None when a side is missing."""

    bench: str
    rows: Mapping[str, Mapping[str, Any]]
    ratios: Mapping[str, float | None] = field(default_factory=dict)
    checks: Sequence[Check] = ()
    notes: Sequence[str] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "bench": self.bench,
            "rows": {k: dict(v) for k, v in self.rows.items()},
            "ratios": dict(self.ratios),
            "checks": [c.as_dict() for c in self.checks],
            "notes": list(self.notes),
        }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator`` rounded to 3 places, or None when either is missing or the
    denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return round(numerator / denominator, 3)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100) of ``values`` with linear interpolation. Raises
    ValueError for an empty sequence."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_ms(samples_s: Sequence[float]) -> dict[str, float | int]:
    """p50, p99, mean and max of durations given in seconds, as milliseconds."""
    ms = [s * 1000.0 for s in samples_s]
    return {
        "p50_ms": round(percentile(ms, 50), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
        "max_ms": round(max(ms), 3),
        "samples": len(ms),
    }


def _cell(value: Any) -> str:
    """A value as table text (escaped: tables read rich markup)."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, Mapping):
        return escape(json.dumps(value, sort_keys=True))
    return escape(str(value))


def _verdict(passed: bool | None) -> str:
    return {True: "[green]pass[/]", False: "[red]FAIL[/]", None: "[yellow]n/a[/]"}[passed]


def rows_table(report: Report) -> Table:
    """The systems side by side: one column per system, one row per metric."""
    metrics: list[str] = []
    for row in report.rows.values():
        metrics += [k for k in row if k not in metrics]
    table = Table(title=report.bench)
    table.add_column("metric")
    for system in report.rows:
        table.add_column(escape(system), justify="right")
    for metric in metrics:
        table.add_row(escape(metric), *(_cell(row.get(metric)) for row in report.rows.values()))
    return table


def checks_table(title: str, reports: Iterable[Report]) -> Table:
    table = Table(title=title)
    for column in ("bench", "what", "value", "target", "verdict"):
        table.add_column(column, justify="left" if column in ("bench", "what") else "right")
    for report in reports:
        for name, value in report.ratios.items():
            table.add_row(report.bench, escape(f"ratio {name}"), _cell(value), "", "")
        for check in report.checks:
            target = f"{check.op} {_cell(check.target)} {check.unit}".strip()
            table.add_row(
                report.bench,
                escape(check.name),
                f"{_cell(check.value)} {check.unit}".strip(),
                target,
                _verdict(check.passed),
            )
    return table


def emit(report: Report, console: Console | None = None) -> None:
    """Print the report as one JSON line on stdout, then its tables."""
    print(json.dumps(report.as_dict(), sort_keys=True, default=str), flush=True)
    console = console or Console(file=sys.stdout, width=160)
    console.print(rows_table(report))
    if report.ratios or report.checks:
        console.print(checks_table(f"{report.bench}: ratios and targets", [report]))
    for note in report.notes:
        console.print(f"note: {note}", style="dim", markup=False)
