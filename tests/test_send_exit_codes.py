"""``massiva send``'s exit code says how the run ended: 0 only when nothing is left to
send. Ctrl+C and SIGTERM are sent to a real process, sending to the simulator in another
process on loopback; the other endings run in process."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import Result
from starlette.applications import Starlette

from massiva.simulator import Fault, Simulator
from tests.cli import Invoke, cli
from tests.db import connect
from tests.test_send_crash import Massiva, claimed, posts, simulator_url
from tests.test_sender import make_campaign, pec_addresses

__all__ = ["simulator_url"]  # the fixture, shared with the crash tests


def on(database: Path | str, invoke: Invoke) -> Invoke:
    """``invoke`` with ``--db <database>`` (a SQLite file or a PostgreSQL URL)."""

    def run(*args: str, **options: Any) -> Result:
        return invoke("--db", str(database), *args, **options)

    return run


@pytest.fixture
def invoke(app: Starlette, tmp_path: Path, database: Path | str) -> Invoke:
    """``massiva --db <database> ...`` on the simulator."""
    return on(database, cli(app, tmp_path))


def loaded(invoke: Invoke, tmp_path: Path, recipients: int) -> None:
    folder = make_campaign(tmp_path / "c", pec_addresses(recipients))
    assert invoke("campaign", "load", str(folder)).exit_code == 0


def set_state(db: Path | str, state: str) -> None:
    """The campaign paused or cancelled, as another process does."""
    with connect(db) as conn:
        conn.execute("UPDATE campaign SET state = ?", (state,))


def test_0_when_every_recipient_is_posted(invoke: Invoke, tmp_path: Path) -> None:
    loaded(invoke, tmp_path, 3)

    result = invoke("send", "prova", "--rate", "1000")

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("prova: every recipient has been posted.\n")


def test_0_when_max_is_reached(invoke: Invoke, tmp_path: Path) -> None:
    loaded(invoke, tmp_path, 3)

    result = invoke("send", "prova", "--rate", "1000", "--max", "2")

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("prova: --max reached.\n")


def test_4_while_a_post_of_unknown_outcome_waits_and_0_once_it_is_settled(
    invoke: Invoke, tmp_path: Path, simulator: Simulator
) -> None:
    loaded(invoke, tmp_path, 3)
    simulator.add_fault(Fault(path="/send", method="POST", kind="drop_after_record"))

    first = invoke("send", "prova", "--rate", "1000")
    again = invoke("send", "prova", "--rate", "1000", "--json")  # its receipt came: adopted

    assert first.exit_code == 4, first.output
    assert first.stdout.startswith("prova: nothing more can be posted now.\n")
    assert (
        "1 recipient(s) may or may not have been sent: the next send or reconcile looks"
        " for their receipts, and sends them again only if none came." in first.stdout
    )
    assert again.exit_code == 0, again.output
    summary = json.loads(again.stdout)
    assert (summary["exit_code"], summary["adopted"]) == (0, 1)
    assert simulator.post_counts() == dict.fromkeys(pec_addresses(3), 1)


@pytest.mark.parametrize("state", ["paused", "cancelled"])
def test_6_when_the_campaign_is_paused_or_cancelled(
    invoke: Invoke, tmp_path: Path, database: Path | str, simulator: Simulator, state: str
) -> None:
    loaded(invoke, tmp_path, 3)
    set_state(database, state)

    result = invoke("send", "prova")
    as_json = invoke("send", "prova", "--json")

    assert (result.exit_code, as_json.exit_code) == (6, 6)
    assert result.stdout.startswith(f"prova: the campaign is {state}")
    assert (json.loads(as_json.stdout)["stopped"], json.loads(as_json.stdout)["exit_code"]) == (
        state,
        6,
    )
    assert simulator.post_counts() == {}


def test_7_when_the_allowance_is_spent(
    app: Starlette, tmp_path: Path, database: Path | str
) -> None:
    invoke = on(database, cli(app, tmp_path, mailbox="daily_limit = 2\n"))
    loaded(invoke, tmp_path, 3)

    result = invoke("send", "prova", "--rate", "1000")

    assert result.exit_code == 7, result.output
    assert result.stdout.startswith("prova: the allowance is spent; sending can go on from "), (
        result.stdout
    )


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_and_sigterm_stop_cleanly_with_130_and_143(
    tmp_path: Path, database: Path | str, simulator_url: str, signum: int
) -> None:
    massiva = Massiva(tmp_path, simulator_url, database)
    folder = make_campaign(tmp_path / "campagna", pec_addresses(40))
    assert massiva.run("campaign", "load", str(folder)).returncode == 0
    # Each answer takes 0.3 s: at 5 posts a second one is in flight when the signal lands.
    fault = {"path": "/send", "method": "POST", "kind": "slow", "delay": 0.3, "times": 100}
    assert httpx.post(f"{simulator_url}/_simulator/faults", json=fault).status_code == 200

    process = massiva.start("send", "prova", "--rate", "5")
    deadline = time.monotonic() + 60
    while claimed(database) < 3:  # mid-send (start-up time varies with the machine's load)
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.02)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=60)

    name = signal.Signals(signum).name
    assert process.returncode == 128 + signum, stderr
    assert stdout.startswith(
        f"prova: stopped by {name} after the requests in flight; run the same command to go on.\n"
    ), stdout
    counts = massiva.counts()
    assert counts["sending"] == counts["unknown"] == 0  # every request's answer recorded
    assert 3 <= counts["sent"] < 40 and counts["sent"] + counts["pending"] == 40
    assert sum(posts(simulator_url).values()) == counts["sent"]
    with connect(database) as db:
        assert db.execute("SELECT count(*) FROM lease").fetchone()[0] == 0  # released

    again = massiva.run("send", "prova", "--rate", "50")

    assert again.returncode == 0, again.stderr
    assert posts(simulator_url) == dict.fromkeys(pec_addresses(40), 1)
