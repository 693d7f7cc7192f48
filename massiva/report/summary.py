"""A campaign's summary: counts per state, what each mailbox of its pool sent,
deliveries and failures over time, and why recipients failed. XLSX, JSON and HTML head
their rows with it; CSV has none."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from massiva.quota import next_day
from massiva.store import STATES, Store
from massiva.store.reports import FAILED_STATES, HourCount, ReasonCount
from massiva.times import ROME

#: Failure reasons shown one by one; the rest are counted together.
TOP_REASONS = 8
#: A timeline longer than this is drawn by Rome day, a shorter one by hour.
HOURLY_SPAN = timedelta(hours=72)


@dataclass(frozen=True)
class Bucket:
    """Deliveries and failures in one Rome hour or day, from ``start`` to ``end``."""

    start: datetime  # aware, Europe/Rome
    end: datetime
    delivered: int
    failed: int


@dataclass(frozen=True)
class Timeline:
    """Deliveries and failures over time, in Rome hours or days, oldest first."""

    unit: Literal["hour", "day"]
    buckets: tuple[Bucket, ...]


@dataclass(frozen=True)
class MailboxCount:
    """The recipients one mailbox claimed (sent, or tried to), per state (every state,
    zeros included)."""

    mailbox: str
    counts: dict[str, int]

    @property
    def total(self) -> int:
        """Every recipient this mailbox claimed."""
        return sum(self.counts.values())

    @property
    def not_through(self) -> int:
        """Of those, the failed, rejected or expired."""
        return sum(self.counts[state] for state in FAILED_STATES)


@dataclass(frozen=True)
class Summary:
    """Counts per state (every state, zeros included) and the rest of the summary."""

    counts: dict[str, int]
    timeline: Timeline
    reasons: tuple[ReasonCount, ...]  # the TOP_REASONS most frequent
    other_reasons: int  # failed, rejected or expired recipients not in ``reasons``
    # Each mailbox of the pool in its order (then any other that claimed some).
    mailboxes: tuple[MailboxCount, ...] = ()

    @property
    def total(self) -> int:
        """Every recipient of the campaign."""
        return sum(self.counts.values())

    @property
    def not_through(self) -> int:
        """Failed, rejected or expired recipients."""
        return sum(self.counts[state] for state in FAILED_STATES)


def timeline(hours: list[HourCount]) -> Timeline:
    """UTC hours gathered into Rome hours (a span up to :data:`HOURLY_SPAN`) or days."""
    if not hours:
        return Timeline("hour", ())
    starts = [datetime.fromisoformat(h.hour).replace(tzinfo=UTC) for h in hours]
    if starts[-1] - starts[0] <= HOURLY_SPAN:
        return Timeline(
            "hour",
            tuple(
                Bucket(
                    start.astimezone(ROME),
                    (start + timedelta(hours=1)).astimezone(ROME),
                    h.delivered,
                    h.failed,
                )
                for start, h in zip(starts, hours, strict=True)
            ),
        )
    days: dict[date, list[int]] = {}
    for start, h in zip(starts, hours, strict=True):
        counts = days.setdefault(start.astimezone(ROME).date(), [0, 0])
        counts[0] += h.delivered
        counts[1] += h.failed
    buckets = []
    for day, (delivered, failed) in days.items():
        midnight = datetime.combine(day, time(0), tzinfo=ROME)
        buckets.append(Bucket(midnight, next_day(midnight).astimezone(ROME), delivered, failed))
    return Timeline("day", tuple(buckets))


async def summarise(
    store: Store, campaign_id: int, pool: tuple[str, ...], counts: dict[str, int]
) -> Summary:
    """The summary of a campaign sending from ``pool`` with ``counts`` per state, from
    the database."""
    reasons = await store.reports.reasons(campaign_id, FAILED_STATES, TOP_REASONS)
    shown = sum(r.count for r in reasons)
    claimed = await store.reports.by_mailbox(campaign_id)
    boxes = dict.fromkeys((*pool, *sorted(claimed)))
    return Summary(
        mailboxes=tuple(
            MailboxCount(box, {state: claimed.get(box, {}).get(state, 0) for state in STATES})
            for box in boxes
        ),
        counts=counts,
        timeline=timeline(await store.reports.hours(campaign_id)),
        reasons=tuple(reasons),
        # The counts were read a moment before the reasons: if a recipient failed in
        # between, the difference must not go below zero.
        other_reasons=max(0, sum(counts[s] for s in FAILED_STATES) - shown),
    )
