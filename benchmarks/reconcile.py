"""The reconciler's cost, measured beside a bare baseline in the same run.

A mailbox of 100,000 messages in the in-process simulator: an acceptance and a delivery
receipt for each of 50,000 posted recipients loaded in SQLite, so that every receipt
matches and moves its recipient. Timed:

1. a bare httpx loop fetching every ``GET /inbox`` page (and decoding its JSON);
2. ``reconcile`` from scratch on the same mailbox: the same pages, every message stored
   and applied in SQLite;
3. ``reconcile`` again, with nothing new: the cost of a quiet cron run.

Target: (2) within 2x of (1). Wall time and this process's CPU time (all threads) are
both shown: on a shared machine the CPU time is the steadier figure.

Run: python benchmarks/reconcile.py [--messages 100000]
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
    async with store.transaction() as db:
        ids = await db.execute_fetchall(
            "SELECT id FROM recipient WHERE campaign_id = ? ORDER BY row", (campaign.id,)
        )
        await db.executemany(
            "UPDATE recipient SET state = 'sent', message_id = ?, sent_at = ?, mailbox = ?"
            " WHERE id = ?",
            [(message_id(n), to_db(START), campaign.mailbox, rid) for n, (rid,) in enumerate(ids)],
        )


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


async def ours(app: Starlette, store: Store, clock: SimClock) -> tuple[Timing, Summary]:
    """The time of one reconcile of the mailbox, and what it did."""
    async with ApiSession("http://sim", "x", transport=httpx.ASGITransport(app=app)) as session:
        client = PecMassivaClient(session, MAILBOX, PASSWORD)
        wall, cpu = time.perf_counter(), time.process_time()
        summary = await reconcile(store, client, MAILBOX, clock=clock.now)
        return Timing.since(wall, cpu), summary


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    args = parser.parse_args()
    recipients = args.messages // 2
    clock = SimClock(start=START, speed=0)
    app = create_app(SimulatorSettings(send_rate=None), clock=clock)
    fill(app, recipients)
    with tempfile.TemporaryDirectory() as tmp:
        async with await Store.open(Path(tmp) / "bench.db") as store:
            await load(store, recipients)
            baseline, pages = await bare(app)
            scratch, summary = await ours(app, store, clock)
            quiet, again = await ours(app, store, clock)
    assert summary.receipts == {"accepted": recipients, "delivered": recipients}, summary
    assert summary.moved == {"delivered": recipients}, summary.moved
    rows = [
        ("bare httpx loop over every page", baseline.wall, baseline.cpu),
        (f"reconcile from scratch ({summary.pages:,} pages)", scratch.wall, scratch.cpu),
        ("ratio (target <= 2.00)", scratch.wall / baseline.wall, scratch.cpu / baseline.cpu),
    ]
    print(f"mailbox: {2 * recipients:,} messages, {pages:,} pages")
    print(f"{'':40} {'wall s':>8} {'CPU s':>8}")
    for label, wall, cpu in rows:
        print(f"{label:40} {wall:8.2f} {cpu:8.2f}")
    print(f"reconcile again, nothing new: {quiet.wall * 1000:.1f} ms, {again.pages} request")


if __name__ == "__main__":
    asyncio.run(main())
