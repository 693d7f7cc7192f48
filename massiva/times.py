"""Time conventions: stored in UTC, shown in Europe/Rome with the offset.

Allowances count Europe/Rome calendar days and months (the provider is Italian:
midnight UTC is not midnight there).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

ROME = ZoneInfo("Europe/Rome")


def utcnow() -> datetime:
    """Now, as an aware UTC datetime."""
    return datetime.now(UTC)


def to_db(moment: datetime) -> str:
    """The stored form of a moment: ISO 8601 in UTC, to the microsecond."""
    if moment.tzinfo is None:
        raise ValueError("refusing a naive datetime: its zone is unknown")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def from_db(text: str) -> datetime:
    """The moment a stored ISO 8601 UTC string names."""
    return datetime.fromisoformat(text).astimezone(UTC)


def show(moment: datetime) -> str:
    """A moment as people read it: Europe/Rome time with the offset, to the second."""
    return moment.astimezone(ROME).isoformat(sep=" ", timespec="seconds")


def show_date(day: date | None) -> str:
    """A calendar date as Italians write it (dd/mm/yyyy), '' when unknown."""
    return day.strftime("%d/%m/%Y") if day else ""


def rome_today() -> date:
    """Today's date in Europe/Rome."""
    return datetime.now(ROME).date()
