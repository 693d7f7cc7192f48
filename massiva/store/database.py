"""The open database: an aiosqlite connection, its pragmas, and write transactions.

WAL mode with ``synchronous=NORMAL`` and a long busy timeout, so a reconciler, a sender
and a status command can share the file without "database is locked" errors.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Self

import aiosqlite

from massiva.store.schema import migrate

BUSY_TIMEOUT_MS = 30_000


class Database:
    """A connection with the pragmas massiva relies on; the base of :class:`Store`."""

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self.db = db
        self.path = path
        # One connection, many tasks (the sender's posts overlap): transactions take turns.
        self._writing = asyncio.Lock()

    @classmethod
    async def connect(cls, path: Path) -> aiosqlite.Connection:
        """Open (creating and migrating as needed) the database at ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await db.execute("PRAGMA journal_mode = WAL")
            await db.execute("PRAGMA synchronous = NORMAL")
            await db.execute("PRAGMA foreign_keys = ON")
            await migrate(db)
        except BaseException:
            await db.close()
            raise
        return db

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
        await self.db.close()

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[aiosqlite.Connection]:
        """The connection, for ONE writing statement (atomic by itself, committed at once).

        Writes take turns with :meth:`transaction`: a statement sent while another task's
        transaction is open would silently join it.
        """
        async with self._writing:
            yield self.db

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction (taken at once): committed on success, rolled back on error."""
        async with self._writing:
            await self._begin()
            try:
                yield self.db
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
            await self.db.execute("COMMIT")

    async def _begin(self) -> None:
        """BEGIN IMMEDIATE, undone when the caller is cancelled meanwhile: the statement
        runs on in aiosqlite's thread, and a transaction left open on the connection
        would make every later one fail ("cannot start a transaction within a
        transaction"), the lease's release first."""
        begin = asyncio.ensure_future(self.db.execute("BEGIN IMMEDIATE"))
        try:
            await asyncio.shield(begin)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await begin
                await self.db.execute("ROLLBACK")
            raise
