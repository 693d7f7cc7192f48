"""Both engines reach the same schema: SQLite's migrations and PostgreSQL's, compared.

The structure is read from each engine's own catalogue (SQLite's PRAGMAs and
``sqlite_master``; PostgreSQL's ``information_schema`` and ``pg_catalog``) and compared
table by table: columns (name, order, kind, NOT NULL, default), primary keys, UNIQUE
constraints, foreign keys, indexes (name, columns, partial condition) and triggers.
What cannot be read alike, the CHECK constraints and what the triggers do, is compared
by behaviour: the same statements, the same outcome on both. A migration added to one
engine only fails here.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from massiva.lifecycle import State
from massiva.store import Store
from massiva.store.schema import MIGRATIONS, POSTGRESQL_MIGRATIONS
from tests.db import Connection, connect
from tests.postgres import PostgresServer

_names = itertools.count(1)
#: PostgreSQL's own bookkeeping of its migrations (SQLite's is PRAGMA user_version).
PG_ONLY = {"schema_version"}
#: The declared kinds, as SQLite names them: PostgreSQL's 32- and 64-bit integers are
#: both SQLite's INTEGER (which holds 64 bits).
KINDS = {"bigint": "INTEGER", "integer": "INTEGER", "text": "TEXT"}
#: What the driver raises for a violated constraint, or a trigger's refusal.
REFUSED = (sqlite3.IntegrityError, psycopg.errors.IntegrityError, psycopg.errors.RaiseException)


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # SQLite's word: INTEGER, TEXT
    not_null: bool  # a primary key's columns count as NOT NULL (PostgreSQL makes them so)
    default: str | None  # as written: 'active', 0, '[]'
    numbered: bool  # the engine numbers it (SQLite's rowid alias; an identity column)


@dataclass(frozen=True)
class Index:
    columns: tuple[str, ...]
    unique: bool
    where: str | None  # a partial index's condition, spaces and brackets aside


@dataclass(frozen=True)
class ForeignKey:
    columns: tuple[str, ...]
    table: str
    to: tuple[str, ...]
    on_update: str
    on_delete: str


@dataclass(frozen=True)
class Trigger:
    table: str
    when: str  # "AFTER UPDATE OF state"


@dataclass
class Table:
    columns: list[Column]
    primary_key: tuple[str, ...]
    unique: set[tuple[str, ...]]
    foreign_keys: set[ForeignKey]
    indexes: dict[str, Index]


@dataclass
class Schema:
    version: int
    tables: dict[str, Table]
    triggers: dict[str, Trigger]


def condition(text: str | None) -> str | None:
    """A partial index's ``WHERE``, as both engines may write it: brackets, case and
    spacing aside (PostgreSQL writes ``((body IS NULL) AND (...))``)."""
    if text is None:
        return None
    return " ".join(re.sub(r"[()]", " ", text).split()).lower()


TRIGGER = re.compile(
    r"CREATE TRIGGER (\w+)\s+(BEFORE|AFTER|INSTEAD OF)\s+(INSERT|UPDATE|DELETE)"
    r"(?:\s+OF\s+([\w, ]+?))?\s+ON\s+(?:public\.)?(\w+)",
    re.IGNORECASE,
)


def trigger(sql: str) -> tuple[str, Trigger]:
    """A trigger's name, and its table and timing, from its ``CREATE TRIGGER``."""
    found = TRIGGER.match(" ".join(sql.split()))
    assert found, sql
    name, timing, event, of, table = found.groups()
    columns = f" OF {', '.join(c.strip() for c in of.split(','))}" if of else ""
    return name, Trigger(table, f"{timing.upper()} {event.upper()}{columns}")


# ---- SQLite ----------------------------------------------------------------------------


def sqlite_schema(path: Path) -> Schema:
    """The schema of the SQLite database at ``path``, from its PRAGMAs."""
    conn = sqlite3.connect(path)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        names = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        tables = {name: sqlite_table(conn, name) for name in names}
        triggers = dict(
            trigger(sql)
            for (sql,) in conn.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger'")
        )
    finally:
        conn.close()
    return Schema(version, tables, triggers)


def sqlite_table(conn: sqlite3.Connection, name: str) -> Table:
    info = conn.execute(f"PRAGMA table_info({name})").fetchall()
    key = tuple(row[1] for row in sorted((r for r in info if r[5]), key=lambda r: r[5]))
    columns = [
        Column(
            name=column,
            kind=kind.upper(),
            not_null=bool(not_null) or column in key,
            default=default,
            # Only a lone INTEGER PRIMARY KEY is the rowid: SQLite numbers it.
            numbered=key == (column,) and kind.upper() == "INTEGER",
        )
        for _, column, kind, not_null, default, _ in info
    ]
    unique, indexes = set(), {}
    for _, index, is_unique, origin, partial in conn.execute(f"PRAGMA index_list({name})"):
        cols = tuple(r[2] for r in conn.execute(f"PRAGMA index_info({index})"))
        if origin == "u":
            unique.add(cols)
        elif origin == "c":
            (sql,) = conn.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", (index,)
            ).fetchone()
            where = re.search(r"\bWHERE\b(.*)$", " ".join(sql.split()), re.IGNORECASE)
            assert bool(where) == bool(partial), sql
            indexes[index] = Index(cols, bool(is_unique), condition(where and where.group(1)))
    foreign = {}
    for row in conn.execute(f"PRAGMA foreign_key_list({name})"):
        fk_id, _, table, column, to, on_update, on_delete = row[:7]
        columns_so_far = foreign.get(fk_id, ((), table, (), on_update, on_delete))
        foreign[fk_id] = (
            (*columns_so_far[0], column),
            table,
            (*columns_so_far[2], to),
            on_update,
            on_delete,
        )
    return Table(columns, key, unique, {ForeignKey(*fk) for fk in foreign.values()}, indexes)


# ---- PostgreSQL ------------------------------------------------------------------------

_ACTIONS = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}
_COLUMNS_OF = """
    array(SELECT a.attname::text FROM unnest({keys}) WITH ORDINALITY AS k(number, place)
          JOIN pg_attribute a ON a.attrelid = {table} AND a.attnum = k.number
          ORDER BY k.place)
"""


def pg_schema(url: str) -> Schema:
    """The schema of the PostgreSQL database at ``url``, from its catalogue."""
    with psycopg.connect(url, autocommit=True) as conn:
        (version,) = conn.execute("SELECT max(version) FROM schema_version").fetchone() or (0,)
        names = [
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
                " AND table_type = 'BASE TABLE' ORDER BY table_name"
            )
        ]
        tables = {name: pg_table(conn, name) for name in names}
        triggers = dict(
            trigger(sql)
            for (sql,) in conn.execute(
                "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal"
            )
        )
    return Schema(version, tables, triggers)


def pg_table(conn: psycopg.Connection[Any], name: str) -> Table:
    constraints = conn.execute(
        f"""
        SELECT contype, {_COLUMNS_OF.format(keys="c.conkey", table="c.conrelid")},
               confrelid::regclass::text,
               {_COLUMNS_OF.format(keys="c.confkey", table="c.confrelid")},
               confupdtype, confdeltype
        FROM pg_constraint c WHERE c.conrelid = %s::regclass
        """,
        (name,),
    ).fetchall()
    key = next((tuple(cols) for kind, cols, *_ in constraints if kind == "p"), ())
    columns = [
        Column(
            name=column,
            kind=KINDS[kind],
            not_null=nullable == "NO",
            # PostgreSQL writes the type in: 'active'::text
            default=None if default is None else re.sub(r"::[\w ]+$", "", default),
            numbered=identity == "YES",
        )
        for column, kind, nullable, default, identity in conn.execute(
            "SELECT column_name, data_type, is_nullable, column_default, is_identity"
            " FROM information_schema.columns WHERE table_schema = 'public'"
            " AND table_name = %s ORDER BY ordinal_position",
            (name,),
        )
    ]
    indexes = {
        index: Index(tuple(cols), unique, condition(where))
        for index, cols, unique, where in conn.execute(
            f"""
            SELECT i.indexrelid::regclass::text,
                   {_COLUMNS_OF.format(keys="i.indkey::int2[]", table="i.indrelid")},
                   i.indisunique, pg_get_expr(i.indpred, i.indrelid)
            FROM pg_index i WHERE i.indrelid = %s::regclass
            -- the indexes that back a primary key or a UNIQUE constraint are SQLite's
            -- automatic ones: compared as those constraints
            AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
            """,
            (name,),
        )
    }
    return Table(
        columns,
        key,
        {tuple(cols) for kind, cols, *_ in constraints if kind == "u"},
        {
            ForeignKey(tuple(cols), table, tuple(to), _ACTIONS[upd], _ACTIONS[dele])
            for kind, cols, table, to, upd, dele in constraints
            if kind == "f"
        },
        indexes,
    )


# ---- the two databases -----------------------------------------------------------------


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> Path:
    """A new SQLite database, migrated from nothing."""
    path = tmp_path / "massiva.db"
    async with await Store.open(path):
        pass
    return path


@pytest.fixture
async def pg_db(postgres: PostgresServer, tmp_path: Path) -> AsyncIterator[str]:
    """A new PostgreSQL database, migrated from nothing (not the tests' template)."""
    name = f"schema_{next(_names)}"
    postgres.create_database(name)
    url = postgres.url(name)
    try:
        async with await Store.open(url, archive_dir=tmp_path / "archive"):
            pass
        yield url
    finally:
        postgres.drop_database(name)


@pytest.fixture
def schemas(sqlite_db: Path, pg_db: str) -> tuple[Schema, Schema]:
    return sqlite_schema(sqlite_db), pg_schema(pg_db)


def test_both_engines_reach_the_latest_version(schemas: tuple[Schema, Schema]) -> None:
    sqlite, postgresql = schemas

    assert sqlite.version == postgresql.version == len(MIGRATIONS)
    assert POSTGRESQL_MIGRATIONS[-1][0] == len(MIGRATIONS)
    versions = [version for version, _ in POSTGRESQL_MIGRATIONS]
    assert versions == sorted(set(versions))  # each numbered once, in order


def test_both_engines_have_the_same_tables(schemas: tuple[Schema, Schema]) -> None:
    sqlite, postgresql = schemas

    assert set(sqlite.tables) == set(postgresql.tables) - PG_ONLY
    assert set(sqlite.tables) >= {"campaign", "recipient", "receipt", "allowance", "lease"}


def test_each_table_has_the_same_columns_in_the_same_order(
    schemas: tuple[Schema, Schema],
) -> None:
    sqlite, postgresql = schemas

    for name, table in sqlite.tables.items():
        assert [c.name for c in postgresql.tables[name].columns] == [
            c.name for c in table.columns
        ], name
        for mine, theirs in zip(table.columns, postgresql.tables[name].columns, strict=True):
            assert theirs == mine, f"{name}.{mine.name}"


def test_each_table_has_the_same_keys_unique_constraints_and_foreign_keys(
    schemas: tuple[Schema, Schema],
) -> None:
    sqlite, postgresql = schemas

    for name, table in sqlite.tables.items():
        theirs = postgresql.tables[name]
        assert theirs.primary_key == table.primary_key, name
        assert theirs.unique == table.unique, name
        assert theirs.foreign_keys == table.foreign_keys, name
    assert sqlite.tables["recipient"].unique == {("campaign_id", "address", "key_values")}
    assert sqlite.tables["allowance"].primary_key == ("mailbox", "period")


def test_each_table_has_the_same_indexes(schemas: tuple[Schema, Schema]) -> None:
    sqlite, postgresql = schemas

    for name, table in sqlite.tables.items():
        assert postgresql.tables[name].indexes == table.indexes, name
    assert sqlite.tables["receipt"].indexes["receipt_bodiless"].where == (
        "body is null and recipient_id is not null"
    )


def test_both_engines_have_the_same_triggers(schemas: tuple[Schema, Schema]) -> None:
    sqlite, postgresql = schemas

    assert postgresql.triggers == sqlite.triggers
    assert set(sqlite.triggers) == {"allowance_reserve", "allowance_refund"}


# ---- behaviour: the CHECK constraints and the triggers ---------------------------------

NOW = "2026-03-10T08:00:00.000000+00:00"
BOX = "ufficio@pecmassiva.com"


@pytest.fixture
def conn(database: Path | str, tmp_path: Path) -> Iterator[Connection]:
    """A plain connection to a migrated database holding campaign 1, on each engine."""

    async def migrate() -> None:
        async with await Store.open(database, archive_dir=tmp_path / "archive"):
            pass

    asyncio.run(migrate())
    with connect(database) as connection:
        connection.execute(
            "INSERT INTO campaign (id, name, folder, mailbox, subject, body, content_hash,"
            " csv_hash, created_at, updated_at) VALUES (1, 'prova', '/c', ?, 's', 'b', 'h',"
            " 'h', ?, ?)",
            (BOX, NOW, NOW),
        )
        yield connection


def add_recipient(conn: Connection, n: int, state: str = "pending") -> None:
    conn.execute(
        "INSERT INTO recipient (id, campaign_id, row, address, fields, subject, state,"
        " updated_at) VALUES (?, 1, ?, ?, '{}', 's', ?, ?)",
        (n, n + 1, f"utente{n}@legalmail.it", state, NOW),
    )


def test_every_lifecycle_state_is_accepted(conn: Connection) -> None:
    for n, state in enumerate(State, start=1):
        add_recipient(conn, n, str(state))

    rows = conn.execute("SELECT state FROM recipient ORDER BY id").fetchall()
    assert [row[0] for row in rows] == [str(s) for s in State]


@pytest.mark.parametrize(
    ("statement", "values"),
    [
        pytest.param(
            "INSERT INTO recipient (campaign_id, row, address, fields, subject, state,"
            " updated_at) VALUES (1, 2, 'a@legalmail.it', '{}', 's', ?, ?)",
            [("queued", NOW), ("PENDING", NOW), ("", NOW)],
            id="recipient-state",
        ),
        pytest.param(
            "UPDATE campaign SET state = ? WHERE id = ?",
            [("finished", 1), ("ACTIVE", 1)],
            id="campaign-state",
        ),
        pytest.param(
            "INSERT INTO allowance (mailbox, period, used) VALUES (?, ?, ?)",
            [(BOX, "D2026-03-10", -1)],
            id="used",
        ),
        pytest.param(
            "INSERT INTO inbox_cursor (mailbox, page_order, total, updated_at) VALUES (?, ?, 0, ?)",
            [(BOX, "newest", NOW), (BOX, "random", NOW), (BOX, "NEWEST_FIRST", NOW)],
            id="page-order",
        ),
        pytest.param(
            "INSERT INTO settlement (recipient_id, decision, decided_by, decided_at)"
            " VALUES (1, ?, 'tester', ?)",
            [("maybe", NOW), ("Sent", NOW), ("as-sent", NOW)],
            id="decision",
        ),
    ],
)
def test_a_check_constraint_refuses_a_value_outside_its_list(
    conn: Connection, statement: str, values: list[tuple[Any, ...]]
) -> None:
    add_recipient(conn, 1)
    for params in values:
        with pytest.raises(REFUSED) as refused:
            conn.execute(statement, params)
        # The CHECK refused it, not another constraint.
        assert isinstance(refused.value, psycopg.errors.CheckViolation) or str(
            refused.value
        ).startswith("CHECK constraint failed"), (params, refused.value)


def test_the_checked_columns_accept_their_values(conn: Connection) -> None:
    add_recipient(conn, 1)

    for state in ("paused", "cancelled", "active"):
        conn.execute("UPDATE campaign SET state = ? WHERE id = 1", (state,))
    conn.execute(
        "INSERT INTO allowance (mailbox, period, used) VALUES (?, 'D2026-03-10', 0)", (BOX,)
    )
    for n, order in enumerate(("newest_first", "oldest_first", None)):
        conn.execute(
            "INSERT INTO inbox_cursor (mailbox, page_order, total, updated_at) VALUES (?, ?, 0, ?)",
            (f"box{n}@pecmassiva.com", order, NOW),
        )
    for decision in ("sent", "resend"):
        conn.execute(
            "INSERT INTO settlement (recipient_id, decision, decided_by, decided_at)"
            " VALUES (1, ?, 'tester', ?)",
            (decision, NOW),
        )

    assert conn.execute("SELECT count(*) FROM inbox_cursor").fetchone()[0] == 3
    assert conn.execute("SELECT count(*) FROM settlement").fetchone()[0] == 2


def allowance(conn: Connection) -> list[tuple[str, str, int]]:
    rows = conn.execute("SELECT mailbox, period, used FROM allowance").fetchall()
    return sorted((str(m), str(p), int(u)) for m, p, u in rows)


def move(conn: Connection, recipient: int, state: str, **columns: str | None) -> None:
    """One plain UPDATE of a recipient's state (and ``columns``), as the store makes it."""
    sets = "".join(f", {name} = ?" for name in columns)
    conn.execute(
        f"UPDATE recipient SET state = ?{sets} WHERE id = ?",
        (state, *columns.values(), recipient),
    )


def claim(conn: Connection, recipient: int, day: str = "D2026-03-10", box: str = BOX) -> None:
    move(conn, recipient, "sending", mailbox=box, allowance_day=day, allowance_month="M2026-03")


def test_the_triggers_count_a_claim_and_give_back_what_was_never_sent(
    conn: Connection,
) -> None:
    for n in range(1, 6):
        add_recipient(conn, n)
    day, month, next_day = "D2026-03-10", "M2026-03", "D2026-03-11"

    claim(conn, 1)
    claim(conn, 2)
    assert allowance(conn) == [(BOX, day, 2), (BOX, month, 2)]
    move(conn, 1, "pending")  # given back: it never left
    assert allowance(conn) == [(BOX, day, 1), (BOX, month, 1)]
    move(conn, 2, "unknown")  # no answer: it may have left, it stays counted
    assert allowance(conn) == [(BOX, day, 1), (BOX, month, 1)]
    move(conn, 2, "rejected")  # an unknown one found refused: given back
    assert allowance(conn) == [(BOX, day, 0), (BOX, month, 0)]
    claim(conn, 3, next_day)  # another Rome day, the same month
    claim(conn, 4, box="altra@pecmassiva.com")  # another mailbox of the pool
    move(conn, 3, "sent")
    move(conn, 3, "delivered")  # posted and delivered: the count stays
    conn.execute("UPDATE recipient SET reason = 'x' WHERE id = 4")  # not a move
    assert allowance(conn) == [
        ("altra@pecmassiva.com", day, 1),
        ("altra@pecmassiva.com", month, 1),
        (BOX, day, 0),
        (BOX, next_day, 1),
        (BOX, month, 1),
    ]


def test_a_claim_without_its_mailbox_is_refused_and_counts_nothing(conn: Connection) -> None:
    add_recipient(conn, 1)

    with pytest.raises(REFUSED, match="a claim must name its mailbox"):
        move(conn, 1, "sending", allowance_day="D2026-03-10", allowance_month="M2026-03")

    assert conn.execute("SELECT state FROM recipient WHERE id = 1").fetchone()[0] == "pending"
    assert allowance(conn) == []


def test_a_give_back_below_zero_is_refused_with_the_move(conn: Connection) -> None:
    add_recipient(conn, 1)
    claim(conn, 1)
    conn.execute("UPDATE allowance SET used = 0")  # as if counted elsewhere and reset

    with pytest.raises(REFUSED):
        move(conn, 1, "pending")

    assert conn.execute("SELECT state FROM recipient WHERE id = 1").fetchone()[0] == "sending"
    assert allowance(conn) == [(BOX, "D2026-03-10", 0), (BOX, "M2026-03", 0)]
