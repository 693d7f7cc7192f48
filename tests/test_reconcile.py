"""The reconciler against the simulator in-process, a real database (a SQLite file or a
PostgreSQL one) and the simulator's frozen clock moved by hand: outcomes, replies,
orphans, bodies, idempotence, the lease, and a run beside a sender."""

from __future__ import annotations

import asyncio
import socket
from datetime import timedelta
from pathlib import Path

import pytest

from massiva.api import PecMassivaClient
from massiva.campaign import load_spec
from massiva.lease import LeaseBusy, held
from massiva.loading import load_campaign
from massiva.reconcile import Summary, reconcile
from massiva.simulator import Fault, SimClock, Simulator
from massiva.store import Store
from massiva.times import from_db, to_db, utcnow
from tests.conftest import START, Run, Send
from tests.db import connect
from tests.test_sender import make_campaign, pec_addresses

MAILBOX = "demo@pecmassiva.com"

#: One recipient of each fate, and the state each one ends in.
MIXED = {
    "mario.rossi@legalmail.it": "delivered",
    "fail.bianchi@legalmail.it": "failed",
    "luigi.verdi@gmail.com": "expired",  # not a PEC address: an acceptance, then nothing
    "late.neri@legalmail.it": "delivered",  # delivered after 6 hours
    "timeout.gialli@legalmail.it": "failed",  # warned at 12 hours, failed at 24
    "notaccepted.blu@legalmail.it": "failed",
    "virus.rosa@legalmail.it": "failed",
    "reply.viola@legalmail.it": "delivered",  # and it answers
}


def outcomes(store: Store) -> dict[str, tuple[str, str | None]]:
    with connect(store) as conn:
        rows = conn.execute("SELECT address, state, reason FROM recipient").fetchall()
    return {address: (state, reason) for address, state, reason in rows}


def snapshot(store: Store) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    with connect(store) as conn:
        recipients = conn.execute("SELECT * FROM recipient ORDER BY id").fetchall()
        receipts = conn.execute("SELECT * FROM receipt ORDER BY id").fetchall()
    return recipients, receipts


def inbox_size(simulator: Simulator) -> int:
    return len(simulator.mailboxes[MAILBOX].inbox)


def inbox_requests(simulator: Simulator, since: int) -> int:
    return sum(1 for r in simulator.requests[since:] if r.path == "/inbox")


async def test_a_mixed_campaign_reaches_each_outcome_and_a_new_run_changes_nothing(
    send: Send, run: Run, clock: SimClock, simulator: Simulator, store: Store
) -> None:
    await send(list(MIXED))

    first = await run()
    states = {a: s for a, (s, _) in outcomes(store).items()}
    assert states == {
        **dict.fromkeys(MIXED, "accepted"),
        "notaccepted.blu@legalmail.it": "failed",
    }
    assert first.receipts == {"accepted": 7, "not_accepted": 1}
    assert first.moved == {"accepted": 7, "failed": 1}

    clock.advance(15 * 60)  # deliveries, failures and the reply: 30-120 s, reply 10 min after
    second = await run()
    assert second.moved == {"delivered": 2, "failed": 2}
    assert second.receipts["certified"] == 1

    clock.advance(7 * 3600)  # the late one
    assert (await run()).moved == {"delivered": 1}

    clock.advance(6 * 3600)  # 13 h: the timeout warning is no final notice
    warned = await run()
    assert warned.receipts == {"timeout": 1}
    assert warned.moved == {}

    clock.advance(11 * 3600 + 60)  # 24 h: the final notice, and the non-PEC expires
    final = await run()
    assert final.moved == {"failed": 1, "expired": 1}

    assert {a: s for a, (s, _) in outcomes(store).items()} == MIXED
    reasons = {a: r for a, (s, r) in outcomes(store).items() if s in ("failed", "expired")}
    # Every final receipt's body is read: the reasons are the provider's, code first.
    assert reasons == {
        "fail.bianchi@legalmail.it": "not delivered: 5.1.1 - pecmassiva.com - indirizzo non"
        " valido: casella di destinazione inesistente (no-dest)",
        "luigi.verdi@gmail.com": "no delivery receipt",
        "timeout.gialli@legalmail.it": "not delivered within the maximum time: 5.4.1 -"
        " pecmassiva.com - il messaggio non è stato consegnato nelle ventiquattro ore"
        " successive al suo invio (altro)",
        "notaccepted.blu@legalmail.it": "not accepted: 5.6.0 - pecmassiva.com - messaggio non"
        " accettato per eccezione formale (altro)",
        "virus.rosa@legalmail.it": "not delivered: virus: 5.7.1 - pecmassiva.com - rilevato"
        " virus informatico (virus)",
    }

    before = snapshot(store)
    mark = len(simulator.requests)
    again = await run()
    clock.advance(3600)
    later = await run()
    assert snapshot(store) == before
    assert (again.receipts, again.moved, later.receipts, later.moved) == ({}, {}, {}, {})
    assert inbox_requests(simulator, mark) <= 4
    assert len(before[1]) == inbox_size(simulator)  # every message stored, once


async def test_timestamps_are_the_receipts_dates_in_utc(
    send: Send, run: Run, clock: SimClock, tmp_path: Path, store: Store
) -> None:
    await send(["mario.rossi@legalmail.it"])
    clock.advance(600)
    await run()

    with connect(store) as conn:
        rid, sent, accepted, delivered = conn.execute(
            "SELECT id, sent_at, accepted_at, delivered_at FROM recipient"
        ).fetchone()
    receipts = await store.receipts.of_recipient(rid)
    assert [r.kind for r in receipts] == ["accepted", "delivered"]
    assert from_db(accepted) == receipts[0].date_utc == from_db(sent).replace(microsecond=0)
    assert from_db(delivered) == receipts[1].date_utc
    assert START < from_db(delivered) <= START + timedelta(seconds=120)
    assert {r.date_offset for r in receipts} == {"+0100"}  # Rome in March, before DST


async def test_a_reply_is_recorded_against_its_recipient_without_a_move(
    send: Send, run: Run, clock: SimClock, tmp_path: Path, store: Store
) -> None:
    await send(["reply.viola@legalmail.it", "mario.rossi@legalmail.it"])
    clock.advance(3600)
    await run()

    with connect(store) as conn:
        rid, state = conn.execute(
            "SELECT id, state FROM recipient WHERE address = 'reply.viola@legalmail.it'"
        ).fetchone()
    replies = [r for r in await store.receipts.of_recipient(rid) if r.kind == "certified"]
    assert state == "delivered"
    assert [r.subject for r in replies] == ["POSTA CERTIFICATA: Re: Avviso C0000"]
    assert replies[0].sender == '"Per conto di: reply.viola@legalmail.it" '


async def test_an_orphan_is_kept_counted_listed_and_matched_once_its_sending_is_known(
    send: Send, run: Run, simulator: Simulator, store: Store
) -> None:
    await send(["luigi.verdi@gmail.com"])
    await run()
    orphan_id = "2026031099999999"
    simulator.inject_message(
        MAILBOX,
        subject=f"CONSEGNA: Avviso C0000 {orphan_id}",
        sender="posta-certificata@pecmassiva.com",
        recipient=MAILBOX,
    )

    found = await run()

    assert found.orphans_total == 1
    assert [(o.kind, o.subject) for o in found.orphans] == [
        ("delivered", f"CONSEGNA: Avviso C0000 {orphan_id}")
    ]
    # The sending turns out to be ours (say its answer came after the receipt was read).
    with connect(store) as conn:
        conn.execute("UPDATE recipient SET message_id = ?", (orphan_id,))
    matched = await run()
    assert (matched.orphans_matched, matched.orphans_total) == (1, 0)
    assert matched.moved == {"delivered": 1}
    assert outcomes(store)["luigi.verdi@gmail.com"][0] == "delivered"


async def test_subject_variants_and_subjects_ending_in_digits_are_matched(
    store: Store, run: Run, simulator: Simulator, tmp_path: Path
) -> None:
    """Receipts as other providers title them, for sendings whose subject ends in digits."""
    subject = "Fattura 2026"
    ids = {a: f"20260310090000{i:02d}" for i, a in enumerate(pec_addresses(5))}
    await posted(store, tmp_path, ids, subject)
    variants = {
        "utente000@legalmail.it": ("  accettazione :  {s} {id}", "avvenuta consegna: {s} {id}"),
        "utente001@legalmail.it": ("ACCETTAZIONE:{s}   {id}", "Consegna: {s} {id}"),
        "utente002@legalmail.it": (
            "ACCETTAZIONE: {s} {id}",
            "AVVISO DI MANCATA CONSEGNA PER SUP. TEMPO MASSIMO: {s} {id}",
        ),
        "utente003@legalmail.it": (
            "Accettazione: {s} {id}",
            "AVVISO DI MANCATA CONSEGNA: {s} {id}",
        ),
        "utente004@legalmail.it": ("ACCETTAZIONE: {s} {id}", "PROBLEMA DI SICUREZZA: {s} {id}"),
    }
    for address, titles in variants.items():
        for title in titles:
            simulator.inject_message(
                MAILBOX,
                subject=title.format(s=subject, id=ids[address]),
                sender="posta-certificata@pecmassiva.com",
                recipient=MAILBOX,
            )
    # Messages that merely end in digits, or name the year only: no recipient's.
    simulator.inject_message(
        MAILBOX,
        subject=f"CONSEGNA: {subject}",
        sender="posta-certificata@pecmassiva.com",
        recipient=MAILBOX,
    )
    simulator.inject_message(
        MAILBOX, subject="Fattura 2026 n. 12", sender="a@b.it", recipient=MAILBOX
    )

    summary = await run()

    assert {a: s for a, (s, _) in outcomes(store).items()} == {
        "utente000@legalmail.it": "delivered",
        "utente001@legalmail.it": "delivered",
        "utente002@legalmail.it": "accepted",  # 0 h after the post: only the 12 h warning
        "utente003@legalmail.it": "failed",
        "utente004@legalmail.it": "failed",
    }
    assert summary.receipts == {
        "accepted": 5,
        "delivered": 3,
        "timeout": 1,
        "not_delivered": 1,
        "virus": 1,
        "anomaly": 1,
    }
    assert [o.subject for o in summary.orphans] == [f"CONSEGNA: {subject}"]


async def posted(store: Store, tmp_path: Path, ids: dict[str, str], subject: str) -> None:
    """A campaign whose recipients were posted at START with these message ids."""
    spec = load_spec(make_campaign(tmp_path / "campagna", list(ids)))
    await load_campaign(store, spec)
    with connect(store) as conn:
        conn.executemany(
            "UPDATE recipient SET state = 'sent', message_id = ?, subject = ?, sent_at = ?,"
            f" mailbox = '{MAILBOX}' WHERE address = ?",
            [(mid, subject, START.isoformat(), address) for address, mid in ids.items()],
        )


DATICERT_FAILURE = """X-Ricevuta: errore-consegna

Avviso di mancata consegna

--- daticert.xml ---
<postacert tipo="errore-consegna" errore="no-dest">
  <dati>
    <msgid>&lt;{id}@pecmassiva.com&gt;</msgid>
    <consegna>{address}</consegna>
    <errore-esteso>5.1.1 casella inesistente</errore-esteso>
  </dati>
</postacert>
"""


async def test_the_daticert_of_a_final_receipt_wins_over_its_subject(
    send: Send, run: Run, simulator: Simulator, store: Store
) -> None:
    await send(["luigi.verdi@gmail.com"])  # no receipt but the acceptance comes by itself
    (sending,) = simulator.sends
    simulator.inject_message(
        MAILBOX,
        subject=f"CONSEGNA: {sending.subject} {sending.message_id}",
        sender="posta-certificata@pecmassiva.com",
        recipient=MAILBOX,
        body=DATICERT_FAILURE.format(id=sending.message_id, address="luigi.verdi@gmail.com"),
    )

    summary = await run()

    state, reason = outcomes(store)["luigi.verdi@gmail.com"]
    with connect(store) as conn:
        bodies = conn.execute("SELECT kind, body IS NOT NULL FROM receipt ORDER BY id").fetchall()
    assert (state, reason) == ("failed", "not delivered: 5.1.1 casella inesistente (no-dest)")
    assert bodies == [("accepted", 1), ("not_delivered", 1)]
    assert summary.bodies == 2


async def test_with_bodies_the_timeout_warning_and_final_notice_are_told_apart(
    send: Send, run: Run, clock: SimClock, store: Store
) -> None:
    await send(["timeout.gialli@legalmail.it"])
    clock.advance(12 * 3600 + 60)
    warned = await run()
    clock.advance(12 * 3600)
    final = await run()

    assert (warned.moved, warned.bodies) == ({"accepted": 1}, 2)  # the acceptance too
    assert (final.moved, final.bodies) == ({"failed": 1}, 1)
    with connect(store) as conn:
        notices = conn.execute(
            "SELECT final, error FROM receipt WHERE kind = 'timeout' ORDER BY inbox_id"
        ).fetchall()
    assert notices == [
        (
            0,
            "not delivered within the maximum time: 4.4.7 - pecmassiva.com - il messaggio non"
            " è ancora stato consegnato nelle dodici ore successive al suo invio (altro)",
        ),
        (
            1,
            "not delivered within the maximum time: 5.4.1 - pecmassiva.com - il messaggio non"
            " è stato consegnato nelle ventiquattro ore successive al suo invio (altro)",
        ),
    ]


async def test_unknown_posts_are_resolved_during_a_reconcile(
    send: Send, run: Run, simulator: Simulator, store: Store
) -> None:
    simulator.add_fault(Fault(path="/send", method="POST", kind="drop_after_record"))
    await send(pec_addresses(2))
    # Posts overlap: whichever reached the vendor first lost its answer.
    assert sorted(s for s, _ in outcomes(store).values()) == [
        "sent",
        "unknown",
    ]

    summary = await run()

    assert summary.unknowns.adopted == 1
    assert summary.orphans == []
    assert {s for s, _ in outcomes(store).values()} == {"accepted"}


async def test_rows_left_sending_are_adopted_only_when_no_live_sender_holds_the_mailbox(
    store: Store, run: Run, tmp_path: Path
) -> None:
    spec = load_spec(make_campaign(tmp_path / "campagna", pec_addresses(1)))
    await load_campaign(store, spec)
    with connect(store) as conn:
        conn.execute(
            "UPDATE recipient SET state = 'sending', claimed_at = updated_at, mailbox = ?",
            (MAILBOX,),
        )

    def lease_rows() -> list[tuple[str, str]]:
        with connect(store) as conn:
            found = conn.execute("SELECT name, holder FROM lease WHERE name LIKE 'send:%'")
            return found.fetchall()

    async with held(store, f"send:{MAILBOX}") as sender:  # a live sender: its own rows
        await run()
        assert outcomes(store)[pec_addresses(1)[0]][0] == "sending"
        assert lease_rows() == [(f"send:{MAILBOX}", sender.holder)]  # read, never taken
    # A sender of this host that was killed: its lease has not lapsed, its pid is gone.
    gone = f"{socket.gethostname()}:{2**22 + 1}:dead"
    await store.outbox.acquire_lease(f"send:{MAILBOX}", gone, timedelta(minutes=5), utcnow())
    if store.engine == "postgresql":
        # A shared server's holder is never presumed dead (massiva.lease.dead): another
        # host may have this one's name and pid. Its rows wait for its lease to lapse.
        assert (await run()).unknowns.adopted == 0
        assert outcomes(store)[pec_addresses(1)[0]][0] == "sending"
        with connect(store) as conn:
            conn.execute(
                "UPDATE lease SET expires_at = ? WHERE holder = ?",
                (to_db(utcnow() - timedelta(seconds=1)), gone),
            )

    summary = await run()

    assert summary.unknowns.adopted + summary.unknowns.waiting == 1
    assert outcomes(store)[pec_addresses(1)[0]][0] != "sending"
    assert lease_rows() == [(f"send:{MAILBOX}", gone)]  # left for the next sender to take


async def test_a_second_reconciler_on_the_mailbox_is_refused_at_once(
    store: Store, run: Run, simulator: Simulator
) -> None:
    mark = len(simulator.requests)
    async with held(store, f"reconcile:{MAILBOX}"):
        with pytest.raises(LeaseBusy):
            await run()
    assert simulator.requests[mark:] == []
    await run()  # the lease was given back


async def test_reconcile_beside_a_running_sender_on_another_connection(
    send: Send,
    store: Store,
    demo: PecMassivaClient,
    clock: SimClock,
    simulator: Simulator,
    database: Path | str,
    tmp_path: Path,
) -> None:
    addresses = pec_addresses(40)

    async def reconcile_while_sending(sending: asyncio.Task[None]) -> list[Summary]:
        summaries = []
        async with await Store.open(database, archive_dir=store.archive_dir) as other:
            while not sending.done():
                summaries.append(await reconcile(other, demo, MAILBOX, clock=clock.now))
                await asyncio.sleep(0)
            clock.advance(600)
            summaries.append(await reconcile(other, demo, MAILBOX, clock=clock.now))
        return summaries

    sending = asyncio.create_task(send(addresses))
    summaries, _ = await asyncio.gather(reconcile_while_sending(sending), sending)

    assert len(summaries) >= 2
    assert {s for s, _ in outcomes(store).values()} == {"delivered"}
    with connect(store) as conn:
        stored = conn.execute("SELECT count(*), count(DISTINCT inbox_id) FROM receipt").fetchone()
    assert stored == (inbox_size(simulator), inbox_size(simulator))
    assert simulator.post_counts() == dict.fromkeys(addresses, 1)


async def test_expiry_uses_the_injected_clock_and_spares_recent_posts(
    send: Send, run: Run, clock: SimClock, tmp_path: Path
) -> None:
    await send(["luigi.verdi@gmail.com"])
    clock.advance(24 * 3600 - 60)
    assert (await run()).moved == {"accepted": 1}
    clock.advance(120)
    assert (await run()).moved == {"expired": 1}
