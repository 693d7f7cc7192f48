"""A parallel CSV export whose exporting process is killed with SIGKILL, in real
processes: its workers stop, and nothing is left behind but the exporter's own hidden
``.partial`` file (the report itself never appears half written). On each engine: a
PostgreSQL database's URL, password included, reaches the workers out of their command
lines."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from massiva.dburl import is_url
from massiva.store import Store
from massiva.workers import ended, environment
from tests.db import connect
from tests.test_report_support import archive_of

RECIPIENTS = 60_000  # enough that a worker is still writing when its exporter is killed
STARTING_WITHIN = 120.0  # seconds; they start within 1-6 s here, even beside CPU burners
#: Put in a PostgreSQL URL (the test server trusts its socket: any password will do).
PASSWORD = "pg-Qm4sEcReT-77e1ab"

EXPORT = """
import asyncio, sys
from pathlib import Path
from massiva.report import open_report, output_file
from massiva.report.as_csv import write_csv
from massiva.store import Store

async def main():
    async with await Store.open(sys.argv[1], archive_dir=Path(sys.argv[3])) as store:
        report, _ = await open_report(store, "grande", key_columns=("codice",))
        with output_file(Path(sys.argv[2])) as out:
            await write_csv(report, out, processes=3)

asyncio.run(main())
"""


def make_database(database: Path | str, archive_dir: Path, recipients: int) -> None:
    """A migrated database (file or URL) holding one loaded campaign of ``recipients``."""

    async def migrate() -> None:
        async with await Store.open(database, archive_dir=archive_dir):
            pass

    asyncio.run(migrate())
    now = "2026-03-02T08:00:00.000000+00:00"
    with connect(database) as conn:
        conn.execute(
            "INSERT INTO campaign (id, name, folder, mailbox, subject, body, content_hash,"
            " csv_hash, created_at, updated_at) VALUES (1, 'grande', '/nowhere',"
            " 'ufficio@pecmassiva.com', 'Avviso', '<p/>', '', '', ?, ?)",
            (now, now),
        )
        conn.execute(  # as loading writes it: the pool of one
            "INSERT INTO campaign_pool (campaign_id, mailbox, position)"
            " VALUES (1, 'ufficio@pecmassiva.com', 0)"
        )
        conn.executemany(
            "INSERT INTO recipient (campaign_id, row, address, fields, subject, state,"
            " updated_at) VALUES (1, ?, ?, ?, 'Avviso', 'pending', ?)",
            [
                (
                    n + 2,
                    f"cliente.{n:06d}@legalmail.it",
                    json.dumps({"pec": f"cliente.{n:06d}@legalmail.it", "codice": f"CL-{n}"}),
                    now,
                )
                for n in range(recipients)
            ],
        )


def workers_writing_into(folder: Path) -> list[int]:
    """The pids of the export workers whose part is in ``folder``."""
    return list(worker_commands(folder))


def worker_commands(folder: Path) -> dict[int, bytes]:
    """The command lines of the export workers whose part is in ``folder``, by pid."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:  # it has just ended
            continue
        if b"massiva.report.csv_part" in command and str(folder).encode() in command:
            found[int(entry.name)] = command
    return found


def wait_for(condition: Callable[[], object], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


def with_password(database: Path | str) -> Path | str:
    """``database``, a PostgreSQL URL given :data:`PASSWORD`; a SQLite file as it is."""
    if not is_url(database):
        return database
    assert isinstance(database, str) and database.startswith("postgresql://postgres@")
    return database.replace("postgres@", f"postgres:{PASSWORD}@", 1)


def start_export(tmp_path: Path, database: Path | str) -> tuple[subprocess.Popen[str], Path]:
    """An export of ``database`` in 3 parts, started, with its 2 workers running; and
    the folder where it makes the parts' folder."""
    archive = archive_of(tmp_path)
    make_database(database, archive, RECIPIENTS)
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    exporter = subprocess.Popen(
        [
            sys.executable,
            "-c",
            EXPORT,
            str(with_password(database)),
            str(tmp_path / "r.csv"),
            str(archive),
        ],
        env={**environment(), "TMPDIR": str(temporary)},
        stderr=subprocess.PIPE,
        text=True,
    )
    # A loaded machine may take its time; an export that ends first says why.
    if (
        wait_for(
            lambda: exporter.poll() is not None or len(workers_writing_into(temporary)) == 2,
            timeout=STARTING_WITHIN,
        )
        and exporter.returncode is None
    ):
        return exporter, temporary
    running = exporter.returncode is None
    with exporter:
        exporter.kill()
        _, stderr = exporter.communicate()
    how = f"still had not after {STARTING_WITHIN:.0f} s" if running else ended(exporter.returncode)
    raise AssertionError(f"the export never started its 2 workers: it {how}; its stderr:\n{stderr}")


def test_the_workers_of_a_killed_export_stop_and_remove_their_parts(
    tmp_path: Path, database: Path | str
) -> None:
    exporter, temporary = start_export(tmp_path, database)
    commands = worker_commands(temporary)
    with exporter:
        exporter.kill()  # SIGKILL
    assert exporter.returncode == -signal.SIGKILL, "the export ended before it was killed"
    # Every user may read a command line: the database's password is never on one.
    assert len(commands) == 2
    assert not any(PASSWORD.encode() in command for command in commands.values())

    assert wait_for(lambda: not workers_writing_into(temporary)), "a worker is still running"
    assert wait_for(lambda: not any(temporary.iterdir())), (
        f"left behind: {sorted(p.name for p in temporary.rglob('*'))}"
    )
    assert not (tmp_path / "r.csv").exists()


def test_a_killed_worker_fails_the_export_and_leaves_no_report(
    tmp_path: Path, database: Path | str
) -> None:
    exporter, temporary = start_export(tmp_path, database)
    with exporter:
        try:
            os.kill(workers_writing_into(temporary)[0], signal.SIGKILL)
            _, stderr = exporter.communicate(timeout=60)
        finally:
            exporter.kill()

    assert exporter.returncode == 1
    assert stderr.strip().splitlines()[-1] == (
        "massiva.report.errors.ReportError: a process writing part of the CSV was killed"
        " by SIGKILL; no report was written"
    )
    assert not workers_writing_into(temporary)  # the other was stopped
    assert not any(temporary.iterdir())
    assert not any(tmp_path.glob("*r.csv*"))  # neither the report nor its partial file
