"""Reading a big mailbox against a vendor that takes 200 ms a page, beside a bare loop.

The mailbox of benchmarks/reconcile.py (100,000 receipts, two for each of 50,000 posted
recipients loaded in SQLite), served over a loopback socket by a simulator in a process
of its own (this script with ``--serve``), where every ``GET /inbox`` waits 200 ms (a
``slow`` fault, as the vendor's latency) and everything else answers at once. Timed in
this process (the simulator's CPU excluded):

1. a bare sequential loop: plain httpx fetching every page one after another;
2. ``reconcile`` from scratch, pages fetched ``--page-fetches`` at a time: every page,
   the body of every receipt (kept as evidence), every message stored and applied;
3. the same requests as (2) with plain httpx, as many in flight: what they cost alone;
4. ``reconcile`` again with nothing new: the requests of a quiet cron run.

Targets: the wall time of (2) at most 0.25x (1); the engine's CPU, (2) minus (3), at
most 2 ms a page; a quiet run 1-2 requests. The figures are printed, never asserted.

Run: python benchmarks/reconcile_concurrent.py [--messages 100000] [--page-fetches 8]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.reconcile import HEADERS, MAILBOX, PASSWORD, START, Timing, fill, load
from massiva.api import ApiSession, PecMassivaClient
from massiva.reconcile import PAGE_FETCHES, Reconciler, Summary
from massiva.simulator import Fault, SimClock, SimulatorSettings, create_app
from massiva.store import Store

ANSWER = 0.2  # seconds the simulator takes to answer a GET /inbox page


def serve(port: int, messages: int) -> None:
    """The simulator with the benchmark's mailbox, on 127.0.0.1:``port`` until killed."""
    app = create_app(SimulatorSettings(send_rate=None), clock=SimClock(start=START, speed=0))
    fill(app, messages // 2)
    slow = Fault("/inbox", method="GET", kind="slow", delay=ANSWER, times=10**9)
    app.state.simulator.add_fault(slow)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        ws="none",
        lifespan="off",
        date_header=False,
        log_level="warning",
    )


@contextlib.contextmanager
def served(messages: int) -> Iterator[str]:
    """A simulator process of this script on a free loopback port; yields its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, __file__, "--serve", str(port), "--messages", str(messages)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300  # filling the inbox takes a while
        while True:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the simulator did not start")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def started() -> tuple[float, float]:
    # Earlier runs' cyclic garbage is collected now, not inside the next one.
    gc.collect()
    return time.perf_counter(), time.process_time()


async def sequential(url: str) -> tuple[Timing, int]:
    """Every page with plain httpx, one after another; and how many pages there are."""
    async with httpx.AsyncClient(base_url=url, headers=HEADERS) as client:
        wall, cpu = started()
        page, pages = 1, 1
        while page <= pages:
            response = await client.get("/inbox", params={"page": page})
            response.raise_for_status()
            pages = response.json()["n_of_pages"]
            page += 1
        return Timing.since(wall, cpu), pages


async def ours(url: str, store: Store, page_fetches: int) -> tuple[Timing, Summary]:
    """One reconcile of the mailbox, and what it did."""
    async with ApiSession(url, "x") as session:
        client = PecMassivaClient(session, MAILBOX, PASSWORD)
        reconciler = Reconciler(
            store, client, MAILBOX, clock=lambda: START, page_fetches=page_fetches
        )
        wall, cpu = started()
        summary = await reconciler.run()
        return Timing.since(wall, cpu), summary


async def same_requests(url: str, pages: int, in_flight: int) -> tuple[Timing, int]:
    """Every page and the body of every message on it with plain httpx, ``in_flight``
    pages and ``in_flight`` bodies at a time: the HTTP work of a reconcile, alone."""
    pages_slots, body_slots = asyncio.Semaphore(in_flight), asyncio.Semaphore(in_flight)
    bodies = 0
    async with httpx.AsyncClient(base_url=url, headers=HEADERS) as client:

        async def body(inbox_id: int) -> None:
            async with body_slots:
                (await client.get(f"/inbox/{inbox_id}")).raise_for_status()

        async def page(number: int) -> None:
            nonlocal bodies
            async with pages_slots:
                response = await client.get("/inbox", params={"page": number})
                response.raise_for_status()
            ids = [m["id"] for m in response.json()["data"]]
            bodies += len(ids)
            await asyncio.gather(*(body(i) for i in ids))

        wall, cpu = started()
        await asyncio.gather(*(page(n) for n in range(1, pages + 1)))
        return Timing.since(wall, cpu), bodies


async def main(args: argparse.Namespace) -> None:
    recipients = args.messages // 2
    with tempfile.TemporaryDirectory() as tmp, served(args.messages) as url:
        async with await Store.open(Path(tmp) / "bench.db") as store:
            await load(store, recipients)
            baseline, pages = await sequential(url)
            scratch, summary = await ours(url, store, args.page_fetches)
            http, bodies = await same_requests(url, pages, args.page_fetches)
            _, quiet = await ours(url, store, args.page_fetches)
    assert summary.receipts == {"accepted": recipients, "delivered": recipients}, summary
    assert summary.moved == {"delivered": recipients}, summary.moved
    assert (summary.pages, summary.bodies) == (pages, bodies), (summary, bodies)
    engine = (scratch.cpu - http.cpu) * 1000 / pages
    print(
        f"mailbox: {2 * recipients:,} messages, {pages:,} pages of {ANSWER * 1000:.0f} ms;"
        f" {args.page_fetches} pages in flight"
    )
    print(f"{'':58} {'wall s':>8} {'CPU s':>8}")
    rows = [
        ("1. bare httpx, every page one after another", baseline),
        (f"2. reconcile from scratch ({pages:,} pages, {bodies:,} bodies)", scratch),
        ("3. the requests of (2) alone, plain httpx", http),
    ]
    for label, timing in rows:
        print(f"{label:58} {timing.wall:8.2f} {timing.cpu:8.2f}")
    print(f"wall ratio (2) / (1): {scratch.wall / baseline.wall:.3f} (target <= 0.25)")
    print(f"engine CPU ((2) - (3)) a page: {engine:.2f} ms (target <= 2 ms)")
    print(
        f"reconcile again, nothing new: {quiet.requests} requests"
        f" ({quiet.pages} GET /inbox, {quiet.bodies} bodies; target 1-2)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--page-fetches", type=int, default=PAGE_FETCHES)
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve:  # the simulator's own process
        serve(arguments.serve, arguments.messages)
    else:
        asyncio.run(main(arguments))
