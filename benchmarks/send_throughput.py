"""The send loop's cost, and its pace, measured beside a bare baseline in the same run.

1. Throughput with the throttle lifted, against the in-process simulator: the full
   loop (claim + allowance in SQLite, render, POST, mark sent) beside a bare httpx loop
   posting the same payloads to the same simulator at the same concurrency
   (``client.post("/send", json=...)``). Target: at least 0.70 of the bare loop.
   A second bare loop builds its URL once, as massiva's session does (httpx otherwise
   joins and parses it at every request): its ratio, printed for reference, is the
   loop's cost without that difference. They run in rounds, back to back, ours between
   the two bare loops, which take turns first; each round gives a ratio to each, and
   the ratios printed are the medians of the rounds', with their quartiles.
2. Pace: at 1 request/second against a simulator that answers in 200 ms, the achieved
   rate over the configured one. Target: at least 0.95.

Run: python benchmarks/send_throughput.py [--recipients 2000] [--paced 12] [--rounds 11]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from massiva.api import ApiSession, PecMassivaClient
from massiva.campaign import Renderer, load_spec, validate
from massiva.loading import load_campaign
from massiva.sender import Sender, SendOptions
from massiva.simulator import Fault, SimClock, SimulatorSettings, create_app
from massiva.store import Store
from tests.test_sender import make_campaign, pec_addresses

IN_FLIGHT = 8
MAILBOX, PASSWORD = "demo@pecmassiva.com", "demo"


def unpaced_simulator() -> httpx.ASGITransport:
    """A simulator without pace or allowances, whose clock stands still: it records
    every send and schedules its receipts, and none falls due while a loop runs (else
    the slower loop would also pay for delivering more of them)."""
    settings = SimulatorSettings(send_rate=None, daily_limit=None, monthly_limit=None)
    clock = SimClock(start=datetime(2026, 3, 10, 8, 0, tzinfo=UTC), speed=0)
    return httpx.ASGITransport(app=create_app(settings, clock=clock))


async def timed(posts: int, run: Awaitable[object]) -> float:
    """Posts a second while ``run`` runs."""
    # The loops before this one left cyclic garbage (simulators, clients): collected
    # now, else a full collection falls inside whichever loop comes next.
    gc.collect()
    started = time.perf_counter()
    await run
    return posts / (time.perf_counter() - started)


async def bare(folder: Path, url: str | httpx.URL = "/send") -> float:
    """Render and POST the same messages with plain httpx (the rendering not timed)."""
    spec = load_spec(folder)
    renderer = Renderer(spec)
    payloads = []
    for item in validate(spec):
        subject, body = renderer.render(item.fields)
        payloads.append(
            {
                "recipient": item.address,
                "subject": subject,
                "body": body,
                "sender": MAILBOX,
                "username": MAILBOX,
                "password": PASSWORD,
            }
        )
    slots = asyncio.Semaphore(IN_FLIGHT)
    async with httpx.AsyncClient(
        transport=unpaced_simulator(), base_url="http://sim", headers={"Authorization": "Bearer x"}
    ) as client:

        async def post(payload: dict[str, str]) -> None:
            async with slots:
                (await client.post(url, json=payload)).raise_for_status()

        return await timed(len(payloads), asyncio.gather(*(post(p) for p in payloads)))


async def ours(folder: Path, db: Path) -> float:
    """The whole send loop (the load into the outbox not timed)."""
    spec = load_spec(folder)
    async with await Store.open(db) as store:
        await load_campaign(store, spec)
        campaign = await store.campaigns.get(spec.name)
        assert campaign is not None
        async with ApiSession("http://sim", "x", transport=unpaced_simulator()) as session:
            client = PecMassivaClient(session, MAILBOX, PASSWORD)
            sender = Sender(
                store, client, campaign, spec, SendOptions(rate=None, in_flight=IN_FLIGHT)
            )
            pending = (await store.campaigns.counts(campaign.id))["pending"]
            rate = await timed(pending, sender.run())
    assert sender.progress.stopped == "done" and sender.progress.sent == pending
    return rate


async def paced(folder: Path, db: Path, rate: float) -> float:
    """Achieved rate / configured rate against a simulator answering in 200 ms."""
    app = create_app(SimulatorSettings(send_rate=1.0))
    app.state.simulator.add_fault(
        Fault(path="/send", method="POST", kind="slow", delay=0.2, times=10_000)
    )
    spec = load_spec(folder)
    async with await Store.open(db) as store:
        await load_campaign(store, spec)
        campaign = await store.campaigns.get(spec.name)
        assert campaign is not None
        async with ApiSession("http://sim", "x", transport=httpx.ASGITransport(app=app)) as session:
            client = PecMassivaClient(session, MAILBOX, PASSWORD)
            await Sender(store, client, campaign, spec, SendOptions(rate=rate)).run()
    # The simulator's clock runs at real speed: its arrival times are the departures.
    posts = [r for r in app.state.simulator.requests if r.path == "/send"]
    assert all(r.status == 201 for r in posts), "the simulator had to say slow down"
    span = (posts[-1].at - posts[0].at).total_seconds()
    return (len(posts) - 1) / span / rate


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=2000)
    parser.add_argument("--paced", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=11, help="rounds of both loops")
    args = parser.parse_args()
    if args.rounds < 2:
        parser.error("--rounds: at least 2, for quartiles")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        big = make_campaign(root / "big", pec_addresses(args.recipients))
        small = make_campaign(root / "small", pec_addresses(args.paced), name="pace")
        # This machine is shared and its speed drifts from one second to the next: the
        # loops of a round run back to back, ours between the two bare ones, which take
        # turns first, so that a round's ratios compare them at about the same speed;
        # the median ignores odd rounds.
        run_of: dict[str, Callable[[int], Awaitable[float]]] = {
            "bare": lambda _: bare(big),
            "ours": lambda round_: ours(big, root / f"{round_}.db"),
            "bare_url": lambda _: bare(big, httpx.URL("http://sim/send")),
        }
        loops: dict[str, list[float]] = {name: [] for name in run_of}
        for round_ in range(args.rounds):
            for name in list(run_of)[:: -1 if round_ % 2 else 1]:
                loops[name].append(await run_of[name](round_))
        for name, label in (
            ("bare", "bare httpx loop:    "),
            ("bare_url", "  its URL built once:"),
            ("ours", "massiva send loop:  "),
        ):
            runs = loops[name]
            print(
                f"{label} {statistics.median(runs):8.0f} posts/s, median"
                f"  (rounds: {', '.join(f'{r:.0f}' for r in runs)})"
            )
        for baseline, label, target in (
            ("bare", "ratio, round by round:", "   (target >= 0.70)"),
            ("bare_url", "  to the loop with its URL built once:", ""),
        ):
            ratios = [a / b for a, b in zip(loops["ours"], loops[baseline], strict=True)]
            low, median, high = statistics.quantiles(ratios, n=4, method="inclusive")
            print(f"{label} {median:.2f}, median  (quartiles {low:.2f}-{high:.2f}){target}")
        pace = await paced(small, root / "b.db", rate=1.0)
        print(
            f"pace at 1/s against a 200 ms simulator: {pace:.3f} of the configured rate"
            "   (target >= 0.95)"
        )


if __name__ == "__main__":
    asyncio.run(main())
