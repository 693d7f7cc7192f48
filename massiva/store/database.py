"""The open database: an aiosqlite connection, its pragmas, and write transactions; and
an inline connection for the sender's hot statements.

WAL mode with ``synchronous=NORMAL`` and a long busy timeout, so a reconciler, a sender
and a status command can share the file without "database is locked" errors.

The inline connection runs one short statement at a time on the event loop's own thread.
An aiosqlite call is a hop to its thread and back, and while the loop is busy posting,
every step of the statement waits for Python's lock and takes it from the loop: that
costs the send loop more than the statement itself (PERFORMANCE.md; measured with
``benchmarks/send_throughput.py``). Being a connection of its own, it never joins a
transaction open on the other; when another connection holds the write lock, it waits
for it asleep, without blocking the loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiosqlite

from massiva.store.schema import migrate

BUSY_TIMEOUT_MS = 30_000
# How long an inline statement sleeps before trying again for the write lock (doubling).
_FIRST_RETRY, _LONGEST_RETRY = 0.001, 0.05

Parameters = Sequence[Any] | Mapping[str, Any]


class Database:
    """A connection with the pragmas massiva relies on; the base of :class:`Store`."""

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self.db = db
        self.path = path
        # One connection, many tasks (the sender's posts overlap): transactions take turns.
        self._writing = asyncio.Lock()
        self._inline: sqlite3.Connection | None = None  # opened at its first use
        self._closed = False

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
        """Close the connections."""
        self._closed = True
        try:
            if self._inline is not None:
                self._inline.close()
                self._inline = None
        finally:
            await self.db.close()

    async def inline(self, sql: str, parameters: Parameters = ()) -> list[Any]:
        """The rows of ONE statement (atomic by itself, committed at once), run on the
        inline connection (see the module docstring); all of them, read before it ends.

        While another connection holds the write lock, the statement fails at once and
        nothing of it is applied: it sleeps and tries again, up to the busy timeout.
        """
        if self._closed:
            raise ValueError("the database is closed")
        if self._inline is None:
            self._inline = self._connect_inline()
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        delay = _FIRST_RETRY
        while True:
            try:
                return self._inline.execute(sql, parameters).fetchall()
            except sqlite3.OperationalError as exc:
                code = getattr(exc, "sqlite_errorcode", None)  # not every error has one
                busy = code is not None and code & 0xFF == sqlite3.SQLITE_BUSY
                if not busy or time.monotonic() + delay > deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, _LONGEST_RETRY)

    def _connect_inline(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, isolation_level=None)
        try:
            connection.execute("PRAGMA busy_timeout = 0")  # it waits asleep (inline())
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute("PRAGMA foreign_keys = ON")
            # A checkpoint (copying the log into the database, with fsyncs) would block
            # the loop: the aiosqlite connection's commits run them, in its thread.
            connection.execute("PRAGMA wal_autocheckpoint = 0")
        except BaseException:
            connection.close()
            raise
        return connection

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
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
            await self.db.execute("COMMIT")
