"""``massiva recipient ADDRESS``: one person's history across campaigns."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from starlette.applications import Starlette

from massiva.report.rows import rome
from massiva.schedule import Schedule
from tests.cli import Invoke, cli, on, real_clock_app
from tests.db import connect
from tests.test_sender import make_campaign

MARIO = "mario.rossi@legalmail.it"


@pytest.fixture
def app() -> Starlette:
    return real_clock_app()


@pytest.fixture
def invoke(app: Starlette, tmp_path: Path, database: Path | str) -> Invoke:
    """``massiva ...`` on the test's database, on each engine."""
    return on(database, cli(app, tmp_path, mailbox="send_rate = 100.0\n"))


@pytest.fixture
def sent_twice(invoke: Invoke, tmp_path: Path, app: Starlette, database: Path | str) -> Path | str:
    """Mario in two campaigns (row 2 of the first, row 3 of the second), both sent and
    their receipts read; the database."""
    first = make_campaign(tmp_path / "a", [MARIO, "luigi@legalmail.it"], name="marzo")
    second = make_campaign(tmp_path / "b", ["anna@legalmail.it", MARIO], name="aprile")
    for folder, name in ((first, "marzo"), (second, "aprile")):
        assert invoke("campaign", "load", str(folder)).exit_code == 0
        assert invoke("send", name, "--json").exit_code == 0
    app.state.simulator.clock.advance(600)
    assert invoke("reconcile").exit_code == 0
    return database


def test_the_history_of_one_address_across_campaigns(
    invoke: Invoke, sent_twice: Path | str
) -> None:
    result = invoke("recipient", " Mario.Rossi@Legalmail.it ", "--json")

    assert result.exit_code == 0, result.output
    history = json.loads(result.stdout)
    assert history["address"] == MARIO
    assert [(s["campaign"], s["row"], s["state"]) for s in history["sendings"]] == [
        ("marzo", 2, "delivered"),
        ("aprile", 3, "delivered"),
    ]
    with connect(sent_twice) as conn:
        stored = conn.execute(
            "SELECT r.message_id, r.sent_at, r.delivered_at FROM recipient r"
            " JOIN campaign c ON c.id = r.campaign_id WHERE c.name = 'marzo' AND r.address = ?",
            (MARIO,),
        ).fetchone()
        inbox_ids = [
            row[0]
            for row in conn.execute(
                "SELECT x.inbox_id FROM receipt x JOIN recipient r ON r.id = x.recipient_id"
                " JOIN campaign c ON c.id = r.campaign_id WHERE c.name = 'marzo'"
                " AND r.address = ? ORDER BY x.inbox_id",
                (MARIO,),
            )
        ]
    first = history["sendings"][0]
    assert (first["message_id"], first["sent_at"], first["delivered_at"]) == (
        stored[0],
        rome(stored[1]),
        rome(stored[2]),
    )
    assert first["subject"] == "Avviso C0000"
    assert [(r["inbox_id"], r["kind"]) for r in first["receipts"]] == [
        (inbox_ids[0], "accepted"),
        (inbox_ids[1], "delivered"),
    ]


def test_the_history_reads_for_a_person(invoke: Invoke, sent_twice: Path | str) -> None:
    result = invoke("recipient", MARIO)

    lines = result.stdout.splitlines()
    assert lines[0] == f"{MARIO}: 2 sending(s)."
    assert lines[2].startswith("marzo (row 2, from demo@pecmassiva.com): delivered")
    assert "  subject    Avviso C0000" in lines
    assert sum(line.startswith("  receipt    #") for line in lines) == 4
    assert all("+01:00" in line or "+02:00" in line for line in lines if "  sent " in line)


def test_an_address_nobody_wrote_to_exits_1_and_a_bad_one_2(invoke: Invoke) -> None:
    nobody = invoke("recipient", "nessuno@legalmail.it")
    bad = invoke("recipient", "nessuno@")

    assert (nobody.exit_code, nobody.stdout) == (
        1,
        "No campaign has written to nessuno@legalmail.it.\n",
    )
    assert bad.exit_code == 2
    assert bad.stderr == "Error: nessuno@ is not an address: no domain\n"


SECOND = "secondo@pecmassiva.com"


def test_each_sending_names_its_box_and_an_unsent_one_says_so(
    app: Starlette, tmp_path: Path, database: Path | str
) -> None:
    """A pool of two boxes sending one a day each: of three recipients the third is never
    claimed, and the deadline passes."""
    app.state.simulator.add_mailbox(SECOND, "pw-secondo")
    run = on(
        database,
        cli(
            app,
            tmp_path,
            mailbox='daily_limit = 1\n[mailboxes."secondo@pecmassiva.com"]\n'
            'password_env = "SECOND_PW"\ndaily_limit = 1\n',
        ),
    )
    env = {"SECOND_PW": "pw-secondo"}
    folder = make_campaign(tmp_path / "p", ["luigi@legalmail.it", MARIO, "anna@legalmail.it"])
    toml = folder / "campaign.toml"
    toml.write_text(
        toml.read_text(encoding="utf-8").replace(
            'mailbox = "demo@pecmassiva.com"', f'mailboxes = ["demo@pecmassiva.com", "{SECOND}"]'
        ),
        encoding="utf-8",
    )
    assert run("campaign", "load", str(folder), env=env).exit_code == 0
    assert json.loads(run("send", "prova", "--json", env=env).stdout)["sent"] == 2
    with connect(database) as conn:
        boxes = dict(conn.execute("SELECT address, mailbox FROM recipient"))
        conn.execute(
            "UPDATE campaign SET schedule = ?",
            (Schedule(not_after=datetime(2026, 3, 10, 17, 0, tzinfo=UTC)).to_json(),),
        )

    mario = run("recipient", MARIO, env=env)
    anna = run("recipient", "anna@legalmail.it", env=env)
    as_json = json.loads(run("recipient", "anna@legalmail.it", "--json", env=env).stdout)

    assert sorted(boxes.values(), key=str) == [None, "demo@pecmassiva.com", SECOND]
    assert mario.stdout.splitlines()[2] == f"prova (row 3, from {boxes[MARIO]}): sent"
    assert anna.stdout.splitlines()[2] == (
        "prova (row 4, not sent yet): pending, not sent by the deadline"
    )
    (sending,) = as_json["sendings"]
    assert (sending["mailbox"], sending["state"], sending["not_sent_by_deadline"]) == (
        None,
        "pending",
        True,
    )
