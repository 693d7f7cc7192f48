"""The report as an Excel workbook: a "Summary" sheet, then a "Recipients" sheet.

openpyxl in write-only mode streams each row to a temporary file as it comes, so memory
stays flat however many recipients there are. A sheet holds at most 1,048,576 rows
(Excel's limit): a bigger campaign goes on in "Recipients 2", and so on.

Times are date-time cells (sortable and filterable as dates), in Europe/Rome local time,
shown ``yyyy-mm-dd hh:mm:ss``: an Excel cell has no time zone, so the offset from UTC
that the CSV and JSON give is not in them (the Summary sheet says so). The header row is
bold, stays in view, and has filters over the recipients.

Formula injection: every value from outside is written as a text cell, and a text cell
is never evaluated (openpyxl would turn a text starting with ``=`` into a formula, so those are
typed as text explicitly). Values therefore stay exactly as stored, with no ``'`` in
front: ``=HYPERLINK("http://x","y")`` is a plain string cell. Two things Excel cannot
hold are changed: control characters (other than tab and line breaks) are dropped, and a
value longer than 32,767 characters is cut there, ending in "…".
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, BinaryIO

from openpyxl import Workbook  # type: ignore[import-untyped]
from openpyxl.cell import WriteOnlyCell  # type: ignore[import-untyped]
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE  # type: ignore[import-untyped]
from openpyxl.styles import Font  # type: ignore[import-untyped]
from openpyxl.utils import get_column_letter  # type: ignore[import-untyped]

from massiva.lifecycle import State
from massiva.report.rows import COLUMNS_AFTER_KEYS, COLUMNS_BEFORE_KEYS, NOT_SENT, Report
from massiva.report.summary import Summary
from massiva.store import STATES
from massiva.times import ROME

SHEET_ROWS = 1_048_576
CELL_CHARS = 32_767
TIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
TIME_COLUMNS = ("sent_at", "accepted_at", "delivered_at", "failed_at")
_WIDTHS = {
    "row": 7,
    "address": 34,
    "mailbox": 28,
    "subject": 40,
    "state": 11,
    "message_id": 20,
    "sent_at": 20,
    "accepted_at": 20,
    "delivered_at": 20,
    "failed_at": 20,
    "failure_code": 13,
    "reason": 50,
    "receipt_ids": 18,
}
_KEY_WIDTH = 18
_BOLD = Font(bold=True)


def _storable(value: str) -> str:
    """``value`` as Excel can hold it: no control characters, at most CELL_CHARS."""
    if ILLEGAL_CHARACTERS_RE.search(value):
        value = ILLEGAL_CHARACTERS_RE.sub("", value)
    if len(value) > CELL_CHARS:
        value = value[: CELL_CHARS - 1] + "…"
    return value


class _Sheets:
    """Typed cells for the sheets of one workbook."""

    def __init__(self, workbook: Any) -> None:
        self.workbook = workbook

    def text(self, sheet: Any, value: str) -> Any:
        """``value`` as a text cell that can never be a formula."""
        value = _storable(value)
        if value.startswith("="):  # openpyxl would make it a formula: type it as text
            cell = WriteOnlyCell(sheet, value=value)
            cell.data_type = "s"
            return cell
        return value

    def value(self, sheet: Any, value: str | int | datetime) -> Any:
        """A cell of the Summary: text, a time, or a number."""
        if isinstance(value, str):
            return self.text(sheet, value)
        return self.time(sheet, value) if isinstance(value, datetime) else value

    def time(self, sheet: Any, moment: str | datetime) -> Any:
        """A time (:func:`massiva.report.rows.rome`'s text, or an aware datetime) as a
        date-time cell in Rome local time; None (an empty cell) for ''."""
        if not moment:
            return None
        if isinstance(moment, datetime):
            local = moment.astimezone(ROME).replace(tzinfo=None, microsecond=0)
        else:  # the wall clock without its offset: "2026-03-10T09:30:00+01:00"
            local = datetime.fromisoformat(moment[:19])
        cell = WriteOnlyCell(sheet, value=local)
        cell.number_format = TIME_FORMAT
        return cell

    def bold(self, sheet: Any, values: list[str]) -> list[Any]:
        """``values`` as bold text cells: a header."""
        cells = []
        for value in values:
            cell = WriteOnlyCell(sheet, value=_storable(value))
            cell.data_type = "s"
            cell.font = _BOLD
            cells.append(cell)
        return cells

    def recipients_sheet(self, report: Report, number: int) -> Any:
        """A new sheet of recipients, its header written."""
        sheet = self.workbook.create_sheet("Recipients" if number == 1 else f"Recipients {number}")
        widths = [
            *(_WIDTHS[column] for column in COLUMNS_BEFORE_KEYS),
            *(_KEY_WIDTH for _ in report.key_columns),
            *(_WIDTHS[column] for column in COLUMNS_AFTER_KEYS),
        ]
        for index, width in enumerate(widths, 1):
            sheet.column_dimensions[get_column_letter(index)].width = width
        sheet.freeze_panes = "C2"  # the header and the row and address stay in view
        sheet.append(self.bold(sheet, list(report.columns)))
        return sheet


def _filter(sheet: Any, columns: int, rows: int) -> None:
    """Filters on the header of ``sheet`` over its ``rows`` rows (the header's included)."""
    sheet.auto_filter.ref = f"A1:{get_column_letter(columns)}{rows}"


def _summary(sheets: _Sheets, report: Report, summary: Summary) -> None:
    sheet = sheets.workbook.create_sheet("Summary")
    sheet.column_dimensions["A"].width = 22
    sheet.column_dimensions["B"].width = 60
    sheet.column_dimensions["C"].width = 12
    campaign = report.campaign

    def line(*values: str | int | datetime) -> None:
        sheet.append([sheets.value(sheet, v) for v in values])

    line("Delivery report", campaign.name)
    line("Mailboxes" if len(report.mailboxes) > 1 else "Mailbox", ", ".join(report.mailboxes))
    line("Schedule", campaign.schedule.describe("en"))
    line("Campaign folder", campaign.folder)
    line("Campaign state", campaign.state)
    line("Loaded", campaign.created_at)
    line("Report generated", report.generated_at)
    line(
        "Times",
        "Europe/Rome local time (the clock in Italy), as date-time cells: Excel has no"
        " time zones, so they carry no offset from UTC (+01:00 in winter, +02:00 in"
        " summer). In the hour the clocks go back (late October, 02:00-03:00) a time"
        " can name two moments: the CSV and JSON reports give the offset.",
    )
    line("Recipients", "every one is on the sheet Recipients, in the order of the file")
    line("Failure code", "the status code the failure receipt gives (5.1.1, 5.4.1...)")
    if report.late:
        line(
            "Deadline passed",
            f"the pending recipients were {NOT_SENT} and never will be: their state stays"
            f" pending, their reason says so ({report.not_sent_by_deadline})",
        )
    line()
    sheet.append(sheets.bold(sheet, ["State", "Recipients"]))
    for state in STATES:
        line(state, summary.counts[state])
    line("total", summary.total)
    if report.late:
        line(NOT_SENT, report.not_sent_by_deadline)
    line()
    sheet.append(sheets.bold(sheet, ["Mailbox", "Recipients it sent", "Delivered"]))
    for box in summary.mailboxes:
        line(box.mailbox, box.total, box.counts[State.DELIVERED])
    line()
    sheet.append(sheets.bold(sheet, ["Failure reasons"]))
    sheet.append(sheets.bold(sheet, ["State", "Reason", "Recipients"]))
    for reason in summary.reasons:
        line(reason.state, reason.reason or "(no reason given)", reason.count)
    if summary.other_reasons:
        line("other", "other reasons", summary.other_reasons)
    if not summary.reasons:
        line("", "no recipient failed")


async def write_xlsx(report: Report, out: BinaryIO) -> int:
    """Write ``report`` to ``out`` as an XLSX workbook (see the module's docstring);
    returns the number of recipients written."""
    sheets = _Sheets(Workbook(write_only=True))
    _summary(sheets, report, await report.summary())
    columns = len(report.columns)
    times = {report.columns.index(column) for column in TIME_COLUMNS}
    number, sheet = 1, sheets.recipients_sheet(report, 1)
    on_sheet, written = 1, 0
    async for batch in report.rows():
        for row in batch:
            if on_sheet == SHEET_ROWS:
                _filter(sheet, columns, on_sheet)
                number += 1
                sheet, on_sheet = sheets.recipients_sheet(report, number), 1
            cells: list[Any] = [row.row]
            cells += [
                sheets.time(sheet, cell) if index in times else sheets.text(sheet, cell)
                for index, cell in enumerate(row.cells()[1:], 1)
            ]
            sheet.append(cells)
            on_sheet += 1
        written += len(batch)
    _filter(sheet, columns, on_sheet)  # openpyxl writes it when the sheet is closed
    sheets.workbook.save(out)
    return written
