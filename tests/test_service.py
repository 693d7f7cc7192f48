"""``massiva run``: every active campaign from its pool, by its schedule, receipts read
periodically, until stopped. The service runs in process against the simulator (its
clock frozen, moved by the tests); the command runs as a real process, stopped with
SIGTERM, its health and metrics read over loopback."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from massiva.api import ApiSession
from massiva.campaign import load_spec
from massiva.config import Config, MailboxConfig, ServiceConfig
from massiva.loading import load_campaign
from massiva.metrics import Metrics
from massiva.sender import SendOptions
from massiva.service import Service
from massiva.simulator import SimClock, Simulator
from massiva.store import Store
from massiva.webhook import Notifier, verify
from tests.conftest import BASE_URL, TOKEN
from tests.contract import ContractTransport
from tests.db import connect
from tests.test_api_session import free_port
from tests.test_send_crash import Massiva, posts, simulator_url
from tests.test_sender import make_campaign, pec_addresses

__all__ = ["simulator_url"]  # the fixture: a simulator in its own process

POOL = ["uno@pecmassiva.com", "due@pecmassiva.com", "tre@pecmassiva.com"]
SECRET = "hook-sEcReT-7d1e"
ENVIRON = {f"PW_{i}": f"pw-{i}" for i in range(3)}


class Hooks:
    """A webhook receiver: every notification, verified with the secret."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

        async def receive(request: Request) -> Response:
            body = await request.body()
            headers = request.headers
            assert verify(
                SECRET, headers["x-massiva-timestamp"], body, headers["x-massiva-signature"]
            )
            self.events.append(json.loads(body))
            return Response(status_code=204)

        self.app = Starlette(routes=[Route("/hook", receive, methods=["POST"])])

    def of(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == event]


@pytest.fixture
def hooks() -> Hooks:
    return Hooks()


def config(daily: int = 3500, **passwords: str) -> Config:
    boxes = {
        a: MailboxConfig(a, f"PW_{i}", daily_limit=daily, send_rate=1000)
        for i, a in enumerate(POOL)
    }
    return Config(mailboxes=boxes, service=ServiceConfig(reconcile_every=0.2, status_port=None))


def campaign(folder: Path, name: str, boxes: list[str], addresses: list[str]) -> Path:
    make_campaign(folder, addresses, name=name)
    toml = folder / "campaign.toml"
    pool = "mailboxes = [" + ", ".join(f'"{b}"' for b in boxes) + "]"
    toml.write_text(
        toml.read_text(encoding="utf-8").replace('mailbox = "demo@pecmassiva.com"', pool),
        encoding="utf-8",
    )
    return folder


class Running:
    """A service running in this event loop until :meth:`stop`."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.task = asyncio.create_task(service.run())

    async def until(self, condition: Callable[[], bool], within: float = 30) -> None:
        deadline = time.monotonic() + within
        while not condition():
            assert not self.task.done(), self.task
            assert time.monotonic() < deadline, "the service did not get there in time"
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self.service.stop()
        await asyncio.wait_for(self.task, 30)


@pytest.fixture
async def running(
    store: Store, simulator: Simulator, contract: ContractTransport, clock: SimClock, hooks: Hooks
) -> AsyncIterator[Callable[[Config], Running]]:
    for i, address in enumerate(POOL):
        simulator.add_mailbox(address, f"pw-{i}")
    started: list[Running] = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hooks.app)) as hook_client:

        def start(settings: Config, environ: dict[str, str] = ENVIRON) -> Running:
            service = Service(
                store,
                settings,
                lambda: ApiSession(BASE_URL, TOKEN, transport=contract),
                options=SendOptions(),
                metrics=Metrics(clock=clock.now),
                notifier=Notifier("http://hooks.test/hook", SECRET, client=hook_client),
                clock=clock.now,
                look_every=0.05,
                environ=environ,
            )
            started.append(Running(service))
            return started[-1]

        yield start
        for run in started:
            if not run.task.done():
                await run.stop()


def people(name: str, n: int) -> list[str]:
    return [f"{name}{i}@legalmail.it" for i in range(n)]


def state_counts(db: Store | Path) -> Counter[str]:
    with connect(db) as conn:
        return Counter(s for (s,) in conn.execute("SELECT state FROM recipient"))


async def test_the_service_sends_every_campaign_from_its_pool_and_picks_up_new_ones(
    running: Callable[..., Running],
    store: Store,
    simulator: Simulator,
    tmp_path: Path,
    hooks: Hooks,
) -> None:
    first = pec_addresses(12)
    second = [f"altro{i}@legalmail.it" for i in range(9)]
    await load_campaign(store, load_spec(campaign(tmp_path / "a", "primo", POOL[:2], first)))
    run = running(config())
    await run.until(lambda: len(simulator.sends) == 12)
    # Loaded while it runs: a campaign sharing a mailbox with the first.
    await load_campaign(store, load_spec(campaign(tmp_path / "b", "secondo", POOL[1:], second)))
    await run.until(lambda: len(hooks.of("campaign.finished")) == 2)
    await run.until(lambda: state_counts(store)["accepted"] >= 21)
    metrics = run.service.metrics.render().decode()
    await run.stop()

    assert simulator.post_counts() == dict.fromkeys(first + second, 1)
    by_box = Counter((s.subject.split()[0], s.mailbox) for s in simulator.sends)
    assert {box for (_, box) in by_box} == set(POOL)
    sent_from = {s.recipients[0]: s.mailbox for s in simulator.sends}
    assert {sent_from[a] for a in first} <= set(POOL[:2])
    assert {sent_from[a] for a in second} <= set(POOL[1:])
    finished = {e["campaign"]: e["counts"]["pending"] for e in hooks.of("campaign.finished")}
    assert finished == {"primo": 0, "secondo": 0}
    for box in POOL:
        posted = sum(1 for s in simulator.sends if s.mailbox == box)
        assert f'massiva_posts_total{{mailbox="{box}",outcome="sent"}} {posted}.0' in metrics
    assert 'massiva_recipients{campaign="primo",state="accepted"}' in metrics
    with connect(store) as db:
        assert db.execute("SELECT count(*) FROM lease").fetchone()[0] == 0  # released


async def test_a_mailbox_rests_until_its_allowance_renews_then_goes_on(
    running: Callable[..., Running],
    store: Store,
    simulator: Simulator,
    tmp_path: Path,
    clock: SimClock,
) -> None:
    addresses = pec_addresses(9)
    await load_campaign(store, load_spec(campaign(tmp_path / "a", "prova", POOL, addresses)))
    run = running(config(daily=2))
    await run.until(lambda: len(simulator.sends) == 6)
    await run.until(lambda: "waiting_allowance" in str(run.service.health().detail))
    await asyncio.sleep(0.3)  # looks go by: nothing more leaves before midnight
    resting = len(simulator.sends)
    metrics = run.service.metrics.render().decode()

    clock.advance(24 * 3600)  # the next Rome day
    await run.until(lambda: len(simulator.sends) == 9)
    await run.stop()

    assert resting == 6
    for box in POOL:
        assert f'massiva_mailbox_state{{mailbox="{box}",state="waiting_allowance"}} 1.0' in (
            metrics
        )
        assert f'massiva_allowance_left{{mailbox="{box}",period="day"}} 0.0' in metrics
    assert simulator.post_counts() == dict.fromkeys(addresses, 1)


async def test_a_mailbox_whose_password_is_refused_stops_alone_and_is_notified(
    running: Callable[..., Running],
    store: Store,
    simulator: Simulator,
    tmp_path: Path,
    hooks: Hooks,
) -> None:
    addresses = pec_addresses(10)
    await load_campaign(store, load_spec(campaign(tmp_path / "a", "prova", POOL, addresses)))
    run = running(config(), {**ENVIRON, "PW_1": "sbagliata"})
    await run.until(lambda: len(hooks.of("campaign.finished")) == 1)
    await run.until(lambda: bool(hooks.of("mailbox.stopped")))
    health = run.service.health()
    await run.stop()

    assert simulator.post_counts() == dict.fromkeys(addresses, 1)
    assert POOL[1] not in {s.mailbox for s in simulator.sends}
    (stopped,) = hooks.of("mailbox.stopped")
    assert stopped["mailbox"] == POOL[1]
    assert "sbagliata" not in json.dumps(hooks.events)
    assert health.ok  # the service is well: one mailbox stopped
    boxes = health.detail["mailboxes"]
    assert isinstance(boxes, dict)
    assert boxes[POOL[1]] == stopped["reason"]
    assert {boxes[POOL[0]], boxes[POOL[2]]} <= {"idle", "sending"}


async def test_nothing_leaves_outside_the_window_nor_after_the_deadline(
    running: Callable[..., Running],
    store: Store,
    simulator: Simulator,
    tmp_path: Path,
    clock: SimClock,
    hooks: Hooks,
) -> None:
    # START is 09:00 in Rome: the windows open at 10:00; one deadline is at 09:30.
    for name, deadline in (("prova", "10:30"), ("tardi", "09:30")):
        folder = campaign(tmp_path / name, name, POOL[:1], people(name, 4))
        with (folder / "campaign.toml").open("a", encoding="utf-8") as toml:
            toml.write(
                f'[schedule]\nhours = "10:00-18:00"\nnot_after = 2026-03-10T{deadline}:00+01:00\n'
            )
        await load_campaign(store, load_spec(folder))
    run = running(config())
    await run.until(lambda: "waiting_window" in str(run.service.health().detail))
    await asyncio.sleep(0.3)  # looks go by: nothing leaves before 10:00
    early = len(simulator.sends)

    clock.advance(3600 + 60)  # 10:01
    await run.until(lambda: bool(hooks.of("campaign.finished")))
    await run.until(lambda: bool(hooks.of("campaign.stopped")))
    await asyncio.sleep(0.3)
    await run.stop()

    assert early == 0
    assert simulator.post_counts() == dict.fromkeys(people("prova", 4), 1)
    assert min(s.at for s in simulator.sends).isoformat() >= "2026-03-10T09:01"
    assert [e["campaign"] for e in hooks.of("campaign.finished")] == ["prova"]
    assert [(e["campaign"], e["reason"]) for e in hooks.of("campaign.stopped")] == [
        ("tardi", "deadline passed: 4 recipient(s) not sent")
    ]


def test_massiva_run_serves_health_and_metrics_and_stops_on_sigterm(
    tmp_path: Path, simulator_url: str
) -> None:
    massiva = Massiva(tmp_path, simulator_url)
    port = free_port()
    massiva.config.write_text(
        '[database]\npath = "massiva.db"\n'
        '[mailboxes."demo@pecmassiva.com"]\npassword_env = "DEMO_PASSWORD"\nsend_rate = 20\n'
        f'[service]\nstatus = "127.0.0.1:{port}"\nreconcile_every = 10\n',
        encoding="utf-8",
    )
    folder = make_campaign(tmp_path / "campagna", pec_addresses(30))
    assert massiva.run("campaign", "load", str(folder)).returncode == 0

    process = massiva.start("run", "--look-every", "0.2")
    deadline = time.monotonic() + 60
    health = None
    while health is None:
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        try:
            health = httpx.get(f"http://127.0.0.1:{port}/healthz")
        except httpx.ConnectError:
            time.sleep(0.05)
    while sum(posts(simulator_url).values()) < 30:
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics")
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)

    assert process.returncode == 0, stderr
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert 'massiva_recipients{campaign="prova",state="sent"}' in metrics.text or (
        'massiva_recipients{campaign="prova",state="accepted"}' in metrics.text
    )
    assert "massiva run: stopped; the requests in flight were finished" in stderr
    assert "demo" not in stdout + stderr.replace("demo@pecmassiva.com", "")  # no password
    assert posts(simulator_url) == dict.fromkeys(pec_addresses(30), 1)
    with connect(tmp_path / "massiva.db") as db:
        assert db.execute("SELECT count(*) FROM lease").fetchone()[0] == 0
