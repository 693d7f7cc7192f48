"""Receipts and the reconciler's cursor: what the mailbox said, stored once, and where the
last reading of each inbox stopped.

Every message read from a mailbox is stored once, keyed by (mailbox, inbox id), so that
reading a page again changes nothing. The moves a receipt causes are decided by
:mod:`massiva.reconcile`; here they are written, in the same short transaction as the
receipts that cause them (:meth:`ReceiptQueries.batch`).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from massiva.lifecycle import EXPIRY
from massiva.store.database import Connection, Database, Engine
from massiva.times import from_db, to_db


@dataclass(frozen=True)
class Cursor:
    """Where the last reading of a mailbox's inbox stopped (see massiva/reconcile.py)."""

    mailbox: str
    order: str | None  # "newest_first", "oldest_first", or None: not known, read every page
    last_id: int | None  # the highest inbox id read
    position: int | None  # how many messages had an id <= last_id (oldest first only)
    page_size: int | None
    total: int  # messages in the inbox, as last seen
    rescan: bool  # read every page next time (a deletion was seen during the last run)


@dataclass(frozen=True)
class Tracked:
    """A posted recipient as the reconciler moves it."""

    id: int
    address: str
    subject: str
    state: str
    message_id: str | None
    sent_at: datetime | None
    accepted_at: datetime | None
    delivered_at: datetime | None
    failed_at: datetime | None
    reason: str | None


@dataclass(frozen=True)
class ReceiptRow:
    """One message of a mailbox, as stored."""

    inbox_id: int
    kind: str
    final: bool | None
    message_id: str | None
    recipient_id: int | None
    sender: str
    recipient: str
    subject: str
    date_raw: str
    date_utc: datetime | None
    date_offset: str | None
    body: str | None
    error: str | None
    suspicious: str | None = None  # why it is not trusted: it moves nothing
    body_tries: int = 0  # failed fetches of its body (the next reconcile tries again)


_TRACKED = (
    "r.id, r.address, r.subject, r.state, r.message_id, r.sent_at, r.accepted_at,"
    " r.delivered_at, r.failed_at, r.reason"
)
_RECEIPT = (
    "x.inbox_id, x.kind, x.final, x.message_id, x.recipient_id, x.sender, x.recipient,"
    " x.subject, x.date_raw, x.date_utc, x.date_offset, x.body, x.error, x.suspicious"
)


_EXPIRE = (
    f"UPDATE recipient SET state = '{EXPIRY.target}', reason = ?, updated_at = ?"  # noqa: S608
    f" WHERE {EXPIRY.sql_guard()} AND COALESCE(accepted_at, sent_at) < ?"
    " AND mailbox = ? RETURNING id"
)


def _moment(value: object) -> datetime | None:
    return from_db(str(value)) if value is not None else None


# Trusted receipts of a mailbox, tied to a recipient, whose body is not kept yet.
_BODILESS = (
    "receipt INDEXED BY receipt_bodiless WHERE mailbox = ? AND body IS NULL"
    " AND recipient_id IS NOT NULL AND suspicious IS NULL"
)


def body_sha256(body: str | None) -> str | None:
    """The SHA-256 of a receipt body as kept (its UTF-8 bytes), None without one."""
    return hashlib.sha256(body.encode("utf-8")).hexdigest() if body is not None else None


# PostgreSQL's text cannot hold NUL, which anyone may write into a mailbox (JSON's
# \u0000): there it is kept as U+FFFD, or one stranger's message would stop every
# reading of the mailbox. SQLite keeps the text as written.
_NUL = "\x00"
_REPLACEMENT = "\ufffd"


def _kept(text: str | None, engine: Engine) -> str | None:
    """``text`` as ``engine`` can keep it."""
    if engine == "sqlite" or text is None or _NUL not in text:
        return text
    return text.replace(_NUL, _REPLACEMENT)


def _matchable(values: Collection[str], engine: Engine) -> list[str]:
    """The ``values`` a stored text may equal: on PostgreSQL none holds NUL (nor can a
    parameter)."""
    return [v for v in values if engine == "sqlite" or _NUL not in v]


def _stamp(value: datetime | None) -> str | None:
    return to_db(value) if value is not None else None


def _tracked(row: Sequence[object]) -> Tracked:
    return Tracked(
        id=int(str(row[0])),
        address=str(row[1]),
        subject=str(row[2]),
        state=str(row[3]),
        message_id=str(row[4]) if row[4] is not None else None,
        sent_at=_moment(row[5]),
        accepted_at=_moment(row[6]),
        delivered_at=_moment(row[7]),
        failed_at=_moment(row[8]),
        reason=str(row[9]) if row[9] is not None else None,
    )


def _receipt(row: Sequence[object]) -> ReceiptRow:
    def text(value: object) -> str | None:
        return str(value) if value is not None else None

    return ReceiptRow(
        inbox_id=int(str(row[0])),
        kind=str(row[1]),
        final=bool(row[2]) if row[2] is not None else None,
        message_id=text(row[3]),
        recipient_id=int(str(row[4])) if row[4] is not None else None,
        sender=str(row[5]),
        recipient=str(row[6]),
        subject=str(row[7]),
        date_raw=str(row[8]),
        date_utc=_moment(row[9]),
        date_offset=text(row[10]),
        body=text(row[11]),
        error=text(row[12]),
        suspicious=text(row[13]),
    )


def _marks(values: Collection[object]) -> str:
    return ", ".join("?" for _ in values)


class ReceiptBatch:
    """The statements of one write transaction of the reconciler (one inbox page, say)."""

    def __init__(self, db: Connection, engine: Engine) -> None:
        self._db = db
        self._engine = engine

    async def by_message_id(self, mailbox: str, message_ids: Collection[str]) -> dict[str, Tracked]:
        """The recipients posted from ``mailbox`` with these message ids.

        The sender posts one message per recipient, so a message id names one recipient;
        should two share one, the first loaded is taken.
        """
        message_ids = _matchable(message_ids, self._engine)
        if not message_ids:
            return {}
        rows = await self._db.execute_fetchall(
            f"SELECT {_TRACKED} FROM recipient r"  # noqa: S608 - constants
            f" WHERE r.mailbox = ? AND r.message_id IN ({_marks(message_ids)}) ORDER BY r.id",
            (mailbox, *message_ids),
        )
        found: dict[str, Tracked] = {}
        for row in rows:
            tracked = _tracked(row)
            assert tracked.message_id is not None
            found.setdefault(tracked.message_id, tracked)
        return found

    async def by_address(
        self, mailbox: str, addresses: Collection[str]
    ) -> dict[str, list[Tracked]]:
        """The recipients posted from ``mailbox`` at these addresses."""
        addresses = _matchable(addresses, self._engine)
        if not addresses:
            return {}
        rows = await self._db.execute_fetchall(
            f"SELECT {_TRACKED} FROM recipient r"  # noqa: S608 - constants
            f" WHERE r.mailbox = ? AND r.address IN ({_marks(addresses)})"
            " AND r.sent_at IS NOT NULL ORDER BY r.id",
            (mailbox, *addresses),
        )
        found: dict[str, list[Tracked]] = {}
        for row in rows:
            tracked = _tracked(row)
            found.setdefault(tracked.address, []).append(tracked)
        return found

    async def insert(self, mailbox: str, receipts: Sequence[ReceiptRow], seen_at: datetime) -> None:
        """Store new messages (one already stored is left as it is)."""
        seen = to_db(seen_at)
        engine = self._engine
        await self._db.executemany(
            "INSERT INTO receipt (mailbox, inbox_id, kind, final, message_id, recipient_id,"
            " sender, recipient, subject, date_raw, date_utc, date_offset, body, body_sha256,"
            " body_tries, error, suspicious, seen_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (mailbox, inbox_id) DO NOTHING",
            [
                (
                    mailbox,
                    r.inbox_id,
                    r.kind,
                    None if r.final is None else int(r.final),
                    _kept(r.message_id, engine),
                    r.recipient_id,
                    _kept(r.sender, engine),
                    _kept(r.recipient, engine),
                    _kept(r.subject, engine),
                    _kept(r.date_raw, engine),
                    _stamp(r.date_utc),
                    _kept(r.date_offset, engine),
                    _kept(r.body, engine),
                    body_sha256(_kept(r.body, engine)),
                    r.body_tries,
                    _kept(r.error, engine),
                    _kept(r.suspicious, engine),
                    seen,
                )
                for r in receipts
            ],
        )

    async def move(self, moves: Iterable[tuple[Tracked, Tracked]], now: datetime) -> None:
        """Write each (before, after) pair: a row changes only if still in its ``before``
        state (it is, inside this transaction; the guard keeps it honest)."""
        stamp = to_db(now)
        await self._db.executemany(
            "UPDATE recipient SET state = ?, accepted_at = ?, delivered_at = ?, failed_at = ?,"
            " reason = ?, updated_at = ? WHERE id = ? AND state = ?",
            [
                (
                    after.state,
                    _stamp(after.accepted_at),
                    _stamp(after.delivered_at),
                    _stamp(after.failed_at),
                    _kept(after.reason, self._engine),
                    stamp,
                    before.id,
                    before.state,
                )
                for before, after in moves
            ],
        )

    async def known_orphans(
        self, mailbox: str, recheck: str | None = None
    ) -> list[tuple[ReceiptRow, Tracked]]:
        """Stored messages tied to no recipient whose message id is now a recipient's (its
        post's answer, or an inbox search, came after the receipt was read); with them,
        those distrusted for the reason ``recheck`` alone (a reason time may undo)."""
        rows = await self._db.execute_fetchall(
            f"SELECT {_RECEIPT}, {_TRACKED} FROM receipt x INDEXED BY receipt_orphan"  # noqa: S608 - constants
            " CROSS JOIN recipient r"
            " WHERE x.mailbox = ? AND x.recipient_id IS NULL AND x.message_id IS NOT NULL"
            " AND (x.suspicious IS NULL OR x.suspicious = ?)"
            " AND r.message_id = x.message_id AND r.mailbox = x.mailbox"
            " ORDER BY x.inbox_id, r.id",
            (mailbox, recheck),
        )
        found: dict[int, tuple[ReceiptRow, Tracked]] = {}
        for row in rows:
            receipt = _receipt(row[:14])
            found.setdefault(receipt.inbox_id, (receipt, _tracked(row[14:])))
        return list(found.values())

    async def attach(self, mailbox: str, ties: Iterable[tuple[int, int, bool | None]]) -> None:
        """Tie stored messages to recipients: (inbox id, recipient id, final)."""
        await self._db.executemany(
            "UPDATE receipt SET recipient_id = ?, final = ?, suspicious = NULL"
            " WHERE mailbox = ? AND inbox_id = ?",
            [
                (recipient_id, None if final is None else int(final), mailbox, inbox_id)
                for inbox_id, recipient_id, final in ties
            ],
        )

    async def distrust(self, mailbox: str, doubts: Iterable[tuple[int, str]]) -> None:
        """Mark stored messages as not trusted: (inbox id, why). They move nothing."""
        await self._db.executemany(
            "UPDATE receipt SET suspicious = ? WHERE mailbox = ? AND inbox_id = ?",
            [(_kept(why, self._engine), mailbox, inbox_id) for inbox_id, why in doubts],
        )

    async def expire(
        self, mailbox: str, sent_before: datetime, reason: str, now: datetime
    ) -> list[int]:
        """``sent``/``accepted`` recipients of ``mailbox`` posted before ``sent_before``
        become ``expired`` with ``reason``; returns their ids. A post's time is its
        acceptance's date, the vendor's stamp (the sender's record until one comes):
        ``sent_before`` is on the vendor's clock (massiva.reconcile, "Whose clock")."""
        rows = await self._db.execute_fetchall(
            _EXPIRE, (reason, to_db(now), to_db(sent_before), mailbox)
        )
        return [int(row[0]) for row in rows]


class ReceiptQueries:
    """The ``receipt`` and ``inbox_cursor`` tables."""

    def __init__(self, database: Database) -> None:
        self._database = database

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[ReceiptBatch]:
        """One write transaction: committed on success, rolled back on error. Keep it
        short (no network inside): a sender shares the database."""
        async with self._database.transaction() as db:
            yield ReceiptBatch(db, self._database.engine)

    async def mailboxes(self) -> list[str]:
        """Every mailbox of a campaign's pool, now or before (one that sent recipients
        stays: their receipts come to it), in alphabetical order."""
        rows = await self._database.db.execute_fetchall(
            "SELECT mailbox FROM campaign_pool UNION SELECT mailbox FROM inbox_cursor ORDER BY 1"
        )
        return [str(row[0]) for row in rows]

    async def stored(self, mailbox: str, inbox_ids: Collection[int]) -> set[int]:
        """Which of ``inbox_ids`` are already stored."""
        if not inbox_ids:
            return set()
        rows = await self._database.db.execute_fetchall(
            f"SELECT inbox_id FROM receipt WHERE mailbox = ? AND inbox_id IN ({_marks(inbox_ids)})",  # noqa: S608 - constants
            (mailbox, *inbox_ids),
        )
        return {int(row[0]) for row in rows}

    async def of_recipient(self, recipient_id: int) -> list[ReceiptRow]:
        """The messages stored about one recipient, in arrival order."""
        rows = await self._database.db.execute_fetchall(
            f"SELECT {_RECEIPT} FROM receipt x WHERE x.recipient_id = ? ORDER BY x.inbox_id",  # noqa: S608 - constants
            (recipient_id,),
        )
        return [_receipt(row) for row in rows]

    async def bodiless(
        self, mailbox: str, kinds: Collection[str], max_tries: int, limit: int
    ) -> list[int]:
        """Inbox ids of trusted receipts of ``kinds`` tied to a recipient whose body is
        not kept yet, tried fewer than ``max_tries`` times, oldest first."""
        rows = await self._database.db.execute_fetchall(
            f"SELECT inbox_id FROM {_BODILESS} AND body_tries < ?"  # noqa: S608 - constants
            f" AND kind IN ({_marks(kinds)}) ORDER BY inbox_id LIMIT ?",
            (mailbox, max_tries, *kinds, limit),
        )
        return [int(row[0]) for row in rows]

    async def count_bodiless(self, mailbox: str, kinds: Collection[str]) -> int:
        """Trusted receipts of ``kinds`` tied to a recipient whose body is not kept."""
        rows = await self._database.db.execute_fetchall(
            f"SELECT count(*) FROM {_BODILESS} AND kind IN ({_marks(kinds)})",  # noqa: S608
            (mailbox, *kinds),
        )
        return int(next(iter(rows))[0])

    async def keep_bodies(
        self, mailbox: str, found: Iterable[tuple[int, str]], failed: Iterable[int]
    ) -> None:
        """Keep the bodies fetched late, (inbox id, body), with their SHA-256; count a
        failed try for the inbox ids ``failed``. A body already kept is never replaced."""
        engine = self._database.engine
        kept = [(inbox_id, _kept(body, engine)) for inbox_id, body in found]
        async with self._database.transaction() as db:
            await db.executemany(
                "UPDATE receipt SET body = ?, body_sha256 = ?"
                " WHERE mailbox = ? AND inbox_id = ? AND body IS NULL",
                [(body, body_sha256(body), mailbox, inbox_id) for inbox_id, body in kept],
            )
            await db.executemany(
                "UPDATE receipt SET body_tries = body_tries + 1 WHERE mailbox = ? AND inbox_id = ?",
                [(mailbox, inbox_id) for inbox_id in failed],
            )

    async def count_orphans(self, mailbox: str, kinds: Collection[str]) -> int:
        """Stored messages of ``kinds`` tied to no recipient."""
        rows = await self._database.db.execute_fetchall(
            "SELECT count(*) FROM receipt INDEXED BY receipt_orphan"  # noqa: S608 - constants
            " WHERE mailbox = ? AND recipient_id IS NULL AND suspicious IS NULL"
            f" AND kind IN ({_marks(kinds)})",
            (mailbox, *kinds),
        )
        return int(next(iter(rows))[0])

    async def suspicious(self, mailbox: str | None = None) -> list[tuple[str, ReceiptRow]]:
        """The messages not trusted as receipts (of one mailbox, if named), by arrival:
        (mailbox, message)."""
        rows = await self._database.db.execute_fetchall(
            f"SELECT x.mailbox, {_RECEIPT} FROM receipt x INDEXED BY receipt_suspicious"  # noqa: S608 - constants
            " WHERE x.suspicious IS NOT NULL AND (CAST(? AS TEXT) IS NULL OR x.mailbox = ?)"
            " ORDER BY x.mailbox, x.inbox_id",
            (mailbox, mailbox),
        )
        return [(str(row[0]), _receipt(row[1:])) for row in rows]

    async def cursor(self, mailbox: str) -> Cursor | None:
        """Where the last reading of ``mailbox`` stopped; None before the first."""
        rows = list(
            await self._database.db.execute_fetchall(
                "SELECT page_order, last_id, position, page_size, total, rescan"
                " FROM inbox_cursor WHERE mailbox = ?",
                (mailbox,),
            )
        )
        if not rows:
            return None
        order, last_id, position, page_size, total, rescan = rows[0]
        return Cursor(
            mailbox=mailbox,
            order=str(order) if order is not None else None,
            last_id=int(last_id) if last_id is not None else None,
            position=int(position) if position is not None else None,
            page_size=int(page_size) if page_size is not None else None,
            total=int(total),
            rescan=bool(rescan),
        )

    async def save_cursor(self, cursor: Cursor, now: datetime) -> None:
        """Remember where this reading stopped."""
        async with self._database.writing() as db:
            await db.execute(
                "INSERT INTO inbox_cursor (mailbox, page_order, last_id, position, page_size,"
                " total, rescan, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (mailbox) DO UPDATE SET page_order = excluded.page_order,"
                " last_id = excluded.last_id, position = excluded.position,"
                " page_size = excluded.page_size, total = excluded.total,"
                " rescan = excluded.rescan, updated_at = excluded.updated_at",
                (
                    cursor.mailbox,
                    cursor.order,
                    cursor.last_id,
                    cursor.position,
                    cursor.page_size,
                    cursor.total,
                    int(cursor.rescan),
                    to_db(now),
                ),
            )
