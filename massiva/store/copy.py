"""Moving a SQLite database into PostgreSQL (``massiva db copy``), and proving it moved.

Every table that holds the campaigns' history is copied row for row, ids kept, in one
PostgreSQL transaction (all of it or nothing), with PostgreSQL's COPY: campaigns and
their pools, recipients (states, message ids, what each post carried), receipts (bodies
and their SHA-256 as kept), allowance counters, the reconciler's cursors, operators'
settlements, provisioning. Leases are not copied: they belong to the processes of the
old database, which must be stopped. The counts of both are then compared.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import psycopg

from massiva.store import Store
from massiva.store.database import Row
from massiva.store.postgres import PostgresConnection
from massiva.times import to_db, utcnow

#: The tables copied, parents before children (their foreign keys).
TABLES = (
    "mailbox",
    "domain",
    "campaign",
    "campaign_pool",
    "recipient",
    "allowance",
    "receipt",
    "inbox_cursor",
    "settlement",
)
#: Tables whose ``id`` PostgreSQL numbers itself (its sequence goes on from the copy's).
_IDENTITY = ("campaign", "recipient", "receipt", "settlement")
BATCH = 5_000


class CopyError(Exception):
    """The copy cannot be made (the target is not empty, a process holds the source)."""


@dataclass(frozen=True)
class Copied:
    """One table: its rows in the source and in the target after the copy."""

    table: str
    source: int
    target: int


async def copy_database(
    source: Store, target: Store, progress: Callable[[str, int], None] = lambda t, n: None
) -> list[Copied]:
    """Copy ``source`` (SQLite) into ``target`` (PostgreSQL, empty), then count both.

    ``progress(table, rows)`` is called as rows go. Raises :class:`CopyError` when the
    target already holds data, or a sender or reconciler holds a lease on the source.
    """
    if source.engine != "sqlite" or target.engine != "postgresql":
        raise CopyError("copies a SQLite database into a PostgreSQL one")
    held = await source.database.db.execute_fetchall(
        "SELECT name, holder FROM lease WHERE expires_at > ?", (to_db(utcnow()),)
    )
    if held:
        name, holder = held[0]
        raise CopyError(
            f"{name} is held by {holder}: stop massiva send, run and reconcile on"
            f" {source.where} first (or wait a minute for a killed one's lease to lapse)"
        )
    filled = [(t, n) for t, n in await _counts(target) if n]
    if filled:
        table, rows = filled[0]
        raise CopyError(
            f"{target.where} already holds data ({rows} row(s) in {table}): copy into an"
            " empty database"
        )
    # SQLite's write lock for the whole copy: nothing written there meanwhile is lost.
    async with source.database.transaction(), target.database.transaction() as tx:
        assert isinstance(tx, PostgresConnection)
        for table in TABLES:
            columns = [
                str(row[1])
                for row in await source.database.db.execute_fetchall(f"PRAGMA table_info({table})")
            ]
            try:
                await tx.copy_in(table, columns, _rows(source, table, columns), progress)
            except psycopg.Error as e:  # a lost server is Unavailable already: this is data
                # The transaction is rolled back as this leaves it: nothing was copied.
                reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
                raise CopyError(f"PostgreSQL refused a row of {table}: {reason}") from None
        for table in _IDENTITY:
            await tx.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"  # noqa: S608 - constants
                f" coalesce((SELECT max(id) FROM {table}), 0) + 1, false)"
            )
    before, after = dict(await _counts(source)), dict(await _counts(target))
    return [Copied(t, before[t], after[t]) for t in TABLES]


async def _rows(source: Store, table: str, columns: list[str]) -> AsyncIterator[list[Row]]:
    """The table's rows in ``BATCH``es, in rowid order (every table here has a rowid)."""
    select = ", ".join(columns)
    after = -(2**63)
    while True:
        rows = await source.database.db.execute_fetchall(
            f"SELECT rowid, {select} FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT ?",  # noqa: S608 - constants
            (after, BATCH),
        )
        if not rows:
            return
        for row in rows:
            for column, value in zip(columns, row[1:], strict=True):
                # SQLite keeps a NUL in text; PostgreSQL cannot: say where it is.
                if isinstance(value, str) and "\x00" in value:
                    raise CopyError(
                        f"{table} rowid {row[0]}: {column} holds a NUL character (\\x00),"
                        " which PostgreSQL cannot store; remove it from the SQLite file"
                        " and copy again"
                    )
        yield [tuple(row[1:]) for row in rows]
        after = rows[-1][0]


async def _counts(store: Store) -> list[tuple[str, int]]:
    counts = []
    for table in TABLES:
        rows = await store.database.db.execute_fetchall(f"SELECT count(*) FROM {table}")  # noqa: S608 - constants
        counts.append((table, int(rows[0][0])))
    return counts
