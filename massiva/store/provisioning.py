"""Mailboxes and own domains as last seen at the vendor (never a password)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from massiva.store.database import Database
from massiva.times import from_db, to_db


@dataclass(frozen=True)
class MailboxRow:
    """A mailbox as last seen at the vendor."""

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


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


class ProvisioningQueries:
    """The ``mailbox`` and ``domain`` tables."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def save_mailboxes(self, rows: Iterable[MailboxRow]) -> None:
        """Insert or update mailboxes by their vendor id, in one transaction."""
        async with self._database.transaction() as db:
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
        cursor = await self._database.db.execute(
            "SELECT id, address, box_type, state, expires, updated_at FROM mailbox"
            " ORDER BY address, id"
        )
        return [
            MailboxRow(r[0], r[1], r[2], r[3], _day(r[4]), from_db(r[5]))
            for r in await cursor.fetchall()
        ]

    async def save_domains(self, rows: Iterable[DomainRow]) -> None:
        """Insert or update own domains by their vendor id, in one transaction."""
        async with self._database.transaction() as db:
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
