"""Shared fixtures: the simulator in-process behind the contract checks, and clients on it.

Every vendor-API exchange made through these fixtures is validated against the vendor's
OpenAPI specs (see ``tests/contract.py``).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from starlette.applications import Starlette

from massiva.api import ApiSession, PecClient, PecMassivaClient, RetryPolicy
from massiva.campaign import load_spec
from massiva.loading import load_campaign
from massiva.reconcile import Summary, reconcile
from massiva.sender import Sender, SendOptions
from massiva.simulator import SimClock, Simulator, SimulatorSettings, create_app
from massiva.store import Store
from tests.contract import ContractTransport
from tests.postgres import PostgresServer

if TYPE_CHECKING:
    from tests.cli import Invoke

# Distinctive secrets, so a test can prove they appear nowhere.
TOKEN = "tok-Zq8sEcReT-9f3b2a"
PASSWORD = "pw-Xy7sEcReT-41c0de"
MAILBOX = "ufficio@pecmassiva.com"
BASE_URL = "http://simulator.test"
# A Tuesday in winter: Rome is UTC+1.
START = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)


class Sleeps:
    """A ``sleep`` for the clients that records the waits instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def clock() -> SimClock:
    """The simulator's clock, frozen: a test moves it with ``advance``."""
    return SimClock(start=START, speed=0)


@pytest.fixture
def settings() -> SimulatorSettings:
    """Simulator settings; pacing is off unless a test is about pacing."""
    return SimulatorSettings(send_rate=None)


@pytest.fixture
def app(settings: SimulatorSettings, clock: SimClock) -> Starlette:
    """The simulator app, with the test mailbox ``MAILBOX`` / ``PASSWORD`` active."""
    app = create_app(settings, clock=clock)
    app.state.simulator.add_mailbox(MAILBOX, PASSWORD)
    return app


@pytest.fixture
def simulator(app: Starlette) -> Simulator:
    """The simulator's state and admin methods."""
    sim: Simulator = app.state.simulator
    return sim


@pytest.fixture
def contract(app: Starlette) -> ContractTransport:
    """The in-process transport to the simulator, validating every exchange."""
    return ContractTransport(httpx.ASGITransport(app=app))


@pytest.fixture
def sleeps() -> Sleeps:
    """The waits the clients asked for (nothing really waits)."""
    return Sleeps()


@pytest.fixture
async def session(contract: ContractTransport, sleeps: Sleeps) -> AsyncIterator[ApiSession]:
    """An API session on the simulator; both vendor APIs share its base URL."""
    async with ApiSession(
        BASE_URL, TOKEN, transport=contract, retry=RetryPolicy(attempts=3), sleep=sleeps
    ) as s:
        yield s


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A PostgreSQL server of the test session's own (Debian's binaries), with a database
    ``massiva_template`` migrated once: each test's database is a copy of it."""
    server = PostgresServer.start(tmp_path_factory.mktemp("postgres"))
    try:
        server.create_database("massiva_template")

        async def migrate() -> None:
            url = server.url("massiva_template")
            archive = tmp_path_factory.mktemp("template-archive")
            async with await Store.open(url, archive_dir=archive):
                pass

        asyncio.run(migrate())
        yield server
    finally:
        server.stop()


_databases = itertools.count(1)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path | str]:
    """A new, empty massiva database on each engine: a SQLite file in the test's folder,
    or a PostgreSQL database of the session's server (a URL)."""
    if request.param == "sqlite":
        yield tmp_path / "massiva.db"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    name = f"test_{next(_databases)}"
    server.create_database(name, template="massiva_template")
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)


@pytest.fixture
async def store(database: Path | str, tmp_path: Path) -> AsyncIterator[Store]:
    """A new massiva database, on each engine in turn (its archive in the test's folder,
    where a SQLite database's would be)."""
    async with await Store.open(database, archive_dir=tmp_path / "massiva.db.archive") as s:
        yield s


@pytest.fixture
async def demo(contract: ContractTransport) -> AsyncIterator[PecMassivaClient]:
    """The simulator's demo mailbox, demo@pecmassiva.com (no retries: tests count
    requests)."""
    async with ApiSession(
        BASE_URL, TOKEN, transport=contract, retry=RetryPolicy(attempts=1)
    ) as session:
        yield PecMassivaClient(session, "demo@pecmassiva.com", "demo")


@pytest.fixture
def pec(session: ApiSession) -> PecClient:
    """The provisioning client."""
    return PecClient(session)


@pytest.fixture
def box(session: ApiSession) -> PecMassivaClient:
    """The sending client of the test mailbox."""
    return PecMassivaClient(session, MAILBOX, PASSWORD)


Send = Callable[[list[str]], Coroutine[Any, Any, None]]
Run = Callable[..., Awaitable[Summary]]


@pytest.fixture
def send(store: Store, demo: PecMassivaClient, tmp_path: Path, clock: SimClock) -> Send:
    """Load a campaign to ``addresses`` and send it all, on the simulator's clock."""

    from tests.test_sender import make_campaign  # a test module: imported when used

    async def go(addresses: list[str]) -> None:
        spec = load_spec(make_campaign(tmp_path / "campagna", addresses))
        await load_campaign(store, spec)
        campaign = await store.campaigns.get(spec.name)
        assert campaign is not None
        options = SendOptions(rate=None)
        progress = await Sender(store, demo, campaign, spec, options, clock=clock.now).run()
        assert progress.stopped == "done"

    return go


@pytest.fixture
def run(store: Store, demo: PecMassivaClient, clock: SimClock) -> Run:
    """One reconcile of the demo mailbox, on the simulator's clock."""

    async def go() -> Summary:
        return await reconcile(store, demo, "demo@pecmassiva.com", clock=clock.now)

    return go


@pytest.fixture
def invoke(app: Starlette, tmp_path: Path) -> Invoke:
    """``massiva ...`` in-process on the simulator, with the demo box's password set."""
    from tests.cli import cli  # it imports this module's TOKEN: imported when used

    return cli(app, tmp_path)
