"""Every row of a campaign checked before anything is sent.

:func:`validate` streams the recipients file and yields, for every row in order, a
:class:`Recipient` ready to send or a :class:`Reject` saying why not: the cells are
trimmed and counted, the address normalised and syntax-checked, duplicates found, the
subject and the body rendered (the body is then discarded) and the attachments and the
message size checked. One item a row; blank rows are skipped. The first problem of a
row is the one reported, in that order.

A duplicate is the second or later row with an address already seen (compared trimmed
and lower-cased) and, with ``dedupe = "address+keys"`` (the default), the same values
in the key columns (compared trimmed): two notices to one address with another
``codice_cliente`` are two recipients, each sent. With ``dedupe = "address"`` an
address gets one message, whatever its key columns say. A row is a duplicate even when
the row it repeats is itself rejected for another reason (a bad date, say): fixing that
row must not change which rows are duplicates.

Two things are not wrong but worth a look, and :func:`check` lists them as warnings: a
merge field the templates print (see :attr:`Renderer.printed`) empty in a row (with
``strict_empty = true`` the row is a reject instead), and a row at an address an
earlier row has, with other key values (:class:`SameAddress`).

:func:`check` runs :func:`preflight` first, so a template variable that no column holds
is one :class:`CampaignError` rather than a reject for every row, then counts what
:func:`validate` yields and writes every reject, and every warning, to CSV files if
asked.
"""

from __future__ import annotations

import csv
import difflib
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import Any

from massiva.campaign import addresses
from massiva.campaign.attachments import AttachmentSizes, encoded_size, human_size
from massiva.campaign.errors import CampaignError, RenderError, TemplateKind
from massiva.campaign.recipients import CsvLayout, DuplicateIndex, csv_error, describe, read_layout
from massiva.campaign.spec import CampaignSpec
from massiva.campaign.templates import Renderer
from massiva.files import atomic_write, check_target
from massiva.workers import Workers

#: How many rejects, and rows of each warning, :func:`check` keeps in memory (the counts
#: stay exact; the files have them all).
MAX_REJECTS_KEPT = 1000
#: From this many rows (as the file's size suggests), rows are rendered by worker
#: processes, one per core: rendering is most of the work, and a worker takes about
#: half a second to start.
PARALLEL_FROM = 20_000
#: Rows a worker renders at a time.
CHUNK = 500


@dataclass(frozen=True, slots=True)
class SameAddress:
    """Row ``row`` is at an address (``address``) that ``first_row`` has too, with other
    values in the key columns ``differs``: sent as a recipient of its own with
    ``dedupe = "address+keys"``, a duplicate with ``"address"``."""

    row: int
    address: str
    first_row: int
    differs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Recipient:
    """A row that can be sent.

    ``row`` is the row number a spreadsheet shows (the header is row 1);
    ``address`` is trimmed and lower-cased; ``fields`` maps each header to the row's
    trimmed cell; ``subject`` is rendered; ``attachment`` is the row's own file,
    relative to the campaign folder, or None. ``empty`` names the merge fields the
    templates print that are empty in this row; ``same_address`` is set when an earlier
    row has its address.
    """

    row: int
    address: str
    fields: dict[str, str]
    subject: str
    attachment: str | None
    empty: tuple[str, ...] = ()
    same_address: SameAddress | None = None


@dataclass(frozen=True, slots=True)
class Reject:
    """A row that will not be sent: ``column`` is the column at fault ('' for the row).

    ``same_address`` is set on a duplicate whose key columns differ from the row it
    repeats (``dedupe = "address"``).
    """

    row: int
    column: str
    reason: str
    duplicate: bool = False
    same_address: SameAddress | None = None


@dataclass
class EmptyField:
    """A merge field the templates print, empty in ``rows`` valid rows."""

    column: str
    templates: tuple[TemplateKind, ...]  # those that print it
    rows: int = 0
    first_rows: list[int] = field(default_factory=list)  # the first MAX_REJECTS_KEPT


@dataclass
class CheckSummary:
    """What :func:`check` found: exact counts, and the first rejects."""

    rows: int = 0  # recipient rows read (blank rows not counted): valid + rejected + duplicates
    valid: int = 0
    rejected: int = 0  # rows that cannot be sent (bad address, missing field, ...)
    duplicates: int = 0  # rows an earlier row already has (see the module's docstring)
    rejects: list[Reject] = field(default_factory=list)  # the first MAX_REJECTS_KEPT
    encoding: str = ""  # how the recipients file was read: a Python codec name
    delimiter: str = ""
    #: Warnings. The printed merge fields empty in some valid rows, by column.
    empty: dict[str, EmptyField] = field(default_factory=dict)
    #: Rows at an address an earlier row has, with other key values: valid with
    #: dedupe = "address+keys", duplicates with "address"; and the first of them.
    same_address: int = 0
    same_address_rows: list[SameAddress] = field(default_factory=list)
    #: The files written: None when there was nothing to put in them (or none was asked).
    rejects_file: Path | None = None
    warnings_file: Path | None = None
    #: Files of an earlier check removed because this one found nothing to put in them.
    removed: list[Path] = field(default_factory=list)


def preflight(spec: CampaignSpec) -> tuple[CsvLayout, Renderer]:
    """Read the header, compile the templates and compare them, before any row.

    Raises one :class:`CampaignError` with every problem: of the recipients file and its
    header, of the templates, a variable used by a template that no column holds, and
    shared attachments that alone exceed the message size limit.
    """
    return _prepare(spec, compare=True)


def _prepare(spec: CampaignSpec, *, compare: bool) -> tuple[CsvLayout, Renderer]:
    problems: list[str] = []
    layout: CsvLayout | None = None
    renderer: Renderer | None = None
    try:
        layout = read_layout(spec)
    except CampaignError as exc:
        problems += exc.problems
    try:
        renderer = Renderer(spec)
    except CampaignError as exc:
        problems += exc.problems
    sizes, missing = AttachmentSizes(spec).shared(spec)
    problems += missing
    sent = sum(encoded_size(size) for size in sizes)
    if sent > spec.max_message_bytes:
        problems.append(
            f"campaign.toml, attachments: {human_size(sum(sizes))} of shared attachments, "
            f"{human_size(sent)} as sent (base64-encoded), exceed the "
            f"{human_size(spec.max_message_bytes)} a message may carry; make them smaller "
            "or raise [limits] max_message_mb if your plan allows it"
        )
    if compare and layout is not None and renderer is not None:
        problems += _unknown_variables(layout, renderer)
    if problems:
        raise CampaignError(problems)
    assert layout is not None and renderer is not None
    return layout, renderer


def _unknown_variables(layout: CsvLayout, renderer: Renderer) -> list[str]:
    columns = set(layout.headers)
    users: dict[str, list[str]] = {}
    for kind in ("subject", "body"):
        for variable in sorted(renderer.variables.get(kind, frozenset()) - columns):
            users.setdefault(variable, []).append(kind)
    problems = []
    for variable, kinds in users.items():
        templates = " and ".join(kinds) + (" templates use" if len(kinds) > 1 else " template uses")
        message = (
            f'{templates} "{variable}", but {layout.name} has no such column; '
            "add the column, or fix the name in the template"
        )
        close = difflib.get_close_matches(variable, layout.headers, n=1)
        if close:
            message += f' (did you mean "{close[0]}"?)'
        problems.append(message)
    return problems


def validate(spec: CampaignSpec, *, workers: int | None = None) -> Iterator[Recipient | Reject]:
    """Every recipient row of ``spec``'s CSV, in order, as a Recipient or a Reject.

    Streams: memory does not grow with the file, except for the duplicate index
    (see :class:`~massiva.campaign.recipients.DuplicateIndex`). Raises
    :class:`CampaignError` at once (before returning the iterator) if the file or the
    templates cannot be used at all, or the file is empty or has no recipients. A
    template variable no column holds is rejected on every row here; :func:`check` and
    :func:`preflight` report it once instead.
    """
    layout, renderer = _prepare(spec, compare=False)
    return _rows(spec, layout, renderer, workers)


def _rows(
    spec: CampaignSpec, layout: CsvLayout, renderer: Renderer, workers: int | None
) -> Iterator[Recipient | Reject]:
    """Every row, in order: read and checked here, rendered and measured by
    :class:`_Finish`, in worker processes when the file is large (see
    :data:`PARALLEL_FROM`)."""
    if workers is None:
        workers = (os.cpu_count() or 1) if layout.rows_estimate >= PARALLEL_FROM else 0
    read = _read(spec, layout, renderer)
    if workers < 1:
        finish = _Finish(spec, layout.headers, renderer)
        for item in read:
            yield item if isinstance(item, Reject) else finish(*item)
        return
    headers = layout.headers
    # The spec goes without its cache (the shared attachments, encoded for sending).
    with Workers("massiva.campaign.worker", workers, (replace(spec), headers)) as pool:
        for chunk, answers in pool.map(_chunks(read)):
            for item, answer in zip(chunk, answers, strict=True):
                if isinstance(item, Reject):
                    yield item
                elif isinstance(answer, Reject):
                    yield answer
                else:  # the worker sends back only what it made: less to copy
                    row, address, values, empty, same = item
                    fields = dict(zip(headers, values, strict=True))
                    subject, attachment = answer
                    yield Recipient(row, address, fields, subject, attachment, empty, same)


def _chunks(read: Iterator[Reject | _Row]) -> Iterator[list[Reject | _Row]]:
    chunk: list[Reject | _Row] = []
    try:
        for item in read:
            chunk.append(item)
            if len(chunk) >= CHUNK:
                yield chunk
                chunk = []
    except CampaignError:
        if chunk:  # the rows before a broken one (a csv.Error) are still checked
            yield chunk
        raise
    if chunk:
        yield chunk


#: A row that passed the checks that need the rows before it: (row, address, cells,
#: the printed merge fields empty in it, the earlier row at its address).
_Row = tuple[int, str, list[str], tuple[str, ...], SameAddress | None]


def _printed(renderer: Renderer) -> dict[str, tuple[TemplateKind, ...]]:
    """The merge fields the templates print (never test), each with those that do."""
    found: dict[str, tuple[TemplateKind, ...]] = {}
    for kind in ("subject", "body"):
        for column in sorted(renderer.printed.get(kind, ())):
            found[column] = (*found.get(column, ()), kind)
    return found


def _templates(kinds: Iterable[TemplateKind]) -> str:
    """``the body template``, ``the subject and body templates``."""
    named = sorted(set(kinds), key=("subject", "body").index)
    return f"the {' and '.join(named)} template{'s' if len(named) > 1 else ''}"


def _quoted(columns: Iterable[str]) -> str:
    """``"a"``, ``"a" and "b"``, ``"a", "b" and "c"``."""
    names = [f'"{column}"' for column in columns]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _read(spec: CampaignSpec, layout: CsvLayout, renderer: Renderer) -> Iterator[Reject | _Row]:
    """Every row read: a Reject for a bad shape, a bad address, a duplicate or (with
    strict_empty) an empty printed field, else a :data:`_Row` to finish."""
    headers = layout.headers
    width = len(headers)
    address_column = spec.address_column
    address_at = headers.index(address_column)
    key_at = [headers.index(column) for column in spec.key_columns]
    look = DuplicateIndex(layout.rows_estimate, len(key_at)).look
    by_keys = bool(spec.identity)
    printed = _printed(renderer)
    printed_at = [(headers.index(c), c) for c in printed if c in headers]
    strict = spec.strict_empty
    valid_address = addresses.ADDRESS.fullmatch
    header_row = row = layout.header_row
    with layout.open() as file:
        records = islice(csv.reader(file, delimiter=layout.delimiter), header_row, None)
        try:
            for row, cells in enumerate(records, header_row + 1):
                values = [cell.strip() for cell in cells]
                if len(values) != width:
                    if len(values) > width and not any(values[width:]):
                        del values[width:]  # trailing empty cells: ignored
                    elif not any(values):
                        continue  # a blank row
                    else:
                        yield Reject(row, "", _shape(values, headers, layout.delimiter))
                        continue
                raw_address = values[address_at]
                address = raw_address.lower()
                if not (
                    valid_address(address) and len(address) <= 254 and address.index("@") <= 64
                ):
                    if not raw_address and not any(values):
                        continue  # a blank row
                    yield Reject(row, address_column, _bad_address(raw_address, address_column))
                    continue
                first, same, differ = look(address, row, tuple([values[at] for at in key_at]))
                # The key columns whose values differ from those of the first row there.
                differs = tuple(spec.key_columns[at] for at in differ) if differ else ()
                of = same if by_keys else first
                if of != row:
                    shared = None
                    if differs and not by_keys:
                        shared = SameAddress(row, address, first, differs)
                    yield _duplicate(spec, row, of, shared)
                    continue
                shared = SameAddress(row, address, first, differs) if differs else None
                empty = tuple([column for at, column in printed_at if not values[at]])
                if empty and strict:
                    kinds = tuple(kind for column in empty for kind in printed[column])
                    yield Reject(row, empty[0], _empty_reason(empty, kinds))
                    continue
                yield row, address, values, empty, shared
        except csv.Error as exc:
            raise CampaignError([f"{layout.name}, row {row + 1}: {csv_error(exc)}"]) from None


def _duplicate(spec: CampaignSpec, row: int, of: int, shared: SameAddress | None) -> Reject:
    """The Reject of row ``row``, a duplicate of row ``of``."""
    reason = f"duplicate of row {of}"
    if shared is not None:  # dedupe = "address", and the key columns differ
        reason += (
            f" (the same address, another {_quoted(shared.differs)}); with dedupe ="
            ' "address" an address gets one message: set dedupe = "address+keys" in'
            " campaign.toml to send both"
        )
    elif spec.identity:
        reason += f" (the same address and {_quoted(spec.identity)})"
    return Reject(row, spec.address_column, reason, True, shared)


def _empty_reason(empty: tuple[str, ...], kinds: tuple[TemplateKind, ...]) -> str:
    one = len(empty) == 1
    them = "it" if one else "them"
    return (
        f"{_quoted(empty)} {'is' if one else 'are'} empty, and {_templates(kinds)} print"
        f"{'s' if len(set(kinds)) == 1 else ''} {them} (strict_empty = true); fill {them} in,"
        " or set strict_empty = false in campaign.toml to send the row as it is"
    )


class _Finish:
    """The rest of a row's checks, which need no other row: the subject and the body
    rendered, the row's own attachment found, the message's size within the limit."""

    def __init__(self, spec: CampaignSpec, headers: tuple[str, ...], renderer: Renderer) -> None:
        self.spec = spec
        self.headers = headers
        self.render = renderer.render
        self.attachment_column = spec.attachment_column or ""
        self.attachment_at = (
            self.headers.index(self.attachment_column) if self.attachment_column else -1
        )
        self.sizes = AttachmentSizes(spec)
        self.shared_sent = sum(encoded_size(path.stat().st_size) for path in spec.attachments)
        self.limit = spec.max_message_bytes

    def __call__(
        self,
        row: int,
        address: str,
        values: list[str],
        empty: tuple[str, ...] = (),
        same: SameAddress | None = None,
    ) -> Recipient | Reject:
        """The row as a Recipient, or the Reject that says what is wrong with it."""
        found = self.message(row, values)
        if isinstance(found, Reject):
            return found
        return Recipient(row, address, *found, empty, same)

    def message(
        self, row: int, values: list[str]
    ) -> Reject | tuple[dict[str, str], str, str | None]:
        """The row's fields, subject and own attachment, or the Reject that says what is
        wrong with it."""
        fields = dict(zip(self.headers, values, strict=True))
        try:
            subject, body = self.render(fields)
        except RenderError as exc:
            return Reject(row, exc.variable or "", exc.message)
        attachment = None
        attachment_size = 0
        if self.attachment_at >= 0 and values[self.attachment_at]:
            found = self.sizes.per_recipient(values[self.attachment_at])
            if isinstance(found, str):
                return Reject(row, self.attachment_column, found)
            attachment, attachment_size = found
        # UTF-8 takes at most 4 bytes a character: encode only when it could matter.
        size = self.shared_sent + encoded_size(attachment_size)
        if size + 4 * len(body) > self.limit:
            total = size + len(body.encode("utf-8"))
            if total > self.limit:
                column = self.attachment_column if attachment else ""
                reason = _too_big(self.spec, total, body, attachment, attachment_size)
                return Reject(row, column, reason)
        return fields, subject, attachment


#: A worker's answer for a row: None for a Reject it was sent, else the row's Reject or
#: its subject and own attachment.
_Answer = Reject | tuple[str, str | None] | None


def finisher(
    setup: tuple[CampaignSpec, tuple[str, ...]],
) -> Callable[[list[Reject | _Row]], list[_Answer]]:
    """What a worker process (massiva.campaign.worker) does with each chunk of rows,
    given the campaign and the header of its recipients file."""
    spec, headers = setup
    finish = _Finish(spec, headers, Renderer(spec))

    def answer(item: Reject | _Row) -> _Answer:
        if isinstance(item, Reject):
            return None
        found = finish.message(item[0], item[2])
        return found if isinstance(found, Reject) else found[1:]

    return lambda chunk: [answer(item) for item in chunk]


def _shape(values: list[str], headers: tuple[str, ...], delimiter: str) -> str:
    width = len(headers)
    named = describe(delimiter)
    count = f"the row has {len(values)} cells, the header has {width}"
    open_quote = any("\n" in value or "\r" in value for value in values)
    if len(values) < width:
        missing = ", ".join(f'"{h}"' for h in headers[len(values) :])
        hint = (
            'a quote (") opened in a cell and never closed' if open_quote else f"a missing {named}"
        )
        return f"{count} (nothing for {missing}); check this row for {hint}"
    extra = ", ".join(f'"{v}"' for v in values[width:] if v)
    example = "Via Roma<tab>3" if delimiter == "\t" else f"Via Roma{delimiter} 3"
    return (
        f"{count} (extra values {extra}); a value holding a {named} must be in quotes "
        f'("{example}"), or delete the extra cells'
    )


def _bad_address(raw: str, column: str) -> str:
    if not raw:
        return f'no address: the "{column}" cell is empty'
    why = addresses.problem(raw.lower()) or "not a valid address"
    return f'invalid address "{raw}" ({why})'


def _too_big(
    spec: CampaignSpec,
    total: int,
    body: str,
    attachment: str | None,
    attachment_size: int,
) -> str:
    parts = [f"body {human_size(len(body.encode('utf-8')))}"]
    if spec.attachments:
        shared = sum(path.stat().st_size for path in spec.attachments)
        parts.append(f"shared attachments {human_size(shared)}")
    if attachment:
        parts.append(f'"{attachment}" {human_size(attachment_size)}')
    return (
        f"message too big: {human_size(total)} as sent, over the limit of "
        f"{human_size(spec.max_message_bytes)} ({', '.join(parts)}; attachments travel "
        "base64-encoded, a third larger); send a smaller file"
    )


def check(
    spec: CampaignSpec,
    *,
    rejects_csv: Path | None = None,
    warnings_csv: Path | None = None,
    on_row: Callable[[int], None] | None = None,
    workers: int | None = None,
) -> CheckSummary:
    """Check every row of the campaign: counts, the first rejects and warnings, all of
    them to files.

    Runs :func:`preflight` first (raises :class:`CampaignError`). ``rejects_csv``, if
    given, receives every reject as ``row,column,reason`` under that header row;
    ``warnings_csv`` every warning (an empty printed merge field, a row sharing its
    address with an earlier one) as ``row,column,warning``. Both are in UTF-8 with a
    byte-order mark (so that Excel shows the accents) and use the recipients file's own
    delimiter (so that they open like the file they describe). ``on_row`` is called
    after each recipient row with the number of rows checked so far.

    A file appears whole when the check ends, and only if there is something to put in
    it: a check that finds nothing to reject writes no rejects file, and removes the one
    an earlier check left at that path (listed in ``removed``), which would describe a
    file that is no more. If a path is a symbolic link (or a folder)
    :class:`~massiva.files.TargetRefused` is raised before any row is read: a link is
    never written through.
    """
    layout, renderer = preflight(spec)
    for path in (rejects_csv, warnings_csv):
        if path is not None:
            check_target(path)
    summary = CheckSummary(encoding=layout.encoding, delimiter=layout.delimiter)
    printed = _printed(renderer)
    kept = summary.rejects
    with ExitStack() as stack:
        rejects = _Listing(stack, rejects_csv, "reason", layout.delimiter)
        warnings = _Listing(stack, warnings_csv, "warning", layout.delimiter)
        rows = valid = rejected = duplicates = 0
        for item in _rows(spec, layout, renderer, workers):
            rows += 1
            if isinstance(item, Recipient):
                valid += 1
                for column in item.empty:
                    _note_empty(summary, item.row, column, printed[column], warnings)
            else:
                duplicates += item.duplicate
                rejected += not item.duplicate
                if len(kept) < MAX_REJECTS_KEPT:
                    kept.append(item)
                rejects.write(item.row, item.column, item.reason)
            if item.same_address is not None:
                _note_same_address(
                    summary, item.same_address, warnings, dropped=isinstance(item, Reject)
                )
            if on_row is not None:
                on_row(rows)
    summary.rows, summary.valid = rows, valid
    summary.rejected, summary.duplicates = rejected, duplicates
    summary.rejects_file, summary.warnings_file = rejects.written, warnings.written
    summary.removed = [path for path in (rejects.stale(), warnings.stale()) if path]
    return summary


def _note_empty(
    summary: CheckSummary,
    row: int,
    column: str,
    kinds: tuple[TemplateKind, ...],
    warnings: _Listing,
) -> None:
    found = summary.empty.get(column)
    if found is None:
        found = summary.empty[column] = EmptyField(column, kinds)
    found.rows += 1
    if len(found.first_rows) < MAX_REJECTS_KEPT:
        found.first_rows.append(row)
    warnings.write(
        row,
        column,
        f'"{column}" is empty: {_templates(kinds)} print{"s" if len(kinds) == 1 else ""}'
        " nothing in its place; fill it in (strict_empty = true in campaign.toml makes"
        " such a row a reject)",
    )


def _note_same_address(
    summary: CheckSummary, shared: SameAddress, warnings: _Listing, *, dropped: bool
) -> None:
    summary.same_address += 1
    if len(summary.same_address_rows) < MAX_REJECTS_KEPT:
        summary.same_address_rows.append(shared)
    if dropped:  # a duplicate: the rejects file has it, with the same words
        return
    warnings.write(
        shared.row,
        ", ".join(shared.differs),
        f"same address as row {shared.first_row} ({shared.address}) with another"
        f" {_quoted(shared.differs)}: both are sent, one message each; if one of them is a"
        " mistake, delete its row",
    )


class _Listing:
    """A CSV file of ``row, column, <what>`` lines, opened when its first line comes:
    it appears whole when the check ends, or not at all."""

    def __init__(self, stack: ExitStack, path: Path | None, what: str, delimiter: str) -> None:
        self._stack = stack
        self._path = path
        self._what = what
        self._delimiter = delimiter
        self._write: Callable[[Iterable[Any]], object] | None = None

    @property
    def written(self) -> Path | None:
        """The file, if a line was written to it."""
        return self._path if self._write is not None else None

    def write(self, row: int, column: str, text: str) -> None:
        """Add a line (nothing when no file was asked for)."""
        if self._path is None:
            return
        if self._write is None:
            out = self._stack.enter_context(
                atomic_write(self._path, encoding="utf-8-sig", newline="")
            )
            self._write = csv.writer(out, delimiter=self._delimiter).writerow
            self._write(("row", "column", self._what))
        self._write((row, column, text))

    def stale(self) -> Path | None:
        """Remove the file an earlier check left, when this one wrote none; its path."""
        if self._path is None or self._write is not None or not self._path.is_file():
            return None
        if self._path.is_symlink():  # never followed, never removed: not massiva's file
            return None
        self._path.unlink()
        return self._path
