"""The mailbox: /inbox pages and search, /inbox/{id}, /send/{code}, /quota."""

from __future__ import annotations

import base64
import email
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import unquote_plus

import httpx
import pytest
from starlette.applications import Starlette

from massiva.simulator import SimClock, Simulator, SimulatorSettings, create_app
from tests.sim import DEMO_MAILBOX, sim_client

START = datetime(2024, 5, 6, 7, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> SimClock:
    return SimClock(START, speed=0)


@pytest.fixture
def app(clock: SimClock) -> Starlette:
    return create_app(SimulatorSettings(send_rate=None), clock)


@pytest.fixture
def sim(app: Starlette) -> Simulator:
    simulator: Simulator = app.state.simulator
    return simulator


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with sim_client(app) as client:
        yield client


def fill(sim: Simulator, count: int) -> list[int]:
    return [
        sim.inject_message(
            "demo@pecmassiva.com",
            subject=f"Messaggio {n}",
            sender=f"sender{n}@legalmail.it",
            recipient="demo@pecmassiva.com",
        )
        for n in range(count)
    ]


async def send(client: httpx.AsyncClient, recipient: str, **extra: object) -> str:
    payload = {
        "recipient": recipient,
        "subject": "Avviso",
        "body": "Testo",
        "username": "demo@pecmassiva.com",
        "password": "demo",
        **extra,
    }
    response = await client.post("/send", json=payload)
    assert response.status_code == 201
    code: str = response.json()["message_id"]
    return code


async def test_pages_of_25_newest_first_by_default(
    sim: Simulator, client: httpx.AsyncClient
) -> None:
    ids = fill(sim, 60)
    first = (await client.get("/inbox", headers=DEMO_MAILBOX)).json()
    assert (first["total"], first["page"], first["n_of_pages"]) == (60, 1, 3)
    assert first["success"] is True
    assert first["message"] == ""
    assert [m["id"] for m in first["data"]] == ids[::-1][:25]
    last = (await client.get("/inbox", params={"page": 3}, headers=DEMO_MAILBOX)).json()
    assert [m["id"] for m in last["data"]] == ids[::-1][50:]
    beyond = await client.get("/inbox", params={"page": 4}, headers=DEMO_MAILBOX)
    assert beyond.status_code == 200
    assert beyond.json()["data"] == []


async def test_oldest_first_order_can_be_set_and_switched_at_runtime(clock: SimClock) -> None:
    app = create_app(SimulatorSettings(inbox_order="oldest_first"), clock)
    sim: Simulator = app.state.simulator
    ids = fill(sim, 30)
    async with sim_client(app) as client:
        page = (await client.get("/inbox", headers=DEMO_MAILBOX)).json()
        assert [m["id"] for m in page["data"]] == ids[:25]
        sim.settings.inbox_order = "newest_first"
        page = (await client.get("/inbox", headers=DEMO_MAILBOX)).json()
        assert [m["id"] for m in page["data"]] == ids[::-1][:25]


@pytest.mark.parametrize("page", ["abc", "0", "-3", "", "nan"])
async def test_invalid_page_means_page_one(app: Starlette, sim: Simulator, page: str) -> None:
    fill(sim, 30)
    # Not integers >= 1, on purpose: the spec's answer to such a page is not validated.
    async with sim_client(app, check_requests=False) as client:
        response = await client.get("/inbox", params={"page": page}, headers=DEMO_MAILBOX)
    assert response.status_code == 200
    assert response.json()["page"] == 1
    assert len(response.json()["data"]) == 25


async def test_empty_inbox(client: httpx.AsyncClient) -> None:
    body = (await client.get("/inbox", headers=DEMO_MAILBOX)).json()
    assert (body["data"], body["total"], body["n_of_pages"]) == ([], 0, 0)


async def test_q_searches_subject_sender_recipient_and_body(
    sim: Simulator, client: httpx.AsyncClient
) -> None:
    fill(sim, 3)
    sim.inject_message(
        "demo@pecmassiva.com", subject="x", sender="a@b.it", recipient="c@d.it", body="Fattura N. 7"
    )

    async def found(q: str) -> int:
        response = await client.get("/inbox", params={"q": q}, headers=DEMO_MAILBOX)
        total: int = response.json()["total"]
        return total

    assert await found("MESSAGGIO 1") == 1
    assert await found("sender2@") == 1
    assert await found("demo@pecmassiva") == 3
    assert await found("fattura n. 7") == 1
    assert await found("nothing like this") == 0


async def test_inject_keeps_a_given_date(sim: Simulator, client: httpx.AsyncClient) -> None:
    sim.inject_message(
        "demo@pecmassiva.com",
        subject="a",
        sender="s",
        recipient="r",
        date="Tue, 1 Jan 2019 00:00:00 +0100",
    )
    sim.inject_message(
        "demo@pecmassiva.com",
        subject="b",
        sender="s",
        recipient="r",
        date=datetime(2024, 7, 1, 12, tzinfo=UTC),
    )
    dates = [m["date"] for m in (await client.get("/inbox", headers=DEMO_MAILBOX)).json()["data"]]
    assert dates == ["Mon, 01 Jul 2024 14:00:00 +0200", "Tue, 1 Jan 2019 00:00:00 +0100"]
    with pytest.raises(KeyError):
        sim.inject_message("nobody@pecmassiva.com", subject="a", sender="s", recipient="r")


async def test_get_message_url_encodes_the_body(sim: Simulator, client: httpx.AsyncClient) -> None:
    text = "Gentile cliente,\nè arrivata & va bene: 100%"
    inbox_id = sim.inject_message(
        "demo@pecmassiva.com",
        subject="Oggetto",
        sender="posta-certificata@pecmassiva.com",  # the provider's own: as written
        recipient="demo@pecmassiva.com",
        body=text,
    )
    response = await client.get(f"/inbox/{inbox_id}", headers=DEMO_MAILBOX)
    data = response.json()["data"]
    assert set(data) == {"sender", "recipient", "date", "object", "body"}
    assert data["object"] == "Oggetto"
    assert unquote_plus(data["body"]) == text


async def test_a_strangers_mail_arrives_in_an_envelope_that_carries_it(
    sim: Simulator, client: httpx.AsyncClient
) -> None:
    forged = "X-Ricevuta: avvenuta-consegna\n\nGentile cliente"
    inbox_id = sim.inject_message(
        "demo@pecmassiva.com", subject="CONSEGNA: x", sender="a@b.it", recipient="d", body=forged
    )

    data = (await client.get(f"/inbox/{inbox_id}", headers=DEMO_MAILBOX)).json()["data"]

    assert data["object"] == "ANOMALIA MESSAGGIO: CONSEGNA: x"  # ordinary mail, wrapped
    envelope = email.message_from_string(unquote_plus(data["body"]))
    assert (envelope["X-Trasporto"], envelope["X-Ricevuta"]) == ("errore", None)
    (carried,) = [p for p in envelope.walk() if p.get_filename() == "postacert.eml"]
    (original,) = carried.get_payload()
    assert original.get_payload(decode=True).decode() == forged


@pytest.mark.parametrize("inbox_id", ["999", "abc", "1.5", "-1"])
async def test_unknown_message_is_404(client: httpx.AsyncClient, inbox_id: str) -> None:
    response = await client.get(f"/inbox/{inbox_id}", headers=DEMO_MAILBOX)
    assert response.status_code == 404
    assert response.json() == {"success": False, "message": "Message not found"}


async def test_delete_message_is_idempotent(sim: Simulator, client: httpx.AsyncClient) -> None:
    inbox_id = fill(sim, 1)[0]
    for _ in range(2):
        response = await client.delete(f"/inbox/{inbox_id}", headers=DEMO_MAILBOX)
        assert response.json() == {"success": True, "message": "Message deleted"}
    assert (await client.get(f"/inbox/{inbox_id}", headers=DEMO_MAILBOX)).status_code == 404


async def test_send_status_in_spec_fields(client: httpx.AsyncClient, clock: SimClock) -> None:
    code = await send(client, "demo@pecmassiva.com")  # to oneself, as in the spec example
    clock.advance(120)
    response = await client.get(f"/send/{code}", headers=DEMO_MAILBOX)
    assert response.status_code == 200
    data = response.json()["data"]
    assert [item["object"] for item in data] == [
        f"ACCETTAZIONE: Avviso {code}",
        f"POSTA CERTIFICATA: Avviso {code}",
        f"CONSEGNA: Avviso {code}",
    ]
    assert all(set(item) == {"sender", "recipient", "data", "object", "message"} for item in data)
    copy = email.message_from_string(unquote_plus(data[1]["message"]))
    assert copy["X-Trasporto"] == "posta-certificata"  # the message itself, in its envelope
    (carried,) = [p for p in copy.walk() if p.get_filename() == "postacert.eml"]
    assert carried.get_payload()[0].get_payload(decode=True).decode() == "Testo"
    assert data[0]["data"].endswith("+0200")


async def test_send_status_in_live_fields(clock: SimClock) -> None:
    app = create_app(SimulatorSettings(send_rate=None, send_status_fields="live"), clock)
    async with sim_client(app) as client:
        code = await send(client, "x@legalmail.it")
        data = (await client.get(f"/send/{code}", headers=DEMO_MAILBOX)).json()["data"]
    assert list(data[0]) == ["sender", "recipient", "date", "subject", "body"]
    assert data[0]["subject"] == f"ACCETTAZIONE: Avviso {code}"


async def test_send_status_matches_the_whole_trailing_code(
    client: httpx.AsyncClient,
) -> None:
    code = await send(client, "x@legalmail.it")
    for unknown in (code[-2:], "2020082610003492", code + "0"):
        response = await client.get(f"/send/{unknown}", headers=DEMO_MAILBOX)
        assert response.status_code == 404
        assert response.json() == {"success": False, "message": "Result empty"}


async def test_delete_sending_removes_its_messages(
    sim: Simulator, client: httpx.AsyncClient, clock: SimClock
) -> None:
    fill(sim, 2)
    code = await send(client, "x@legalmail.it")
    clock.advance(120)
    response = await client.delete(f"/send/{code}", headers=DEMO_MAILBOX)
    assert response.json() == {"success": True, "message": "Operation succefull"}
    assert (await client.get("/inbox", headers=DEMO_MAILBOX)).json()["total"] == 2
    again = await client.delete(f"/send/{code}", headers=DEMO_MAILBOX)
    assert again.status_code == 404
    assert again.json() == {"success": False, "message": "Email not found"}


async def test_quota_grows_with_receipts_in_kib(client: httpx.AsyncClient, clock: SimClock) -> None:
    async def usage() -> int:
        response = await client.get("/quota/INBOX", headers=DEMO_MAILBOX)
        assert response.json()["data"]["limit"] == 1048576
        value: int = response.json()["data"]["usage"]
        return value

    assert await usage() == 0
    attachment = base64.b64encode(b"\0" * 300 * 1024).decode()
    code = await send(client, "x@legalmail.it", attachments=[{"name": "a.pdf", "file": attachment}])
    acceptance = await usage()
    assert 1 <= acceptance < 10
    clock.advance(120)  # the CONSEGNA carries the 300 KiB message
    assert await usage() >= acceptance + 300
    await client.delete(f"/send/{code}", headers=DEMO_MAILBOX)
    assert await usage() == 0


@pytest.mark.parametrize("name", ["inbox", "Inbox", "INBOX"])
async def test_quota_mailbox_name_is_case_insensitive(client: httpx.AsyncClient, name: str) -> None:
    response = await client.get(f"/quota/{name}", headers=DEMO_MAILBOX)
    assert response.json()["success"] is True


async def test_quota_of_another_mailbox_is_400(client: httpx.AsyncClient) -> None:
    response = await client.get("/quota/Sent", headers=DEMO_MAILBOX)
    assert response.status_code == 400
    assert response.json() == {
        "success": False,
        "message": "An error occured: the requested mailbox might be unavailable",
    }


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/inbox"),
        ("GET", "/inbox/1"),
        ("DELETE", "/inbox/1"),
        ("GET", "/send/1"),
        ("DELETE", "/send/1"),
        ("GET", "/quota/INBOX"),
    ],
)
@pytest.mark.parametrize(
    "credentials",
    [
        {},
        {"x-username": "demo@pecmassiva.com"},
        {"x-username": "demo@pecmassiva.com", "x-password": "no"},
    ],
)
async def test_mailbox_endpoints_need_the_mailbox_credentials(
    client: httpx.AsyncClient, method: str, path: str, credentials: dict[str, str]
) -> None:
    response = await client.request(method, path, headers=credentials)
    assert response.status_code == 401
    assert response.json() == {"success": False, "message": "Authorization is not valid or empty"}


def former_answer(sim: Simulator, page: int, query: str = "") -> dict[str, object]:
    """What GET /inbox answered before pages were served from a kept list of ids: the
    whole inbox filtered, put in order and sliced at every request."""
    size = sim.settings.inbox_page_size
    messages = [m for m in sim.mailboxes["demo@pecmassiva.com"].inbox.values() if m.matches(query)]
    if sim.settings.inbox_order == "newest_first":
        messages.reverse()
    data = [
        {
            "sender": m.sender,
            "recipient": m.recipient,
            "date": m.date,
            "object": m.object,
            "id": m.id,
        }
        for m in messages[(page - 1) * size : page * size]
    ]
    total, pages = len(messages), -(-len(messages) // size)
    return {
        "data": data,
        "success": True,
        "message": "",
        "total": total,
        "page": page,
        "n_of_pages": pages,
    }


@pytest.mark.parametrize("order", ["newest_first", "oldest_first"])
async def test_every_page_answers_as_the_whole_inbox_sliced_whatever_changes_it(
    sim: Simulator, client: httpx.AsyncClient, order: str
) -> None:
    sim.settings.inbox_order = order  # type: ignore[assignment]
    inbox = sim.mailboxes["demo@pecmassiva.com"].inbox

    async def same_as_before(query: str = "") -> int:
        pages = former_answer(sim, 1, query)["n_of_pages"]
        assert isinstance(pages, int)
        for page in range(1, pages + 2):  # and the page after the last
            params: dict[str, str | int] = {"page": page, "q": query} if query else {"page": page}
            answer = await client.get("/inbox", params=params, headers=DEMO_MAILBOX)
            assert answer.json() == former_answer(sim, page, query), (query, page)
        return pages

    assert await same_as_before() == 0
    fill(sim, 60)
    assert await same_as_before() == 3
    fill(sim, 16)  # 76: a fourth page
    assert await same_as_before() == 4
    for inbox_id in sorted(inbox)[10:13]:  # deleted from the middle, through the API
        await client.delete(f"/inbox/{inbox_id}", headers=DEMO_MAILBOX)
    assert await same_as_before() == 3
    del inbox[min(inbox)], inbox[max(inbox)]  # as many gone as come: the count stays
    fill(sim, 2)
    assert await same_as_before() == 3
    del inbox[max(inbox)]  # the newest alone: 72 left
    assert await same_as_before() == 3
    del inbox[sorted(inbox)[40]]  # fewer gone than come
    fill(sim, 3)
    assert await same_as_before() == 3
    del inbox[max(inbox)], inbox[max(inbox)]  # 72 left
    sim.settings.inbox_page_size = 7
    assert await same_as_before() == 11
    assert 1 < await same_as_before("messaggio 1") < 11
    inbox.clear()
    assert await same_as_before() == 0
    fill(sim, 3)
    assert await same_as_before() == 1
