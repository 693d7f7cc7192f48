"""A loaded campaign's guards (massiva/loaded.py): cancelled is final, and what was
checked and loaded is what is sent. From the command line, and from the library."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from starlette.applications import Starlette

from massiva.api import PecMassivaClient
from massiva.campaign import load_spec
from massiva.loaded import CampaignChanged
from massiva.loading import load_campaign
from massiva.sender import Sender, SendOptions
from massiva.simulator import SimClock, Simulator, SimulatorSettings, create_app
from massiva.store import Store
from tests.cli import Invoke, cli
from tests.conftest import START
from tests.db import connect
from tests.test_sender import MAILBOX, pec_addresses

BODY = "<p>Gentile {{ nome }}</p>\n"


def campaign_with_body_file(folder: Path, addresses: list[str]) -> Path:
    """Campaign 'prova', its body a template file (corpo.html) in the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "campaign.toml").write_text(
        f'name = "prova"\nmailbox = "{MAILBOX}"\nsubject = "Avviso {{{{ codice }}}}"\n'
        'body_file = "corpo.html"\nrecipients = "destinatari.csv"\naddress_column = "pec"\n',
        encoding="utf-8",
    )
    (folder / "corpo.html").write_text(BODY, encoding="utf-8")
    rows = [f"{a};Utente {i};C{i:04d}" for i, a in enumerate(addresses)]
    (folder / "destinatari.csv").write_text(
        "pec;nome;codice\n" + "\n".join(rows) + "\n", encoding="utf-8"
    )
    return folder


def changed_message(folder: Path) -> str:
    return (
        f"the templates or shared attachments in {folder.resolve()} changed since campaign"
        " 'prova' was loaded: restore them, or load the folder as a new campaign (a new name"
        " in campaign.toml)"
    )


def recipients(db: Store | Path | str) -> list[tuple[str, str]]:
    with connect(db) as conn:
        return conn.execute("SELECT address, state FROM recipient ORDER BY id").fetchall()


def campaign_state(db: Store | Path | str) -> str:
    with connect(db) as conn:
        (state,) = conn.execute("SELECT state FROM campaign WHERE name = 'prova'").fetchone()
    return str(state)


def allowance_rows(db: Store | Path | str) -> list[tuple[str, int]]:
    with connect(db) as conn:
        return conn.execute("SELECT period, used FROM allowance WHERE used > 0").fetchall()


@pytest.fixture
def cli_app() -> Starlette:
    return create_app(SimulatorSettings(send_rate=None), clock=SimClock(start=START, speed=0))


@pytest.fixture
def invoke(cli_app: Starlette, tmp_path: Path, database: Path | str) -> Invoke:
    """``massiva --db <database> ...`` (a SQLite file or a PostgreSQL URL) on the
    simulator."""
    base = cli(cli_app, tmp_path, mailbox="send_rate = 100.0\n")

    def run(*args: str, **options: Any) -> Result:
        return base("--db", str(database), *args, **options)

    return run


@pytest.fixture
def loaded(invoke: Invoke, tmp_path: Path) -> Path:
    """Campaign 'prova' to three recipients, loaded; its folder."""
    folder = campaign_with_body_file(tmp_path / "c", pec_addresses(3))
    result = invoke("campaign", "load", str(folder))
    assert result.exit_code == 0, result.output
    return folder


def said(result: Result, code: int) -> str:
    assert result.exit_code == code, result.output
    return str(result.stdout if code == 0 else result.stderr)


def test_a_cancelled_campaign_stays_cancelled(
    invoke: Invoke, loaded: Path, database: Path | str, cli_app: Starlette
) -> None:
    cancelled = invoke("campaign", "cancel", "prova", "--yes")
    again = invoke("campaign", "cancel", "prova", "--yes")
    resumed = invoke("campaign", "resume", "prova")
    paused = invoke("campaign", "pause", "prova")
    resumed_json = invoke("campaign", "resume", "prova", "--json")
    sent = invoke("send", "prova", "--json")

    final = "campaign 'prova' is cancelled, and that is final"
    assert said(cancelled, 0) == "Campaign 'prova' is now cancelled.\n"
    assert said(again, 0) == "Campaign 'prova' is now cancelled.\n"  # cancelling twice is fine
    assert said(resumed, 1) == f"Error: {final}\n"
    assert said(paused, 1) == f"Error: {final}\n"
    assert resumed_json.exit_code == 1
    assert json.loads(resumed_json.stdout) == {"error": {"message": final, "exit_code": 1}}
    assert campaign_state(database) == "cancelled"
    # A send of it posts nothing and counts nothing.
    assert sent.exit_code == 6, sent.output  # cancelled: its own exit code
    summary = json.loads(sent.stdout)
    assert (summary["stopped"], summary["posted"], summary["sent"]) == ("cancelled", 0, 0)
    simulator: Simulator = cli_app.state.simulator
    assert simulator.post_counts() == {}
    assert {state for _, state in recipients(database)} == {"pending"}
    assert allowance_rows(database) == []


def test_send_refuses_a_campaign_whose_body_template_changed_after_loading(
    invoke: Invoke, loaded: Path, database: Path | str, cli_app: Starlette
) -> None:
    (loaded / "corpo.html").write_text("<p>Caro {{ nome }}</p>\n", encoding="utf-8")

    refused = invoke("send", "prova")
    refused_json = invoke("send", "prova", "--json")

    message = f"nothing was sent: {changed_message(loaded)}"
    assert said(refused, 2) == f"Error: {message}\n"
    assert refused_json.exit_code == 2
    assert json.loads(refused_json.stdout) == {"error": {"message": message, "exit_code": 2}}
    simulator: Simulator = cli_app.state.simulator
    assert simulator.post_counts() == {}
    assert {state for _, state in recipients(database)} == {"pending"}
    assert allowance_rows(database) == []

    # Restored as the message says, the same campaign sends, with the body as loaded.
    (loaded / "corpo.html").write_text(BODY, encoding="utf-8")
    said(invoke("send", "prova"), 0)
    assert simulator.post_counts() == dict.fromkeys(pec_addresses(3), 1)
    assert sorted(s.body for s in simulator.sends) == [
        f"<p>Gentile Utente {i}</p>" for i in range(3)
    ]


async def test_the_sender_itself_refuses_a_changed_campaign_and_posts_nothing(
    store: Store, demo: PecMassivaClient, simulator: Simulator, clock: SimClock, tmp_path: Path
) -> None:
    folder = campaign_with_body_file(tmp_path / "c", pec_addresses(3))
    await load_campaign(store, load_spec(folder))
    campaign = await store.campaigns.get("prova")
    assert campaign is not None
    (folder / "corpo.html").write_text("<p>Caro {{ nome }}</p>\n", encoding="utf-8")
    spec = load_spec(folder)  # a caller that reads the folder again, and sends what it finds

    sender = Sender(store, demo, campaign, spec, SendOptions(rate=None), clock=clock.now)
    with pytest.raises(CampaignChanged) as refused:
        await sender.run()

    assert str(refused.value) == changed_message(folder)
    assert simulator.post_counts() == {}
    assert {state for _, state in recipients(store)} == {"pending"}
    assert allowance_rows(store) == []
    # It stopped before taking the mailbox: no lease is left behind.
    with connect(store) as conn:
        assert conn.execute("SELECT count(*) FROM lease").fetchone() == (0,)
