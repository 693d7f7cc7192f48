"""The queries behind evidence bundles (massiva/evidence/): a campaign's recipients with
what each post carried, and every message kept about each of them, bodies included.

Everything here reads; nothing writes. Recipients are read in id order (the spreadsheet's)
a batch at a time, and the receipts of one recipient at a time: a receipt body can be
megabytes (a full delivery receipt carries the original and its attachments), so a
bundle of thousands of recipients never holds more than a few of them. Times come out as
stored (UTC, ISO 8601).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from typing import NamedTuple

from massiva.store.database import Database

#: Recipients a batch (their rows are small: no receipt body among them).
BATCH = 500


class Selection(NamedTuple):
    """The recipients a bundle holds: how many, the highest spreadsheet row among them,
    and the addresses asked for that the campaign does not hold."""

    recipients: int
    last_row: int
    absent: tuple[str, ...]


class SentRecipient(NamedTuple):
    """One recipient as its evidence shows it. ``mailbox`` is the one of the pool that
    claimed it ('' while none has); ``sent_content`` is the JSON of what its post carried
    (None: not recorded, or never posted); times as stored, None when it did not
    happen."""

    id: int
    row: int
    address: str
    mailbox: str
    subject: str
    state: str
    message_id: str | None
    sent_at: str | None
    accepted_at: str | None
    delivered_at: str | None
    failed_at: str | None
    reason: str | None
    sent_content: str | None
    purged_at: str | None


class KeptReceipt(NamedTuple):
    """A message kept about a recipient: its body as received (None: never fetched),
    the body's SHA-256 recorded when it was kept, and why it is not trusted (None:
    trusted). Dates as stored."""

    inbox_id: int
    kind: str
    final: bool | None
    sender: str
    subject: str
    date_raw: str
    date_utc: str | None
    body: str | None
    body_sha256: str | None
    error: str | None
    suspicious: str | None


# ``+r.campaign_id``: walk the primary key from the last id read (as the reports do).
_RECIPIENTS = (
    "SELECT r.id, r.row, r.address, coalesce(r.mailbox, ''), r.subject, r.state,"
    " r.message_id, r.sent_at, r.accepted_at, r.delivered_at, r.failed_at, r.reason,"
    " r.sent_content, r.purged_at"
    " FROM recipient r WHERE +r.campaign_id = ? AND r.id > ?{only} ORDER BY r.id LIMIT ?"
)


_RECEIPT = (
    "x.inbox_id, x.kind, x.final, x.sender, x.subject, x.date_raw, x.date_utc, x.body,"
    " x.body_sha256, x.error, x.suspicious"
)


def _only(addresses: Collection[str]) -> str:
    """The SQL that keeps the recipients at ``addresses`` (all of them when empty)."""
    return f" AND r.address IN ({', '.join('?' for _ in addresses)})" if addresses else ""


def _of_campaign(addresses: Collection[str]) -> str:
    """The WHERE of a campaign's recipients at ``addresses`` (all when empty)."""
    return "r.campaign_id = ?" + _only(addresses)


class EvidenceQueries:
    """Reading what a campaign sent and every receipt kept, for an evidence bundle."""

    def __init__(self, database: Database) -> None:
        self._database = database

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[None]:
        """One read transaction for the block: every query in it sees the database as it
        was at the first, so a reconcile running meanwhile cannot make a recipient's
        state and its receipts disagree."""
        async with self._database.snapshot():
            yield

    async def selection(self, campaign_id: int, addresses: Collection[str] = ()) -> Selection:
        """How many of the campaign's recipients are at ``addresses`` (all of them when
        empty), their highest row, and the addresses the campaign does not hold."""
        where = _of_campaign(addresses)
        rows = await self._database.db.execute_fetchall(
            f"SELECT count(*), coalesce(max(r.row), 0) FROM recipient r WHERE {where}",  # noqa: S608 - placeholders only
            (campaign_id, *addresses),
        )
        count, last_row = next(iter(rows))
        found = await self._database.db.execute_fetchall(
            f"SELECT DISTINCT r.address FROM recipient r WHERE {where}",  # noqa: S608 - placeholders only
            (campaign_id, *addresses),
        )
        held = {str(address) for (address,) in found}
        absent = tuple(a for a in dict.fromkeys(addresses) if a not in held)
        return Selection(int(count), int(last_row), absent)

    async def attachment_uses(
        self, campaign_id: int, addresses: Collection[str] = ()
    ) -> dict[str, int]:
        """SHA-256 of each attachment posted to the recipients at ``addresses`` (all of
        them when empty) -> how many of those recipients it was posted to."""
        each = {
            "sqlite": "SELECT json_extract(a.value, '$[1]'), count(DISTINCT r.id)"
            " FROM recipient r, json_each(r.sent_content, '$.attachments') a",
            "postgresql": "SELECT a.value ->> 1, count(DISTINCT r.id) FROM recipient r,"
            " json_array_elements(CAST(r.sent_content AS json) -> 'attachments') a",
        }[self._database.engine]
        rows = await self._database.db.execute_fetchall(
            f"{each} WHERE {_of_campaign(addresses)} AND r.sent_content IS NOT NULL GROUP BY 1",
            (campaign_id, *addresses),
        )
        return {str(digest): int(count) for digest, count in rows}

    async def recipients(
        self, campaign_id: int, addresses: Collection[str] = (), *, batch: int = BATCH
    ) -> AsyncIterator[list[SentRecipient]]:
        """The campaign's recipients at ``addresses`` (all of them when empty), in id
        order, ``batch`` at a time."""
        sql = _RECIPIENTS.format(only=_only(addresses))
        after = 0
        while True:
            rows = await self._database.db.execute_fetchall(
                sql, (campaign_id, after, *addresses, batch)
            )
            found = [SentRecipient._make(row) for row in rows]
            if not found:
                return
            yield found
            if len(found) < batch:
                return
            after = found[-1].id

    async def receipts(
        self, recipient_id: int, mailbox: str, message_id: str | None
    ) -> list[KeptReceipt]:
        """Every message kept about one recipient, in inbox order: those tied to it, and
        the untrusted ones (tied to nobody) that name its sending ``message_id`` in
        ``mailbox``, the one that sent it (the recipient's own: the message ids of two
        mailboxes may meet)."""
        rows = await self._database.db.execute_fetchall(
            f"SELECT {_RECEIPT} FROM receipt x WHERE x.recipient_id = ?"  # noqa: S608 - constants
            f" UNION ALL SELECT {_RECEIPT} FROM receipt x INDEXED BY receipt_orphan"
            " WHERE x.recipient_id IS NULL"
            " AND x.mailbox = ? AND x.message_id = ? AND x.suspicious IS NOT NULL"
            " ORDER BY 1",
            (recipient_id, mailbox, message_id),
        )
        return [
            KeptReceipt._make((*row[:2], None if row[2] is None else bool(row[2]), *row[3:]))
            for row in rows
        ]
