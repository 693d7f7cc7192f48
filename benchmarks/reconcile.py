"""The reconciler's cost, measured beside a bare baseline in the same run, on each engine.

A mailbox of 100,000 messages in the in-process simulator: an acceptance and a delivery
receipt for each of 50,000 posted recipients loaded in the store, so that every receipt
matches and moves its recipient. Timed, on SQLite and on PostgreSQL (``--engine``; each
in a fresh database):

1. a bare httpx loop fetching every ``GET /inbox`` page (and decoding its JSON);
2. ``reconcile`` from scratch on the same mailbox: the same pages, every message stored
   and applied in the store;
3. ``reconcile`` again, with nothing new: the cost of a quiet cron run.

Target: (2) within 2x of (1). Wall time and this process's CPU time (all threads) are
both shown: on a shared machine the CPU time is the steadier figure. On PostgreSQL the
server does the database's work in processes of its own: their CPU time is shown apart
(read from /proc, when the server runs here), and the PostgreSQL/SQLite ratios are given
with and without it.

PostgreSQL: the server at ``--database-url`` (a database of its own created and dropped
there), else a throwaway one (tests/postgres.py: fsync and synchronous_commit off, as
SQLite's WAL with synchronous=NORMAL waits for no disk at a commit either). The loaded
campaign is ANALYZEd before the clock starts, as autovacuum keeps a campaign sent over
hours.

Run: python benchmarks/reconcile.py [--messages 100000] [--engine sqlite|postgresql|both]
     [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from starlette.applications import Starlette

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.claims import Postgres
from massiva.api import ApiSession, PecMassivaClient
from massiva.reconcile import Summary, reconcile
from massiva.simulator import SimClock, SimulatorSettings, create_app
from massiva.simulator.clock import rfc2822
from massiva.store import NewRecipient, Store
from massiva.times import to_db

MAILBOX, PASSWORD = "demo@pecmassiva.com", "demo"
SUBJECT = "Avviso di pagamento"
START = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
HEADERS = {"Authorization": "Bearer x", "x-username": MAILBOX, "x-password": PASSWORD}


def message_id(n: int) -> str:
    return f"20260310090000{n:06d}"


async def load(store: Store, recipients: int) -> None:
    """A campaign of ``recipients`` posted recipients, each with its message id."""
    campaign = await store.campaigns.create(
        name="bench",
        folder=".",
        mailboxes=[MAILBOX],
        subject=SUBJECT,
        body="<p>x</p>",
        content_hash="-",
        csv_hash="-",
    )
    batch = [
        NewRecipient(
            row=n + 2,
            address=f"utente{n:06d}@legalmail.it",
            fields={},
            subject=SUBJECT,
            attachment=None,
        )
        for n in range(recipients)
    ]
    await store.campaigns.add_recipients(campaign.id, batch)
    # Posted as the sender leaves them, written by primary key: ``row`` has no index, and
    # an UPDATE by it scans the table once a recipient (minutes at 50,000).
    async with store.database.transaction() as db:
        ids = await db.execute_fetchall(
            "SELECT id FROM recipient WHERE campaign_id = ? ORDER BY row", (campaign.id,)
        )
        await db.executemany(
            "UPDATE recipient SET state = 'sent', message_id = ?, sent_at = ?, mailbox = ?"
            " WHERE id = ?",
            [(message_id(n), to_db(START), campaign.mailbox, rid) for n, (rid,) in enumerate(ids)],
        )
    if store.engine == "postgresql":
        # Statistics of the campaign as sent, as autovacuum keeps them while it sends.
        async with store.database.transaction() as db:
            await db.execute("ANALYZE")


def fill(app: Starlette, recipients: int) -> None:
    """Two receipts a recipient, straight into the simulator's inbox."""
    simulator = app.state.simulator
    date = rfc2822(START)
    for prefix in ("ACCETTAZIONE", "CONSEGNA"):
        for n in range(recipients):
            simulator.deliver(
                MAILBOX,
                sender="posta-certificata@pecmassiva.com",
                recipient=MAILBOX,
                date=date,
                subject=f"{prefix}: {SUBJECT} {message_id(n)}",
                body="",
                size=2048,
            )


@dataclass
class Timing:
    wall: float
    cpu: float
    server: float | None = None  # the PostgreSQL server's CPU seconds, when read

    @classmethod
    def since(cls, wall: float, cpu: float) -> Timing:
        return cls(time.perf_counter() - wall, time.process_time() - cpu)


async def bare(app: Starlette) -> tuple[Timing, int]:
    """The time to fetch every page with plain httpx, and the number of pages."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://sim", headers=HEADERS
    ) as client:
        wall, cpu = time.perf_counter(), time.process_time()
        page, pages = 1, 1
        while page <= pages:
            response = await client.get("/inbox", params={"page": page})
            response.raise_for_status()
            pages = response.json()["n_of_pages"]
            page += 1
        return Timing.since(wall, cpu), pages


async def ours(
    app: Starlette, store: Store, clock: SimClock, pg: Postgres | None
) -> tuple[Timing, Summary]:
    """The time of one reconcile of the mailbox, and what it did."""
    async with ApiSession("http://sim", "x", transport=httpx.ASGITransport(app=app)) as session:
        client = PecMassivaClient(session, MAILBOX, PASSWORD)
        server = pg.server_cpu() if pg is not None else None
        wall, cpu = time.perf_counter(), time.process_time()
        summary = await reconcile(store, client, MAILBOX, clock=clock.now)
        timing = Timing.since(wall, cpu)
        if server is not None and pg is not None:
            after = pg.server_cpu()
            timing.server = after - server if after is not None else None
        return timing, summary


@dataclass
class Measured:
    engine: str
    baseline: Timing
    pages: int
    scratch: Timing
    summary: Summary
    quiet: Timing
    again: Summary


async def measure(
    engine: str, target: Path | str, archive: Path, recipients: int, pg: Postgres | None
) -> Measured:
    """Load the store at ``target``, then the bare loop and two reconciles, timed."""
    clock = SimClock(start=START, speed=0)
    app = create_app(SimulatorSettings(send_rate=None), clock=clock)
    fill(app, recipients)
    async with await Store.open(target, archive_dir=archive) as store:
        await load(store, recipients)
        baseline, pages = await bare(app)
        scratch, summary = await ours(app, store, clock, pg)
        quiet, again = await ours(app, store, clock, pg)
    assert summary.receipts == {"accepted": recipients, "delivered": recipients}, summary
    assert summary.moved == {"delivered": recipients}, summary.moved
    return Measured(engine, baseline, pages, scratch, summary, quiet, again)


def report(m: Measured) -> None:
    """One engine's figures, as this benchmark has always printed SQLite's."""
    base, scratch = m.baseline, m.scratch
    rows = [
        ("bare httpx loop over every page", base.wall, base.cpu),
        (f"reconcile from scratch ({m.summary.pages:,} pages)", scratch.wall, scratch.cpu),
        ("ratio (target <= 2.00)", scratch.wall / base.wall, scratch.cpu / base.cpu),
    ]
    print(f"{m.engine}:")
    print(f"{'':40} {'wall s':>8} {'CPU s':>8}")
    for label, wall, cpu in rows:
        print(f"{label:40} {wall:8.2f} {cpu:8.2f}")
    if m.engine == "postgresql":
        server = f"{scratch.server:.2f} s" if scratch.server is not None else "not readable here"
        print(f"{'server CPU, reconcile from scratch':40} {server}")
    done = m.summary
    print(
        f"requests: {done.pages:,} pages, {done.bodies:,} receipt bodies"
        f" ({done.bodies_missing:,} final receipts left without one)"
    )
    print(f"reconcile again, nothing new: {m.quiet.wall * 1000:.1f} ms, {m.again.pages} request")


def compare(sqlite: Measured, postgresql: Measured) -> None:
    """PostgreSQL over SQLite, each against its own bare loop too (the machine is noisy)."""
    s, p = sqlite.scratch, postgresql.scratch
    print("PostgreSQL / SQLite, reconcile from scratch:")
    print(f"  wall {p.wall / s.wall:.2f}, this process's CPU {p.cpu / s.cpu:.2f}", end="")
    if p.server is not None:
        print(f", CPU with the server's {(p.cpu + p.server) / s.cpu:.2f}")
    else:
        print(" (the server's CPU not readable here)")
    ratio_s = s.wall / sqlite.baseline.wall
    ratio_p = p.wall / postgresql.baseline.wall
    print(f"  over each run's bare loop (wall): {ratio_p:.2f} / {ratio_s:.2f}", end="")
    print(f" = {ratio_p / ratio_s:.2f}")
    print(
        f"  reconcile again, nothing new: {postgresql.quiet.wall * 1000:.1f} ms"
        f" / {sqlite.quiet.wall * 1000:.1f} ms"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--engine", default="both", choices=("sqlite", "postgresql", "both"))
    parser.add_argument("--database-url", help="a PostgreSQL server's (else a throwaway one)")
    args = parser.parse_args()
    recipients = args.messages // 2
    engines = ("sqlite", "postgresql") if args.engine == "both" else (args.engine,)
    print(f"mailbox: {2 * recipients:,} messages")
    measured: dict[str, Measured] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if "sqlite" in engines:
            db = Path(tmp) / "bench.db"
            measured["sqlite"] = await measure(
                "sqlite", db, db.with_name("archive"), recipients, None
            )
            report(measured["sqlite"])
        if "postgresql" in engines:
            with Postgres(args.database_url) as pg, pg.database("bench_reconcile") as url:
                print(f"PostgreSQL: {pg.described}")
                archive = Path(tmp) / "pg-archive"
                measured["postgresql"] = await measure("postgresql", url, archive, recipients, pg)
            report(measured["postgresql"])
    if len(measured) == 2:
        compare(measured["sqlite"], measured["postgresql"])


if __name__ == "__main__":
    asyncio.run(main())
