"""When a campaign's messages may leave: a start, a deadline, and a weekly sending window.

``campaign.toml``::

    [schedule]                                  # optional: without it, any time
    not_before = 2026-12-07T09:00:00+01:00      # nothing is posted before this moment
    not_after  = 2026-12-20                     # nothing is posted at or after this moment
    days  = ["mon-fri"]                         # the days of the week posts may leave
    hours = "09:00-18:00"                       # the hours of those days, [start, end)

- ``not_before`` and ``not_after`` are TOML date-times, or the same written as ISO 8601
  text in quotes (``"2026-12-07T09:00:00+01:00"``, ``"2026-12-07 09:00"``). With an
  offset (or ``Z``) the moment is exact; without one it is Europe/Rome time. A bare date
  (``2026-12-07``) means, for ``not_before``, 00:00 in Rome that day; for ``not_after``,
  the END of that day in Rome (the deadline is the whole day: ``not_after = 2026-12-20``
  sends until 24:00 of the 20th, nothing from 00:00 of the 21st). ``not_after`` must be
  later than ``not_before``. What is still unsent at the deadline is reported as not sent
  by the deadline: it is never sent late.
- ``days``: English or Italian three-letter names, in any case: ``mon tue wed thu fri sat
  sun`` or ``lun mar mer gio ven sab dom``, and ranges of them (``"mon-fri"``,
  ``"lun-ven"``; ``"sat-mon"`` wraps over Sunday). Default: every day.
- ``hours``: ``"HH:MM-HH:MM"`` in Rome's local time, the start included and the end not
  (``"09:00-18:00"``: open at 09:00, closed at 18:00). The end is later than the start in
  the same day: an overnight window (``"22:00-06:00"``) is refused. ``"24:00"`` is the
  end of the day; ``"00:00-24:00"`` is the default, all day.
- A schedule whose window never opens between ``not_before`` and ``not_after`` (both
  set) is refused. With only ``not_after``, whether it opens depends on when it is read:
  :meth:`Schedule.next_open` answers None.

Days and hours are Europe/Rome wall-clock time, so they follow daylight saving time: on
the last Sunday of March (02:00 → 03:00) the day has 23 real hours and on the last Sunday
of October (03:00 → 02:00) 25, and a window that spans the change is an hour shorter or
longer (``"00:00-06:00"`` lasts 5 or 7 real hours; ``"09:00-18:00"`` is 9 hours either
way). A start or end in the skipped hour (02:00-03:00 in March) is the first real instant
after it, 03:00 CEST; one in the repeated hour (02:00-03:00 in October) is its first
occurrence, in CEST. Local date-times in ``not_before`` and ``not_after`` follow the same
rule.

:func:`parse_schedule` reads the table; a :class:`Schedule` answers, for an aware
moment, whether a post may leave (:meth:`~Schedule.is_open`), when it next may
(:meth:`~Schedule.next_open`), when the open stretch ends (:meth:`~Schedule.closes_at`)
and whether the deadline has passed (:meth:`~Schedule.past_deadline`). Naive datetimes
are refused: their zone is unknown.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from massiva.times import ROME
from massiva.toml_values import kind_of, shown

#: Every day of the week, as :meth:`datetime.weekday` numbers them (0 Monday .. 6 Sunday).
ALL_DAYS: frozenset[int] = frozenset(range(7))
#: The keys of ``[schedule]``.
SCHEDULE_KEYS = ("not_before", "not_after", "days", "hours")

_DAY_NAMES = {
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
    "it": ("lun", "mar", "mer", "gio", "ven", "sab", "dom"),
}
_DAY_NUMBERS = {
    name.lower(): number for names in _DAY_NAMES.values() for number, name in enumerate(names)
}
_WORDS = {
    "en": {
        "every day": "every day",
        "all day": "all day",
        "always": "any time",
        "from": "from",
        "until": "until",
    },
    "it": {
        "every day": "tutti i giorni",
        "all day": "tutto il giorno",
        "always": "in qualsiasi momento",
        "from": "dal",
        "until": "entro il",
    },
}
_HOURS = re.compile(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})")
_ITALIAN_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})(?:[ T]+(\d{1,2})[:.](\d{2}))?")
_DAYS_HOW = (
    'write e.g. days = ["mon-fri"] (mon tue wed thu fri sat sun, or lun mar mer gio ven sab '
    "dom; ranges with -)"
)
_EXAMPLES = {
    "not_before": ("2026-12-07T09:00:00+01:00", "2026-12-07"),
    "not_after": ("2026-12-20T18:00:00+01:00", "2026-12-20"),
}


def _aware(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is refused."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("refusing a naive datetime: its zone is unknown")
    return moment.astimezone(UTC)


def rome_instant(day: date, wall: time) -> datetime:
    """The moment (UTC) the Rome clocks show ``wall`` on ``day``.

    A wall time that happens twice (the October change) is its first occurrence; one
    that never happens (the March change) is the first real instant after it, when the
    clocks jump.
    """
    naive = datetime.combine(day, wall)
    moment = naive.replace(tzinfo=ROME).astimezone(UTC)  # fold=0: the first occurrence
    if moment.astimezone(ROME).replace(tzinfo=None) == naive:
        return moment
    # Skipped: fold=1 reads it with the offset after the jump (a real instant before the
    # jump), fold=0 with the one before it (after the jump). The jump lies between; zone
    # changes fall on whole seconds, so a bisection over seconds finds it exactly.
    low = math.floor(naive.replace(tzinfo=ROME, fold=1).timestamp())
    before_offset = datetime.fromtimestamp(low, ROME).utcoffset()
    high = math.ceil(moment.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, ROME).utcoffset() == before_offset:
            low = middle
        else:
            high = middle
    return datetime.fromtimestamp(high, UTC)


def _show_moment(moment: datetime, *, end_of_day: bool = False) -> str:
    """``07/12/2026 09:00 +01:00``: Rome time with the offset; with ``end_of_day`` a
    Rome midnight reads as 24:00 of the day before (a deadline that is a whole day)."""
    local = moment.astimezone(ROME)
    offset = local.isoformat()[-6:]
    if end_of_day and local.time() == time(0):
        return f"{(local.date() - timedelta(days=1)).strftime('%d/%m/%Y')} 24:00 {offset}"
    shown = local.strftime("%d/%m/%Y %H:%M:%S" if local.second else "%d/%m/%Y %H:%M")
    return f"{shown} {offset}"


def _show_days(days: frozenset[int], lang: str) -> str:
    """Days as runs in week order: ``Mon-Fri``, ``Mon, Wed-Fri``."""
    names = _DAY_NAMES[lang]
    runs: list[str] = []
    ordered = sorted(days)
    start = previous = ordered[0]
    for day in [*ordered[1:], None]:
        if day is not None and day == previous + 1:
            previous = day
            continue
        runs.append(names[start] if start == previous else f"{names[start]}-{names[previous]}")
        if day is not None:
            start = previous = day
    return ", ".join(runs)


def _show_hours(hours: tuple[time, time]) -> str:
    start, end = hours
    return f"{start:%H:%M}-{'24:00' if end == time(0) else f'{end:%H:%M}'}"


@dataclass(frozen=True)
class Schedule:
    """When posts may leave: from ``not_before`` (included), until ``not_after`` (not
    included), on ``days`` (Rome weekdays, 0 Monday .. 6 Sunday), within ``hours``
    (``[start, end)`` in Rome local time; ``end`` ``time(0)`` is 24:00, the end of the
    day; None: all day).

    ``not_before`` and ``not_after`` must be aware; they are kept in UTC. The default,
    :data:`ALWAYS`, is open at any time. Raises ValueError for a schedule that cannot be:
    no days, an end not after the start, a deadline not after the start.
    """

    not_before: datetime | None = None
    not_after: datetime | None = None
    days: frozenset[int] = ALL_DAYS
    hours: tuple[time, time] | None = None

    def __post_init__(self) -> None:
        for name in ("not_before", "not_after"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _aware(value))
        if self.not_before and self.not_after and self.not_after <= self.not_before:
            raise ValueError("not_after must be later than not_before")
        if not self.days or not self.days <= ALL_DAYS:
            raise ValueError(f"days must be some of 0 (Monday) .. 6 (Sunday), not {self.days}")
        if self.hours is not None:
            start, end = self.hours
            for wall in self.hours:
                if wall.tzinfo is not None or wall.second or wall.microsecond:
                    raise ValueError(f"hours are naive Rome times in whole minutes, not {wall}")
            if end == start or (end != time(0) and end < start):
                raise ValueError(
                    "hours must end after they start, within the day (time(0) ends it); "
                    "all day is hours=None"
                )

    def _window(self, day: date) -> tuple[datetime, datetime]:
        """The moments (UTC) the window of Rome ``day`` opens and closes, days aside."""
        start, end = self.hours or (time(0), time(0))
        end_day = day + timedelta(days=1) if end == time(0) else day
        return rome_instant(day, start), rome_instant(end_day, end)

    def is_open(self, now: datetime) -> bool:
        """Whether a post may leave at ``now`` (aware)."""
        now = _aware(now)
        if self.not_before is not None and now < self.not_before:
            return False
        if self.past_deadline(now):
            return False
        day = now.astimezone(ROME).date()
        if day.weekday() not in self.days:
            return False
        opens, closes = self._window(day)
        return opens <= now < closes

    def next_open(self, now: datetime) -> datetime | None:
        """The first moment (UTC) at or after ``now`` (aware) a post may leave: ``now``
        itself when open; None when that will never happen again (the deadline has
        passed, or the window does not open again before it)."""
        now = _aware(now)
        if self.past_deadline(now):
            return None
        moment = max(now, self.not_before) if self.not_before else now
        first = moment.astimezone(ROME).date()
        # A week holds every weekday; the second one covers a window the clock change
        # emptied (hours inside the skipped hour).
        for offset in range(15):
            day = first + timedelta(days=offset)
            if day.weekday() not in self.days:
                continue
            opens, closes = self._window(day)
            candidate = max(opens, moment)
            if candidate >= closes:
                continue
            if self.not_after is not None and candidate >= self.not_after:
                return None
            return candidate
        raise AssertionError("a valid schedule opens within two weeks")

    def closes_at(self, now: datetime) -> datetime | None:
        """While open at ``now`` (aware): the moment (UTC) this open stretch ends, the
        window's end or ``not_after`` whichever comes first; None if it never ends.

        Whole days in a row (no ``hours``) are one stretch: Mon-Fri closes on Saturday at
        00:00. Raises ValueError when closed at ``now`` (ask :meth:`next_open`).
        """
        now = _aware(now)
        if not self.is_open(now):
            raise ValueError(f"the schedule is closed at {now.isoformat()}; ask next_open")
        if self.hours is None and self.days == ALL_DAYS:
            return self.not_after
        day = now.astimezone(ROME).date()
        if self.hours is None:
            while (day + timedelta(days=1)).weekday() in self.days:
                day += timedelta(days=1)
        closes = self._window(day)[1]
        return min(closes, self.not_after) if self.not_after else closes

    def past_deadline(self, now: datetime) -> bool:
        """Whether ``not_after`` is set and ``now`` (aware) is at or after it."""
        now = _aware(now)
        return self.not_after is not None and now >= self.not_after

    def describe(self, lang: str = "en") -> str:
        """One line for people, in English (``"en"``) or Italian (``"it"``): ``Mon-Fri
        09:00-18:00 Europe/Rome, from 07/12/2026 09:00 +01:00, until 20/12/2026 18:00
        +01:00``; ``lun-ven 09:00-18:00 Europe/Rome, dal ..., entro il ...``."""
        if lang not in _WORDS:
            raise ValueError(f"no description in {lang!r}; ask for 'en' or 'it'")
        words = _WORDS[lang]
        parts: list[str] = []
        if self.days != ALL_DAYS or self.hours is not None:
            parts.append(self._window_text(lang))
        if self.not_before is not None:
            parts.append(f"{words['from']} {_show_moment(self.not_before)}")
        if self.not_after is not None:
            parts.append(f"{words['until']} {_show_moment(self.not_after, end_of_day=True)}")
        return ", ".join(parts) or words["always"]

    def _window_text(self, lang: str) -> str:
        """``Mon-Fri 09:00-18:00 Europe/Rome``: the days and hours."""
        words = _WORDS[lang]
        days = words["every day"] if self.days == ALL_DAYS else _show_days(self.days, lang)
        hours = words["all day"] if self.hours is None else _show_hours(self.hours)
        return f"{days} {hours} Europe/Rome"

    def to_json(self) -> str:
        """The stored form: a JSON object holding what differs from :data:`ALWAYS`
        (``{}`` for it), read back by :meth:`from_json`."""
        data: dict[str, Any] = {}
        if self.not_before is not None:
            data["not_before"] = self.not_before.isoformat(timespec="microseconds")
        if self.not_after is not None:
            data["not_after"] = self.not_after.isoformat(timespec="microseconds")
        if self.days != ALL_DAYS:
            data["days"] = sorted(self.days)
        if self.hours is not None:
            data["hours"] = _show_hours(self.hours)
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Schedule:
        """The schedule :meth:`to_json` stored; ValueError if ``text`` is not one."""
        data = json.loads(text)
        if not isinstance(data, dict) or not set(data) <= set(SCHEDULE_KEYS):
            raise ValueError(f"not a stored schedule: {text[:200]!r}")
        try:
            hours = data.get("hours")
            return cls(
                not_before=_from_stored(data.get("not_before")),
                not_after=_from_stored(data.get("not_after")),
                days=frozenset(data.get("days", ALL_DAYS)),
                hours=None if hours is None else _hours(hours),
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"not a stored schedule ({exc}): {text[:200]!r}") from None


#: Open at any time: no start, no deadline, every day, all day.
ALWAYS = Schedule()


def _from_stored(value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"a moment is ISO 8601 text, not {value!r}")
    return datetime.fromisoformat(value)


def _hours(text: str) -> tuple[time, time] | None:
    """``"09:00-18:00"`` as (start, end), end ``time(0)`` for 24:00; None for all day.
    Raises ValueError saying what is wrong."""
    found = _HOURS.fullmatch(text.strip())
    if not found:
        raise ValueError("is not HH:MM-HH:MM")
    start_h, start_m, end_h, end_m = (int(part) for part in found.groups())
    if start_h > 23 or end_h > 24 or start_m > 59 or end_m > 59 or (end_h == 24 and end_m):
        raise ValueError("is not a time of day (00:00 to 24:00)")
    start, end = time(start_h, start_m), time(end_h % 24, end_m)
    if (end_h, end_m) == (start_h, start_m):
        raise ValueError("is empty")
    if (end_h, end_m) < (start_h, start_m):
        raise ValueError("ends before it starts")
    return None if (start, end) == (time(0), time(0)) else (start, end)


class _Reader:
    """Reads ``[schedule]``, collecting every problem instead of stopping."""

    def __init__(self, table: Mapping[str, Any], where: str) -> None:
        self.table = table
        self.where = where
        self.problems: list[str] = []

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{self.where}, schedule.{key}: {message}")

    def unknown_keys(self) -> None:
        for key in self.table:
            if key in SCHEDULE_KEYS:
                continue
            close = difflib.get_close_matches(key, SCHEDULE_KEYS, n=1)
            known = f"the known keys: {', '.join(SCHEDULE_KEYS)}"
            self.problem(key, f"unknown key; {f'did you mean {close[0]}?' if close else known}")

    def moment(self, key: str) -> datetime | None:
        """``not_before`` or ``not_after``: a moment (UTC), a bare date read as the start
        (``not_before``) or the end (``not_after``) of that day in Rome."""
        value = self.table.get(key)
        if value is None:
            return None
        exact, day = _EXAMPLES[key]
        how = (
            f"write e.g. {key} = {exact} (without an offset: Europe/Rome time), or a date, "
            f"{key} = {day}"
        )
        if isinstance(value, str):
            parsed = _iso(value.strip())
            if parsed is None:
                how = _iso_hint(key, value) or how
                self.problem(key, f"{shown(value)} is not an ISO 8601 date-time; {how}")
                return None
            value = parsed
        if isinstance(value, datetime):
            if value.tzinfo is None:
                return rome_instant(value.date(), value.time())
            return value.astimezone(UTC)
        if isinstance(value, date):
            if key == "not_after":
                value += timedelta(days=1)
            return rome_instant(value, time(0))
        self.problem(key, f"{shown(value)} is {kind_of(value)}, not a date-time; {how}")
        return None

    def days(self) -> frozenset[int]:
        value = self.table.get("days")
        if value is None:
            return ALL_DAYS
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            self.problem("days", f"{shown(value)} is {kind_of(value)}, not a list; {_DAYS_HOW}")
            return ALL_DAYS
        if not value:
            self.problem(
                "days",
                'empty, so nothing would ever be sent; list the days, e.g. days = ["mon-fri"], '
                "or remove the key to send on any day",
            )
            return ALL_DAYS
        days: set[int] = set()
        for item in value:
            found = _days(item) if isinstance(item, str) else None
            if found is None:
                self.problem("days", f"{shown(item)} is not a day; {_day_hint(item)}")
            else:
                days |= found
        return frozenset(days) or ALL_DAYS

    def hours(self) -> tuple[time, time] | None:
        """The window, None for all day (or when wrong)."""
        value = self.table.get("hours")
        if value is None:
            return None
        how = 'write e.g. hours = "09:00-18:00" (Rome time, HH:MM-HH:MM; "24:00" ends the day)'
        if not isinstance(value, str):
            self.problem("hours", f"{shown(value)} is {kind_of(value)}, not text; {how}")
            return None
        try:
            return _hours(value)
        except ValueError as exc:
            if str(exc) == "ends before it starts":
                how = (
                    "an overnight window is not supported: the end must be later than the "
                    'start in the same day, e.g. "00:00-06:00" or "22:00-24:00"'
                )
            self.problem("hours", f"{shown(value)} {exc}; {how}")
            return None


def _iso(text: str) -> datetime | date | None:
    """ISO 8601 text as a date (when it is one) or a date-time; None when neither."""
    for reader in (date.fromisoformat, datetime.fromisoformat):
        try:
            return reader(text)
        except ValueError:
            continue
    return None


def _iso_hint(key: str, text: str) -> str | None:
    """``write not_after = 2026-12-20`` for ``"20/12/2026"``, the way Italians write
    dates (with a time too); None when ``text`` is not written so."""
    found = _ITALIAN_DATE.fullmatch(text.strip())
    if not found:
        return None
    day, month, year, hour, minute = found.groups()
    try:
        written = date(int(year), int(month), int(day)).isoformat()
        if hour is not None:
            written += f"T{time(int(hour), int(minute)):%H:%M:%S}"
    except ValueError:
        return None
    return f"write {key} = {written}"


def _days(text: str) -> frozenset[int] | None:
    """``"mon"`` or ``"mon-fri"`` (any case, English or Italian) as weekday numbers;
    a range may wrap over Sunday (``"sat-mon"``). None when it is neither."""
    ends = [part.strip().lower() for part in text.split("-")]
    if len(ends) > 2 or not all(end in _DAY_NUMBERS for end in ends):
        return None
    first, last = _DAY_NUMBERS[ends[0]], _DAY_NUMBERS[ends[-1]]
    return frozenset((first + step) % 7 for step in range((last - first) % 7 + 1))


def _day_hint(item: object) -> str:
    """How to write the day ``item`` meant: its abbreviation when it is a longer name
    ("monday", "lunedì"), else the list of names."""
    if isinstance(item, str):
        words = [part.strip().lower() for part in item.split("-")]
        if all(word[:3] in _DAY_NUMBERS for word in words) and len(words) <= 2:
            return f'write "{"-".join(word[:3] for word in words)}"'
    return _DAYS_HOW


def parse_schedule(table: Mapping[str, Any], where: str) -> tuple[Schedule, list[str]]:
    """campaign.toml's ``[schedule]`` table -> (schedule, problems).

    Each problem is a whole message, ``"{where}, schedule.{key}: what is wrong; how to
    fix it"``; ``where`` is the campaign.toml path. With problems the schedule is
    :data:`ALWAYS` and means nothing. See the module's docstring for the syntax.
    """
    found = _Reader(table, where)
    found.unknown_keys()
    not_before = found.moment("not_before")
    not_after = found.moment("not_after")
    days = found.days()
    hours = found.hours()
    if not_before is not None and not_after is not None and not_after <= not_before:
        found.problem(
            "not_after",
            f"{_show_moment(not_after, end_of_day=True)} is not later than not_before "
            f"({_show_moment(not_before)}); set a deadline after the start",
        )
    if found.problems:
        return ALWAYS, found.problems
    schedule = Schedule(not_before=not_before, not_after=not_after, days=days, hours=hours)
    if not_before is not None and not_after is not None and schedule.next_open(not_before) is None:
        # Blame the hours when the days alone would open, else the days.
        all_day = Schedule(not_before=not_before, not_after=not_after, days=days)
        key, fix = (
            ("hours", "widen hours") if all_day.next_open(not_before) else ("days", "add days")
        )
        found.problem(
            key,
            f"{schedule._window_text('en')} never opens between not_before "
            f"({_show_moment(not_before)}) and not_after "
            f"({_show_moment(not_after, end_of_day=True)}), so nothing would "
            f"be sent; {fix}, or move not_before or not_after",
        )
        return ALWAYS, found.problems
    return schedule, found.problems
