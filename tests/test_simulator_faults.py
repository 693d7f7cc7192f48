"""Injected faults: errors, rate limits, slowness, connections dropped before/after recording."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from massiva.simulator import (
    ConnectionDropped,
    Fault,
    SimClock,
    Simulator,
    SimulatorSettings,
    create_app,
    running_server,
)
from tests.sim import BEARER, DEMO_MAILBOX, sim_client

MESSAGE = {
    "recipient": "mario@legalmail.it",
    "subject": "Prova",
    "body": "Testo",
    "username": "demo@pecmassiva.com",
    "password": "demo",
}


@pytest.fixture
def app() -> Starlette:
    clock = SimClock(datetime(2024, 1, 15, 9, 0, tzinfo=UTC), speed=0)
    return create_app(SimulatorSettings(send_rate=None), clock)


@pytest.fixture
def sim(app: Starlette) -> Simulator:
    simulator: Simulator = app.state.simulator
    return simulator


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with sim_client(app) as client:
        yield client


async def test_status_fault_on_send_uses_the_spec_500_body(
    sim: Simulator, client: httpx.AsyncClient
) -> None:
    sim.add_fault(Fault("/send", "POST", "status", status=500))
    failed = await client.post("/send", json=MESSAGE)
    assert (failed.status_code, failed.json()) == (
        500,
        {"success": False, "message": "MySQL Error 2006"},
    )
    assert sim.sends == []
    assert (await client.post("/send", json=MESSAGE)).status_code == 201


async def test_503_fault_carries_retry_after(app: Starlette, sim: Simulator) -> None:
    sim.add_fault(Fault("/inbox", kind="status", status=503))
    async with sim_client(app, undocumented={503}) as client:
        response = await client.get("/inbox", headers=DEMO_MAILBOX)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.json() == {"success": False, "message": "service temporarily unavailable"}


async def test_status_fault_on_a_pec_path_has_the_pec_shape(app: Starlette, sim: Simulator) -> None:
    sim.add_fault(Fault("/pec/*", kind="status", status=502))
    async with sim_client(app, undocumented={502}) as client:
        response = await client.get("/pec/6040e4613a716838dc4eee0e")
        listed = await client.get("/pec")
    assert response.json() == {
        "success": False,
        "message": "Bad Gateway",
        "error": 502,
        "data": None,
    }
    assert listed.status_code == 200  # "/pec/*" does not match "/pec"


async def test_rate_limit_fault() -> None:
    clock = SimClock(speed=0)
    app = create_app(SimulatorSettings(send_rate=None, fault_retry_after=7), clock)
    app.state.simulator.add_fault(Fault("/send", kind="rate_limit", times=2))
    async with sim_client(app) as client:
        answers = [await client.post("/send", json=MESSAGE) for _ in range(3)]
    assert [a.status_code for a in answers] == [429, 429, 201]
    assert answers[0].headers["Retry-After"] == "7"
    assert len(app.state.simulator.sends) == 1


async def test_faults_are_consumed_in_order_and_filtered_by_method(
    app: Starlette, sim: Simulator
) -> None:
    sim.add_fault(Fault("/send*", "GET", "status", status=500))
    sim.add_fault(Fault("/send*", "POST", "status", status=502))
    sim.add_fault(Fault("/send", "POST", "status", status=503))
    async with sim_client(app, undocumented={502, 503}) as client:
        statuses = [(await client.post("/send", json=MESSAGE)).status_code for _ in range(3)]
    assert statuses == [502, 503, 201]
    assert [f.method for f in sim.faults] == ["GET"]
    sim.clear_faults()
    assert sim.faults == []


async def test_slow_fault_waits_then_answers(sim: Simulator, client: httpx.AsyncClient) -> None:
    sim.add_fault(Fault("/inbox", kind="slow", delay=0.2))
    started = time.monotonic()
    response = await client.get("/inbox", headers=DEMO_MAILBOX)
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.2


async def test_drop_in_process_raises_a_remote_protocol_error(
    sim: Simulator, client: httpx.AsyncClient
) -> None:
    sim.add_fault(Fault("/send", "POST", "drop_after_record"))
    with pytest.raises(httpx.RemoteProtocolError) as caught:
        await client.post("/send", json=MESSAGE)
    assert isinstance(caught.value, ConnectionDropped)
    assert sim.post_counts() == {"mario@legalmail.it": 1}


@pytest.mark.parametrize(
    ("fault", "kwargs"),
    [
        ("status", {}),
        ("status", {"status": 200}),
        ("explode", {}),
        ("slow", {"delay": -1}),
        ("rate_limit", {"times": 0}),
    ],
)
def test_invalid_faults_are_refused(fault: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"."):
        Fault("/send", kind=fault, **kwargs)


def test_drop_after_record_over_a_real_socket(app: Starlette, sim: Simulator) -> None:
    sim.add_fault(Fault("/send", "POST", "drop_after_record"))
    with running_server(app) as base_url, httpx.Client(base_url=base_url, headers=BEARER) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.post("/send", json=MESSAGE)
        # Recorded and counted: the acceptance is in the inbox, the client never learnt it.
        assert sim.post_counts() == {"mario@legalmail.it": 1}
        inbox = client.get("/inbox", headers=DEMO_MAILBOX).json()["data"]
        assert [m["object"] for m in inbox] == [f"ACCETTAZIONE: Prova {sim.sends[0].message_id}"]
        assert client.post("/send", json=MESSAGE).status_code == 201
    assert [(r.path, r.status) for r in sim.requests] == [
        ("/send", 0),
        ("/inbox", 200),
        ("/send", 201),
    ]


def test_drop_before_record_over_a_real_socket(app: Starlette, sim: Simulator) -> None:
    sim.add_fault(Fault("/send", "POST", "drop_before_record"))
    with running_server(app) as base_url, httpx.Client(base_url=base_url, headers=BEARER) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.post("/send", json=MESSAGE)
        assert sim.sends == []
        assert client.get("/inbox", headers=DEMO_MAILBOX).json()["total"] == 0
        assert client.post("/send", json=MESSAGE).status_code == 201
    assert sim.post_counts() == {"mario@legalmail.it": 1}
