"""What purging a mailbox needs from the database: the sendings at their outcome whose
receipts are still in the mailbox, their receipts as kept, and when each was freed
(massiva/purge.py decides; here it is read and written).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from massiva.lifecycle import FINAL
from massiva.store.database import Database
from massiva.times import to_db

_FINAL = ", ".join(f"'{state.value}'" for state in sorted(FINAL))


@dataclass(frozen=True)
class FinalSending:
    """A recipient at its outcome, whose sending's receipts may still be in the mailbox."""

    recipient_id: int
    address: str
    message_id: str


@dataclass(frozen=True)
class KeptReceipt:
    """A trusted message of a sending, as the database keeps it."""

    inbox_id: int
    kind: str
    final: bool
    body: str | None
    body_sha256: str | None


class PurgeQueries:
    """``recipient.purged_at`` and the receipts a purge must find kept."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def unpurged(self, mailbox: str) -> list[FinalSending]:
        """The sendings from ``mailbox`` whose recipient is in a final state
        (no receipt moves it again) and whose receipts were never freed, in load order."""
        rows = await self._database.db.execute_fetchall(
            "SELECT r.id, r.address, r.message_id FROM recipient r"  # noqa: S608 - constants
            f" WHERE r.mailbox = ? AND r.state IN ({_FINAL})"
            " AND r.message_id IS NOT NULL AND r.purged_at IS NULL ORDER BY r.id",
            (mailbox,),
        )
        return [FinalSending(int(row[0]), str(row[1]), str(row[2])) for row in rows]

    async def receipts(self, sending: FinalSending) -> list[KeptReceipt]:
        """The trusted messages stored about ``sending`` that name its message id: what
        ``DELETE /send/{code}`` removes from the mailbox, in arrival order. (A message
        not trusted is no evidence: it moved nobody.)"""
        rows = await self._database.db.execute_fetchall(
            "SELECT inbox_id, kind, final, body, body_sha256 FROM receipt"
            " WHERE recipient_id = ? AND message_id = ? AND suspicious IS NULL"
            " ORDER BY inbox_id",
            (sending.recipient_id, sending.message_id),
        )
        return [
            KeptReceipt(
                inbox_id=int(row[0]),
                kind=str(row[1]),
                final=bool(row[2]),
                body=str(row[3]) if row[3] is not None else None,
                body_sha256=str(row[4]) if row[4] is not None else None,
            )
            for row in rows
        ]

    async def make_durable(self) -> bool:
        """Write everything committed so far to the database file and sync it to disk;
        False when a long reader kept it from finishing (try again later).

        Commits are synced lazily (WAL, ``synchronous = NORMAL``): one a power cut
        takes back is fine while the vendor still holds the receipts, and not after they
        have been deleted there.
        """
        if self._database.engine == "postgresql":
            return True  # a commit is on disk when it returns (synchronous_commit)
        async with self._database.writing() as db:
            rows = await db.execute_fetchall("PRAGMA wal_checkpoint(FULL)")
        busy = next(iter(rows))[0]
        return int(busy) == 0

    async def purged(self, recipient_id: int, at: datetime) -> None:
        """Record that the mailbox no longer holds ``recipient_id``'s receipts."""
        async with self._database.writing() as db:
            await db.execute(
                "UPDATE recipient SET purged_at = ? WHERE id = ? AND purged_at IS NULL",
                (to_db(at), recipient_id),
            )
