"""The timer kind: SCF cron expressions, when they fire, and the event a fire delivers.

An expression has one of three shapes, fields separated by spaces:

- 7 fields, SCF's form: ``second minute hour day month week year`` (``0 */5 * * * * *``);
- 6 fields: the same without the year (``*/10 * * * * *``);
- 5 fields, classic cron: ``minute hour day month week`` (fires at second 0).

Each field takes numbers, ``*``, lists (``,``), ranges (``-``) and steps (``/``); month and
week also take names (``JAN``-``DEC``, ``SUN``-``SAT``; week 0 is Sunday); day and week also
take ``?`` (any). Years run 1970-2099. When both day and week are restricted, a time
matching either fires (as in cron). Times are UTC. Like SCF, a timer may fire as often as
every second. Parsing and the fire times come from ``croniter``.
"""

from __future__ import annotations

import functools
import re
import time
from typing import Any

import orjson
from croniter import CroniterBadDateError, CroniterError, croniter

from cumulo.errors import InvalidParameter

#: What a timer delivers as ``Message``: at most this many bytes (SCF's limit).
MAX_MESSAGE_BYTES = 4096
#: How far ahead :func:`parse` looks for a first fire time before calling it "never".
SEARCH_YEARS = 50

_CODE = "InvalidParameterValue.TriggerDesc"
_NAMES = {
    "second": (), "minute": (), "hour": (), "day": (),
    "month": ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"),
    "week": ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"),
    "year": (),
}  # fmt: skip
_LAYOUTS = {
    7: ("second", "minute", "hour", "day", "month", "week", "year"),
    6: ("second", "minute", "hour", "day", "month", "week"),
    5: ("minute", "hour", "day", "month", "week"),
}
_ITEM = re.compile(r"^(?:\*|\?|([0-9A-Za-z]+)(?:-([0-9A-Za-z]+))?)(?:/(\d+))?$")
_USAGE = (
    "use 7 fields 'second minute hour day month week year' (e.g. '0 */5 * * * * *'), "
    "6 without the year, or 5 'minute hour day month week'; a field takes numbers, "
    "*, lists (,), ranges (-) and steps (/), and month and week also names (JAN, MON)"
)


class CronSchedule:
    """A parsed, valid expression. Not thread-safe (it reuses one ``croniter``); the
    scheduler uses it from the event loop only."""

    __slots__ = ("_iter", "expression", "field_count")

    def __init__(self, expression: str, field_count: int, it: Any) -> None:
        self.expression = expression
        self.field_count = field_count
        self._iter = it

    def next_after(self, after_ts: float) -> float | None:
        """The first fire time strictly after ``after_ts`` (Unix seconds), or ``None`` when
        it never fires again (its years are over)."""
        try:
            return float(self._iter.get_next(float, start_time=after_ts))
        except CroniterBadDateError:
            return None

    def fires_between(self, after_ts: float, until_ts: float, limit: int = 1000) -> list[float]:
        """Fire times ``t`` with ``after_ts < t <= until_ts``, oldest first, at most
        ``limit`` of them (the earliest)."""
        fires: list[float] = []
        at = after_ts
        while len(fires) < limit:
            nxt = self.next_after(at)
            if nxt is None or nxt > until_ts:
                break
            fires.append(nxt)
            at = nxt
        return fires


def parse(expression: object) -> CronSchedule:
    """Parse and check a timer expression. Raises ``InvalidParameter``
    (``InvalidParameterValue.TriggerDesc``) saying what is wrong: the shape, a field, a
    value out of range, or a schedule that never fires from now on."""
    if not isinstance(expression, str):
        raise InvalidParameter(f"the timer's cron expression must be text; {_USAGE}", code=_CODE)
    return _parse(" ".join(expression.split()), int(time.time()) // 86_400)


@functools.lru_cache(maxsize=4096)
def _parse(expression: str, day: int) -> CronSchedule:
    # ``day`` keys the cache so "never fires again" is decided afresh each day.
    fields = expression.split(" ") if expression else []
    layout = _LAYOUTS.get(len(fields))
    if layout is None:
        raise InvalidParameter(
            f"cron expression {expression!r} has {len(fields)} fields; {_USAGE}", code=_CODE
        )
    for kind, text in zip(layout, fields, strict=True):
        _check_field(expression, kind, text)
    try:
        it = croniter(
            expression.lower(),
            0.0,
            second_at_beginning=len(fields) > 5,
            max_years_between_matches=SEARCH_YEARS,
        )
    except (CroniterError, ValueError) as exc:
        raise InvalidParameter(
            f"cron expression {expression!r} is invalid ({_reason(exc)}); {_USAGE}", code=_CODE
        ) from None
    schedule = CronSchedule(expression, len(fields), it)
    if schedule.next_after(time.time()) is None:
        raise InvalidParameter(
            f"cron expression {expression!r} never fires from now on (a day that does not "
            "exist, or years that are over)",
            code=_CODE,
        )
    return schedule


def _check_field(expression: str, kind: str, text: str) -> None:
    """Only SCF's syntax: croniter also knows L, W, #, H and R, which SCF does not."""
    names = _NAMES[kind]
    for item in text.split(","):
        match = _ITEM.match(item)
        if match is None or (item.startswith("?") and kind not in ("day", "week")):
            raise InvalidParameter(
                f"cron expression {expression!r}: the {kind} field {text!r} is not valid; {_USAGE}",
                code=_CODE,
            )
        for value in (match.group(1), match.group(2)):
            if value is None or value.isdigit():
                continue
            if value.upper() not in names:
                allowed = f"numbers or {', '.join(names)}" if names else "numbers"
                raise InvalidParameter(
                    f"cron expression {expression!r}: {value!r} in the {kind} field is not "
                    f"allowed; the {kind} field takes {allowed}",
                    code=_CODE,
                )


def _reason(exc: Exception) -> str:
    text = str(exc)
    if "out of range" in text:
        return (
            "a value is out of range: second and minute 0-59, hour 0-23, day 1-31, "
            "month 1-12, week 0-6, year 1970-2099"
        )
    return text


def fire_time_text(fire_ts: float) -> str:
    """A fire time as the timer event carries it: ``2024-01-01T00:00:00Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(fire_ts))


def timer_event(trigger_name: str, fire_ts: float, message: str) -> bytes:
    """SCF's timer event: ``{"Type": "Timer", "TriggerName", "Time", "Message"}``."""
    return orjson.dumps(
        {
            "Type": "Timer",
            "TriggerName": trigger_name,
            "Time": fire_time_text(fire_ts),
            "Message": message,
        }
    )


def idempotency_key(trigger_name: str, fire_ts: float) -> str:
    """The key of one fire of one timer: every node that fires it admits one invocation.
    At most 6 + 100 + 1 + 11 characters (the admission limit is 128)."""
    return f"timer:{trigger_name}@{int(fire_ts)}"
