"""The one row model every report format shares, and the report it belongs to.

A :class:`ReportRow` is one recipient as a report shows it: what was sent to it, from
which mailbox, what happened and when, and why not.
Times are in Europe/Rome, ISO 8601 with the offset, to the second
(``2026-03-10T09:00:01+01:00``): the moment is unambiguous in any season, and it reads as
the clock on an Italian office wall. CSV, XLSX, JSON and HTML all write these same rows;
only how a value is written differs (see each format's module). CSV, whose exports run
to millions of rows, writes its lines straight from the stored records (a test holds
them to these rows' cells).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from massiva.lifecycle import State
from massiva.report.summary import Summary, summarise
from massiva.store import CampaignRow, Store
from massiva.store.reports import ReportRecord
from massiva.times import ROME

#: The columns before the key columns, then after them: the CSV and XLSX header and
#: the JSON keys of a recipient (the key columns' values go under "keys" in JSON).
COLUMNS_BEFORE_KEYS = ("row", "address")
COLUMNS_AFTER_KEYS = (
    "mailbox",
    "subject",
    "state",
    "message_id",
    "sent_at",
    "accepted_at",
    "delivered_at",
    "failed_at",
    "failure_code",
    "reason",
    "receipt_ids",
)

#: An enhanced mail status code (RFC 3463: ``5.1.1``, ``5.4.1``), standing alone: not a
#: piece of a longer number such as an IP address.
_CODE = re.compile(r"(?<![\d.])(\d\.\d{1,3}\.\d{1,3})(?!\.?\d)")


def failure_code(state: str, reason: str) -> str:
    """The status code a failed recipient's reason gives (``5.1.1``): the first in it,
    which is the one the daticert's ``errore-esteso`` starts with (massiva/reconcile.py
    writes it first); '' for any other state, or a reason without one."""
    if state != State.FAILED:
        return ""
    found = _CODE.search(reason)
    return found.group(1) if found else ""


#: What a pending recipient of a campaign past its deadline reads as its reason: a label,
#: not a state (it stays pending, and is never sent late).
NOT_SENT = "not sent by the deadline"


def not_sent_reason(reason: str) -> str:
    """The reason a report gives a pending recipient past the deadline: :data:`NOT_SENT`,
    then the stored reason if it has one."""
    return f"{NOT_SENT}; {reason}" if reason else NOT_SENT


def rome_iso(moment: datetime) -> str:
    """A moment as Europe/Rome ISO 8601 with the offset, to the second."""
    return moment.astimezone(ROME).isoformat(timespec="seconds")


#: UTC hour (``2026-03-10T08``) -> that hour in Rome and the offset then
#: (``("2026-03-10T09", "+01:00")``): a campaign spans a few thousand hours at most.
_HOURS: dict[str, tuple[str, str]] = {}


def _rome_hour(utc_hour: str) -> tuple[str, str]:
    shown = rome_iso(datetime.fromisoformat(utc_hour + ":00:00+00:00"))
    found = _HOURS[utc_hour] = (shown[:13], shown[19:])
    return found


def rome(stored: str | None) -> str:
    """A stored UTC time as :func:`rome_iso` shows it ('' for None: it did not happen)."""
    if stored is None:
        return ""
    if len(stored) != 32 or stored[26:] != "+00:00":  # not as massiva.times.to_db writes
        return rome_iso(datetime.fromisoformat(stored))
    # Rome's offset is whole hours and changes only on a UTC hour, so a UTC hour is one
    # Rome hour: it is converted once, then the minutes and seconds are copied (a fifth
    # of a microsecond a time instead of four, which a million rows feel).
    hour = _HOURS.get(stored[:13]) or _rome_hour(stored[:13])
    return hour[0] + stored[13:19] + hour[1]


class ReportRow(NamedTuple):
    """One recipient in a report.

    ``row`` is the spreadsheet row it came from; ``keys`` the values of the campaign's key
    columns, in their order; ``mailbox`` the mailbox of the pool that claimed it ('' while
    none has); ``subject`` the subject as sent; the times are Europe/Rome ISO 8601;
    ``failure_code`` the status code of a failure (:func:`failure_code`); ``reason`` why
    it failed, was rejected or expired, or that it was not sent by the campaign's
    deadline (:func:`not_sent_reason`; its state stays pending); ``receipt_ids`` the
    mailbox's inbox ids of the receipts that name it, ascending, separated by spaces. A
    value that does not exist (not sent, no reason, no such column) is ''.
    """

    row: int
    address: str
    keys: tuple[str, ...]
    mailbox: str
    subject: str
    state: str
    message_id: str
    sent_at: str
    accepted_at: str
    delivered_at: str
    failed_at: str
    failure_code: str
    reason: str
    receipt_ids: str

    @classmethod
    def from_records(
        cls, records: Iterable[ReportRecord], *, late: bool = False
    ) -> list[ReportRow]:
        """The rows of recipients as the store reads them; ``late``: the campaign's
        deadline has passed, so its pending recipients read :func:`not_sent_reason`."""
        pending = str(State.PENDING)
        return [
            cls(
                record.row,
                record.address,
                record.keys,
                record.mailbox,
                record.subject,
                record.state,
                record.message_id,
                rome(record.sent_at),
                rome(record.accepted_at),
                rome(record.delivered_at),
                rome(record.failed_at),
                failure_code(record.state, record.reason),
                not_sent_reason(record.reason)
                if late and record.state == pending
                else record.reason,
                record.receipts,
            )
            for record in records
        ]

    def cells(self) -> list[str]:
        """The row as text cells, in :attr:`Report.columns` order."""
        cells: list[Any] = list(self)  # a third of the time of a list built field by field
        cells[0] = str(self.row)
        cells[2:3] = self.keys
        return cells

    def as_json(self, key_columns: tuple[str, ...]) -> dict[str, Any]:
        """The row as a JSON object: null for a value that does not exist (a key column's
        value stays text), ``keys`` maps column -> value, ``receipt_ids`` a list."""
        return {
            "row": self.row,
            "address": self.address,
            "keys": dict(zip(key_columns, self.keys, strict=True)),
            "mailbox": self.mailbox or None,
            "subject": self.subject,
            "state": self.state,
            "message_id": self.message_id or None,
            "sent_at": self.sent_at or None,
            "accepted_at": self.accepted_at or None,
            "delivered_at": self.delivered_at or None,
            "failed_at": self.failed_at or None,
            "failure_code": self.failure_code or None,
            "reason": self.reason or None,
            "receipt_ids": [int(found) for found in self.receipt_ids.split()],
        }


@dataclass(frozen=True)
class Report:
    """A campaign's report: what it is, its recipients per state, and on demand its
    summary and its rows (streamed)."""

    store: Store
    campaign: CampaignRow
    key_columns: tuple[str, ...]
    counts: dict[str, int]  # per state (every state), as the report was opened
    generated_at: datetime

    @property
    def total(self) -> int:
        """Every recipient of the campaign."""
        return sum(self.counts.values())

    @property
    def mailboxes(self) -> tuple[str, ...]:
        """The pool the campaign sends from, in its order (``mailbox`` is the first)."""
        return self.campaign.mailboxes or (self.campaign.mailbox,)

    @property
    def late(self) -> bool:
        """Whether the campaign's deadline had passed when the report was opened: its
        pending recipients are then not sent by the deadline (and never will be)."""
        return self.campaign.schedule.past_deadline(self.generated_at)

    @property
    def not_sent_by_deadline(self) -> int:
        """The recipients not sent by the deadline: the pending ones, once it passed."""
        return self.counts[State.PENDING] if self.late else 0

    async def summary(self) -> Summary:
        """The summary the XLSX, JSON and HTML formats open with. It is read when asked
        for: its timeline reads every recipient, which a CSV export need not wait for."""
        return await summarise(self.store, self.campaign.id, self.mailboxes, self.counts)

    @property
    def columns(self) -> tuple[str, ...]:
        """The header of the tabular formats: :data:`COLUMNS_BEFORE_KEYS`, the key
        columns, :data:`COLUMNS_AFTER_KEYS`."""
        return (*COLUMNS_BEFORE_KEYS, *self.key_columns, *COLUMNS_AFTER_KEYS)

    async def rows(
        self, *, states: Collection[str] = (), limit: int | None = None, labelled: bool = True
    ) -> AsyncIterator[list[ReportRow]]:
        """The recipients in file order, a batch at a time; only those in ``states`` if
        given, at most ``limit`` if given. ``labelled``: past the deadline, a pending
        recipient's reason says it was not sent by it (False: the page says it its own
        way)."""
        late = labelled and self.late
        async for batch in self.store.reports.recipients(
            self.campaign.id, keys=self.key_columns, states=states, limit=limit
        ):
            yield ReportRow.from_records(batch, late=late)
