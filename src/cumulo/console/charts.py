"""A function's charts, drawn on the server as inline SVG (no JavaScript, no chart library):
invocations per time bucket stacked by status, and the p50/p95 run duration per bucket.

The data is the function's invocations created in the window, newest first, read from the
store page by page and folded into buckets as they come (at most :data:`MAX_ROWS` rows;
the chart says so when it is based on fewer rows than matched). Times on the axes are UTC,
like every time the console shows.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from html import escape

from markupsafe import Markup

from cumulo.models import Invocation, InvocationFilter, InvocationOrder, Status
from cumulo.store.base import InvocationStore

#: The most rows a chart reads; beyond it the chart covers the most recent ones and says so.
MAX_ROWS = 10_000
#: Rows read from the store per query.
PAGE_ROWS = 1_000

#: Bar colours: the status classes' colours in ``console.css`` (``timed_out`` gets a lighter
#: red than ``failed`` so the two stay apart in a stacked bar).
STATUS_COLOURS = {
    Status.QUEUED: "#5c6570",
    Status.RUNNING: "#2458d6",
    Status.SUCCEEDED: "#1a7f37",
    Status.FAILED: "#b42318",
    Status.TIMED_OUT: "#e5534b",
    Status.TERMINATED: "#9a6700",
}
P50_COLOUR = "#2458d6"
P95_COLOUR = "#bc4c00"

# Drawing box (the SVG scales to its container; text stays readable down to ~320 px).
WIDTH, HEIGHT = 440, 230
LEFT, RIGHT, TOP, BOTTOM = 50, 22, 12, 40
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
FONT = 'font-family="system-ui, sans-serif" font-size="11"'


@dataclass(frozen=True, slots=True)
class Window:
    key: str
    label: str
    span_s: int
    bucket_s: int
    tick_s: int
    per: str


WINDOWS = {
    "1h": Window("1h", "last hour", 3_600, 60, 600, "per minute"),
    "1d": Window("1d", "last day", 86_400, 900, 3 * 3_600, "per 15 min"),
}
DEFAULT_WINDOW = "1h"


@dataclass(slots=True)
class Bucket:
    start: float
    counts: dict[Status, int] = field(default_factory=dict)
    durations_ms: list[float] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Chart:
    """One rendered chart: the SVG, its legend (label, colour) and a one-line summary."""

    svg: Markup
    legend: list[tuple[str, str]]
    summary: str


@dataclass(frozen=True, slots=True)
class FunctionCharts:
    """What ``_function_charts.html`` draws. ``rows`` invocations were read of ``matched``
    in the window; ``capped`` when that is fewer."""

    range: str
    window: Window
    invocations: Chart
    durations: Chart
    rows: int
    matched: int

    @property
    def capped(self) -> bool:
        return self.rows < self.matched

    @property
    def ranges(self) -> list[Window]:
        return list(WINDOWS.values())


async def function_charts(
    store: InvocationStore,
    namespace: str,
    function_name: str,
    range_key: str | None,
    now: float | None = None,
) -> FunctionCharts:
    """Both charts of a function over ``range_key`` (``1h`` or ``1d``; anything else means
    ``1h``) ending at ``now`` (Unix seconds)."""
    window = WINDOWS.get(range_key or "", WINDOWS[DEFAULT_WINDOW])
    now = time.time() if now is None else now
    buckets = empty_buckets(window, now)
    start = buckets[0].start
    where = InvocationFilter(namespace=namespace, function_name=function_name, created_after=start)
    seen: set[str] = set()
    matched = 0
    offset = 0
    while offset < MAX_ROWS:
        limit = min(PAGE_ROWS, MAX_ROWS - offset)
        page, total = await store.search_invocations(
            where, InvocationOrder.CREATED, offset=offset, limit=limit
        )
        matched = max(matched, total)
        # Rows created while paging shift the offsets: a row may come twice, count it once.
        fresh = [inv for inv in page if inv.request_id not in seen]
        seen.update(inv.request_id for inv in fresh)
        fill(buckets, window, fresh)
        offset += len(page)
        if len(page) < limit:
            break
    return FunctionCharts(
        range=window.key,
        window=window,
        invocations=invocations_chart(buckets, window),
        durations=durations_chart(buckets, window),
        rows=len(seen),
        matched=max(matched, len(seen)),
    )


def empty_buckets(window: Window, now: float) -> list[Bucket]:
    """The window's buckets, oldest first; the last one holds ``now``."""
    end = (math.floor(now / window.bucket_s) + 1) * window.bucket_s
    count = window.span_s // window.bucket_s
    return [Bucket(end - (count - i) * window.bucket_s) for i in range(count)]


def fill(buckets: list[Bucket], window: Window, invocations: Iterable[Invocation]) -> None:
    """Count each invocation in the bucket of its ``created_at`` (ignoring those outside)."""
    first = buckets[0].start
    for inv in invocations:
        index = int((inv.created_at - first) // window.bucket_s)
        if not 0 <= index < len(buckets):
            continue
        bucket = buckets[index]
        bucket.counts[inv.status] = bucket.counts.get(inv.status, 0) + 1
        if inv.duration_ms is not None:
            bucket.durations_ms.append(inv.duration_ms)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile ``q`` (0 < q ≤ 1) of a non-empty, sorted sequence."""
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def nice_ceiling(value: float, whole: bool = False) -> tuple[float, float]:
    """An axis top at or above ``value`` and its tick step (1, 2 or 5 times a power of ten,
    at most five steps; a whole number when ``whole``)."""
    if value <= 0:
        return 1.0, 1.0
    magnitude = 10 ** math.floor(math.log10(value / 5))
    step = 10 * magnitude
    for factor in (1, 2, 5):
        if factor * magnitude * 5 >= value:
            step = factor * magnitude
            break
    if whole:
        step = max(1.0, step)
    return math.ceil(value / step - 1e-9) * step, step


#: Units for a duration axis: (milliseconds per unit, name, used below this many ms).
DURATION_UNITS = ((1, "ms", 1_000), (1_000, "s", 120_000), (60_000, "min", 7_200_000))


def duration_axis(peak_ms: float) -> tuple[float, float, Callable[[float], str]]:
    """Top, step and tick label of a duration axis, in the unit that suits ``peak_ms``."""
    per, name = 3_600_000, "h"
    for unit_ms, unit, below in DURATION_UNITS:
        if peak_ms < below:
            per, name = unit_ms, unit
            break
    top, step = nice_ceiling(peak_ms / per)
    return top * per, step * per, lambda ms: f"{ms / per:g} {name}"


def format_ms(ms: float) -> str:
    """A duration, to three significant digits, in a fitting unit."""
    if ms < 1_000:
        return f"{ms:.3g} ms"
    seconds = ms / 1_000
    if seconds < 120:
        return f"{seconds:.3g} s"
    if seconds < 7_200:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3_600:.3g} h"


def _label(status: Status) -> str:
    return status.value.replace("_", " ")


def _clock(ts: float) -> str:
    return time.strftime("%H:%M", time.gmtime(ts))


def _x(index: float, count: int) -> float:
    return LEFT + PLOT_W * index / count


def _frame(
    chart_id: str,
    title: str,
    description: str,
    buckets: list[Bucket],
    window: Window,
    y_top: float,
    y_step: float,
    y_label: str,
    y_format: Callable[[float], str],
    body: str,
    extra_attrs: str = "",
) -> Markup:
    """The SVG around a plot: title, description, grid, both axes with labels."""
    count = len(buckets)
    parts = [
        f'<svg id="{chart_id}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-labelledby="{chart_id}-title {chart_id}-desc" '
        f'aria-label="{escape(title)}" data-range="{window.key}"{extra_attrs}>',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(description)}</desc>',
        f'<g {FONT} fill="#5c6570">',
    ]
    ticks = round(y_top / y_step)
    for i in range(ticks + 1):
        value = y_step * i
        y = TOP + PLOT_H - PLOT_H * value / y_top
        label = y_format(value)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{"#9aa3ad" if i == 0 else "#e6e9ed"}"/>'
            f'<text x="{LEFT - 5}" y="{y + 4:.1f}" text-anchor="end">{escape(label)}</text>'
        )
    first = buckets[0].start
    for i in range(count + 1):
        at = first + i * window.bucket_s
        if at % window.tick_s:
            continue  # ticks at round times (every 10 min, every 3 h)
        x = _x(i, count)
        # Every other label is "minor": a narrow screen hides those (console.css).
        minor = ' class="minor"' if (at // window.tick_s) % 2 else ""
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP + PLOT_H}" y2="{TOP + PLOT_H + 4}" '
            f'stroke="#9aa3ad"/>'
            f'<text x="{x:.1f}" y="{TOP + PLOT_H + 16}" text-anchor="middle"{minor}>'
            f"{_clock(at)}</text>"
        )
    parts.append(
        f'<text x="{LEFT + PLOT_W / 2:.1f}" y="{HEIGHT - 4}" text-anchor="middle">'
        f"time (UTC)</text>"
        f'<text transform="translate(11 {TOP + PLOT_H / 2:.1f}) rotate(-90)" '
        f'text-anchor="middle">{escape(y_label)}</text>'
    )
    parts.append("</g>")
    parts.append(body)
    parts.append("</svg>")
    return Markup("".join(parts))


def invocations_chart(buckets: list[Bucket], window: Window) -> Chart:
    """Invocations per bucket, one stacked bar per bucket, coloured by status."""
    totals = {s: sum(b.counts.get(s, 0) for b in buckets) for s in Status}
    total = sum(totals.values())
    peak = max((sum(b.counts.values()) for b in buckets), default=0)
    y_top, y_step = nice_ceiling(peak, whole=True)
    count = len(buckets)
    slot = PLOT_W / count
    bar_w = max(1.0, slot * 0.8)
    body = ['<g class="bars">']
    for i, bucket in enumerate(buckets):
        n = sum(bucket.counts.values())
        if not n:
            continue
        parts = ", ".join(f"{_label(s)} {bucket.counts[s]}" for s in Status if bucket.counts.get(s))
        tip = f"{_clock(bucket.start)}–{_clock(bucket.start + window.bucket_s)}: {parts}"
        body.append(
            f'<g data-bucket="{int(bucket.start)}" data-count="{n}"><title>{escape(tip)}</title>'
        )
        y: float = TOP + PLOT_H
        x = _x(i, count) + (slot - bar_w) / 2
        for status in Status:
            value = bucket.counts.get(status, 0)
            if not value:
                continue
            height = PLOT_H * value / y_top
            y -= height
            body.append(
                f'<rect x="{x:.2f}" y="{y:.2f}" width="{bar_w:.2f}" height="{height:.2f}" '
                f'fill="{STATUS_COLOURS[status]}" data-status="{status.value}"/>'
            )
        body.append("</g>")
    body.append("</g>")
    if not total:
        body.append(_no_data(f"No invocations in the {window.label}"))
    breakdown = ", ".join(f"{totals[s]:,} {_label(s)}" for s in Status if totals[s])
    summary = f"{total:,} invocations in the {window.label}" + (f": {breakdown}" if total else "")
    title = f"Invocations {window.per}, by status, {window.label}"
    svg = _frame(
        "chart-invocations",
        title,
        summary + ".",
        buckets,
        window,
        y_top,
        y_step,
        f"invocations {window.per}",
        lambda value: f"{value:g}",
        "".join(body),
        f' data-total="{total}"',
    )
    legend = [(_label(s), STATUS_COLOURS[s]) for s in Status]
    return Chart(svg, legend, summary)


def durations_chart(buckets: list[Bucket], window: Window) -> Chart:
    """The p50 and p95 duration of the runs created in each bucket, as two lines (broken
    where a bucket has no finished run)."""
    points: list[tuple[int, float, float]] = []
    everything: list[float] = []
    for i, bucket in enumerate(buckets):
        if bucket.durations_ms:
            ordered = sorted(bucket.durations_ms)
            everything.extend(ordered)
            points.append((i, percentile(ordered, 0.5), percentile(ordered, 0.95)))
    peak = max((p95 for _, _, p95 in points), default=0.0)
    y_top, y_step, y_format = duration_axis(peak)
    count = len(buckets)
    body = []
    for which, colour, label in ((1, P50_COLOUR, "p50"), (2, P95_COLOUR, "p95")):
        body.append(f'<g class="line" data-series="{label}">')
        segment: list[str] = []
        previous = -2
        for point in points:
            i, value = point[0], point[which]
            x = _x(i + 0.5, count)
            y = TOP + PLOT_H - PLOT_H * value / y_top
            if i != previous + 1 and len(segment) > 1:
                body.append(_path(segment, colour))
            if i != previous + 1:
                segment = []
            segment.append(f"{x:.2f},{y:.2f}")
            previous = i
            tip = f"{_clock(buckets[i].start)}: {label} {format_ms(value)}"
            body.append(
                f'<circle cx="{x:.2f}" cy="{y:.2f}" r="2.2" fill="{colour}">'
                f"<title>{escape(tip)}</title></circle>"
            )
        if len(segment) > 1:
            body.append(_path(segment, colour))
        body.append("</g>")
    if everything:
        everything.sort()
        summary = (
            f"{len(everything):,} finished runs in the {window.label}: "
            f"p50 {format_ms(percentile(everything, 0.5))}, "
            f"p95 {format_ms(percentile(everything, 0.95))}"
        )
    else:
        summary = f"No finished runs in the {window.label}"
        body.append(_no_data(summary))
    title = f"Duration p50 and p95 {window.per}, {window.label}"
    svg = _frame(
        "chart-durations",
        title,
        summary + ".",
        buckets,
        window,
        y_top,
        y_step,
        "duration",
        y_format,
        "".join(body),
        f' data-total="{len(everything)}"',
    )
    return Chart(svg, [("p50", P50_COLOUR), ("p95", P95_COLOUR)], summary)


def _path(points: list[str], colour: str) -> str:
    return (
        f'<polyline points="{" ".join(points)}" fill="none" stroke="{colour}" '
        f'stroke-width="2" stroke-linejoin="round"/>'
    )


def _no_data(text: str) -> str:
    return (
        f'<text x="{LEFT + PLOT_W / 2:.1f}" y="{TOP + PLOT_H / 2:.1f}" text-anchor="middle" '
        f'{FONT} fill="#5c6570">{escape(text)}</text>'
    )
