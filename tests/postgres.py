"""A real PostgreSQL server for the tests, run from Debian's binaries.

``PostgresServer.start(base)`` makes a throwaway cluster (``initdb``), starts it with
``pg_ctl`` listening on a unix socket only (no TCP port, so parallel runs never clash),
and hands out libpq URLs for its databases. Settings trade durability for speed:
a test cluster is never worth an fsync.

As root (how these machines run the tests) ``initdb`` and ``pg_ctl`` refuse to run, so
they run as the ``postgres`` system user that Debian's ``postgresql`` package creates.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg import sql
from psycopg.abc import Query

INSTALL_HINT = (
    "no PostgreSQL server binaries found (no /usr/lib/postgresql/<N>/bin/initdb, and "
    "pg_config gives none): install Debian's postgresql package "
    "(apt-get install postgresql)"
)
# Fixed rather than left to the default so the socket's name (.s.PGSQL.<port>) is known;
# with no TCP listener the number cannot clash with anything.
PORT = 5432
# sun_path is 108 bytes with the terminating NUL; PostgreSQL refuses longer socket paths.
MAX_SOCKET_PATH = 107
LOG_TAIL_LINES = 40
# Seconds pg_ctl waits for start/stop, and we wait for the first connection.
TIMEOUT = 60


class PostgresError(RuntimeError):
    """The test server could not be found, started or stopped."""


def find_bindir() -> Path:
    """The folder of PostgreSQL's server binaries: the newest Debian
    ``/usr/lib/postgresql/<N>/bin`` that has ``initdb``, else ``pg_config --bindir``."""
    root = Path("/usr/lib/postgresql")
    versions: list[tuple[tuple[int, ...], Path]] = []
    if root.is_dir():
        for child in root.iterdir():
            if re.fullmatch(r"\d+(\.\d+)*", child.name) and (child / "bin" / "initdb").is_file():
                versions.append((tuple(int(p) for p in child.name.split(".")), child / "bin"))
    if versions:
        return max(versions)[1]
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        result = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        )
        bindir = Path(result.stdout.strip())
        if result.returncode == 0 and (bindir / "initdb").is_file():
            return bindir
    raise PostgresError(INSTALL_HINT)


def _clean_env() -> dict[str, str]:
    """The environment without libpq's PG* variables, which would otherwise redirect
    initdb/pg_ctl (PGDATA, PGPORT, ...) away from what the command line says."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


def _has_c_utf8() -> bool:
    """Whether the C.UTF-8 locale exists here (glibc lists it as ``C.utf8``)."""
    locale = shutil.which("locale")
    if locale is None:
        return False
    result = subprocess.run([locale, "-a"], capture_output=True, text=True, check=False)
    names = {line.strip().lower().replace("-", "") for line in result.stdout.splitlines()}
    return "c.utf8" in names


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of ``path``, or a note that it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        return f"(no server log: {error})"
    return "\n".join(text.splitlines()[-lines:])


class PostgresServer:
    """One running PostgreSQL cluster, reachable through a unix socket only."""

    def __init__(self, base: Path, bindir: Path, home: Path, run_as: str | None) -> None:
        self.base = base
        self.bindir = bindir
        # The server's own folder: data/, socket/, and the log.
        self.home = home
        self.data = home / "data"
        self.socket_dir = home / "socket"
        self.log = home / "postgres.log"
        self._run_as = run_as
        self._stopped = False

    # ---- lifecycle -----------------------------------------------------------------

    @classmethod
    def start(cls, base: Path) -> PostgresServer:
        """initdb a fresh cluster and start it; ``base`` keeps the server log after
        ``stop()``. Raises ``PostgresError`` (with the log's tail) if it will not start."""
        bindir = find_bindir()
        run_as = "postgres" if os.geteuid() == 0 else None
        owner: pwd.struct_passwd | None = None
        if run_as is not None:
            try:
                owner = pwd.getpwnam(run_as)
            except KeyError:
                raise PostgresError(
                    "running as root, so initdb must run as the 'postgres' user, which "
                    "does not exist: install Debian's postgresql package "
                    "(apt-get install postgresql)"
                ) from None
            if shutil.which("runuser") is None:
                raise PostgresError("running as root, and runuser (util-linux) is missing")
        base.mkdir(parents=True, exist_ok=True)
        # The server lives in a short folder under the system temp dir, not in ``base``:
        # as root, the postgres user must traverse every parent of its data and socket
        # folders, and pytest's tmp dirs (/tmp/pytest-of-root, 0o700) forbid that; and
        # the socket's path must fit in 107 bytes, which a deep ``base`` may not.
        home = Path(tempfile.mkdtemp(prefix="massiva-pg-"))
        server = cls(base, bindir, home, run_as)
        try:
            socket_path = server.socket_dir / f".s.PGSQL.{PORT}"
            if len(os.fsencode(socket_path)) > MAX_SOCKET_PATH:
                raise PostgresError(f"socket path too long for a unix socket: {socket_path}")
            server.data.mkdir()
            server.socket_dir.mkdir()
            if owner is not None:
                server._open_to(owner.pw_uid, owner.pw_gid)
            server._initdb()
            server._pg_ctl("start", "-l", str(server.log), "-o", server._server_options())
            server._wait_ready()
        except BaseException as error:
            log = _tail(server.log)
            server.stop()
            if isinstance(error, PostgresError | subprocess.SubprocessError | psycopg.Error):
                raise PostgresError(f"{error}\n--- server log (tail) ---\n{log}") from error
            raise
        atexit.register(
            server.stop
        )  # a session that exits without stop() must not leave a postgres behind
        return server

    def _open_to(self, uid: int, gid: int) -> None:
        """Give the server's folder to the postgres user, and check it can reach it."""
        self.home.chmod(0o755)
        for path in (self.home, self.data, self.socket_dir):
            os.chown(path, uid, gid)
        for parent in self.home.parents:
            if not parent.stat().st_mode & 0o001:
                raise PostgresError(
                    f"the postgres user cannot traverse {parent} (no o+x): "
                    "set TMPDIR to a folder it can reach"
                )

    def _initdb(self) -> None:
        locale = ["--locale=C.UTF-8"] if _has_c_utf8() else ["--no-locale"]
        self._run(
            str(self.bindir / "initdb"),
            "--pgdata",
            str(self.data),
            "--auth=trust",
            "-U",
            "postgres",
            "--encoding=UTF8",
            *locale,
            "--no-sync",  # the cluster dies with the test run: flushing it is wasted time
        )

    def _server_options(self) -> str:
        """``postgres`` options for ``pg_ctl -o``, which a shell splits again: quoted."""
        settings = {
            "listen_addresses": "",  # unix socket only: no TCP port to clash or expose
            "unix_socket_directories": str(self.socket_dir),
            "port": str(PORT),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "300",
        }
        return " ".join(f"-c {shlex.quote(f'{k}={v}')}" for k, v in settings.items())

    def _wait_ready(self) -> None:
        """Return once a connection succeeds (pg_ctl -w has waited already: this proves
        the socket works for libpq too)."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                with psycopg.connect(self.url("postgres"), connect_timeout=5):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def restart(self, down_for: float = 0.0) -> None:
        """``pg_ctl restart -m fast``: ends every connection, and returns once the server
        accepts connections again; with ``down_for``, it stays stopped that many seconds
        first (clients find no server meanwhile)."""
        try:
            if down_for:
                self._pg_ctl("stop", "-m", "fast")
                time.sleep(down_for)
                self._pg_ctl("start", "-l", str(self.log), "-o", self._server_options())
            else:
                self._pg_ctl("restart", "-m", "fast", "-l", str(self.log))
            self._wait_ready()
        except (PostgresError, subprocess.SubprocessError, psycopg.Error) as error:
            raise PostgresError(
                f"restart failed: {error}\n--- server log (tail) ---\n{_tail(self.log)}"
            ) from error

    def stop(self) -> None:
        """Stop the server and delete its folder, keeping the log as
        ``base/postgres.log``. Safe to call again; never leaves a postgres running."""
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        try:
            if (self.data / "postmaster.pid").exists():
                self._shut_down()
        finally:
            with contextlib.suppress(OSError):
                shutil.copyfile(self.log, self.base / "postgres.log")
            shutil.rmtree(self.home, ignore_errors=True)

    def _shut_down(self) -> None:
        """pg_ctl stop -m fast, then -m immediate, then SIGKILL to the postmaster."""
        pid = self._postmaster_pid()
        for mode in ("fast", "immediate"):
            with contextlib.suppress(PostgresError, subprocess.SubprocessError):
                self._pg_ctl("stop", "-m", mode)
                return
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _postmaster_pid(self) -> int | None:
        try:
            first = (self.data / "postmaster.pid").read_text().split("\n", 1)[0]
            return int(first)
        except (OSError, ValueError):
            return None

    # ---- commands ------------------------------------------------------------------

    def _pg_ctl(self, action: str, *args: str) -> None:
        pg_ctl = str(self.bindir / "pg_ctl")
        self._run(pg_ctl, action, "-w", "-t", str(TIMEOUT), "-D", str(self.data), *args)

    def _run(self, *command: str) -> None:
        """Run a server binary, as the postgres user when we are root."""
        if self._run_as is not None:
            command = ("runuser", "-u", self._run_as, "--", *command)
        result = subprocess.run(
            command,
            # The server's folder, not ours: the postgres user may not be able to enter
            # the current directory (e.g. /root), and initdb warns then.
            cwd=self.home,
            env=_clean_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT + 30,
            check=False,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()
            raise PostgresError(f"{shlex.join(command)} exited with {result.returncode}:\n{output}")

    # ---- databases -----------------------------------------------------------------

    def url(self, dbname: str) -> str:
        """The libpq URL of ``dbname``, through the unix socket, as user postgres."""
        return f"postgresql://postgres@/{quote(dbname, safe='')}?host={quote(str(self.socket_dir))}"

    def execute(self, query: Query, dbname: str = "postgres") -> list[tuple[Any, ...]]:
        """Run one statement in autocommit on a fresh connection; its rows, if any."""
        with psycopg.connect(self.url(dbname), autocommit=True) as connection:
            cursor = connection.execute(query)
            return cursor.fetchall() if cursor.description is not None else []

    def create_database(self, name: str, template: str | None = None) -> None:
        """CREATE DATABASE ``name``, copied from ``template`` if given (the template must
        have no open connection while it is copied)."""
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            statement = sql.SQL("{} TEMPLATE {}").format(statement, sql.Identifier(template))
        self.execute(statement)

    def drop_database(self, name: str) -> None:
        """DROP DATABASE ``name`` if it exists, ending any connection still open to it."""
        self.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
