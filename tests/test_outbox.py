"""The outbox as the loader and the sender use it: rows loaded in one statement keep
every character, several recipients claimed in one statement never overrun an
allowance, a claim waits for another writer without holding up the event loop, and
201s recorded together are each committed before their call returns (or, when the
write fails, raise in each call and stay ``sending``)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from massiva.campaign import load_spec
from massiva.loading import load_campaign
from massiva.store import CampaignRow, Claimed, LeaseLost, NewRecipient, Stopped, Store
from tests.conftest import START
from tests.db import connect
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
    store: Store, campaign: CampaignRow, limit: int, *, daily: int = 100, monthly: int = 100
) -> list[Claimed] | Stopped:
    return await store.outbox.claim(
        campaign.id,
        mailbox=MAILBOX,
        lease=LEASE,
        holder=HOLDER,
        day="D2026-03-10",
        month="M2026-03",
        daily_limit=daily,
        monthly_limit=monthly,
        now=START,
        wall=START,
        limit=limit,
    )


def counted(db: Path) -> dict[str, int]:
    with connect(db) as conn:
        return dict(conn.execute("SELECT period, used FROM allowance").fetchall())


def pending(db: Path) -> int:
    with connect(db) as conn:
        return int(
            conn.execute("SELECT count(*) FROM recipient WHERE state = 'pending'").fetchone()[0]
        )


async def test_a_claim_of_several_takes_only_what_the_day_has_room_for(
    store: Store, tmp_path: Path
) -> None:
    campaign = await loaded(store, tmp_path, 12)

    first = await claim(store, campaign, 8, daily=5)
    second = await claim(store, campaign, 8, daily=5)

    assert isinstance(first, list)
    assert [c.row for c in first] == [2, 3, 4, 5, 6]  # in file order
    # The day is spent: none more (a LIMIT gone negative would claim them all).
    assert second == Stopped("allowance", day_used=5, month_used=5)
    assert counted(tmp_path / "massiva.db") == {"D2026-03-10": 5, "M2026-03": 5}
    assert pending(tmp_path / "massiva.db") == 7


async def test_the_month_bounds_a_claim_too(store: Store, tmp_path: Path) -> None:
    campaign = await loaded(store, tmp_path, 12)

    taken = await claim(store, campaign, 8, daily=10, monthly=2)

    assert isinstance(taken, list) and len(taken) == 2
    assert await claim(store, campaign, 1, daily=10, monthly=2) == Stopped("allowance", 2, 2)


async def test_a_claim_of_several_takes_none_without_the_lease(
    store: Store, tmp_path: Path
) -> None:
    campaign = await loaded(store, tmp_path, 3)
    await store.outbox.release_lease(LEASE, HOLDER)

    with pytest.raises(LeaseLost):
        await claim(store, campaign, 3)
    assert pending(tmp_path / "massiva.db") == 3 and counted(tmp_path / "massiva.db") == {}


async def test_201s_recorded_at_once_are_each_committed_when_their_call_returns(
    store: Store, tmp_path: Path
) -> None:
    campaign = await loaded(store, tmp_path, 20)
    claimed = await claim(store, campaign, 20)
    assert isinstance(claimed, list)

    async def record(recipient: Claimed) -> tuple[str, str]:
        await store.outbox.mark_sent(recipient.id, f"opec.{recipient.id}", START)
        with connect(tmp_path / "massiva.db") as conn:  # another connection sees it
            row = conn.execute(
                "SELECT state, message_id FROM recipient WHERE id = ?", (recipient.id,)
            ).fetchone()
        return str(row[0]), str(row[1])

    found = await asyncio.gather(*(record(recipient) for recipient in claimed))

    assert found == [("sent", f"opec.{recipient.id}") for recipient in claimed]


async def test_a_write_of_201s_that_fails_raises_in_each_call_and_leaves_the_rows_sending(
    store: Store, tmp_path: Path
) -> None:
    campaign = await loaded(store, tmp_path, 4)
    claimed = await claim(store, campaign, 4)
    assert isinstance(claimed, list)
    with connect(tmp_path / "massiva.db") as conn:  # a write the database refuses
        conn.execute(
            "CREATE TRIGGER refuse BEFORE UPDATE OF state ON recipient"
            " WHEN NEW.state = 'sent' BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
        )

    outcomes = await asyncio.gather(
        *(store.outbox.mark_sent(c.id, f"opec.{c.id}", START) for c in claimed[:3]),
        return_exceptions=True,
    )
    with connect(tmp_path / "massiva.db") as conn:
        conn.execute("DROP TRIGGER refuse")
    await store.outbox.mark_sent(claimed[3].id, f"opec.{claimed[3].id}", START)  # goes on

    assert [str(o) for o in outcomes] == ["disk says no"] * 3
    with connect(tmp_path / "massiva.db") as conn:
        states = conn.execute("SELECT state FROM recipient ORDER BY id").fetchall()
    assert [s for (s,) in states] == ["sending", "sending", "sending", "sent"]


async def test_a_claim_waits_asleep_for_another_writer_then_reads_what_it_committed(
    store: Store, tmp_path: Path
) -> None:
    campaign = await loaded(store, tmp_path, 3)
    other = sqlite3.connect(tmp_path / "massiva.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process's write, under way
    other.execute("UPDATE campaign SET state = 'paused' WHERE id = ?", (campaign.id,))
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    claiming = asyncio.create_task(claim(store, campaign, 2))
    await asyncio.sleep(0.3)
    waited, ticked = claiming.done(), ticks
    other.execute("COMMIT")
    other.close()
    outcome = await claiming
    ticker.cancel()

    # It waited, and the loop ran on meanwhile (a blocked loop would not have ticked).
    assert not waited and ticked >= 3
    assert outcome == Stopped("paused")  # it claimed nothing of the campaign paused meanwhile
    assert pending(tmp_path / "massiva.db") == 3 and counted(tmp_path / "massiva.db") == {}


async def test_loaded_fields_are_stored_as_compact_json_with_every_character_intact(
    store: Store, tmp_path: Path
) -> None:
    campaign = await loaded(store, tmp_path, 0)
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

    with connect(tmp_path / "massiva.db") as conn:
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
