"""``massiva campaign test``: a test send is recorded like any send, allowance and
receipts included."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from starlette.applications import Starlette

from massiva.simulator import Simulator
from tests.cli import Invoke, cli, real_clock_app
from tests.test_sender import make_campaign

ADDRESSES = ["mario.rossi@legalmail.it", "luigi.verdi@legalmail.it"]


@pytest.fixture
def app() -> Starlette:
    return real_clock_app()


@pytest.fixture
def invoke(app: Starlette, tmp_path: Path) -> Invoke:
    return cli(app, tmp_path, mailbox="daily_limit = 3\nsend_rate = 100.0\n")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_campaign(tmp_path / "c", ADDRESSES)


def as_json(invoke: Invoke, *args: str) -> dict[str, object]:
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    value: dict[str, object] = json.loads(result.stdout)
    return value


def test_a_test_send_is_a_campaign_of_its_own_whose_receipts_are_its_own(
    invoke: Invoke, folder: Path, app: Starlette
) -> None:
    sent = as_json(
        invoke, "campaign", "test", str(folder), "--to", " Prova@Legalmail.it", "--row", "3"
    )
    app.state.simulator.clock.advance(600)
    reconciled = as_json(invoke, "reconcile")

    assert sent["campaign"] == "prova:prova-1"
    assert (sent["to"], sent["row"], sent["state"]) == ("prova@legalmail.it", 3, "sent")
    simulator: Simulator = app.state.simulator
    (record,) = simulator.sends
    assert record.recipients == ("prova@legalmail.it",)
    assert record.subject.startswith("[PROVA] ")
    assert record.message_id == sent["message_id"]
    (report,) = reconciled["mailboxes"]  # type: ignore[misc]
    assert report["orphans"] == []
    assert report["moved"] == {"delivered": 1}
    status = as_json(invoke, "campaign", "status", "prova:prova-1")
    assert {k: v for k, v in status["counts"].items() if v} == {"delivered": 1}  # type: ignore[attr-defined]


def test_test_sends_count_against_the_allowance(
    invoke: Invoke, folder: Path, app: Starlette
) -> None:
    first = as_json(invoke, "campaign", "test", str(folder), "--to", "prova@legalmail.it")
    second = as_json(invoke, "campaign", "test", str(folder), "--to", "prova@legalmail.it")
    invoke("campaign", "load", str(folder))
    spent = invoke("send", "prova", "--json")
    run = json.loads(spent.stdout)

    assert (first["campaign"], second["campaign"]) == ("prova:prova-1", "prova:prova-2")
    # daily_limit = 3: the two tests leave room for one of the campaign's two recipients.
    assert (spent.exit_code, run["stopped"], run["sent"]) == (7, "allowance", 1)
    simulator: Simulator = app.state.simulator
    assert sum(simulator.post_counts().values()) == 3


def test_a_test_past_the_allowance_is_recorded_and_not_sent(
    invoke: Invoke, folder: Path, app: Starlette
) -> None:
    for _ in range(3):
        as_json(invoke, "campaign", "test", str(folder), "--to", "prova@legalmail.it")

    result = invoke("campaign", "test", str(folder), "--to", "prova@legalmail.it")

    assert result.exit_code == 7
    assert re.fullmatch(
        r"Row 2's message to prova@legalmail\.it is not sent: the allowance is spent until"
        r" \d{4}-\d\d-\d\d 00:00:00\+0[12]:00; recorded as campaign prova:prova-4"
        r" \(massiva send prova:prova-4 to go on\)\.\n",
        result.stdout,
    )
    simulator: Simulator = app.state.simulator
    assert simulator.post_counts() == {"prova@legalmail.it": 3}


def test_a_bad_test_address_is_refused_before_anything(invoke: Invoke, folder: Path) -> None:
    result = invoke("campaign", "test", str(folder), "--to", "prova@@legalmail.it")

    assert result.exit_code == 2
    assert result.stderr == 'Error: --to prova@@legalmail.it: more than one "@"\n'
    assert invoke("campaign", "list", "--json").stdout == "[]\n"
