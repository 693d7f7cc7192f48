"""Same address, different data: a duplicate is a row with the address AND the key columns
of an earlier one (``dedupe = "address+keys"``, the default), or the address alone
(``"address"``). Two notices to one address are two recipients down the line: loaded,
sent, settled from the inbox and reconciled, each on its own."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from massiva.api import PecMassivaClient
from massiva.campaign import CampaignSpec, load_spec, validate
from massiva.campaign.validation import Recipient, Reject, SameAddress, check
from massiva.loading import LoadError, load_campaign
from massiva.reconcile import reconcile
from massiva.sender import Sender, SendOptions
from massiva.simulator import Fault, SimClock, Simulator
from massiva.store import Store
from massiva.store.schema import MIGRATIONS
from massiva.unknowns import resolve_unknowns
from tests.cli import Invoke
from tests.conftest import MAILBOX
from tests.db import connect
from tests.test_campaign_support import write_campaign

ESPOSITO = "studio.esposito@pec.it"
ROWS = [
    f"{ESPOSITO};Francesco;CL-0005",  # row 2
    "mario.rossi@legalmail.it;Mario;CL-0001",  # row 3
    "Studio.Esposito@PEC.it;Francesco;CL-0013",  # row 4: the same address, another notice
    f"{ESPOSITO};Francesco;CL-0005",  # row 5: row 2 again
    f" {ESPOSITO} ;F.;CL-0013",  # row 6: row 4 again
]
TO_SEND_BOTH = (
    'with dedupe = "address" an address gets one message: set dedupe = "address+keys" in'
    " campaign.toml to send both"
)


def folder_of(
    path: Path, rows: list[str], *, subject: str = "Avviso {{ codice_cliente }}", extra: str = ""
) -> Path:
    """A campaign from ufficio@pecmassiva.com whose key column is codice_cliente."""
    return write_campaign(
        path,
        csv="pec;nome;codice_cliente\n" + "\n".join(rows) + "\n",
        subject=subject,
        body="<p>Gentile {{ nome }}</p>",
        extra='key_columns = ["codice_cliente"]\n' + extra,
    )


def outbox(store: Store) -> list[tuple[object, ...]]:
    with connect(store) as conn:
        return conn.execute(
            "SELECT row, address, key_values, state, message_id FROM recipient ORDER BY id"
        ).fetchall()


def test_rows_at_one_address_with_other_key_values_are_each_a_recipient(tmp_path: Path) -> None:
    spec = load_spec(folder_of(tmp_path / "c", ROWS))

    items = list(validate(spec))
    summary = check(spec, warnings_csv=tmp_path / "w.csv")

    shared = SameAddress(4, ESPOSITO, 2, ("codice_cliente",))
    assert [(i.row, i.address) for i in items if isinstance(i, Recipient)] == [
        (2, ESPOSITO),
        (3, "mario.rossi@legalmail.it"),
        (4, ESPOSITO),
    ]
    assert items[2].same_address == shared
    assert items[3:] == [
        Reject(5, "pec", 'duplicate of row 2 (the same address and "codice_cliente")', True),
        Reject(6, "pec", 'duplicate of row 4 (the same address and "codice_cliente")', True),
    ]
    assert (summary.valid, summary.duplicates, summary.same_address) == (3, 2, 1)
    assert summary.same_address_rows == [shared]
    assert (tmp_path / "w.csv").read_text(encoding="utf-8-sig").splitlines()[1] == (
        f'4;codice_cliente;"same address as row 2 ({ESPOSITO}) with another ""codice_cliente""'
        ': both are sent, one message each; if one of them is a mistake, delete its row"'
    )


def test_dedupe_address_sends_one_message_an_address_and_names_what_it_drops(
    tmp_path: Path,
) -> None:
    spec = load_spec(folder_of(tmp_path / "c", ROWS, extra='dedupe = "address"\n'))
    warnings = tmp_path / "w.csv"

    items = list(validate(spec))
    summary = check(spec, rejects_csv=tmp_path / "r.csv", warnings_csv=warnings)

    dropped = SameAddress(4, ESPOSITO, 2, ("codice_cliente",))
    assert [i.row for i in items if isinstance(i, Recipient)] == [2, 3]
    assert items[2:] == [
        Reject(
            4,
            "pec",
            f'duplicate of row 2 (the same address, another "codice_cliente"); {TO_SEND_BOTH}',
            True,
            dropped,
        ),
        Reject(5, "pec", "duplicate of row 2", True),
        Reject(
            6,
            "pec",
            f'duplicate of row 2 (the same address, another "codice_cliente"); {TO_SEND_BOTH}',
            True,
            SameAddress(6, ESPOSITO, 2, ("codice_cliente",)),
        ),
    ]
    assert (summary.valid, summary.duplicates, summary.same_address) == (2, 3, 2)
    assert summary.rejects_file == tmp_path / "r.csv"
    assert not warnings.exists()  # the rejects file has them: no warning twice


def test_check_says_on_the_screen_which_rows_share_an_address(
    invoke: Invoke, tmp_path: Path
) -> None:
    folder = folder_of(tmp_path / "c", ROWS)
    by_address = folder_of(tmp_path / "d", ROWS, extra='dedupe = "address"\n')

    result = invoke("campaign", "check", str(folder))
    dropped = invoke("campaign", "check", str(by_address))
    report = json.loads(invoke("campaign", "check", str(folder), "--json").stdout)

    assert result.exit_code == dropped.exit_code == 0
    assert (
        f"Warning: row 4 has the address of row 2 ({ESPOSITO}) with another codice_cliente:"
        " each is sent, one message a row. Delete a row that is a mistake.\n"
    ) in result.stdout
    assert (
        "Warning: 2 rows (4 as 2, 6 as 2) have the address of an earlier row with other key"
        ' columns: not sent, as dedupe = "address" sends one message an address. Set dedupe'
        ' = "address+keys" in campaign.toml to send each.\n'
    ) in dropped.stdout
    assert report["dedupe"] == "address+keys"
    assert report["same_address"] == {
        "rows": 1,
        "sent": True,
        "first": [{"row": 4, "address": ESPOSITO, "first_row": 2, "differs": ["codice_cliente"]}],
    }


async def test_both_notices_are_loaded_and_a_changed_file_adds_only_new_ones(
    store: Store, tmp_path: Path
) -> None:
    folder = folder_of(tmp_path / "c", ROWS)

    first = await load_campaign(store, load_spec(folder))
    again = await load_campaign(store, load_spec(folder))
    folder_of(tmp_path / "c", [*ROWS, f"{ESPOSITO};Francesco;CL-0020"])
    changed = await load_campaign(store, load_spec(folder))

    assert (first.added, first.duplicates, first.same_address) == (3, 2, 1)
    assert again.unchanged
    assert (changed.added, changed.already_loaded, changed.same_address) == (1, 3, 2)
    assert [r[:3] for r in outbox(store)] == [
        (2, ESPOSITO, '["CL-0005"]'),
        (3, "mario.rossi@legalmail.it", '["CL-0001"]'),
        (4, ESPOSITO, '["CL-0013"]'),
        (7, ESPOSITO, '["CL-0020"]'),
    ]


def test_load_from_the_command_line_counts_the_notices_sharing_an_address(
    invoke: Invoke, tmp_path: Path
) -> None:
    folder = folder_of(tmp_path / "c", [*ROWS, "anna@pec.it;;CL-0009"])

    result = invoke("campaign", "load", str(folder))
    folder_of(tmp_path / "c", [*ROWS, "anna@pec.it;;CL-0009", f"{ESPOSITO};F.;CL-0021"])
    changed = json.loads(invoke("campaign", "load", str(folder), "--json").stdout)

    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "prova: 4 recipients added to the outbox (0 already there, 0 rejected, 2 duplicates;"
        " see massiva campaign check).\n"
        "Warnings: 1 with an empty merge field, 1 at the address of an earlier row; massiva"
        " campaign check lists them.\n"
    )
    assert (changed["added"], changed["empty_fields"], changed["same_address"]) == (1, 1, 2)


async def test_a_campaign_keeps_what_made_a_recipient_when_it_was_loaded(
    store: Store, tmp_path: Path
) -> None:
    folder = folder_of(tmp_path / "c", ROWS)
    await load_campaign(store, load_spec(folder))
    folder_of(tmp_path / "c", ROWS[:3], extra='dedupe = "address"\n')

    with pytest.raises(LoadError) as error:
        await load_campaign(store, load_spec(folder))

    assert str(error.value) == (
        "campaign 'prova' was loaded with its recipients told apart by the address and"
        " codice_cliente, and campaign.toml now tells them apart by the address alone"
        " (dedupe and key_columns): loading the changed recipients file could send someone"
        " a second message; give the campaign a new name"
    )
    assert len(outbox(store)) == 3


async def send_campaign(
    store: Store, box: PecMassivaClient, clock: SimClock, spec: CampaignSpec
) -> None:
    await load_campaign(store, spec)
    campaign = await store.campaigns.get(spec.name)
    assert campaign is not None
    await Sender(store, box, campaign, spec, SendOptions(rate=None), clock=clock.now).run()


async def test_two_notices_to_one_address_are_both_sent_and_each_gets_its_outcome(
    store: Store, box: PecMassivaClient, simulator: Simulator, clock: SimClock, tmp_path: Path
) -> None:
    spec = load_spec(folder_of(tmp_path / "c", ROWS[:3]))

    await send_campaign(store, box, clock, spec)
    clock.advance(15 * 60)
    await reconcile(store, box, MAILBOX, clock=clock.now)

    sent = {s.subject: s.message_id for s in simulator.sends}
    assert simulator.post_counts() == {ESPOSITO: 2, "mario.rossi@legalmail.it": 1}
    assert outbox(store) == [
        (2, ESPOSITO, '["CL-0005"]', "delivered", sent["Avviso CL-0005"]),
        (3, "mario.rossi@legalmail.it", '["CL-0001"]', "delivered", sent["Avviso CL-0001"]),
        (4, ESPOSITO, '["CL-0013"]', "delivered", sent["Avviso CL-0013"]),
    ]
    with connect(store) as conn:
        receipts = conn.execute(
            "SELECT r.row, count(*) FROM receipt JOIN recipient r ON r.id = recipient_id"
            " GROUP BY r.row ORDER BY r.row"
        ).fetchall()
    assert receipts == [(2, 2), (3, 2), (4, 2)]  # its own acceptance and delivery each


@pytest.mark.parametrize(
    ("subject", "adopted", "ambiguous"),
    [("Avviso {{ codice_cliente }}", 2, 0), ("Avviso di pagamento", 0, 2)],
    ids=["own-subjects", "one-subject"],
)
async def test_posts_lost_on_the_way_are_told_apart_by_subject_or_left_to_an_operator(
    store: Store,
    box: PecMassivaClient,
    simulator: Simulator,
    clock: SimClock,
    tmp_path: Path,
    subject: str,
    adopted: int,
    ambiguous: int,
) -> None:
    spec = load_spec(folder_of(tmp_path / "c", [ROWS[0], ROWS[2]], subject=subject))
    simulator.add_fault(Fault(path="/send", method="POST", kind="drop_after_record", times=2))
    await send_campaign(store, box, clock, spec)
    clock.advance(120)

    found = await resolve_unknowns(store, box, MAILBOX, now=clock.now())

    assert (found.adopted, found.ambiguous) == (adopted, ambiguous)
    rows = outbox(store)
    if adopted:  # each its own acceptance: the subject names the notice
        # Each row holds the id the vendor gave to the post of its own subject (posts
        # overlap: either may have left first).
        with connect(store) as conn:
            subjects = dict(conn.execute("SELECT message_id, subject FROM recipient"))
        assert [r[3] for r in rows] == ["sent", "sent"]
        assert {s.message_id: s.subject for s in simulator.sends} == subjects
    else:  # two acceptances name the address for one subject: nobody guesses
        assert [(r[3], r[4]) for r in rows] == [("unknown", None), ("unknown", None)]
    assert simulator.post_counts() == {ESPOSITO: 2}


WHEN = "2026-03-10T08:00:00+00:00"


def _database_at_version_7(path: Path, spec: CampaignSpec) -> None:
    """A database as massiva left it before recipients had key values: ``spec``'s
    campaign, two recipients, a receipt of one and an operator's decision on the other."""
    conn = sqlite3.connect(path)
    try:
        for script in MIGRATIONS[:7]:
            conn.executescript(script)
        conn.executescript(
            "PRAGMA user_version = 7;"
            "INSERT INTO campaign (id, name, folder, mailbox, subject, body, content_hash,"
            " csv_hash, created_at, updated_at) VALUES (1, 'prova', '.', 'ufficio@pecmassiva.com',"
            f" 's', 'b', '{spec.content_hash()}', 'h', '{WHEN}', '{WHEN}');"
            "INSERT INTO recipient (id, campaign_id, row, address, fields, subject, state,"
            " message_id, updated_at) VALUES"
            f" (7, 1, 2, '{ESPOSITO}', '{{}}', 'Avviso CL-0005', 'delivered', 'M1', 't'),"
            " (9, 1, 3, 'mario.rossi@legalmail.it', '{}', 'Avviso CL-0001', 'unknown', NULL,"
            " 't');"
            "INSERT INTO receipt (mailbox, inbox_id, kind, message_id, recipient_id, sender,"
            " recipient, subject, date_raw, seen_at) VALUES ('ufficio@pecmassiva.com', 1,"
            " 'consegna', 'M1', 7, 's', 'r', 'CONSEGNA: Avviso CL-0005', 'd', 't');"
            "INSERT INTO settlement (recipient_id, decision, decided_by, decided_at)"
            " VALUES (9, 'resend', 'op', 't');"
        )
    finally:
        conn.close()


# SQLite's own migrations: PostgreSQL's schema starts at version 10.
async def test_the_migration_keeps_every_row_and_link_and_old_campaigns_their_identity(
    tmp_path: Path,
) -> None:
    db = tmp_path / "massiva.db"
    folder = folder_of(tmp_path / "c", ROWS[:3])
    _database_at_version_7(db, load_spec(folder))

    async with await Store.open(db) as store:
        enforced = list(await store.database.db.execute_fetchall("PRAGMA foreign_keys"))
        old = await store.campaigns.get("prova")
        with pytest.raises(LoadError) as error:
            await load_campaign(store, load_spec(folder))

    with connect(db) as conn:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        recipients = conn.execute(
            "SELECT id, row, address, state, message_id, key_values FROM recipient ORDER BY id"
        ).fetchall()
        links = conn.execute(
            "SELECT (SELECT recipient_id FROM receipt), (SELECT recipient_id FROM settlement)"
        ).fetchone()
        triggers = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY name"
        ).fetchall()
    assert version == len(MIGRATIONS) and enforced == [(1,)]
    assert recipients == [
        (7, 2, ESPOSITO, "delivered", "M1", "[]"),
        (9, 3, "mario.rossi@legalmail.it", "unknown", None, "[]"),
    ]
    assert links == (7, 9)
    assert triggers == [("allowance_refund",), ("allowance_reserve",)]
    assert old is not None and old.identity == ()
    assert str(error.value).endswith(
        'set dedupe = "address" in campaign.toml to go on with it, or give the campaign a new name'
    )
