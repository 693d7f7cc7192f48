"""Issue #20's "done when", run end to end: a campaign of 12,000 recipients on three
mailboxes, sent by the service (``massiva run``'s :class:`~massiva.service.Service`) on
the simulator with a fast clock, on its schedule (Monday to Friday, 09:00-18:00 in Rome)
and within each mailbox's allowances (3,500 a Rome day), its metrics read over loopback
as Prometheus would.

The simulator runs in this process (its clock, ``--speed`` times real time, is the run's
clock too: allowances and windows pass quickly); the status server is a real loopback
socket. Printed, never asserted: posts per mailbox per Rome day, posts outside the
window, duplicates and missing recipients, each mailbox's allowance counter against the
simulator's posts, and the metrics' lines of one mailbox.

Run: python benchmarks/run_pool.py [--recipients 12000] [--speed 400]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from massiva.api import ApiSession
from massiva.campaign import load_spec
from massiva.config import Config, MailboxConfig, ServiceConfig
from massiva.loading import load_campaign
from massiva.metrics import Metrics
from massiva.service import Service
from massiva.simulator import SimClock, SimulatorSettings, create_app
from massiva.status_server import serve_status
from massiva.store import Store
from massiva.times import ROME

POOL = ["uno@pecmassiva.com", "due@pecmassiva.com", "tre@pecmassiva.com"]
# Monday 9 March 2026, 08:00 in Rome: the window opens an hour later.
START = datetime(2026, 3, 9, 7, 0, tzinfo=UTC)


def campaign(folder: Path, recipients: int) -> Path:
    folder.mkdir(parents=True)
    boxes = ", ".join(f'"{b}"' for b in POOL)
    (folder / "campaign.toml").write_text(
        f'name = "volume"\nmailboxes = [{boxes}]\nsubject = "Avviso {{{{ codice }}}}"\n'
        'body = "<p>Gentile {{ nome }}</p>"\nrecipients = "destinatari.csv"\n'
        'address_column = "pec"\n[schedule]\ndays = ["mon-fri"]\nhours = "09:00-18:00"\n',
        encoding="utf-8",
    )
    rows = "".join(f"p{i:06d}@legalmail.it;Utente {i};C{i:06d}\n" for i in range(recipients))
    (folder / "destinatari.csv").write_text("pec;nome;codice\n" + rows, encoding="utf-8")
    return folder


async def main(recipients: int, speed: float) -> None:
    clock = SimClock(start=START, speed=speed)
    app = create_app(SimulatorSettings(send_rate=None), clock=clock)
    simulator = app.state.simulator
    for i, box in enumerate(POOL):
        simulator.add_mailbox(box, f"pw-{i}")
    environ = {f"PW_{i}": f"pw-{i}" for i in range(len(POOL))}
    config = Config(
        mailboxes={b: MailboxConfig(b, f"PW_{i}", send_rate=100) for i, b in enumerate(POOL)},
        service=ServiceConfig(reconcile_every=30),
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = campaign(Path(tmp) / "volume", recipients)
        metrics = Metrics(clock=clock.now)
        transport = httpx.ASGITransport(app=app)
        async with await Store.open(Path(tmp) / "massiva.db") as store:
            await load_campaign(store, load_spec(folder))
            service = Service(
                store,
                config,
                lambda: ApiSession("http://simulator.test", "token", transport=transport),
                metrics=metrics,
                clock=clock.now,
                environ=environ,
                look_every=0.2,
            )
            async with serve_status("127.0.0.1", 0, metrics, service.health) as status:
                began = time.monotonic()
                running = asyncio.create_task(service.run())
                scraped = ""
                while len(simulator.sends) < recipients:
                    await asyncio.sleep(1)
                    async with httpx.AsyncClient() as scraper:  # as Prometheus does
                        scraped = (await scraper.get(f"{status.url}/metrics")).text
                    print(
                        f"  {clock.now().astimezone(ROME):%a %d/%m %H:%M} Rome:"
                        f" {len(simulator.sends):,} posted",
                        flush=True,
                    )
                wall = time.monotonic() - began
                service.stop()
                await running
        with sqlite3.connect(Path(tmp) / "massiva.db") as db:
            counted = dict(
                ((box, period), used)
                for box, period, used in db.execute("SELECT mailbox, period, used FROM allowance")
            )
    per_day = Counter(
        (s.mailbox, s.at.astimezone(ROME).date().isoformat()) for s in simulator.sends
    )
    outside = [
        s
        for s in simulator.sends
        if s.at.astimezone(ROME).weekday() > 4 or not 9 <= s.at.astimezone(ROME).hour < 18
    ]
    posts = simulator.post_counts()
    print(f"\n{recipients:,} recipients, 3 mailboxes, clock x{speed:g}: {wall:.0f} s real")
    print("posts per mailbox per Rome day (allowance 3,500), and the database's count:")
    for (box, day), n in sorted(per_day.items()):
        mine = counted.get((box, "D" + day))
        print(f"  {box:22} {day}  {n:5,}  counted {mine:,}" + ("" if mine == n else "  MISMATCH"))
    print(f"posts outside Mon-Fri 09:00-18:00 Rome: {len(outside)}")
    print(
        f"duplicates: {sum(1 for n in posts.values() if n > 1)}; missing: {recipients - len(posts)}"
    )
    print(f"/metrics, {POOL[0]}:")
    for line in scraped.splitlines():
        if POOL[0] in line and not line.startswith("#"):
            print("  " + line)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=12_000)
    parser.add_argument("--speed", type=float, default=400.0)
    args = parser.parse_args()
    asyncio.run(main(args.recipients, args.speed))
