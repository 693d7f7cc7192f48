"""``massiva db copy --to URL``: a SQLite database moved into PostgreSQL, through the CLI.

The SQLite database is a real one: a campaign loaded, sent to the simulator (one post
lost on the way, settled by an operator and sent again), its receipts read with their
bodies, the account's mailbox and an own domain remembered. After the copy every row is
in PostgreSQL as it was (ids kept), the reports read the same from both, and the copy
goes on numbering after the copied ids. Every refusal leaves the target as it was.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from click.testing import Result
from starlette.applications import Starlette

from massiva.dburl import masked
from massiva.simulator.faults import Fault
from massiva.store.copy import TABLES
from massiva.times import to_db, utcnow
from tests.cli import ROOT, Invoke, cli, real_clock_app
from tests.db import Connection, connect
from tests.postgres import PostgresServer
from tests.test_sender import MAILBOX, make_campaign

ADDRESSES = [
    "mario.rossi@legalmail.it",
    "fail.bianchi@legalmail.it",
    "luigi.verdi@gmail.com",
    "anna.neri@legalmail.it",
]
#: Trust authentication ignores it: it is there to be never shown.
SECRET = "s3cretPW"
_names = itertools.count(1)


@pytest.fixture(autouse=True)
def no_database_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """massiva.toml's SQLite file is the source: no URL leaks in from the shell."""
    for name in ("MASSIVA_DATABASE_URL", "PGPASSWORD", "PGSERVICE", "PGPASSFILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def app() -> Starlette:
    return real_clock_app()


@pytest.fixture
def invoke(app: Starlette, tmp_path: Path) -> Invoke:
    """``massiva ...`` with massiva.toml's ``[database] path = "massiva.db"``."""
    return cli(app, tmp_path, mailbox="send_rate = 100.0\n")


def ok(result: Result) -> Result:
    """``result``, once it is known to have exited 0."""
    assert result.exit_code == 0, result.output + result.stderr
    return result


def send_with_one_lost(invoke: Invoke, app: Starlette, folder: Path, name: str) -> str:
    """Load the campaign in ``folder`` and send it, the first post's connection dropped
    before the simulator records it; the operator settles that unknown one as never
    sent, and the next send posts it. The address of the lost one."""
    ok(invoke("campaign", "load", str(folder)))
    app.state.simulator.add_fault(
        Fault(path="/send", method="POST", kind="drop_before_record", times=1)
    )
    assert invoke("send", name, "--rate", "1000").exit_code == 4  # an outcome unknown
    (lost,) = json.loads(ok(invoke("unknowns", name, "--json")).stdout)["unknowns"]
    ok(invoke("unknowns", name, "--settle", lost["address"], "--resend", "--by", "tester"))
    done = json.loads(ok(invoke("send", name, "--rate", "1000", "--json")).stdout)
    assert done["stopped"] == "done", done
    return str(lost["address"])


@pytest.fixture
def source(invoke: Invoke, app: Starlette, tmp_path: Path) -> Path:
    """The SQLite database of massiva.toml, with a row in every table copied."""
    send_with_one_lost(invoke, app, make_campaign(tmp_path / "c", ADDRESSES), "prova")
    app.state.simulator.clock.advance(600)  # the receipts come
    ok(invoke("reconcile"))
    ok(invoke("mailbox", "list"))
    ok(invoke("domain", "add", "pec.studiobianchi.it", "--provider", "infocert"))
    database = tmp_path / "massiva.db"
    assert all(counts(database).values()), counts(database)
    return database


@pytest.fixture
def target(postgres: PostgresServer) -> Iterator[str]:
    """A new, empty PostgreSQL database (no tables: the copy makes them); its URL."""
    name = f"copy_{next(_names)}"
    postgres.create_database(name)
    try:
        yield postgres.url(name)
    finally:
        postgres.drop_database(name)


def with_password(url: str) -> str:
    """``url`` (``postgresql://postgres@/...``) with :data:`SECRET` as the password."""
    return url.replace("postgresql://postgres@", f"postgresql://postgres:{SECRET}@", 1)


def counts(database: Path | str) -> dict[str, int]:
    """Rows in each copied table."""
    with connect(database) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


def columns(conn: Connection, table: str) -> list[str]:
    """``table``'s columns, as SQLite lists them."""
    return [str(row[1]) for row in conn.execute(f"PRAGMA table_info({table})").fetchall()]


def table_rows(database: Path | str, table: str, names: list[str]) -> list[tuple[Any, ...]]:
    """Every row of ``table`` (its ``names`` columns), in one order on both engines (the
    engines sort NULLs apart: the order is Python's)."""
    with connect(database) as conn:
        rows = conn.execute(f"SELECT {', '.join(names)} FROM {table}").fetchall()
    return sorted((tuple(row) for row in rows), key=repr)


def copy(invoke: Invoke, url: str, *args: str, env: dict[str, str] | None = None) -> Result:
    return invoke("db", "copy", "--to", url, *args, env=env)


def test_every_row_is_copied_as_it_was_and_each_table_counted_on_both_sides(
    invoke: Invoke, source: Path, target: str, tmp_path: Path
) -> None:
    before = counts(source)
    read_only = hashlib.sha256(source.read_bytes()).hexdigest()

    result = ok(copy(invoke, target))

    assert counts(target) == before
    assert hashlib.sha256(source.read_bytes()).hexdigest() == read_only
    with connect(source) as conn:
        names = {table: columns(conn, table) for table in TABLES}
    for table in TABLES:  # ids, states, message ids, receipt bodies and hashes alike
        copied = table_rows(target, table, names[table])
        assert copied == table_rows(source, table, names[table]), table
    lines = [line.rstrip() for line in result.stdout.splitlines()]
    assert lines[:3] == [
        f"From: {source}",
        f"Into: {target}",
        "Rows copied, counted on both sides",
    ]
    for table, rows in before.items():
        assert re.search(rf"│ {table} +│ {rows} +│ {rows} +│ ✓ │", result.stdout), table
    assert result.stdout.endswith(
        "Now use it: in massiva.toml, in place of [database] path:\n\n"
        f'    [database]\n    url = "{target}"\n'
        f'    archive = "{(tmp_path / "massiva.db.archive").resolve()}"\n'
    )
    assert result.stderr == ""
    with connect(target) as conn:  # the copy holds no lease: those were the old processes'
        assert conn.execute("SELECT count(*) FROM lease").fetchone() == (0,)


def test_json_names_the_target_and_counts_each_table_on_both_sides(
    invoke: Invoke, source: Path, target: str, tmp_path: Path
) -> None:
    before = counts(source)

    result = ok(copy(invoke, target, "--json"))

    assert json.loads(result.stdout) == {
        "target": target,
        "archive": str(tmp_path / "massiva.db.archive"),
        "tables": {t: {"sqlite": n, "postgresql": n} for t, n in before.items()},
        "verified": True,
    }
    assert before["receipt"] == 7  # 4 acceptances, 2 deliveries, 1 failure
    assert before["settlement"] == 1


def test_the_reports_read_byte_for_byte_the_same_from_sqlite_and_from_the_copy(
    invoke: Invoke, source: Path, target: str, tmp_path: Path
) -> None:
    ok(copy(invoke, target))

    def report(database: Path | str, name: str, *options: str) -> bytes:
        out = tmp_path / "reports" / name
        out.parent.mkdir(exist_ok=True)
        ok(invoke("--db", str(database), "report", "prova", "-o", str(out), *options))
        return out.read_bytes()

    for name, options in (
        ("prova.csv", ()),
        ("prova.json", ()),
        ("excel.csv", ("--format", "csv", "--excel")),
    ):
        from_sqlite = report(source, f"sqlite-{name}", *options)
        assert report(target, f"pg-{name}", *options) == from_sqlite, name
    assert b"fail.bianchi@legalmail.it" in from_sqlite
    # HTML and XLSX say when they were made: that moment aside, they are the same.
    stamp = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d")
    generated = re.compile(rb"(Rapporto generato: <strong>|dal suo database il )" + stamp.pattern)
    pages = [
        generated.subn(rb"\1WHEN", report(db, f"{db is source}.html")) for db in (source, target)
    ]
    assert [n for _, n in pages] == [2, 2]
    assert pages[0][0] == pages[1][0]
    sheets = []
    for database in (source, target):
        report(database, f"{database is source}.xlsx")
        book = openpyxl.load_workbook(tmp_path / "reports" / f"{database is source}.xlsx")
        sheets.append(
            [
                [row for row in sheet.iter_rows(values_only=True) if row[0] != "Report generated"]
                for sheet in book.worksheets
            ]
        )
        book.close()
    assert sheets[0] == sheets[1]


def test_the_copy_numbers_new_rows_after_the_copied_ones(
    invoke: Invoke, app: Starlette, source: Path, target: str, tmp_path: Path
) -> None:
    ok(copy(invoke, target))
    highest = {}
    with connect(source) as conn:
        for table in ("campaign", "recipient", "receipt", "settlement"):
            highest[table] = conn.execute(f"SELECT max(id) FROM {table}").fetchone()[0]
    on_pg = invoke_on(invoke, target)
    folder = make_campaign(
        tmp_path / "seconda", ["paolo.gialli@legalmail.it", "sara.blu@legalmail.it"], "seconda"
    )

    send_with_one_lost(on_pg, app, folder, "seconda")
    app.state.simulator.clock.advance(600)
    reconciled = ok(on_pg("reconcile", "--json"))

    # The reconciler went on from the copied cursor: only the new campaign's receipts.
    (mailbox,) = json.loads(reconciled.stdout)["mailboxes"]
    assert mailbox["receipts"] == {"accepted": 2, "delivered": 2}
    copied = counts(source)
    with connect(target) as conn:
        for table, old in highest.items():
            ids = [i for (i,) in conn.execute(f"SELECT id FROM {table} WHERE id > ?", (old,))]
            total = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            assert ids, table
            assert total == copied[table] + len(ids), table  # no copied row was touched
    on_pg_status = json.loads(ok(on_pg("status", "--json")).stdout)
    on_sqlite_status = json.loads(ok(invoke("status", "--json")).stdout)
    assert [c["campaign"] for c in on_pg_status["campaigns"]] == ["prova", "seconda"]
    # The allowance counters went on from the copied ones: 2 more posts today.
    (pg_box,), (sqlite_box,) = on_pg_status["mailboxes"], on_sqlite_status["mailboxes"]
    assert pg_box["today"]["used"] == sqlite_box["today"]["used"] + 2


def invoke_on(invoke: Invoke, database: Path | str) -> Invoke:
    """``invoke`` with ``--db database``."""

    def run(*args: str, **options: Any) -> Result:
        return invoke("--db", str(database), *args, **options)

    return run


# ---- refusals --------------------------------------------------------------------------


def test_a_target_that_holds_data_is_refused_and_left_as_it_was(
    invoke: Invoke, source: Path, target: str, tmp_path: Path
) -> None:
    other = make_campaign(tmp_path / "altra", ["x.y@legalmail.it"], "altra")
    ok(invoke_on(invoke, target)("campaign", "load", str(other)))
    held = counts(target)

    human = copy(invoke, target)
    as_json = copy(invoke, target, "--json")

    message = (
        f"nothing was copied: {target} already holds data (1 row(s) in campaign): copy into"
        " an empty database"
    )
    assert (human.exit_code, human.stdout, human.stderr) == (1, "", f"Error: {message}\n")
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout) == {"error": {"message": message, "exit_code": 1}}
    assert counts(target) == held
    with connect(target) as conn:
        assert conn.execute("SELECT name FROM campaign").fetchall() == [("altra",)]


def test_a_second_copy_into_the_same_database_is_refused(
    invoke: Invoke, source: Path, target: str
) -> None:
    ok(copy(invoke, target))

    again = copy(invoke, target)

    assert again.exit_code == 1
    assert again.stderr == (
        f"Error: nothing was copied: {target} already holds data (1 row(s) in mailbox):"
        " copy into an empty database\n"
    )
    assert counts(target) == counts(source)


def test_a_running_sender_holding_its_lease_is_refused(
    invoke: Invoke, source: Path, target: str
) -> None:
    with connect(source) as conn:
        conn.execute(
            "INSERT INTO lease (name, holder, expires_at) VALUES (?, ?, ?)",
            (f"send:{MAILBOX}", "host-a:4242:cafe1234", to_db(utcnow() + timedelta(minutes=1))),
        )

    human = copy(invoke, target)
    as_json = copy(invoke, target, "--json")

    message = (
        f"nothing was copied: send:{MAILBOX} is held by host-a:4242:cafe1234: stop massiva"
        f" send, run and reconcile on {source} first (or wait a minute for a killed one's"
        " lease to lapse)"
    )
    assert (human.exit_code, human.stdout, human.stderr) == (1, "", f"Error: {message}\n")
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout) == {"error": {"message": message, "exit_code": 1}}
    assert not any(counts(target).values())


def test_a_lapsed_lease_of_a_killed_sender_does_not_stop_the_copy(
    invoke: Invoke, source: Path, target: str
) -> None:
    with connect(source) as conn:
        conn.execute(
            "INSERT INTO lease (name, holder, expires_at) VALUES (?, ?, ?)",
            (f"send:{MAILBOX}", "host-a:4242:cafe1234", to_db(utcnow() - timedelta(minutes=1))),
        )

    ok(copy(invoke, target))

    assert counts(target) == counts(source)


def test_a_nul_in_a_text_is_refused_naming_where_it_is_and_nothing_is_copied(
    invoke: Invoke, source: Path, target: str
) -> None:
    with connect(source) as conn:  # SQLite keeps one; PostgreSQL's text cannot
        conn.execute("UPDATE recipient SET reason = ? WHERE id = 3", ("casella\x00piena",))

    result = copy(invoke, target)

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        "Error: nothing was copied: recipient rowid 3: reason holds a NUL character (\\x00),"
        " which PostgreSQL cannot store; remove it from the SQLite file and copy again\n"
    )
    # One transaction: the tables copied before recipient's were rolled back too.
    assert not any(counts(target).values())


def test_a_row_postgresql_refuses_rolls_the_whole_copy_back(
    invoke: Invoke, source: Path, target: str
) -> None:
    with connect(source) as conn:  # a settlement of no recipient (foreign keys were off)
        conn.execute(
            "INSERT INTO settlement (recipient_id, decision, decided_by, decided_at)"
            " VALUES (999, 'resend', 'tester', ?)",
            (to_db(utcnow()),),
        )

    result = copy(invoke, target)

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        "Error: nothing was copied: PostgreSQL refused a row of settlement: insert or update"
        ' on table "settlement" violates foreign key constraint'
        ' "settlement_recipient_id_fkey"\n'
    )
    assert not any(counts(target).values())  # settlement is copied last: all undone


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("sqlite:///massiva.db", "'sqlite:///massiva.db'"),
        ("massiva-copy.db", "'massiva-copy.db'"),
        (f"mysql://root:{SECRET}@db.example/massiva", "'mysql://root:***@db.example/massiva'"),
    ],
    ids=["sqlite-url", "a-file", "mysql-with-password"],
)
def test_a_to_that_is_no_postgresql_url_is_a_configuration_error(
    invoke: Invoke, source: Path, url: str, shown: str
) -> None:
    human = copy(invoke, url)
    as_json = copy(invoke, url, "--json")

    message = f"--to must be a postgresql:// URL, not {shown}"
    assert (human.exit_code, human.stdout, human.stderr) == (3, "", f"Error: {message}\n")
    assert json.loads(as_json.stdout) == {"error": {"message": message, "exit_code": 3}}
    assert SECRET not in human.stderr + as_json.stdout


def test_a_source_that_is_already_postgresql_is_a_configuration_error(
    invoke: Invoke, postgres: PostgresServer, target: str
) -> None:
    name = f"copy_{next(_names)}"
    postgres.create_database(name, template="massiva_template")
    try:
        already = with_password(postgres.url(name))

        by_option = invoke("--db", already, "db", "copy", "--to", target)
        by_environment = copy(invoke, target, env={"MASSIVA_DATABASE_URL": already})
    finally:
        postgres.drop_database(name)

    message = (
        f"Error: the database to copy from is already PostgreSQL ({masked(already)}):"
        " name the SQLite file with --db FILE\n"
    )
    assert (by_option.exit_code, by_option.stdout, by_option.stderr) == (3, "", message)
    assert (by_environment.exit_code, by_environment.stderr) == (3, message)
    assert f"postgres:***@/{name}?" in message


def test_a_missing_sqlite_file_is_a_configuration_error_and_is_not_created(
    invoke: Invoke, target: str, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere.db"

    result = invoke("--db", str(missing), "db", "copy", "--to", target)

    assert (result.exit_code, result.stderr) == (
        3,
        f"Error: {missing}: no such database file to copy\n",
    )
    assert not missing.exists()


# ---- passwords -------------------------------------------------------------------------


def test_a_password_in_the_url_is_never_shown_and_never_suggested_for_massiva_toml(
    invoke: Invoke, source: Path, postgres: PostgresServer, target: str, tmp_path: Path
) -> None:
    secret_url = with_password(target)
    name = f"copy_{next(_names)}"
    postgres.create_database(name)
    try:
        human = ok(copy(invoke, secret_url))
        as_json = ok(copy(invoke, with_password(postgres.url(name)), "--json"))
    finally:
        postgres.drop_database(name)

    for text in (human.stdout, human.stderr, as_json.stdout, as_json.stderr):
        assert SECRET not in text
    assert f"Into: {masked(secret_url)}\n" in human.stdout
    assert masked(secret_url).startswith("postgresql://postgres:***@/")
    # What to paste into massiva.toml has no password (not even a masked one, which
    # would be read as the password ***): that goes where PostgreSQL's client reads it.
    assert human.stdout.endswith(
        f'    [database]\n    url = "{target}"\n'
        f'    archive = "{(tmp_path / "massiva.db.archive").resolve()}"\n\n'
        "Keep the password out of massiva.toml: put it in PGPASSWORD, ~/.pgpass or a"
        " service file, which PostgreSQL's client reads.\n"
    )
    assert json.loads(as_json.stdout)["target"] == masked(with_password(postgres.url(name)))


@pytest.fixture
def empty() -> Iterator[Path]:
    """A socket folder where no server listens; short, as a socket's path must be."""
    folder = Path(tempfile.mkdtemp(prefix="massiva-nopg-"))
    yield folder
    shutil.rmtree(folder)


def test_an_unreachable_postgresql_is_an_exit_4_naming_it_without_its_password(
    invoke: Invoke, source: Path, empty: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"postgresql://u:{SECRET}@/db?host={empty}"

    result = copy(invoke, url, "--json")

    assert result.exit_code == 4
    error = json.loads(result.stdout)["error"]
    assert error["exit_code"] == 4
    assert error["message"].startswith(
        f"cannot connect to the database at postgresql://u:***@/db?host={empty}: "
    )
    for text in (result.stdout, result.stderr, *(r.getMessage() for r in caplog.records)):
        assert SECRET not in text


def test_an_unreachable_postgresql_says_why_in_one_line_at_once(
    tmp_path: Path, source: Path, empty: Path
) -> None:
    url = f"postgresql://u:{SECRET}@/db?host={empty}"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PG")}

    result = subprocess.run(  # a real process: what a user's terminal shows, logs included
        [sys.executable, "-m", "massiva", "--db", str(source), "db", "copy", "--to", url],
        cwd=tmp_path,
        env={**environment, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert (result.returncode, result.stdout) == (4, "")
    assert result.stderr == (
        f"Error: cannot connect to the database at postgresql://u:***@/db?host={empty}:"
        f' connection is bad: connection to server on socket "{empty}/.s.PGSQL.5432" failed:'
        " No such file or directory\n"
    )
