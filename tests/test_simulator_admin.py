"""The /_simulator/ admin view, the request log, and a smoke test over a real socket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from starlette.applications import Starlette

from massiva.simulator import SimClock, Simulator, SimulatorSettings, create_app, running_server
from tests.sim import BEARER, DEMO_MAILBOX, sim_client

START = datetime(2024, 1, 15, 9, 0, tzinfo=UTC)
MESSAGE = {
    "recipient": ["mario@legalmail.it", "x@gmail.com"],
    "subject": "Prova",
    "body": "Testo",
    "username": "demo@pecmassiva.com",
    "password": "demo",
}


@pytest.fixture
def app() -> Starlette:
    return create_app(SimulatorSettings(send_rate=None), SimClock(START, speed=0))


@pytest.fixture
def sim(app: Starlette) -> Simulator:
    simulator: Simulator = app.state.simulator
    return simulator


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with sim_client(app, auth=False) as client:
        yield client


async def test_sends_posts_and_requests(client: httpx.AsyncClient) -> None:
    await client.post("/send", json=MESSAGE, headers=BEARER)
    sends = (await client.get("/_simulator/sends")).json()["sends"]
    assert [s["recipients"] for s in sends] == [["mario@legalmail.it", "x@gmail.com"]]
    assert sends[0]["at"] == "2024-01-15T09:00:00+00:00"
    assert (await client.get("/_simulator/posts")).json() == {
        "posts": {"mario@legalmail.it": 1, "x@gmail.com": 1}
    }
    await client.get("/inbox", headers=DEMO_MAILBOX)
    log = (await client.get("/_simulator/requests")).json()
    assert [(r["method"], r["path"], r["status"]) for r in log["requests"]] == [
        ("POST", "/send", 201),
        ("GET", "/inbox", 200),
    ]
    assert set(log["requests"][0]) == {"method", "path", "status", "at"}  # never headers/bodies
    later = (await client.get("/_simulator/requests", params={"since": log["next"] - 1})).json()
    assert [r["path"] for r in later["requests"]] == ["/inbox"]


async def test_inject_and_clock(client: httpx.AsyncClient) -> None:
    injected = await client.post(
        "/_simulator/inbox",
        json={
            "mailbox": "demo@pecmassiva.com",
            "subject": "Ciao",
            "sender": "a@b.it",
            "recipient": "c@d.it",
        },
    )
    assert injected.json() == {"id": 1}
    shown = (await client.get("/inbox/1", headers=DEMO_MAILBOX)).json()["data"]["object"]
    assert shown == "ANOMALIA MESSAGGIO: Ciao"  # a stranger's mail arrives wrapped, as in PEC
    bad = await client.post(
        "/_simulator/inbox",
        json={"mailbox": "nobody@x.it", "subject": "a", "sender": "a", "recipient": "b"},
    )
    assert bad.status_code == 400

    assert (await client.get("/_simulator/clock")).json()["now"] == "2024-01-15T09:00:00+00:00"
    moved = await client.post("/_simulator/clock", json={"advance": 90})
    assert moved.json()["now"] == "2024-01-15T09:01:30+00:00"
    jumped = await client.post("/_simulator/clock", json={"set": "2024-06-01T12:00:00+02:00"})
    assert jumped.json()["now"] == "2024-06-01T10:00:00+00:00"
    for body in ({"set": "2024-06-01T12:00:00"}, {"advance": "soon"}, {}, {"advance": True}):
        assert (await client.post("/_simulator/clock", json=body)).status_code == 400


async def test_clock_advance_delivers_due_receipts(client: httpx.AsyncClient) -> None:
    code = (await client.post("/send", json=MESSAGE, headers=BEARER)).json()["message_id"]
    await client.post("/_simulator/clock", json={"advance": 3600})
    objects = [
        m["object"] for m in (await client.get("/inbox", headers=DEMO_MAILBOX)).json()["data"]
    ]
    assert objects == [f"CONSEGNA: Prova {code}", f"ACCETTAZIONE: Prova {code}"]


async def test_faults_over_http(app: Starlette) -> None:
    async with sim_client(app, auth=False, undocumented={503}) as client:
        await check_faults_over_http(client)


async def check_faults_over_http(client: httpx.AsyncClient) -> None:
    added = await client.post(
        "/_simulator/faults",
        json={
            "path": "/send",
            "method": "post",
            "kind": "status",
            "status": 503,
            "times": 2,
            "message": "down for maintenance",
        },
    )
    assert added.json()["faults"] == [
        {
            "path": "/send",
            "method": "POST",
            "kind": "status",
            "times": 2,
            "status": 503,
            "delay": 0.0,
            "message": "down for maintenance",
        }
    ]
    refused = await client.post("/send", json=MESSAGE, headers=BEARER)
    assert (refused.status_code, refused.json()["message"]) == (503, "down for maintenance")
    assert len((await client.get("/_simulator/faults")).json()["faults"]) == 1
    assert (await client.delete("/_simulator/faults")).json() == {"faults": []}
    assert (await client.post("/send", json=MESSAGE, headers=BEARER)).status_code == 201
    bad: object
    for bad in (
        {"path": "/send"},
        {"path": "/send", "kind": "status"},
        {"path": 1, "kind": "slow"},
        {"path": "/send", "kind": "slow", "delay": "1"},
        {"path": "/send", "kind": "slow", "colour": "red"},
        [],
    ):
        assert (await client.post("/_simulator/faults", json=bad)).status_code == 400


async def test_mailboxes_settings_and_state(sim: Simulator, client: httpx.AsyncClient) -> None:
    added = await client.post(
        "/_simulator/mailboxes", json={"address": "Ufficio@PecMassiva.com", "password": "s3cret"}
    )
    assert added.json() == {"address": "ufficio@pecmassiva.com"}
    again = await client.post(
        "/_simulator/mailboxes", json={"address": "ufficio@pecmassiva.com", "password": "x"}
    )
    assert again.status_code == 400

    changed = await client.post(
        "/_simulator/settings", json={"inbox_order": "oldest_first", "daily_limit": 10}
    )
    assert changed.json()["inbox_order"] == "oldest_first"
    assert (sim.settings.inbox_order, sim.settings.daily_limit) == ("oldest_first", 10)
    bad: object
    for bad in (
        {"inbox_order": "random"},
        {"daily_limit": "10"},
        {"daily_limit": 0},
        {"rules": []},
    ):
        assert (await client.post("/_simulator/settings", json=bad)).status_code == 400
    assert sim.settings.daily_limit == 10

    state = await client.get("/_simulator/state")
    assert "s3cret" not in state.text
    assert '"demo"' not in state.text
    body = state.json()
    assert [m["address"] for m in body["mailboxes"]] == [
        "demo@pecmassiva.com",
        "ufficio@pecmassiva.com",
    ]
    assert all(m["active"] for m in body["mailboxes"])
    assert [p["casella_pec"] for p in body["pec"]] == [
        "demo@pecmassiva.com",
        "ufficio@pecmassiva.com",
    ]


def test_smoke_over_a_real_socket(app: Starlette) -> None:
    with running_server(app) as base_url, httpx.Client(base_url=base_url, headers=BEARER) as client:
        assert base_url.startswith("http://127.0.0.1:")
        code = client.post("/send", json=MESSAGE).json()["message_id"]
        client.post("/_simulator/clock", json={"advance": 120})
        status = client.get(f"/send/{code}", headers=DEMO_MAILBOX).json()["data"]
        assert [item["object"].split(":")[0] for item in status] == ["ACCETTAZIONE", "CONSEGNA"]
        assert client.get("/pec").json()["data"][0]["casella_pec"] == "demo@pecmassiva.com"
        assert client.get("/_simulator/posts").json()["posts"]["mario@legalmail.it"] == 1
