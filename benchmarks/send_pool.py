"""One process sending from a pool of 200 mailboxes at 1 post a second each, beside a
bare baseline in the same run.

Both loops post the same messages, each mailbox at its own pace, over a loopback socket
to a ``massiva simulator`` process of their own, which hosts the 200 mailboxes and
answers every ``POST /send`` in ``--answer`` seconds (a ``slow`` fault). Its pace check is
lifted unless ``--sim-pace`` (then an early post is refused with a 429, counted below):
a loaded simulator's own queueing brings on-time posts too close together.
Ours is massiva's Sender with one Box per mailbox, each over its own ApiSession, as
``massiva send`` builds it (claim in SQLite, render, keep the body, POST, mark sent); the
bare loop is 200 asyncio tasks posting with plain httpx, a client a mailbox with the same
connection limits, each sleeping until its next slot.

1. Achieved pace of each mailbox: (its posts - 1) / (time from its first post to its
   last) over the configured rate, a post timed as the client is asked to make it, and
   again as the simulator recorded it. The minimum, the median, the share of mailboxes
   at 0.98 or more, and the closest two posts of one mailbox. Target: every one >= 0.98.
2. CPU per post: this process's CPU time (``time.process_time``, all its threads, the
   simulator's excluded, shown apart from /proc) over the run, divided by its posts.
   Target: at most 2 ms.

The figures are printed, never asserted.

Run: python benchmarks/send_pool.py [--boxes 200] [--posts 60] [--answer 0.2]
     [--sim-pace] [--only ours|bare] [--profile FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import itertools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.send_pace import Simulator, served
from massiva.api import ApiSession, Attachment, PecMassivaClient, SendResult
from massiva.api.session import DEFAULT_LIMITS
from massiva.campaign import Recipient, Renderer, load_spec, validate
from massiva.loading import load_campaign
from massiva.quota import Plan
from massiva.sender import Box, Sender, SendOptions
from massiva.store import Store
from tests.test_sender import MAILBOX, make_campaign, pec_addresses

RATE = 1.0  # posts a second per mailbox, as users send
TARGET_PACE = 0.98
TARGET_CPU_MS = 2.0


def pool(boxes: int) -> dict[str, str]:
    """The pool's mailboxes and their passwords."""
    return {f"box{i:03d}@pecmassiva.com": f"segreta{i:03d}" for i in range(boxes)}


class TimedClient(PecMassivaClient):
    """A mailbox's client that notes when each post is asked of it (when it leaves)."""

    def __init__(self, session: ApiSession, username: str, password: str) -> None:
        super().__init__(session, username, password)
        self.left: list[float] = []

    async def send(
        self,
        recipient: str | Sequence[str],
        subject: str,
        body: str,
        *,
        attachments: Sequence[Attachment] = (),
        sender: str | None = None,
    ) -> SendResult:
        self.left.append(time.monotonic())
        return await super().send(recipient, subject, body, attachments=attachments, sender=sender)


def paces(times: dict[str, list[float]], rate: float) -> str:
    """Each mailbox's achieved pace over the configured one: (its posts - 1) / (its last
    post - its first), summed up; and the closest two posts of one mailbox."""
    found = sorted((len(t) - 1) / (t[-1] - t[0]) / rate for t in times.values() if len(t) > 1)
    good = sum(p >= TARGET_PACE for p in found) / len(found)
    gap = min(b - a for t in times.values() for a, b in itertools.pairwise(t))
    return (
        f"pace min {found[0]:.3f}, median {statistics.median(found):.3f},"
        f" {good:.1%} of mailboxes >= {TARGET_PACE}; closest posts of a mailbox {gap:.3f} s"
    )


@dataclass
class Run:
    cost: Cost
    left: dict[str, list[float]]  # mailbox -> when each of its posts left (time.monotonic)
    arrived: dict[str, list[float]]  # mailbox -> when the simulator handled each (seconds)
    refused: int  # POST /send the simulator did not answer 201 (an early post: 429)

    @property
    def posts(self) -> int:
        return sum(len(times) for times in self.left.values())

    def cpu_ms(self) -> float:
        return self.cost.cpu * 1000 / self.posts

    def describe(self, name: str, rate: float) -> str:
        c = self.cost
        return (
            f"{name}: {self.posts} posts from {len(self.left)} mailboxes in {c.wall:.0f} s,"
            f" {self.refused} refused by the simulator; CPU {c.cpu:.1f} s ="
            f" {self.cpu_ms():.2f} ms a post ({c.cpu / c.wall:.0%} of a core; the simulator's"
            f" {c.sim_cpu / c.wall:.0%})\n"
            f"  as the client posted them: {paces(self.left, rate)}\n"
            f"  as the simulator took them: {paces(self.arrived, rate)}"
        )


def arm(sim: Simulator, posts: int, answer: float) -> None:
    """Answer the next ``posts`` POST /send in ``answer`` seconds; count from here."""
    sim.since = httpx.get(f"{sim.url}/_simulator/requests").json()["next"]
    if answer:
        fault = {"path": "/send", "method": "POST", "kind": "slow", "delay": answer}
        httpx.post(
            f"{sim.url}/_simulator/faults", json={**fault, "times": posts}
        ).raise_for_status()


def refused(sim: Simulator) -> int:
    """POST /send answered otherwise than 201 since the simulator was armed."""
    answer = httpx.get(f"{sim.url}/_simulator/requests", params={"since": sim.since}, timeout=60)
    sends = [r for r in answer.json()["requests"] if r["path"] == "/send"]
    return sum(r["status"] != 201 for r in sends)


def arrivals(sim: Simulator) -> dict[str, list[float]]:
    """Mailbox -> when the simulator recorded each of its sendings (its clock runs at real
    speed: seconds apart are real seconds), after its ``answer`` delay."""
    sends = httpx.get(f"{sim.url}/_simulator/sends", timeout=60).json()["sends"]
    found: dict[str, list[float]] = {}
    for send in sends:
        at = datetime.fromisoformat(send["at"]).timestamp()
        found.setdefault(send["mailbox"], []).append(at)
    return found


def host(sim: Simulator, boxes: dict[str, str]) -> None:
    """Add the pool's mailboxes to the simulator."""
    with httpx.Client(base_url=sim.url) as admin:
        for address, password in boxes.items():
            added = admin.post(
                "/_simulator/mailboxes", json={"address": address, "password": password}
            )
            added.raise_for_status()


def simulator_cpu() -> float:
    """CPU seconds used so far by this process's children (the one simulator running),
    from /proc (Linux): whether the simulator, not the client, is what limits a run."""
    me = os.getpid()
    children = Path(f"/proc/{me}/task/{me}/children").read_text().split()
    ticks = 0
    for child in children:
        fields = Path(f"/proc/{child}/stat").read_text().rpartition(")")[2].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class Cost:
    cpu: float  # seconds of this process's CPU time
    wall: float  # seconds
    sim_cpu: float  # seconds of the simulator's CPU time


async def measured(run: Awaitable[object], profile: cProfile.Profile | None) -> Cost:
    """What ``run`` costs in this process and in the simulator (profiled if ``profile``)."""
    # The runs before this one left cyclic garbage: collected now, not inside this one.
    gc.collect()
    started, wall, sim = time.process_time(), time.monotonic(), simulator_cpu()
    if profile:
        profile.enable()
    try:
        await run
    finally:
        if profile:
            profile.disable()
    return Cost(time.process_time() - started, time.monotonic() - wall, simulator_cpu() - sim)


def pool_campaign(folder: Path, name: str, boxes: dict[str, str], posts: int) -> Path:
    """A campaign of ``posts`` recipients a mailbox, sent from every mailbox of ``boxes``."""
    make_campaign(folder, pec_addresses(posts * len(boxes)), name=name)
    spec = folder / "campaign.toml"
    listed = ", ".join(f'"{box}"' for box in boxes)
    spec.write_text(
        spec.read_text(encoding="utf-8").replace(
            f'mailbox = "{MAILBOX}"', f"mailboxes = [{listed}]"
        ),
        encoding="utf-8",
    )
    return folder


async def bare(
    folder: Path, sim: Simulator, boxes: dict[str, str], rate: float, answer: float
) -> Run:
    """Post the rendered messages with plain httpx: one task a mailbox, each post at its
    slot (rendering not timed); the messages are dealt to the mailboxes in turn."""
    spec = load_spec(folder)
    renderer = Renderer(spec)
    addresses = list(boxes)
    payloads: dict[str, list[dict[str, Any]]] = {box: [] for box in addresses}
    for n, item in enumerate(validate(spec)):
        assert isinstance(item, Recipient), item  # every address is valid
        box = addresses[n % len(addresses)]
        subject, body = renderer.render(item.fields)
        payloads[box].append(
            {
                "sender": box,
                "recipient": item.address,
                "subject": subject,
                "body": body,
                "username": box,
                "password": boxes[box],
            }
        )
    arm(sim, sum(map(len, payloads.values())), answer)
    left: dict[str, list[float]] = {box: [] for box in addresses}
    # A client a mailbox with the connection limits ApiSession uses, as massiva's loop.
    async with contextlib.AsyncExitStack() as stack:
        clients = {
            box: await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=sim.url, headers={"Authorization": "Bearer x"}, limits=DEFAULT_LIMITS
                )
            )
            for box in addresses
        }

        async def paced(box: str) -> None:
            loop = asyncio.get_running_loop()
            first = loop.time()
            client = clients[box]
            for n, payload in enumerate(payloads[box]):
                await asyncio.sleep(first + n / rate - loop.time())  # until its slot
                left[box].append(time.monotonic())
                await client.post("/send", json=payload)

        async def every() -> None:
            await asyncio.gather(*(paced(box) for box in addresses))

        cost = await measured(every(), None)
    return Run(cost, left, arrivals(sim), refused(sim))


async def ours(
    folder: Path,
    db: Path,
    sim: Simulator,
    boxes: dict[str, str],
    rate: float,
    answer: float,
    profile: cProfile.Profile | None = None,
) -> Run:
    """The whole send loop of one campaign from every mailbox of the pool (the load into
    the outbox not timed)."""
    spec = load_spec(folder)
    async with await Store.open(db) as store:
        await load_campaign(store, spec)
        campaign = await store.campaigns.get(spec.name)
        assert campaign is not None
        pending = (await store.campaigns.counts(campaign.id))["pending"]
        arm(sim, pending, answer)
        async with contextlib.AsyncExitStack() as stack:  # a session a mailbox, as massiva send
            clients = [
                TimedClient(await stack.enter_async_context(ApiSession(sim.url, "x")), box, pw)
                for box, pw in boxes.items()
            ]
            pool_of = [Box(client, Plan(), rate) for client in clients]
            sender = Sender(store, pool_of, campaign, spec, SendOptions())
            cost = await measured(sender.run(), profile)
    assert sender.progress.sent == pending, sender.progress
    return Run(cost, {c.username: c.left for c in clients}, arrivals(sim), refused(sim))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--boxes", type=int, default=200, help="mailboxes in the pool")
    parser.add_argument("--posts", type=int, default=60, help="recipients a mailbox")
    parser.add_argument(
        "--answer", type=float, default=0.2, help="seconds the simulator takes to answer"
    )
    parser.add_argument(
        "--sim-pace",
        action="store_true",
        help="keep the simulator's pace check (a post under 0.9 s after its mailbox's last is"
        " refused); off by default: a loaded simulator's own queueing makes posts that left"
        " on time reach it too close together",
    )
    parser.add_argument("--profile", type=Path, help="write a cProfile of our paced run here")
    parser.add_argument("--only", choices=["ours", "bare"], help="run one loop only")
    args = parser.parse_args()
    if args.posts < 2 or args.boxes < 1:
        parser.error("--posts: at least 2, for a pace; --boxes: at least 1")
    boxes = pool(args.boxes)
    profile = cProfile.Profile() if args.profile else None
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        few = dict(list(boxes.items())[:3])
        warm = pool_campaign(root / "warm", "warm", few, 2)
        paced = pool_campaign(root / "paced", "pool", boxes, args.posts)
        # A quick unpaced round of both first: what either loop does once per process
        # (lazy imports, first connections, caches) is not a cost per post.
        with served("--send-rate", "0") as sim:  # no pace check: unpaced
            host(sim, few)
            await bare(warm, sim, few, 20.0, 0.0)
            await ours(warm, root / "warm.db", sim, few, 20.0, 0.0)
        # Each paced loop has a simulator of its own, so neither inherits the other's
        # sendings (nor, with --sim-pace, its last post: an early post would be a 429).
        pace_check = () if args.sim_pace else ("--send-rate", "0")
        runs: dict[str, Run] = {}
        if args.only != "ours":
            with served(*pace_check) as sim:
                host(sim, boxes)
                runs["bare"] = await bare(paced, sim, boxes, RATE, args.answer)
        if args.only != "bare":
            with served(*pace_check) as sim:
                host(sim, boxes)
                runs["ours"] = await ours(
                    paced, root / "paced.db", sim, boxes, RATE, args.answer, profile
                )
    for name, run in runs.items():
        print(run.describe(name, RATE))
    if len(runs) == 2:
        mine, base = runs["ours"], runs["bare"]
        print(
            f"CPU per post: ours {mine.cpu_ms():.2f} ms, bare {base.cpu_ms():.2f} ms (ratio"
            f" {mine.cpu_ms() / base.cpu_ms():.1f}; ours beyond bare"
            f" {mine.cpu_ms() - base.cpu_ms():.2f} ms); target <= {TARGET_CPU_MS} ms"
        )
    print(f"targets: every mailbox's pace >= {TARGET_PACE}, CPU a post <= {TARGET_CPU_MS} ms")
    if profile and args.profile:
        with contextlib.suppress(OSError):
            profile.dump_stats(args.profile)
        print(f"profile of our paced run: {args.profile}")


if __name__ == "__main__":
    asyncio.run(main())
