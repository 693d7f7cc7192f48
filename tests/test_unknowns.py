"""Posts of unknown outcome settled from the inbox (massiva/unknowns.py), on campaigns
built to fool a matcher: one subject for everyone, the sending mailbox among the
recipients (every acceptance names it; its own copy comes back as a POSTA CERTIFICATA),
addresses that end other addresses. Every post is recorded by the simulator and then
its answer is lost, so each recipient is ``unknown`` at once; the search must give each
its own message id, or nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest

from massiva.api import PecMassivaClient
from massiva.campaign import load_spec
from massiva.loading import load_campaign
from massiva.reconcile import reconcile
from massiva.sender import Sender, SendOptions
from massiva.simulator import Fault, SimClock, Simulator
from massiva.store import Claimed, Store
from massiva.times import utcnow
from massiva.unknowns import resolve_unknowns
from tests.db import connect
from tests.test_sender import make_campaign

MAILBOX = "demo@pecmassiva.com"
SUBJECT = "Avviso di pagamento"
#: The mailbox itself, and addresses that are the tail of another, after ' & = ! # /.
LOOK_ALIKES = [
    MAILBOX,
    "brien@legalmail.it",
    "o'brien@legalmail.it",
    "a&brien@legalmail.it",
    "a=brien@legalmail.it",
    "a!brien@legalmail.it",
    "a#brien@legalmail.it",
    "a/brien@legalmail.it",
    "x.demo@pecmassiva.com",
]

Settle = Callable[[Store, PecMassivaClient, SimClock], Awaitable[None]]


def campaign_folder(folder: Path, addresses: list[str], name: str = "prova") -> Path:
    """A campaign with ONE subject for every recipient."""
    return make_campaign(folder, addresses, name, subject=SUBJECT)


async def send_all_unknown(
    store: Store,
    demo: PecMassivaClient,
    simulator: Simulator,
    clock: SimClock,
    folder: Path,
    addresses: list[str],
    name: str = "prova",
) -> None:
    """Send the campaign; the vendor records every post and every answer is lost."""
    spec = load_spec(campaign_folder(folder, addresses, name))
    await load_campaign(store, spec)
    campaign = await store.campaigns.get(spec.name)
    assert campaign is not None
    fault = Fault(path="/send", method="POST", kind="drop_after_record", times=len(addresses))
    simulator.add_fault(fault)
    progress = await Sender(
        store, demo, campaign, spec, SendOptions(rate=None), clock=clock.now
    ).run()
    assert progress.unknown == len(addresses)


def recorded(db: Store) -> dict[str, tuple[str, str | None, str | None]]:
    """address -> (state, message id, reason)."""
    with connect(db) as conn:
        rows = conn.execute("SELECT address, state, message_id, reason FROM recipient").fetchall()
    return {a: (s, m, r) for a, s, m, r in rows}


def vendor_ids(simulator: Simulator) -> dict[str, str]:
    """address -> the message id the vendor gave its one post."""
    return {send.recipients[0]: send.message_id for send in simulator.sends}


def allowance_used(db: Store) -> int:
    with connect(db) as conn:
        return int(conn.execute("SELECT used FROM allowance WHERE period LIKE 'M%'").fetchone()[0])


async def from_send(store: Store, demo: PecMassivaClient, clock: SimClock) -> None:
    """A second ``massiva send`` of the campaign settles them first."""
    campaign = await store.campaigns.get("prova")
    assert campaign is not None
    spec = load_spec(Path(campaign.folder))
    progress = await Sender(
        store, demo, campaign, spec, SendOptions(rate=None), clock=clock.now
    ).run()
    assert progress.stopped == "done"


async def from_reconcile(store: Store, demo: PecMassivaClient, clock: SimClock) -> None:
    await reconcile(store, demo, MAILBOX, clock=clock.now)


@pytest.mark.parametrize("order", ["newest_first", "oldest_first"])
@pytest.mark.parametrize("settle", [from_send, from_reconcile], ids=["send", "reconcile"])
async def test_each_look_alike_gets_its_own_message_id_and_nobody_a_second_post(
    store: Store,
    demo: PecMassivaClient,
    simulator: Simulator,
    clock: SimClock,
    tmp_path: Path,
    order: str,
    settle: Settle,
) -> None:
    simulator.settings.inbox_order = order
    simulator.settings.inbox_page_size = 3  # the search reads several pages
    await send_all_unknown(store, demo, simulator, clock, tmp_path / "c", LOOK_ALIKES)
    clock.advance(120)  # the receipts come in; the mailbox's copy of its own message too

    await settle(store, demo, clock)
    clock.advance(3600)  # long past any grace period: nothing is requeued either
    await settle(store, demo, clock)

    found = recorded(store)
    assert {a: m for a, (_, m, _) in found.items()} == vendor_ids(simulator)
    assert all(state in {"sent", "accepted", "delivered"} for state, _, _ in found.values())
    assert simulator.post_counts() == dict.fromkeys(LOOK_ALIKES, 1)
    assert allowance_used(store) == len(simulator.sends)


async def test_receipts_that_cannot_be_told_apart_adopt_nothing_and_wait_for_an_operator(
    store: Store, demo: PecMassivaClient, simulator: Simulator, clock: SimClock, tmp_path: Path
) -> None:
    # Two campaigns, one subject, the same address, each posted by a sender that died
    # before its answer: two acceptances name the address, and nothing says which post
    # each one answers.
    holder, now = "elsewhere:1:dead", clock.now()
    await store.outbox.acquire_lease(f"send:{MAILBOX}", holder, timedelta(days=1), utcnow())
    for name in ("uno", "due"):
        spec = load_spec(campaign_folder(tmp_path / name, [MAILBOX], name))
        await load_campaign(store, spec)
        campaign = await store.campaigns.get(name)
        assert campaign is not None
        claimed = await store.outbox.claim(
            campaign.id,
            mailbox=MAILBOX,
            lease=f"send:{MAILBOX}",
            holder=holder,
            day="D2026-03-10",
            month="M2026-03",
            daily_limit=10,
            monthly_limit=10,
            now=now,
            wall=utcnow(),
        )
        assert isinstance(claimed, Claimed)
        await demo.send(claimed.address, claimed.subject, "<p>...</p>")
    assert await store.outbox.orphaned_sends(MAILBOX, now) == 2
    clock.advance(120)

    first = await resolve_unknowns(store, demo, MAILBOX, now=clock.now())
    clock.advance(3600)
    later = await resolve_unknowns(store, demo, MAILBOX, now=clock.now())

    assert (first.adopted, first.ambiguous, later.requeued, later.ambiguous) == (0, 2, 0, 2)
    with connect(store) as conn:
        rows = conn.execute("SELECT state, message_id, reason FROM recipient").fetchall()
    assert [(s, m) for s, m, _ in rows] == [("unknown", None), ("unknown", None)]
    assert all(r.startswith("ambiguous: 2 receipt(s) (inbox ids") for _, _, r in rows)
    assert simulator.post_counts() == {MAILBOX: 2}

    # An operator settles one: one receipt is left for the other, and still only an
    # operator decides (that receipt may answer a message sent by hand, say).
    (uno,) = [u for u in await store.outbox.unknowns(MAILBOX) if u.campaign == "uno"]
    first_id = simulator.sends[0].message_id
    assert await store.outbox.settle(uno.id, message_id=first_id, decided_by="op", now=now)
    after = await resolve_unknowns(store, demo, MAILBOX, now=clock.now())
    assert (after.adopted, after.ambiguous) == (0, 1)


async def test_a_search_with_nothing_found_requeues_only_after_the_grace_period(
    store: Store, demo: PecMassivaClient, simulator: Simulator, clock: SimClock, tmp_path: Path
) -> None:
    spec = load_spec(campaign_folder(tmp_path / "c", ["brien@legalmail.it"]))
    await load_campaign(store, spec)
    campaign = await store.campaigns.get(spec.name)
    assert campaign is not None
    simulator.add_fault(Fault(path="/send", method="POST", kind="drop_before_record"))
    await Sender(store, demo, campaign, spec, SendOptions(rate=None), clock=clock.now).run()
    # A look-alike's acceptance with the same subject is in the mailbox: not its proof.
    await demo.send("o'brien@legalmail.it", SUBJECT, "<p>altro</p>")
    clock.advance(60)

    early = await resolve_unknowns(store, demo, MAILBOX, now=clock.now())
    clock.advance(timedelta(minutes=30).total_seconds())
    late = await resolve_unknowns(store, demo, MAILBOX, now=clock.now())

    assert (early.adopted, early.waiting, late.adopted, late.requeued) == (0, 1, 0, 1)
    assert recorded(store)["brien@legalmail.it"][:2] == ("pending", None)
