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


SECOND = "secondo@pecmassiva.com"


def pool_cli(app: Starlette, tmp_path: Path, rate: float = 1000.0) -> Invoke:
    """``massiva ...`` with two boxes, 5 recipients a day each, paced at ``rate`` posts a
    second each, both on the simulator."""
    app.state.simulator.add_mailbox(SECOND, "pw-secondo")
    pace = f"daily_limit = 5\nsend_rate = {rate}\n"
    run = cli(
        app,
        tmp_path,
        mailbox=f'{pace}[mailboxes."{SECOND}"]\npassword_env = "SECOND_PW"\n{pace}',
    )

    def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
        return run(*args, env={"SECOND_PW": "pw-secondo", **(env or {})})

    return invoke


@pytest.fixture
def pooled(app: Starlette, tmp_path: Path) -> Invoke:
    """The pool of :func:`pool_cli`, each box paced at one post every 20 seconds (a
    minute's window sends 3 from each)."""
    return pool_cli(app, tmp_path, rate=0.05)


def pool_folder(folder: Path, recipients: int, schedule: str = "") -> Path:
    """A campaign ("prova") from the pool of the demo box and :data:`SECOND`."""
    make_campaign(folder, pec_addresses(recipients))
    toml = folder / "campaign.toml"
    text = toml.read_text(encoding="utf-8").replace(
        'mailbox = "demo@pecmassiva.com"', f'mailboxes = ["demo@pecmassiva.com", "{SECOND}"]'
    )
    toml.write_text(text + (f"[schedule]\n{schedule}\n" if schedule else ""), encoding="utf-8")
    return folder


def test_check_counts_the_whole_pools_allowances(pooled: Invoke, tmp_path: Path) -> None:
    folder = pool_folder(tmp_path / "c", 13)

    report = as_json(pooled("campaign", "check", str(folder), "--json"))
    text = pooled("campaign", "check", str(folder)).stdout

    assert report["mailbox"] == "demo@pecmassiva.com"  # the first, as before pools
    assert report["mailboxes"] == ["demo@pecmassiva.com", SECOND]
    assert report["schedule"] is None
    assert (report["daily_limit"], report["monthly_limit"]) == (10, 60000)
    assert report["days_needed"] == 2  # 13 at 5 + 5 a day; one box alone: 3
    assert report["schedule_limits"] is False
    assert (
        "Sending needs 2 day(s) at 10 recipients a day and 60000 a month from the 2 mailboxes"
        f" of the pool (demo@pecmassiva.com, {SECOND}), their allowances added up; on the"
        " Standard plan it costs 0.65 EUR."
    ) in " ".join(text.split())


def test_check_says_when_the_schedule_limits_sending(pooled: Invoke, tmp_path: Path) -> None:
    folder = pool_folder(tmp_path / "c", 13, 'hours = "09:00-09:01"')

    report = as_json(pooled("campaign", "check", str(folder), "--json"))
    text = " ".join(pooled("campaign", "check", str(folder)).stdout.split())

    assert report["schedule"] == "every day 09:00-09:01 Europe/Rome"
    # A minute a day at one post every 20 s from each box: 6 a day, not the allowances' 10.
    assert (report["days_needed"], report["days_needed_without_schedule"]) == (3, 2)
    assert (report["schedule_limits"], report["not_sent_by_deadline"]) == (True, 0)
    assert (
        "Sending needs 3 day(s) at 10 recipients a day and 60000 a month from the 2 mailboxes"
        f" of the pool (demo@pecmassiva.com, {SECOND}), their allowances added up; the"
        " schedule (every day 09:00-09:01 Europe/Rome) limits it (without it: 2 day(s)); a"
        " rough estimate; on the Standard plan it costs 0.65 EUR."
    ) in text


def test_list_status_and_preview_show_the_pool_and_the_schedule(
    pooled: Invoke, tmp_path: Path
) -> None:
    folder = pool_folder(tmp_path / "c", 3, 'days = ["lun-ven"]')
    ok_load = pooled("campaign", "load", str(folder))
    assert ok_load.exit_code == 0, ok_load.output

    listed = json.loads(pooled("campaign", "list", "--json").stdout)
    table = pooled("campaign", "list").stdout
    status = as_json(pooled("campaign", "status", "prova", "--json"))
    shown = pooled("campaign", "status", "prova").stdout
    preview = pooled("campaign", "preview", str(folder)).stdout

    (campaign,) = listed
    assert campaign["mailbox"] == "demo@pecmassiva.com"
    assert campaign["mailboxes"] == ["demo@pecmassiva.com", SECOND]
    assert campaign["schedule"] == "Mon-Fri all day Europe/Rome"
    assert "demo@pecmassiva.com" in table and SECOND in table and "Mon-Fri" in table
    assert (status["mailboxes"], status["schedule"]) == (
        campaign["mailboxes"],
        "Mon-Fri all day Europe/Rome",
    )
    assert status["sent_from"] == {"demo@pecmassiva.com": 0, SECOND: 0}
    assert (status["past_deadline"], status["not_sent_by_deadline"]) == (False, 0)
    assert "Schedule: Mon-Fri all day Europe/Rome." in shown
    assert f"Sent from: demo@pecmassiva.com 0, {SECOND} 0." in shown
    assert "From:        demo@pecmassiva.com\n" in preview
    assert (
        f"Pool:        demo@pecmassiva.com, {SECOND} (each recipient is sent from one of them)\n"
    ) in preview
    assert "Schedule:    Mon-Fri all day Europe/Rome\n" in preview


def test_a_test_send_of_a_pool_goes_from_its_first_mailbox(app: Starlette, tmp_path: Path) -> None:
    invoke = pool_cli(app, tmp_path)
    folder = pool_folder(tmp_path / "c", 2)

    sent = as_json(invoke("campaign", "test", str(folder), "--to", "prova@legalmail.it", "--json"))

    simulator: Simulator = app.state.simulator
    (record,) = simulator.sends
    assert (record.mailbox, record.message_id) == ("demo@pecmassiva.com", sent["message_id"])
