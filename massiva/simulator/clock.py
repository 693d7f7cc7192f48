"""The simulated clock and the Europe/Rome calendar arithmetic the vendor lives by."""

from __future__ import annotations

import email.utils
import math
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from massiva.times import ROME

#: Where the clock may be moved by hand: the years 2000 to 2100. Far enough from
#: datetime's limits that expiries years ahead, Rome offsets and month ends never
#: overflow: a clock past them would make every request fail (the simulator wedged).
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 12, 31, 23, 59, 59, tzinfo=UTC)
#: The longest move :meth:`SimClock.advance` takes, either way: the whole window.
MAX_ADVANCE = (LATEST - EARLIEST).total_seconds()


def _require_aware(dt: datetime) -> datetime:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"naive datetime {dt!r}: give a timezone (e.g. UTC)")
    try:
        return dt.astimezone(UTC)
    except OverflowError:  # year 1 with a positive offset, year 9999 with a negative one
        raise ValueError(_outside(f"{dt.isoformat()} is")) from None


def _outside(what: str) -> str:
    return (
        f"{what} outside the years {EARLIEST.year} to {LATEST.year}, where the simulated"
        " clock must stay; give a time within them"
    )


class SimClock:
    """A clock that runs ``speed`` times real time from ``start`` and can be moved by hand.

    ``now()`` is ``start + monotonic elapsed * speed + offset``. ``speed=0`` freezes it:
    the manual clock the tests use, moved only by :meth:`advance` and :meth:`set`.
    """

    def __init__(self, start: datetime | None = None, speed: float = 1.0) -> None:
        if speed < 0 or not math.isfinite(speed):
            raise ValueError(f"clock speed must be a finite number >= 0, got {speed}")
        self._start = datetime.now(UTC) if start is None else _require_aware(start)
        self._origin = time.monotonic()
        self._offset = timedelta()
        self._speed = speed

    @property
    def speed(self) -> float:
        """Simulated seconds per real second (0: frozen)."""
        return self._speed

    def _running(self) -> datetime:
        elapsed = (time.monotonic() - self._origin) * self._speed
        return self._start + timedelta(seconds=elapsed)

    def now(self) -> datetime:
        """The simulated time, timezone-aware UTC."""
        return self._running() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the clock forward (or back, if negative) by ``seconds``.

        Raises ValueError, leaving the clock as it was, for a number that is not finite
        or a move that would leave the years 2000 to 2100 (:data:`EARLIEST`,
        :data:`LATEST`).
        """
        # Checked before timedelta() sees it: NaN fails the test, a huge int compares fine.
        if not -MAX_ADVANCE <= seconds <= MAX_ADVANCE:
            raise ValueError(
                f"cannot advance the clock by more than {MAX_ADVANCE:.0f} seconds either way:"
                f" it must stay within the years {EARLIEST.year} to {LATEST.year}"
            )
        self._move(self._offset + timedelta(seconds=seconds), f"advancing by {seconds} s")

    def set(self, dt: datetime) -> None:
        """Jump to ``dt`` (aware); the clock keeps running at its speed from there.

        Raises ValueError, leaving the clock as it was, for a naive ``dt`` or one outside
        the years 2000 to 2100.
        """
        self._move(_require_aware(dt) - self._running(), f"setting it to {dt.isoformat()}")

    def _move(self, offset: timedelta, what: str) -> None:
        """Take ``offset`` if the time it gives is within the window, else ValueError."""
        try:
            inside = EARLIEST <= self._running() + offset <= LATEST
        except OverflowError:
            inside = False
        if not inside:
            raise ValueError(_outside(f"{what} puts the clock"))
        self._offset = offset


def rfc2822(dt: datetime) -> str:
    """``Wed, 26 Aug 2020 10:00:35 +0200``: the vendor's message dates, in Rome time."""
    return email.utils.format_datetime(dt.astimezone(ROME))


def rome_stamp(dt: datetime) -> str:
    """``YYYYMMDDHHMMSS`` in Rome time: the head of a vendor message id."""
    return dt.astimezone(ROME).strftime("%Y%m%d%H%M%S")


def ddmmyyyy(day: date | datetime) -> str:
    """The PEC API's date format; datetimes are taken in Rome time."""
    if isinstance(day, datetime):
        day = day.astimezone(ROME).date()
    return day.strftime("%d/%m/%Y")


def epoch(dt: datetime) -> int:
    """Whole Unix seconds, as in the PEC API's ``timestamp`` objects."""
    return int(dt.timestamp())


def add_years(dt: datetime, years: int) -> datetime:
    """``dt`` moved by whole years on the Europe/Rome calendar, in UTC.

    The Rome date and wall time stay (an expiry is a Rome date): 23:30 on 28 March is
    23:30 on 28 March a year later, whatever the UTC offsets of the two days.
    29 February falls back to the 28th.
    """
    local = dt.astimezone(ROME)
    try:
        moved = local.replace(year=local.year + years)
    except ValueError:
        moved = local.replace(year=local.year + years, day=28)
    return moved.astimezone(UTC)


def extend_expiry(record: dict[str, Any], now: datetime, years: int) -> datetime:
    """Renew a box or domain record by ``years``: from its expiry, or from ``now`` when
    that has passed. Sets ``data_scadenza`` and ``timestamp.scadenza`` /
    ``ultima_modifica``; returns the new expiry."""
    current = datetime.fromtimestamp(record["timestamp"]["scadenza"], UTC)
    expiry = add_years(max(now, current), years)
    record["data_scadenza"] = ddmmyyyy(expiry)
    record["timestamp"].update(scadenza=epoch(expiry), ultima_modifica=epoch(now))
    return expiry


def rome_day(dt: datetime) -> date:
    """The calendar day in Rome: allowances count by it, not by the UTC day."""
    return dt.astimezone(ROME).date()


def seconds_until_next_day(now: datetime) -> int:
    """Whole seconds (rounded up, at least 1) until the next Rome midnight."""
    midnight = datetime.combine(rome_day(now) + timedelta(days=1), datetime.min.time(), ROME)
    return _seconds_between(now, midnight)


def seconds_until_next_month(now: datetime) -> int:
    """Whole seconds (rounded up, at least 1) until 00:00 Rome on the 1st of next month."""
    day = rome_day(now)
    first = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return _seconds_between(now, datetime.combine(first, datetime.min.time(), ROME))


def _seconds_between(now: datetime, later: datetime) -> int:
    # Both go through UTC: aware datetimes sharing one ZoneInfo subtract as wall time,
    # which is an hour off across a DST change.
    delta = later.astimezone(UTC) - now.astimezone(UTC)
    return max(1, math.ceil(delta.total_seconds()))
