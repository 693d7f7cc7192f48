"""The one place that owns SQL: the SQLite schema, its migrations and every query.

The database is opened in WAL mode with ``synchronous=NORMAL`` and a busy timeout, so a
reconciler and a sender can share it. Migrations are append-only scripts numbered by
``PRAGMA user_version``; each runs in its own transaction, so two processes opening an
old database at once migrate it once. No secret is ever stored here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import Self

import aiosqlite

from massiva.times import from_db, to_db

BUSY_TIMEOUT_MS = 30_000

# Append only: a released migration is never edited.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE mailbox (
        id          TEXT PRIMARY KEY,   -- the vendor's id
        address     TEXT NOT NULL,
        box_type    TEXT NOT NULL,
        state       TEXT NOT NULL,
        expires     TEXT,               -- ISO date
        updated_at  TEXT NOT NULL       -- UTC, ISO 8601
    );
    CREATE INDEX mailbox_address ON mailbox (address);
    CREATE TABLE domain (
        id          TEXT PRIMARY KEY,
        domain      TEXT NOT NULL,
        provider    TEXT NOT NULL,
        state       TEXT NOT NULL,
        expires     TEXT,
        updated_at  TEXT NOT NULL
    );
    """,
)


@dataclass(frozen=True)
class MailboxRow:
    """A mailbox as last seen at the vendor (never its password)."""

    id: str
    address: str
    box_type: str
    state: str
    expires: date | None
    updated_at: datetime


@dataclass(frozen=True)
class DomainRow:
    """An own certified domain as last seen at the vendor."""

    id: str
    domain: str
    provider: str
    state: str
    expires: date | None
    updated_at: datetime


def _day(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


class Store:
    """An open massiva database. Use ``async with await Store.open(path)``."""

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self._db = db
        self.path = path

    @classmethod
    async def open(cls, path: Path) -> Store:
        """Open (creating and migrating as needed) the database at ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await db.execute("PRAGMA journal_mode = WAL")
            await db.execute("PRAGMA synchronous = NORMAL")
            await db.execute("PRAGMA foreign_keys = ON")
            await _migrate(db)
        except BaseException:
            await db.close()
            raise
        return cls(db, path)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection."""
        await self._db.close()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction: committed on success, rolled back on any error."""
        await self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            await self._db.execute("ROLLBACK")
            raise
        await self._db.execute("COMMIT")

    # -- mailboxes ---------------------------------------------------------------------

    async def save_mailboxes(self, rows: Iterable[MailboxRow]) -> None:
        """Insert or update mailboxes by their vendor id, in one transaction."""
        async with self._transaction() as db:
            await db.executemany(
                """
            INSERT INTO mailbox (id, address, box_type, state, expires, updated_at)
            VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (id) DO UPDATE SET
                address = excluded.address, box_type = excluded.box_type,
                state = excluded.state, expires = excluded.expires,
                updated_at = excluded.updated_at
            """,
                [
                    (r.id, r.address, r.box_type, r.state, _iso(r.expires), to_db(r.updated_at))
                    for r in rows
                ],
            )

    async def mailboxes(self) -> list[MailboxRow]:
        """Every known mailbox, by address."""
        cursor = await self._db.execute(
            "SELECT id, address, box_type, state, expires, updated_at FROM mailbox"
            " ORDER BY address, id"
        )
        return [
            MailboxRow(r[0], r[1], r[2], r[3], _day(r[4]), from_db(r[5]))
            for r in await cursor.fetchall()
        ]

    # -- domains -----------------------------------------------------------------------

    async def save_domains(self, rows: Iterable[DomainRow]) -> None:
        """Insert or update own domains by their vendor id, in one transaction."""
        async with self._transaction() as db:
            await db.executemany(
                """
            INSERT INTO domain (id, domain, provider, state, expires, updated_at)
            VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (id) DO UPDATE SET
                domain = excluded.domain, provider = excluded.provider,
                state = excluded.state, expires = excluded.expires,
                updated_at = excluded.updated_at
            """,
                [
                    (r.id, r.domain, r.provider, r.state, _iso(r.expires), to_db(r.updated_at))
                    for r in rows
                ],
            )

    async def domains(self) -> list[DomainRow]:
        """Every known own domain, by name."""
        cursor = await self._db.execute(
            "SELECT id, domain, provider, state, expires, updated_at FROM domain"
            " ORDER BY domain, id"
        )
        return [
            DomainRow(r[0], r[1], r[2], r[3], _day(r[4]), from_db(r[5]))
            for r in await cursor.fetchall()
        ]


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


async def _migrate(db: aiosqlite.Connection) -> None:
    """Apply the migrations this database lacks, each in its own write transaction."""
    while True:
        await db.execute("BEGIN IMMEDIATE")
        try:
            cursor = await db.execute("PRAGMA user_version")
            row = await cursor.fetchone()
            version = int(row[0]) if row else 0
            if version >= len(MIGRATIONS):
                await db.execute("COMMIT")
                return
            for statement in _statements(MIGRATIONS[version]):
                await db.execute(statement)
            await db.execute(f"PRAGMA user_version = {version + 1}")
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise


def _statements(script: str) -> list[str]:
    # executescript() would COMMIT the open transaction; run the statements one by one.
    return [s.strip() for s in script.split(";") if s.strip()]
