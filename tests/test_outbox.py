"""The outbox as the loader and the sender use it: rows loaded in one statement keep
every character, a claim never overruns an allowance nor outlives its lease, a sender
moves only its own claims, and a claim waits for another writer without holding up the
event loop."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from massiva.campaign import load_spec
from massiva.loading import load_campaign
from massiva.store import CampaignRow, Claimed, LeaseLost, NewRecipient, Stopped, Store
from massiva.store.outbox import _claim_sql
from massiva.store.postgres import translate
from tests.conftest import START
from tests.db import connect, target
from tests.test_sender import MAILBOX, make_campaign, pec_addresses

LEASE, HOLDER = f"send:{MAILBOX}", "here:1"


async def loaded(store: Store, tmp_path: Path, count: int) -> CampaignRow:
    spec = load_spec(make_campaign(tmp_path / "c", pec_addresses(count)))
    await load_campaign(store, spec)
    campaign = await store.campaigns.get(spec.name)
    assert campaign is not None
    await store.outbox.acquire_lease(LEASE, HOLDER, timedelta(minutes=5), START)
    return campaign


async def claim(
    store: Store,
    campaign: CampaignRow,
    *,
    daily: int = 100,
    monthly: int = 100,
    holder: str = HOLDER,
) -> Claimed | Stopped:
    return await store.outbox.claim(
        campaign.id,
        mailbox=MAILBOX,
        lease=LEASE,
        holder=holder,
        day="D2026-03-10",
        month="M2026-03",
        daily_limit=daily,
        monthly_limit=monthly,
        now=START,
        wall=START,
    )


async def claim_all(store: Store, campaign: CampaignRow, **limits: int) -> list[Claimed | Stopped]:
    """Claims until one claims nothing (that one last)."""
    outcomes: list[Claimed | Stopped] = []
    while not outcomes or isinstance(outcomes[-1], Claimed):
        outcomes.append(await claim(store, campaign, **limits))
    return outcomes


def counted(db: Store) -> dict[str, int]:
    with connect(db) as conn:
        return dict(conn.execute("SELECT period, used FROM allowance").fetchall())


def pending(db: Store) -> int:
    with connect(db) as conn:
        return int(
            conn.execute("SELECT count(*) FROM recipient WHERE state = 'pending'").fetchone()[0]
        )


# A trigger refusing to mark a recipient sent, in each engine's own language, and what
# the driver raises for it.
REFUSE_SENT = {
    "sqlite": (
        "CREATE TRIGGER refuse BEFORE UPDATE OF state ON recipient"
        " WHEN NEW.state = 'sent' BEGIN SELECT RAISE(ABORT, 'disk says no'); END",
    ),
    "postgresql": (
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql"
        " AS $$ BEGIN RAISE EXCEPTION 'disk says no'; END $$",
        "CREATE TRIGGER refuse BEFORE UPDATE OF state ON recipient FOR EACH ROW"
        " WHEN (NEW.state = 'sent') EXECUTE FUNCTION refuse()",
    ),
}
REFUSED: dict[str, type[Exception]] = {
    "sqlite": sqlite3.IntegrityError,
    "postgresql": psycopg.errors.RaiseException,
}


def under_way(store: Store, sql: str, params: Sequence[Any]) -> Callable[[], None]:
    """Another process's write, begun and not committed: SQLite's write lock held, or on
    PostgreSQL the locks of the rows it wrote. Call the result to commit it."""
    where = target(store)
    if store.engine == "postgresql":
        pg = psycopg.connect(str(where))  # not in autocommit: the write stays open
        pg.execute(translate(sql), params)

        def commit_pg() -> None:
            pg.commit()
            pg.close()

        return commit_pg
    lite = sqlite3.connect(where, isolation_level=None)
    lite.execute("BEGIN IMMEDIATE")
    lite.execute(sql, params)

    def commit_sqlite() -> None:
        lite.execute("COMMIT")
        lite.close()

    return commit_sqlite


async def waits_asleep(
    claiming: asyncio.Task[Claimed | Stopped], commit: Callable[[], None]
) -> None:
    """Let ``claiming`` run while another write is under way, then commit that write;
    assert it waited for it, and that the event loop ran on meanwhile (a blocked loop
    would not have ticked)."""
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.3)
    waited, ticked = claiming.done(), ticks
    commit()
    await asyncio.wait([claiming])
    ticker.cancel()
    assert not waited and ticked >= 3


async def test_claims_take_only_what_the_day_has_room_for(store: Store, tmp_path: Path) -> None:
    campaign = await loaded(store, tmp_path, 12)

    outcomes = await claim_all(store, campaign, daily=5)

    assert [c.row for c in outcomes if isinstance(c, Claimed)] == [2, 3, 4, 5, 6]  # file order
    assert outcomes[-1] == Stopped("allowance", day_used=5, month_used=5)
    assert counted(store) == {"D2026-03-10": 5, "M2026-03": 5}
    assert pending(store) == 7


async def test_the_month_bounds_a_claim_too(store: Store, tmp_path: Path) -> None:
    campaign = await loaded(store, tmp_path, 12)

    outcomes = await claim_all(store, campaign, daily=10, monthly=2)

    assert len(outcomes) == 3 and outcomes[-1] == Stopped("allowance", 2, 2)


async def test_a_claim_takes_none_without_the_lease(store: Store, tmp_path: Path) -> None:
    campaign = await loaded(store, tmp_path, 3)
    await store.outbox.release_lease(LEASE, HOLDER)

    with pytest.raises(LeaseLost):
        await claim(store, campaign)
    assert pending(store) == 3 and counted(store) == {}


async def test_a_sender_that_lost_its_lease_moves_no_claim_but_its_own(
    store: Store, tmp_path: Path
) -> None:
    # A froze with its claim; B took the lease, found A's row and, after the grace, sent
    # it again: B's claim of it. A wakes: whatever it answers, B's claim stands.
    campaign = await loaded(store, tmp_path, 1)
    mine = await claim(store, campaign)
    assert isinstance(mine, Claimed)
    await store.outbox.acquire_lease(LEASE, "there:2", timedelta(minutes=5), START, dead=[HOLDER])
    assert await store.outbox.orphaned_sends(MAILBOX, START) == 1
    assert await store.outbox.requeue(mine.id, START)
    theirs = await claim(store, campaign, holder="there:2")
    assert isinstance(theirs, Claimed) and theirs.id == mine.id

    assert not await store.outbox.give_back(mine.id, HOLDER, START)
    await store.outbox.mark_unknown(mine.id, HOLDER, START)
    await store.outbox.mark_rejected(mine.id, HOLDER, "refused", START)

    with connect(store) as conn:
        row = conn.execute("SELECT state, claimed_by FROM recipient").fetchone()
    assert tuple(row) == ("sending", "there:2")
    assert counted(store) == {"D2026-03-10": 1, "M2026-03": 1}


async def test_a_201_the_database_refuses_raises_and_leaves_the_row_sending(
    store: Store, tmp_path: Path
) -> None:
    campaign = await loaded(store, tmp_path, 1)
    claimed = await claim(store, campaign)
    assert isinstance(claimed, Claimed)
    with connect(store) as conn:  # a write the database refuses
        for statement in REFUSE_SENT[store.engine]:
            conn.execute(statement)

    with pytest.raises(REFUSED[store.engine], match="disk says no"):
        await store.outbox.mark_sent(claimed.id, HOLDER, "opec.1", START)

    with connect(store) as conn:
        assert conn.execute("SELECT state FROM recipient").fetchone()[0] == "sending"


async def test_one_message_id_given_to_two_recipients_at_once_is_stored_for_one(
    store: Store, tmp_path: Path
) -> None:
    # A vendor gave two posts the same id; their answers are recorded at once, the first
    # held up by another write on its row. The second finds the id the first's.
    campaign = await loaded(store, tmp_path, 2)
    a, b = await claim(store, campaign), await claim(store, campaign)
    assert isinstance(a, Claimed) and isinstance(b, Claimed)
    holding = under_way(store, "UPDATE recipient SET reason = NULL WHERE id = ?", [a.id])
    first = asyncio.create_task(store.outbox.mark_sent(a.id, HOLDER, "opec.1", START))
    await asyncio.sleep(0.3)
    second = asyncio.create_task(store.outbox.mark_sent(b.id, HOLDER, "opec.1", START))
    await asyncio.sleep(0.3)
    holding()

    assert (await first, await second) == (True, False)
    with connect(store) as conn:
        rows = conn.execute("SELECT id, message_id FROM recipient ORDER BY id").fetchall()
    assert rows == [(a.id, "opec.1"), (b.id, None)]


async def test_a_claim_waits_asleep_for_another_writer_then_reads_what_it_committed(
    store: Store, tmp_path: Path
) -> None:
    campaign = await loaded(store, tmp_path, 3)
    pausing = under_way(store, "UPDATE campaign SET state = 'paused' WHERE id = ?", [campaign.id])
    claiming = asyncio.create_task(claim(store, campaign))

    await waits_asleep(claiming, pausing)

    outcome = claiming.result()
    assert outcome == Stopped("paused")  # it claimed nothing of the campaign paused meanwhile
    assert pending(store) == 3 and counted(store) == {}


async def test_a_claim_waits_for_a_lease_taken_over_meanwhile_and_claims_nothing(
    store: Store, tmp_path: Path
) -> None:
    campaign = await loaded(store, tmp_path, 3)
    taking = under_way(store, "UPDATE lease SET holder = 'there:2' WHERE name = ?", [LEASE])
    claiming = asyncio.create_task(claim(store, campaign))

    await waits_asleep(claiming, taking)

    with pytest.raises(LeaseLost):
        claiming.result()
    assert pending(store) == 3 and counted(store) == {}


async def test_loaded_fields_are_stored_as_compact_json_with_every_character_intact(
    store: Store, tmp_path: Path
) -> None:
    campaign = await store.campaigns.create(
        name="vuota",
        folder=str(tmp_path),
        mailboxes=[MAILBOX],
        subject="S",
        body="B",
        content_hash="h",
        csv_hash="",
    )
    fields = {
        "pec": "a@pec.it",
        "nome": 'Niccolò "il Magnifico" \\ D\'Angelo',
        "nota": "riga uno\r\nriga due\ttab \u2028 \x01 € 1.234,56",
    }
    batch = [
        NewRecipient(2, "a@pec.it", fields, "Oggetto è", None),
        NewRecipient(3, "b@pec.it", {"pec": "b@pec.it"}, "S", "allegati/b.pdf"),
    ]

    added = await store.campaigns.add_recipients(campaign.id, batch)
    again = await store.campaigns.add_recipients(campaign.id, batch[:1])  # already there

    with connect(store) as conn:
        rows = conn.execute(
            "SELECT row, address, fields, subject, attachment FROM recipient ORDER BY id"
        ).fetchall()
    assert (added, again) == (2, 0)
    assert rows == [
        (
            2,
            "a@pec.it",
            json.dumps(fields, ensure_ascii=False, separators=(",", ":")),
            "Oggetto è",
            None,
        ),
        (3, "b@pec.it", '{"pec":"b@pec.it"}', "S", "allegati/b.pdf"),
    ]
    assert json.loads(rows[0][2]) == fields


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
async def test_a_claim_on_postgresql_reads_the_pending_rows_not_those_claimed_before(
    store: Store, tmp_path: Path
) -> None:
    # Half the campaign done, fresh statistics: a plan walking the primary key would pass
    # every row claimed before at each claim (benchmarks/claims.py showed claims/s fall
    # from 1,257 to 161 over 20,000 recipients).
    campaign = await loaded(store, tmp_path, 4)
    with connect(store) as conn:
        conn.execute(
            "INSERT INTO recipient (campaign_id, row, address, fields, subject, updated_at)"
            " SELECT ?, n, 'r' || n || '@pec.it', '{}', 's', 'now'"
            " FROM generate_series(10, 20009) AS n",
            (campaign.id,),
        )
        conn.execute("UPDATE recipient SET state = 'delivered' WHERE row < 10010")
        conn.execute("ANALYZE recipient")
        plan = "\n".join(
            line
            for (line,) in conn.execute(
                "EXPLAIN " + _claim_sql("postgresql"),
                {
                    "now": "2026-03-10T08:00:00+00:00",
                    "wall": "2026-03-10T08:00:00+00:00",
                    "day": "D2026-03-10",
                    "month": "M2026-03",
                    "campaign": campaign.id,
                    "lease": LEASE,
                    "holder": HOLDER,
                    "mailbox": MAILBOX,
                    "daily": 100,
                    "monthly": 100,
                },
            ).fetchall()
        )
    choice = plan.split("InitPlan 1")[1].split("InitPlan 2")[0]  # the row it picks
    assert "Index Scan using recipient_state on recipient" in choice, plan
    claimed = await claim(store, campaign)
    assert isinstance(claimed, Claimed) and claimed.row == 10010  # the first pending
