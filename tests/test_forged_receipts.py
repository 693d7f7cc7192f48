"""Anyone can write to a PEC mailbox: no forged message moves a recipient.

The simulator delivers what strangers write as real PEC does (wrapped as ``POSTA
CERTIFICATA:`` or ``ANOMALIA MESSAGGIO:``); a message from the provider's certifying
sender is trusted as a receipt only when its subject quotes the subject sent, its date
is after the post and not in the future, and (body read) its daticert names the
recipient. What fails is kept as suspicious and moves nothing.
"""

from __future__ import annotations

import csv
import hashlib
import json
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from massiva.api import ApiSession, PecMassivaClient
from massiva.campaign import load_spec
from massiva.loading import load_campaign
from massiva.receipts import certifiers
from massiva.reconcile import reconcile
from massiva.sender import Sender, SendOptions
from massiva.simulator import Fault, SimClock, Simulator
from massiva.simulator.clock import rfc2822
from massiva.simulator.receipts import envelope
from massiva.store import ReceiptRow, Store
from massiva.unknowns import resolve_unknowns
from tests.conftest import START, TOKEN, Run, Send
from tests.contract import ContractTransport
from tests.db import connect
from tests.test_reconcile import DATICERT_FAILURE, MAILBOX, outcomes
from tests.test_sender import make_campaign

PROVIDER = "posta-certificata@pecmassiva.com"


def stored(store: Store) -> list[tuple[str, str, str | None]]:
    """(kind, subject, why not trusted) of every stored message, by arrival."""
    with connect(store) as conn:
        rows = conn.execute("SELECT kind, subject, suspicious FROM receipt ORDER BY inbox_id")
        return [tuple(row) for row in rows.fetchall()]


async def test_a_strangers_delivery_receipt_arrives_wrapped_and_moves_nobody(
    send: Send, run: Run, simulator: Simulator, store: Store
) -> None:
    await send(["luigi.verdi@gmail.com"])  # not a PEC address: accepted, never delivered
    (sending,) = simulator.sends
    simulator.inject_message(
        MAILBOX,
        subject=f"CONSEGNA: whatever {sending.message_id}",
        sender="attacker@pec.it",
        recipient=MAILBOX,
        date="Fri, 31 Dec 9999 23:59:59 -0200",
    )

    summary = await run()

    assert outcomes(store)["luigi.verdi@gmail.com"] == ("accepted", None)
    assert summary.moved == {"accepted": 1}
    assert stored(store)[-1] == (
        "anomaly",
        f"ANOMALIA MESSAGGIO: CONSEGNA: whatever {sending.message_id}",
        None,
    )


async def test_a_strangers_failure_notice_does_not_hide_the_real_delivery(
    send: Send, run: Run, simulator: Simulator, clock: SimClock, store: Store
) -> None:
    await send(["mario.rossi@legalmail.it"])  # delivered 30-120 s after the post
    (sending,) = simulator.sends
    simulator.inject_message(
        MAILBOX,
        subject=f"AVVISO DI MANCATA CONSEGNA: x {sending.message_id}",
        sender="mario.rossi@legalmail.it",
        recipient=MAILBOX,
    )
    early = await run()
    clock.advance(200)
    late = await run()

    assert (early.moved, late.moved) == ({"accepted": 1}, {"delivered": 1})
    assert outcomes(store)["mario.rossi@legalmail.it"] == ("delivered", None)


@pytest.mark.parametrize(
    ("subject", "date", "why"),
    [
        ("CONSEGNA: Altro {id}", 60, "its subject does not quote the subject that was sent"),
        ("CONSEGNA: {subject} {id}", None, "its date cannot be read"),
        ("CONSEGNA: {subject} {id}", -86400, "dated before the post"),
        ("CONSEGNA: {subject} {id}", 2 * 86400, "dated in the future"),
    ],
    ids=["other-subject", "year-9999", "before-the-post", "in-the-future"],
)
async def test_a_receipt_that_fails_a_check_is_kept_as_suspicious_and_moves_nobody(
    send: Send,
    run: Run,
    simulator: Simulator,
    store: Store,
    tmp_path: Path,
    subject: str,
    date: int | None,
    why: str,
) -> None:
    await send(["luigi.verdi@gmail.com"])
    (sending,) = simulator.sends
    title = subject.format(subject=sending.subject, id=sending.message_id)
    simulator.inject_message(
        MAILBOX,
        subject=title,
        sender=PROVIDER,
        recipient=MAILBOX,
        date=rfc2822(START + timedelta(seconds=date))
        if date is not None
        else "Fri, 31 Dec 9999 23:59:59 -0200",
    )

    summary = await run()
    again = await run()

    assert outcomes(store)["luigi.verdi@gmail.com"] == ("accepted", None)
    assert [(s.subject, s.why) for s in summary.suspicious] == [(title, why)]
    assert (again.suspicious, again.suspicious_total) == ([], 1)
    assert [(m, r.subject, r.suspicious) for m, r in await store.receipts.suspicious()] == [
        (MAILBOX, title, why)
    ]


async def test_receipts_from_another_sender_than_the_configured_certifier_are_not_trusted(
    send: Send, store: Store, demo: PecMassivaClient, clock: SimClock, tmp_path: Path
) -> None:
    await send(["mario.rossi@legalmail.it"])
    clock.advance(200)

    summary = await reconcile(
        store, demo, MAILBOX, clock=clock.now, trusted=frozenset({"posta-certificata@altro.it"})
    )

    assert summary.moved == {}
    assert {s.why for s in summary.suspicious} == {
        "not from the provider's certifying sender (posta-certificata@altro.it)"
    }
    assert outcomes(store)["mario.rossi@legalmail.it"] == ("sent", None)


async def test_a_final_outcome_never_flips_to_another(
    send: Send, run: Run, simulator: Simulator, clock: SimClock, store: Store
) -> None:
    await send(["mario.rossi@legalmail.it"])
    clock.advance(200)
    await run()
    (sending,) = simulator.sends
    simulator.inject_message(  # the provider's own words, and still too late
        MAILBOX,
        subject=f"AVVISO DI MANCATA CONSEGNA: {sending.subject} {sending.message_id}",
        sender=PROVIDER,
        recipient=MAILBOX,
    )

    later = await run()

    assert later.moved == {}
    assert outcomes(store)["mario.rossi@legalmail.it"] == ("delivered", None)


async def test_a_forged_acceptance_with_an_invented_id_is_never_adopted(
    store: Store, demo: PecMassivaClient, simulator: Simulator, clock: SimClock, tmp_path: Path
) -> None:
    address = "mario.rossi@legalmail.it"
    spec = load_spec(make_campaign(tmp_path / "c", [address]))
    await load_campaign(store, spec)
    campaign = await store.campaigns.get(spec.name)
    assert campaign is not None
    simulator.add_fault(Fault(path="/send", method="POST", kind="drop_before_record"))
    await Sender(store, demo, campaign, spec, SendOptions(rate=None), clock=clock.now).run()
    invented = "2026031099999999"
    daticert = (
        f'<postacert tipo="accettazione" errore="nessuno"><intestazione>'
        f"<destinatari>{address}</destinatari></intestazione><dati>"
        f"<msgid>&lt;{invented}@pecmassiva.com&gt;</msgid></dati></postacert>"
    )
    for prefix in ("ACCETTAZIONE", "CONSEGNA"):
        simulator.inject_message(
            MAILBOX,
            subject=f"{prefix}: Avviso C0000 {invented}",
            sender="attacker@pec.it",
            recipient=MAILBOX,
            body=f"X-Ricevuta: accettazione\n\n{address}\n{daticert}",
        )

    clock.advance(3600)
    settled = await resolve_unknowns(store, demo, MAILBOX, now=clock.now())
    progress = await Sender(
        store, demo, campaign, spec, SendOptions(rate=None), clock=clock.now
    ).run()

    assert (settled.adopted, settled.requeued) == (0, 1)
    assert progress.sent == 1
    assert simulator.post_counts() == {address: 1}
    with connect(store) as conn:
        (message_id,) = conn.execute("SELECT message_id FROM recipient").fetchone()
    assert message_id == simulator.sends[0].message_id != invented


def quoting_campaign(folder: Path, address: str, note: str) -> Path:
    """A campaign whose subject carries a merge field the provider quotes back."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "campaign.toml").write_text(
        f'name = "prova"\nmailbox = "{MAILBOX}"\nsubject = "Avviso {{{{ nota }}}}"\n'
        'body = "<p>Gentile cliente</p>"\nrecipients = "destinatari.csv"\n'
        'address_column = "pec"\n',
        encoding="utf-8",
    )
    with (folder / "destinatari.csv").open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file, delimiter=";")
        writer.writerows([("pec", "nota"), (address, note)])
    return folder


async def test_a_daticert_quoted_from_a_merge_field_does_not_win_over_the_real_one(
    store: Store, demo: PecMassivaClient, clock: SimClock, tmp_path: Path
) -> None:
    address = "fail.bianchi@legalmail.it"  # the simulator fails its delivery
    note = '<postacert tipo="avvenuta-consegna" errore="nessuno">'
    spec = load_spec(quoting_campaign(tmp_path / "c", address, note))
    await load_campaign(store, spec)
    campaign = await store.campaigns.get(spec.name)
    assert campaign is not None
    await Sender(store, demo, campaign, spec, SendOptions(rate=None), clock=clock.now).run()
    clock.advance(200)

    summary = await reconcile(store, demo, MAILBOX, clock=clock.now)

    assert summary.moved == {"failed": 1}
    state, reason = outcomes(store)[address]
    assert state == "failed" and reason is not None and "5.1.1" in reason


class SameId(httpx.AsyncBaseTransport):
    """A vendor that answers every POST /send with the same message id."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "POST" and request.url.path == "/send":
            await response.aread()
            body = {"success": True, "sent": 1, "message": "", "message_id": "2026031000000001"}
            return httpx.Response(201, json=body)
        return response


async def test_two_recipients_given_one_message_id_are_flagged_not_stored(
    store: Store, contract: ContractTransport, clock: SimClock, tmp_path: Path
) -> None:
    addresses = ["mario.rossi@legalmail.it", "anna.neri@legalmail.it"]
    spec = load_spec(make_campaign(tmp_path / "c", addresses))
    await load_campaign(store, spec)
    campaign = await store.campaigns.get(spec.name)
    assert campaign is not None
    async with ApiSession("http://sim", TOKEN, transport=SameId(contract)) as session:
        client = PecMassivaClient(session, MAILBOX, "demo")
        progress = await Sender(
            store, client, campaign, spec, SendOptions(rate=None), clock=clock.now
        ).run()

    assert (progress.sent, progress.unknown) == (1, 1)
    with connect(store) as conn:
        rows = conn.execute("SELECT state, message_id, reason FROM recipient ORDER BY id")
        found = rows.fetchall()
    # Posts overlap: whichever answer was recorded first keeps the id; the other is flagged.
    assert sorted(found) == [
        ("sent", "2026031000000001", None),
        (
            "unknown",
            None,
            "ambiguous: the vendor gave message id 2026031000000001 to another recipient too",
        ),
    ]


async def test_a_display_name_does_not_make_a_stranger_the_provider(
    send: Send, run: Run, simulator: Simulator, clock: SimClock, store: Store
) -> None:
    await send(["mario.rossi@legalmail.it"])
    (sending,) = simulator.sends
    simulator.inject_message(
        MAILBOX,
        subject=f"AVVISO DI MANCATA CONSEGNA: {sending.subject} {sending.message_id}",
        sender=f'"{PROVIDER}" <mallory@evil.it>',
        recipient=MAILBOX,
    )
    await run()
    clock.advance(200)
    await run()

    assert outcomes(store)["mario.rossi@legalmail.it"] == ("delivered", None)
    assert stored(store)[1][1].startswith("ANOMALIA MESSAGGIO: AVVISO")


def test_pec_massivas_certifier_writes_receipts_for_mailboxes_of_any_domain() -> None:
    assert certifiers("ufficio@studio.it") == {PROVIDER, "posta-certificata@studio.it"}
    assert certifiers("ufficio@studio.it", ["posta-certificata@pec.aruba.it"]) == {
        "posta-certificata@pec.aruba.it"
    }


async def test_a_receipt_dated_ahead_of_this_clock_counts_once_its_time_has_come(
    send: Send, run: Run, simulator: Simulator, clock: SimClock, tmp_path: Path
) -> None:
    await send(["luigi.verdi@gmail.com"])
    (sending,) = simulator.sends
    simulator.inject_message(
        MAILBOX,
        subject=f"CONSEGNA: {sending.subject} {sending.message_id}",
        sender=PROVIDER,
        recipient=MAILBOX,
        date=START + timedelta(hours=2),
    )
    early = await run()
    clock.advance(2 * 3600)
    later = await run()

    assert [s.why for s in early.suspicious] == ["dated in the future"]
    assert (later.moved, later.suspicious, later.suspicious_total) == ({"delivered": 1}, [], 0)


async def test_a_body_that_names_no_kind_leaves_the_subjects_word(
    send: Send, store: Store, demo: PecMassivaClient, simulator: Simulator, clock: SimClock,
    tmp_path: Path,
) -> None:  # fmt: skip
    await send(["luigi.verdi@gmail.com"])
    (sending,) = simulator.sends
    simulator.inject_message(
        MAILBOX,
        subject=f"CONSEGNA: {sending.subject} {sending.message_id}",
        sender=PROVIDER,
        recipient=MAILBOX,
        body="Gentile cliente, il messaggio originale.",  # the original text only
    )

    summary = await reconcile(store, demo, MAILBOX, clock=clock.now)

    assert summary.moved == {"delivered": 1}


class Hostile(httpx.AsyncBaseTransport):
    """The simulator, with one answer spoiled: a lone surrogate in a 400's message, or a
    receipt body of a megabyte of unclosed tags and a sender of 200 KB with no address."""

    def __init__(self, inner: httpx.AsyncBaseTransport, spoil: str) -> None:
        self.inner, self.spoil = inner, spoil

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        path = request.url.path
        if self.spoil == "surrogate" and request.method == "POST" and path == "/send":
            await response.aread()
            text = '{"success": false, "message": "rifiutato \\ud800"}'
            return httpx.Response(
                400, content=text.encode(), headers={"content-type": "application/json"}
            )
        if self.spoil == "huge" and path.startswith("/inbox"):
            body = json.loads(await response.aread())
            for item in body["data"] if isinstance(body["data"], list) else [body["data"]]:
                item["sender"] = "x" * 200_000
                if "body" in item:
                    item["body"] = '<postacert tipo="accettazione">' + "<destinatari>" * 80_000
            return httpx.Response(200, json=body)
        return response


async def test_a_lone_surrogate_from_the_vendor_is_stored_as_a_replacement(
    store: Store, contract: ContractTransport, clock: SimClock, tmp_path: Path
) -> None:
    spec = load_spec(make_campaign(tmp_path / "c", ["mario.rossi@legalmail.it"]))
    await load_campaign(store, spec)
    campaign = await store.campaigns.get(spec.name)
    assert campaign is not None
    async with ApiSession("http://sim", TOKEN, transport=Hostile(contract, "surrogate")) as s:
        client = PecMassivaClient(s, MAILBOX, "demo")
        progress = await Sender(
            store, client, campaign, spec, SendOptions(rate=None), clock=clock.now
        ).run()

    assert progress.rejected == 1
    with connect(store) as conn:
        assert conn.execute("SELECT state, reason FROM recipient").fetchone() == (
            "rejected",
            "rifiutato ?",
        )


async def test_hostile_text_in_senders_and_bodies_is_read_in_bounded_time(
    send: Send, store: Store, contract: ContractTransport, clock: SimClock, tmp_path: Path
) -> None:
    # Patterns that backtrack on such text would take minutes here (a test that hangs).
    await send(["fail.bianchi@legalmail.it"])
    clock.advance(200)
    async with ApiSession("http://sim", TOKEN, transport=Hostile(contract, "huge")) as s:
        client = PecMassivaClient(s, MAILBOX, "demo")
        summary = await reconcile(store, client, MAILBOX, clock=clock.now)

    assert summary.moved == {}  # no certifying sender wrote any of it
    assert len(summary.suspicious) == 2


async def test_a_nul_in_a_message_is_stored_and_the_reading_goes_on(
    send: Send, run: Run, simulator: Simulator, store: Store
) -> None:
    # JSON lets anyone write \u0000; PostgreSQL's text cannot hold it, SQLite's can.
    kept = {"sqlite": "\x00", "postgresql": "\ufffd"}[store.engine]
    await send(["luigi.verdi@gmail.com"])  # its acceptance comes by itself
    (sending,) = simulator.sends
    failure = DATICERT_FAILURE.format(id=sending.message_id, address="luigi.verdi@gmail.com")
    simulator.inject_message(  # the provider's failure notice, a NUL in its text
        MAILBOX,
        subject=f"CONSEGNA: {sending.subject} {sending.message_id}",
        sender=PROVIDER,
        recipient=MAILBOX,
        body=failure.replace("Avviso di mancata", "Avviso\x00di mancata"),
    )
    simulator.inject_message(  # a stranger's, a NUL in every field it writes
        MAILBOX,
        subject="Fattura\x00 2026",
        sender="ma\x00rio@legalmail.it",
        recipient=MAILBOX,
        body="corpo\x00nullo",
    )
    simulator.deliver(  # a certified message on behalf of an address holding a NUL
        MAILBOX,
        sender=f'"Per conto di: ma\x00rio@legalmail.it" <{PROVIDER}>',
        recipient=MAILBOX,
        date=rfc2822(START),
        subject="POSTA CERTIFICATA: Re: Avviso",
        body=envelope("posta-certificata", "ma\x00rio@legalmail.it", "Re: Avviso", "ciao"),
        size=100,
    )

    summary = await run()
    again = await run()

    assert outcomes(store)["luigi.verdi@gmail.com"] == (
        "failed",
        "not delivered: 5.1.1 casella inesistente (no-dest)",
    )
    assert [subject for _, subject, _ in stored(store)] == [
        f"ACCETTAZIONE: {sending.subject} {sending.message_id}",
        f"CONSEGNA: {sending.subject} {sending.message_id}",
        f"ANOMALIA MESSAGGIO: Fattura{kept} 2026",
        "POSTA CERTIFICATA: Re: Avviso",
    ]
    with connect(store) as conn:
        (rid,) = conn.execute("SELECT id FROM recipient").fetchone()
        kept_bodies = conn.execute("SELECT body, body_sha256 FROM receipt WHERE body IS NOT NULL")
        hashes = [(hashlib.sha256(b.encode()).hexdigest(), h) for b, h in kept_bodies.fetchall()]
    notice = (await store.receipts.of_recipient(rid))[-1]
    assert notice.body == failure.replace("Avviso di mancata", f"Avviso{kept}di mancata")
    assert hashes and all(computed == recorded for computed, recorded in hashes)
    assert (summary.moved, summary.receipts) == (
        {"failed": 1},
        {"accepted": 1, "not_delivered": 1, "anomaly": 1, "certified": 1},
    )
    assert (again.receipts, again.moved) == ({}, {})


async def test_a_body_with_a_nul_fetched_late_is_kept_with_its_hash(store: Store) -> None:
    kept = {"sqlite": "\x00", "postgresql": "\ufffd"}[store.engine]
    notice = ReceiptRow(
        inbox_id=7,
        kind="delivered",
        final=True,
        message_id=None,
        recipient_id=None,
        sender=PROVIDER,
        recipient=MAILBOX,
        subject="CONSEGNA: Avviso",
        date_raw=rfc2822(START),
        date_utc=START,
        date_offset="+0000",
        body=None,  # its fetch failed: a later reconcile fetches it
        error=None,
    )
    async with store.receipts.batch() as batch:
        await batch.insert(MAILBOX, [notice], START)

    await store.receipts.keep_bodies(MAILBOX, [(7, "corpo\x00nullo")], [])

    with connect(store) as conn:
        body, digest = conn.execute("SELECT body, body_sha256 FROM receipt").fetchone()
    assert body == f"corpo{kept}nullo"
    assert digest == hashlib.sha256(body.encode()).hexdigest()
