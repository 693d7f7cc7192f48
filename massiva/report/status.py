"""The overview ``massiva status`` prints: every campaign with its pool of mailboxes, its
schedule and its recipients per state, and every mailbox (configured, or in a campaign's
pool) with the allowance used today and this month and when each renews.

The allowances are the database's own counts (a recipient is counted when it is claimed
for sending; see massiva/quota.py for the Rome days and months they are counted in).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from massiva.config import Config
from massiva.lifecycle import State
from massiva.quota import Plan, Usage, day_key, month_key, next_day, next_month, renews_at, room
from massiva.schedule import ALWAYS, Schedule
from massiva.store import STATES, ReceiptRow, Store


@dataclass(frozen=True)
class CampaignStatus:
    """A campaign, the pool it sends from (``mailbox`` is the first), its schedule and
    its recipients per state (every state, zeros included). ``late``: its deadline had
    passed at the overview's time, so its pending recipients were not sent by it."""

    name: str
    mailbox: str
    state: str
    created_at: datetime
    counts: dict[str, int]
    mailboxes: tuple[str, ...] = ()
    schedule: Schedule = ALWAYS
    late: bool = False

    @property
    def total(self) -> int:
        """Every recipient of the campaign."""
        return sum(self.counts.values())

    @property
    def not_sent_by_deadline(self) -> int:
        """The recipients not sent by the deadline: the pending ones, once it passed."""
        return self.counts[State.PENDING] if self.late else 0


@dataclass(frozen=True)
class MailboxStatus:
    """A sending mailbox's allowances now."""

    address: str
    plan: Plan
    usage: Usage
    day_renews: datetime  # when the Rome day ends (UTC)
    month_renews: datetime  # when the Rome month ends (UTC)
    room: int  # recipients that may be sent now
    blocked_until: datetime | None  # an allowance is spent until then
    suspicious: list[ReceiptRow]  # messages that look like receipts and are not trusted


@dataclass(frozen=True)
class Overview:
    """Every campaign and every mailbox, at ``at``."""

    at: datetime
    campaigns: list[CampaignStatus]
    mailboxes: list[MailboxStatus]


async def overview(store: Store, config: Config, now: datetime) -> Overview:
    """The campaigns in the database, and the mailboxes configured or in a campaign's
    pool."""
    counts = await store.reports.counts()
    campaigns = [
        CampaignStatus(
            c.name,
            c.mailbox,
            c.state,
            c.created_at,
            {state: counts.get(c.id, {}).get(state, 0) for state in STATES},
            c.mailboxes or (c.mailbox,),
            c.schedule,
            c.schedule.past_deadline(now),
        )
        for c in await store.campaigns.all()
    ]
    addresses = sorted({*config.mailboxes, *(box for c in campaigns for box in c.mailboxes)})
    mailboxes = []
    for address in addresses:
        box = config.mailbox(address)
        plan = Plan(box.daily_limit, box.monthly_limit)
        usage = Usage(*await store.outbox.usage(address, day_key(now), month_key(now)))
        mailboxes.append(
            MailboxStatus(
                address=address,
                plan=plan,
                usage=usage,
                day_renews=next_day(now),
                month_renews=next_month(now),
                room=room(plan, usage),
                blocked_until=renews_at(plan, usage, now),
                suspicious=[row for _, row in await store.receipts.suspicious(address)],
            )
        )
    return Overview(now, campaigns, mailboxes)
