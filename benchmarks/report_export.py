"""Exporting a campaign of N recipients (default 1,000,000) to CSV, beside a bare loop,
on SQLite and on PostgreSQL (``--engine``, default both).

An outbox is generated directly (SQLite: executemany; PostgreSQL: COPY, then VACUUM
ANALYZE, as autovacuum does after a load): N recipients, most delivered with two
receipts each, some accepted, failed (with a reason), expired or sent; the same rows on
both engines. Then, each in its own process so that each peak RSS is its own:
  - bare: the same values (the same columns, the key column, the subject, the mailbox
    and the receipt ids included) read with one SELECT straight into csv.writer,
    nothing converted (SQLite: sqlite3; PostgreSQL: psycopg, a server-side cursor
    fetching the store's batch of rows at a time);
  - massiva: `massiva report NAME --format csv` as the library does it (rows streamed
    in batches: key column from the JSON fields, times to Europe/Rome, the failure
    code read from a failed recipient's reason, the formula guard on every cell from
    outside, CSV quoting), written through output_file; from
    200,000 recipients by one process per core, each writing a part (the figure counts
    their start and the joining of the parts; the memory is the exporter's plus its
    largest worker's).
Targets: massiva >= 100,000 rows/s, peak RSS < 300 MB. CPU: the process's and its
workers' (user + system); on PostgreSQL the server's is shown apart (read from /proc,
when the server runs here), since there the server does the query's work. Then each
engine's figures, and PostgreSQL's over SQLite's.

PostgreSQL: the server at ``--database-url`` (a database of its own created and dropped
there), else a throwaway one (tests/postgres.py).

Run: python benchmarks/report_export.py [--rows 1000000] [--format csv|json|xlsx|html]
     [--engine sqlite|postgresql|both] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    from benchmarks.claims import Postgres

NAME = "benchmark-2026"
MAILBOX = "ufficio@pecmassiva.com"
START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
# The values massiva's report shows (massiva/store/reports.py), as stored: the bare loop.
SELECT = (
    "SELECT r.row, r.address, json_extract(r.fields, '$.\"codice_cliente\"'), r.mailbox,"
    " r.subject, r.state, r.message_id, r.sent_at, r.accepted_at, r.delivered_at,"
    " r.failed_at, r.reason,"
    " (SELECT group_concat(x.inbox_id, ' ') FROM receipt x WHERE x.recipient_id = r.id)"
    " FROM recipient r JOIN campaign c ON c.id = r.campaign_id"
    " WHERE +r.campaign_id = ? ORDER BY r.id"
)
# The same on PostgreSQL (its JSON operator, string_agg in the receipts' order).
SELECT_PG = (
    "SELECT r.row, r.address, CAST(r.fields AS json) ->> 'codice_cliente', r.mailbox,"
    " r.subject, r.state, r.message_id, r.sent_at, r.accepted_at, r.delivered_at,"
    " r.failed_at, r.reason,"
    " (SELECT string_agg(CAST(x.inbox_id AS TEXT), ' ' ORDER BY x.inbox_id) FROM receipt x"
    " WHERE x.recipient_id = r.id)"
    " FROM recipient r JOIN campaign c ON c.id = r.campaign_id"
    " WHERE r.campaign_id = %s ORDER BY r.id"
)
#: The environment variable that hands a child the PostgreSQL database's URL (a command
#: line is anyone's to read, and the URL may hold a password).
URL_ENV = "BENCH_EXPORT_DATABASE_URL"


def stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


def recipients(n: int) -> Iterator[tuple[object, ...]]:
    """Rows of the recipient table: 3,500 a day, as the Standard plan sends them."""
    for i in range(n):
        sent = START + timedelta(seconds=i * 86400 / 3500)
        kind = i % 100
        state, accepted, delivered, failed, reason = "delivered", sent, sent, None, None
        if kind < 80:
            delivered = sent + timedelta(minutes=3)
        elif kind < 90:
            state, delivered = "accepted", None
        elif kind < 95:
            state, delivered, failed = "failed", None, sent + timedelta(hours=1)
            reason = "not delivered: 5.2.2 - casella del destinatario piena (altro)"
        elif kind < 98:
            state, delivered, reason = "expired", None, "no final receipt 24 h after sending"
        else:
            state, accepted, delivered = "sent", None, None
        fields = json.dumps(
            {
                "pec": f"cliente.{i:07d}@legalmail.it",
                "nome": "Niccolò",
                "cognome": "D'Angelo",
                "codice_cliente": f"CL-{i:07d}",
                "importo": f"{(i % 100000) / 7:.2f}".replace(".", ","),
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )
        yield (
            i + 1,
            1,
            i + 2,
            f"cliente.{i:07d}@legalmail.it",
            fields,
            f"Avviso CL-{i:07d}",
            state,
            f"{20260302000000 + i}",
            stamp(sent),
            stamp(accepted) if accepted else None,
            stamp(delivered) if delivered else None,
            stamp(failed) if failed else None,
            reason,
            stamp(sent),
        )


def receipts(n: int) -> Iterator[tuple[object, ...]]:
    """An acceptance for every accepted recipient, a delivery for every delivered one."""
    inbox_id = 0
    for i in range(n):
        kind = i % 100
        if kind >= 95:
            continue
        for what in ("accepted", "delivered") if kind < 80 else ("accepted",):
            inbox_id += 1
            yield (MAILBOX, inbox_id, what, i + 1, "posta-certificata@legalmail.it", MAILBOX)


def generate(db: Path, n: int) -> None:
    """A migrated database holding one campaign of ``n`` recipients and their receipts."""
    from massiva.store import Store

    async def migrate() -> None:
        async with await Store.open(db):
            pass

    asyncio.run(migrate())
    now = stamp(START)
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute(
            "INSERT INTO campaign (id, name, folder, mailbox, subject, body, content_hash,"
            " csv_hash, created_at, updated_at) VALUES (1, ?, '/nowhere', ?, 'Avviso', '<p/>',"
            " '', '', ?, ?)",
            (NAME, MAILBOX, now, now),
        )
        conn.executemany(
            "INSERT INTO recipient (id, campaign_id, row, address, fields, subject, state,"
            " message_id, sent_at, accepted_at, delivered_at, failed_at, reason, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            recipients(n),
        )
        # Sent from the one mailbox of its pool: the report shows each row's.
        conn.execute(
            "INSERT INTO campaign_pool (campaign_id, mailbox, position) VALUES (1, ?, 0)",
            (MAILBOX,),
        )
        conn.execute("UPDATE recipient SET mailbox = ? WHERE state <> 'pending'", (MAILBOX,))
        conn.executemany(
            "INSERT INTO receipt (mailbox, inbox_id, kind, recipient_id, sender, recipient,"
            " subject, date_raw, seen_at) VALUES (?, ?, ?, ?, ?, ?, 'ricevuta', 'x', '')",
            receipts(n),
        )


def generate_pg(url: str, archive: Path, n: int) -> None:
    """The same database as :func:`generate`'s, on PostgreSQL (COPY)."""
    import psycopg

    from massiva.store import Store

    async def migrate() -> None:
        async with await Store.open(url, archive_dir=archive):
            pass

    asyncio.run(migrate())
    now = stamp(START)
    with psycopg.connect(url) as conn, conn.cursor() as cursor:
        cursor.execute(
            "INSERT INTO campaign (id, name, folder, mailbox, subject, body, content_hash,"
            " csv_hash, created_at, updated_at) VALUES (1, %s, '/nowhere', %s, 'Avviso',"
            " '<p/>', '', '', %s, %s)",
            (NAME, MAILBOX, now, now),
        )
        cursor.execute(
            "INSERT INTO campaign_pool (campaign_id, mailbox, position) VALUES (1, %s, 0)",
            (MAILBOX,),
        )
        # Every generated recipient was claimed (none is pending): each has the mailbox.
        with cursor.copy(
            "COPY recipient (id, campaign_id, row, address, fields, subject, state,"
            " message_id, sent_at, accepted_at, delivered_at, failed_at, reason, updated_at,"
            " mailbox) FROM STDIN"
        ) as copy:
            for row in recipients(n):
                copy.write_row((*row, MAILBOX))
        with cursor.copy(
            "COPY receipt (mailbox, inbox_id, kind, recipient_id, sender, recipient, subject,"
            " date_raw, seen_at) FROM STDIN"
        ) as copy:
            for row in receipts(n):
                copy.write_row((*row, "ricevuta", "x", ""))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def bare(db: Path, out: Path) -> int:
    """The same rows straight from sqlite3 into csv.writer."""
    count = 0
    with closing(sqlite3.connect(db)) as conn, out.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        for row in conn.execute(SELECT, (1,)):
            writer.writerow(row)
            count += 1
    return count


def bare_pg(url: str, out: Path) -> int:
    """The same rows straight from psycopg into csv.writer."""
    import psycopg

    from massiva.store.reports import BATCH

    count = 0
    with (
        psycopg.connect(url) as conn,
        conn.cursor(name="bare") as cursor,
        out.open("w", encoding="utf-8", newline="") as file,
    ):
        cursor.itersize = BATCH
        writer = csv.writer(file)
        cursor.execute(SELECT_PG, (1,))
        for row in cursor:
            writer.writerow(row)
            count += 1
    return count


def exporter(fmt: str) -> Callable[[Any, Path], int]:
    """The library's export, as ``massiva report`` runs it (imported here, before the
    clock starts, as bare's sqlite3 and csv are)."""
    from massiva.report import export, open_report, output_file
    from massiva.store import Store

    def ours(db: Path | str, out: Path) -> int:
        async def run() -> int:
            archive = out.with_name("archive")
            async with await Store.open(db, archive_dir=archive) as store:
                report, _ = await open_report(store, NAME, key_columns=("codice_cliente",))
                with output_file(out) as file:
                    return await export(report, fmt, file)

        return asyncio.run(run())

    return ours


def cpu_seconds() -> float:
    """This process's CPU time and its ended children's (a parallel export's workers)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def child(kind: str, where: str, fmt: str) -> None:
    """One measurement: ``where`` is the SQLite file, or the folder to write in when the
    database is PostgreSQL's (its URL in ``URL_ENV``)."""
    url = os.environ.get(URL_ENV)
    db: Path | str = url if url else Path(where)
    out = (Path(where) if url else Path(where).parent) / f"{kind}.{fmt}"
    if kind == "bare":
        run: Callable[[Any, Path], int] = bare_pg if url else bare
    else:
        run = exporter(fmt)
    started, cpu = time.perf_counter(), cpu_seconds()
    rows = run(db, out)
    elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # A parallel export's worker processes (the largest of them).
    worker_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    result = {
        "rows": rows,
        "seconds": elapsed,
        "cpu": cpu,
        "peak_mb": peak_mb,
        "worker_mb": worker_mb,
    }
    print(json.dumps(result))


def measure(
    kind: str, where: Path, fmt: str, url: str | None = None, pg: Postgres | None = None
) -> dict[str, float]:
    """Run one measurement in a process of its own (on PostgreSQL at ``url``, ``where``
    the folder to write in), with the server's CPU time meanwhile when ``pg`` reads it."""
    env = (
        {**os.environ, URL_ENV: url}
        if url
        else {k: v for k, v in os.environ.items() if k != URL_ENV}
    )
    server = pg.server_cpu() if pg is not None else None
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(where), "--format", fmt],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    result: dict[str, float] = json.loads(out)
    if server is not None and pg is not None:
        after = pg.server_cpu()
        if after is not None:
            result["server_cpu"] = after - server
    return result


def show(engine: str, fmt: str, baseline: dict[str, float], exported: dict[str, float]) -> None:
    """One engine's figures (SQLite's as this benchmark has always printed them)."""
    bare_name = {"sqlite": "bare sqlite3 + csv.writer", "postgresql": "bare psycopg + csv.writer"}
    print(f"{engine}:")
    for name, m in ((bare_name[engine], baseline), (f"massiva report --format {fmt}", exported)):
        server = f", server {m['server_cpu']:.1f} s" if "server_cpu" in m else ""
        print(
            f"{name:32s} {m['rows'] / m['seconds']:9,.0f} rows/s"
            f"  {m['seconds']:6.1f} s  peak RSS {m['peak_mb']:6.0f} MB"
            + (f" (+ {m['worker_mb']:.0f} MB a worker process)" if m["worker_mb"] else "")
            + f"  CPU {m['cpu']:.1f} s{server}"
        )
    print(
        f"massiva {exported['rows'] / exported['seconds']:,.0f} rows/s (target >= 100,000),"
        f" peak {exported['peak_mb'] + exported['worker_mb']:.0f} MB with its workers"
        " (target < 300);"
        f" {exported['rows'] / exported['seconds'] / (baseline['rows'] / baseline['seconds']):.2f}"
        " x the bare loop"
    )


def compare(results: dict[str, tuple[dict[str, float], dict[str, float]]]) -> None:
    """PostgreSQL's figures over SQLite's."""
    (s_bare, s_ours), (p_bare, p_ours) = results["sqlite"], results["postgresql"]

    def rate(m: dict[str, float]) -> float:
        return m["rows"] / m["seconds"]

    line = (
        f"PostgreSQL / SQLite: massiva rows/s {rate(p_ours) / rate(s_ours):.2f},"
        f" bare loop rows/s {rate(p_bare) / rate(s_bare):.2f};"
        f" massiva's CPU {p_ours['cpu'] / s_ours['cpu']:.2f}"
    )
    if "server_cpu" in p_ours:
        line += f" ({(p_ours['cpu'] + p_ours['server_cpu']) / s_ours['cpu']:.2f} with the server's)"
    peak_s = s_ours["peak_mb"] + s_ours["worker_mb"]
    peak_p = p_ours["peak_mb"] + p_ours["worker_mb"]
    print(line + f"; peak RSS {peak_p / peak_s:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--format", default="csv", choices=("csv", "json", "xlsx", "html"))
    parser.add_argument("--engine", default="both", choices=("sqlite", "postgresql", "both"))
    parser.add_argument("--database-url", help="a PostgreSQL server's (else a throwaway one)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.format)
        return
    # Here, not at the top: a child (a peak RSS measured) loads no more than it uses.
    from benchmarks.claims import Postgres

    engines = ("sqlite", "postgresql") if args.engine == "both" else (args.engine,)
    results: dict[str, tuple[dict[str, float], dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if "sqlite" in engines:
            db = Path(tmp) / "massiva.db"
            started = time.perf_counter()
            generate(db, args.rows)
            print(
                f"generated {args.rows:,} recipients in {time.perf_counter() - started:.1f} s"
                " (SQLite)"
            )
            results["sqlite"] = (measure("bare", db, "csv"), measure("massiva", db, args.format))
            db.unlink()  # the disk for PostgreSQL's copy
        if "postgresql" in engines:
            folder = Path(tmp) / "pg"
            folder.mkdir()
            with Postgres(args.database_url) as pg, pg.database("bench_export") as url:
                started = time.perf_counter()
                generate_pg(url, folder / "archive", args.rows)
                print(
                    f"generated {args.rows:,} recipients in {time.perf_counter() - started:.1f} s"
                    f" (PostgreSQL: {pg.described})"
                )
                results["postgresql"] = (
                    measure("bare", folder, "csv", url, pg),
                    measure("massiva", folder, args.format, url, pg),
                )
    for engine, (baseline, exported) in results.items():
        show(engine, args.format, baseline, exported)
    if len(results) == 2:
        compare(results)


if __name__ == "__main__":
    main()
