"""Exporting a campaign of N recipients (default 1,000,000) to CSV, beside a bare loop.

A SQLite outbox is generated directly (executemany): N recipients, most delivered with
two receipts each, some accepted, failed (with a reason), expired or sent. Then, each in
its own process so that each peak RSS is its own:
  - bare: the same values (the same columns, the key column, the subject, the mailbox
    and the receipt ids included) read with one sqlite3 SELECT straight into
    csv.writer, nothing converted;
  - massiva: `massiva report NAME --format csv` as the library does it (rows streamed
    in batches: key column from the JSON fields, times to Europe/Rome, the failure
    code read from a failed recipient's reason, the formula guard on every cell from
    outside, CSV quoting), written through output_file; from
    200,000 recipients by one process per core, each writing a part (the figure counts
    their start and the joining of the parts; the memory is the exporter's plus its
    largest worker's).
Targets: massiva >= 100,000 rows/s, peak RSS < 300 MB.

Run: python benchmarks/report_export.py [--rows 1000000] [--format csv|json|xlsx|html]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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


def bare(db: Path, out: Path) -> int:
    """The same rows straight from sqlite3 into csv.writer."""
    count = 0
    with closing(sqlite3.connect(db)) as conn, out.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        for row in conn.execute(SELECT, (1,)):
            writer.writerow(row)
            count += 1
    return count


def exporter(fmt: str) -> Callable[[Path, Path], int]:
    """The library's export, as ``massiva report`` runs it (imported here, before the
    clock starts, as bare's sqlite3 and csv are)."""
    from massiva.report import export, open_report, output_file
    from massiva.store import Store

    def ours(db: Path, out: Path) -> int:
        async def run() -> int:
            async with await Store.open(db) as store:
                report, _ = await open_report(store, NAME, key_columns=("codice_cliente",))
                with output_file(out) as file:
                    return await export(report, fmt, file)

        return asyncio.run(run())

    return ours


def child(kind: str, db: Path, fmt: str) -> None:
    out = db.with_name(f"{kind}.{fmt}")
    run = bare if kind == "bare" else exporter(fmt)
    started = time.perf_counter()
    rows = run(db, out)
    elapsed = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # A parallel export's worker processes (the largest of them).
    worker_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    result = {"rows": rows, "seconds": elapsed, "peak_mb": peak_mb, "worker_mb": worker_mb}
    print(json.dumps(result))


def measure(kind: str, db: Path, fmt: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(db), "--format", fmt],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, float] = json.loads(out)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--format", default="csv", choices=("csv", "json", "xlsx", "html"))
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), args.format)
        return
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "massiva.db"
        started = time.perf_counter()
        generate(db, args.rows)
        print(f"generated {args.rows:,} recipients in {time.perf_counter() - started:.1f} s")
        baseline = measure("bare", db, "csv")
        exported = measure("massiva", db, args.format)
    for name, m in (
        ("bare sqlite3 + csv.writer", baseline),
        (f"massiva report --format {args.format}", exported),
    ):
        print(
            f"{name:32s} {m['rows'] / m['seconds']:9,.0f} rows/s"
            f"  {m['seconds']:6.1f} s  peak RSS {m['peak_mb']:6.0f} MB"
            + (f" (+ {m['worker_mb']:.0f} MB a worker process)" if m["worker_mb"] else "")
        )
    print(
        f"massiva {exported['rows'] / exported['seconds']:,.0f} rows/s (target >= 100,000),"
        f" peak {exported['peak_mb'] + exported['worker_mb']:.0f} MB with its workers"
        " (target < 300);"
        f" {exported['rows'] / exported['seconds'] / (baseline['rows'] / baseline['seconds']):.2f}"
        " x the bare loop"
    )


if __name__ == "__main__":
    main()
