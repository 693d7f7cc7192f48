"""The reconciler reads only the inbox pages that can hold new messages, in both page
orders the simulator serves, counted with the simulator's own request log: at most 2
``GET /inbox`` with nothing new, at most ceil(N / 25) + 2 after N new messages. When
messages are deleted or the order changes it reads everything rather than miss one.
Pages are fetched a few at a time, never more than asked, and what a concurrent reading
stores is what a reading one page after another stores."""

from __future__ import annotations

import asyncio
import math
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql as pg_sql
from psycopg.conninfo import conninfo_to_dict
from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from massiva.api import ApiSession, PecMassivaClient, RetryPolicy, ServerError
from massiva.reconcile import PAGE_FETCHES, Reconciler, Summary
from massiva.simulator import Fault, SimClock, Simulator
from massiva.store import Store
from tests.conftest import TOKEN
from tests.conftest import Send as SendCampaign
from tests.contract import ContractTransport
from tests.db import connect
from tests.db import target as db_target
from tests.postgres import PostgresServer

MAILBOX = "demo@pecmassiva.com"
ORDERS = ["newest_first", "oldest_first"]


class Inbox:
    """The demo mailbox: fill it, reconcile it, count what that cost."""

    def __init__(
        self, simulator: Simulator, store: Store, client: PecMassivaClient, clock: SimClock
    ) -> None:
        self.simulator, self.store, self.client, self.clock = simulator, store, client, clock
        self.injected = 0

    def add(self, n: int) -> None:
        for _ in range(n):
            self.injected += 1
            self.simulator.inject_message(
                MAILBOX,
                subject=f"ANOMALIA MESSAGGIO: messaggio {self.injected}",
                sender="qualcuno@gmail.com",
                recipient=MAILBOX,
            )

    async def reconcile(self, page_fetches: int = PAGE_FETCHES) -> tuple[Summary, int]:
        """A run, and the GET /inbox requests it made by the simulator's count."""
        mark = len(self.simulator.requests)
        reconciler = Reconciler(
            self.store, self.client, MAILBOX, clock=self.clock.now, page_fetches=page_fetches
        )
        summary = await reconciler.run()
        requests = sum(1 for r in self.simulator.requests[mark:] if r.path == "/inbox")
        assert requests == summary.pages
        return summary, requests

    def stored(self) -> list[int]:
        with connect(self.store) as conn:
            return [i for (i,) in conn.execute("SELECT inbox_id FROM receipt ORDER BY inbox_id")]

    def in_inbox(self) -> list[int]:
        return sorted(self.simulator.mailboxes[MAILBOX].inbox)


@pytest.fixture
def inbox(simulator: Simulator, store: Store, demo: PecMassivaClient, clock: SimClock) -> Inbox:
    return Inbox(simulator, store, demo, clock)


def budget(new: int) -> int:
    return math.ceil(new / 25) + 2


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("before", [0, 1, 37, 50])
@pytest.mark.parametrize("new", [0, 1, 25, 26, 60])
async def test_a_run_reads_only_the_pages_that_can_hold_new_messages(
    inbox: Inbox, simulator: Simulator, order: str, before: int, new: int
) -> None:
    simulator.settings.inbox_order = order  # type: ignore[assignment]
    inbox.add(before)
    await inbox.reconcile()
    inbox.add(new)

    summary, requests = await inbox.reconcile()

    assert requests <= budget(new), f"{requests} requests for {new} new messages"
    assert sum(summary.receipts.values()) == new
    assert inbox.stored() == inbox.in_inbox()


@pytest.mark.parametrize("order", ORDERS)
async def test_run_after_run_every_message_is_stored_once_within_the_budget(
    inbox: Inbox, simulator: Simulator, order: str
) -> None:
    simulator.settings.inbox_order = order  # type: ignore[assignment]
    inbox.add(80)
    first, _ = await inbox.reconcile()
    assert first.full_scan

    for new in (0, 3, 0, 25, 24, 1, 0, 60, 26, 0, 0, 49, 50, 51):
        inbox.add(new)
        summary, requests = await inbox.reconcile()
        assert not summary.full_scan
        assert requests <= budget(new), f"{requests} requests for {new} new messages"
        assert sum(summary.receipts.values()) == new
    assert inbox.stored() == inbox.in_inbox()


@pytest.mark.parametrize("order", ORDERS)
async def test_deleted_messages_make_one_run_read_everything_and_none_is_missed(
    inbox: Inbox, simulator: Simulator, demo: PecMassivaClient, order: str
) -> None:
    simulator.settings.inbox_order = order  # type: ignore[assignment]
    inbox.add(70)
    await inbox.reconcile()
    for inbox_id in inbox.in_inbox()[:30]:  # a clean-up of old receipts
        await demo.delete_message(inbox_id)
    inbox.add(10)

    summary, _ = await inbox.reconcile()
    quiet, requests = await inbox.reconcile()

    assert sum(summary.receipts.values()) == 10
    assert set(inbox.in_inbox()) <= set(inbox.stored())
    assert (quiet.full_scan, requests) == (False, 1)


@pytest.mark.parametrize(("first", "then"), [ORDERS, ORDERS[::-1]])
async def test_a_provider_that_changes_its_order_is_read_in_full_once(
    inbox: Inbox, simulator: Simulator, first: str, then: str
) -> None:
    simulator.settings.inbox_order = first  # type: ignore[assignment]
    inbox.add(40)
    await inbox.reconcile()
    simulator.settings.inbox_order = then  # type: ignore[assignment]
    inbox.add(5)

    changed, _ = await inbox.reconcile()
    inbox.add(5)
    settled, requests = await inbox.reconcile()

    assert changed.full_scan and not settled.full_scan
    assert sum(changed.receipts.values()) == sum(settled.receipts.values()) == 5
    assert requests <= budget(5)
    assert inbox.stored() == inbox.in_inbox()


class DeleteAfterFirstPage(httpx.AsyncBaseTransport):
    """Deletes the oldest message once the first GET /inbox has been answered: a
    clean-up running while the reconciler reads."""

    def __init__(self, inner: httpx.AsyncBaseTransport, simulator: Simulator) -> None:
        self.inner, self.simulator = inner, simulator
        self.armed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if self.armed and request.url.path == "/inbox":
            self.armed = False
            inbox = self.simulator.mailboxes[MAILBOX].inbox
            del inbox[min(inbox)]
        return response


async def test_a_deletion_while_reading_makes_the_next_run_read_everything(
    simulator: Simulator, store: Store, contract: ContractTransport, clock: SimClock
) -> None:
    simulator.settings.inbox_order = "oldest_first"
    deleter = DeleteAfterFirstPage(contract, simulator)
    async with ApiSession("http://sim", TOKEN, transport=deleter) as session:
        inbox = Inbox(simulator, store, PecMassivaClient(session, MAILBOX, "demo"), clock)
        inbox.add(50)
        await inbox.reconcile()
        inbox.add(30)  # positions 51-80: pages 3 and 4
        deleter.armed = True

        shifted, _ = await inbox.reconcile()  # page 2, a deletion, then pages 3 and 4
        missed = set(inbox.in_inbox()) - set(inbox.stored())
        cursor = await store.receipts.cursor(MAILBOX)
        healed, _ = await inbox.reconcile()

    assert not shifted.full_scan
    assert len(missed) == 1  # shifted from page 3 to page 2 while page 2 was behind us
    assert cursor is not None and cursor.rescan
    assert healed.full_scan
    assert sum(healed.receipts.values()) == 1
    assert set(inbox.in_inbox()) <= set(inbox.stored())


class FailSecondPage(httpx.AsyncBaseTransport):
    """Answers 503 to the second GET /inbox once armed: the vendor failing mid-run."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.pages: int | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.pages is not None and request.url.path == "/inbox":
            self.pages += 1
            if self.pages == 2:
                return httpx.Response(503, json={"success": False, "message": "unavailable"})
        return await self.inner.handle_async_request(request)


@pytest.mark.parametrize("order", ORDERS)
async def test_a_run_that_fails_half_way_leaves_the_cursor_and_is_done_again(
    simulator: Simulator, store: Store, contract: ContractTransport, clock: SimClock, order: str
) -> None:
    simulator.settings.inbox_order = order  # type: ignore[assignment]
    failing = FailSecondPage(contract)
    async with ApiSession(
        "http://sim", TOKEN, transport=failing, retry=RetryPolicy(attempts=1)
    ) as session:
        inbox = Inbox(simulator, store, PecMassivaClient(session, MAILBOX, "demo"), clock)
        inbox.add(30)
        await inbox.reconcile()
        cursor = await store.receipts.cursor(MAILBOX)
        inbox.add(60)
        failing.pages = 0

        with pytest.raises(ServerError, match="HTTP 503"):
            await inbox.reconcile()
        assert await store.receipts.cursor(MAILBOX) == cursor

        summary, _ = await inbox.reconcile()

    assert not summary.full_scan
    assert inbox.stored() == inbox.in_inbox()


class EndlessInbox(httpx.AsyncBaseTransport):
    """A vendor whose inbox never ends: it claims a billion pages, and serves either the
    same 25 messages on every page or 25 new ones on each."""

    def __init__(self, *, repeat: bool) -> None:
        self.repeat = repeat
        self.pages = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page", "1"))
        self.pages += 1
        assert self.pages <= 50, "the reading did not stop"
        first = 1 if self.repeat else 10**6 - 25 * page
        items = [
            {
                "id": first + 24 - i,
                "sender": "posta-certificata@pecmassiva.com",
                "recipient": MAILBOX,
                "date": "Tue, 10 Mar 2026 09:00:00 +0100",
                "object": f"ANOMALIA MESSAGGIO: pubblicità {first + 24 - i}",
            }
            for i in range(25)
        ]
        body = {"data": items, "total": 25 * 10**9, "page": page, "n_of_pages": 10**9}
        return httpx.Response(200, json={**body, "success": True, "message": ""})


@pytest.mark.parametrize("repeat", [True, False], ids=["same-page", "new-ids-forever"])
@pytest.mark.parametrize("page_fetches", [1, 8])
async def test_a_reading_of_an_inbox_without_end_stops_and_starts_over_next_time(
    store: Store, repeat: bool, page_fetches: int
) -> None:
    vendor = EndlessInbox(repeat=repeat)
    async with ApiSession("http://vendor.test", "tok", transport=vendor) as session:
        client = PecMassivaClient(session, MAILBOX, "pw")
        reconciler = Reconciler(store, client, MAILBOX, max_pages=5, page_fetches=page_fetches)
        summary = await reconciler.run()

    assert summary.page_limit
    if page_fetches == 1:
        assert vendor.pages == (2 if repeat else 5)
    else:  # pages fetched ahead of the repeated one, never past the limit
        assert (2 if repeat else 5) <= vendor.pages <= 5
    cursor = await store.receipts.cursor(MAILBOX)
    assert cursor is not None and cursor.rescan  # the next run reads every page again


async def test_pages_fetched_at_once_must_be_one_or_more(
    store: Store, demo: PecMassivaClient
) -> None:
    with pytest.raises(ValueError, match=r"^page_fetches must be 1 or more, not 0$"):
        Reconciler(store, demo, MAILBOX, page_fetches=0)


# -- pages fetched concurrently --------------------------------------------------------


def contents(where: Path | str) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table but the leases (held in real time, by a random holder),
    in the order SQLite inserted them, or in order of all their columns on PostgreSQL
    (which has no rowid)."""
    with connect(where) as conn:
        if not conn.postgresql:
            tables = [
                name
                for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                if name != "lease"
            ]
            return {t: conn.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in tables}
        found = conn.execute(
            "SELECT table_name, count(*) FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name <> 'lease' GROUP BY table_name"
        )
        return {
            t: conn.execute(
                f"SELECT * FROM {t} ORDER BY {', '.join(str(i + 1) for i in range(n))}"
            ).fetchall()
            for t, n in found.fetchall()
        }


@contextmanager
def copy_of(store: Store, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path | str]:
    """A copy of the store's database as it is now: a SQLite file beside it, or a new
    database of the test server, rows and sequences alike."""
    if store.engine == "sqlite":
        copy = tmp_path / "copy.db"
        with connect(store) as source, closing(sqlite3.connect(copy)) as target:
            source.raw.backup(target)
        yield copy
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    source_url = str(db_target(store))
    name = f"{conninfo_to_dict(source_url)['dbname']}_copy"
    server.create_database(name, template="massiva_template")
    try:
        with psycopg.connect(source_url) as source, psycopg.connect(server.url(name)) as target:
            # Rows go in as they are: no trigger counts them again, no key is checked.
            target.execute("SET session_replication_role = replica")
            tables = source.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
            for (table,) in tables:
                target.execute(pg_sql.SQL("DELETE FROM {}").format(pg_sql.Identifier(table)))
                copy_out = pg_sql.SQL("COPY {} TO STDOUT").format(pg_sql.Identifier(table))
                copy_in = pg_sql.SQL("COPY {} FROM STDIN").format(pg_sql.Identifier(table))
                with source.cursor().copy(copy_out) as out, target.cursor().copy(copy_in) as into:
                    for data in out:
                        into.write(data)
            # The identity sequences where the source's are: the next ids are the same.
            sequences = source.execute(
                "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'"
            ).fetchall()
            for (sequence,) in sequences:
                last, called = source.execute(
                    pg_sql.SQL("SELECT last_value, is_called FROM {}").format(
                        pg_sql.Identifier(sequence)
                    )
                ).fetchone()
                target.execute("SELECT setval(%s, %s, %s)", (sequence, last, called))
        yield server.url(name)
    finally:
        server.drop_database(name)


@pytest.mark.parametrize("order", ORDERS)
async def test_a_concurrent_reading_stores_what_a_reading_page_by_page_stores(
    send: SendCampaign,
    simulator: Simulator,
    store: Store,
    demo: PecMassivaClient,
    clock: SimClock,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    order: str,
) -> None:
    simulator.settings.inbox_order = order  # type: ignore[assignment]
    addresses = [
        *(f"utente{n:02d}@legalmail.it" for n in range(30)),
        *(f"fail{n:02d}@legalmail.it" for n in range(5)),
        *(f"reply{n:02d}@legalmail.it" for n in range(5)),
        *(f"nome{n:02d}@gmail.com" for n in range(5)),  # accepted, then silence: expired
    ]
    await send(addresses)
    one_by_one = Inbox(simulator, store, demo, clock)
    with copy_of(store, tmp_path, request) as copy:
        async with await Store.open(copy, archive_dir=tmp_path / "copy.db.archive") as other:
            concurrent = Inbox(simulator, other, demo, clock)
            # Acceptances and strangers' mail; then deliveries, failures and replies;
            # then the 24 hours after which the silent ones expire.
            for minutes, strangers in ((0, 200), (15, 60), (25 * 60, 0)):
                clock.advance(minutes * 60)
                one_by_one.add(strangers)
                sequential, _ = await one_by_one.reconcile(page_fetches=1)
                together, requests = await concurrent.reconcile(page_fetches=8)

                assert contents(copy) == contents(db_target(store))
                assert (together.receipts, together.moved) == (
                    sequential.receipts,
                    sequential.moved,
                )
                assert requests == sequential.pages
        states = {state for (state,) in connect_rows(copy, "SELECT state FROM recipient")}
    assert states == {"delivered", "failed", "expired"}


def connect_rows(where: Path | str, sql: str) -> list[tuple[object, ...]]:
    with connect(where) as conn:
        return conn.execute(sql).fetchall()


@pytest.mark.parametrize("order", ORDERS)
async def test_a_quiet_run_of_a_big_inbox_costs_one_request(inbox: Inbox, order: str) -> None:
    inbox.simulator.settings.inbox_order = order  # type: ignore[assignment]
    inbox.add(300)
    first, requests = await inbox.reconcile(page_fetches=8)
    assert (first.full_scan, requests) == (True, 12)

    quiet, requests = await inbox.reconcile(page_fetches=8)

    assert (quiet.full_scan, requests) == (False, 1)
    assert sum(quiet.receipts.values()) == 0


class InFlight:
    """Around the simulator app: counts the GET /inbox it is handling at once."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.now = self.most = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        counted = scope["type"] == "http" and scope["path"] == "/inbox"
        self.now += counted
        self.most = max(self.most, self.now)
        try:
            await self.app(scope, receive, send)
        finally:
            self.now -= counted


@pytest.mark.parametrize("page_fetches", [1, 3, 8])
async def test_no_more_pages_are_in_flight_than_asked(
    app: Starlette, simulator: Simulator, store: Store, clock: SimClock, page_fetches: int
) -> None:
    counter = InFlight(app)
    # Each GET /inbox waits 20 ms at the simulator: fetched at once, they overlap.
    simulator.add_fault(Fault("/inbox", kind="slow", delay=0.02, times=1000))
    transport = ContractTransport(httpx.ASGITransport(app=counter))
    async with ApiSession("http://sim", TOKEN, transport=transport) as session:
        inbox = Inbox(simulator, store, PecMassivaClient(session, MAILBOX, "demo"), clock)
        inbox.add(500)  # 20 pages

        summary, requests = await inbox.reconcile(page_fetches=page_fetches)

    assert (summary.full_scan, requests) == (True, 20)
    assert counter.most == page_fetches
    assert inbox.stored() == inbox.in_inbox()


class FailPage(httpx.AsyncBaseTransport):
    """Answers 503 to GET /inbox?page=<failing> once: the vendor failing mid-reading,
    with pages after it already fetched."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.failing: int | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/inbox" and request.url.params.get("page") == str(self.failing):
            self.failing = None
            return httpx.Response(503, json={"success": False, "message": "unavailable"})
        return await self.inner.handle_async_request(request)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("before", [0, 40])
async def test_a_page_failing_mid_reading_loses_nothing(
    simulator: Simulator,
    store: Store,
    contract: ContractTransport,
    clock: SimClock,
    order: str,
    before: int,
) -> None:
    simulator.settings.inbox_order = order  # type: ignore[assignment]
    failing = FailPage(contract)
    async with ApiSession(
        "http://sim", TOKEN, transport=failing, retry=RetryPolicy(attempts=1)
    ) as session:
        inbox = Inbox(simulator, store, PecMassivaClient(session, MAILBOX, "demo"), clock)
        inbox.add(before)
        if before:
            await inbox.reconcile()
        cursor = await store.receipts.cursor(MAILBOX)
        inbox.add(300)  # 12 pages of new messages or more
        failing.failing = 5

        with pytest.raises(ServerError, match="HTTP 503"):
            await inbox.reconcile(page_fetches=4)
        assert await store.receipts.cursor(MAILBOX) == cursor
        assert 0 < len(inbox.stored()) - before < 300  # pages before the failed one

        summary, _ = await inbox.reconcile(page_fetches=4)

    assert summary.full_scan == (not before)
    assert inbox.stored() == inbox.in_inbox()


class ArrivalWhilePageTwoIsServed(httpx.AsyncBaseTransport):
    """A message comes in while GET /inbox?page=2 is being answered, slowly: the pages
    after it, fetched at the same time, are answered first, from the inbox before it."""

    def __init__(self, inner: httpx.AsyncBaseTransport, simulator: Simulator) -> None:
        self.inner, self.simulator = inner, simulator
        self.armed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.armed and request.url.path == "/inbox" and request.url.params["page"] == "2":
            self.armed = False
            await asyncio.sleep(0.05)
            self.simulator.inject_message(
                MAILBOX, subject="nuovo", sender="qualcuno@gmail.com", recipient=MAILBOX
            )
        return await self.inner.handle_async_request(request)


async def test_pages_answered_before_an_arrival_are_read_again_and_none_is_missed(
    simulator: Simulator, store: Store, contract: ContractTransport, clock: SimClock
) -> None:
    # Newest first, a message coming in pushes every other one down a place: page 3,
    # answered before it, would miss the message pushed from page 2 onto page 3.
    transport = ArrivalWhilePageTwoIsServed(contract, simulator)
    async with ApiSession("http://sim", TOKEN, transport=transport) as session:
        inbox = Inbox(simulator, store, PecMassivaClient(session, MAILBOX, "demo"), clock)
        inbox.add(99)  # 4 pages, and 4 with the newcomer
        before = inbox.in_inbox()
        transport.armed = True

        summary, requests = await inbox.reconcile(page_fetches=4)
        missed = set(before) - set(inbox.stored())
        quiet, _ = await inbox.reconcile(page_fetches=4)

    assert missed == set()
    assert requests == 4 + 2  # pages 3 and 4 twice
    assert sum(summary.receipts.values()) == 99
    assert sum(quiet.receipts.values()) == 1  # the newcomer, on top
    assert inbox.stored() == inbox.in_inbox()
