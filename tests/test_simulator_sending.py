"""POST /send: acceptance, message ids, validation, credentials, pacing, allowances."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from massiva.simulator import SimClock, Simulator, SimulatorSettings, create_app
from tests.sim import BEARER, sim_client

START = datetime(2024, 1, 15, 9, 0, 5, tzinfo=UTC)  # 10:00:05 in Rome (winter, UTC+1)


def message(**overrides: Any) -> dict[str, Any]:
    """A valid POST /send body for the demo mailbox."""
    body: dict[str, Any] = {
        "sender": "demo@pecmassiva.com",
        "recipient": "mario.rossi@legalmail.it",
        "subject": "Invio di prova",
        "body": "Salve, <b>prova</b>",
        "username": "demo@pecmassiva.com",
        "password": "demo",
    }
    body.update(overrides)
    return body


@pytest.fixture
def clock() -> SimClock:
    return SimClock(START, speed=0)


@pytest.fixture
def settings() -> SimulatorSettings:
    return SimulatorSettings(send_rate=None)


@pytest.fixture
def app(settings: SimulatorSettings, clock: SimClock) -> Starlette:
    return create_app(settings, clock)


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with sim_client(app) as client:
        yield client


def simulator(app: Starlette) -> Simulator:
    sim: Simulator = app.state.simulator
    return sim


async def test_default_box_sends_at_once(app: Starlette, client: httpx.AsyncClient) -> None:
    response = await client.post("/send", json=message())
    assert response.status_code == 201
    body = response.json()
    assert body == {"success": True, "sent": 1, "message": "", "message_id": body["message_id"]}
    sim = simulator(app)
    assert [s.message_id for s in sim.sends] == [body["message_id"]]
    assert sim.post_counts() == {"mario.rossi@legalmail.it": 1}


async def test_message_id_is_rome_send_time_plus_sequence(client: httpx.AsyncClient) -> None:
    first = (await client.post("/send", json=message())).json()["message_id"]
    second = (await client.post("/send", json=message())).json()["message_id"]
    assert re.fullmatch(r"20240115100005\d+", first)
    assert first != second
    assert first[:14] == second[:14] == "20240115100005"


async def test_many_recipients_are_counted_once_each(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    recipients = ["a@legalmail.it", "B@legalmail.it", "b@legalmail.it", "c@pec.it"]
    response = await client.post("/send", json=message(recipient=recipients))
    assert response.json()["sent"] == 3
    assert simulator(app).post_counts() == {
        "a@legalmail.it": 1,
        "b@legalmail.it": 1,
        "c@pec.it": 1,
    }


async def test_attachments_as_array_object_data_uri_or_plain_base64(
    app: Starlette,
    client: httpx.AsyncClient,
) -> None:
    plain = base64.b64encode(b"hello").decode()
    attachments = [
        {"name": "a.txt", "file": f"data:text/plain;base64,{plain}"},
        {"name": "b.txt", "file": plain},
    ]
    assert (await client.post("/send", json=message(attachments=attachments))).status_code == 201
    # The spec types `attachments` as one object (tests/contract.py patches that defect
    # away): that is accepted too, so the request is not validated.
    single = {"name": "c.txt", "file": plain}
    async with sim_client(app, check_requests=False) as raw:
        assert (await raw.post("/send", json=message(attachments=single))).status_code == 201
    sends = simulator(app).sends
    assert sends[0].attachments == (("a.txt", 5), ("b.txt", 5))
    assert sends[1].attachments == (("c.txt", 5),)


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        (message(subject=""), "subject"),
        (message(subject=None), "subject"),
        (message(body="  "), "body"),
        (message(recipient=[]), "recipient"),
        (message(recipient="not-an-address"), "recipient"),
        (message(recipient=["ok@pec.it", 3]), "recipient"),
        (message(recipient={"a": 1}), "recipient"),
        (message(sender=7), "sender"),
        (message(attachments=[{"name": "a", "file": "%%%"}]), "attachments"),
        (message(attachments=[{"file": "aGVsbG8="}]), "attachments"),
        (message(attachments="aGVsbG8="), "attachments"),
    ],
)
async def test_invalid_parameters_are_400(
    app: Starlette, client: httpx.AsyncClient, payload: dict[str, Any], detail: str
) -> None:
    response = await client.post("/send", json=payload)
    assert response.status_code == 400
    assert response.json() == {
        "success": False,
        "message": f"Post parameter is not valid: {detail}",
    }
    assert simulator(app).sends == []


@pytest.mark.parametrize("raw", [b"", b"{", b"[1, 2]", b'"text"', b"NaN", b"\xff\xfe"])
async def test_malformed_json_is_400(client: httpx.AsyncClient, raw: bytes) -> None:
    response = await client.post("/send", content=raw)
    assert response.status_code == 400
    assert response.json() == {"success": False, "message": "Post parameter is not valid"}


async def test_oversized_message_is_400(clock: SimClock) -> None:
    app = create_app(SimulatorSettings(send_rate=None, max_message_bytes=100), clock)
    async with sim_client(app) as client:
        response = await client.post("/send", json=message(body="x" * 200))
    assert response.status_code == 400
    assert (
        response.json()["message"] == "Post parameter is not valid: message larger than 100 bytes"
    )


@pytest.mark.parametrize(
    "credentials",
    [
        {"username": "demo@pecmassiva.com", "password": "wrong"},
        {"username": "nobody@pecmassiva.com", "password": "demo"},
        {"username": None, "password": None},
    ],
)
async def test_wrong_mailbox_credentials_are_401(
    client: httpx.AsyncClient, credentials: dict[str, Any]
) -> None:
    response = await client.post("/send", json=message(**credentials))
    assert response.status_code == 401
    assert response.json() == {"success": False, "message": "Authorization is not valid or empty"}


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic abc", "token"])
async def test_missing_or_malformed_bearer_is_401(clock: SimClock, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    async with sim_client(create_app(SimulatorSettings(), clock), auth=False) as client:
        response = await client.post("/send", json=message(), headers=headers)
    assert response.status_code == 401
    assert response.json() == {"success": False, "message": "Authorization is not valid or empty"}


async def test_only_configured_tokens_are_accepted(clock: SimClock) -> None:
    app = create_app(SimulatorSettings(tokens={"good"}, send_rate=None), clock)
    async with sim_client(app, auth=False) as client:
        bad = await client.post("/send", json=message(), headers=BEARER)
        good = await client.post("/send", json=message(), headers={"Authorization": "Bearer good"})
    assert (bad.status_code, good.status_code) == (401, 201)


async def test_pace_is_one_request_a_second_in_real_time(clock: SimClock) -> None:
    app = create_app(SimulatorSettings(), clock)
    async with sim_client(app) as client:
        assert (await client.post("/send", json=message())).status_code == 201
        refused = await client.post("/send", json=message())
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "1"
        assert refused.json() == {
            "success": False,
            "message": "Too many requests: max 1 request/second",
        }
        # The frozen simulated clock does not matter: the pace is real time. The
        # tolerance lets a request 0.9 s after the previous one through.
        await asyncio.sleep(0.92)
        assert (await client.post("/send", json=message())).status_code == 201
        assert len(simulator(app).sends) == 2


async def test_pace_is_per_mailbox(clock: SimClock) -> None:
    app = create_app(SimulatorSettings(), clock)
    app.state.simulator.add_mailbox("other@pecmassiva.com", "secret")
    async with sim_client(app) as client:
        first = await client.post("/send", json=message())
        other = await client.post(
            "/send", json=message(username="other@pecmassiva.com", password="secret")
        )
    assert (first.status_code, other.status_code) == (201, 201)


async def test_daily_allowance_counts_recipients_per_rome_day(clock: SimClock) -> None:
    # 23:30 UTC on a winter day is already 00:30 of the next day in Rome.
    clock.set(datetime(2024, 1, 15, 22, 30, tzinfo=UTC))  # 23:30 Rome, Jan 15
    app = create_app(SimulatorSettings(send_rate=None, daily_limit=3), clock)
    async with sim_client(app) as client:
        two = message(recipient=["a@pec.it", "b@pec.it"])
        assert (await client.post("/send", json=two)).status_code == 201
        refused = await client.post("/send", json=two)
        assert refused.status_code == 429
        assert refused.json() == {
            "success": False,
            "message": "Daily sending limit reached: 3 recipients per day",
        }
        assert refused.headers["Retry-After"] == str(30 * 60)  # until Rome midnight
        assert (await client.post("/send", json=message(recipient="c@pec.it"))).status_code == 201
        assert (await client.post("/send", json=message(recipient="d@pec.it"))).status_code == 429

        clock.set(datetime(2024, 1, 15, 23, 30, tzinfo=UTC))  # 00:30 Rome, Jan 16
        assert (await client.post("/send", json=two)).status_code == 201
    assert len(simulator(app).sends) == 3


async def test_monthly_allowance_renews_on_the_first_rome_day(clock: SimClock) -> None:
    clock.set(datetime(2024, 3, 31, 21, 0, tzinfo=UTC))  # 23:00 Rome (summer time, UTC+2)
    settings = SimulatorSettings(send_rate=None, daily_limit=None, monthly_limit=2)
    async with sim_client(create_app(settings, clock)) as client:
        two = message(recipient=["a@pec.it", "b@pec.it"])
        assert (await client.post("/send", json=two)).status_code == 201
        refused = await client.post("/send", json=message())
        assert refused.status_code == 429
        assert refused.json()["message"] == "Monthly sending limit reached: 2 recipients per month"
        assert refused.headers["Retry-After"] == str(3600)
        clock.advance(3600)  # 00:00 Rome, April 1st, while it is still March 31 in UTC
        assert (await client.post("/send", json=message())).status_code == 201


async def test_allowance_status_is_a_setting(clock: SimClock) -> None:
    settings = SimulatorSettings(send_rate=None, daily_limit=1, allowance_status=403)
    async with sim_client(create_app(settings, clock), undocumented={403}) as client:
        await client.post("/send", json=message())
        assert (await client.post("/send", json=message())).status_code == 403


async def test_refused_sends_are_not_counted(clock: SimClock) -> None:
    app = create_app(SimulatorSettings(send_rate=None, daily_limit=1), clock)
    async with sim_client(app) as client:
        await client.post("/send", json=message(subject=""))  # 400
        await client.post("/send", json=message(password="x"))  # 401
        assert (await client.post("/send", json=message())).status_code == 201
        assert (await client.post("/send", json=message())).status_code == 429
        clock.advance(timedelta(days=1).total_seconds())
        assert (await client.post("/send", json=message())).status_code == 201
    assert simulator(app).post_counts() == {"mario.rossi@legalmail.it": 2}
