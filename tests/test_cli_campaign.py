"""Campaigns from the command line: check, preview, test, load, send, status, pause."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import Result
from starlette.applications import Starlette

from massiva.simulator import SimClock, Simulator, SimulatorSettings, create_app
from tests.cli import Invoke, cli
from tests.conftest import START
from tests.test_sender import make_campaign, pec_addresses

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def app() -> Starlette:
    return create_app(SimulatorSettings(send_rate=None), clock=SimClock(start=START, speed=0))


@pytest.fixture
def invoke(app: Starlette, tmp_path: Path) -> Invoke:
    """``massiva ...`` with a config naming the demo box's password, on the simulator."""
    return cli(app, tmp_path, mailbox="daily_limit = 5\n")


def as_json(result: Result) -> dict[str, object]:
    assert result.exit_code == 0, result.output
    value: dict[str, object] = json.loads(result.stdout)
    return value


@pytest.fixture
def example(tmp_path: Path) -> Path:
    return Path(shutil.copytree(ROOT / "campaigns" / "example", tmp_path / "example"))


def test_check_reports_counts_days_cost_and_rejects(invoke: Invoke, tmp_path: Path) -> None:
    folder = make_campaign(tmp_path / "c", [*pec_addresses(11), "rotto@", "UTENTE000@legalmail.it"])

    report = as_json(invoke("campaign", "check", str(folder), "--json"))

    assert (report["rows"], report["valid"], report["rejected"], report["duplicates"]) == (
        13,
        11,
        1,
        1,
    )
    assert report["rejects"] == [
        {"row": 13, "column": "pec", "reason": report["rejects"][0]["reason"]},  # type: ignore[index]
        {"row": 14, "column": "pec", "reason": "duplicate of row 2"},
    ]
    assert report["days_needed"] == 3  # 11 recipients at 5 a day
    assert report["cost_eur_standard_plan"] == 0.55
    assert (folder / "rejects.csv").read_text(encoding="utf-8-sig").startswith("row")


def test_check_exits_1_when_nothing_can_be_sent(invoke: Invoke, tmp_path: Path) -> None:
    folder = make_campaign(tmp_path / "c", ["rotto@", "anche rotto"])

    result = invoke("campaign", "check", str(folder))

    assert result.exit_code == 1
    assert "0 valid, 2 rejected" in result.stdout


def test_the_example_checks_and_previews(invoke: Invoke, example: Path, tmp_path: Path) -> None:
    checked = as_json(invoke("campaign", "check", str(example), "--json"))
    preview = invoke(
        "campaign", "preview", str(example), "--row", "2", "--html-out", str(tmp_path / "p.html")
    )

    assert checked["rejected"] == checked["duplicates"] == 0
    assert (checked["empty_fields"], checked["same_address"]["rows"]) == ([], 0)
    assert (checked["rejects_file"], checked["warnings_file"]) == (None, None)
    assert not (example / "rejects.csv").exists() and not (example / "warnings.csv").exists()
    assert preview.exit_code == 0, preview.output
    assert "Row:         2\n" in preview.stdout
    assert "Subject:" in preview.stdout
    assert (tmp_path / "p.html").read_text(encoding="utf-8").lstrip().startswith("<")


def test_load_twice_adds_nothing_and_a_changed_csv_adds_only_the_new(
    invoke: Invoke, tmp_path: Path
) -> None:
    folder = make_campaign(tmp_path / "c", pec_addresses(3))
    first = as_json(invoke("campaign", "load", str(folder), "--json"))
    again = as_json(invoke("campaign", "load", str(folder), "--json"))
    make_campaign(tmp_path / "c", pec_addresses(5))
    changed = invoke("campaign", "load", str(folder), "--json")
    status = as_json(invoke("campaign", "status", "prova", "--json"))

    assert (first["created"], first["added"]) == (True, 3)
    assert (again["unchanged"], again["added"]) == (True, 0)
    assert "The recipients file changed since campaign 'prova' was loaded" in changed.stderr
    assert (as_json(changed)["added"], as_json(changed)["already_loaded"]) == (2, 3)
    assert status["counts"] == {
        "pending": 5,
        "sending": 0,
        "sent": 0,
        "accepted": 0,
        "delivered": 0,
        "failed": 0,
        "rejected": 0,
        "unknown": 0,
        "expired": 0,
    }


def test_changed_templates_are_refused_at_load(invoke: Invoke, tmp_path: Path) -> None:
    folder = make_campaign(tmp_path / "c", pec_addresses(2))
    invoke("campaign", "load", str(folder))
    toml = folder / "campaign.toml"
    toml.write_text(toml.read_text().replace("Gentile", "Caro"), encoding="utf-8")

    result = invoke("campaign", "load", str(folder))

    assert result.exit_code == 2
    assert "changed since it was loaded" in result.stderr


def test_test_send_goes_to_the_test_address_only(
    invoke: Invoke, example: Path, app: Starlette
) -> None:
    sent = as_json(invoke("campaign", "test", str(example), "--to", "prova@legalmail.it", "--json"))

    simulator: Simulator = app.state.simulator
    assert simulator.post_counts() == {"prova@legalmail.it": 1}
    (record,) = simulator.sends
    assert record.subject.startswith("[PROVA] ")
    assert record.message_id == sent["message_id"]


def test_send_stops_at_the_allowance_and_pause_resume_cancel(
    invoke: Invoke, tmp_path: Path, app: Starlette
) -> None:
    folder = make_campaign(tmp_path / "c", pec_addresses(7))
    invoke("campaign", "load", str(folder))

    allowance_spent = invoke("send", "prova", "--json")
    sent = json.loads(allowance_spent.stdout)
    paused = invoke("campaign", "pause", "prova")
    paused_run = invoke("send", "prova", "--json")
    while_paused = json.loads(paused_run.stdout)
    invoke("campaign", "resume", "prova")
    cancelled = invoke("campaign", "cancel", "prova", "--yes")
    resume_cancelled = invoke("campaign", "resume", "prova")

    assert (allowance_spent.exit_code, paused_run.exit_code) == (7, 6)
    assert (sent["stopped"], sent["sent"]) == ("allowance", 5)  # daily_limit = 5
    assert sent["renews_at"] is not None
    assert paused.stdout == "Campaign 'prova' is now paused.\n"
    assert (while_paused["stopped"], while_paused["sent"]) == ("paused", 0)
    assert cancelled.exit_code == 0
    assert resume_cancelled.exit_code == 1
    simulator: Simulator = app.state.simulator
    assert simulator.post_counts() == dict.fromkeys(pec_addresses(5), 1)


def test_send_of_an_unknown_campaign(invoke: Invoke) -> None:
    result = invoke("send", "nessuna")

    assert result.exit_code == 1
    assert "no campaign called 'nessuna'" in result.stderr


def test_send_prints_progress_lines_off_a_terminal_and_says_when_it_can_go_on(
    invoke: Invoke, tmp_path: Path
) -> None:
    folder = make_campaign(tmp_path / "c", pec_addresses(6))
    invoke("campaign", "load", str(folder))

    result = invoke("send", "prova")

    assert result.exit_code == 7, result.output  # the allowance is spent
    assert "prova: sent " in result.stderr and "allowance left" in result.stderr
    assert re.search(  # the next midnight in Rome, with Rome's offset
        r"prova: the allowance is spent; sending can go on from \d{4}-\d\d-\d\d"
        r" 00:00:00\+0[12]:00\.",
        result.stdout,
    ), result.stdout
    assert "This run: 5 sent, 0 rejected, 0 unknown" in result.stdout


def test_send_with_a_wrong_password_exits_3_and_loses_no_recipient(
    invoke: Invoke, tmp_path: Path
) -> None:
    folder = make_campaign(tmp_path / "c", pec_addresses(2))
    invoke("campaign", "load", str(folder))

    result = invoke("send", "prova", env={"DEMO_PW": "sbagliata"})
    status = as_json(invoke("campaign", "status", "prova", "--json"))

    assert result.exit_code == 3
    assert "sending stopped: POST /send: HTTP 401" in result.stderr
    assert "sbagliata" not in result.output
    assert status["counts"]["pending"] == 2  # type: ignore[index]
