"""Every row of a campaign checked before anything is sent.

:func:`validate` streams the recipients file and yields, for every row in order, a
:class:`Recipient` ready to send or a :class:`Reject` saying why not: the cells are
trimmed and counted, the address normalised and syntax-checked, duplicates found, the
subject and the body rendered (the body is then discarded) and the attachments and the
message size checked. One item a row; blank rows are skipped. The first problem of a
row is the one reported, in that order.

A duplicate is the second or later row with an address already seen (compared trimmed
and lower-cased), even when the first row is itself rejected for another reason (a bad
date, say): fixing that row must not change which rows are duplicates.

:func:`check` runs :func:`preflight` first, so a template variable that no column holds
is one :class:`CampaignError` rather than a reject for every row, then counts what
:func:`validate` yields and writes every reject to a CSV file if asked.
"""

from __future__ import annotations

import csv
import difflib
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from massiva.campaign import addresses
from massiva.campaign.attachments import AttachmentSizes, encoded_size, human_size
from massiva.campaign.errors import CampaignError, RenderError
from massiva.campaign.recipients import CsvLayout, DuplicateIndex, csv_error, describe, read_layout
from massiva.campaign.spec import CampaignSpec
from massiva.campaign.templates import Renderer

#: How many rejects :func:`check` keeps in memory (the counts stay exact).
MAX_REJECTS_KEPT = 1000


@dataclass(frozen=True, slots=True)
class Recipient:
    """A row that can be sent.

    ``row`` is the row number a spreadsheet shows (the header is row 1);
    ``address`` is trimmed and lower-cased; ``fields`` maps each header to the row's
    trimmed cell; ``subject`` is rendered; ``attachment`` is the row's own file,
    relative to the campaign folder, or None.
    """

    row: int
    address: str
    fields: dict[str, str]
    subject: str
    attachment: str | None


@dataclass(frozen=True, slots=True)
class Reject:
    """A row that will not be sent: ``column`` is the column at fault ('' for the row)."""

    row: int
    column: str
    reason: str
    duplicate: bool = False


@dataclass
class CheckSummary:
    """What :func:`check` found: exact counts, and the first rejects."""

    rows: int = 0  # recipient rows read (blank rows not counted): valid + rejected + duplicates
    valid: int = 0
    rejected: int = 0  # rows that cannot be sent (bad address, missing field, ...)
    duplicates: int = 0  # rows whose address an earlier row already has
    rejects: list[Reject] = field(default_factory=list)  # the first MAX_REJECTS_KEPT
    encoding: str = ""  # how the recipients file was read: a Python codec name
    delimiter: str = ""


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


def validate(spec: CampaignSpec) -> Iterator[Recipient | Reject]:
    """Every recipient row of ``spec``'s CSV, in order, as a Recipient or a Reject.

    Streams: memory does not grow with the file, except for the duplicate index
    (see :class:`~massiva.campaign.recipients.DuplicateIndex`). Raises
    :class:`CampaignError` at once (before returning the iterator) if the file or the
    templates cannot be used at all. A template variable no column holds is rejected on
    every row here; :func:`check` and :func:`preflight` report it once instead.
    """
    layout, renderer = _prepare(spec, compare=False)
    return _rows(spec, layout, renderer)


def _rows(
    spec: CampaignSpec, layout: CsvLayout, renderer: Renderer
) -> Iterator[Recipient | Reject]:
    headers = layout.headers
    width = len(headers)
    address_column = spec.address_column
    address_at = headers.index(address_column)
    attachment_column = spec.attachment_column or ""
    attachment_at = headers.index(attachment_column) if attachment_column else -1
    sizes = AttachmentSizes(spec)
    shared_sent = sum(encoded_size(path.stat().st_size) for path in spec.attachments)
    limit = spec.max_message_bytes
    first_row = DuplicateIndex(layout.rows_estimate).first
    valid_address = addresses.ADDRESS.fullmatch
    render = renderer.render
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
                first = first_row(address, row)
                if first != row:
                    yield Reject(row, address_column, f"duplicate of row {first}", True)
                    continue
                fields = dict(zip(headers, values, strict=True))
                try:
                    subject, body = render(fields)
                except RenderError as exc:
                    yield Reject(row, exc.variable or "", exc.message)
                    continue
                attachment = None
                attachment_size = 0
                if attachment_at >= 0 and values[attachment_at]:
                    found = sizes.per_recipient(values[attachment_at])
                    if isinstance(found, str):
                        yield Reject(row, attachment_column, found)
                        continue
                    attachment, attachment_size = found
                # UTF-8 takes at most 4 bytes a character: encode only when it could matter.
                size = shared_sent + encoded_size(attachment_size)
                if size + 4 * len(body) > limit:
                    total = size + len(body.encode("utf-8"))
                    if total > limit:
                        column = attachment_column if attachment else ""
                        reason = _too_big(spec, total, body, attachment, attachment_size)
                        yield Reject(row, column, reason)
                        continue
                yield Recipient(row, address, fields, subject, attachment)
        except csv.Error as exc:
            raise CampaignError([f"{layout.name}, row {row + 1}: {csv_error(exc)}"]) from None


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
    on_row: Callable[[int], None] | None = None,
) -> CheckSummary:
    """Check every row of the campaign: counts, the first rejects, all of them to a file.

    Runs :func:`preflight` first (raises :class:`CampaignError`). ``rejects_csv``, if
    given, receives every reject as ``row,column,reason`` under that header row, in
    UTF-8 with a byte-order mark (so that Excel shows the accents) and with the
    recipients file's own delimiter (so that it opens like the file it describes).
    ``on_row`` is called after each recipient row with the number of rows checked so
    far.
    """
    layout, renderer = preflight(spec)
    summary = CheckSummary(encoding=layout.encoding, delimiter=layout.delimiter)
    kept = summary.rejects
    with ExitStack() as stack:
        writer = None
        if rejects_csv is not None:
            out = stack.enter_context(open(rejects_csv, "w", encoding="utf-8-sig", newline=""))
            writer = csv.writer(out, delimiter=layout.delimiter)
            writer.writerow(("row", "column", "reason"))
        rows = valid = rejected = duplicates = 0
        for item in _rows(spec, layout, renderer):
            rows += 1
            if isinstance(item, Recipient):
                valid += 1
            else:
                duplicates += item.duplicate
                rejected += not item.duplicate
                if len(kept) < MAX_REJECTS_KEPT:
                    kept.append(item)
                if writer is not None:
                    writer.writerow((item.row, item.column, item.reason))
            if on_row is not None:
                on_row(rows)
    summary.rows, summary.valid = rows, valid
    summary.rejected, summary.duplicates = rejected, duplicates
    return summary
