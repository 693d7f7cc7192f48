"""``massiva campaign retry``: a follow-up campaign of the failed or expired recipients,
which checks, loads and sends like any other."""

from __future__ import annotations

import csv
import json
from collections.abc import Collection
from pathlib import Path

import pytest
from starlette.applications import Starlette

from massiva import retry
from massiva.simulator import SimClock, Simulator, SimulatorSettings, create_app
from tests.cli import Invoke, cli, on
from tests.conftest import START
from tests.db import connect
from tests.test_report_support import FORMULA, ok, people, send_all, settle, write_folder

CODES = [f"C{i:04d}" for i in range(10)]
BODY = '{% extends "pec_base.html" %}{% block contenuto %}<p>Gentile {{ nome }}</p>{% endblock %}'


@pytest.fixture
def app() -> Starlette:
    return create_app(SimulatorSettings(send_rate=None), clock=SimClock(start=START, speed=0))


@pytest.fixture
def invoke(app: Starlette, tmp_path: Path, database: Path | str) -> Invoke:
    """``massiva ...`` on the test's database, on each engine."""
    return on(database, cli(app, tmp_path))


@pytest.fixture
def folder(invoke: Invoke, tmp_path: Path, database: Path | str) -> Path:
    """A campaign of 10 with a body file extending the shared layout, a shared attachment
    and one attachment per recipient; sent and settled (row 3 failed, row 5 expired)."""
    folder = write_folder(
        tmp_path / "avvisi",
        people(10),
        body='body_file = "corpo.html"',
        extra='attachments = ["informativa.pdf"]\nattachment_column = "allegato"\n',
        files={
            "corpo.html": BODY.encode(),
            "informativa.pdf": b"%PDF-1.4 informativa",
            **{f"allegati/{code}.pdf": f"%PDF-1.4 {code}".encode() for code in CODES},
        },
    )
    send_all(invoke, folder)
    settle(database)
    return folder


def files_in(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_the_follow_up_holds_just_those_recipients_and_sends_like_any_campaign(
    invoke: Invoke, folder: Path, tmp_path: Path, app: Starlette
) -> None:
    result = ok(invoke("campaign", "retry", "prova", "--failed", "--expired"))

    follow_up = tmp_path / "avvisi-retry-1"
    assert f"Wrote the follow-up campaign prova-retry-1 in {follow_up}/:" in result.stdout
    assert "2 recipients (1 failed, 1 expired), with their original fields" in result.stdout
    assert result.stdout.endswith(
        f"Next:\n  massiva campaign check {follow_up}\n  massiva campaign load {follow_up}\n"
        "  massiva send prova-retry-1\n"
    )
    assert files_in(follow_up) == [
        "allegati/C0001.pdf",
        "allegati/C0003.pdf",
        "campaign.toml",
        "corpo.html",
        "destinatari.csv",
        "informativa.pdf",
    ]
    with (follow_up / "destinatari.csv").open(encoding="utf-8-sig", newline="") as file:
        rows = list(csv.reader(file, delimiter=";"))
    assert rows == [
        ["pec", "nome", "codice", "allegato"],
        ["utente001@legalmail.it", "Utente 1", "C0001", "allegati/C0001.pdf"],
        ["utente003@legalmail.it", "Utente 3", "C0003", "allegati/C0003.pdf"],
    ]
    assert 'name = "prova-retry-1"' in (follow_up / "campaign.toml").read_text()

    checked = json.loads(ok(invoke("campaign", "check", str(follow_up), "--json")).stdout)
    send_all(invoke, follow_up, "prova-retry-1")

    assert (checked["valid"], checked["rejected"]) == (2, 0)
    simulator: Simulator = app.state.simulator
    counts = simulator.post_counts()
    assert counts["utente001@legalmail.it"] == counts["utente003@legalmail.it"] == 2
    assert counts["utente000@legalmail.it"] == 1
    first, again = [s for s in simulator.sends if s.recipients == ("utente003@legalmail.it",)]
    assert (again.subject, again.body, again.attachments) == (  # the same message
        first.subject,
        first.body,
        first.attachments,
    )
    assert again.subject == "Avviso C0003" and len(again.attachments) == 2


def test_a_recipient_is_not_put_in_two_follow_ups(invoke: Invoke, folder: Path) -> None:
    ok(invoke("campaign", "retry", "prova", "--failed"))
    send_all(invoke, folder.with_name("avvisi-retry-1"), "prova-retry-1")

    twice = invoke("campaign", "retry", "prova", "--failed")
    expired = ok(invoke("campaign", "retry", "prova", "--expired"))

    assert twice.exit_code == 1
    assert (
        "campaign 'prova' has no failed recipient to retry (1 are already in prova-retry-1:"
        " retry that campaign instead)"
    ) in twice.stderr
    assert "prova-retry-2" in expired.stdout  # -retry-1 is taken: numbers go on
    assert not folder.with_name("avvisi-retry-3").exists()


def test_a_second_notice_to_an_address_already_in_a_follow_up_is_not_lost(
    invoke: Invoke, tmp_path: Path, database: Path | str
) -> None:
    rows = people(10)
    rows[3] = (rows[1][0], "Utente 3", "C0003")  # rows 3 and 5: one address, two notices
    folder = write_folder(tmp_path / "avvisi", rows)
    send_all(invoke, folder)
    settle(database)  # row 3 failed, row 5 expired
    ok(invoke("campaign", "retry", "prova", "--failed"))
    send_all(invoke, folder.with_name("avvisi-retry-1"), "prova-retry-1")

    expired = json.loads(ok(invoke("campaign", "retry", "prova", "--expired", "--json")).stdout)

    assert (expired["follow_up"], expired["recipients"]) == ("prova-retry-2", 1)
    with (folder.with_name("avvisi-retry-2") / "destinatari.csv").open(encoding="utf-8-sig") as f:
        assert [(r["pec"], r["codice"]) for r in csv.DictReader(f, delimiter=";")] == [
            (rows[1][0], "C0003")
        ]
    toml = (folder.with_name("avvisi-retry-2") / "campaign.toml").read_text(encoding="utf-8")
    assert 'dedupe = "address+keys"\nstrict_empty = false\n' in toml


def test_a_follow_up_of_a_follow_up_takes_the_next_number(
    invoke: Invoke, folder: Path, tmp_path: Path, database: Path | str
) -> None:
    ok(invoke("campaign", "retry", "prova", "--failed", "--expired"))
    send_all(invoke, folder.with_name("avvisi-retry-1"), "prova-retry-1")
    with connect(database) as conn:
        conn.execute(
            "UPDATE recipient SET state = 'failed', reason = 'again'"
            " WHERE address = 'utente001@legalmail.it'"
            " AND campaign_id = (SELECT id FROM campaign WHERE name = 'prova-retry-1')"
        )

    result = ok(invoke("campaign", "retry", "prova-retry-1", "--failed", "--json"))

    done = json.loads(result.stdout)
    assert (done["follow_up"], done["recipients"]) == ("prova-retry-2", 1)
    assert done["folder"] == str(tmp_path / "avvisi-retry-2")
    assert done["next"][-1] == "massiva send prova-retry-2"


def test_the_original_fields_are_kept_exactly(
    invoke: Invoke, tmp_path: Path, database: Path | str
) -> None:
    folder = write_folder(tmp_path / "c", people(10))
    send_all(invoke, folder)
    settle(database)
    with connect(database) as conn:
        conn.execute("UPDATE recipient SET state = 'expired' WHERE address LIKE 'utente002%'")

    ok(invoke("campaign", "retry", "prova", "--expired"))

    with (tmp_path / "c-retry-1" / "destinatari.csv").open(encoding="utf-8-sig") as file:
        rows = list(csv.reader(file, delimiter=";"))
    assert rows[1] == ["utente002@legalmail.it", FORMULA, "C0002"]  # input, not a report


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("prova",), 2, "say which recipients to retry: --failed, --expired, or both"),
        (("nessuna", "--failed"), 1, "no campaign called 'nessuna': see massiva campaign list"),
    ],
)
def test_mistakes_say_what_and_how_to_fix(
    invoke: Invoke, folder: Path, args: tuple[str, ...], code: int, message: str
) -> None:
    result = invoke("campaign", "retry", *args)

    assert result.exit_code == code
    assert message in result.stderr


def test_changed_templates_are_refused_and_nothing_is_written(
    invoke: Invoke, folder: Path, tmp_path: Path
) -> None:
    (folder / "corpo.html").write_text(BODY.replace("Gentile", "Caro"), encoding="utf-8")

    result = invoke("campaign", "retry", "prova", "--failed")

    assert result.exit_code == 2
    assert "changed since campaign 'prova' was loaded" in result.stderr
    assert "put the loaded versions back" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("avvisi", "."))) == [
        "avvisi"
    ]


def test_nothing_to_retry(invoke: Invoke, tmp_path: Path) -> None:
    send_all(invoke, write_folder(tmp_path / "c", people(3)))

    result = invoke("campaign", "retry", "prova", "--failed", "--expired")

    assert result.exit_code == 1
    assert "campaign 'prova' has no failed or expired recipient to retry" in result.stderr
    assert not (tmp_path / "c-retry-1").exists()


def test_an_attachment_swapped_for_a_link_outside_is_refused_and_nothing_is_written(
    invoke: Invoke, folder: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "segreto.pdf"
    outside.write_bytes(b"%PDF-1.4 not for them")
    own = folder / "allegati" / "C0001.pdf"  # row 3's, which failed
    own.unlink()
    own.symlink_to(outside)

    result = invoke("campaign", "retry", "prova", "--failed")

    assert result.exit_code == 2
    assert result.stderr == (
        f'Error: "allegati/C0001.pdf" in {folder} is not the file that was loaded: it leads'
        " outside the campaign folder through a symbolic link; put the loaded file back in"
        " its place, then retry\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("avvisi", "."))) == [
        "avvisi"
    ]


def test_an_attachment_swapped_after_the_check_is_not_copied(
    invoke: Invoke, folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path / "segreto.pdf"
    outside.write_bytes(b"%PDF-1.4 not for them")
    own = folder / "allegati" / "C0001.pdf"
    checked = retry._missing

    def check_then_swap(where: Path, names: Collection[str]) -> list[str]:
        missing = checked(where, names)
        own.unlink()  # swapped between the check and the copy
        own.symlink_to(outside)
        return missing

    monkeypatch.setattr(retry, "_missing", check_then_swap)

    result = invoke("campaign", "retry", "prova", "--failed")

    assert result.exit_code == 2
    assert "is not the file that was loaded: it leads outside the campaign folder" in (
        result.stderr
    )
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("avvisi", "."))) == [
        "avvisi"
    ]
