"""Whose clock expiry runs on: the vendor's, as the ``Date`` of its answers tells it.

The vendor dates its receipts by its own clock; the simulator's may run days ahead of
ours (``--clock-speed``) or stand still. A recipient expires when the vendor's time is
24 hours past the vendor's acceptance of its post, and a receipt is "dated in the
future" against the vendor's time, whatever this machine's clock says.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import Result
from starlette.applications import Starlette

from massiva.api import ApiSession, PecMassivaClient
from massiva.api.vendor_clock import VendorClock
from massiva.campaign import load_spec
from massiva.loading import load_campaign
from massiva.reconcile import Reconciler
from massiva.sender import Sender, SendOptions
from massiva.simulator import (
    Fault,
    SimClock,
    Simulator,
    SimulatorSettings,
    create_app,
    running_server,
)
from massiva.store import Store
from massiva.times import utcnow
from tests.cli import Invoke, cli
from tests.conftest import TOKEN
from tests.sim import DEMO_MAILBOX, sim_client
from tests.test_sender import make_campaign

# Four days ahead of this machine: the simulator as `--clock-speed 7200` leaves it after
# a minute, frozen so that the test moves it by hand.
AHEAD = timedelta(days=4)
PEC, SILENT = "mario.rossi@legalmail.it", "giorgia.russo@gmail.com"


class Local:
    """Our clock, moved by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_the_vendors_time_is_ours_plus_what_its_latest_date_showed() -> None:
    local = Local(datetime(2026, 12, 3, 12, 0, 0, 250_000, tzinfo=UTC))
    clock = VendorClock(local)
    untold = clock.now()
    clock.saw("Mon, 07 Dec 2026 12:00:00 GMT")
    local.now += timedelta(seconds=30)

    assert untold == datetime(2026, 12, 3, 12, 0, 0, 250_000, tzinfo=UTC)
    assert clock.now() == datetime(2026, 12, 7, 12, 0, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    "date",
    [None, "", "yesterday", "Mon, 07 Dec 1999 12:00:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT"],
)
def test_a_date_missing_unreadable_or_absurd_leaves_the_clock_as_it_was(
    date: str | None,
) -> None:
    local = Local(datetime(2026, 12, 3, 12, 0, tzinfo=UTC))
    clock = VendorClock(local)
    clock.saw("Mon, 07 Dec 2026 12:00:00 GMT")

    clock.saw(date)

    assert clock.now() == datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def test_a_date_without_a_zone_is_utc_as_http_dates_are() -> None:
    local = Local(datetime(2026, 12, 3, 12, 0, tzinfo=UTC))
    clock = VendorClock(local)

    clock.saw("Mon, 07 Dec 2026 12:00:00 -0000")

    assert clock.now() == datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


async def test_every_simulator_answer_tells_the_simulated_time_in_its_date() -> None:
    app = create_app(clock=SimClock(start=datetime(2026, 3, 10, 8, 0, tzinfo=UTC), speed=0))

    async with sim_client(app) as client:
        inbox = await client.get("/inbox", headers=DEMO_MAILBOX)
        refused = await client.get("/inbox")  # no mailbox credentials: 401
        admin = await client.get("/_simulator/clock")

    for answer in (inbox, refused, admin):
        assert answer.headers.get_list("date") == ["Tue, 10 Mar 2026 08:00:00 GMT"]


def test_over_a_socket_the_simulated_date_is_the_only_one() -> None:
    app = create_app(clock=SimClock(start=datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC), speed=0))

    with running_server(app) as base_url:
        answer = httpx.get(f"{base_url}/inbox", headers=DEMO_MAILBOX)

    assert answer.headers.get_list("date") == ["Wed, 02 Jan 2030 03:04:05 GMT"]


async def test_a_mailbox_client_learns_the_vendors_clock_from_its_answers() -> None:
    vendor_now = (utcnow() + AHEAD).replace(microsecond=0)
    app = create_app(clock=SimClock(start=vendor_now, speed=0))

    async with ApiSession("http://sim", TOKEN, transport=httpx.ASGITransport(app=app)) as session:
        client = PecMassivaClient(session, "demo@pecmassiva.com", "demo")
        before = client.vendor_clock.now()
        await client.inbox()
        after = client.vendor_clock.now()

    assert before < vendor_now - AHEAD + timedelta(minutes=1)  # ours, until it answers
    assert vendor_now <= after < vendor_now + timedelta(minutes=1)


@pytest.fixture
def app() -> Starlette:
    """A simulator four days ahead of this machine, frozen."""
    return create_app(
        SimulatorSettings(send_rate=None), clock=SimClock(start=utcnow() + AHEAD, speed=0)
    )


@pytest.fixture
def invoke(app: Starlette, tmp_path: Path, database: Path | str) -> Invoke:
    """``massiva --db <database> ...`` (a SQLite file or a PostgreSQL URL) on the
    simulator four days ahead."""
    base = cli(app, tmp_path, mailbox="send_rate = 100.0\n")

    def run(*args: str, **options: Any) -> Result:
        return base("--db", str(database), *args, **options)

    return run


def counts(invoke: Invoke) -> dict[str, int]:
    status = json.loads(invoke("campaign", "status", "prova", "--json").stdout)
    return {k: v for k, v in status["counts"].items() if v}


def test_receipts_dated_days_ahead_of_us_are_trusted_when_the_vendor_is_days_ahead(
    invoke: Invoke, app: Starlette, tmp_path: Path
) -> None:
    assert (
        invoke("campaign", "load", str(make_campaign(tmp_path / "c", [PEC, SILENT]))).exit_code == 0
    )
    assert invoke("send", "prova").exit_code == 0
    app.state.simulator.clock.advance(600)

    result = invoke("reconcile", "--json")

    (report,) = json.loads(result.stdout)["mailboxes"]
    assert report["suspicious"] == []
    assert counts(invoke) == {"delivered": 1, "accepted": 1}


def test_a_silent_recipient_expires_24_hours_after_its_acceptance_on_the_vendors_clock(
    invoke: Invoke, app: Starlette, tmp_path: Path
) -> None:
    clock = app.state.simulator.clock
    assert (
        invoke("campaign", "load", str(make_campaign(tmp_path / "c", [PEC, SILENT]))).exit_code == 0
    )
    assert invoke("send", "prova").exit_code == 0
    clock.advance(600)
    invoke("reconcile")

    clock.advance(24 * 3600 - 600 - 60)  # a minute short of a day after the acceptance
    short = invoke("reconcile", "--json")
    counts_short = counts(invoke)
    clock.advance(61)
    due = invoke("reconcile", "--json")

    assert json.loads(short.stdout)["mailboxes"][0]["moved"] == {}
    assert counts_short == {"delivered": 1, "accepted": 1}
    assert json.loads(due.stdout)["mailboxes"][0]["moved"] == {"expired": 1}
    assert counts(invoke) == {"delivered": 1, "expired": 1}


def test_the_12_hour_warning_of_a_vendor_days_ahead_is_no_final_notice(
    invoke: Invoke, app: Starlette, tmp_path: Path
) -> None:
    # Whether a delivery-time notice is the final one (22 h or more after the post) is
    # measured from the vendor's acceptance, not from our clock's record of the post.
    clock = app.state.simulator.clock
    folder = make_campaign(tmp_path / "c", ["timeout.anna@legalmail.it"])
    assert invoke("campaign", "load", str(folder)).exit_code == 0
    assert invoke("send", "prova").exit_code == 0

    clock.advance(12 * 3600 + 60)
    invoke("reconcile")
    after_warning = counts(invoke)
    clock.advance(12 * 3600)
    invoke("reconcile")

    assert after_warning == {"accepted": 1}
    assert counts(invoke) == {"failed": 1}


@pytest.mark.parametrize(("claims", "verdict"), [("sender's", "waiting"), ("vendor's", "requeued")])
async def test_the_grace_of_an_unknown_post_is_measured_on_the_clock_its_claim_was_written_on(
    store: Store,
    demo: PecMassivaClient,
    simulator: Simulator,
    clock: SimClock,
    tmp_path: Path,
    claims: str,
    verdict: str,
) -> None:
    # A post whose answer was lost a moment ago, claimed on the sender's clock; the vendor
    # is days ahead. Measured on the vendor's clock, 30 minutes of grace would be long
    # past, and a post that may have left would be sent again.
    simulator.add_fault(Fault(path="/send", method="POST", kind="drop_before_record"))
    spec = load_spec(make_campaign(tmp_path / "c", [PEC]))
    await load_campaign(store, spec)
    campaign = await store.campaigns.get(spec.name)
    assert campaign is not None
    await Sender(store, demo, campaign, spec, SendOptions(rate=None), clock=clock.now).run()

    def vendor() -> datetime:
        return clock.now() + AHEAD

    summary = await Reconciler(
        store,
        demo,
        "demo@pecmassiva.com",
        clock=vendor,
        claims_clock=clock.now if claims == "sender's" else None,  # None: the vendor's
    ).run()

    assert (summary.unknowns.waiting, summary.unknowns.requeued) == (
        (1, 0) if verdict == "waiting" else (0, 1)
    )
