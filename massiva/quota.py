"""Allowance arithmetic, and nothing else: plans, Europe/Rome days and months, renewals.

The provider counts recipients per calendar day and month in Europe/Rome: at 23:30 UTC
on a winter day it is already tomorrow in Rome, and a Rome day lasts 23 or 25 hours when
the clocks change. Every window here is computed in Rome time and returned in UTC.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from massiva.times import ROME

STANDARD_PRICE_EUR = 0.05  # a recipient on the Standard plan


@dataclass(frozen=True)
class Plan:
    """A mailbox's allowances: recipients a Rome day and a Rome month."""

    daily: int = 3500
    monthly: int = 30000


@dataclass(frozen=True)
class Usage:
    """Recipients already counted in the current Rome day and month."""

    day: int = 0
    month: int = 0


def day_key(moment: datetime) -> str:
    """The allowance window of the Rome day ``moment`` falls in, e.g. ``D2026-03-10``."""
    return "D" + moment.astimezone(ROME).date().isoformat()


def month_key(moment: datetime) -> str:
    """The allowance window of the Rome month ``moment`` falls in, e.g. ``M2026-03``."""
    return "M" + moment.astimezone(ROME).strftime("%Y-%m")


def _rome_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=ROME).astimezone(UTC)


def next_day(moment: datetime) -> datetime:
    """When the Rome day after ``moment``'s begins (UTC)."""
    return _rome_midnight(moment.astimezone(ROME).date() + timedelta(days=1))


def next_month(moment: datetime) -> datetime:
    """When the Rome month after ``moment``'s begins (UTC)."""
    today = moment.astimezone(ROME).date()
    first = date(today.year + today.month // 12, today.month % 12 + 1, 1)
    return _rome_midnight(first)


def room(plan: Plan, usage: Usage) -> int:
    """How many more recipients may be sent now."""
    return max(0, min(plan.daily - usage.day, plan.monthly - usage.month))


def renews_at(plan: Plan, usage: Usage, now: datetime) -> datetime | None:
    """When sending may go on, if an allowance is spent now (None when it is not)."""
    if usage.month >= plan.monthly:
        return next_month(now)
    if usage.day >= plan.daily:
        return next_day(now)
    return None


def days_needed(count: int, plan: Plan, start: date, usage: Usage = Usage()) -> int:
    """Rome calendar days, from ``start``, that sending ``count`` recipients takes at the
    plan's allowances (``usage`` is what ``start`` and its month have used already)."""
    if count <= 0:
        return 0
    days, left, day = 0, count, start
    used_day, used_month = usage.day, usage.month
    while left > 0:
        days += 1
        sent = max(0, min(left, plan.daily - used_day, plan.monthly - used_month))
        left -= sent
        following = day + timedelta(days=1)
        used_day = 0
        used_month = 0 if following.month != day.month else used_month + sent
        if used_month >= plan.monthly and left > 0:
            # Skip to the first of next month in one step.
            first = date(day.year + day.month // 12, day.month % 12 + 1, 1)
            days += (first - following).days
            following, used_month = first, 0
        day = following
    return days


def cost_eur(count: int) -> float:
    """What ``count`` recipients cost on the Standard plan."""
    return math.floor(count * STANDARD_PRICE_EUR * 100 + 0.5) / 100
