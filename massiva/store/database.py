"""The open database, on either engine: the connection the queries use, and transactions.

The queries (the other modules of this package) are written once, in the SQL both
engines share, with SQLite's placeholders (``?`` and ``:name``); a :class:`Connection`
runs them on its engine: :class:`SqliteConnection` here, the PostgreSQL one in
:mod:`massiva.store.postgres`, which rewrites the placeholders for its driver. Where the
engines differ (JSON, string aggregation), a query asks :attr:`Database.engine`.

SQLite: WAL mode with ``synchronous=NORMAL`` and a long busy timeout, so a reconciler,
a sender and a status command can share the file without "database is locked" errors;
one connection a process, its writes taking turns.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, cast

import aiosqlite

from massiva.archive import Archive
from massiva.store.schema import migrate_sqlite

BUSY_TIMEOUT_MS = 30_000

Engine = Literal["sqlite", "postgresql"]
Row = tuple[Any, ...]
Params = Sequence[Any] | dict[str, Any]


class Unavailable(Exception):
    """The database cannot be reached (a server restarting, a network cut): what was
    being done did not happen, or its outcome is not known; try again later."""


@dataclass(frozen=True)
class Result:
    """What a statement gave: the rows it returned (if any), and how many it changed."""

    rows: list[Row]
    rowcount: int

    async def fetchone(self) -> Row | None:
        """The first row, if any."""
        return self.rows[0] if self.rows else None

    async def fetchall(self) -> list[Row]:
        """Every row."""
        return self.rows


class Connection:
    """Runs the shared SQL on one engine. ``execute`` and ``execute_fetchall`` take one
    statement; ``executemany`` the same statement for each set of parameters."""

    async def execute(self, sql: str, params: Params = ()) -> Result:
        """Run one statement."""
        raise NotImplementedError

    async def execute_fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Run one statement and return its rows."""
        return (await self.execute(sql, params)).rows

    async def executemany(self, sql: str, params: Iterable[Params]) -> None:
        """Run one statement for each set of ``params``."""
        raise NotImplementedError


class SqliteConnection(Connection):
    """A :class:`Connection` on an aiosqlite connection."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.raw = db

    async def execute(self, sql: str, params: Params = ()) -> Result:
        """Run one statement (its rows read in the same trip to aiosqlite's thread)."""
        cursor = await self.raw.execute(sql, params)
        try:
            rows = cast(list[Row], list(await cursor.fetchall())) if cursor.description else []
            return Result(rows, cursor.rowcount)
        finally:
            await cursor.close()

    async def execute_fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Run one statement and return its rows, in one trip to aiosqlite's thread."""
        return cast(list[Row], list(await self.raw.execute_fetchall(sql, params)))

    async def executemany(self, sql: str, params: Iterable[Params]) -> None:
        """Run one statement for each set of ``params``."""
        await self.raw.executemany(sql, params)


class Database:
    """An open massiva database; the base of :class:`massiva.store.Store`.

    ``db`` runs one statement at a time, each committed at once; :meth:`transaction`
    groups several. ``archive_dir`` is where the bodies and attachments as sent are kept
    (massiva/archive.py); ``where`` names the database for people (a PostgreSQL URL
    with its password masked).
    """

    engine: Engine = "sqlite"

    def __init__(self, db: Connection, where: str, archive_dir: Path) -> None:
        self.db = db
        self.where = where
        self.archive_dir = archive_dir

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
        """Close the connection(s)."""
        raise NotImplementedError

    def writing(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        """The connection, for ONE writing statement (atomic by itself, committed at once)."""
        raise NotImplementedError

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        """A write transaction: committed on success, rolled back on error."""
        raise NotImplementedError

    def snapshot(self) -> contextlib.AbstractAsyncContextManager[None]:
        """One read transaction for the block: every query of ``db`` in it (from this
        task) sees the database as it was at the first."""
        raise NotImplementedError


class SqliteDatabase(Database):
    """The embedded engine: one file, one connection a process."""

    engine: Engine = "sqlite"

    def __init__(
        self, db: aiosqlite.Connection, path: Path, archive_dir: Path | None = None
    ) -> None:
        archive = archive_dir or Archive.beside(path).root
        super().__init__(SqliteConnection(db), str(path), archive)
        self.raw = db
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
            await migrate_sqlite(db)
        except BaseException:
            await db.close()
            raise
        return db

    async def close(self) -> None:
        """Close the connection."""
        await self.raw.close()

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[Connection]:
        """Writes take turns with :meth:`transaction`: a statement sent while another
        task's transaction is open would silently join it."""
        async with self._writing:
            yield self.db

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """A write transaction, taken at once (BEGIN IMMEDIATE)."""
        async with self._writing:
            await self._begin()
            try:
                yield self.db
            except BaseException:
                await self.raw.execute("ROLLBACK")
                raise
            await self.raw.execute("COMMIT")

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[None]:
        """A read transaction on the shared connection (others' writes wait for it)."""
        async with self._writing:  # the connection's turn, not a write
            await self.raw.execute("BEGIN DEFERRED")
            try:
                yield
            finally:
                await self.raw.execute("COMMIT")  # nothing was written: ends the snapshot

    async def _begin(self) -> None:
        """BEGIN IMMEDIATE, undone when the caller is cancelled meanwhile: the statement
        runs on in aiosqlite's thread, and a transaction left open on the connection
        would make every later one fail ("cannot start a transaction within a
        transaction"), the lease's release first."""
        begin = asyncio.ensure_future(self.raw.execute("BEGIN IMMEDIATE"))
        try:
            await asyncio.shield(begin)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await begin
                await self.raw.execute("ROLLBACK")
            raise
