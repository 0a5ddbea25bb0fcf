"""The timer kind: parsing SCF cron expressions, fire times, the event and its key."""

from __future__ import annotations

import calendar
import json

import pytest

from cumulo.errors import InvalidParameter
from cumulo.triggers import timer

#: 2024-01-01 00:00:00 UTC, a Monday.
JAN_1 = float(calendar.timegm((2024, 1, 1, 0, 0, 0)))


def utc(*fields: int) -> float:
    return float(calendar.timegm((*fields, 0, 0, 0)[:6]))


def fires(expression: str, after: float, count: int) -> list[float]:
    schedule = timer.parse(expression)
    out: list[float] = []
    at = after
    for _ in range(count):
        nxt = schedule.next_after(at)
        assert nxt is not None
        out.append(nxt)
        at = nxt
    return out


def test_seven_fields_are_second_minute_hour_day_month_week_year() -> None:
    assert fires("0 */5 * * * * *", JAN_1, 3) == [JAN_1 + 300, JAN_1 + 600, JAN_1 + 900]
    assert fires("30 15 10 * * * *", JAN_1, 2) == [
        utc(2024, 1, 1, 10, 15, 30),
        utc(2024, 1, 2, 10, 15, 30),
    ]
    assert fires("0 0 0 1 JAN-MAR * 2030", JAN_1, 2) == [utc(2030, 1, 1), utc(2030, 2, 1)]


def test_six_fields_have_seconds_first() -> None:
    assert fires("*/10 * * * * *", JAN_1, 3) == [JAN_1 + 10, JAN_1 + 20, JAN_1 + 30]
    assert fires("* * * * * *", JAN_1 + 0.4, 2) == [JAN_1 + 1, JAN_1 + 2]


def test_five_fields_are_classic_cron_at_second_zero() -> None:
    assert fires("*/5 * * * *", JAN_1, 2) == [JAN_1 + 300, JAN_1 + 600]
    assert fires("0 12 * * MON", JAN_1, 2) == [utc(2024, 1, 1, 12), utc(2024, 1, 8, 12)]


def test_week_names_and_question_mark() -> None:
    # Week 0 is Sunday; "?" means any day.
    assert fires("0 0 9 ? * SUN *", JAN_1, 1) == [utc(2024, 1, 7, 9)]
    assert fires("0 0 9 ? * 0 *", JAN_1, 1) == [utc(2024, 1, 7, 9)]
    assert fires("0 0 9 * * mon-wed *", JAN_1 + 86_400 * 2, 2) == [
        utc(2024, 1, 3, 9),
        utc(2024, 1, 8, 9),
    ]


def test_day_and_week_both_restricted_fire_on_either() -> None:
    # The 15th, or any Friday (Jan 5 2024 is a Friday).
    assert fires("0 0 0 15 * FRI *", JAN_1, 3) == [
        utc(2024, 1, 5),
        utc(2024, 1, 12),
        utc(2024, 1, 15),
    ]


def test_whitespace_is_normalised() -> None:
    assert timer.parse("  0  */5 * * * *  * ").expression == "0 */5 * * * * *"


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("", "0 fields"),
        ("* * * *", "4 fields"),
        ("* * * * * * * *", "8 fields"),
        ("60 * * * * * *", "out of range"),
        ("0 0 24 * * * *", "out of range"),
        ("0 0 0 32 * * *", "out of range"),
        ("0 0 0 * 13 * *", "out of range"),
        ("0 0 0 1 1 * 2100", "out of range"),
        ("0 0 0 L * * *", "day field"),
        ("0 0 0 * * 1#2 *", "week field"),
        ("H * * * *", "minute field"),
        ("@hourly", "1 fields"),
        ("0 0 ? * * * *", "hour field"),
        ("0 0 0 * FOO * *", "'FOO' in the month field"),
        ("0 0 0 * * JAN *", "'JAN' in the week field"),
        ("0 0 12 30 2 * *", "never fires"),
        ("0 0 0 1 1 * 2020", "never fires"),
    ],
)
def test_bad_expressions_are_refused_with_a_reason(expression: str, says: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        timer.parse(expression)
    assert info.value.code == "InvalidParameterValue.TriggerDesc"
    assert says in info.value.message
    assert expression.strip() in info.value.message or not expression.strip()


def test_not_text_is_refused() -> None:
    with pytest.raises(InvalidParameter) as info:
        timer.parse(5)
    assert info.value.code == "InvalidParameterValue.TriggerDesc"


def test_fires_between_is_open_left_closed_right_and_limited() -> None:
    schedule = timer.parse("* * * * * * *")
    assert schedule.fires_between(JAN_1, JAN_1 + 3) == [JAN_1 + 1, JAN_1 + 2, JAN_1 + 3]
    assert schedule.fires_between(JAN_1 + 0.5, JAN_1 + 2.5) == [JAN_1 + 1, JAN_1 + 2]
    assert schedule.fires_between(JAN_1, JAN_1 + 100, limit=2) == [JAN_1 + 1, JAN_1 + 2]
    assert schedule.fires_between(JAN_1, JAN_1 + 0.9) == []
    assert timer.parse("0 0 0 1 1 * *").fires_between(JAN_1, JAN_1 + 86_400) == []


def test_a_schedule_whose_years_end_stops() -> None:
    schedule = timer.parse("0 0 0 1 1 * 2030-2031")
    assert schedule.next_after(utc(2031, 1, 1)) is None
    assert schedule.fires_between(utc(2029, 6, 1), utc(2040, 1, 1)) == [
        utc(2030, 1, 1),
        utc(2031, 1, 1),
    ]


def test_timer_event_has_scf_shape() -> None:
    event = json.loads(timer.timer_event("nightly", JAN_1 + 61.7, '{"k": 1}'))
    assert event == {
        "Type": "Timer",
        "TriggerName": "nightly",
        "Time": "2024-01-01T00:01:01Z",
        "Message": '{"k": 1}',
    }


def test_idempotency_key_names_the_trigger_and_the_fire_time() -> None:
    key = timer.idempotency_key("nightly", JAN_1)
    assert key == f"timer:nightly@{int(JAN_1)}"
    assert key != timer.idempotency_key("nightly", JAN_1 + 1)
    assert key != timer.idempotency_key("nightly2", JAN_1)
    assert len(timer.idempotency_key("n" * 100, 4_102_444_800)) <= 128
