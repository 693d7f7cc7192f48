"""The test PostgreSQL server (tests/postgres.py) itself: it starts, copies databases
from templates, survives a restart, and stops cleanly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.postgres import PostgresServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """One server for the module: starting one takes about a second."""
    server = PostgresServer.start(tmp_path_factory.mktemp("postgres"))
    yield server
    server.stop()


def test_listens_on_its_socket_only(server: PostgresServer) -> None:
    assert server.execute("SHOW listen_addresses") == [("",)]
    assert server.execute("SHOW fsync") == [("off",)]
    assert server.execute("SHOW server_encoding") == [("UTF8",)]
    assert (server.bindir / "initdb").is_file()


def test_database_from_a_template_holds_its_table(server: PostgresServer) -> None:
    server.create_database("tpl_notes")
    server.execute("CREATE TABLE notes (id int PRIMARY KEY, body text)", "tpl_notes")
    server.execute("INSERT INTO notes VALUES (1, 'già scritto')", "tpl_notes")

    server.create_database("copy_notes", template="tpl_notes")
    with psycopg.connect(server.url("copy_notes")) as connection:
        rows = connection.execute("SELECT id, body FROM notes").fetchall()
    assert rows == [(1, "già scritto")]

    server.drop_database("copy_notes")
    names = {row[0] for row in server.execute("SELECT datname FROM pg_database")}
    assert "copy_notes" not in names
    assert "tpl_notes" in names


def test_drop_ends_open_connections(server: PostgresServer) -> None:
    server.create_database("busy")
    with psycopg.connect(server.url("busy")) as connection:
        server.drop_database("busy")
        with pytest.raises(psycopg.OperationalError):
            connection.execute("SELECT 1")


def test_restart_ends_connections_and_accepts_new_ones(server: PostgresServer) -> None:
    with psycopg.connect(server.url("postgres")) as old:
        old.execute("SELECT 1")
        server.restart()
        with pytest.raises(psycopg.OperationalError):
            old.execute("SELECT 1")
    with psycopg.connect(server.url("postgres")) as new:
        assert new.execute("SELECT 1").fetchone() == (1,)


def test_stop_twice_leaves_nothing_running(tmp_path: Path) -> None:
    server = PostgresServer.start(tmp_path)
    pid = int((server.data / "postmaster.pid").read_text().split("\n", 1)[0])
    server.stop()
    server.stop()

    assert not server.home.exists()
    assert "database system is shut down" in (tmp_path / "postgres.log").read_text()
    # The postmaster is gone, or at most a zombie waiting for init to reap it.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        state = "gone"
    assert state in {"gone", "Z"}
