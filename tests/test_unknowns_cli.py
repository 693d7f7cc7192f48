"""``massiva unknowns`` from the command line: the posts of unknown outcome with what the
inbox says of each, an operator's decision on one (recorded with who and when), and the
refusals, with their exact words and exit codes.

The recipients are made ``unknown`` for real: a ``massiva send`` whose answer the
simulator drops (after recording the post, or before), or senders that claimed and died.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import Result
from starlette.applications import Starlette

from massiva.api import ApiSession, PecMassivaClient, RetryPolicy
from massiva.quota import day_key, month_key
from massiva.simulator import Fault, Simulator
from massiva.store import Claimed, Store
from massiva.times import from_db, show, utcnow
from tests.cli import Invoke, cli, on, real_clock_app
from tests.conftest import TOKEN
from tests.contract import ContractTransport
from tests.db import connect
from tests.test_unknowns import MAILBOX, SUBJECT, campaign_folder

LOST = "luigi.verdi@legalmail.it"  # its post never reached the vendor
RECORDED = "mario.rossi@legalmail.it"  # its post was recorded, its answer lost
FOOTER = (
    "adopt and requeue happen at the next massiva send or reconcile (requeue after 30"
    " minutes without a receipt); settle an ambiguous one with massiva unknowns {name}"
    " --settle ADDRESS --as-sent MESSAGE_ID | --resend\n"
)


@pytest.fixture
def app() -> Starlette:
    return real_clock_app()


@pytest.fixture
def simulator(app: Starlette) -> Simulator:
    sim: Simulator = app.state.simulator
    return sim


@pytest.fixture
def invoke(app: Starlette, tmp_path: Path, database: Path | str) -> Invoke:
    """``massiva --db <database> ...`` (a SQLite file or a PostgreSQL URL) with a config
    naming the demo box's password, on the simulator."""
    return on(database, cli(app, tmp_path, mailbox="send_rate = 100.0\n"))


@pytest.fixture
def db(database: Path | str) -> Path | str:
    """The database the commands use: its file or URL."""
    return database


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def as_json(result: Result) -> Any:
    return json.loads(ok(result).stdout)


def acceptances(simulator: Simulator) -> dict[str, tuple[int, str]]:
    """message id -> (inbox id, date) of its ACCETTAZIONE in the demo box's inbox."""
    inbox = simulator.mailboxes[MAILBOX].inbox.values()
    return {
        m.object.rsplit(" ", 1)[1]: (m.id, m.date)
        for m in inbox
        if m.object.startswith(f"ACCETTAZIONE: {SUBJECT} ")
    }


def table_rows(output: str) -> list[list[str]]:
    """The body rows of the table printed, each cell's text whole (rich folds a long
    cell over several lines, at its spaces)."""
    rows: list[list[str]] = []
    for line in output.splitlines():
        if not line.startswith("│"):
            continue
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if cells[0]:
            rows.append(cells)
        else:  # the same row, continued
            rows[-1] = [f"{a} {b}" if b else a for a, b in zip(rows[-1], cells, strict=True)]
    return rows


def vendor_ids(simulator: Simulator) -> dict[str, str]:
    """address -> the message id the vendor recorded for its (one) post."""
    return {s.recipients[0]: s.message_id for s in simulator.sends}


def recipient(db: Path | str, campaign: str, *columns: str) -> tuple[Any, ...]:
    """The named columns of the campaign's only (or first) recipient."""
    with connect(db) as conn:
        row: tuple[Any, ...] = conn.execute(
            f"SELECT {', '.join(f'r.{c}' for c in columns)} FROM recipient r JOIN campaign c"
            " ON c.id = r.campaign_id WHERE c.name = ? ORDER BY r.id",
            (campaign,),
        ).fetchone()
    return row


def settlements(db: Path | str) -> list[tuple[Any, ...]]:
    with connect(db) as conn:
        return conn.execute(
            "SELECT c.name, s.decision, s.message_id, s.decided_by, s.decided_at"
            " FROM settlement s JOIN recipient r ON r.id = s.recipient_id"
            " JOIN campaign c ON c.id = r.campaign_id ORDER BY s.id"
        ).fetchall()


def allowance(db: Path | str) -> list[int]:
    """What the day and the month windows count."""
    with connect(db) as conn:
        return [u for (u,) in conn.execute("SELECT used FROM allowance ORDER BY period")]


@pytest.fixture
def two_unknowns(invoke: Invoke, simulator: Simulator, tmp_path: Path) -> None:
    """Campaign 'prova' (one subject): LOST's post dropped before the vendor recorded it,
    then RECORDED's recorded and its answer dropped. Both are ``unknown``, claimed just
    now (real time: well within the grace period)."""
    ok(invoke("campaign", "load", str(campaign_folder(tmp_path / "c", [LOST, RECORDED]))))
    simulator.add_fault(Fault(path="/send", method="POST", kind="drop_before_record"))
    assert invoke("send", "prova", "--max", "1").exit_code == 4  # an outcome unknown
    simulator.add_fault(Fault(path="/send", method="POST", kind="drop_after_record"))
    assert invoke("send", "prova").exit_code == 4  # LOST waits for a receipt; RECORDED posted
    assert simulator.post_counts() == {RECORDED: 1}


def test_the_list_says_what_comes_next_for_each_unknown(
    invoke: Invoke, two_unknowns: None, simulator: Simulator, db: Path | str
) -> None:
    result = ok(invoke("unknowns", "prova"))

    message_id = vendor_ids(simulator)[RECORDED]
    inbox_id, _ = acceptances(simulator)[message_id]
    with connect(db) as conn:
        claimed = dict(conn.execute("SELECT address, claimed_at FROM recipient").fetchall())
    assert result.stdout.splitlines()[0].rstrip() == "Campaign prova: recipients of unknown outcome"
    assert table_rows(result.stdout) == [
        ["2", LOST, show(from_db(claimed[LOST])), "wait: no receipt yet", "-"],
        [
            "3",
            RECORDED,
            show(from_db(claimed[RECORDED])),
            f"adopt: receipt {inbox_id}",
            f"{inbox_id} (message {message_id})",
        ],
    ]
    assert result.stdout.endswith(FOOTER.format(name="prova"))
    # Listing decides nothing: both still wait, and nothing more was posted.
    with connect(db) as conn:
        assert conn.execute(
            "SELECT address, state, message_id FROM recipient ORDER BY id"
        ).fetchall() == [
            (LOST, "unknown", None),
            (RECORDED, "unknown", None),
        ]
    assert simulator.post_counts() == {RECORDED: 1}


def test_the_list_as_json_gives_each_unknown_its_receipts(
    invoke: Invoke, two_unknowns: None, simulator: Simulator, db: Path | str
) -> None:
    listed = as_json(invoke("unknowns", "prova", "--json"))

    message_id = vendor_ids(simulator)[RECORDED]
    inbox_id, date = acceptances(simulator)[message_id]
    with connect(db) as conn:
        claimed = dict(conn.execute("SELECT address, claimed_at FROM recipient").fetchall())
    assert listed == {
        "campaign": "prova",
        "unknowns": [
            {
                "row": 2,
                "address": LOST,
                "claimed_at": from_db(claimed[LOST]).isoformat(),
                "decision": "wait",
                "why": "no receipt yet",
                "candidates": [],
            },
            {
                "row": 3,
                "address": RECORDED,
                "claimed_at": from_db(claimed[RECORDED]).isoformat(),
                "decision": "adopt",
                "why": f"receipt {inbox_id}",
                "candidates": [
                    {
                        "inbox_id": inbox_id,
                        "message_id": message_id,
                        "kind": "accepted",
                        "date": date,
                        "names": [RECORDED],
                    }
                ],
            },
        ],
    }


async def _claimed_and_died(db: Path | str, app: Starlette, archive: Path) -> None:
    """Campaign 'uno' posted to RECORDED by a sender that died before the answer; the
    same notice sent to RECORDED by hand (the same subject: its acceptance looks the
    same); campaign 'due' claimed for RECORDED by a sender that died before its post
    left. Both claims are ``unknown``; the dead sender's lease has lapsed."""
    holder, lease, now = "elsewhere:1:dead", f"send:{MAILBOX}", utcnow()
    transport = ContractTransport(httpx.ASGITransport(app=app))
    async with (
        await Store.open(db, archive_dir=archive) as store,
        ApiSession(
            "http://sim", TOKEN, transport=transport, retry=RetryPolicy(attempts=1)
        ) as session,
    ):
        client = PecMassivaClient(session, MAILBOX, "demo")
        await store.outbox.acquire_lease(lease, holder, timedelta(minutes=1), now)
        for name in ("uno", "due"):
            campaign = await store.campaigns.get(name)
            assert campaign is not None
            claimed = await store.outbox.claim(
                campaign.id,
                mailbox=MAILBOX,
                lease=lease,
                holder=holder,
                day=day_key(now),
                month=month_key(now),
                daily_limit=10,
                monthly_limit=10,
                now=now,
                wall=utcnow(),
            )
            assert isinstance(claimed, Claimed)
            if name == "uno":
                await client.send(claimed.address, claimed.subject, "<p>Gentile Utente 0</p>")
                await client.send(RECORDED, SUBJECT, "<p>Spedita a mano</p>")
        assert await store.outbox.orphaned_sends(MAILBOX, now) == 2
        await store.outbox.release_lease(lease, holder)


@pytest.fixture
def ambiguous(invoke: Invoke, app: Starlette, tmp_path: Path, db: Path | str) -> tuple[str, str]:
    """Two campaigns, one subject, one address, both ``unknown``, and two acceptances
    naming the address: (uno's message id, the hand-sent one's)."""
    for name in ("uno", "due"):
        ok(invoke("campaign", "load", str(campaign_folder(tmp_path / name, [RECORDED], name))))
    asyncio.run(_claimed_and_died(db, app, tmp_path / "massiva.db.archive"))
    simulator: Simulator = app.state.simulator
    assert [s.recipients for s in simulator.sends] == [(RECORDED,), (RECORDED,)]
    uno, by_hand = (s.message_id for s in simulator.sends)
    return uno, by_hand


def test_receipts_that_cannot_be_told_apart_are_listed_with_both(
    invoke: Invoke, ambiguous: tuple[str, str], simulator: Simulator, db: Path | str
) -> None:
    listed = as_json(invoke("unknowns", "uno", "--json"))
    text = ok(invoke("unknowns", "uno"))

    received = acceptances(simulator)
    ids = sorted(received[m][0] for m in ambiguous)
    (entry,) = listed["unknowns"]
    assert (entry["row"], entry["address"], entry["decision"]) == (2, RECORDED, "ambiguous")
    assert entry["why"] in {
        f"2 receipt(s) (inbox ids {a}, {b}) name {RECORDED}, for 2 unsettled recipient(s)"
        " at that address"
        for a, b in (ids, ids[::-1])
    }
    assert sorted(entry["candidates"], key=lambda c: c["inbox_id"]) == [
        {
            "inbox_id": received[m][0],
            "message_id": m,
            "kind": "accepted",
            "date": received[m][1],
            "names": [RECORDED],
        }
        for m in ambiguous
    ]
    receipts = ", ".join(
        f"{c['inbox_id']} (message {c['message_id']})" for c in entry["candidates"]
    )
    claimed = show(from_db(recipient(db, "uno", "claimed_at")[0]))
    assert table_rows(text.stdout) == [
        ["2", RECORDED, claimed, f"ambiguous: {entry['why']}", receipts]
    ]
    assert text.stdout.endswith(FOOTER.format(name="uno"))
    # Nothing was decided: both wait, no receipt is anyone's.
    assert recipient(db, "uno", "state", "message_id") == ("unknown", None)
    assert recipient(db, "due", "state", "message_id") == ("unknown", None)


def test_an_operator_settles_each_of_an_ambiguous_pair_and_the_decision_is_recorded(
    invoke: Invoke,
    ambiguous: tuple[str, str],
    simulator: Simulator,
    app: Starlette,
    db: Path | str,
) -> None:
    uno, by_hand = ambiguous
    assert allowance(db) == [2, 2]  # day and month: both claims counted
    before = utcnow()

    sent = invoke("unknowns", "uno", "--settle", RECORDED, "--as-sent", uno, "--by", "Giulia Neri")
    again = invoke(
        "unknowns",
        "due",
        "--settle",
        RECORDED.upper(),  # as compared: case folded
        "--resend",
        "--json",
        env={"LOGNAME": "operatore"},  # the login name, as getpass reads it
    )

    after = utcnow()
    assert ok(sent).stdout == f"{RECORDED}: sent as message {uno} (decided by Giulia Neri).\n"
    assert as_json(again) == {
        "campaign": "due",
        "address": RECORDED,
        "row": 2,
        "decision": "resend",
        "message_id": None,
        "decided_by": "operatore",
    }
    sent_at, claimed_at = recipient(db, "uno", "sent_at", "claimed_at")
    assert recipient(db, "uno", "state", "message_id", "reason") == ("sent", uno, None)
    assert sent_at == claimed_at  # the post left when it was claimed
    assert recipient(db, "due", "state", "message_id", "claimed_at", "claimed_by", "reason") == (
        "pending",
        None,
        None,
        None,
        None,
    )
    assert allowance(db) == [1, 1]  # due's claim given back: it was never sent
    decisions = settlements(db)
    assert [d[:4] for d in decisions] == [
        ("uno", "sent", uno, "Giulia Neri"),
        ("due", "resend", None, "operatore"),
    ]
    assert all(before <= from_db(d[4]) <= after for d in decisions)
    assert ok(invoke("unknowns", "uno")).stdout == (
        "Campaign 'uno' has no recipient of unknown outcome.\n"
    )

    # The reconciler ties uno's receipts to it; the hand-sent message's stay orphans.
    simulator.clock.advance(600)
    ok(invoke("reconcile"))
    with connect(db) as conn:
        tied = conn.execute(
            "SELECT r.kind, r.message_id, c.name FROM receipt r"
            " LEFT JOIN recipient p ON p.id = r.recipient_id"
            " LEFT JOIN campaign c ON c.id = p.campaign_id ORDER BY r.inbox_id"
        ).fetchall()
    assert sorted(tied, key=str) == sorted(
        [
            ("accepted", uno, "uno"),
            ("delivered", uno, "uno"),
            ("accepted", by_hand, None),
            ("delivered", by_hand, None),
        ],
        key=str,
    )
    assert recipient(db, "uno", "state")[0] == "delivered"
    # ... and the next send posts due once more.
    ok(invoke("send", "due"))
    assert simulator.post_counts() == {RECORDED: 3}
    assert recipient(db, "due", "state", "message_id") == ("sent", simulator.sends[-1].message_id)


@pytest.fixture
def one_unknown_one_sent(invoke: Invoke, simulator: Simulator, tmp_path: Path) -> str:
    """Campaign 'prova': LOST ``unknown`` (its post never reached the vendor), RECORDED
    sent; RECORDED's message id."""
    ok(invoke("campaign", "load", str(campaign_folder(tmp_path / "c", [LOST, RECORDED]))))
    simulator.add_fault(Fault(path="/send", method="POST", kind="drop_before_record"))
    assert invoke("send", "prova", "--max", "1").exit_code == 4  # an outcome unknown
    assert invoke("send", "prova").exit_code == 4  # LOST still waits for a receipt
    return vendor_ids(simulator)[RECORDED]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--as-sent", "2026031009000011"], "--as-sent, --resend and --row need --settle ADDRESS"),
        (["--resend"], "--as-sent, --resend and --row need --settle ADDRESS"),
        (["--settle", LOST], "say what happened to it: --as-sent MESSAGE_ID or --resend"),
        (
            ["--settle", LOST, "--as-sent", "2026031009000011", "--resend"],
            "say what happened to it: --as-sent MESSAGE_ID or --resend",
        ),
        (
            ["--settle", LOST, "--as-sent", ""],
            "'' is no message id: the vendor's ids are numbers, as the receipts show them"
            " (e.g. 2026031010000012)",
        ),
    ],
    ids=["as-sent-alone", "resend-alone", "no-decision", "both-decisions", "empty-id"],
)
def test_a_bad_combination_of_options_exits_2(
    invoke: Invoke, one_unknown_one_sent: str, db: Path | str, args: list[str], message: str
) -> None:
    result = invoke("unknowns", "prova", *args)

    assert result.exit_code == 2
    assert result.stderr == f"Error: {message}\n"
    assert result.stdout == ""
    assert recipient(db, "prova", "state") == ("unknown",)
    assert settlements(db) == []


def test_two_unknown_notices_to_one_address_are_settled_by_row(
    invoke: Invoke, simulator: Simulator, tmp_path: Path, db: Path | str
) -> None:
    folder = campaign_folder(tmp_path / "c", [RECORDED, RECORDED])  # codice C0000, C0001
    toml = folder / "campaign.toml"
    toml.write_text(toml.read_text() + 'key_columns = ["codice"]\n', encoding="utf-8")
    ok(invoke("campaign", "load", str(folder)))
    simulator.add_fault(Fault(path="/send", method="POST", kind="drop_after_record", times=2))
    assert invoke("send", "prova").exit_code == 4  # both outcomes unknown

    unsure = invoke("unknowns", "prova", "--settle", RECORDED, "--resend")
    settled = invoke("unknowns", "prova", "--settle", RECORDED, "--row", "3", "--resend", "--json")

    assert unsure.exit_code == 2
    assert unsure.stderr == (
        f"Error: {RECORDED} is unknown in rows 2, 3 of campaign 'prova' (two notices to one"
        " address): say which with --row N\n"
    )
    assert (settled.exit_code, json.loads(settled.stdout)["row"]) == (0, 3)
    with connect(db) as conn:
        assert conn.execute("SELECT row, state FROM recipient ORDER BY row").fetchall() == [
            (2, "unknown"),
            (3, "pending"),
        ]


@pytest.mark.parametrize("address", [RECORDED, "nessuno@legalmail.it"])
def test_settling_a_recipient_that_is_not_unknown_exits_1(
    invoke: Invoke, one_unknown_one_sent: str, db: Path | str, address: str
) -> None:
    result = invoke("unknowns", "prova", "--settle", address, "--as-sent", "2026031009000099")

    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {address} is not an unknown recipient of campaign 'prova':"
        " see massiva unknowns prova\n"
    )
    with connect(db) as conn:
        assert conn.execute(
            "SELECT address, state, message_id FROM recipient ORDER BY id"
        ).fetchall() == [
            (LOST, "unknown", None),
            (RECORDED, "sent", one_unknown_one_sent),
        ]
    assert settlements(db) == []


def test_a_message_id_that_is_another_recipients_exits_1(
    invoke: Invoke, one_unknown_one_sent: str, db: Path | str
) -> None:
    taken = one_unknown_one_sent

    result = invoke("unknowns", "prova", "--settle", LOST, "--as-sent", taken)
    as_json_too = invoke("unknowns", "prova", "--settle", LOST, "--as-sent", taken, "--json")

    assert result.exit_code == 1
    assert result.stderr == f"Error: message {taken} is already another recipient's: check the id\n"
    assert as_json_too.exit_code == 1
    assert json.loads(as_json_too.stdout) == {
        "error": {
            "message": f"message {taken} is already another recipient's: check the id",
            "exit_code": 1,
        }
    }
    assert recipient(db, "prova", "state", "message_id") == ("unknown", None)
    assert settlements(db) == []


@pytest.mark.parametrize(
    "args", [[], ["--json"], ["--settle", LOST, "--resend"]], ids=["list", "json", "settle"]
)
def test_an_unknown_campaign_exits_1(invoke: Invoke, args: list[str]) -> None:
    result = invoke("unknowns", "x", *args)

    assert result.exit_code == 1
    message = "no campaign called 'x': see massiva campaign list"
    if "--json" in args:
        assert json.loads(result.stdout) == {"error": {"message": message, "exit_code": 1}}
    else:
        assert result.stderr == f"Error: {message}\n"
