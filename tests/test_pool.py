"""One campaign from a pool of mailboxes, and its schedule: the simulator in-process, on
each store engine. Each mailbox keeps its own pace, allowances and lease; a recipient is
claimed by exactly one; a mailbox that stops stops alone."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from massiva.api import ApiSession, PecMassivaClient
from massiva.campaign import CampaignError, load_spec
from massiva.loading import load_campaign
from massiva.quota import Plan
from massiva.sender import Box, Progress, Sender, SendOptions
from massiva.simulator import SimClock, Simulator
from massiva.store import Store
from tests.conftest import BASE_URL, TOKEN
from tests.contract import ContractTransport
from tests.db import connect

POOL = ["uno@pecmassiva.com", "due@pecmassiva.com", "tre@pecmassiva.com"]
PASSWORD = "segreta"


def campaign_folder(
    folder: Path, addresses: list[str], *, pool: str = "", schedule: str = ""
) -> Path:
    """A campaign to ``addresses`` from ``pool`` (campaign.toml's text; the three boxes
    by default), with a ``[schedule]`` table's lines if given."""
    folder.mkdir(parents=True, exist_ok=True)
    pool = pool or "mailboxes = [" + ", ".join(f'"{a}"' for a in POOL) + "]"
    table = f"\n[schedule]\n{schedule}\n" if schedule else ""
    (folder / "campaign.toml").write_text(
        f'name = "pool"\n{pool}\nsubject = "Avviso {{{{ codice }}}}"\n'
        'body = "<p>Gentile {{ nome }}</p>"\nrecipients = "destinatari.csv"\n'
        f'address_column = "pec"\n{table}',
        encoding="utf-8",
    )
    rows = [f"{a};Utente {i};C{i:04d}" for i, a in enumerate(addresses)]
    (folder / "destinatari.csv").write_text(
        "pec;nome;codice\n" + "\n".join(rows) + "\n", encoding="utf-8"
    )
    return folder


def people(n: int) -> list[str]:
    return [f"persona{i:03d}@legalmail.it" for i in range(n)]


@pytest.fixture
def pool(simulator: Simulator) -> list[str]:
    for address in POOL:
        simulator.add_mailbox(address, PASSWORD)
    return POOL


@pytest.fixture
async def api(contract: ContractTransport) -> AsyncIterator[ApiSession]:
    async with ApiSession(BASE_URL, TOKEN, transport=contract) as session:
        yield session


def boxes(
    api: ApiSession, plan: Plan | None = None, passwords: dict[str, str] | None = None
) -> list[Box]:
    passwords = passwords or {}
    return [
        Box(PecMassivaClient(api, a, passwords.get(a, PASSWORD)), plan or Plan(), None)
        for a in POOL
    ]


async def sender(
    store: Store,
    tmp_path: Path,
    api: ApiSession,
    clock: SimClock,
    count: int,
    *,
    plan: Plan | None = None,
    passwords: dict[str, str] | None = None,
    schedule: str = "",
    **options: object,
) -> Sender:
    spec = load_spec(campaign_folder(tmp_path / "c", people(count), schedule=schedule))
    await load_campaign(store, spec)
    campaign = await store.campaigns.get("pool")
    assert campaign is not None
    return Sender(
        store,
        boxes(api, plan, passwords),
        campaign,
        spec,
        SendOptions(**options),  # type: ignore[arg-type]
        clock=clock.now,
    )


def sent_from(db: Store) -> dict[str, str | None]:
    with connect(db) as conn:
        return dict(conn.execute("SELECT address, mailbox FROM recipient").fetchall())


def allowance(db: Store) -> dict[str, int]:
    """Each mailbox's count in its day window."""
    with connect(db) as conn:
        rows = conn.execute("SELECT mailbox, used FROM allowance WHERE period LIKE 'D%'")
        return dict(rows.fetchall())


async def test_a_pool_sends_each_recipient_once_spread_over_every_mailbox(
    pool: list[str],
    store: Store,
    tmp_path: Path,
    api: ApiSession,
    clock: SimClock,
    simulator: Simulator,
) -> None:
    run = await sender(store, tmp_path, api, clock, 30)

    progress = await run.run()

    assert (progress.stopped, progress.sent) == ("done", 30)
    assert simulator.post_counts() == dict.fromkeys(people(30), 1)
    by_box = Counter(send.mailbox for send in simulator.sends)
    assert set(by_box) == set(POOL)  # every mailbox took some
    recorded = sent_from(store)
    assert {s.recipients[0]: s.mailbox for s in simulator.sends} == recorded
    assert allowance(store) == dict(by_box)


async def test_each_mailbox_keeps_its_own_allowance_and_the_pool_stops_when_all_are_spent(
    pool: list[str],
    store: Store,
    tmp_path: Path,
    api: ApiSession,
    clock: SimClock,
    simulator: Simulator,
) -> None:
    run = await sender(store, tmp_path, api, clock, 10, plan=Plan(daily=2, monthly=100))

    progress = await run.run()

    assert (progress.stopped, progress.sent, progress.allowance_left) == ("allowance", 6, 0)
    assert progress.renews_at == datetime(2026, 3, 10, 23, 0, tzinfo=UTC)  # Rome midnight
    assert Counter(send.mailbox for send in simulator.sends) == dict.fromkeys(POOL, 2)
    assert allowance(store) == dict.fromkeys(POOL, 2)


async def test_a_mailbox_whose_password_is_refused_stops_alone(
    pool: list[str],
    store: Store,
    tmp_path: Path,
    api: ApiSession,
    clock: SimClock,
    simulator: Simulator,
) -> None:
    run = await sender(store, tmp_path, api, clock, 12, passwords={"due@pecmassiva.com": "no"})

    progress = await run.run()

    assert (progress.stopped, progress.sent) == ("done", 12)
    assert list(progress.box_stops) == ["due@pecmassiva.com"]
    assert "due@pecmassiva.com" not in {send.mailbox for send in simulator.sends}
    assert simulator.post_counts() == dict.fromkeys(people(12), 1)
    assert PASSWORD not in str(progress.box_stops)


async def test_a_campaign_before_its_window_waits_for_it_or_says_when_it_opens(
    pool: list[str],
    store: Store,
    tmp_path: Path,
    api: ApiSession,
    clock: SimClock,
    simulator: Simulator,
) -> None:
    # START is Tuesday 10 March 2026, 09:00 in Rome; the window opens at 14:00.
    schedule = 'hours = "14:00-18:00"'
    early = await sender(store, tmp_path, api, clock, 6, schedule=schedule)

    stopped = await early.run()

    assert (stopped.stopped, stopped.sent) == ("window", 0)
    assert stopped.opens_at == datetime(2026, 3, 10, 13, 0, tzinfo=UTC)
    assert simulator.sends == []

    async def sleep(seconds: float) -> None:  # time flies
        clock.advance(seconds)

    campaign = await store.campaigns.get("pool")
    assert campaign is not None
    waiting = Sender(
        store,
        boxes(api),
        campaign,
        early.spec,
        SendOptions(rate=None, wait=True),
        clock=clock.now,
        sleep=sleep,
    )
    progress = await waiting.run()

    assert (progress.stopped, progress.sent) == ("done", 6)
    assert min(send.at for send in simulator.sends) >= datetime(2026, 3, 10, 13, 0, tzinfo=UTC)


async def test_nothing_is_posted_after_the_deadline(
    pool: list[str],
    store: Store,
    tmp_path: Path,
    api: ApiSession,
    clock: SimClock,
    simulator: Simulator,
) -> None:
    # Each report moves the clock a minute: the deadline, ten minutes after the start
    # (09:00 in Rome), falls mid-campaign.
    schedule = "not_after = 2026-03-10T09:10:00+01:00"
    run = await sender(store, tmp_path, api, clock, 20, schedule=schedule, in_flight=1)

    def tick(progress: Progress) -> None:
        clock.advance(60)

    run.on_progress = tick
    progress = await run.run()

    deadline = datetime(2026, 3, 10, 8, 10, tzinfo=UTC)
    assert progress.stopped == "deadline"
    assert 0 < progress.sent < 20
    assert all(send.at < deadline for send in simulator.sends)
    with connect(store) as conn:
        states = Counter(s for (s,) in conn.execute("SELECT state FROM recipient"))
    assert states == {"sent": progress.sent, "pending": 20 - progress.sent}


def test_a_pool_is_named_by_mailboxes_or_by_a_pool_of_massiva_toml(tmp_path: Path) -> None:
    named = campaign_folder(tmp_path / "a", people(2), pool='pool = "avvisi"')

    spec = load_spec(named, pools={"avvisi": ("b@pecmassiva.com", "a@pecmassiva.com")})
    with pytest.raises(CampaignError) as unknown:
        load_spec(named, pools={"altri": ("b@pecmassiva.com",)})
    both = campaign_folder(
        tmp_path / "b", people(2), pool='mailbox = "a@pecmassiva.com"\npool = "avvisi"'
    )
    with pytest.raises(CampaignError) as twice:
        load_spec(both)
    repeated = campaign_folder(
        tmp_path / "c", people(2), pool='mailboxes = ["a@pecmassiva.com", "A@pecmassiva.com"]'
    )
    with pytest.raises(CampaignError) as again:
        load_spec(repeated)

    assert spec.mailboxes == ("b@pecmassiva.com", "a@pecmassiva.com")
    assert spec.mailbox == "b@pecmassiva.com"  # a test send goes from the first
    toml = tmp_path / "a" / "campaign.toml"
    assert unknown.value.problems == [
        f'{toml}, pool: "avvisi" is not a pool of massiva.toml (its pools: altri); add'
        ' [pools] avvisi = ["a@pecmassiva.com", ...] there, or list the boxes here with'
        " mailboxes = [...]"
    ]
    assert twice.value.problems == [
        f"{tmp_path / 'b' / 'campaign.toml'}, pool: mailbox and pool are all set; keep one:"
        " mailbox (one box), mailboxes (a list) or pool (a pool named in massiva.toml)"
    ]
    assert again.value.problems == [
        f'{tmp_path / "c" / "campaign.toml"}, mailboxes: "a@pecmassiva.com" is listed twice;'
        " list it once"
    ]


async def test_reloading_may_grow_the_pool_but_not_drop_a_mailbox_that_sent(
    pool: list[str],
    store: Store,
    tmp_path: Path,
    api: ApiSession,
    clock: SimClock,
) -> None:
    run = await sender(store, tmp_path, api, clock, 6)
    await run.run()
    folder = tmp_path / "c"
    grown = [*POOL, "quattro@pecmassiva.com"]
    campaign_folder(folder, people(8), pool=f"mailboxes = {grown!r}".replace("'", '"'))
    said: list[str] = []

    await load_campaign(store, load_spec(folder), say=said.append)
    campaign_folder(folder, people(8), pool='mailbox = "uno@pecmassiva.com"')
    with pytest.raises(ValueError, match="no longer lists") as dropped:
        await load_campaign(store, load_spec(folder))

    campaign = await store.campaigns.get("pool")
    assert campaign is not None and campaign.mailboxes == tuple(grown)
    assert "Campaign 'pool' now sends from " + ", ".join(grown) + "." in said
    assert "due@pecmassiva.com, tre@pecmassiva.com, quattro" not in str(dropped.value)
    assert str(dropped.value).startswith(
        "campaign.toml no longer lists due@pecmassiva.com, tre@pecmassiva.com, which sent"
    )


async def test_the_allowance_is_given_back_to_the_mailbox_that_counted_it(
    pool: list[str],
    store: Store,
    tmp_path: Path,
    api: ApiSession,
    clock: SimClock,
    simulator: Simulator,
) -> None:
    run = await sender(store, tmp_path, api, clock, 9)
    await run.run()
    db = store
    with connect(db) as conn:  # a reconcile's verdict on a lost post: sent again
        address, box = conn.execute(
            "SELECT address, mailbox FROM recipient WHERE mailbox = ?", (POOL[1],)
        ).fetchone()
        conn.execute("UPDATE recipient SET state = 'unknown' WHERE address = ?", (address,))
        conn.execute("UPDATE recipient SET state = 'pending' WHERE address = ?", (address,))

    counts = allowance(db)

    assert counts[box] == Counter(s.mailbox for s in simulator.sends)[box] - 1
    assert sum(counts.values()) == 8


async def test_max_counts_across_the_pool(
    pool: list[str],
    store: Store,
    tmp_path: Path,
    api: ApiSession,
    clock: SimClock,
    simulator: Simulator,
) -> None:
    for limit in (2, 3, 10):
        run = await sender(store, tmp_path, api, clock, 30, max_recipients=limit)
        before = len(simulator.sends)

        progress = await run.run()

        assert (progress.stopped, progress.sent) == ("max", limit)
        assert len(simulator.sends) - before == limit


async def test_with_wait_a_spent_mailbox_does_not_hold_the_run_once_all_is_sent(
    pool: list[str],
    store: Store,
    tmp_path: Path,
    api: ApiSession,
    clock: SimClock,
    simulator: Simulator,
) -> None:
    spec = load_spec(campaign_folder(tmp_path / "c", people(10)))
    await load_campaign(store, spec)
    campaign = await store.campaigns.get("pool")
    assert campaign is not None
    plans = {POOL[0]: Plan(daily=1, monthly=100)}
    slept: list[float] = []

    async def sleep(seconds: float) -> None:  # a real wait: the others send meanwhile
        slept.append(seconds)
        await asyncio.sleep(0.01)

    pool_of = [Box(PecMassivaClient(api, a, PASSWORD), plans.get(a, Plan()), None) for a in POOL]
    progress = await Sender(
        store, pool_of, campaign, spec, SendOptions(wait=True), clock=clock.now, sleep=sleep
    ).run()

    assert (progress.stopped, progress.sent) == ("done", 10)
    assert Counter(s.mailbox for s in simulator.sends)[POOL[0]] == 1
    assert simulator.post_counts() == dict.fromkeys(people(10), 1)
