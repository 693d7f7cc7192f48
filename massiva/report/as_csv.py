"""The report as CSV: a header, then one line per recipient, streamed.

Plain CSV is UTF-8, comma-separated, without a byte-order mark: what scripts expect.
``excel=True`` writes what Excel opens right on an Italian machine: ``;``-separated
(its list separator where the decimal mark is a comma) and with a UTF-8 byte-order mark
(without it Excel reads accents as Windows-1252).

Formula injection: a spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or
``@`` as a formula (tab and carriage return can hide such a start), and a CSV cell has
no type to say "text". So such a cell is written with a leading ``'``, which spreadsheets
take as "this is text": ``=HYPERLINK("http://x","y")`` is written
``'=HYPERLINK("http://x","y")``. The rule is applied to the header and to every cell
that comes from outside massiva (the address, the key columns, the message id, the
reason); the others are written by massiva itself and start with a digit or a letter.
The price is that a value such as ``+39 06 1234`` or ``-5`` shows its ``'`` too. The
JSON export keeps every value exactly as stored.
"""

from __future__ import annotations

import csv
import io
from typing import BinaryIO

from massiva.report.rows import Report

#: The first characters that make a spreadsheet cell a formula (or hide one).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_TRIGGER_CHARS = frozenset(FORMULA_TRIGGERS)


def inert(value: str) -> str:
    """``value`` as a spreadsheet will take as text: a leading ``'`` if it starts with
    one of :data:`FORMULA_TRIGGERS`."""
    return "'" + value if value.startswith(FORMULA_TRIGGERS) else value


async def write_csv(report: Report, out: BinaryIO, *, excel: bool = False) -> int:
    """Write ``report`` to ``out`` as CSV (see the module's docstring); returns the number
    of recipients written."""
    text = io.TextIOWrapper(
        out, encoding="utf-8-sig" if excel else "utf-8", newline="", write_through=False
    )
    try:
        writer = csv.writer(text, delimiter=";" if excel else ",", lineterminator="\r\n")
        writer.writerow([inert(column) for column in report.columns])
        # The cells massiva writes itself (row number, state, times, receipt ids) start
        # with a digit or a letter; the others come from the CSV or the vendor.
        keys = len(report.key_columns)
        checked = (1, *range(2, 2 + keys), 3 + keys, 8 + keys)  # address, keys, id, reason
        written = 0
        async for batch in report.rows():
            lines = [row.cells() for row in batch]
            for cells in lines:
                for index in checked:
                    if cells[index][:1] in _TRIGGER_CHARS:  # inert(), inlined: it is hot
                        cells[index] = "'" + cells[index]
            writer.writerows(lines)
            written += len(batch)
        text.flush()
    finally:
        text.detach()  # the caller owns ``out``: leave it open
    return written
