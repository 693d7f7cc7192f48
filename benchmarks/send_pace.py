"""What a user feels of the send loop, measured beside a bare baseline in the same run.

Both loops post the same messages at 1 request/second over a loopback socket, each to
its own ``massiva simulator`` process, which answers every ``POST /send`` in 200 ms (a
``slow`` fault) and keeps its default pace check (1 post a second per mailbox: an early
post gets a 429, and the run fails). Ours is massiva's Sender (claim in SQLite, render,
POST, mark sent); the bare loop posts with plain httpx, sleeping until each post's slot
(the cheapest correct pacer).

1. CPU per paced post: this process's CPU time (``time.process_time``, all its threads,
   the simulator's excluded) over the run, divided by its posts. Target: at most 2 ms a
   post for ours; the difference from bare is the loop's own share.
2. Achieved pace: (posts - 1) / (time from the first post leaving to the last) over the
   configured rate, a post timed as it reaches the transport. Target: at least 0.99.

The figures are printed, never asserted.

Run: python benchmarks/send_pace.py [--posts 12]
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
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from massiva.api import ApiSession, PecMassivaClient
from massiva.api.session import DEFAULT_LIMITS
from massiva.campaign import Recipient, Renderer, load_spec, validate
from massiva.loading import load_campaign
from massiva.sender import Sender, SendOptions
from massiva.store import Store
from tests.test_sender import make_campaign, pec_addresses

MAILBOX, PASSWORD = "demo@pecmassiva.com", "demo"
RATE = 1.0  # posts a second per mailbox, as users send
ANSWER = 0.2  # seconds the simulator takes to answer a POST /send


class Departures(httpx.AsyncBaseTransport):
    """Delegates to ``inner``, noting when each ``POST /send`` reaches it: when it leaves."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.left: list[float] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == "/send":
            self.left.append(time.monotonic())
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Run:
    cpu: float  # seconds of this process's CPU time
    left: list[float]  # when each post left (time.monotonic)

    def cpu_ms(self) -> float:
        return self.cpu * 1000 / len(self.left)

    def pace(self, rate: float) -> float:
        return (len(self.left) - 1) / (self.left[-1] - self.left[0]) / rate


class Simulator:
    """A ``massiva simulator`` process on loopback, driven through its admin API."""

    def __init__(self, url: str) -> None:
        self.url, self.since = url, 0

    def arm(self, posts: int) -> None:
        """Answer the next ``posts`` POST /send in ANSWER seconds; count from here."""
        self.since = httpx.get(f"{self.url}/_simulator/requests").json()["next"]
        fault = {"path": "/send", "method": "POST", "kind": "slow", "delay": ANSWER}
        answer = httpx.post(f"{self.url}/_simulator/faults", json={**fault, "times": posts})
        answer.raise_for_status()

    def all_accepted(self, posts: int) -> None:
        answer = httpx.get(f"{self.url}/_simulator/requests", params={"since": self.since})
        sends = [r for r in answer.json()["requests"] if r["path"] == "/send"]
        assert len(sends) == posts and all(r["status"] == 201 for r in sends), sends


@contextlib.contextmanager
def served(*options: str) -> Iterator[Simulator]:
    """A fresh ``massiva simulator`` process on a free loopback port, with ``options``."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "massiva", "simulator", "--port", str(port), *options]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the simulator did not start")
            time.sleep(0.05)
        yield Simulator(f"http://127.0.0.1:{port}")
    finally:
        process.terminate()
        process.wait(timeout=10)


async def measured(run: Awaitable[object], transport: Departures) -> Run:
    # The runs before this one left cyclic garbage: collected now, not inside this one.
    gc.collect()
    started = time.process_time()
    await run
    return Run(time.process_time() - started, transport.left)


async def bare(folder: Path, sim: Simulator, rate: float) -> Run:
    """Post the rendered messages with plain httpx, each at its slot (rendering not timed)."""
    spec = load_spec(folder)
    renderer = Renderer(spec)
    payloads = []
    for item in validate(spec):
        assert isinstance(item, Recipient), item  # every address is valid
        subject, body = renderer.render(item.fields)
        payloads.append(
            {
                "sender": MAILBOX,
                "recipient": item.address,
                "subject": subject,
                "body": body,
                "username": MAILBOX,
                "password": PASSWORD,
            }
        )
    sim.arm(len(payloads))
    transport = Departures(httpx.AsyncHTTPTransport())
    async with httpx.AsyncClient(
        transport=transport, base_url=sim.url, headers={"Authorization": "Bearer x"}
    ) as client:

        async def paced() -> None:
            loop = asyncio.get_running_loop()
            first = loop.time()
            for n, payload in enumerate(payloads):
                await asyncio.sleep(first + n / rate - loop.time())  # until its slot
                (await client.post("/send", json=payload)).raise_for_status()

        run = await measured(paced(), transport)
    sim.all_accepted(len(payloads))
    return run


async def ours(folder: Path, db: Path, sim: Simulator, rate: float) -> Run:
    """The whole send loop, paced by its options (the load into the outbox not timed)."""
    spec = load_spec(folder)
    async with await Store.open(db) as store:
        await load_campaign(store, spec)
        campaign = await store.campaigns.get(spec.name)
        assert campaign is not None
        pending = (await store.campaigns.counts(campaign.id))["pending"]
        sim.arm(pending)
        # The transport ApiSession would make itself, wrapped to time the departures.
        transport = Departures(httpx.AsyncHTTPTransport(limits=DEFAULT_LIMITS))
        async with ApiSession(sim.url, "x", transport=transport) as session:
            client = PecMassivaClient(session, MAILBOX, PASSWORD)
            sender = Sender(store, client, campaign, spec, SendOptions(rate=rate))
            run = await measured(sender.run(), transport)
    assert sender.progress.sent == pending, sender.progress
    sim.all_accepted(pending)
    return run


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=12, help="recipients of each paced run")
    args = parser.parse_args()
    if args.posts < 2:
        parser.error("--posts: at least 2, for a pace")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        warm = make_campaign(root / "warm", pec_addresses(3), name="warm")
        paced = make_campaign(root / "paced", pec_addresses(args.posts), name="pace")
        # A quick unpaced round of both first: what either loop does once per process
        # (lazy imports, first connections, caches) is not a cost per post.
        with served("--send-rate", "0") as sim:  # no pace check: unpaced
            await bare(warm, sim, rate=20.0)
            await ours(warm, root / "warm.db", sim, rate=20.0)
        # Each paced loop has a simulator of its own with its default pace check (1/s), so
        # neither inherits the other's last post (an early post would be a 429).
        with served() as sim:
            base = await bare(paced, sim, RATE)
        with served() as sim:
            mine = await ours(paced, root / "paced.db", sim, RATE)
    beyond = mine.cpu_ms() - base.cpu_ms()
    print(
        f"CPU per paced post (client process only): ours {mine.cpu_ms():.2f} ms,"
        f" bare {base.cpu_ms():.2f} ms (ratio {mine.cpu_ms() / base.cpu_ms():.1f};"
        f" ours beyond bare {beyond:.2f} ms); target <= 2 ms"
    )
    print(
        f"achieved pace at 1/s against a 200 ms simulator: ours {mine.pace(RATE):.3f},"
        f" bare {base.pace(RATE):.3f}; target >= 0.99"
    )


if __name__ == "__main__":
    asyncio.run(main())
