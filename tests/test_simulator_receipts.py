"""Receipts: what arrives in the sender's inbox, when, and what it says."""

from __future__ import annotations

import email
import email.message
import shutil
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote_plus

import httpx
import pytest
from starlette.applications import Starlette

from massiva.simulator import Rule, SimClock, Simulator, SimulatorSettings, create_app
from massiva.simulator.receipts import stable_delay
from massiva.simulator.signing import certificate_pem
from tests.sim import DEMO_MAILBOX, sim_client

START = datetime(2020, 8, 26, 8, 0, 34, tzinfo=UTC)  # 10:00:34 in Rome (summer, UTC+2)
DELIVERY_PREFIXES = (
    "CONSEGNA:",
    "AVVISO DI MANCATA CONSEGNA:",
    "AVVISO DI MANCATA CONSEGNA PER VIRUS:",
    "AVVISO DI NON ACCETTAZIONE:",
)


def mail(body: str) -> email.message.Message:
    """A receipt's body as the MIME message it is."""
    return email.message_from_string(body)


def daticert(body: str) -> str:
    """The decoded daticert.xml part of a receipt's body."""
    (part,) = [p for p in mail(body).walk() if p.get_filename() == "daticert.xml"]
    data = part.get_payload(decode=True)
    assert isinstance(data, bytes)
    return data.decode("utf-8")


def openssl_verify(body: str, folder: Path) -> int:
    """openssl's exit code checking ``body``'s signature against the simulator's
    certificate (0: verified, 4: the content does not match)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: the signature cannot be checked here")
    (folder / "ca.pem").write_bytes(certificate_pem())
    verify = ["openssl", "cms", "-verify", "-CAfile", str(folder / "ca.pem"), "-out", "/dev/null"]
    canonical = body.replace("\n", "\r\n").encode()
    return subprocess.run(verify, input=canonical, capture_output=True, check=False).returncode


@pytest.fixture
def clock() -> SimClock:
    return SimClock(START, speed=0)


@pytest.fixture
def app(clock: SimClock) -> Starlette:
    return create_app(SimulatorSettings(send_rate=None), clock)


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with sim_client(app) as client:
        yield client


async def send(client: httpx.AsyncClient, *recipients: str, subject: str = "Prova") -> str:
    payload = {
        "recipient": list(recipients),
        "subject": subject,
        "body": "Salve",
        "username": "demo@pecmassiva.com",
        "password": "demo",
    }
    response = await client.post("/send", json=payload)
    assert response.status_code == 201, response.text
    message_id: str = response.json()["message_id"]
    return message_id


async def subjects(client: httpx.AsyncClient) -> list[str]:
    """Every subject in the demo inbox, oldest first."""
    response = await client.get("/inbox", headers=DEMO_MAILBOX)
    return [item["object"] for item in reversed(response.json()["data"])]


async def test_acceptance_arrives_at_once_with_the_vendor_subject(
    client: httpx.AsyncClient,
) -> None:
    code = await send(client, "mario@legalmail.it", subject="Invio di prova pec massiva")
    inbox = (await client.get("/inbox", headers=DEMO_MAILBOX)).json()["data"]
    assert inbox == [
        {
            "sender": "posta-certificata@pecmassiva.com",
            "recipient": "demo@pecmassiva.com",
            "date": "Wed, 26 Aug 2020 10:00:34 +0200",
            "object": f"ACCETTAZIONE: Invio di prova pec massiva {code}",
            "id": 1,
        }
    ]


async def test_pec_recipient_is_delivered_after_a_stable_delay(
    client: httpx.AsyncClient, clock: SimClock
) -> None:
    code = await send(client, "mario@legalmail.it")
    delay = stable_delay("mario@legalmail.it")
    assert 30 <= delay <= 120
    clock.advance(delay - 1)
    assert await subjects(client) == [f"ACCETTAZIONE: Prova {code}"]
    clock.advance(1)
    assert await subjects(client) == [f"ACCETTAZIONE: Prova {code}", f"CONSEGNA: Prova {code}"]


@pytest.mark.parametrize(
    ("recipient", "receipt"),
    [
        ("fail.1@pec.it", "AVVISO DI MANCATA CONSEGNA"),
        ("someone@nowhere.invalid", "AVVISO DI MANCATA CONSEGNA"),
        ("virus@legalmail.it", "AVVISO DI MANCATA CONSEGNA PER VIRUS"),
        ("anna@arubapec.it", "CONSEGNA"),
        ("ufficio@postacert.regione.it", "CONSEGNA"),
        ("x@domiciliodigitale.com", "CONSEGNA"),
    ],
)
async def test_rules_pick_the_delivery_receipt(
    client: httpx.AsyncClient, clock: SimClock, recipient: str, receipt: str
) -> None:
    code = await send(client, recipient)
    clock.advance(120)
    assert await subjects(client) == [f"ACCETTAZIONE: Prova {code}", f"{receipt}: Prova {code}"]


async def test_non_pec_address_never_gets_a_delivery_receipt(
    client: httpx.AsyncClient, clock: SimClock
) -> None:
    code = await send(client, "mario.rossi@gmail.com")
    clock.advance(3 * 86400)
    assert await subjects(client) == [f"ACCETTAZIONE: Prova {code}"]


async def test_late_recipient_is_delivered_after_six_hours(
    client: httpx.AsyncClient, clock: SimClock
) -> None:
    code = await send(client, "late@legalmail.it")
    clock.advance(6 * 3600 - 1)
    assert len(await subjects(client)) == 1
    clock.advance(1)
    assert (await subjects(client))[-1] == f"CONSEGNA: Prova {code}"


async def test_timeout_warns_at_12_hours_and_gives_up_at_24(
    client: httpx.AsyncClient, clock: SimClock
) -> None:
    code = await send(client, "timeout@legalmail.it")
    notice = f"AVVISO DI MANCATA CONSEGNA PER SUP. TEMPO MASSIMO: Prova {code}"
    clock.advance(12 * 3600)
    assert await subjects(client) == [f"ACCETTAZIONE: Prova {code}", notice]
    clock.advance(12 * 3600)
    assert await subjects(client) == [f"ACCETTAZIONE: Prova {code}", notice, notice]
    inbox = (await client.get("/inbox", headers=DEMO_MAILBOX)).json()["data"]
    bodies = [
        unquote_plus(
            (await client.get(f"/inbox/{m['id']}", headers=DEMO_MAILBOX)).json()["data"]["body"]
        )
        for m in inbox[:2]
    ]
    # As real providers write them: one tipo for both, the final one coded 5.4.1.
    notices = [daticert(body) for body in bodies]
    assert [mail(b)["X-Ricevuta"] for b in bodies] == ["preavviso-errore-consegna"] * 2
    assert ["<errore-esteso>5.4.1 - " in x for x in notices] == [True, False]
    assert "<errore-esteso>4.4.7 - " in notices[1]


async def test_not_accepted_replaces_the_acceptance(
    client: httpx.AsyncClient, clock: SimClock
) -> None:
    code = await send(client, "notaccepted@legalmail.it")
    clock.advance(86400)
    assert await subjects(client) == [f"AVVISO DI NON ACCETTAZIONE: Prova {code}"]


async def test_reply_comes_after_the_delivery(client: httpx.AsyncClient, clock: SimClock) -> None:
    code = await send(client, "reply@legalmail.it")
    clock.advance(86400)
    assert await subjects(client) == [
        f"ACCETTAZIONE: Prova {code}",
        f"CONSEGNA: Prova {code}",
        "POSTA CERTIFICATA: Re: Prova",
    ]
    reply = (await client.get("/inbox", headers=DEMO_MAILBOX)).json()["data"][0]
    assert reply["sender"] == '"Per conto di: reply@legalmail.it" '


async def test_one_acceptance_per_sending_and_one_delivery_receipt_per_recipient(
    app: Starlette, client: httpx.AsyncClient, clock: SimClock
) -> None:
    recipients = [f"user{i}@legalmail.it" for i in range(10)] + ["fail@pec.it", "x@gmail.com"]
    code = await send(client, *recipients)
    clock.advance(86400)
    found = await subjects(client)
    assert found.count(f"ACCETTAZIONE: Prova {code}") == 1
    assert found.count(f"CONSEGNA: Prova {code}") == 10
    assert found.count(f"AVVISO DI MANCATA CONSEGNA: Prova {code}") == 1
    # Each delivery receipt names its recipient in its body: each one once.
    sim: Simulator = app.state.simulator
    delivered = [
        daticert(m.body).split("<consegna>")[1].split("</consegna>")[0]
        for m in sim.mailboxes["demo@pecmassiva.com"].inbox.values()
        if m.object.startswith("CONSEGNA:")
    ]
    assert sorted(delivered) == sorted(recipients[:10])


async def test_receipts_arrive_in_due_order_with_increasing_ids(
    client: httpx.AsyncClient, clock: SimClock
) -> None:
    late = await send(client, "late@legalmail.it")
    soon = await send(client, "anna@legalmail.it")
    clock.advance(7 * 3600)  # both due: inbox ids follow the due times, not the sends
    inbox = (await client.get("/inbox", headers=DEMO_MAILBOX)).json()["data"]
    assert [(m["id"], m["object"]) for m in sorted(inbox, key=lambda m: m["id"])] == [
        (1, f"ACCETTAZIONE: Prova {late}"),
        (2, f"ACCETTAZIONE: Prova {soon}"),
        (3, f"CONSEGNA: Prova {soon}"),
        (4, f"CONSEGNA: Prova {late}"),
    ]


async def test_simulator_mailbox_recipient_gets_the_message(
    app: Starlette, client: httpx.AsyncClient, clock: SimClock
) -> None:
    sim: Simulator = app.state.simulator
    sim.add_mailbox("ufficio@pecmassiva.com", "pw")
    code = await send(client, "ufficio@pecmassiva.com", subject="Avviso")
    clock.advance(120)
    headers = {**DEMO_MAILBOX, "x-username": "ufficio@pecmassiva.com", "x-password": "pw"}
    received = (await client.get("/inbox", headers=headers)).json()["data"]
    assert [m["object"] for m in received] == [f"POSTA CERTIFICATA: Avviso {code}"]
    assert received[0]["sender"] == '"Per conto di: demo@pecmassiva.com" '
    body = (await client.get(f"/inbox/{received[0]['id']}", headers=headers)).json()["data"]["body"]
    copy = mail(unquote_plus(body))
    assert copy["X-Trasporto"] == "posta-certificata"  # an envelope, never a receipt
    (carried,) = [p for p in copy.walk() if p.get_filename() == "postacert.eml"]
    assert carried.get_payload()[0].get_payload(decode=True).decode() == "Salve"


async def test_delivery_receipt_body_reads_like_a_real_one(
    client: httpx.AsyncClient, clock: SimClock, tmp_path: Path
) -> None:
    code = await send(client, "mario@legalmail.it", subject="Invio (prova) è & test")
    clock.advance(120)
    inbox = (await client.get("/inbox", headers=DEMO_MAILBOX)).json()["data"]
    delivery = next(m for m in inbox if m["object"].startswith("CONSEGNA:"))
    raw = (await client.get(f"/inbox/{delivery['id']}", headers=DEMO_MAILBOX)).json()["data"]
    assert " " not in raw["body"]  # x-www-form-urlencoded
    body = unquote_plus(raw["body"])

    message = mail(body)
    assert message["X-Ricevuta"] == "avvenuta-consegna"
    assert message.get_content_type() == "multipart/signed"
    signed, signature = message.get_payload()
    assert (signature.get_filename(), signature.get_content_type()) == (
        "smime.p7s",
        "application/pkcs7-signature",
    )
    text, xml, original = signed.get_payload()
    assert (text.get_content_charset(), text["Content-Transfer-Encoding"]) == (
        "iso-8859-1",
        "quoted-printable",
    )
    words = text.get_payload(decode=True).decode("iso-8859-1")
    assert "Ricevuta di avvenuta consegna" in words
    assert '"Invio (prova) è & test" proveniente da "demo@pecmassiva.com"' in words
    assert 'ed indirizzato a "mario@legalmail.it" è stato consegnato' in words
    assert (xml.get_filename(), xml["Content-Transfer-Encoding"]) == ("daticert.xml", "base64")
    dati = daticert(body)
    assert '<postacert tipo="avvenuta-consegna" errore="nessuno">' in dati
    assert "<oggetto>Invio (prova) è &amp; test</oggetto>" in dati
    assert "<consegna>mario@legalmail.it</consegna>" in dati
    assert f"<msgid>&lt;{code}@pecmassiva.com&gt;</msgid>" in dati
    assert f"<identificativo>opec.{code}@pecmassiva.com</identificativo>" in dati
    assert '<ricevuta tipo="completa" />' in dati
    assert (original.get_filename(), original.get_content_type()) == (
        "postacert.eml",
        "message/rfc822",
    )
    # The signature is a real detached S/MIME signature of the signed part, by the
    # simulator's certificate: openssl checks it, and a changed byte fails it.
    forged = body.replace("stato consegnato nella", "stato consegnato NELLA")
    assert (openssl_verify(body, tmp_path), openssl_verify(forged, tmp_path)) == (0, 4)


@pytest.mark.parametrize(
    ("recipient", "ricevuta", "errore"),
    [
        ("x@legalmail.it", "accettazione", "nessuno"),
        ("fail@legalmail.it", "errore-consegna", "no-dest"),
        ("virus@legalmail.it", "errore-consegna", "virus"),
        ("notaccepted@legalmail.it", "non-accettazione", "altro"),
    ],
)
async def test_every_receipt_has_its_x_ricevuta_and_daticert(
    client: httpx.AsyncClient, clock: SimClock, recipient: str, ricevuta: str, errore: str
) -> None:
    await send(client, recipient)
    clock.advance(120)
    inbox = (await client.get("/inbox", headers=DEMO_MAILBOX)).json()["data"]
    bodies = [
        unquote_plus(
            (await client.get(f"/inbox/{m['id']}", headers=DEMO_MAILBOX)).json()["data"]["body"]
        )
        for m in inbox
    ]
    assert any(
        mail(body)["X-Ricevuta"] == ricevuta
        and f'tipo="{ricevuta}" errore="{errore}"' in daticert(body)
        for body in bodies
    )


async def test_custom_rules_first_match_wins(clock: SimClock) -> None:
    rules = [Rule("*@special.it", "failed", 5), Rule("*@*.it", "delivered", 10)]
    app = create_app(SimulatorSettings(send_rate=None, rules=rules), clock)
    async with sim_client(app) as client:
        code = await send(client, "a@special.it", "b@other.it")
        clock.advance(5)
        assert (await subjects(client))[-1] == f"AVVISO DI MANCATA CONSEGNA: Prova {code}"
        clock.advance(5)
        assert (await subjects(client))[-1] == f"CONSEGNA: Prova {code}"


def test_rule_rejects_unknown_outcomes() -> None:
    with pytest.raises(ValueError, match="unknown outcome"):
        Rule("*", "bounced")
