"""The store on PostgreSQL: psycopg 3 (async) and a psycopg-pool connection pool.

The queries are the ones SQLite runs (massiva/store/database.py): :func:`translate`
rewrites SQLite's placeholders (``?``, ``:name``) as psycopg's (``%s``, ``%(name)s``)
and drops SQLite's ``INDEXED BY`` hints (PostgreSQL's planner chooses for itself).

Every statement outside a transaction runs on a pooled connection in autocommit, so the
senders of many mailboxes write at once; a transaction holds one connection until it
ends. A server that cannot be reached raises :class:`~massiva.store.database.Unavailable`
naming the database with its password masked; the password itself comes from the URL,
``PGPASSWORD``, a password file or a service file (libpq reads them), never from
massiva's own files, and is never shown.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path
from typing import Any

import psycopg
import psycopg_pool
from psycopg import sql as pgsql

from massiva.dburl import masked
from massiva.store.database import Connection, Database, Engine, Params, Result, Row, Unavailable
from massiva.store.schema import migrate_postgresql

# The pool's retries are its own business: a failure that lasts is an Unavailable.
logging.getLogger("psycopg.pool").addHandler(logging.NullHandler())

#: Connections a process keeps open at most: a statement holds one for a few
#: milliseconds, so a service with hundreds of paced mailboxes needs few.
POOL_SIZE = 10
CONNECT_TIMEOUT_S = 10.0
#: Seconds a statement waits for a pooled connection (the server restarting, say)
#: before it fails as Unavailable, which the service says and rides out.
POOL_WAIT_S = 5.0

_TOKENS = re.compile(r"'(?:[^']|'')*'|::|:[A-Za-z_]\w*|\?|%|\bINDEXED BY \w+\s*", re.IGNORECASE)


@lru_cache(maxsize=512)
def translate(sql: str, with_params: bool = True) -> str:
    """``sql`` (SQLite's placeholders) as psycopg runs it. Without parameters psycopg
    reads no placeholders, so a ``%`` stays as it is."""

    def one(match: re.Match[str]) -> str:
        found = match.group(0)
        if found.startswith("'") or found == "::":
            return found.replace("%", "%%") if with_params else found
        if found == "?":
            return "%s"
        if found == "%":
            return "%%" if with_params else "%"
        if found.startswith(":"):
            return f"%({found[1:]})s"
        return ""  # INDEXED BY <index>

    return _TOKENS.sub(one, sql)


def _storable(params: Params) -> Params:
    """``params`` as PostgreSQL's text can hold them: a NUL (which anyone may write into
    a mailbox, and a vendor into an answer) becomes U+FFFD; the queries that keep what
    was received (massiva/store/receipts.py) do so themselves, to hash what is kept."""
    if isinstance(params, dict):
        if any(isinstance(v, str) and "\x00" in v for v in params.values()):
            return {k: _no_nul(v) for k, v in params.items()}
        return params
    if any(isinstance(v, str) and "\x00" in v for v in params):
        return [_no_nul(v) for v in params]
    return params


def _no_nul(value: Any) -> Any:
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


class PostgresConnection(Connection):
    """A :class:`Connection` on one psycopg connection (a transaction's)."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], where: str) -> None:
        self._conn = conn
        self._where = where

    async def execute(self, sql: str, params: Params = ()) -> Result:
        """Run one statement."""
        try:
            if params:
                cursor = await self._conn.execute(translate(sql), _storable(params))
            else:
                cursor = await self._conn.execute(translate(sql, False))
            rows = await cursor.fetchall() if cursor.description else []
            return Result(rows, cursor.rowcount)
        except psycopg.OperationalError as e:
            raise _unavailable(self._where, e) from None

    async def executemany(self, sql: str, params: Iterable[Params]) -> None:
        """Run one statement for each set of ``params`` (pipelined by psycopg)."""
        batch = [_storable(p) for p in params]
        if not batch:
            return
        try:
            async with self._conn.cursor() as cursor:
                await cursor.executemany(translate(sql), batch)
        except psycopg.OperationalError as e:
            raise _unavailable(self._where, e) from None

    async def copy_in(
        self,
        table: str,
        columns: Sequence[str],
        batches: AsyncIterator[list[Row]],
        progress: Callable[[str, int], None],
    ) -> None:
        """Load ``table``'s ``columns`` from ``batches`` of rows with COPY (the fastest
        way in), calling ``progress(table, rows so far)`` after each batch."""
        statement = pgsql.SQL("COPY {} ({}) FROM STDIN").format(
            pgsql.Identifier(table), pgsql.SQL(", ").join(map(pgsql.Identifier, columns))
        )
        done = 0
        try:
            async with self._conn.cursor() as cursor, cursor.copy(statement) as copy:
                async for batch in batches:
                    for row in batch:
                        await copy.write_row(row)
                    done += len(batch)
                    progress(table, done)
        except psycopg.OperationalError as e:
            raise _unavailable(self._where, e) from None


class PooledConnection(Connection):
    """A :class:`Connection` whose every statement borrows a pooled connection (in
    autocommit: each statement commits by itself), or, inside
    :meth:`PostgresDatabase.snapshot`, runs on the snapshot's."""

    def __init__(self, pool: psycopg_pool.AsyncConnectionPool, where: str) -> None:
        self._pool = pool
        self._where = where
        self.snapshot: ContextVar[PostgresConnection | None] = ContextVar("snapshot", default=None)

    async def execute(self, sql: str, params: Params = ()) -> Result:
        """Run one statement on a pooled connection (the snapshot's, in one)."""
        held = self.snapshot.get()
        if held is not None:
            return await held.execute(sql, params)
        async with _borrowed(self._pool, self._where) as conn:
            return await PostgresConnection(conn, self._where).execute(sql, params)

    async def executemany(self, sql: str, params: Iterable[Params]) -> None:
        """Run one statement for each set of ``params``, in one transaction."""
        async with _borrowed(self._pool, self._where) as conn:
            try:
                async with conn.transaction():
                    await PostgresConnection(conn, self._where).executemany(sql, params)
            except psycopg.OperationalError as e:
                raise _unavailable(self._where, e) from None


class PostgresDatabase(Database):
    """The shared engine: a server that several processes, on several hosts, use at once."""

    engine: Engine = "postgresql"

    def __init__(self, pool: psycopg_pool.AsyncConnectionPool, url: str, archive_dir: Path):
        where = masked(url)
        super().__init__(PooledConnection(pool, where), where, archive_dir)
        self._pool = pool

    @classmethod
    async def open(cls, url: str, archive_dir: Path) -> PostgresDatabase:
        """Connect to the database at ``url`` and bring its schema up to date."""
        where = masked(url)
        # One plain connection first: a server that is not there fails now, with libpq's
        # reason (the pool would retry until its timeout, then give its own); the schema
        # is brought up to date on it.
        try:
            first = await psycopg.AsyncConnection.connect(
                url, autocommit=True, connect_timeout=int(CONNECT_TIMEOUT_S)
            )
        except psycopg.OperationalError as e:
            raise Unavailable(
                f"cannot connect to the database at {where}: {_reason(e, url)}"
            ) from None
        async with first:
            await migrate_postgresql(first)
        pool: psycopg_pool.AsyncConnectionPool = psycopg_pool.AsyncConnectionPool(
            url,
            min_size=1,
            max_size=POOL_SIZE,
            # No server-side prepared statements: a plan made while a table was nearly
            # empty (the first reconcile of a big mailbox) would stay, scanning what the
            # run has since written; each statement is planned for its own values.
            kwargs={"autocommit": True, "prepare_threshold": None},
            # A connection the server dropped (it restarted) is found out before use,
            # not by the statement it would have failed.
            check=psycopg_pool.AsyncConnectionPool.check_connection,
            open=False,
            timeout=POOL_WAIT_S,
        )
        try:
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        except (psycopg_pool.PoolTimeout, psycopg.OperationalError) as e:
            await pool.close()
            raise Unavailable(
                f"cannot connect to the database at {where}: {_reason(e, url)}"
            ) from None
        return cls(pool, url, archive_dir)

    @property
    def conninfo(self) -> str:
        """The connection string, password included: for opening the same database
        again (``massiva db copy``'s check, tests); never to be shown."""
        return str(self._pool.conninfo)

    async def close(self) -> None:
        """Close every pooled connection."""
        await self._pool.close()

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[Connection]:
        """Each statement commits by itself: writers need not take turns."""
        yield self.db

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[None]:
        """A read-only REPEATABLE READ transaction on one pooled connection, which the
        queries of this task (and of the tasks it starts) use until the block ends."""
        assert isinstance(self.db, PooledConnection)
        async with _borrowed(self._pool, self.where) as conn:
            try:
                async with conn.transaction():
                    await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    entered = self.db.snapshot.set(PostgresConnection(conn, self.where))
                    try:
                        yield
                    finally:
                        self.db.snapshot.reset(entered)
            except psycopg.OperationalError as e:
                raise _unavailable(self.where, e) from None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """A transaction on one pooled connection."""
        async with _borrowed(self._pool, self.where) as conn:
            try:
                async with conn.transaction():
                    yield PostgresConnection(conn, self.where)
            except psycopg.OperationalError as e:
                raise _unavailable(self.where, e) from None


@asynccontextmanager
async def _borrowed(
    pool: psycopg_pool.AsyncConnectionPool, where: str
) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    try:
        async with pool.connection() as conn:
            yield conn
    except psycopg_pool.PoolTimeout as e:
        raise _unavailable(where, e) from None


def _unavailable(where: str, error: Exception) -> Unavailable:
    return Unavailable(f"the database at {where} is unavailable: {_reason(error, where)}")


def _reason(error: Exception, url: str) -> str:
    """The driver's first line, which never holds the password (masked if it did)."""
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return masked(first).replace(url, masked(url))
