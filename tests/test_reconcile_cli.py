"""``massiva reconcile`` from the command line: summary, JSON, cron safety, errors."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from starlette.applications import Starlette

from massiva.cli import main
from massiva.times import to_db, utcnow
from tests.cli import Invoke, cli, on, real_clock_app
from tests.db import connect
from tests.test_sender import make_campaign

ADDRESSES = ["mario.rossi@legalmail.it", "fail.bianchi@legalmail.it", "luigi.verdi@gmail.com"]


@pytest.fixture
def app() -> Starlette:
    return real_clock_app()


@pytest.fixture
def invoke(app: Starlette, tmp_path: Path, database: Path | str) -> Invoke:
    """``massiva --db <database> ...`` (a SQLite file or a PostgreSQL URL) with a config
    naming the demo box's password, on the simulator."""
    return on(database, cli(app, tmp_path, mailbox="send_rate = 100.0\n"))


@pytest.fixture
def sent(invoke: Invoke, tmp_path: Path, app: Starlette, database: Path | str) -> Path | str:
    """A campaign loaded and sent; the simulator's clock moved on 10 minutes. The
    database's file or URL."""
    folder = make_campaign(tmp_path / "c", ADDRESSES)
    assert invoke("campaign", "load", str(folder)).exit_code == 0
    assert invoke("send", "prova").exit_code == 0
    app.state.simulator.clock.advance(600)
    return database


def test_reconcile_reports_as_json_and_campaign_status_shows_the_outcomes(
    invoke: Invoke, sent: Path
) -> None:
    result = invoke("reconcile", "--json")

    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.stdout)["mailboxes"]
    assert report["mailbox"] == "demo@pecmassiva.com"
    assert report["receipts"] == {"accepted": 3, "delivered": 1, "not_delivered": 1}
    assert report["moved"] == {"accepted": 1, "delivered": 1, "failed": 1}
    assert report["orphans"] == []
    assert report["unknowns"] == {"adopted": 0, "requeued": 0, "waiting": 0, "ambiguous": 0}
    # The five receipts' bodies are fetched and kept as evidence.
    assert (report["requests"]["inbox"], report["requests"]["bodies"]) == (1, 5)
    assert report["bodies"] == {"backfilled": 0, "missing": 0}
    status = json.loads(invoke("campaign", "status", "prova", "--json").stdout)
    assert {k: v for k, v in status["counts"].items() if v} == {
        "accepted": 1,
        "delivered": 1,
        "failed": 1,
    }


def test_a_quiet_run_says_so_in_one_line(invoke: Invoke, sent: Path | str) -> None:
    invoke("reconcile")

    result = invoke("reconcile")

    assert result.exit_code == 0
    assert (
        result.stdout == "demo@pecmassiva.com: nothing new; 2 requests.\n"
    )  # the inbox, the quota


def test_the_summary_line_names_receipts_and_moves(invoke: Invoke, sent: Path | str) -> None:
    result = invoke("reconcile", "--mailbox", "DEMO@pecmassiva.com")

    assert result.exit_code == 0
    assert result.stdout == (
        "demo@pecmassiva.com: 5 new messages (accepted 3, delivered 1, not_delivered 1);"
        " recipients now accepted 1, delivered 1, failed 1; 7 requests, every page read.\n"
    )


def test_a_second_reconciler_exits_0_saying_another_is_running(
    invoke: Invoke, sent: Path | str
) -> None:
    with connect(sent) as conn:
        conn.execute(
            "INSERT INTO lease (name, holder, expires_at) VALUES (?, ?, ?)",
            (
                "reconcile:demo@pecmassiva.com",
                "another-host:4242:cafe1234",
                to_db(utcnow() + timedelta(minutes=1)),
            ),
        )

    result = invoke("reconcile")

    assert result.exit_code == 0
    assert result.stdout == (
        "demo@pecmassiva.com: skipped, another reconcile is running (another-host:4242:cafe1234).\n"
    )
    with connect(sent) as conn:
        assert conn.execute("SELECT count(*) FROM receipt").fetchone() == (0,)


def test_without_campaigns_there_is_nothing_to_reconcile(invoke: Invoke) -> None:
    result = invoke("reconcile")

    assert result.exit_code == 0
    assert result.stdout == "No campaign has been loaded: no mailbox to reconcile.\n"


def test_a_missing_password_is_a_real_error_that_says_what_to_set(invoke: Invoke) -> None:
    result = invoke("reconcile", "--mailbox", "ufficio@pecmassiva.com")

    assert result.exit_code == 3
    assert "ufficio@pecmassiva.com: not reconciled" in result.stdout
    assert "set the environment variable MASSIVA_PASSWORD_UFFICIO" in result.stderr


def test_refused_credentials_exit_3_as_json(invoke: Invoke, sent: Path, app: Starlette) -> None:
    app.state.simulator.mailboxes["demo@pecmassiva.com"].password = "changed"

    result = invoke("reconcile", "--json")

    assert result.exit_code == 3
    error = json.loads(result.stdout)["error"]
    assert error["status"] == 401
    assert "password" in error["message"]


def test_the_help_shows_a_crontab_line() -> None:
    result = CliRunner().invoke(main, ["reconcile", "--help"])

    assert "*/5 * * * * cd /srv/pec && massiva reconcile >> reconcile.log 2>&1" in result.output
