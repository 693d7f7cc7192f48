"""Helpers for the report, status and retry tests: a campaign really sent to the
simulator through the command line, then moved to its outcomes in the database (SQLite
or PostgreSQL: the ``database`` fixture's file or URL).

(A module of its own, named like the report tests, because those are the files this
feature owns; it holds no tests. The states are written directly because the receipt
reconciler is built beside this feature; the rows written are the ones it writes.)
"""

from __future__ import annotations

import asyncio
import csv
import json
import shutil
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import Result

from massiva.store import Store
from massiva.times import to_db
from tests.cli import Invoke
from tests.db import connect
from tests.test_sender import MAILBOX

#: The one recipient whose name is a formula: it must come out inert.
FORMULA = '=HYPERLINK("http://x","y")'
FAILED_REASON = "Mancata consegna: casella del destinatario piena (552 5.2.2)"
EXPIRED_REASON = "no final receipt 24 h after sending"
REJECTED_REASON = "Post parameter is not valid: attachment too large"


def archive_of(tmp_path: Path) -> Path:
    """The archive folder of the test's database (where a SQLite one's would be: see the
    ``store`` fixture)."""
    return tmp_path / "massiva.db.archive"


def ok(result: Result) -> Result:
    """``result``, once it is known to have exited 0."""
    assert result.exit_code == 0, result.output + result.stderr
    return result


def write_folder(
    folder: Path,
    rows: Sequence[tuple[str, str, str]],
    *,
    name: str = "prova",
    body: str = 'body = "<p>Gentile {{ nome }}</p>"',
    extra: str = "",
    files: dict[str, bytes] | None = None,
) -> Path:
    """A campaign folder: ``rows`` of (address, nome, codice), key columns codice and
    nome, the ``body`` line of campaign.toml and ``extra`` lines after the others,
    ``files`` written in the folder. An ``attachment_column`` in ``extra`` adds a column
    "allegato" naming allegati/<codice>.pdf."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "campaign.toml").write_text(
        f'name = "{name}"\nmailbox = "{MAILBOX}"\n'
        f'subject = "Avviso {{{{ codice }}}}"\n{body}\n'
        'recipients = "destinatari.csv"\naddress_column = "pec"\n'
        'key_columns = ["codice", "nome"]\n' + extra,
        encoding="utf-8",
    )
    header = ["pec", "nome", "codice"] + (["allegato"] if "attachment_column" in extra else [])
    with (folder / "destinatari.csv").open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, delimiter=";")
        writer.writerow(header)
        for address, nome, codice in rows:
            own = [f"allegati/{codice}.pdf"] if "attachment_column" in extra else []
            writer.writerow([address, nome, codice, *own])
    for relative, content in (files or {}).items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(content)
    return folder


def people(n: int) -> list[tuple[str, str, str]]:
    """``n`` recipients; the third is named :data:`FORMULA`."""
    return [
        (f"utente{i:03d}@legalmail.it", FORMULA if i == 2 else f"Utente {i}", f"C{i:04d}")
        for i in range(n)
    ]


def send_all(invoke: Invoke, folder: Path, name: str = "prova") -> None:
    """Load the campaign in ``folder`` and send it all to the simulator."""
    ok(invoke("campaign", "load", str(folder)))
    sent = json.loads(ok(invoke("send", name, "--rate", "1000", "--json")).stdout)
    assert sent["stopped"] == "done", sent


def settle(db: Path | str, campaign: str = "prova", *, receipts: bool = True) -> None:
    """Move the sent recipients of ``campaign`` to known outcomes, as receipts would:

    row 2 (index 0) delivered in winter; 3 failed; 4 (the formula) delivered in summer;
    5 expired; 6 accepted; 7 rejected; 8 unknown; the rest stay sent. Every sent time is
    fixed, so that the Rome times are known. With ``receipts``, receipt rows tie inbox
    ids 101.. to the delivered and failed ones.
    """
    with connect(db) as conn:
        ids = [
            i
            for (i,) in conn.execute(
                "SELECT r.id FROM recipient r JOIN campaign c ON c.id = r.campaign_id"
                " WHERE c.name = ? ORDER BY r.id",
                (campaign,),
            )
        ]
        conn.execute(
            "UPDATE recipient SET sent_at = '2026-03-10T08:00:00.000000+00:00'"
            f" WHERE id IN ({','.join(map(str, ids))})"
        )
        moves = [
            (
                ids[0],
                "delivered",
                "2026-03-10T08:00:05.000000+00:00",
                "2026-03-10T08:30:00.000000+00:00",
                None,
                None,
            ),
            (
                ids[1],
                "failed",
                "2026-03-10T08:00:06.000000+00:00",
                None,
                "2026-03-10T09:15:00.000000+00:00",
                FAILED_REASON,
            ),
            (
                ids[2],
                "delivered",
                "2026-07-01T10:00:00.000000+00:00",
                "2026-07-01T10:05:00.000000+00:00",
                None,
                None,
            ),
            (ids[3], "expired", "2026-03-10T08:00:07.000000+00:00", None, None, EXPIRED_REASON),
            (ids[4], "accepted", "2026-03-10T08:00:08.000000+00:00", None, None, None),
            (ids[5], "rejected", None, None, "2026-03-10T08:00:00.000000+00:00", REJECTED_REASON),
            (ids[6], "unknown", None, None, None, None),
        ]
        for recipient, state, accepted, delivered, failed, reason in moves:
            conn.execute(
                "UPDATE recipient SET state = ?, accepted_at = ?, delivered_at = ?,"
                " failed_at = ?, reason = ? WHERE id = ?",
                (state, accepted, delivered, failed, reason, recipient),
            )
        conn.execute(  # refused, or never answered: no message id, no sent time
            "UPDATE recipient SET sent_at = NULL, message_id = NULL WHERE id IN (?, ?)",
            (ids[5], ids[6]),
        )
        if receipts:
            for inbox_id, recipient, kind in (
                (102, ids[0], "delivered"),
                (101, ids[0], "accepted"),
                (103, ids[1], "not_delivered"),
            ):
                conn.execute(
                    "INSERT INTO receipt (mailbox, inbox_id, kind, recipient_id, sender,"
                    " recipient, subject, date_raw, seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        MAILBOX,
                        inbox_id,
                        kind,
                        recipient,
                        "posta-certificata@legalmail.it",
                        MAILBOX,
                        "CONSEGNA: Avviso",
                        "Tue, 10 Mar 2026 09:30:00 +0100",
                        "2026-03-10T08:31:00.000000+00:00",
                    ),
                )


#: Failure reasons as massiva/reconcile.py writes them from a receipt's errore-esteso.
CODED_REASONS = (
    "not delivered: 5.1.1 - Utente sconosciuto (no-dest)",
    "not delivered within the maximum time: 5.4.1 - Tempo massimo di consegna scaduto",
)


def finished_campaign(
    db: Path | str, recipients: int, *, name: str = "grande", archive_dir: Path
) -> None:
    """A database (file or URL; its archive in ``archive_dir``) holding one finished
    campaign ``name`` of ``recipients`` (key column codice), written straight into it as
    sending and reconciling leave it: of every 100, 93 delivered, 4 failed (the two
    :data:`CODED_REASONS` in turn), 2 expired and 1 rejected; sent 3,500 a Rome day from
    2 March 2026, receipts minutes later."""

    async def migrate() -> None:
        async with await Store.open(db, archive_dir=archive_dir):
            pass

    asyncio.run(migrate())
    start = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    rows = []
    for n in range(recipients):
        sent = start + timedelta(seconds=n * 86400 / 3500)
        accepted, delivered, failed, reason = sent + timedelta(seconds=5), None, None, None
        kind = n % 100
        if kind < 93:
            state, delivered = "delivered", sent + timedelta(minutes=3)
        elif kind < 97:
            state, failed = "failed", sent + timedelta(hours=2)
            reason = CODED_REASONS[n % 2]
        elif kind < 99:
            state, reason = "expired", EXPIRED_REASON
        else:
            state, accepted, failed, reason = "rejected", None, sent, REJECTED_REASON
        address = f"cliente.{n:05d}@legalmail.it"
        fields = json.dumps({"pec": address, "codice": f"CL-{n:05d}"})
        rows.append(
            (
                n + 2,
                address,
                fields,
                f"Avviso CL-{n:05d}",
                state,
                None if state == "rejected" else str(20260302000000 + n),
                to_db(sent),
                accepted and to_db(accepted),
                delivered and to_db(delivered),
                failed and to_db(failed),
                reason,
                to_db(sent),
            )
        )
    with connect(db) as conn:
        conn.execute(
            "INSERT INTO campaign (id, name, folder, mailbox, subject, body, content_hash,"
            " csv_hash, created_at, updated_at) VALUES (1, ?, '/nowhere', ?, 'Avviso',"
            " '<p/>', '', '', ?, ?)",
            (name, MAILBOX, to_db(start), to_db(start)),
        )
        conn.execute(  # as loading writes it: the pool of one
            "INSERT INTO campaign_pool (campaign_id, mailbox, position) VALUES (1, ?, 0)",
            (MAILBOX,),
        )
        conn.executemany(
            "INSERT INTO recipient (campaign_id, row, address, fields, subject, state,"
            " message_id, sent_at, accepted_at, delivered_at, failed_at, reason, updated_at)"
            " VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )


def chromium() -> str:
    """The headless browser the HTML tests use; the test FAILS (never skips) without it."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail(
            "headless Chromium is needed to test the HTML report and is not installed:"
            " install Debian's package with `sudo apt-get install -y chromium`"
            " (.ci/run does it when CI is set or chromium is missing)"
        )
    return found


def browse(page: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium on ``page`` with ``args`` (e.g. --dump-dom)."""
    profile = tmp_path / "chromium-profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            *args,
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
