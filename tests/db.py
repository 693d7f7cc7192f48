"""Opening a massiva database directly, as another process would, on either engine."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from massiva.dburl import is_url
from massiva.store import Store
from massiva.store.database import SqliteDatabase
from massiva.store.postgres import PostgresDatabase, translate


class Connection:
    """A plain connection (sqlite3, or psycopg in autocommit) that runs the SQL massiva's
    queries are written in: SQLite's placeholders, translated for PostgreSQL."""

    def __init__(self, raw: sqlite3.Connection | psycopg.Connection[Any]) -> None:
        self.raw = raw
        self.postgresql = isinstance(raw, psycopg.Connection)

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        """Run one statement; its cursor (fetchone, fetchall, rowcount)."""
        if not self.postgresql:
            return self.raw.execute(sql, params)
        if params:
            return self.raw.execute(translate(sql), params)
        return self.raw.execute(translate(sql, False))

    def executemany(self, sql: str, params: Sequence[Any]) -> None:
        """Run one statement for each set of parameters."""
        if self.postgresql:
            assert isinstance(self.raw, psycopg.Connection)
            with self.raw.cursor() as cursor:
                cursor.executemany(translate(sql), params)
        else:
            assert isinstance(self.raw, sqlite3.Connection)
            self.raw.executemany(sql, params)


def target(where: Store | Path | str) -> Path | str:
    """The file or URL of ``where``."""
    if isinstance(where, Store):
        database = where.database
        if isinstance(database, SqliteDatabase):
            return database.path
        assert isinstance(database, PostgresDatabase)
        return database.conninfo
    return where


@contextmanager
def connect(where: Store | Path | str) -> Iterator[Connection]:
    """A plain connection to the database of ``where`` (a store, a SQLite file or a
    PostgreSQL URL) for the block: what it writes is committed at the end (rolled back
    on an error), then the connection is closed.

    ``with sqlite3.connect(...)`` alone commits but leaves the connection open, which
    Python 3.13 reports as a ResourceWarning, an error in this suite.
    """
    found = target(where)
    if is_url(found):
        with psycopg.connect(str(found), autocommit=True) as pg:
            yield Connection(pg)
        return
    connection = sqlite3.connect(found)
    try:
        with connection:
            yield Connection(connection)
    finally:
        connection.close()


def contents(where: Store | Path | str) -> str:
    """Everything the database of ``where`` holds, as text (SQLite's dump; every row of
    every table of PostgreSQL's)."""
    with connect(where) as db:
        if not db.postgresql:
            assert isinstance(db.raw, sqlite3.Connection)
            return "\n".join(db.raw.iterdump())
        tables = db.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = 'public' ORDER BY table_name"
        ).fetchall()
        return "\n".join(
            f"{table}: {row!r}"
            for (table,) in tables
            for row in db.execute(f'SELECT * FROM "{table}"').fetchall()
        )
