"""The send loop against the simulator in-process, on each store engine (a SQLite file,
a PostgreSQL database).

Each test names the invariant of docs/architecture.md it proves.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from massiva.api import ApiSession, PecMassivaClient
from massiva.campaign import CampaignSpec, load_spec
from massiva.lease import LeaseBusy
from massiva.loading import load_campaign
from massiva.quota import Plan, day_key, month_key
from massiva.reconcile import reconcile
from massiva.sender import Eta, Progress, SendAborted, Sender, SendOptions, Sleep
from massiva.simulator import Fault, SimClock, Simulator
from massiva.store import CampaignRow, Claimed, Store
from massiva.times import ROME
from tests.conftest import TOKEN
from tests.contract import ContractTransport
from tests.db import connect

MAILBOX = "demo@pecmassiva.com"


def make_campaign(
    folder: Path, addresses: list[str], name: str = "prova", subject: str = "Avviso {{ codice }}"
) -> Path:
    """A campaign folder sending to ``addresses`` (by default, a subject per recipient)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "campaign.toml").write_text(
        f'name = "{name}"\nmailbox = "{MAILBOX}"\n'
        f'subject = "{subject}"\nbody = "<p>Gentile {{{{ nome }}}}</p>"\n'
        'recipients = "destinatari.csv"\naddress_column = "pec"\n',
        encoding="utf-8",
    )
    rows = [f"{a};Utente {i};C{i:04d}" for i, a in enumerate(addresses)]
    (folder / "destinatari.csv").write_text(
        "pec;nome;codice\n" + "\n".join(rows) + "\n", encoding="utf-8"
    )
    return folder


def pec_addresses(n: int) -> list[str]:
    return [f"utente{i:03d}@legalmail.it" for i in range(n)]


async def loaded(
    store: Store, folder: Path, addresses: list[str]
) -> tuple[CampaignSpec, CampaignRow]:
    """A campaign to ``addresses``, written in ``folder`` and loaded into ``store``."""
    spec = load_spec(make_campaign(folder, addresses))
    await load_campaign(store, spec)
    campaign = await store.campaigns.get(spec.name)
    assert campaign is not None
    return spec, campaign


SenderFor = Callable[..., Awaitable[Sender]]


@pytest.fixture
def sender_for(store: Store, demo: PecMassivaClient, tmp_path: Path, clock: SimClock) -> SenderFor:
    """A Sender of a campaign to ``addresses`` (loaded into the store), on the sim clock."""

    async def make(addresses: list[str], sleep: Sleep = asyncio.sleep, **options: object) -> Sender:
        spec, campaign = await loaded(store, tmp_path / "campagna", addresses)
        return Sender(
            store,
            demo,
            campaign,
            spec,
            SendOptions(**{"rate": None, **options}),  # type: ignore[arg-type]
            clock=clock.now,
            sleep=sleep,
        )

    return make


def states(db: Store) -> dict[str, str]:
    with connect(db) as conn:
        return dict(conn.execute("SELECT address, state FROM recipient").fetchall())


async def test_every_recipient_is_posted_once_with_its_message_id(
    sender_for: SenderFor, simulator: Simulator, store: Store, tmp_path: Path
) -> None:
    sender = await sender_for(pec_addresses(12))

    progress = await sender.run()

    assert progress.stopped == "done"
    assert progress.sent == 12
    assert set(simulator.post_counts().values()) == {1}
    assert len(simulator.post_counts()) == 12
    with connect(store) as conn:
        ours = dict(conn.execute("SELECT address, message_id FROM recipient").fetchall())
    theirs = {s.recipients[0]: s.message_id for s in simulator.sends}
    assert ours == theirs


class Spy(httpx.AsyncBaseTransport):
    """The network, seen from the database: what the outbox says as each POST leaves."""

    def __init__(self, inner: httpx.AsyncBaseTransport, db: Store) -> None:
        self.inner, self.db = inner, db
        self.seen: list[tuple[str, str, int]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == "/send":
            address = httpx.Response(200, content=await request.aread()).json()["recipient"]
            with connect(self.db) as conn:  # another connection: only committed data
                (state,) = conn.execute(
                    "SELECT state FROM recipient WHERE address = ?", (address,)
                ).fetchone()
                used = conn.execute("SELECT max(used) FROM allowance").fetchone()[0]
            self.seen.append((address, state, used))
        return await self.inner.handle_async_request(request)


async def test_invariant_1_sending_and_its_allowance_are_committed_before_the_request(
    store: Store, contract: ContractTransport, tmp_path: Path, clock: SimClock
) -> None:
    spy = Spy(contract, store)
    spec, campaign = await loaded(store, tmp_path / "c", pec_addresses(4))
    async with ApiSession("http://sim", TOKEN, transport=spy) as session:
        client = PecMassivaClient(session, MAILBOX, "demo")
        await Sender(
            store, client, campaign, spec, SendOptions(rate=None, in_flight=1), clock=clock.now
        ).run()

    assert [(a, s) for a, s, _ in spy.seen] == [(a, "sending") for a in pec_addresses(4)]
    assert [used for _, _, used in spy.seen] == [1, 2, 3, 4]


async def test_a_provider_refusal_is_rejected_with_its_reason_and_refunded(
    sender_for: SenderFor,
    simulator: Simulator,
    store: Store,
    tmp_path: Path,
    clock: SimClock,
    contract: ContractTransport,
) -> None:
    simulator.add_fault(
        Fault(
            path="/send",
            method="POST",
            kind="status",
            status=400,
            message="Post parameter is not valid: attachment too large",
        )
    )
    sender = await sender_for(pec_addresses(3))

    progress = await sender.run()

    assert progress.rejected == 1
    with connect(store) as conn:
        rejected = conn.execute(
            "SELECT address, reason FROM recipient WHERE state = 'rejected'"
        ).fetchall()
        used = conn.execute("SELECT period, used FROM allowance ORDER BY period").fetchall()
    # Posts overlap: whichever reached the vendor first was refused.
    assert [reason for _, reason in rejected] == [
        "Post parameter is not valid: attachment too large"
    ]
    assert [u for _, u in used] == [2, 2]  # day and month: only the two sent


async def test_refused_credentials_stop_the_run_and_lose_no_recipient(
    store: Store, contract: ContractTransport, tmp_path: Path, clock: SimClock
) -> None:
    spec, campaign = await loaded(store, tmp_path / "c", pec_addresses(3))
    async with ApiSession("http://sim", TOKEN, transport=contract) as session:
        wrong = PecMassivaClient(session, MAILBOX, "not-demo")
        with pytest.raises(SendAborted, match="HTTP 401"):
            await Sender(
                store, wrong, campaign, spec, SendOptions(rate=None), clock=clock.now
            ).run()

    assert set(states(store).values()) == {"pending"}
    with connect(store) as conn:
        assert conn.execute("SELECT sum(used) FROM allowance").fetchone()[0] == 0


async def test_a_dropped_connection_is_resolved_to_the_right_message_id_without_a_resend(
    sender_for: SenderFor, simulator: Simulator, store: Store
) -> None:
    simulator.add_fault(Fault(path="/send", method="POST", kind="drop_after_record"))
    first = await sender_for(pec_addresses(3))

    progress = await first.run()
    assert progress.unknown == 1
    assert sorted(states(store).values()) == ["sent", "sent", "unknown"]

    again = await sender_for(pec_addresses(3))
    progress = await again.run()

    assert progress.resolution.adopted == 1
    assert simulator.post_counts() == dict.fromkeys(pec_addresses(3), 1)
    with connect(store) as conn:
        ours = dict(conn.execute("SELECT address, message_id FROM recipient").fetchall())
    assert ours == {s.recipients[0]: s.message_id for s in simulator.sends}


async def test_an_unknown_post_that_left_nothing_is_sent_again_after_the_grace_period(
    sender_for: SenderFor,
    simulator: Simulator,
    clock: SimClock,
    contract: ContractTransport,
    store: Store,
) -> None:
    contract.undocumented.add(502)
    simulator.add_fault(Fault(path="/send", method="POST", kind="status", status=502))
    first = await sender_for(pec_addresses(2))
    await first.run()
    # Posts overlap: whichever reached the vendor first got the 502.
    assert sorted(states(store).values()) == ["sent", "unknown"]

    early = await (await sender_for(pec_addresses(2))).run()
    clock.advance(31 * 60)
    late = await (await sender_for(pec_addresses(2))).run()

    assert early.resolution.waiting == 1
    assert late.resolution.requeued == 1
    assert simulator.post_counts() == dict.fromkeys(pec_addresses(2), 1)
    assert set(states(store).values()) == {"sent"}


def rome_days(simulator: Simulator) -> Counter[str]:
    return Counter(s.at.astimezone(ROME).date().isoformat() for s in simulator.sends)


async def test_allowances_hold_across_restarts_and_a_day_and_a_month_boundary(
    sender_for: SenderFor, simulator: Simulator, clock: SimClock
) -> None:
    # 22:30 UTC on 30 March is already the 31st in Rome (UTC+2 since the 29th).
    clock.set(datetime(2026, 3, 30, 20, 0, tzinfo=UTC))
    plan = Plan(daily=3, monthly=5)
    addresses = pec_addresses(9)

    first = await (await sender_for(addresses, plan=plan)).run()
    restarted = await (await sender_for(addresses, plan=plan)).run()

    assert (first.sent, first.stopped) == (3, "allowance")
    assert first.renews_at == datetime(2026, 3, 30, 22, 0, tzinfo=UTC)  # Rome midnight
    assert (restarted.sent, restarted.stopped) == (0, "allowance")

    async def sleep(seconds: float) -> None:  # time flies: the waits pass at once
        clock.advance(seconds)

    waiting = await sender_for(addresses, plan=plan, wait=True, sleep=sleep)
    progress = await waiting.run()

    assert progress.stopped == "done"
    assert rome_days(simulator) == {
        "2026-03-30": 3,
        "2026-03-31": 2,
        "2026-04-01": 3,
        "2026-04-02": 1,
    }
    assert simulator.post_counts() == dict.fromkeys(addresses, 1)


async def test_a_provider_that_says_the_allowance_is_spent_fails_no_recipient(
    sender_for: SenderFor, simulator: Simulator, store: Store
) -> None:
    simulator.settings.daily_limit = 2
    sender = await sender_for(pec_addresses(4))

    progress = await sender.run()

    assert (progress.sent, progress.stopped) == (2, "allowance")
    assert "Daily sending limit reached" in progress.note
    assert Counter(states(store).values()) == {"sent": 2, "pending": 2}


async def test_pausing_stops_the_run_and_resuming_goes_on(
    sender_for: SenderFor, store: Store, simulator: Simulator, clock: SimClock
) -> None:
    sender = await sender_for(pec_addresses(6), in_flight=1)

    def pause_after_two(progress: Progress) -> None:
        if progress.sent == 2:  # as `massiva campaign pause` in another process does
            with connect(store) as other:
                other.execute(
                    "UPDATE campaign SET state = 'paused' WHERE id = ?", (sender.campaign.id,)
                )

    sender.on_progress = pause_after_two
    paused = await sender.run()
    await store.outbox.set_campaign_state(sender.campaign.id, "active", clock.now())
    resumed = await (await sender_for(pec_addresses(6))).run()

    assert paused.stopped == "paused"
    assert 2 <= paused.sent < 6
    assert paused.sent + resumed.sent == 6
    assert simulator.post_counts() == dict.fromkeys(pec_addresses(6), 1)


async def test_invariant_4_a_second_sender_on_the_mailbox_is_refused(
    sender_for: SenderFor, simulator: Simulator
) -> None:
    first = await sender_for(pec_addresses(5), in_flight=1)
    second = await sender_for(pec_addresses(5), in_flight=1)

    results = await asyncio.gather(first.run(), second.run(), return_exceptions=True)

    assert sum(isinstance(r, LeaseBusy) for r in results) == 1
    assert simulator.post_counts() == dict.fromkeys(pec_addresses(5), 1)


async def test_the_pace_is_kept_and_the_simulator_never_says_slow_down(
    sender_for: SenderFor, simulator: Simulator
) -> None:
    simulator.settings.send_rate = 1.0
    sender = await sender_for(pec_addresses(3), rate=1.0)

    progress = await sender.run()

    assert progress.sent == 3
    assert [r.status for r in simulator.requests if r.path == "/send"] == [201, 201, 201]


class Arrivals(httpx.AsyncBaseTransport):
    """The network, timed: when (real time) each POST /send reaches the simulator."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.sends: list[float] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == "/send":
            self.sends.append(time.monotonic())
        return await self.inner.handle_async_request(request)


async def test_a_faster_pace_still_spaces_its_posts(
    store: Store, contract: ContractTransport, tmp_path: Path, clock: SimClock
) -> None:
    arrivals = Arrivals(contract)
    spec, campaign = await loaded(store, tmp_path / "c", pec_addresses(12))
    async with ApiSession("http://sim", TOKEN, transport=arrivals) as session:
        client = PecMassivaClient(session, MAILBOX, "demo")
        sender = Sender(store, client, campaign, spec, SendOptions(rate=40.0), clock=clock.now)
        progress = await sender.run()

    assert progress.sent == 12
    # 25 ms apart. Posts leaving together would arrive within a millisecond or so; the
    # median ignores the few a loaded machine delays (a real-time bound on each would
    # fail there).
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals.sends)]
    assert len(gaps) == 11 and statistics.median(gaps) > 0.0125


async def test_after_refused_credentials_nothing_more_is_posted_nor_counted(
    sender_for: SenderFor, simulator: Simulator, store: Store
) -> None:
    simulator.settings.send_rate = 40.0
    simulator.add_fault(Fault(path="/send", method="POST", status=401))
    sender = await sender_for(pec_addresses(4), rate=40.0)

    with pytest.raises(SendAborted, match="HTTP 401"):
        await sender.run()

    assert [r.status for r in simulator.requests if r.path == "/send"] == [401]
    assert set(states(store).values()) == {"pending"}
    with connect(store) as conn:
        assert conn.execute("SELECT sum(used) FROM allowance").fetchone()[0] == 0


async def test_a_slow_down_answer_pauses_and_fails_no_recipient(
    sender_for: SenderFor, simulator: Simulator, store: Store
) -> None:
    simulator.settings.send_rate = 1.0
    sender = await sender_for(pec_addresses(3), rate=10.0)

    progress = await sender.run()

    assert 429 in [r.status for r in simulator.requests if r.path == "/send"]
    assert progress.sent == 3
    assert simulator.post_counts() == dict.fromkeys(pec_addresses(3), 1)
    assert set(states(store).values()) == {"sent"}


async def test_a_sender_killed_after_its_post_is_settled_by_the_reconciler(
    store: Store, demo: PecMassivaClient, simulator: Simulator, clock: SimClock, tmp_path: Path
) -> None:
    _, campaign = await loaded(store, tmp_path / "c", pec_addresses(1))
    # A sender that claimed, posted, and died before recording the answer:
    lease, holder, now = f"send:{MAILBOX}", "elsewhere:1:dead", clock.now()
    await store.outbox.acquire_lease(lease, holder, timedelta(seconds=-1), now)
    claims = await store.outbox.claim(
        campaign.id,
        mailbox=MAILBOX,
        lease=lease,
        holder=holder,
        day="D",
        month="M",
        daily_limit=10,
        monthly_limit=10,
        now=now,
        wall=now - timedelta(days=1),
    )
    assert isinstance(claims, Claimed)
    claimed = claims
    sent = await demo.send(claimed.address, claimed.subject, "<p>…</p>")

    summary = await reconcile(store, demo, MAILBOX, clock=clock.now)

    assert summary.unknowns.adopted == 1
    with connect(store) as conn:
        row = conn.execute("SELECT state, message_id FROM recipient").fetchone()
    assert row[1] == sent.message_id
    assert row[0] in {"sent", "accepted", "delivered"}
    assert simulator.post_counts() == {claimed.address: 1}


async def test_max_counts_recipients_sent_not_claims_given_back_after_a_slow_down(
    sender_for: SenderFor, simulator: Simulator, store: Store
) -> None:
    # Three claims leave at once (up to in_flight); the first two posts to reach the
    # vendor are answered 429 "slow down" and given back to `pending`, with their
    # allowance. Counting claims, --max 3 would stop with one recipient sent and one post
    # recorded (3 claims taken, 2 of them given back): this test would fail. Counting
    # what was sent, the two given back are claimed again after the pause.
    simulator.add_fault(Fault(path="/send", method="POST", kind="rate_limit", times=2))
    sender = await sender_for(pec_addresses(6), max_recipients=3)

    progress = await sender.run()

    assert (progress.stopped, progress.sent) == ("max", 3)
    assert sorted(r.status for r in simulator.requests if r.path == "/send") == [
        201,
        201,
        201,
        429,
        429,
    ]
    assert simulator.post_counts() == dict.fromkeys(pec_addresses(3), 1)
    assert states(store) == {
        **dict.fromkeys(pec_addresses(3), "sent"),
        **dict.fromkeys(pec_addresses(6)[3:], "pending"),
    }
    with connect(store) as conn:
        used = conn.execute("SELECT used FROM allowance ORDER BY period").fetchall()
    assert used == [(3,), (3,)]  # day and month: the refused claims were given back


def room_in_the_database(db: Store, at: datetime, plan: Plan) -> int:
    """The allowance left at ``at`` (a Rome day and month), read as another process would."""
    with connect(db) as conn:
        used = dict(conn.execute("SELECT period, used FROM allowance").fetchall())
    return min(plan.daily - used.get(day_key(at), 0), plan.monthly - used.get(month_key(at), 0))


Seen = tuple[int, int, int, int, int]  # to_send, done, rejected, allowance shown, in the db


def watch(sender: Sender, db: Store, plan: Plan) -> list[Seen]:
    """Every report of ``sender``, with the allowance the database had at that moment."""
    seen: list[Seen] = []

    def report(p: Progress) -> None:
        assert p.at is not None
        real = room_in_the_database(db, p.at, plan)
        seen.append((p.to_send, p.done, p.rejected, p.allowance_left, real))

    sender.on_progress = report
    return seen


async def test_the_first_report_knows_the_total_and_the_allowance_left(
    sender_for: SenderFor, store: Store
) -> None:
    plan = Plan(daily=10, monthly=100)
    await (await sender_for(pec_addresses(7), plan=plan, max_recipients=2)).run()
    sender = await sender_for(pec_addresses(7), plan=plan)
    seen = watch(sender, store, plan)

    progress = await sender.run()

    assert seen[0] == (5, 0, 0, 8, 8)  # 5 to send, 8 of the day's 10 left
    assert seen[-1] == (5, 5, 0, 3, 3)
    assert (progress.to_send, progress.done, progress.allowance_left) == (5, 5, 3)
    assert all(shown <= real for *_, shown, real in seen), seen


async def test_max_is_the_total_of_its_run(sender_for: SenderFor, store: Store) -> None:
    sender = await sender_for(pec_addresses(7), max_recipients=3)
    seen = watch(sender, store, Plan())

    await sender.run()

    assert [(to_send, done) for to_send, done, *_ in (seen[0], seen[-1])] == [(3, 0), (3, 3)]


async def test_a_refund_shows_at_once_and_no_report_shows_more_than_is_left(
    sender_for: SenderFor, simulator: Simulator, store: Store
) -> None:
    simulator.add_fault(Fault(path="/send", method="POST", kind="status", status=400))
    plan = Plan(daily=10, monthly=100)
    # Paced: the next claim waits for its slot, well after the refusal is recorded.
    sender = await sender_for(pec_addresses(2), plan=plan, rate=1.0, in_flight=1)
    seen = watch(sender, store, plan)

    await sender.run()

    refused = next(s for s in seen if s[2] == 1)
    assert refused[3:] == (10, 10)  # the refused one's allowance is back on screen
    assert seen[-1][3:] == (9, 9)
    assert all(shown <= real for *_, shown, real in seen), seen


async def test_the_allowance_shown_is_the_one_of_the_rome_day_of_the_runs_clock(
    sender_for: SenderFor, clock: SimClock, store: Store
) -> None:
    # As in the demo, whose clock runs two hours a second: the run's clock passes Rome
    # midnight mid-send, and the day's allowance renews on that clock.
    clock.set(datetime(2026, 3, 10, 22, 30, tzinfo=UTC))  # 23:30 in Rome
    plan = Plan(daily=5, monthly=100)
    sender = await sender_for(pec_addresses(8), plan=plan, in_flight=1)
    shown: list[tuple[str, int, int]] = []

    def report(p: Progress) -> None:
        assert p.at is not None
        day = p.at.astimezone(ROME).date().isoformat()
        real = room_in_the_database(store, p.at, plan)
        shown.append((day, p.allowance_left, real))
        clock.advance(600)  # ten minutes a report

    sender.on_progress = report
    progress = await sender.run()

    assert progress.sent == 8
    days = [day for day, _, _ in shown]
    assert days[0] == "2026-03-10" and days[-1] == "2026-03-11"
    assert all(left <= real for _, left, real in shown), shown
    assert shown[-1][1] == shown[-1][2]
    by_day = {day: [left for d, left, _ in shown if d == day] for day in days}
    for lefts in by_day.values():  # within a Rome day it never rises...
        assert lefts == sorted(lefts, reverse=True), shown
    assert by_day["2026-03-11"][0] > by_day["2026-03-10"][-1]  # ...and renews at midnight


def test_the_pace_is_of_sends_the_provider_took_and_slows_when_they_stop() -> None:
    progress = Progress("prova", rate=1.0, to_send=10, allowance_left=100)
    progress.posted = 30  # attempts (429s, refusals, no answer) are not sends

    assert progress.pace(now=0.0) is None  # nothing measured yet
    for second in (0.0, 1.1, 2.2, 3.3):  # 0.9 a second
        progress.count_sent(now=second)

    assert progress.pace(now=3.5) == pytest.approx(3 / 3.3)
    assert progress.pace(now=15.4) == pytest.approx(3 / (15.4 - 1.1))  # none for 12 s
    progress.pace_restarts()  # after a wait, measured afresh
    assert progress.pace(now=100.0) is None


def test_the_eta_is_at_the_pace_achieved_and_stops_at_the_allowance() -> None:
    progress = Progress("prova", rate=1.0, to_send=10, allowance_left=100)

    assert progress.eta(now=0.0) == Eta(10.0, "done")  # the configured pace, until measured
    for second in (0.0, 2.0, 4.0):  # the provider took one every 2 s
        progress.count_sent(now=second)
    assert progress.eta(now=4.5) == Eta(14.0, "done")  # 7 left at 0.5 a second
    progress.allowance_left = 3
    assert progress.eta(now=4.5) == Eta(6.0, "allowance")  # 3 more, then it is spent
    progress.stopped = "allowance"
    assert progress.eta(now=4.5) is None
    assert Progress("prova", rate=None, to_send=10, allowance_left=100).eta() is None
