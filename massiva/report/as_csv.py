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

import asyncio
import csv
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, TextIO

from massiva.report.errors import ReportError
from massiva.report.rows import Report, ReportRow
from massiva.store import Store
from massiva.workers import command, environment

#: From this many recipients, a CSV export is written by one process per core: each
#: costs about half a second to start, and writes 50,000 rows a second here.
PARALLEL_FROM = 200_000

#: The first characters that make a spreadsheet cell a formula (or hide one).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_TRIGGER_CHARS = frozenset(FORMULA_TRIGGERS)


def inert(value: str) -> str:
    """``value`` as a spreadsheet will take as text: a leading ``'`` if it starts with
    one of :data:`FORMULA_TRIGGERS`."""
    return "'" + value if value.startswith(FORMULA_TRIGGERS) else value


class Lines:
    """Rows as CSV text, exactly as ``csv.writer`` (minimal quoting, CRLF) writes them.

    A row none of whose cells holds the delimiter, a quote or a line break needs no
    quoting: it is joined directly, three times faster than csv.writer, which a million
    rows feel. Any other row is written by csv.writer itself.
    """

    def __init__(self, delimiter: str) -> None:
        self._delimiter = delimiter
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, delimiter=delimiter, lineterminator="\r\n")

    def text(self, rows: list[list[str]]) -> str:
        """The CSV text of ``rows`` (each a list of at least two cells)."""
        delimiter, buffer, writer = self._delimiter, self._buffer, self._writer
        for cells in rows:
            line = delimiter.join(cells)
            if (
                line.count(delimiter) == len(cells) - 1
                and '"' not in line
                and "\n" not in line
                and "\r" not in line
            ):
                buffer.write(line)
                buffer.write("\r\n")
            else:
                writer.writerow(cells)
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text


async def write_csv(
    report: Report, out: BinaryIO, *, excel: bool = False, processes: int | None = None
) -> int:
    """Write ``report`` to ``out`` as CSV (see the module's docstring); returns the number
    of recipients written.

    ``processes`` processes write it, each a consecutive part of the recipients, joined in
    order here; by default one under :data:`PARALLEL_FROM` recipients, else one per core.
    """
    delimiter = ";" if excel else ","
    if processes is None:
        processes = (os.cpu_count() or 1) if report.summary.total >= PARALLEL_FROM else 1
    ranges = await report.store.reports.id_ranges(report.campaign.id, processes)
    first, others = (ranges[0], ranges[1:]) if ranges else ((0, 0), [])
    args = (report.campaign.id, report.key_columns)
    text = io.TextIOWrapper(
        out, encoding="utf-8-sig" if excel else "utf-8", newline="", write_through=False
    )
    try:
        text.write(Lines(delimiter).text([[inert(column) for column in report.columns]]))
        if not others:
            return await _write_rows(report.store, *args, first, delimiter, text)
        with tempfile.TemporaryDirectory(prefix="massiva-report-") as folder:
            parts = [Path(folder, f"{number}.csv") for number in range(len(others))]
            workers = [
                await _start_part(report, ids, delimiter, part)
                for ids, part in zip(others, parts, strict=True)
            ]
            try:
                written = await _write_rows(report.store, *args, first, delimiter, text)
                for worker in workers:
                    written += await _finish_part(worker)
            finally:
                for worker in workers:
                    if worker.returncode is None:  # this process failed or was interrupted
                        worker.kill()
                        await worker.wait()
            text.flush()
            await asyncio.to_thread(_append, parts, out)
        return written
    finally:
        text.flush()
        text.detach()  # the caller owns ``out``: leave it open


async def _write_rows(
    store: Store,
    campaign_id: int,
    key_columns: tuple[str, ...],
    ids: tuple[int, int],
    delimiter: str,
    text: TextIO,
) -> int:
    """Write the recipients with ids in ``ids`` (see ReportQueries.recipients) as CSV
    lines to ``text``; returns how many."""
    lines = Lines(delimiter)
    # The cells massiva writes itself (row number, state, times, receipt ids) start with
    # a digit or a letter; the others come from the CSV or the vendor.
    keys = len(key_columns)
    checked = (1, *range(2, 2 + keys), 3 + keys, 8 + keys)  # address, keys, id, reason
    written = 0
    async for batch in store.reports.recipients(campaign_id, keys=key_columns, ids=ids):
        rows = ReportRow.cells_of(batch)
        for cells in rows:
            for index in checked:
                if cells[index][:1] in _TRIGGER_CHARS:  # inert(), inlined: it is hot
                    cells[index] = "'" + cells[index]
        text.write(lines.text(rows))
        written += len(rows)
    return written


async def write_part(
    database: Path,
    campaign_id: int,
    key_columns: tuple[str, ...],
    ids: tuple[int, int],
    delimiter: str,
    part: Path,
) -> int:
    """One part of a parallel export (what a worker process runs): the recipients with
    ids in ``ids`` as CSV lines in the file ``part``; returns how many."""
    async with await Store.open(database) as store:
        with part.open("w", encoding="utf-8", newline="") as text:
            return await _write_rows(store, campaign_id, key_columns, ids, delimiter, text)


async def _start_part(
    report: Report, ids: tuple[int, int], delimiter: str, part: Path
) -> asyncio.subprocess.Process:
    """A worker process writing the recipients with ids in ``ids`` to ``part``."""
    spec = {
        "database": str(report.store.path),
        "campaign_id": report.campaign.id,
        "key_columns": report.key_columns,
        "ids": ids,
        "delimiter": delimiter,
        "part": str(part),
    }
    return await asyncio.create_subprocess_exec(
        *command("massiva.report.csv_part", json.dumps(spec)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment(),
    )


async def _finish_part(worker: asyncio.subprocess.Process) -> int:
    """How many recipients ``worker`` wrote, once it is done."""
    out, err = await worker.communicate()
    if worker.returncode != 0:
        said = err.decode(errors="replace").strip().splitlines() or ["(it said nothing)"]
        raise ReportError(
            f"a process writing part of the CSV failed (exit {worker.returncode}): {said[-1]}"
        )
    return int(out)


def _append(parts: list[Path], out: BinaryIO) -> None:
    """Copy the ``parts`` to the end of ``out``, in order."""
    for part in parts:
        with part.open("rb") as file:
            shutil.copyfileobj(file, out, 1 << 20)
