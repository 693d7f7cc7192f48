"""The vendor's clock, as its answers tell it.

The vendor dates its receipts by its own clock, not ours, and the simulator's may run
hours a second. Whatever is measured against those dates -- a receipt "dated in the
future", 24 hours without a final receipt, the day an allowance counts in -- is measured
on the vendor's clock. Every HTTP answer carries its server's time in its ``Date`` header
(RFC 9110, section 6.6.1): :class:`VendorClock` keeps how far the latest one was from our
clock, and tells the vendor's time as ours plus that difference. Before any answer, and
from a server whose ``Date`` cannot be read or lies outside the years 2000 to 2100
(nonsense that would overflow the dates computed from it), it is our clock.

With the real vendor the difference is a second or so (``Date`` has whole seconds): the
time is ours. A vendor whose clock is wrong moves expiry with it; an expiry is no final
state, and the receipt that comes later still moves the recipient.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from massiva.times import utcnow

#: A ``Date`` outside these is nonsense, and ignored.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2101, 1, 1, tzinfo=UTC)


class VendorClock:
    """The vendor's time: ``local()`` plus the difference its latest ``Date`` showed."""

    def __init__(self, local: Callable[[], datetime] = utcnow) -> None:
        self._local = local
        self._ahead = timedelta()

    def saw(self, date: str | None) -> None:
        """Take the ``Date`` header of an answer just received; one that is missing,
        unreadable or nonsense changes nothing."""
        if not date:
            return
        try:
            told = parsedate_to_datetime(date)
        except (TypeError, ValueError, IndexError, OverflowError):
            return
        if told.tzinfo is None:  # "-0000": HTTP dates are UTC
            told = told.replace(tzinfo=UTC)
        if EARLIEST <= told < LATEST:
            self._ahead = told - self._local()

    def now(self) -> datetime:
        """The vendor's time now, aware UTC."""
        return self._local() + self._ahead
