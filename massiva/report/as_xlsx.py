"""The report as an Excel workbook: a "Summary" sheet, then a "Recipients" sheet.

openpyxl in write-only mode streams each row to a temporary file as it comes, so memory
stays flat however many recipients there are. A sheet holds at most 1,048,576 rows
(Excel's limit): a bigger campaign goes on in "Recipients 2", and so on.

Formula injection: every value is written as a text cell, and a text cell is never
evaluated (openpyxl would turn a text starting with ``=`` into a formula, so those are
typed as text explicitly). Values therefore stay exactly as stored, with no ``'`` in
front: ``=HYPERLINK("http://x","y")`` is a plain string cell. Two things Excel cannot
hold are changed: control characters (other than tab and line breaks) are dropped, and a
value longer than 32,767 characters is cut there, ending in "…".
"""

from __future__ import annotations

from typing import Any, BinaryIO

from openpyxl import Workbook  # type: ignore[import-untyped]
from openpyxl.cell import WriteOnlyCell  # type: ignore[import-untyped]
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE  # type: ignore[import-untyped]
from openpyxl.utils import get_column_letter  # type: ignore[import-untyped]

from massiva.report.rows import COLUMNS_AFTER_KEYS, COLUMNS_BEFORE_KEYS, Report, rome_iso
from massiva.report.summary import Summary
from massiva.store import STATES

SHEET_ROWS = 1_048_576
CELL_CHARS = 32_767
_WIDTHS = {
    "row": 7,
    "address": 34,
    "state": 11,
    "message_id": 20,
    "sent_at": 26,
    "accepted_at": 26,
    "delivered_at": 26,
    "failed_at": 26,
    "reason": 50,
    "receipt_ids": 18,
}
_KEY_WIDTH = 18


class _Sheets:
    """Typed text cells for the sheets of one workbook."""

    def __init__(self, workbook: Any) -> None:
        self.workbook = workbook

    def text(self, sheet: Any, value: str) -> Any:
        """``value`` as a text cell that can never be a formula."""
        if ILLEGAL_CHARACTERS_RE.search(value):
            value = ILLEGAL_CHARACTERS_RE.sub("", value)
        if len(value) > CELL_CHARS:
            value = value[: CELL_CHARS - 1] + "…"
        if value.startswith("="):  # openpyxl would make it a formula: type it as text
            cell = WriteOnlyCell(sheet, value=value)
            cell.data_type = "s"
            return cell
        return value

    def recipients_sheet(self, report: Report, number: int) -> Any:
        sheet = self.workbook.create_sheet("Recipients" if number == 1 else f"Recipients {number}")
        widths = [
            *(_WIDTHS[column] for column in COLUMNS_BEFORE_KEYS),
            *(_KEY_WIDTH for _ in report.key_columns),
            *(_WIDTHS[column] for column in COLUMNS_AFTER_KEYS),
        ]
        for index, width in enumerate(widths, 1):
            sheet.column_dimensions[get_column_letter(index)].width = width
        sheet.freeze_panes = "C2"  # the header and the row and address stay in view
        sheet.append([self.text(sheet, column) for column in report.columns])
        return sheet


def _summary(sheets: _Sheets, report: Report, summary: Summary) -> None:
    sheet = sheets.workbook.create_sheet("Summary")
    sheet.column_dimensions["A"].width = 22
    sheet.column_dimensions["B"].width = 60
    sheet.column_dimensions["C"].width = 12
    campaign = report.campaign

    def line(*values: str | int) -> None:
        sheet.append([sheets.text(sheet, v) if isinstance(v, str) else v for v in values])

    line("Delivery report", campaign.name)
    line("Mailbox", campaign.mailbox)
    line("Campaign folder", campaign.folder)
    line("Campaign state", campaign.state)
    line("Loaded", rome_iso(campaign.created_at))
    line("Report generated", rome_iso(report.generated_at))
    line("Times", "Europe/Rome, ISO 8601 with the offset from UTC")
    line("Recipients", "every one is on the sheet Recipients, in the order of the file")
    line()
    line("State", "Recipients")
    for state in STATES:
        line(state, summary.counts[state])
    line("total", summary.total)
    line()
    line("Failure reasons")
    line("State", "Reason", "Recipients")
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
    number, sheet = 1, sheets.recipients_sheet(report, 1)
    on_sheet, written = 1, 0
    async for batch in report.rows():
        for row in batch:
            if on_sheet == SHEET_ROWS:
                number += 1
                sheet, on_sheet = sheets.recipients_sheet(report, number), 1
            cells: list[Any] = [row.row]
            cells += [sheets.text(sheet, cell) for cell in row.cells()[1:]]
            sheet.append(cells)
            on_sheet += 1
        written += len(batch)
    sheets.workbook.save(out)
    return written
