"""``massiva status``: every campaign's recipients per state, every mailbox's allowances
and when they renew (in Europe/Rome, as the provider counts them)."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pytest
from starlette.applications import Starlette

from massiva.quota import next_day, next_month
from massiva.report.rows import rome_iso
from massiva.simulator import SimClock, SimulatorSettings, create_app
from massiva.store import STATES
from massiva.times import utcnow
from tests.cli import Invoke, cli, on
from tests.conftest import START
from tests.test_report_support import ok, people, write_folder
from tests.test_sender import MAILBOX


@pytest.fixture
def app() -> Starlette:
    return create_app(SimulatorSettings(send_rate=None), clock=SimClock(start=START, speed=0))


@pytest.fixture
def invoke(app: Starlette, tmp_path: Path, database: Path | str) -> Invoke:
    """``massiva ...`` on the test's database, on each engine in turn."""
    return on(database, cli(app, tmp_path, mailbox="daily_limit = 5\n"))


def renewals(before: datetime, after: datetime) -> tuple[set[str], set[str]]:
    """The day's and the month's renewal as shown, from either side of a command."""
    return (
        {rome_iso(next_day(before)), rome_iso(next_day(after))},
        {rome_iso(next_month(before)), rome_iso(next_month(after))},
    )


def test_campaign_counts_and_the_allowance_used_and_when_it_renews(
    invoke: Invoke, tmp_path: Path
) -> None:
    ok(invoke("campaign", "load", str(write_folder(tmp_path / "a", people(7)))))
    ok(invoke("campaign", "load", str(write_folder(tmp_path / "b", people(2), name="altra"))))
    before = utcnow()
    assert invoke("send", "prova", "--rate", "1000").exit_code == 7  # the daily limit, 5

    status = json.loads(ok(invoke("status", "--json")).stdout)
    after = utcnow()

    day, month = renewals(before, after)
    assert [(c["campaign"], c["total"]) for c in status["campaigns"]] == [
        ("prova", 7),
        ("altra", 2),
    ]
    prova = status["campaigns"][0]
    assert {k: v for k, v in prova["counts"].items() if v} == {"sent": 5, "pending": 2}
    assert set(prova["counts"]) == set(STATES)  # every state, zeros included
    (box,) = status["mailboxes"]
    assert box["mailbox"] == MAILBOX
    assert (box["today"]["used"], box["today"]["limit"]) == (5, 5)
    assert (box["this_month"]["used"], box["this_month"]["limit"]) == (5, 30000)
    assert box["today"]["renews_at"] in day
    assert box["this_month"]["renews_at"] in month
    assert box["today"]["renews_at"].endswith(("T00:00:00+01:00", "T00:00:00+02:00"))
    assert box["can_send_now"] == 0
    assert box["spent_until"] == box["today"]["renews_at"]


def test_the_tables_for_people(invoke: Invoke, tmp_path: Path) -> None:
    ok(invoke("campaign", "load", str(write_folder(tmp_path / "a", people(3)))))
    ok(invoke("send", "prova", "--rate", "1000", "--max", "2"))

    result = ok(invoke("status"))

    out = result.stdout
    assert "Campaigns" in out and "Allowances at" in out
    (campaign,) = [line for line in out.splitlines() if "│ prova " in line and "@" not in line]
    # recipients, then pending, sending, sent
    assert [cell.strip() for cell in campaign.split("│")][3:7] == ["3", "1", "0", "2"]
    (source,) = [line for line in out.splitlines() if "│ prova " in line and "@" in line]
    assert [cell.strip() for cell in source.split("│")][2:4] == [MAILBOX, "any time"]
    (mailbox,) = [line for line in out.splitlines() if f"│ {MAILBOX}" in line and " of " in line]
    cells = [cell.strip() for cell in mailbox.split("│")]
    assert cells[2] == "2 of 5" and cells[4] == "2 of 30,000" and cells[6] == "3"
    assert cells[3].endswith(("00:00:00+01:00", "00:00:00+02:00"))  # the next Rome midnight


def test_before_anything_is_loaded(invoke: Invoke) -> None:
    result = ok(invoke("status"))

    assert "No campaign loaded yet: see massiva campaign load --help." in result.stdout
    (mailbox,) = [line for line in result.stdout.splitlines() if f"│ {MAILBOX}" in line]
    assert "0 of 5" in mailbox  # configured in massiva.toml, so shown


THIRD = "terzo@pecmassiva.com"


def test_a_pool_and_its_schedule_are_shown_and_every_box_of_it_listed(
    invoke: Invoke, tmp_path: Path
) -> None:
    folder = write_folder(
        tmp_path / "a",
        people(3),
        extra='\n[schedule]\ndays = ["mon-fri"]\nnot_after = 2026-03-10T18:00:00+01:00\n',
    )
    toml = folder / "campaign.toml"
    toml.write_text(
        toml.read_text(encoding="utf-8").replace(
            f'mailbox = "{MAILBOX}"', f'mailboxes = ["{MAILBOX}", "{THIRD}"]'
        ),
        encoding="utf-8",
    )
    ok(invoke("campaign", "load", str(folder)))

    status = json.loads(ok(invoke("status", "--json")).stdout)
    text = ok(invoke("status")).stdout

    (campaign,) = status["campaigns"]
    assert campaign["mailbox"] == MAILBOX  # the first, as before pools
    assert campaign["mailboxes"] == [MAILBOX, THIRD]
    assert campaign["schedule"] == "Mon-Fri all day Europe/Rome, until 10/03/2026 18:00 +01:00"
    assert (campaign["past_deadline"], campaign["not_sent_by_deadline"]) == (True, 3)
    assert campaign["counts"]["pending"] == 3  # still pending: a label, not a state
    # The box only the pool names is listed, with massiva's default allowances.
    boxes = {box["mailbox"]: box for box in status["mailboxes"]}
    assert list(boxes) == [MAILBOX, THIRD]
    assert boxes[THIRD]["today"]["limit"] == 3500
    # For people: the campaign's line names both boxes and the schedule.
    lines = text[text.index("Sending from, and when") : text.index("Allowances at")].splitlines()
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in lines if "│" in line]
    assert rows == [
        [
            "prova",
            MAILBOX,
            "Mon-Fri all day Europe/Rome, until 10/03/2026 18:00 +01:00 (deadline passed: 3"
            " not sent by it)",
        ],
        ["", THIRD, ""],
    ]
    assert re.search(rf"│ {re.escape(THIRD)}\s+│ 0 of 3,500", text)


def test_a_campaign_without_schedule_sends_any_time(invoke: Invoke, tmp_path: Path) -> None:
    ok(invoke("campaign", "load", str(write_folder(tmp_path / "a", people(1)))))

    (campaign,) = json.loads(ok(invoke("status", "--json")).stdout)["campaigns"]

    assert (campaign["mailboxes"], campaign["schedule"]) == ([MAILBOX], None)
    assert (campaign["past_deadline"], campaign["not_sent_by_deadline"]) == (False, 0)
