"""The admin view refuses what a page of another site sends through a browser, and clock
moves that would wedge the simulator (every later request failing on an overflow)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from starlette.applications import Starlette

from massiva.simulator import SimClock, Simulator, SimulatorSettings, create_app, running_server
from tests.sim import DEMO_MAILBOX

START = datetime(2024, 1, 15, 9, 0, tzinfo=UTC)
OWN = "http://127.0.0.1:8080"
FAULT = {"path": "/send", "kind": "status", "status": 503}
WINDOW = (
    "outside the years 2000 to 2100, where the simulated clock must stay; give a time within them"
)


def refused(why: str) -> dict[str, str]:
    return {
        "error": f"cross-site request refused ({why}): the admin view answers only its own"
        " origin, or clients that send no Origin (scripts, tests)"
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
    """A client on the app as the real server is reached: http://127.0.0.1:8080."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=OWN) as client:
        yield client


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({"Origin": "https://evil.example"}, "Origin: https://evil.example"),
        ({"Origin": "null"}, "Origin: null"),  # a sandboxed page, a file:// page
        ({"Origin": "http://127.0.0.1:3000"}, "Origin: http://127.0.0.1:3000"),  # another port
        ({"Origin": "https://127.0.0.1:8080"}, "Origin: https://127.0.0.1:8080"),
        ({"Sec-Fetch-Site": "cross-site"}, "Sec-Fetch-Site: cross-site"),
        ({"Sec-Fetch-Site": "same-site", "Origin": OWN}, "Sec-Fetch-Site: same-site"),
    ],
)
async def test_a_request_from_another_site_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, sim: Simulator, headers: dict[str, str], why: str
) -> None:
    answers = [
        await client.post("/_simulator/faults", json=FAULT, headers=headers),
        await client.post("/_simulator/clock", json={"advance": 3600}, headers=headers),
        await client.post("/_simulator/settings", json={"daily_limit": 1}, headers=headers),
        await client.delete("/_simulator/faults", headers=headers),
        await client.get("/_simulator/state", headers=headers),
    ]

    assert [(a.status_code, a.json()) for a in answers] == [(403, refused(why))] * 5
    assert sim.faults == []
    assert sim.clock.now() == START
    assert sim.settings.daily_limit == SimulatorSettings().daily_limit


@pytest.mark.parametrize(
    "headers",
    [
        {},  # a script or a test
        {"Origin": OWN, "Sec-Fetch-Site": "same-origin"},  # a page of the simulator itself
        {"Origin": "http://127.0.0.1:8080/"},
        {"Sec-Fetch-Site": "none"},  # typed in the address bar
    ],
)
async def test_scripts_and_the_own_origin_are_answered(
    client: httpx.AsyncClient, sim: Simulator, headers: dict[str, str]
) -> None:
    added = await client.post("/_simulator/faults", json=FAULT, headers=headers)

    assert added.status_code == 200
    assert len(sim.faults) == 1


async def test_a_foreign_name_pointed_at_loopback_is_refused(app: Starlette) -> None:
    # DNS rebinding: evil.example resolves to 127.0.0.1, so the browser sends its own
    # name as Host and Origin; the simulator's own origin is on a loopback name only.
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://evil.example:8080"
    ) as client:
        answer = await client.post(
            "/_simulator/faults", json=FAULT, headers={"Origin": "http://evil.example:8080"}
        )

    assert answer.status_code == 403
    assert answer.json() == refused("Origin: http://evil.example:8080")


def test_over_a_real_socket_only_the_own_origin_passes(app: Starlette) -> None:
    with running_server(app) as base_url, httpx.Client(base_url=base_url) as client:
        own = client.post("/_simulator/clock", json={"advance": 60}, headers={"Origin": base_url})
        other = client.post(
            "/_simulator/clock",
            json={"advance": 60},
            headers={"Origin": base_url.replace("127.0.0.1", "localhost")},
        )

    assert own.status_code == 200 and own.json()["now"] == "2024-01-15T09:01:00+00:00"
    assert other.status_code == 403


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            {"advance": 1e300},
            "cannot advance the clock by more than 3187295999 seconds either way:"
            " it must stay within the years 2000 to 2100",
        ),
        (
            {"advance": 10**400},
            "cannot advance the clock by more than 3187295999 seconds either way:"
            " it must stay within the years 2000 to 2100",
        ),
        ({"advance": 8000 * 365 * 86400}, "cannot advance the clock by more than"),
        ({"advance": 80 * 365 * 86400}, f"advancing by 2522880000 s puts the clock {WINDOW}"),
        ({"advance": -30 * 365 * 86400}, f"advancing by -946080000 s puts the clock {WINDOW}"),
        (
            {"set": "9999-12-31T23:59:59+00:00"},
            f"setting it to 9999-12-31T23:59:59+00:00 puts the clock {WINDOW}",
        ),
        ({"set": "0001-01-01T00:00:00+01:00"}, f"0001-01-01T00:00:00+01:00 is {WINDOW}"),
        (
            {"set": "1999-12-31T23:59:59+00:00"},
            f"setting it to 1999-12-31T23:59:59+00:00 puts the clock {WINDOW}",
        ),
        (
            {"set": "2101-01-01T00:00:00+00:00"},
            f"setting it to 2101-01-01T00:00:00+00:00 puts the clock {WINDOW}",
        ),
    ],
)
async def test_out_of_range_clock_moves_are_refused_and_the_simulator_goes_on(
    client: httpx.AsyncClient, sim: Simulator, body: dict[str, object], error: str
) -> None:
    answer = await client.post("/_simulator/clock", json=body)

    assert answer.status_code == 400
    assert answer.json()["error"].startswith(error)
    assert sim.clock.now() == START  # untouched
    assert (await client.get("/_simulator/clock")).json()["now"] == START.isoformat()
    assert (await client.get("/inbox", headers=DEMO_MAILBOX)).status_code == 200


async def test_the_window_edges_are_allowed(client: httpx.AsyncClient) -> None:
    late = await client.post("/_simulator/clock", json={"set": "2100-12-31T23:59:59+00:00"})
    early = await client.post("/_simulator/clock", json={"set": "2000-01-01T00:00:00Z"})
    back = await client.post("/_simulator/clock", json={"advance": -1})

    assert late.json()["now"] == "2100-12-31T23:59:59+00:00"
    assert early.json()["now"] == "2000-01-01T00:00:00+00:00"
    assert back.status_code == 400


def test_the_python_clock_refuses_the_same_moves() -> None:
    clock = SimClock(START, speed=0)
    moves: list[Callable[[], None]] = [
        lambda: clock.advance(float("nan")),
        lambda: clock.advance(float("inf")),
        lambda: clock.advance(-1e18),
        lambda: clock.set(datetime(2200, 1, 1, tzinfo=UTC)),
        lambda: clock.set(datetime.max.replace(tzinfo=UTC)),
    ]
    for move in moves:
        with pytest.raises(ValueError, match=r"advance|outside the years"):
            move()
    assert clock.now() == START
    clock.advance(-timedelta(days=365).total_seconds())  # back is fine, within the window
    assert clock.now() == START - timedelta(days=365)
