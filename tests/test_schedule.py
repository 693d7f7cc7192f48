"""Campaign schedules (issue #20): a start, a deadline, and a weekly window in Europe/Rome
time that follows daylight saving time."""

from __future__ import annotations

import itertools
import textwrap
import tomllib
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

import pytest

from massiva import schedule as schedule_module
from massiva.schedule import ALWAYS, Schedule, parse_schedule, rome_instant
from massiva.times import ROME

WHERE = "campaigns/avvisi/campaign.toml"
MICRO = timedelta(microseconds=1)
# 2026: clocks go forward on Sunday 29 March, back on Sunday 25 October.
SPRING = date(2026, 3, 29)
AUTUMN = date(2026, 10, 25)


def rome(
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    second: int = 0,
    micro: int = 0,
    *,
    fold: int = 0,
) -> datetime:
    """A Rome wall-clock moment (as an aware datetime)."""
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=ROME, fold=fold)


def parsed(text: str) -> Schedule:
    """The schedule a ``[schedule]`` table in TOML gives; it must have no problems."""
    table = tomllib.loads(textwrap.dedent(text))
    found, problems = parse_schedule(table, WHERE)
    assert problems == []
    return found


def problems(table: dict[str, Any]) -> list[str]:
    found, listed = parse_schedule(table, WHERE)
    assert found == ALWAYS
    return listed


OFFICE = parsed(
    """
    not_before = 2026-12-07T09:00:00+01:00
    not_after = 2026-12-20T18:00:00+01:00
    days = ["mon", "tue", "wed", "thu", "fri"]
    hours = "09:00-18:00"
    """
)


# --- campaign.toml ---------------------------------------------------------------------


def test_the_example_in_the_module_docs_parses() -> None:
    doc = schedule_module.__doc__
    assert doc
    block = doc.split("``campaign.toml``::\n\n", 1)[1].split("\n\n", 1)[0]
    table = tomllib.loads(textwrap.dedent(block))
    found, listed = parse_schedule(table["schedule"], WHERE)
    assert listed == []
    assert found.describe() == (
        "Mon-Fri 09:00-18:00 Europe/Rome, from 07/12/2026 09:00 +01:00, "
        "until 20/12/2026 24:00 +01:00"
    )


def test_a_full_schedule_reads_as_written() -> None:
    assert (
        Schedule(
            not_before=datetime(2026, 12, 7, 8, tzinfo=UTC),
            not_after=datetime(2026, 12, 20, 17, tzinfo=UTC),
            days=frozenset({0, 1, 2, 3, 4}),
            hours=(time(9), time(18)),
        )
        == OFFICE
    )
    assert OFFICE.describe() == (
        "Mon-Fri 09:00-18:00 Europe/Rome, from 07/12/2026 09:00 +01:00, "
        "until 20/12/2026 18:00 +01:00"
    )
    assert OFFICE.describe("it") == (
        "lun-ven 09:00-18:00 Europe/Rome, dal 07/12/2026 09:00 +01:00, "
        "entro il 20/12/2026 18:00 +01:00"
    )


def test_an_empty_table_is_always() -> None:
    assert parse_schedule({}, WHERE) == (ALWAYS, [])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # TOML offset date-time, local date-time (Rome), date, and the same in quotes.
        ("2026-07-01T09:00:00+01:00", datetime(2026, 7, 1, 8, tzinfo=UTC)),
        ("2026-07-01T09:00:00", datetime(2026, 7, 1, 7, tzinfo=UTC)),  # CEST
        ("2026-01-15T09:00:00", datetime(2026, 1, 15, 8, tzinfo=UTC)),  # CET
        ("2026-07-01", datetime(2026, 6, 30, 22, tzinfo=UTC)),
        ('"2026-07-01T09:00:00Z"', datetime(2026, 7, 1, 9, tzinfo=UTC)),
        ('"2026-07-01 09:00"', datetime(2026, 7, 1, 7, tzinfo=UTC)),
        ('"2026-07-01T09:00+02:00"', datetime(2026, 7, 1, 7, tzinfo=UTC)),
        ('" 2026-07-01 "', datetime(2026, 6, 30, 22, tzinfo=UTC)),
        # A local time in the skipped hour is the first real instant after it, 03:00 CEST.
        ("2026-03-29T02:30:00", datetime(2026, 3, 29, 1, tzinfo=UTC)),
        # One in the repeated hour is its first occurrence, in CEST.
        ("2026-10-25T02:30:00", datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
    ],
)
def test_not_before_forms(value: str, expected: datetime) -> None:
    assert parsed(f"not_before = {value}").not_before == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # A bare date is the whole day: the deadline is Rome's next midnight.
        ("2026-12-20", datetime(2026, 12, 20, 23, tzinfo=UTC)),
        ('"2026-12-20"', datetime(2026, 12, 20, 23, tzinfo=UTC)),
        ("2026-07-31", datetime(2026, 7, 31, 22, tzinfo=UTC)),
        ("2026-12-20T18:00:00", datetime(2026, 12, 20, 17, tzinfo=UTC)),
        ('"2026-12-20T18:00:00+01:00"', datetime(2026, 12, 20, 17, tzinfo=UTC)),
    ],
)
def test_not_after_forms(value: str, expected: datetime) -> None:
    assert parsed(f"not_after = {value}").not_after == expected


def test_a_whole_day_deadline_allows_the_last_moment_of_the_day_and_no_more() -> None:
    found = parsed("not_after = 2026-12-20")
    assert found.is_open(rome(2026, 12, 20, 23, 59, 59, 999999))
    assert not found.is_open(rome(2026, 12, 21))
    assert found.describe("it") == "entro il 20/12/2026 24:00 +01:00"


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        ('["mon", "tue", "wed", "thu", "fri"]', {0, 1, 2, 3, 4}),
        ('["mon-fri"]', {0, 1, 2, 3, 4}),
        ('"lun-ven"', {0, 1, 2, 3, 4}),
        ('["LUN", "Mer", " ven "]', {0, 2, 4}),
        ('["sat", "dom"]', {5, 6}),
        ('["mar", "gio"]', {1, 3}),  # Italian: martedì, giovedì
        ('["sat-mon"]', {5, 6, 0}),  # wraps over Sunday
        ('["mon-wed", "tue-thu"]', {0, 1, 2, 3}),
        ('["fri-fri"]', {4}),
    ],
)
def test_days(days: str, expected: set[int]) -> None:
    assert parsed(f"days = {days}").days == frozenset(expected)


@pytest.mark.parametrize(
    ("hours", "expected"),
    [
        ("09:00-18:00", (time(9), time(18))),
        ("9:00 - 18:30", (time(9), time(18, 30))),
        ("18:00-24:00", (time(18), time(0))),
        ("00:00-24:00", None),
    ],
)
def test_hours(hours: str, expected: tuple[time, time] | None) -> None:
    assert parsed(f'hours = "{hours}"').hours == expected


def test_24_00_ends_the_day() -> None:
    evening = parsed('hours = "18:00-24:00"')
    assert evening.describe() == "every day 18:00-24:00 Europe/Rome"
    assert evening.is_open(rome(2026, 5, 4, 23, 59, 59))
    assert not evening.is_open(rome(2026, 5, 5, 0, 0))
    assert evening.closes_at(rome(2026, 5, 4, 20)) == rome(2026, 5, 5, 0, 0)


HOW_MOMENT = (
    "write e.g. {key} = {example} (without an offset: Europe/Rome time), or a date, {key} = {day}"
)
HOW_BEFORE = HOW_MOMENT.format(
    key="not_before", example="2026-12-07T09:00:00+01:00", day="2026-12-07"
)
HOW_AFTER = HOW_MOMENT.format(
    key="not_after", example="2026-12-20T18:00:00+01:00", day="2026-12-20"
)
HOW_DAYS = (
    'write e.g. days = ["mon-fri"] (mon tue wed thu fri sat sun, or lun mar mer gio ven sab '
    "dom; ranges with -)"
)
HOW_HOURS = 'write e.g. hours = "09:00-18:00" (Rome time, HH:MM-HH:MM; "24:00" ends the day)'


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ({"dayz": ["mon"]}, "schedule.dayz: unknown key; did you mean days?"),
        ({"notbefore": "2026-12-07"}, "schedule.notbefore: unknown key; did you mean not_before?"),
        (
            {"window": "x"},
            "schedule.window: unknown key; the known keys: not_before, not_after, days, hours",
        ),
        (
            {"not_before": "next monday"},
            f'schedule.not_before: "next monday" is not an ISO 8601 date-time; {HOW_BEFORE}',
        ),
        (
            {"not_after": "20/12/2026"},
            'schedule.not_after: "20/12/2026" is not an ISO 8601 date-time; '
            "write not_after = 2026-12-20",
        ),
        (
            {"not_before": "7/12/2026 9.00"},
            'schedule.not_before: "7/12/2026 9.00" is not an ISO 8601 date-time; '
            "write not_before = 2026-12-07T09:00:00",
        ),
        (
            {"not_after": "31/02/2026"},
            f'schedule.not_after: "31/02/2026" is not an ISO 8601 date-time; {HOW_AFTER}',
        ),
        (
            {"not_after": 20261220},
            f"schedule.not_after: 20261220 is a number, not a date-time; {HOW_AFTER}",
        ),
        (
            {"not_before": time(9)},
            'schedule.not_before: "09:00:00" is a time of day with no date, not a date-time; '
            f"{HOW_BEFORE}",
        ),
        (
            {"not_before": "2026-12-07T10:00:00+01:00", "not_after": "2026-12-07T10:00:00+01:00"},
            "schedule.not_after: 07/12/2026 10:00 +01:00 is not later than not_before "
            "(07/12/2026 10:00 +01:00); set a deadline after the start",
        ),
        (
            {"not_before": date(2026, 12, 21), "not_after": date(2026, 12, 20)},
            "schedule.not_after: 20/12/2026 24:00 +01:00 is not later than not_before "
            "(21/12/2026 00:00 +01:00); set a deadline after the start",
        ),
        (
            {"days": []},
            "schedule.days: empty, so nothing would ever be sent; list the days, e.g. days = "
            '["mon-fri"], or remove the key to send on any day',
        ),
        (
            {"days": {"mon": True}},
            f'schedule.days: {{"mon": true}} is a table, not a list; {HOW_DAYS}',
        ),
        (
            {"days": date(2026, 12, 7)},
            f'schedule.days: "2026-12-07" is a date, not a list; {HOW_DAYS}',
        ),
        ({"days": ["monday"]}, 'schedule.days: "monday" is not a day; write "mon"'),
        (
            {"days": ["Lunedì-Venerdì"]},
            'schedule.days: "Lunedì-Venerdì" is not a day; write "lun-ven"',
        ),
        ({"days": ["weekdays"]}, f'schedule.days: "weekdays" is not a day; {HOW_DAYS}'),
        ({"days": ["mon-"]}, f'schedule.days: "mon-" is not a day; {HOW_DAYS}'),
        ({"days": [1]}, f"schedule.days: 1 is not a day; {HOW_DAYS}"),
        ({"hours": "9-18"}, f'schedule.hours: "9-18" is not HH:MM-HH:MM; {HOW_HOURS}'),
        (
            {"hours": "09.00-18.00"},
            f'schedule.hours: "09.00-18.00" is not HH:MM-HH:MM; {HOW_HOURS}',
        ),
        (
            {"hours": "09:00-24:30"},
            f'schedule.hours: "09:00-24:30" is not a time of day (00:00 to 24:00); {HOW_HOURS}',
        ),
        (
            {"hours": "24:00-24:00"},
            f'schedule.hours: "24:00-24:00" is not a time of day (00:00 to 24:00); {HOW_HOURS}',
        ),
        ({"hours": "09:00-09:00"}, f'schedule.hours: "09:00-09:00" is empty; {HOW_HOURS}'),
        (
            {"hours": "22:00-06:00"},
            'schedule.hours: "22:00-06:00" ends before it starts; an overnight window is not '
            "supported: the end must be later than the start in the same day, e.g. "
            '"00:00-06:00" or "22:00-24:00"',
        ),
        (
            {"hours": ["09:00", "18:00"]},
            f'schedule.hours: ["09:00", "18:00"] is a list, not text; {HOW_HOURS}',
        ),
        (
            # Monday 7 to Wednesday 9 December: no Saturday in between.
            {"not_before": date(2026, 12, 7), "not_after": date(2026, 12, 9), "days": ["sat"]},
            "schedule.days: Sat all day Europe/Rome never opens between not_before "
            "(07/12/2026 00:00 +01:00) and not_after (09/12/2026 24:00 +01:00), so nothing "
            "would be sent; add days, or move not_before or not_after",
        ),
        (
            {
                "not_before": "2026-12-07T10:00:00",
                "not_after": "2026-12-07T12:00:00",
                "days": "mon-fri",
                "hours": "13:00-17:00",
            },
            "schedule.hours: Mon-Fri 13:00-17:00 Europe/Rome never opens between not_before "
            "(07/12/2026 10:00 +01:00) and not_after (07/12/2026 12:00 +01:00), so nothing "
            "would be sent; widen hours, or move not_before or not_after",
        ),
    ],
)
def test_bad_input_is_refused_with_what_and_how(table: dict[str, Any], expected: str) -> None:
    assert problems(table) == [f"{WHERE}, {expected}"]


def test_every_problem_is_listed_at_once() -> None:
    assert problems(
        {"not_before": "domani", "days": ["mon", "funday"], "hours": "8-17", "until": "x"}
    ) == [
        f"{WHERE}, schedule.until: unknown key; the known keys: not_before, not_after, days, hours",
        f'{WHERE}, schedule.not_before: "domani" is not an ISO 8601 date-time; {HOW_BEFORE}',
        f'{WHERE}, schedule.days: "funday" is not a day; {HOW_DAYS}',
        f'{WHERE}, schedule.hours: "8-17" is not HH:MM-HH:MM; {HOW_HOURS}',
    ]


def test_a_window_that_opens_only_just_before_the_deadline_is_accepted() -> None:
    # Monday 7 December to Saturday 12 December, 00:30: Saturday opens for half an hour.
    found = parsed(
        """
        not_before = 2026-12-07
        not_after = 2026-12-12T00:30:00
        days = ["sat"]
        """
    )
    assert found.next_open(rome(2026, 12, 7)) == rome(2026, 12, 12)
    assert found.closes_at(rome(2026, 12, 12, 0, 10)) == rome(2026, 12, 12, 0, 30)


# --- the schedule's answers --------------------------------------------------------------


@pytest.mark.parametrize("method", ["is_open", "next_open", "closes_at", "past_deadline"])
def test_naive_moments_are_refused(method: str) -> None:
    with pytest.raises(ValueError, match="refusing a naive datetime: its zone is unknown"):
        getattr(OFFICE, method)(datetime(2026, 12, 9, 10))


def test_naive_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="refusing a naive datetime"):
        Schedule(not_before=datetime(2026, 12, 7, 9))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"days": frozenset()}, "days must be some of 0"),
        ({"days": frozenset({7})}, "days must be some of 0"),
        ({"hours": (time(18), time(9))}, "hours must end after they start"),
        ({"hours": (time(0), time(0))}, "all day is hours=None"),
        ({"hours": (time(9, 0, 30), time(18))}, "whole minutes"),
        (
            {
                "not_before": datetime(2026, 12, 7, tzinfo=UTC),
                "not_after": datetime(2026, 12, 7, tzinfo=UTC),
            },
            "not_after must be later than not_before",
        ),
    ],
)
def test_impossible_schedules_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Schedule(**fields)


def test_bounds_are_kept_in_utc() -> None:
    found = Schedule(not_before=rome(2026, 12, 7, 9))
    assert found.not_before is not None
    assert found.not_before.tzinfo is UTC
    assert found == Schedule(not_before=datetime(2026, 12, 7, 8, tzinfo=UTC))


def test_the_window_includes_its_start_and_not_its_end() -> None:
    wednesday = (2026, 12, 9)
    assert not OFFICE.is_open(rome(*wednesday, 8, 59, 59, 999999))
    assert OFFICE.is_open(rome(*wednesday, 9))
    assert OFFICE.is_open(rome(*wednesday, 17, 59, 59, 999999))
    assert not OFFICE.is_open(rome(*wednesday, 18))
    assert OFFICE.next_open(rome(*wednesday, 9)) == rome(*wednesday, 9)
    assert OFFICE.next_open(rome(*wednesday, 18)) == rome(2026, 12, 10, 9)


def test_a_moment_in_any_zone_is_the_same_moment() -> None:
    new_york = timezone(timedelta(hours=-5))
    assert OFFICE.is_open(datetime(2026, 12, 9, 3, 0, tzinfo=new_york))  # 09:00 in Rome
    assert not OFFICE.is_open(datetime(2026, 12, 9, 2, 59, tzinfo=new_york))
    assert OFFICE.next_open(datetime(2026, 12, 8, 22, 0, tzinfo=new_york)) == rome(2026, 12, 9, 9)
    # next_open and closes_at answer in UTC.
    opens = OFFICE.next_open(datetime(2026, 12, 9, 4, 0, tzinfo=new_york))
    assert opens is not None
    assert opens.tzinfo is UTC
    assert opens == datetime(2026, 12, 9, 9, 0, tzinfo=UTC)
    closes = OFFICE.closes_at(opens)
    assert closes is not None
    assert closes.tzinfo is UTC


def test_not_before_is_included_and_not_after_is_not() -> None:
    assert not OFFICE.is_open(rome(2026, 12, 7, 8, 59, 59))
    assert OFFICE.is_open(rome(2026, 12, 7, 9))
    assert OFFICE.is_open(rome(2026, 12, 18, 17, 59, 59))  # Friday, the last window
    ends = Schedule(not_after=rome(2026, 12, 18, 12), hours=(time(9), time(18)))
    assert ends.is_open(rome(2026, 12, 18, 11, 59, 59, 999999))
    assert not ends.is_open(rome(2026, 12, 18, 12))
    assert not ends.past_deadline(rome(2026, 12, 18, 11, 59, 59, 999999))
    assert ends.past_deadline(rome(2026, 12, 18, 12))
    assert not ALWAYS.past_deadline(rome(2099, 1, 1))


def test_next_open_across_the_weekend() -> None:
    assert OFFICE.next_open(rome(2026, 12, 11, 18)) == rome(2026, 12, 14, 9)  # Fri -> Mon
    assert OFFICE.next_open(rome(2026, 12, 12, 11)) == rome(2026, 12, 14, 9)  # Sat -> Mon
    assert OFFICE.next_open(rome(2026, 12, 13, 23, 59)) == rome(2026, 12, 14, 9)  # Sun
    assert OFFICE.next_open(rome(2026, 12, 14, 3)) == rome(2026, 12, 14, 9)  # Mon night


def test_next_open_before_not_before_is_the_later_of_the_two() -> None:
    # not_before is Monday 7 December at 09:00, just when the window opens.
    assert OFFICE.next_open(rome(2026, 11, 1)) == rome(2026, 12, 7, 9)
    late_start = Schedule(
        not_before=rome(2026, 12, 7, 10, 30), days=OFFICE.days, hours=OFFICE.hours
    )
    assert late_start.next_open(rome(2026, 12, 1)) == rome(2026, 12, 7, 10, 30)
    weekend_start = Schedule(not_before=rome(2026, 12, 5, 12), days=OFFICE.days, hours=OFFICE.hours)
    assert weekend_start.next_open(rome(2026, 12, 1)) == rome(2026, 12, 7, 9)
    evening_start = Schedule(not_before=rome(2026, 12, 7, 20), days=OFFICE.days, hours=OFFICE.hours)
    assert evening_start.next_open(rome(2026, 12, 7, 9)) == rome(2026, 12, 8, 9)


def test_next_open_is_none_once_nothing_can_leave_before_the_deadline() -> None:
    # The deadline is Friday 18 December at 12:00 (a short last day).
    ends = Schedule(not_after=rome(2026, 12, 18, 12), days=OFFICE.days, hours=OFFICE.hours)
    assert ends.next_open(rome(2026, 12, 17, 18)) == rome(2026, 12, 18, 9)
    assert ends.next_open(rome(2026, 12, 18, 11, 59)) == rome(2026, 12, 18, 11, 59)
    assert ends.next_open(rome(2026, 12, 18, 12)) is None
    assert ends.next_open(rome(2027, 6, 1)) is None
    # The deadline falls on a weekend: after Friday's window nothing opens before it.
    assert OFFICE.next_open(rome(2026, 12, 18, 18)) is None
    # The deadline is before the next window opens on the same day.
    early = Schedule(not_after=rome(2026, 12, 9, 8), hours=(time(9), time(18)))
    assert early.next_open(rome(2026, 12, 8, 19)) is None


def test_closes_at() -> None:
    assert OFFICE.closes_at(rome(2026, 12, 9, 10)) == rome(2026, 12, 9, 18)
    short_last_day = Schedule(not_after=rome(2026, 12, 18, 12), hours=(time(9), time(18)))
    assert short_last_day.closes_at(rome(2026, 12, 18, 10)) == rome(2026, 12, 18, 12)
    assert ALWAYS.closes_at(rome(2026, 12, 18, 10)) is None
    assert Schedule(not_after=rome(2027, 1, 1)).closes_at(rome(2026, 12, 18)) == rome(2027, 1, 1)
    # Whole days in a row are one stretch: Monday to Friday closes on Saturday.
    weekdays = Schedule(days=frozenset(range(5)))
    assert weekdays.closes_at(rome(2026, 12, 9, 10)) == rome(2026, 12, 12)
    weekend = Schedule(days=frozenset({5, 6, 0}))  # Sat-Mon
    assert weekend.closes_at(rome(2026, 12, 12, 10)) == rome(2026, 12, 15)
    with pytest.raises(ValueError, match="the schedule is closed at 2026-12-12T10:00:00"):
        OFFICE.closes_at(rome(2026, 12, 12, 11))


# --- daylight saving time ----------------------------------------------------------------


def real_length(found: Schedule, day: date) -> timedelta:
    """How long, in real time, the first open stretch of ``day`` lasts."""
    opens = found.next_open(rome(day.year, day.month, day.day))
    assert opens is not None
    assert opens.astimezone(ROME).date() == day
    closes = found.closes_at(opens)
    assert closes is not None
    return closes - opens


@pytest.mark.parametrize(
    ("hours", "days", "spring", "autumn"),
    [
        # Office hours do not span the change (02:00/03:00): 9 real hours either way.
        ("09:00-18:00", None, 9, 9),
        # A window over the change is an hour shorter in March, an hour longer in October.
        ("00:00-06:00", None, 5, 7),
        ("01:00-04:00", None, 2, 4),
        # A whole Sunday is 23 or 25 hours.
        (None, frozenset({6}), 23, 25),
    ],
)
def test_a_window_over_the_clock_change_lasts_the_real_hours(
    hours: str | None, days: frozenset[int] | None, spring: int, autumn: int
) -> None:
    found = Schedule(
        days=days or frozenset(range(7)),
        hours=None if hours is None else parsed(f'hours = "{hours}"').hours,
    )
    assert real_length(found, SPRING) == timedelta(hours=spring)
    assert real_length(found, AUTUMN) == timedelta(hours=autumn)
    assert real_length(found, SPRING + timedelta(days=7)) == real_length(
        found, AUTUMN + timedelta(days=7)
    )


def test_a_start_in_the_skipped_hour_opens_when_the_clocks_jump() -> None:
    found = parsed('hours = "02:30-04:00"')
    # On 29 March 02:00 CET is followed by 03:00 CEST: 02:30 never happens.
    assert found.next_open(rome(2026, 3, 29)) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert found.next_open(rome(2026, 3, 29)) == rome(2026, 3, 29, 3, 0)
    assert not found.is_open(rome(2026, 3, 29, 1, 59, 59))
    assert found.is_open(rome(2026, 3, 29, 3, 0))
    assert real_length(found, SPRING) == timedelta(hours=1)
    assert real_length(found, SPRING + timedelta(days=1)) == timedelta(hours=1, minutes=30)


def test_an_end_in_the_skipped_hour_closes_when_the_clocks_jump() -> None:
    found = parsed('hours = "01:00-02:30"')
    assert found.closes_at(rome(2026, 3, 29, 1, 30)) == rome(2026, 3, 29, 3, 0)
    assert not found.is_open(rome(2026, 3, 29, 3, 0))
    assert real_length(found, SPRING) == timedelta(hours=1)


def test_the_repeated_hour_counts_once_its_first_time() -> None:
    # On 25 October 02:00-03:00 happens twice: in CEST, then in CET.
    found = parsed('hours = "02:30-04:00"')
    opens = found.next_open(rome(2026, 10, 25))
    # (An aware datetime in a repeated hour never equals one in another zone: compare in
    # Rome time.)
    assert opens is not None
    assert opens.astimezone(ROME) == rome(2026, 10, 25, 2, 30, fold=0)
    assert found.next_open(rome(2026, 10, 25)) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert real_length(found, AUTUMN) == timedelta(hours=2, minutes=30)
    early = parsed('hours = "01:00-02:30"')
    assert early.is_open(rome(2026, 10, 25, 2, 29, fold=0))
    assert not early.is_open(rome(2026, 10, 25, 2, 30, fold=0))
    assert not early.is_open(rome(2026, 10, 25, 2, 15, fold=1))  # the second 02:15
    assert early.next_open(rome(2026, 10, 25, 2, 15, fold=1)) == rome(2026, 10, 26, 1)


def test_rome_instant_in_the_skipped_hour_is_exact() -> None:
    jump = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    for wall in (time(2, 0), time(2, 0, 0, 1), time(2, 30), time(2, 59, 59, 999999)):
        assert rome_instant(SPRING, wall) == jump
    assert rome_instant(SPRING, time(1, 59, 59)) == jump - timedelta(seconds=1)
    assert rome_instant(SPRING, time(3, 0)) == jump


SCHEDULES = {
    "office with bounds": Schedule(
        not_before=rome(2026, 1, 5, 10, 17),
        not_after=rome(2026, 12, 21),
        days=frozenset(range(5)),
        hours=(time(9), time(18)),
    ),
    "sunday over the change": Schedule(days=frozenset({6}), hours=(time(2, 30), time(4))),
    "every night over the change": Schedule(hours=(time(1), time(2, 30))),
    "weekends all day": Schedule(days=frozenset({5, 6})),
    "evenings to midnight": Schedule(days=frozenset({0, 2, 4, 6}), hours=(time(21), time(0))),
}


def instants() -> list[datetime]:
    """A year of moments, every 53 min 17 s, plus every minute around both changes."""
    start = datetime(2025, 12, 28, tzinfo=UTC)
    found = [start + i * timedelta(minutes=53, seconds=17) for i in range(10_000)]
    for change in (datetime(2026, 3, 29, 1, tzinfo=UTC), datetime(2026, 10, 25, 1, tzinfo=UTC)):
        found += [change + timedelta(minutes=m) for m in range(-240, 240)]
    return sorted(set(found))


@pytest.mark.parametrize("name", SCHEDULES)
def test_next_open_and_closes_at_agree_with_is_open_all_year(name: str) -> None:
    found = SCHEDULES[name]
    moments = instants()
    opened = 0
    for now, later in itertools.pairwise(moments):
        opens = found.next_open(now)
        if opens is None:
            # Never again means never again.
            assert not found.is_open(later)
            assert found.next_open(later) is None
            continue
        assert found.is_open(opens), (now, opens)
        assert (opens == now) == found.is_open(now), (now, opens)
        if opens > now:
            # An opening: closed the instant before, and nothing open was skipped.
            assert not found.is_open(opens - MICRO), (now, opens)
            assert not found.is_open(later) or opens <= later, (now, opens, later)
            assert opens - max(now, found.not_before or now) <= timedelta(days=8)
        else:
            opened += 1
            closes = found.closes_at(now)
            if closes is not None:
                assert closes > now
                assert found.is_open(closes - MICRO), (now, closes)
                assert not found.is_open(closes), (now, closes)
    assert opened > 100


# --- description and storage -------------------------------------------------------------


@pytest.mark.parametrize(
    ("found", "english", "italian"),
    [
        (ALWAYS, "any time", "in qualsiasi momento"),
        (
            Schedule(days=frozenset({0, 2, 3, 4}), hours=(time(8, 30), time(13))),
            "Mon, Wed-Fri 08:30-13:00 Europe/Rome",
            "lun, mer-ven 08:30-13:00 Europe/Rome",
        ),
        (
            Schedule(days=frozenset({5, 6})),
            "Sat-Sun all day Europe/Rome",
            "sab-dom tutto il giorno Europe/Rome",
        ),
        (
            Schedule(hours=(time(9), time(18))),
            "every day 09:00-18:00 Europe/Rome",
            "tutti i giorni 09:00-18:00 Europe/Rome",
        ),
        (
            Schedule(not_before=rome(2026, 7, 1, 9, 0, 30)),
            "from 01/07/2026 09:00:30 +02:00",
            "dal 01/07/2026 09:00:30 +02:00",
        ),
    ],
)
def test_describe(found: Schedule, english: str, italian: str) -> None:
    assert found.describe() == english
    assert found.describe("it") == italian


def test_describe_knows_two_languages() -> None:
    with pytest.raises(ValueError, match="no description in 'de'; ask for 'en' or 'it'"):
        OFFICE.describe("de")


def test_always_is_stored_as_an_empty_object() -> None:
    assert ALWAYS.to_json() == "{}"
    assert Schedule.from_json("{}") == ALWAYS


@pytest.mark.parametrize("found", [OFFICE, *SCHEDULES.values()])
def test_schedules_round_trip_through_json(found: Schedule) -> None:
    assert Schedule.from_json(found.to_json()) == found


def test_the_stored_form() -> None:
    assert OFFICE.to_json() == (
        '{"days":[0,1,2,3,4],"hours":"09:00-18:00",'
        '"not_after":"2026-12-20T17:00:00.000000+00:00",'
        '"not_before":"2026-12-07T08:00:00.000000+00:00"}'
    )


@pytest.mark.parametrize(
    "text",
    [
        "[]",
        '{"when": 1}',
        '{"days": []}',
        '{"days": 3}',
        '{"hours": "18:00-09:00"}',
        '{"not_before": "2026-12-07T08:00:00"}',  # naive
        '{"not_before": 5}',
    ],
)
def test_from_json_refuses_what_is_not_a_stored_schedule(text: str) -> None:
    with pytest.raises(ValueError, match="not a stored schedule"):
        Schedule.from_json(text)
