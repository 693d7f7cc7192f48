"""SimClock, the Rome calendar helpers, and settings validation."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from massiva.simulator import SimClock, SimulatorSettings
from massiva.simulator.clock import (
    add_years,
    rfc2822,
    rome_day,
    seconds_until_next_day,
    seconds_until_next_month,
)

START = datetime(2024, 1, 15, 9, 0, tzinfo=UTC)
ROME = ZoneInfo("Europe/Rome")


def test_frozen_clock_moves_only_by_hand() -> None:
    clock = SimClock(START, speed=0)
    time.sleep(0.01)
    assert clock.now() == START
    clock.advance(90)
    assert clock.now() == START + timedelta(seconds=90)
    clock.set(datetime(2024, 6, 1, 12, 0, tzinfo=UTC))
    assert clock.now() == datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
    assert clock.now().tzinfo is UTC


def test_running_clock_follows_its_speed() -> None:
    clock = SimClock(START, speed=1000)
    time.sleep(0.02)
    assert clock.now() - START >= timedelta(seconds=20)
    assert SimClock().now() - datetime.now(UTC) < timedelta(seconds=1)


def test_clock_refuses_naive_datetimes_and_bad_speeds() -> None:
    with pytest.raises(ValueError, match="naive"):
        SimClock(datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="naive"):
        SimClock(START).set(datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="speed"):
        SimClock(START, speed=-1)


def test_rome_dates() -> None:
    assert rfc2822(datetime(2020, 8, 26, 8, 0, 35, tzinfo=UTC)) == "Wed, 26 Aug 2020 10:00:35 +0200"
    assert rfc2822(START) == "Mon, 15 Jan 2024 10:00:00 +0100"
    assert rome_day(datetime(2024, 1, 15, 23, 30, tzinfo=UTC)).isoformat() == "2024-01-16"
    assert add_years(datetime(2024, 2, 29, tzinfo=UTC), 1) == datetime(2025, 2, 28, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "years", "expected"),
    [
        # Rome is UTC+1 on 28/03/2026 (summer time starts the next night) but UTC+2 at
        # that hour on 28/03/2027: a year on the UTC calendar would be 29/03 in Rome.
        ((2026, 3, 28, 23, 30), 1, (2027, 3, 28, 23, 30)),
        # 00:30 Rome on 29/02/2028 is 23:30 UTC on the 28th: a year on the UTC calendar
        # would be 01/03/2029 in Rome.
        ((2028, 2, 29, 0, 30), 1, (2029, 2, 28, 0, 30)),
        ((2028, 2, 29, 0, 30), 4, (2032, 2, 29, 0, 30)),
        ((2026, 10, 25, 2, 30), 2, (2028, 10, 25, 2, 30)),  # the night clocks go back
    ],
)
def test_years_are_added_on_the_rome_calendar(
    start: tuple[int, ...], years: int, expected: tuple[int, ...]
) -> None:
    moved = add_years(datetime(*start, tzinfo=ROME).astimezone(UTC), years)
    assert moved.tzinfo is UTC
    assert moved.astimezone(ROME).timetuple()[:5] == expected


def test_windows_renew_at_rome_midnight_across_dst() -> None:
    # 23:00 Rome on the night clocks go forward (31 March 2024): midnight is 1 h away.
    assert seconds_until_next_day(datetime(2024, 3, 30, 22, 0, tzinfo=UTC)) == 3600
    # 00:00 Rome on 27 October 2024, when clocks go back: that day is 25 h long.
    assert seconds_until_next_day(datetime(2024, 10, 26, 22, 0, tzinfo=UTC)) == 25 * 3600
    assert seconds_until_next_month(datetime(2024, 12, 31, 22, 30, tzinfo=UTC)) == 30 * 60


@pytest.mark.parametrize(
    "bad",
    [
        {"inbox_order": "random"},
        {"send_status_fields": "both"},
        {"send_rate": 0},
        {"send_rate_tolerance": 1},
        {"daily_limit": 0},
        {"allowance_status": 200},
        {"inbox_page_size": 0},
        {"activation_delay": -1},
    ],
)
def test_settings_refuse_out_of_range_values(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"."):
        SimulatorSettings(**bad)  # type: ignore[arg-type]
