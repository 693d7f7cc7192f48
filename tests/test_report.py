"""``massiva report``: every format read back as a user (or their spreadsheet) would.

A campaign is really loaded and sent to the simulator, then its recipients are moved to
known outcomes in the database (see tests/test_report_support.py), on each engine.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from click.testing import Result
from psycopg import sql
from starlette.applications import Starlette

from massiva.report import export, open_report, output_file
from massiva.report.as_csv import FORMULA_TRIGGERS, Lines, inert, write_csv
from massiva.report.rows import COLUMNS_AFTER_KEYS, ReportRow, failure_code, rome, rome_iso
from massiva.report.summary import timeline
from massiva.schedule import Schedule
from massiva.simulator import SimClock, SimulatorSettings, create_app
from massiva.store import Store
from massiva.store.reports import HourCount, ReportRecord
from massiva.times import to_db
from tests.cli import Invoke, cli, on, real_clock_app
from tests.conftest import START
from tests.db import connect
from tests.postgres import PostgresServer
from tests.test_report_support import (
    CODED_REASONS,
    EXPIRED_REASON,
    FAILED_REASON,
    FORMULA,
    REJECTED_REASON,
    archive_of,
    ok,
    people,
    send_all,
    settle,
    write_folder,
)
from tests.test_sender import MAILBOX

HEADER = [
    "row",
    "address",
    "codice",
    "nome",
    "mailbox",
    "subject",
    "state",
    "message_id",
    "sent_at",
    "accepted_at",
    "delivered_at",
    "failed_at",
    "failure_code",
    "reason",
    "receipt_ids",
]
COUNTS = {
    "pending": 0,
    "sending": 0,
    "sent": 3,
    "accepted": 1,
    "delivered": 2,
    "failed": 1,
    "rejected": 1,
    "unknown": 1,
    "expired": 1,
}


@pytest.fixture
def app() -> Starlette:
    return real_clock_app()


@pytest.fixture
def invoke(app: Starlette, tmp_path: Path, database: Path | str) -> Invoke:
    return on(database, cli(app, tmp_path))


@pytest.fixture
def sent(invoke: Invoke, tmp_path: Path, database: Path | str) -> Path | str:
    """A campaign of 10 sent and settled; returns the database (file or URL)."""
    send_all(invoke, write_folder(tmp_path / "c", people(10)))
    settle(database)
    return database


def read_csv(path: Path, **options: str) -> list[dict[str, str]]:
    encoding = options.pop("encoding", "utf-8")
    with path.open(encoding=encoding, newline="") as file:
        return list(csv.DictReader(file, **options))  # type: ignore[arg-type]


def by_address(rows: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {row["address"]: row for row in rows}


def test_csv_has_every_recipient_with_times_in_rome_the_reason_and_the_receipts(
    invoke: Invoke, sent: Path | str, tmp_path: Path
) -> None:
    result = ok(invoke("report", "prova", "--format", "csv", "-o", str(tmp_path / "r.csv")))

    raw = (tmp_path / "r.csv").read_bytes()
    rows = read_csv(tmp_path / "r.csv")
    assert not raw.startswith(b"\xef\xbb\xbf")
    assert raw.split(b"\r\n")[0].decode().split(",") == HEADER
    assert len(rows) == 10
    assert [row["row"] for row in rows] == [str(i) for i in range(2, 12)]
    found = by_address(rows)
    delivered = found["utente000@legalmail.it"]
    assert (delivered["codice"], delivered["nome"], delivered["state"]) == (
        "C0000",
        "Utente 0",
        "delivered",
    )
    assert (delivered["mailbox"], delivered["subject"]) == (MAILBOX, "Avviso C0000")
    assert re.fullmatch(r"\d+", delivered["message_id"])
    assert delivered["sent_at"] == "2026-03-10T09:00:00+01:00"  # winter: UTC+1
    assert delivered["accepted_at"] == "2026-03-10T09:00:05+01:00"
    assert delivered["delivered_at"] == "2026-03-10T09:30:00+01:00"
    assert delivered["receipt_ids"] == "101 102"
    summer = found["utente002@legalmail.it"]
    assert summer["delivered_at"] == "2026-07-01T12:05:00+02:00"  # summer: UTC+2
    failed = found["utente001@legalmail.it"]
    assert (failed["state"], failed["reason"]) == ("failed", FAILED_REASON)
    assert failed["failure_code"] == "5.2.2"  # the code the reason quotes
    assert delivered["failure_code"] == ""
    assert failed["failed_at"] == "2026-03-10T10:15:00+01:00"
    assert failed["receipt_ids"] == "103"
    assert found["utente003@legalmail.it"]["reason"] == EXPIRED_REASON
    assert found["utente003@legalmail.it"]["failure_code"] == ""
    unknown = found["utente006@legalmail.it"]
    assert (unknown["state"], unknown["message_id"], unknown["sent_at"]) == ("unknown", "", "")
    assert result.stdout == f"prova: 10 recipients written to {tmp_path / 'r.csv'} (CSV).\n"


def test_a_formula_comes_out_inert_in_csv_and_both_csv_variants(
    invoke: Invoke, sent: Path | str, tmp_path: Path
) -> None:
    ok(invoke("report", "prova", "-o", str(tmp_path / "plain.csv")))
    ok(invoke("report", "prova", "--format", "csv", "--excel", "-o", str(tmp_path / "xl.csv")))

    plain = by_address(read_csv(tmp_path / "plain.csv"))
    excel_bytes = (tmp_path / "xl.csv").read_bytes()
    excel = by_address(read_csv(tmp_path / "xl.csv", encoding="utf-8-sig", delimiter=";"))
    assert plain["utente002@legalmail.it"]["nome"] == "'" + FORMULA
    assert excel["utente002@legalmail.it"]["nome"] == "'" + FORMULA
    assert excel_bytes.startswith(b"\xef\xbb\xbf" + b"row;address;codice;nome;")
    assert excel["utente001@legalmail.it"]["reason"] == FAILED_REASON
    # Nothing else was touched.
    assert plain["utente003@legalmail.it"]["nome"] == "Utente 3"


@pytest.mark.parametrize("trigger", FORMULA_TRIGGERS)
def test_every_formula_trigger_gets_a_quote_and_nothing_else_does(trigger: str) -> None:
    assert inert(f"{trigger}1+1") == f"'{trigger}1+1"
    assert inert(f"a{trigger}b") == f"a{trigger}b"
    assert inert("") == ""


def test_xlsx_has_a_summary_and_the_recipients_with_the_formula_as_plain_text(
    invoke: Invoke, sent: Path | str, tmp_path: Path
) -> None:
    ok(invoke("report", "prova", "-o", str(tmp_path / "r.xlsx")))  # the format from -o

    book = openpyxl.load_workbook(tmp_path / "r.xlsx")
    assert book.sheetnames == ["Summary", "Recipients"]
    lines = [row for row in book["Summary"].iter_rows(values_only=True)]
    assert lines[0][:2] == ("Delivery report", "prova")
    start = lines.index(("State", "Recipients", None))
    assert dict(line[:2] for line in lines[start + 1 : start + 11]) == {**COUNTS, "total": 10}
    assert ("failed", FAILED_REASON, 1) in lines
    sheet = book["Recipients"]
    rows = list(sheet.iter_rows(values_only=True))
    assert list(rows[0]) == HEADER
    assert len(rows) == 11
    found = {row[1]: dict(zip(HEADER, row, strict=True)) for row in rows[1:]}
    assert found["utente000@legalmail.it"]["row"] == 2
    assert found["utente000@legalmail.it"]["subject"] == "Avviso C0000"
    assert found["utente000@legalmail.it"]["mailbox"] == MAILBOX
    assert found["utente001@legalmail.it"]["reason"] == FAILED_REASON
    assert found["utente001@legalmail.it"]["failure_code"] == "5.2.2"
    formula = next(c for c in sheet["D"] if c.value == FORMULA)
    assert formula.data_type == "s"  # a plain string, not a formula
    assert all(c.data_type != "f" for line in sheet.iter_rows() for c in line)


def test_xlsx_times_are_rome_date_time_cells_under_a_bold_filtered_header(
    invoke: Invoke, sent: Path | str, tmp_path: Path
) -> None:
    ok(invoke("report", "prova", "-o", str(tmp_path / "r.xlsx")))

    book = openpyxl.load_workbook(tmp_path / "r.xlsx")
    sheet = book["Recipients"]
    header = next(sheet.iter_rows(max_row=1))
    cells = {
        row[1].value: dict(zip(HEADER, row, strict=True)) for row in sheet.iter_rows(min_row=2)
    }
    winter, summer = cells["utente000@legalmail.it"], cells["utente002@legalmail.it"]
    # Rome's wall clock, a real date-time cell that shows the date and the time.
    assert winter["delivered_at"].value == datetime(2026, 3, 10, 9, 30)  # UTC+1
    assert summer["delivered_at"].value == datetime(2026, 7, 1, 12, 5)  # UTC+2
    assert winter["delivered_at"].is_date
    assert winter["delivered_at"].number_format == "yyyy-mm-dd hh:mm:ss"
    assert winter["failed_at"].value is None  # it did not happen: an empty cell
    assert all(cell.font.b for cell in header)
    assert not any(cell.font.b for cell in next(sheet.iter_rows(min_row=2, max_row=2)))
    assert sheet.auto_filter.ref == "A1:O11"  # the header and the 10 recipients
    assert sheet.freeze_panes == "C2"
    summary = {row[0]: row[1] for row in book["Summary"].iter_rows(values_only=True) if row[0]}
    assert "Europe/Rome local time" in summary["Times"]
    assert "no offset from UTC" in summary["Times"]
    assert isinstance(summary["Report generated"], datetime)


def test_json_is_the_same_data_with_stable_keys(
    invoke: Invoke, sent: Path | str, tmp_path: Path
) -> None:
    ok(invoke("report", "prova", "--format", "json", "-o", str(tmp_path / "r.json")))

    document = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert list(document) == [
        "format",
        "version",
        "generated_at",
        "campaign",
        "key_columns",
        "counts",
        "total",
        "not_sent_by_deadline",
        "mailboxes",
        "failure_reasons",
        "other_failure_reasons",
        "recipients",
    ]
    assert (document["format"], document["version"]) == ("massiva-report", 1)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0[12]:00", document["generated_at"])
    assert document["counts"] == COUNTS
    assert document["total"] == 10
    assert document["campaign"]["mailboxes"] == [MAILBOX]
    assert document["campaign"]["schedule"] is None  # any time
    assert document["not_sent_by_deadline"] == 0
    # Every recipient settled was claimed by the one mailbox (the rest are too: all sent).
    assert document["mailboxes"] == [
        {"mailbox": MAILBOX, "recipients": 10, "counts": COUNTS},
    ]
    assert document["key_columns"] == ["codice", "nome"]
    assert {"state": "failed", "reason": FAILED_REASON, "count": 1} in document["failure_reasons"]
    recipients = document["recipients"]
    assert len(recipients) == 10
    first = recipients[0]
    assert list(first) == [
        "row",
        "address",
        "keys",
        "mailbox",
        "subject",
        "state",
        "message_id",
        "sent_at",
        "accepted_at",
        "delivered_at",
        "failed_at",
        "failure_code",
        "reason",
        "receipt_ids",
    ]
    assert first["keys"] == {"codice": "C0000", "nome": "Utente 0"}
    assert (first["mailbox"], first["subject"]) == (MAILBOX, "Avviso C0000")
    assert first["failure_code"] is None
    assert recipients[1]["failure_code"] == "5.2.2"
    assert first["receipt_ids"] == [101, 102]
    assert first["failed_at"] is None
    assert recipients[2]["keys"]["nome"] == FORMULA  # exact: JSON has no formulas
    assert recipients[1]["reason"] == FAILED_REASON


async def test_the_rows_stream_in_batches_in_file_order(sent: Path | str, tmp_path: Path) -> None:
    async with await Store.open(sent, archive_dir=archive_of(tmp_path)) as store:
        campaign = await store.campaigns.get("prova")
        assert campaign is not None
        batches = [
            [r.row for r in batch] async for batch in store.reports.recipients(campaign.id, batch=3)
        ]
        limited = [
            [r.address for r in batch]
            async for batch in store.reports.recipients(
                campaign.id, states=("failed", "expired", "unknown"), limit=2, batch=1
            )
        ]

    assert batches == [[2, 3, 4], [5, 6, 7], [8, 9, 10], [11]]
    assert limited == [["utente001@legalmail.it"], ["utente003@legalmail.it"]]


def test_receipt_ids_are_ascending_whatever_order_they_were_read_in(
    invoke: Invoke, sent: Path | str, tmp_path: Path
) -> None:
    with connect(sent) as conn:
        (recipient,) = conn.execute("SELECT id FROM recipient WHERE row = 9").fetchone()
        for inbox_id in (305, 120, 1000, 200):  # a newest-first reconcile reads them so
            conn.execute(
                "INSERT INTO receipt (mailbox, inbox_id, kind, recipient_id, sender, recipient,"
                " subject, date_raw, seen_at) VALUES (?, ?, 'accepted', ?, 'x', 'y', 's', 'd', '')",
                ("ufficio@pecmassiva.com", inbox_id, recipient),
            )

    ok(invoke("report", "prova", "-o", str(tmp_path / "r.csv")))

    (row,) = [r for r in read_csv(tmp_path / "r.csv") if r["row"] == "9"]
    assert row["receipt_ids"] == "120 200 305 1000"


@pytest.mark.parametrize("excel", [False, True], ids=["plain", "excel"])
async def test_a_csv_written_by_several_processes_is_the_one_a_single_process_writes(
    sent: Path | str, tmp_path: Path, excel: bool
) -> None:
    with connect(sent) as conn:  # cells csv.writer must quote, in every part
        conn.execute("UPDATE recipient SET reason = 'a, \"b\"; c' WHERE row IN (3, 10)")
        conn.execute("UPDATE recipient SET reason = ? WHERE row = 11", ("line one\r\ntwo",))
    written = {}
    async with await Store.open(sent, archive_dir=archive_of(tmp_path)) as store:
        report, _ = await open_report(store, "prova")
        for processes in (1, 3):
            with output_file(tmp_path / f"{processes}.csv") as out:
                written[processes] = await write_csv(report, out, excel=excel, processes=processes)
        campaign = await store.campaigns.get("prova")
        assert campaign is not None
        ranges = await store.reports.id_ranges(campaign.id, 3)

    assert written == {1: 10, 3: 10}
    assert (tmp_path / "3.csv").read_bytes() == (tmp_path / "1.csv").read_bytes()
    assert len(ranges) == 3
    assert [ranges[0][1], ranges[1][1]] == [ranges[1][0], ranges[2][0]]  # no gap, no overlap
    rows = read_csv(
        tmp_path / "3.csv", **({"delimiter": ";", "encoding": "utf-8-sig"} if excel else {})
    )
    assert [row["row"] for row in rows] == [str(n) for n in range(2, 12)]
    assert rows[-1]["reason"] == "line one\r\ntwo"


#: The mailboxes of a pool as the CSV lines meet them: plain, a formula, one to quote,
#: and none (a recipient never claimed).
BOXES = [MAILBOX, "=odd@pecmassiva.com", '"uff,icio"@pecmassiva.com', ""]


@pytest.mark.parametrize("late", [False, True], ids=["in-time", "past-deadline"])
@pytest.mark.parametrize("keys", [0, 1, 2])
@pytest.mark.parametrize("delimiter", [",", ";"])
def test_the_csv_lines_are_what_csv_writer_writes_of_the_rows_cells(
    delimiter: str, keys: int, late: bool
) -> None:
    values = [
        "",
        "plain",
        "a,b",
        "a;b",
        'say "hi"',
        "two\nlines",
        "cr\rhere",
        "'=1",
        " sp ",
        "=1+2",
        *CODED_REASONS,
        "not delivered: 5.2.2, full",
    ]
    values += [f"{trigger}x" for trigger in FORMULA_TRIGGERS]
    times = [None, "2026-03-29T00:59:59.999999+00:00", "2026-10-25T01:00:00.000001+00:00"]
    states = ["failed", "delivered", "expired", "failed", "rejected", "pending"]
    records = [
        ReportRecord(
            id=n,
            row=n + 2,
            address=value,
            mailbox=BOXES[n % len(BOXES)],
            subject=values[n * 7 % len(values)],
            state=states[n % len(states)],
            message_id=values[n % len(values)],
            sent_at=times[n % 3],
            accepted_at=times[(n + 1) % 3],
            delivered_at=None,
            failed_at=times[(n + 2) % 3],
            reason=other,
            receipts="" if n % 2 else "101 205",
            keys=(value, other, "k")[:keys],
        )
        for n, (value, other) in enumerate((a, b) for a in values for b in values)
    ]
    key_columns = [f"key{k}" for k in range(keys)]
    columns = ["row", "address", *key_columns, *COLUMNS_AFTER_KEYS]
    from_outside = {"address", *key_columns, "mailbox", "subject", "message_id", "reason"}
    outside = [i for i, name in enumerate(columns) if name in from_outside]
    expected = io.StringIO()
    writer = csv.writer(expected, delimiter=delimiter, lineterminator="\r\n")
    rows = ReportRow.from_records(records, late=late)
    for row in rows:
        cells = row.cells()
        writer.writerow([inert(cell) if i in outside else cell for i, cell in enumerate(cells)])

    assert Lines(delimiter, keys, late=late).text(records) == expected.getvalue()
    assert Lines(delimiter, keys, late=late).text([]) == ""
    # The rows hold what the columns say (the failure codes were really computed).
    assert {row.failure_code for row in rows} == {"", "5.1.1", "5.4.1", "5.2.2"}
    assert all(len(row.cells()) == len(columns) for row in rows)
    assert {row.mailbox for row in rows} == set(BOXES)
    # Past the deadline a pending row says so, before its stored reason if any.
    for row, record in zip(rows, records, strict=True):
        said = (
            f"not sent by the deadline; {record.reason}"
            if record.reason
            else "not sent by the deadline"
        )
        assert row.reason == (said if late and row.state == "pending" else record.reason)


@pytest.mark.parametrize(
    ("state", "reason", "code"),
    [
        ("failed", CODED_REASONS[0], "5.1.1"),
        ("failed", CODED_REASONS[1], "5.4.1"),
        ("failed", "Mancata consegna: casella piena (552 5.2.2)", "5.2.2"),
        ("failed", "not delivered: 5.7.1. Rifiutato", "5.7.1"),
        ("failed", "not delivered: 4.4.7 dopo 5.1.1", "4.4.7"),  # the first
        ("failed", "not delivered: host 192.168.10.1 down", ""),  # an address, not a code
        ("failed", "not delivered: NO-DEST", ""),
        ("failed", "", ""),
        ("rejected", "Post parameter 5.1.1 is not valid", ""),  # only failures have one
        ("expired", "no final receipt 24 h after sending", ""),
    ],
)
def test_the_failure_code_is_the_first_status_code_of_a_failed_recipients_reason(
    state: str, reason: str, code: str
) -> None:
    assert failure_code(state, reason) == code


def test_key_columns_from_the_command_line_and_a_wrong_one(
    invoke: Invoke, sent: Path | str, tmp_path: Path
) -> None:
    ok(invoke("report", "prova", "--key", "nome", "-o", str(tmp_path / "r.csv")))
    wrong = invoke("report", "prova", "--key", "cognome", "-o", str(tmp_path / "w.csv"))

    assert list(read_csv(tmp_path / "r.csv")[0])[:3] == ["row", "address", "nome"]
    assert wrong.exit_code == 2
    assert "campaign 'prova' has no column 'cognome'; its columns are pec, nome, codice" in (
        wrong.stderr
    )
    assert not (tmp_path / "w.csv").exists()


def test_a_moved_campaign_folder_still_reports_without_key_columns(
    invoke: Invoke, sent: Path | str, tmp_path: Path
) -> None:
    (tmp_path / "c").rename(tmp_path / "elsewhere")

    result = ok(invoke("report", "prova", "-o", str(tmp_path / "r.csv")))

    assert "Note: the key columns could not be read from" in result.stderr
    assert "name them with --key COLUMN" in result.stderr
    assert list(read_csv(tmp_path / "r.csv")[0])[:3] == ["row", "address", "mailbox"]


def test_csv_to_standard_output(invoke: Invoke, sent: Path | str) -> None:
    result = ok(invoke("report", "prova", "-o", "-"))

    rows = list(csv.DictReader(io.StringIO(result.stdout, newline="")))
    assert len(rows) == 10
    assert "10 recipients written to standard output" in result.stderr


def test_the_default_file_is_named_after_the_campaign(
    invoke: Invoke, sent: Path | str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    result = ok(invoke("report", "prova", "--format", "json", "--json"))

    assert json.loads(result.stdout)["file"] == "prova-report.json"
    assert json.loads((tmp_path / "prova-report.json").read_text())["total"] == 10


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nessuna",), "no campaign called 'nessuna': see massiva campaign list"),
        (("prova", "--format", "xlsx", "--excel"), "--excel is for CSV, not xlsx"),
        (("prova", "--format", "xlsx", "-o", "-"), "XLSX is not text: give -o FILE"),
        (("prova", "-o", "nowhere/r.csv"), "no such folder; create it, or give another -o"),
        (
            ("prova", "-o", "r.csv", "--lang", "en"),
            "--lang is for HTML, not csv: drop --lang or use --format html",
        ),
        (
            ("prova", "-o", "r.xlsx", "--full-table"),
            "--full-table is for HTML, not xlsx: drop --full-table or use --format html",
        ),
    ],
)
def test_mistakes_say_what_and_how_to_fix(
    invoke: Invoke,
    sent: Path | str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)

    result = invoke("report", *args)

    assert result.exit_code == (1 if args[0] == "nessuna" else 2)
    assert message in result.stderr
    assert not list(tmp_path.glob("*.partial")) and not list(tmp_path.glob(".*.partial"))


@pytest.mark.parametrize(
    ("name", "starts"),
    [
        ("esito.csv", b"row,address,codice,nome,mailbox,subject,state,"),
        ("ESITO.XLSX", b"PK\x03\x04"),  # a zip: the XLSX container
        ("esito.json", b'{\n  "format": "massiva-report"'),
        ("esito.html", b"<!DOCTYPE html>"),
    ],
)
def test_the_format_follows_the_extension_of_the_output(
    invoke: Invoke, sent: Path | str, tmp_path: Path, name: str, starts: bytes
) -> None:
    result = ok(invoke("report", "prova", "-o", str(tmp_path / name)))

    fmt = name.rpartition(".")[2].upper()
    assert (tmp_path / name).read_bytes().startswith(starts)
    assert result.stdout == f"prova: 10 recipients written to {tmp_path / name} ({fmt}).\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("-o", "report.pdf"),
            "-o report.pdf: massiva does not write .pdf files; end the name in .csv, .xlsx,"
            " .json or .html (the report's format follows it)",
        ),
        (
            ("--format", "csv", "-o", "report.pdf"),
            "-o report.pdf: massiva does not write .pdf files; end the name in .csv, .xlsx,"
            " .json or .html (the report's format follows it)",
        ),
        (
            ("--format", "csv", "-o", "esito.xlsx"),
            "-o esito.xlsx says XLSX, but --format asks for CSV: name it esito.csv,"
            " or drop --format",
        ),
        (
            ("-o", "esito"),
            "-o esito has no extension to tell the format by: end the name in .csv, .xlsx,"
            " .json or .html, or give --format",
        ),
    ],
)
def test_an_output_name_that_says_another_format_is_refused_and_nothing_written(
    invoke: Invoke,
    sent: Path | str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    before = set(tmp_path.iterdir())

    result = invoke("report", "prova", *args)
    as_json = invoke("report", "prova", *args, "--json")

    assert (result.exit_code, as_json.exit_code) == (2, 2)
    assert result.stderr == f"Error: {message}\n"
    assert json.loads(as_json.stdout) == {"error": {"message": message, "exit_code": 2}}
    assert set(tmp_path.iterdir()) == before


def test_a_name_without_extension_takes_the_format_given(
    invoke: Invoke, sent: Path | str, tmp_path: Path
) -> None:
    ok(invoke("report", "prova", "--format", "json", "-o", str(tmp_path / "esito")))

    assert json.loads((tmp_path / "esito").read_text(encoding="utf-8"))["total"] == 10


def test_the_csv_for_excel_has_its_own_default_name_beside_the_plain_one(
    invoke: Invoke, sent: Path | str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    plain = ok(invoke("report", "prova"))
    excel = ok(invoke("report", "prova", "--excel"))

    assert plain.stdout == "prova: 10 recipients written to prova-report.csv (CSV).\n"
    assert excel.stdout == (
        "prova: 10 recipients written to prova-report-excel.csv (CSV, for Excel).\n"
    )
    assert (tmp_path / "prova-report.csv").read_bytes().startswith(b"row,address,")
    assert (
        (tmp_path / "prova-report-excel.csv").read_bytes().startswith(b"\xef\xbb\xbfrow;address;")
    )


def test_a_report_is_never_written_through_a_symbolic_link(
    invoke: Invoke, sent: Path | str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    precious = tmp_path / "bashrc"
    precious.write_text("export PATH\n", encoding="utf-8")
    (tmp_path / "esito.csv").symlink_to(precious)

    result = invoke("report", "prova", "-o", "esito.csv")

    assert result.exit_code == 2
    assert result.stderr == (
        "Error: esito.csv is a symbolic link: massiva does not write through links;"
        " remove it and run again (or give another -o)\n"
    )
    assert precious.read_text(encoding="utf-8") == "export PATH\n"
    assert (tmp_path / "esito.csv").is_symlink()


def test_a_failed_export_says_so_and_leaves_no_file(
    invoke: Invoke, sent: Path | str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object, **kwargs: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("massiva.report.as_csv.write_csv", broken)

    result = invoke("report", "prova", "-o", str(tmp_path / "r.csv"))

    assert result.exit_code == 2
    assert f"the report could not be written to {tmp_path / 'r.csv'} (No space left on device)" in (
        result.stderr
    )
    assert [p.name for p in tmp_path.iterdir() if "r.csv" in p.name] == []


def test_the_timeline_is_drawn_by_rome_hour_or_by_rome_day() -> None:
    short = timeline([HourCount("2026-03-10T08", 3, 1), HourCount("2026-03-10T09", 0, 2)])
    # The clocks go forward in Rome on 29 March 2026: that day lasts 23 hours.
    long = timeline(
        [
            HourCount("2026-03-28T22", 1, 0),  # 23:00 on the 28th in Rome
            HourCount("2026-03-29T10", 2, 2),  # 12:00 on the 29th, summer time
            HourCount("2026-04-02T08", 0, 1),
        ]
    )

    assert short.unit == "hour"
    assert [(b.start.isoformat(), b.delivered, b.failed) for b in short.buckets] == [
        ("2026-03-10T09:00:00+01:00", 3, 1),
        ("2026-03-10T10:00:00+01:00", 0, 2),
    ]
    assert long.unit == "day"
    assert [(b.start.isoformat(), b.end.isoformat(), b.delivered) for b in long.buckets] == [
        ("2026-03-28T00:00:00+01:00", "2026-03-29T00:00:00+01:00", 1),
        ("2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00", 2),
        ("2026-04-02T00:00:00+02:00", "2026-04-03T00:00:00+02:00", 0),
    ]
    day = long.buckets[1]
    assert day.end.astimezone(UTC) - day.start.astimezone(UTC) == timedelta(hours=23)


def test_every_value_from_outside_is_guarded_in_csv_and_typed_in_xlsx(
    invoke: Invoke, sent: Path | str, tmp_path: Path
) -> None:
    with connect(sent) as conn:
        conn.execute(
            "UPDATE recipient SET address = '-x@legalmail.it', message_id = '=1+1',"
            " reason = '@SUM(A1)' WHERE address = 'utente009@legalmail.it'"
        )

    ok(invoke("report", "prova", "-o", str(tmp_path / "r.csv")))
    ok(invoke("report", "prova", "-o", str(tmp_path / "r.xlsx")))

    (row,) = [r for r in read_csv(tmp_path / "r.csv") if r["row"] == "11"]
    assert (row["address"], row["message_id"], row["reason"]) == (
        "'-x@legalmail.it",
        "'=1+1",
        "'@SUM(A1)",
    )
    sheet = openpyxl.load_workbook(tmp_path / "r.xlsx")["Recipients"]
    cells = {c.value: c.data_type for line in sheet.iter_rows() for c in line}
    assert cells["=1+1"] == cells["-x@legalmail.it"] == cells["@SUM(A1)"] == "s"


def test_rome_times_match_the_zone_database_across_the_clock_changes() -> None:
    moments = [
        datetime(2026, 3, 29, 0, 0, tzinfo=UTC) + timedelta(minutes=7 * i) for i in range(60)
    ] + [datetime(2026, 10, 25, 0, 0, tzinfo=UTC) + timedelta(minutes=7 * i) for i in range(60)]

    for moment in moments:
        assert rome(to_db(moment)) == rome_iso(moment), moment
    assert rome("2026-03-29T01:30:00+00:00") == "2026-03-29T03:30:00+02:00"  # not to_db's form
    assert rome(None) == ""


async def test_a_key_column_no_json_path_can_name_is_read_in_python(
    sent: Path | str, tmp_path: Path
) -> None:
    # Neither second column exists: its value is '' either way, as an unsent message's id.
    # (PostgreSQL's ->> names any key, so there both are read in SQL: the same values.)
    async with await Store.open(sent, archive_dir=archive_of(tmp_path)) as store:
        campaign = await store.campaigns.get("prova")
        assert campaign is not None
        in_sql = [
            r.keys
            async for batch in store.reports.recipients(campaign.id, keys=("nome", "absent"))
            for r in batch
        ]
        in_python = [
            r.keys
            async for batch in store.reports.recipients(campaign.id, keys=("nome", 'x"y'))
            for r in batch
        ]

    assert [keys[0] for keys in in_python] == [keys[0] for keys in in_sql]
    assert in_sql[2] == (FORMULA, "")
    assert {keys[1] for keys in in_python} == {keys[1] for keys in in_sql} == {""}


def test_after_a_real_reconcile_the_report_shows_outcomes_and_receipt_ids(
    invoke: Invoke, app: Starlette, tmp_path: Path
) -> None:
    addresses = ["mario.rossi@legalmail.it", "fail.bianchi@legalmail.it", "luigi.verdi@gmail.com"]
    rows = [(address, f"Utente {i}", f"C{i:04d}") for i, address in enumerate(addresses)]
    send_all(invoke, write_folder(tmp_path / "c", rows))
    app.state.simulator.clock.advance(600)
    ok(invoke("reconcile"))

    ok(invoke("report", "prova", "--format", "json", "-o", str(tmp_path / "r.json")))

    document = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    found = {r["address"]: r for r in document["recipients"]}
    delivered, failed, accepted = (found[a] for a in addresses)
    assert delivered["state"] == "delivered"
    assert (delivered["mailbox"], delivered["subject"]) == (MAILBOX, "Avviso C0000")
    assert len(delivered["receipt_ids"]) == 2  # the acceptance and the delivery
    assert delivered["receipt_ids"] == sorted(delivered["receipt_ids"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0[12]:00", delivered["delivered_at"])
    assert failed["state"] == "failed" and failed["reason"]
    assert failed["failure_code"] == "5.1.1"  # from the receipt's errore-esteso
    assert failed["reason"].startswith("not delivered: 5.1.1")
    assert accepted["state"] == "accepted" and len(accepted["receipt_ids"]) == 1


SECOND = "secondo@pecmassiva.com"
#: Two mailboxes: the demo box takes 6 recipients a day, the second 4.
POOL_SETTINGS = (
    'daily_limit = 6\n[mailboxes."secondo@pecmassiva.com"]\npassword_env = "SECOND_PW"\n'
    "daily_limit = 4\n"
)
#: The pooled campaign's deadline, long past: 10 March 2026, 18:00 in Rome.
DEADLINE = datetime(2026, 3, 10, 17, 0, tzinfo=UTC)


def pool_cli(app: Starlette, tmp_path: Path, database: Path | str) -> Invoke:
    """``massiva ...`` on ``database`` with two mailboxes configured
    (:data:`POOL_SETTINGS`), both served by the simulator."""
    app.state.simulator.add_mailbox(SECOND, "pw-secondo")
    run = on(database, cli(app, tmp_path, mailbox=POOL_SETTINGS))

    def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
        return run(*args, env={"SECOND_PW": "pw-secondo", **(env or {})})

    return invoke


def send_pooled(
    invoke: Invoke, tmp_path: Path, database: Path | str, *, deadline: bool = True
) -> Path | str:
    """Campaign "prova" of 12 from the pool of two into ``database`` (``invoke``'s): each
    box sends its day's allowance (6 and 4), the last 2 stay pending, never claimed; then
    settled (see settle) and, with ``deadline``, given :data:`DEADLINE`. Returns the
    database."""
    folder = write_folder(tmp_path / "c", people(12))
    toml = folder / "campaign.toml"
    toml.write_text(
        toml.read_text(encoding="utf-8").replace(
            f'mailbox = "{MAILBOX}"', f'mailboxes = ["{MAILBOX}", "{SECOND}"]'
        ),
        encoding="utf-8",
    )
    ok(invoke("campaign", "load", str(folder)))
    sent = json.loads(invoke("send", "prova", "--rate", "1000", "--json").stdout)
    assert sent["sent"] == 10, sent
    db = database
    settle(db)
    if deadline:
        with connect(db) as conn:
            conn.execute(
                "UPDATE campaign SET schedule = ?", (Schedule(not_after=DEADLINE).to_json(),)
            )
    return db


def claimed_by(db: Path | str) -> dict[int, str]:
    """Each recipient's row -> the mailbox that claimed it, as stored ('' for none)."""
    with connect(db) as conn:
        return dict(conn.execute("SELECT row, coalesce(mailbox, '') FROM recipient"))


@pytest.fixture
def pooled(app: Starlette, tmp_path: Path, database: Path | str) -> tuple[Invoke, Path | str]:
    invoke = pool_cli(app, tmp_path, database)
    return invoke, send_pooled(invoke, tmp_path, database)


def test_each_row_names_the_mailbox_that_sent_it_and_the_unsent_are_late_in_csv(
    pooled: tuple[Invoke, Path | str], tmp_path: Path
) -> None:
    invoke, db = pooled

    ok(invoke("report", "prova", "-o", str(tmp_path / "r.csv")))

    rows = read_csv(tmp_path / "r.csv")
    stored = claimed_by(db)
    assert {int(row["row"]): row["mailbox"] for row in rows} == stored
    assert Counter(row["mailbox"] for row in rows) == {MAILBOX: 6, SECOND: 4, "": 2}
    unsent = [row for row in rows if row["state"] == "pending"]
    assert [(r["row"], r["mailbox"], r["reason"]) for r in unsent] == [
        ("12", "", "not sent by the deadline"),
        ("13", "", "not sent by the deadline"),
    ]
    # The other reasons are as stored.
    assert by_address(rows)["utente001@legalmail.it"]["reason"] == FAILED_REASON


async def test_a_pooled_late_csv_by_several_processes_is_the_one_of_one(
    pooled: tuple[Invoke, Path | str], tmp_path: Path
) -> None:
    _, db = pooled
    async with await Store.open(db, archive_dir=archive_of(tmp_path)) as store:
        report, _ = await open_report(store, "prova")
        for processes in (1, 2):
            with output_file(tmp_path / f"{processes}.csv") as out:
                await write_csv(report, out, processes=processes)

    assert (tmp_path / "2.csv").read_bytes() == (tmp_path / "1.csv").read_bytes()
    assert sum("not sent by the deadline" in r["reason"] for r in read_csv(tmp_path / "2.csv")) == 2


def test_json_lists_the_pool_the_schedule_and_what_each_box_sent(
    pooled: tuple[Invoke, Path | str], tmp_path: Path
) -> None:
    invoke, db = pooled

    ok(invoke("report", "prova", "-o", str(tmp_path / "r.json")))

    document = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    campaign = document["campaign"]
    assert campaign["mailbox"] == MAILBOX  # the first, as before pools
    assert campaign["mailboxes"] == [MAILBOX, SECOND]
    assert campaign["schedule"] == "until 10/03/2026 18:00 +01:00"
    assert campaign["past_deadline"] is True
    assert document["counts"]["pending"] == 2  # the state stays pending...
    assert document["not_sent_by_deadline"] == 2  # ...and the summary counts them
    recipients = document["recipients"]
    assert {r["row"]: r["mailbox"] or "" for r in recipients} == claimed_by(db)
    assert [r["mailbox"] for r in recipients if r["state"] == "pending"] == [None, None]
    assert [r["reason"] for r in recipients if r["state"] == "pending"] == [
        "not sent by the deadline"
    ] * 2
    boxes = document["mailboxes"]
    assert [(b["mailbox"], b["recipients"]) for b in boxes] == [(MAILBOX, 6), (SECOND, 4)]
    for box in boxes:  # each box's counts are its rows'
        states = Counter(r["state"] for r in recipients if r["mailbox"] == box["mailbox"])
        assert {s: n for s, n in box["counts"].items() if n} == states


def test_xlsx_summary_lists_the_pool_the_schedule_the_late_and_each_box(
    pooled: tuple[Invoke, Path | str], tmp_path: Path
) -> None:
    invoke, db = pooled

    ok(invoke("report", "prova", "-o", str(tmp_path / "r.xlsx")))

    book = openpyxl.load_workbook(tmp_path / "r.xlsx")
    lines = [row for row in book["Summary"].iter_rows(values_only=True)]
    summary = {row[0]: row[1:] for row in lines if row[0]}
    assert summary["Mailboxes"][0] == f"{MAILBOX}, {SECOND}"
    assert summary["Schedule"][0] == "until 10/03/2026 18:00 +01:00"
    assert summary["not sent by the deadline"][0] == 2
    assert summary["pending"][0] == 2
    delivered = Counter(
        box for row, box in claimed_by(db).items() if row in (2, 4)
    )  # settle delivered rows 2 and 4
    assert summary[MAILBOX][:2] == (6, delivered[MAILBOX])
    assert summary[SECOND][:2] == (4, delivered[SECOND])
    sheet = list(book["Recipients"].iter_rows(values_only=True))
    column = sheet[0].index("mailbox")
    assert {row[0]: row[column] or "" for row in sheet[1:]} == claimed_by(db)
    reason = sheet[0].index("reason")
    assert [row[reason] for row in sheet[1:] if row[0] in (12, 13)] == [
        "not sent by the deadline"
    ] * 2


def test_before_the_deadline_the_pending_are_only_pending(
    app: Starlette, tmp_path: Path, database: Path | str
) -> None:
    invoke = pool_cli(app, tmp_path, database)
    db = send_pooled(invoke, tmp_path, database, deadline=False)
    future = Schedule(not_after=datetime(2999, 1, 1, tzinfo=UTC))
    with connect(db) as conn:
        conn.execute("UPDATE campaign SET schedule = ?", (future.to_json(),))

    ok(invoke("report", "prova", "-o", str(tmp_path / "r.json")))

    document = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert document["campaign"]["past_deadline"] is False
    assert document["not_sent_by_deadline"] == 0
    assert [r["reason"] for r in document["recipients"] if r["state"] == "pending"] == [None] * 2


#: The report's time and the campaign's loading time, the same on both engines.
GENERATED = datetime(2026, 3, 11, 9, 0, tzinfo=UTC)
LOADED = "2026-03-09T16:00:00.000000+00:00"
#: More failures, one recipient each, as many as settle's: tied, they are ordered by
#: their bytes (SQLite's order), which is not their order in Italian. With settle's
#: three, they are more than the summary lists: which ones it keeps depends on the order.
TIED_REASONS = (
    "b minuscola",
    "B maiuscola: 5.1.1",
    "à accentata",
    'a, "virgolette"\r\nriga due',
    "Zeta",
    "éclair",
    "_sottolineato",
)


def italian_database(server: PostgresServer, name: str) -> str:
    """A new, empty database of ``server`` that orders text in Italian (ICU), as a
    server set up in Italy would; its URL."""
    server.drop_database(name)
    server.execute(
        sql.SQL(
            "CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C'"
            " LOCALE_PROVIDER icu ICU_LOCALE 'it-IT'"
        ).format(sql.Identifier(name))
    )
    return server.url(name)


def same_everywhere(database: Path | str) -> None:
    """What settle leaves that could differ from run to run made the same: the time the
    campaign was loaded (the wall clock's) and the message ids (the simulator's sequence,
    in the order the posts went); then :data:`TIED_REASONS` given to rows 9 on."""
    with connect(database) as conn:
        conn.execute("UPDATE campaign SET created_at = ?, updated_at = ?", (LOADED, LOADED))
        rows = conn.execute("SELECT id, row FROM recipient WHERE message_id IS NOT NULL")
        conn.executemany(
            "UPDATE recipient SET message_id = ? WHERE id = ?",
            [(f"2026031009000{row:03d}", id_) for id_, row in rows.fetchall()],
        )
        for row, reason in enumerate(TIED_REASONS, start=9):
            conn.execute(
                "UPDATE recipient SET state = 'failed', failed_at = ?, reason = ? WHERE row = ?",
                ("2026-03-10T11:00:00.000000+00:00", reason, row),
            )


async def every_format(database: Path | str, folder: Path) -> dict[str, bytes]:
    """The report of "prova" in ``database`` generated at :data:`GENERATED`, in every
    format (the XLSX as its cells' values: its zip dates its files), files in
    ``folder``."""
    found = {}
    async with await Store.open(database, archive_dir=archive_of(folder)) as store:
        opened, _ = await open_report(store, "prova")
        report = dataclasses.replace(opened, generated_at=GENERATED)
        formats: list[tuple[str, str, dict[str, Any]]] = [
            ("plain.csv", "csv", {}),
            ("excel.csv", "csv", {"excel": True}),
            ("r.json", "json", {}),
            ("it.html", "html", {}),
            ("en.html", "html", {"lang": "en", "full_table": True}),
            ("r.xlsx", "xlsx", {}),
        ]
        for name, fmt, options in formats:
            with output_file(folder / name) as out:
                await export(report, fmt, out, **options)
            found[name] = (folder / name).read_bytes()
        with output_file(folder / "parts.csv") as out:
            await write_csv(report, out, processes=3)
        found["parts.csv"] = (folder / "parts.csv").read_bytes()
    book = openpyxl.load_workbook(folder / "r.xlsx")
    cells = [[list(row) for row in sheet.iter_rows(values_only=True)] for sheet in book]
    found["r.xlsx"] = repr((book.sheetnames, cells)).encode()
    return found


def test_the_same_campaign_gives_the_same_report_on_both_engines(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    folder = write_folder(tmp_path / "c", people(16))  # one folder: the reports name it
    name = "report_italian"
    databases: dict[str, Path | str] = {
        "sqlite": tmp_path / "sqlite" / "massiva.db",
        "postgresql": italian_database(postgres, name),
    }
    found = {}
    try:
        for engine, database in databases.items():
            home = tmp_path / engine
            home.mkdir(exist_ok=True)
            # Each its own simulator, on the same frozen clock: the same sending times.
            app = create_app(
                SimulatorSettings(send_rate=None), clock=SimClock(start=START, speed=0)
            )
            send_all(on(database, cli(app, home)), folder)
            settle(database)
            same_everywhere(database)
            found[engine] = asyncio.run(every_format(database, home))
    finally:
        postgres.drop_database(name)

    for fmt, sqlite in found["sqlite"].items():
        assert found["postgresql"][fmt] == sqlite, fmt
    # What was compared is what it should be: every recipient, the parts joined as one,
    # and the reasons in SQLite's order (by bytes), whatever the server's collation.
    assert len(read_csv(tmp_path / "postgresql" / "plain.csv")) == 16
    assert found["sqlite"]["parts.csv"] == found["sqlite"]["plain.csv"]
    document = json.loads(found["postgresql"]["r.json"])
    failures = sorted(
        [("failed", FAILED_REASON), ("expired", EXPIRED_REASON), ("rejected", REJECTED_REASON)]
        + [("failed", reason) for reason in TIED_REASONS]
    )
    assert [(r["state"], r["reason"], r["count"]) for r in document["failure_reasons"]] == [
        (state, reason, 1) for state, reason in failures[:8]
    ]
    assert document["other_failure_reasons"] == 2
    assert document["generated_at"] == "2026-03-11T10:00:00+01:00"
