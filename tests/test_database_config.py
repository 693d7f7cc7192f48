"""Choosing the database: ``[database]`` in massiva.toml, ``MASSIVA_DATABASE_URL`` and
``--db FILE|URL``; and a PostgreSQL password, which only PostgreSQL's client reads.

``--db`` wins, then the environment's URL, then massiva.toml's ``url``, then its
``path`` (the SQLite file): read by :func:`massiva.config.load_config` and
:meth:`~massiva.config.Config.store_target`, and seen through the command line, where
``massiva status`` shows the campaigns of whichever database was chosen.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from starlette.applications import Starlette

from massiva.cli import main
from massiva.config import DATABASE_URL_ENV, ConfigError, load_config
from massiva.dburl import masked
from tests.cli import Invoke, cli, real_clock_app
from tests.postgres import PostgresServer
from tests.test_sender import make_campaign

_names = itertools.count(1)
A = "postgresql://massiva@db-a.example/massiva"
B = "postgresql://massiva@db-b.example/massiva"
#: Distinctive, so that a test can prove it appears nowhere.
SECRET = "pg-Qv5sEcReT-77ab1e"
ROLE = "massiva_app"


@pytest.fixture(autouse=True)
def no_database_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests say which variables are set: none leaks in from the shell."""
    for name in (DATABASE_URL_ENV, "PGPASSWORD", "PGSERVICE", "PGPASSFILE"):
        monkeypatch.delenv(name, raising=False)


def write_config(folder: Path, database: str) -> Path:
    """A massiva.toml in ``folder`` whose ``[database]`` table holds ``database``."""
    path = folder / "massiva.toml"
    path.write_text(f"[database]\n{database}", encoding="utf-8")
    return path


def refused(path: Path, *errors: str) -> str:
    """The message of a ConfigError for ``path`` listing ``errors``."""
    return f"{path}:\n" + "\n".join(f"  - {e}" for e in errors)


# ---- which database: load_config and store_target -------------------------------------


def test_path_alone_is_the_sqlite_file_beside_massiva_toml(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, 'path = "data/massiva.db"\n'))

    assert config.store_target(environ={}) == tmp_path / "data" / "massiva.db"
    assert config.archive_dir() == tmp_path / "data" / "massiva.db.archive"


def test_no_database_table_is_massiva_db_beside_massiva_toml(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, ""))

    assert config.store_target(environ={}) == tmp_path / "massiva.db"


def test_no_file_at_all_is_massiva_db_here_unless_the_environment_names_a_url(
    tmp_path: Path,
) -> None:
    config = load_config(cwd=tmp_path)

    assert config.store_target(environ={}) == Path("massiva.db")
    assert config.store_target(environ={DATABASE_URL_ENV: A}) == A


def test_url_in_massiva_toml_is_the_postgresql_database(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, f'url = "{A}"\narchive = "shared/archive"\n'))

    assert config.store_target(environ={}) == A
    assert config.archive_dir() == tmp_path / "shared" / "archive"  # beside massiva.toml


def test_postgres_scheme_is_a_postgresql_url_too(tmp_path: Path) -> None:
    url = "postgres://massiva@db.example/massiva"
    config = load_config(write_config(tmp_path, f'url = "{url}"\n'))

    assert config.store_target(environ={}) == url


@pytest.mark.parametrize(
    "database", ['path = "massiva.db"\n', f'url = "{A}"\n', ""], ids=["path", "url", "nothing"]
)
def test_the_environment_url_wins_over_massiva_toml(tmp_path: Path, database: str) -> None:
    config = load_config(write_config(tmp_path, database))

    assert config.store_target(environ={DATABASE_URL_ENV: B}) == B
    assert config.store_target(environ={DATABASE_URL_ENV: f"  {B}\n"}) == B


def test_an_empty_environment_url_is_no_choice(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, f'url = "{A}"\n'))

    assert config.store_target(environ={DATABASE_URL_ENV: ""}) == A
    assert config.store_target(environ={DATABASE_URL_ENV: "   "}) == A


def test_db_wins_over_the_environment_and_massiva_toml(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, f'url = "{A}"\n'))
    environ = {DATABASE_URL_ENV: B}
    url = "postgresql://massiva@db-c.example/massiva"

    by_file = config.with_overrides(database=tmp_path / "other.db")
    by_url = config.with_overrides(database=url)

    assert by_file.store_target(environ=environ) == tmp_path / "other.db"
    assert by_url.store_target(environ=environ) == url
    assert config.with_overrides().store_target(environ=environ) == B  # no --db


def test_a_non_postgresql_environment_url_names_the_variable_and_hides_a_password(
    tmp_path: Path,
) -> None:
    config = load_config(write_config(tmp_path, 'path = "massiva.db"\n'))

    with pytest.raises(ConfigError) as error:
        config.store_target(environ={DATABASE_URL_ENV: f"mysql://root:{SECRET}@db/massiva"})

    assert str(error.value) == (
        "MASSIVA_DATABASE_URL must be a postgresql:// URL, not 'mysql://root:***@db/massiva'"
        f" (unset it to use the SQLite file {tmp_path / 'massiva.db'})"
    )
    # --db chooses for itself: the variable is not even read.
    chosen = config.with_overrides(database=tmp_path / "x.db")
    assert chosen.store_target(environ={DATABASE_URL_ENV: "nonsense"}) == tmp_path / "x.db"


# ---- what massiva.toml may not hold ---------------------------------------------------


def test_path_and_url_together_are_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path, f'path = "massiva.db"\nurl = "{A}"\n')

    with pytest.raises(ConfigError) as error:
        load_config(path)

    assert str(error.value) == refused(
        path, "[database]: give path (SQLite) or url (PostgreSQL), not both"
    )


PASSWORD_IN_URL = (
    "database.url: secrets are never read from the file; leave the password out of the URL"
    " and put it in PGPASSWORD, ~/.pgpass or a service file (postgresql:///?service=NAME),"
    " which PostgreSQL's client reads"
)


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://massiva:{SECRET}@db.example/massiva",
        f"postgresql://massiva@db.example/massiva?sslmode=require&password={SECRET}",
        "postgresql://massiva:@db.example/massiva",
    ],
    ids=["user-part", "parameter", "empty"],
)
def test_a_password_in_the_url_is_refused_pointing_at_pgpassword(tmp_path: Path, url: str) -> None:
    path = write_config(tmp_path, f'url = "{url}"\n')

    with pytest.raises(ConfigError) as error:
        load_config(path)

    assert str(error.value) == refused(path, PASSWORD_IN_URL)
    assert SECRET not in str(error.value)


def test_a_url_that_is_not_postgresql_is_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path, 'url = "sqlite:///massiva.db"\n')

    with pytest.raises(ConfigError) as error:
        load_config(path)

    assert str(error.value) == refused(
        path, "database.url must be a postgresql:// URL, not 'sqlite:///massiva.db'"
    )


def test_an_unknown_key_is_refused_naming_the_known_ones(tmp_path: Path) -> None:
    path = write_config(tmp_path, f'url = "{A}"\nhost = "db.example"\n')

    with pytest.raises(ConfigError) as error:
        load_config(path)

    assert str(error.value) == refused(path, "database.host: unknown (known: path, url, archive)")


def test_a_password_key_is_refused_pointing_at_pgpassword(tmp_path: Path) -> None:
    path = write_config(tmp_path, f'url = "{A}"\npassword = "{SECRET}"\n')

    with pytest.raises(ConfigError) as error:
        load_config(path)

    assert str(error.value) == refused(
        path,
        "database.password: secrets are never read from the file; put the PostgreSQL"
        " password in PGPASSWORD, ~/.pgpass or a service file, which PostgreSQL's client"
        " reads",
    )


# ---- through the command line ----------------------------------------------------------


@pytest.fixture
def app() -> Starlette:
    return real_clock_app()


@pytest.fixture
def invoke(app: Starlette, tmp_path: Path) -> Invoke:
    """``massiva ...`` with massiva.toml's ``[database] path = "massiva.db"``."""
    return cli(app, tmp_path)


def databases(postgres: PostgresServer, count: int) -> list[str]:
    """``count`` new massiva databases on the session's server (URLs)."""
    urls = []
    for _ in range(count):
        name = f"config_{next(_names)}"
        postgres.create_database(name, template="massiva_template")
        urls.append(postgres.url(name))
    return urls


@pytest.fixture
def two(postgres: PostgresServer) -> Iterator[tuple[str, str]]:
    """Two PostgreSQL databases."""
    first, second = databases(postgres, 2)
    try:
        yield first, second
    finally:
        for url in (first, second):
            postgres.drop_database(url.split("/")[-1].split("?")[0])


def campaigns(result: Result) -> list[str]:
    """The campaigns ``massiva status --json`` shows."""
    assert result.exit_code == 0, result.output + result.stderr
    return [c["campaign"] for c in json.loads(result.stdout)["campaigns"]]


def use_url_in_massiva_toml(tmp_path: Path, url: str) -> None:
    """massiva.toml (as tests/cli.py writes it) with ``[database] url`` for its path."""
    config = tmp_path / "massiva.toml"
    text = config.read_text(encoding="utf-8")
    assert '[database]\npath = "massiva.db"\n' in text
    config.write_text(
        text.replace('[database]\npath = "massiva.db"\n', f'[database]\nurl = "{url}"\n'),
        encoding="utf-8",
    )


def test_status_shows_the_campaigns_of_the_database_chosen(
    invoke: Invoke, two: tuple[str, str], tmp_path: Path
) -> None:
    first, second = two
    for name, where in (("nel-file", ()), ("in-a", ("--db", first)), ("in-b", ("--db", second))):
        folder = make_campaign(tmp_path / name, ["mario.rossi@legalmail.it"], name)
        load = invoke(*where, "campaign", "load", str(folder))
        assert load.exit_code == 0, load.output + load.stderr
    sqlite = str(tmp_path / "massiva.db")

    assert campaigns(invoke("status", "--json")) == ["nel-file"]
    assert campaigns(invoke("status", "--json", env={DATABASE_URL_ENV: second})) == ["in-b"]
    use_url_in_massiva_toml(tmp_path, first)
    assert campaigns(invoke("status", "--json")) == ["in-a"]
    assert campaigns(invoke("status", "--json", env={DATABASE_URL_ENV: second})) == ["in-b"]
    env = {DATABASE_URL_ENV: second}
    assert campaigns(invoke("--db", sqlite, "status", "--json", env=env)) == ["nel-file"]
    assert campaigns(invoke("--db", first, "status", "--json", env=env)) == ["in-a"]


def test_a_bad_environment_url_is_a_configuration_error_on_the_command_line(
    invoke: Invoke, tmp_path: Path
) -> None:
    env = {DATABASE_URL_ENV: f"mysql://root:{SECRET}@db/massiva"}

    human = invoke("status", env=env)
    as_json = invoke("status", "--json", env=env)

    message = (
        "MASSIVA_DATABASE_URL must be a postgresql:// URL, not 'mysql://root:***@db/massiva'"
        f" (unset it to use the SQLite file {tmp_path / 'massiva.db'})"
    )
    assert (human.exit_code, human.stdout, human.stderr) == (3, "", f"Error: {message}\n")
    assert json.loads(as_json.stdout) == {"error": {"message": message, "exit_code": 3}}


def test_a_password_in_massiva_toml_is_a_configuration_error_on_the_command_line(
    invoke: Invoke, tmp_path: Path
) -> None:
    use_url_in_massiva_toml(tmp_path, f"postgresql://massiva:{SECRET}@db.example/massiva")

    result = invoke("status")

    assert result.exit_code == 3
    assert result.stderr == f"Error: {refused(tmp_path / 'massiva.toml', PASSWORD_IN_URL)}\n"
    assert SECRET not in result.output


def test_the_db_option_teaches_files_urls_and_where_the_password_goes() -> None:
    (option,) = [p for p in main.params if p.name == "database"]
    assert isinstance(option, click.Option)

    shown = CliRunner().invoke(main, ["--help"], catch_exceptions=False).stdout

    assert option.help == (
        "SQLite database file, or a postgresql:// URL (default: $MASSIVA_DATABASE_URL, else"
        " [database] url or path in massiva.toml, else massiva.db beside massiva.toml or"
        " here). Keep a PostgreSQL password out of the URL: PGPASSWORD, ~/.pgpass or a"
        " service file."
    )
    assert "--db FILE|URL" in shown
    assert " ".join(option.help.split()) in " ".join(shown.split())


# ---- a password PostgreSQL asks for ----------------------------------------------------


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A server of its own that asks every role but its superuser for a password
    (SCRAM): the session's server trusts everyone, and would prove nothing. The role
    :data:`ROLE` has the password :data:`SECRET` and owns the database ``guarded``."""
    server = PostgresServer.start(tmp_path_factory.mktemp("guarded"))
    try:
        # The superuser stays trusted (the fixture's own connections); the rest must log in.
        (server.data / "pg_hba.conf").write_text(
            "local all postgres trust\nlocal all all scram-sha-256\n", encoding="utf-8"
        )
        server.execute("SELECT pg_reload_conf()")
        server.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{SECRET}'")
        server.execute(f"CREATE DATABASE guarded OWNER {ROLE}")
        yield server
    finally:
        server.stop()


def guarded_url(server: PostgresServer) -> str:
    """The guarded database's URL, as :data:`ROLE`, without a password."""
    return server.url("guarded").replace("postgresql://postgres@", f"postgresql://{ROLE}@", 1)


def test_pgpassword_is_what_logs_in_and_is_shown_nowhere(
    invoke: Invoke, guarded: PostgresServer, tmp_path: Path
) -> None:
    url = guarded_url(guarded)
    use_url_in_massiva_toml(tmp_path, url)  # massiva.toml holds no password: it loads
    folder = make_campaign(tmp_path / "c", ["mario.rossi@legalmail.it"], "protetta")
    env = {"PGPASSWORD": SECRET}

    load = invoke("campaign", "load", str(folder), env=env)
    status = invoke("status", "--json", env=env)
    human = invoke("status", env=env)

    assert load.exit_code == 0, load.output + load.stderr
    assert campaigns(status) == ["protetta"]
    assert human.exit_code == 0
    for result in (load, status, human):
        assert SECRET not in result.stdout + result.stderr
    owner = guarded.execute(
        "SELECT tableowner FROM pg_tables WHERE tablename = 'campaign'", "guarded"
    )
    assert owner == [(ROLE,)]  # massiva logged in as the role, with PGPASSWORD's password


def test_a_wrong_pgpassword_is_an_exit_4_that_shows_no_password_anywhere(
    invoke: Invoke, guarded: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, psycopg's pool included
    url = guarded_url(guarded)
    wrong = SECRET + "-wrong"

    result = invoke("--db", url, "status", "--json", env={"PGPASSWORD": wrong})

    assert result.exit_code == 4
    error = json.loads(result.stdout)["error"]
    assert error["exit_code"] == 4
    assert error["message"].startswith(f"cannot connect to the database at {masked(url)}: ")
    logged = [record.getMessage() for record in caplog.records]
    # The server refused the password (said in the pool's log, or in the error itself).
    said = [*logged, error["message"]]
    assert any("password authentication failed" in line for line in said), said
    for text in (result.stdout, result.stderr, *logged):
        assert wrong not in text
        assert SECRET not in text
