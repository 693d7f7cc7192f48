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
that comes from outside massiva (the address, the key columns, the mailbox, the subject,
the message id, the reason); the others are written by massiva itself and start with a
digit or a letter.
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
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO, TextIO

from massiva.lifecycle import State
from massiva.report.errors import ReportError
from massiva.report.rows import Report, failure_code, not_sent_reason, rome
from massiva.store import Store
from massiva.store.database import SqliteDatabase
from massiva.store.reports import ReportRecord
from massiva.workers import command, ended, environment

#: From this many recipients, a CSV export is written by one process per core: each
#: costs about half a second to start, and writes 60,000 rows a second here.
PARALLEL_FROM = 200_000

#: The environment variable that hands a worker the URL of a PostgreSQL database.
PART_DATABASE_ENV = "MASSIVA_REPORT_PART_DATABASE"

#: The first characters that make a spreadsheet cell a formula (or hide one).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_TRIGGER_CHARS = frozenset(FORMULA_TRIGGERS)


def inert(value: str) -> str:
    """``value`` as a spreadsheet will take as text: a leading ``'`` if it starts with
    one of :data:`FORMULA_TRIGGERS`."""
    return "'" + value if value.startswith(FORMULA_TRIGGERS) else value


class Lines:
    """Recipients of a campaign as CSV lines: exactly what ``csv.writer`` (minimal
    quoting, CRLF) writes of their :meth:`ReportRow.cells`, the values from outside made
    :func:`inert`; ``late``: the campaign is past its deadline, so a pending recipient's
    reason is :func:`~massiva.report.rows.not_sent_reason`'s.

    A line none of whose cells holds the delimiter, a quote or a line break needs no
    quoting (only the cells from outside are looked at: massiva's own never hold one):
    it is made in one f-string straight from the stored record, with no row object and
    no list of cells (a third less time a line, which a million rows feel). Any other
    line is written by csv.writer itself. A pool has a few mailboxes: each one's cell is
    made, and looked at, once.
    """

    def __init__(self, delimiter: str, keys: int, *, late: bool = False) -> None:
        self._delimiter = delimiter
        self._late = late
        # mailbox -> its cell, or None when the cell needs quoting.
        self._boxes: dict[str, str | None] = {}
        # The key cells and their delimiters sit between the address and the mailbox.
        self._after_keys = delimiter if keys else ""
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, delimiter=delimiter, lineterminator="\r\n")

    def header(self, columns: Iterable[str]) -> str:
        """The header line of ``columns``."""
        self._writer.writerow([inert(column) for column in columns])
        return self._taken()

    def _box(self, mailbox: str) -> str | None:
        """The cell of ``mailbox``, None if it needs quoting (remembered)."""
        cell = inert(mailbox)
        plain = not any(c in cell for c in (self._delimiter, '"', "\n", "\r"))
        found = self._boxes[mailbox] = cell if plain else None
        return found

    def text(self, records: Iterable[ReportRecord]) -> str:
        """The CSV lines of ``records``."""
        d, after_keys, triggers = self._delimiter, self._after_keys, _TRIGGER_CHARS
        boxes, late = self._boxes, self._late
        failed_state = str(State.FAILED)  # a plain str: the quickest comparison
        pending_state = str(State.PENDING)
        lines = []
        for (
            _,
            row,
            address,
            mailbox,
            subject,
            state,
            message_id,
            sent_at,
            accepted_at,
            delivered_at,
            failed_at,
            reason,
            receipts,
            keys,
        ) in records:
            # Only a failed recipient has a code: the others skip the search.
            code = failure_code(state, reason) if state == failed_state else ""
            if late and state == pending_state:
                reason = not_sent_reason(reason)
            # rome() of None is '': not called for it, which a million rows feel.
            sent = rome(sent_at) if sent_at is not None else ""
            accepted = rome(accepted_at) if accepted_at is not None else ""
            delivered = rome(delivered_at) if delivered_at is not None else ""
            failed = rome(failed_at) if failed_at is not None else ""
            box = boxes[mailbox] if mailbox in boxes else self._box(mailbox)
            # Only the cells from outside can hold the delimiter, a quote or a line
            # break: the others are massiva's own (a number, a state, times, a code,
            # receipt ids), and the mailbox was looked at once.
            outside = f"{address}{subject}{message_id}{reason}{''.join(keys)}"
            if (
                box is not None
                and d not in outside
                and '"' not in outside
                and "\n" not in outside
                and "\r" not in outside
            ):
                # inert(), inlined: it is hot.
                if address[:1] in triggers:
                    address = "'" + address
                if subject[:1] in triggers:
                    subject = "'" + subject
                if message_id[:1] in triggers:
                    message_id = "'" + message_id
                if reason[:1] in triggers:
                    reason = "'" + reason
                for key in keys:
                    if key[:1] in triggers:
                        keys = tuple(inert(key) for key in keys)
                        break
                lines.append(
                    f"{row}{d}{address}{d}{d.join(keys)}{after_keys}{box}{d}{subject}{d}"
                    f"{state}{d}{message_id}{d}{sent}{d}{accepted}{d}{delivered}{d}{failed}{d}"
                    f"{code}{d}{reason}{d}{receipts}"
                )
            else:
                cells = [str(row), inert(address), *(inert(key) for key in keys), inert(mailbox)]
                cells += [inert(subject), state, inert(message_id), sent, accepted, delivered]
                self._writer.writerow([*cells, failed, code, inert(reason), receipts])
                lines.append(self._taken()[:-2])
        lines.append("")  # the last line's end
        return "\r\n".join(lines)

    def _taken(self) -> str:
        """What the writer wrote since last asked."""
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
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
        processes = (os.cpu_count() or 1) if report.total >= PARALLEL_FROM else 1
    ranges = await report.store.reports.id_ranges(report.campaign.id, processes)
    first, others = (ranges[0], ranges[1:]) if ranges else ((0, 0), [])
    args = (report.campaign.id, report.late, report.key_columns)
    text = io.TextIOWrapper(
        out, encoding="utf-8-sig" if excel else "utf-8", newline="", write_through=False
    )
    try:
        header = Lines(delimiter, len(report.key_columns))
        text.write(header.header(report.columns))
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
    late: bool,
    key_columns: tuple[str, ...],
    ids: tuple[int, int],
    delimiter: str,
    text: TextIO,
) -> int:
    """Write the recipients with ids in ``ids`` (see ReportQueries.recipients) of the
    campaign (``late``: past its deadline) as CSV lines to ``text``; returns how many."""
    lines = Lines(delimiter, len(key_columns), late=late)
    written = 0
    async for batch in store.reports.recipients(campaign_id, keys=key_columns, ids=ids):
        text.write(lines.text(batch))
        written += len(batch)
    return written


async def write_part(
    database: Path | str,
    archive_dir: Path,
    campaign_id: int,
    late: bool,
    key_columns: tuple[str, ...],
    ids: tuple[int, int],
    delimiter: str,
    part: Path,
) -> int:
    """One part of a parallel export (what a worker process runs): the recipients with
    ids in ``ids`` of ``database`` (a SQLite file, or a PostgreSQL URL with its archive
    in ``archive_dir``) as CSV lines in the file ``part``; returns how many."""
    async with await Store.open(database, archive_dir=archive_dir) as store:
        with part.open("w", encoding="utf-8", newline="") as text:
            return await _write_rows(store, campaign_id, late, key_columns, ids, delimiter, text)


async def _start_part(
    report: Report, ids: tuple[int, int], delimiter: str, part: Path
) -> asyncio.subprocess.Process:
    """A worker process writing the recipients with ids in ``ids`` to ``part``."""
    database, env = _database_for_worker(report.store)
    spec = {
        "database": database,
        "archive": str(report.store.archive_dir),
        "campaign_id": report.campaign.id,
        "late": report.late,
        "key_columns": report.key_columns,
        "ids": ids,
        "delimiter": delimiter,
        "part": str(part),
    }
    return await asyncio.create_subprocess_exec(
        *command("massiva.report.csv_part", json.dumps(spec)),
        stdin=asyncio.subprocess.PIPE,  # held open, never written: see csv_part
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**environment(), **env},
    )


def _database_for_worker(store: Store) -> tuple[str | None, dict[str, str]]:
    """How a worker opens ``store``'s database: a SQLite file by the path in its spec
    (and an empty environment to add), a PostgreSQL database by the URL in its
    environment (None in its spec): the URL may hold a password, and every user of the
    machine can read a command line (ps), not another user's environment."""
    database = store.database
    if isinstance(database, SqliteDatabase):
        return str(database.path), {}
    from massiva.store.postgres import PostgresDatabase  # the driver, only when used

    assert isinstance(database, PostgresDatabase)  # the only other engine
    return None, {PART_DATABASE_ENV: database.conninfo}


async def _finish_part(worker: asyncio.subprocess.Process) -> int:
    """How many recipients ``worker`` wrote, once it is done.

    Its stdin stays open until it has exited: the end of it tells the worker that this
    process is gone (see csv_part). ``Process.communicate()`` would not do: from Python
    3.12 it closes stdin at once, and the worker would stop half way.
    """
    assert worker.stdout is not None and worker.stderr is not None  # both piped
    out, err = await asyncio.gather(worker.stdout.read(), worker.stderr.read())
    code = await worker.wait()
    if code != 0:
        said = err.decode(errors="replace").strip().splitlines()
        raise ReportError(
            f"a process writing part of the CSV {ended(code)}"
            + (f": {said[-1]}" if said else "")
            + "; no report was written"
        )
    return int(out)


def _append(parts: list[Path], out: BinaryIO) -> None:
    """Copy the ``parts`` to the end of ``out``, in order."""
    for part in parts:
        with part.open("rb") as file:
            shutil.copyfileobj(file, out, 1 << 20)
