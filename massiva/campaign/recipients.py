"""The recipients file: encoding, delimiter and header found, rows streamed, duplicates.

How the file is read:

- **Encoding**: as set in ``campaign.toml`` (``[csv] encoding``), else detected: a file
  that is valid UTF-8 (with or without a byte-order mark) is UTF-8, else one that is
  valid Windows-1252 is Windows-1252, else it is refused. The whole file is scanned
  (in 1 MiB chunks, a fraction of a second for a million rows) before a row is
  read, so a file never fails half-way through with a decoding error; an accent in row
  500,000 counts as much as one in row 2.
- **Delimiter**: as set, else sniffed among ``;`` ``,`` and tab from the first 64 KiB:
  the one that splits the header into several columns and the next rows into as many.
- **Rows**: ``row`` is the row number a spreadsheet shows for the record: the csv
  record index, counting from 1. A quoted cell with line breaks is one row; a blank line
  is a row too (Excel and LibreOffice show it as an empty row) and is skipped, as is a
  row whose cells are all empty. The header is the first row that is not blank: row 1
  unless the file starts with blank lines.
- **Header**: names trimmed; empty cells at its end ignored (``a;b;;``); an empty or
  repeated name elsewhere is an error. A file with no row that is not blank is "empty";
  one with a header and nothing under it "has no recipients": both are errors, found
  before any row is checked.

Memory does not grow with the file, except for :class:`DuplicateIndex`.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import io
import itertools
import os
import re
from array import array
from codecs import IncrementalDecoder
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from massiva.campaign.errors import CampaignError

if TYPE_CHECKING:
    from massiva.campaign.spec import CampaignSpec

SAMPLE_BYTES = 64 * 1024
_CHUNK = 1024 * 1024
#: The bytes Windows-1252 leaves undefined.
_CP1252_UNDEFINED = b"\x81\x8d\x8f\x90\x9d"
_NOT_CP1252 = re.compile(rb"[\x81\x8d\x8f\x90\x9d]")
_NAMES = {
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8",
    "cp1252": "Windows-1252",
    ";": '";"',
    ",": '","',
    "\t": "tab",
}
_FIX_ENCODING = (
    'save it as "CSV UTF-8" (Excel: File > Save As; LibreOffice: character set UTF-8), '
    "or set [csv] encoding in campaign.toml"
)


def describe(value: str) -> str:
    """A human name for an encoding or a delimiter."""
    return _NAMES.get(value, f'"{value}"')


@dataclass(frozen=True)
class CsvLayout:
    """How to read a recipients file, and its header."""

    path: Path
    name: str  # the file as campaign.toml names it, for messages
    encoding: str  # a Python codec name
    delimiter: str
    headers: tuple[str, ...]
    header_row: int  # the spreadsheet row of the header
    rows_estimate: int  # from the file size and the sample, for sizing indexes

    def open(self) -> io.TextIOWrapper:
        """The file, opened to be given to ``csv.reader`` (``newline=""``)."""
        return open(self.path, encoding=self.encoding, newline="")


def read_layout(spec: CampaignSpec) -> CsvLayout:
    """Find the encoding, the delimiter and the header of ``spec.recipients``.

    Raises :class:`CampaignError` listing the problems of the file and of its header
    (including the columns campaign.toml names that the header lacks), or saying that
    the file is empty or has no recipients under its header.
    """
    path = spec.recipients
    name = os.path.relpath(path, spec.folder)
    if spec.encoding is None:
        encoding = detect_encoding(path, name)
    else:
        encoding = check_encoding(path, name, spec.encoding)
    sample = _sample(path, encoding)
    delimiter = spec.delimiter or sniff_delimiter(sample)
    with open(path, encoding=encoding, newline="") as file:
        reader = csv.reader(file, delimiter=delimiter)
        header_row = row = 0
        cells: list[str] = []
        has_rows = False
        try:
            for header_row, cells in enumerate(reader, 1):  # noqa: B007
                if any(cell.strip() for cell in cells):
                    break
            else:
                cells = []
            row = header_row
            for row, record in enumerate(reader, header_row + 1):  # noqa: B007
                if any(cell.strip() for cell in record):
                    has_rows = True
                    break
        except csv.Error as exc:
            raise CampaignError([f"{name}, row {row + 1}: {csv_error(exc)}"]) from None
    if not cells:
        sep = spec.delimiter or ";"  # an empty file has no delimiter to sniff
        raise CampaignError(
            [
                f"{name}: the file is empty; write the header row naming the columns "
                f"(e.g. pec{sep}nome{sep}cognome) and one row per recipient under it"
            ]
        )
    headers = _trim_end([cell.strip() for cell in cells])
    if headers:
        headers[0] = headers[0].lstrip("\ufeff").strip()
    _check_header(spec, name, header_row, headers, delimiter)
    if not has_rows:
        raise CampaignError(
            [
                f"{name}: the file has no recipients, only the header (row {header_row}); "
                "add one row per recipient under it"
            ]
        )
    records = max(1, _count_records(sample))
    estimate = int(
        os.path.getsize(path) / max(1, len(sample.encode(encoding, "replace"))) * records
    )
    return CsvLayout(path, name, encoding, delimiter, tuple(headers), header_row, estimate)


def detect_encoding(path: Path, name: str) -> str:
    """``utf-8-sig``, ``utf-8`` or ``cp1252``: the first that decodes the whole file."""
    with open(path, "rb") as file:
        head = file.read(4)
        _refuse_binary(head, name)
        bom = head.startswith(codecs.BOM_UTF8)
        file.seek(0)
        utf8_error = _first_error(path, name, file, _utf8_error)
        if utf8_error is None:
            return "utf-8-sig" if bom else "utf-8"
        file.seek(0)
        cp1252_error = _first_error(path, name, file, _cp1252_error)
        if cp1252_error is None:
            return "cp1252"
    raise CampaignError(
        [
            f"{name}: neither UTF-8 (line {_line_at(path, utf8_error)} is not) nor Windows-1252 "
            f"(line {_line_at(path, cp1252_error)} is not); {_FIX_ENCODING}"
        ]
    )


def _first_error(
    path: Path,
    name: str,
    file: BinaryIO,
    error_in: Callable[[bytes, IncrementalDecoder], int | None],
) -> int | None:
    """The offset of the first byte ``error_in`` finds wrong, or None; refuses NUL bytes."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    while chunk := file.read(_CHUNK):
        if b"\x00" in chunk:
            raise CampaignError(
                [
                    f"{name}, line {_line_at(path, offset + chunk.index(0))}: a NUL byte, "
                    "which no text file holds; export the sheet again as CSV UTF-8"
                ]
            )
        error = error_in(chunk, decoder)
        if error is not None:
            return offset + error
        offset += len(chunk)
    return error_in(b"", decoder) if offset else None


def _utf8_error(chunk: bytes, decoder: IncrementalDecoder) -> int | None:
    try:
        decoder.decode(chunk, final=not chunk)
    except UnicodeDecodeError as exc:
        return max(0, exc.start)
    return None


def _cp1252_error(chunk: bytes, decoder: IncrementalDecoder) -> int | None:
    # translate() is fast C; the regex runs only on the chunk that has a bad byte.
    if len(chunk.translate(None, _CP1252_UNDEFINED)) == len(chunk):
        return None
    found = _NOT_CP1252.search(chunk)
    return found.start() if found else None


def check_encoding(path: Path, name: str, encoding: str) -> str:
    """``encoding`` (``utf-8-sig`` for UTF-8 with a byte-order mark) once the whole file
    is known to decode with it; else :class:`CampaignError` naming the line."""
    with open(path, "rb") as file:
        head = file.read(4)
        _refuse_binary(head, name)
        if encoding == "utf-8" and head.startswith(codecs.BOM_UTF8):
            encoding = "utf-8-sig"
        file.seek(0)
        decoder = codecs.getincrementaldecoder(encoding)()
        offset = 0
        try:
            while chunk := file.read(_CHUNK):
                if "\x00" in decoder.decode(chunk):
                    raise CampaignError(
                        [
                            f"{name}: a NUL character, which no text file holds; is it really "
                            f"{encoding}? Remove [csv] encoding to have it detected"
                        ]
                    )
                offset += len(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            where = _line_at(path, offset + max(0, min(exc.start, len(chunk) - 1)))
            raise CampaignError(
                [
                    f"{name}, line {where}: not valid {encoding} as [csv] encoding in "
                    "campaign.toml says; set the right encoding, or remove it to have it detected"
                ]
            ) from None
    return encoding


def _refuse_binary(head: bytes, name: str) -> None:
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        message = f'{name}: UTF-16 text (Excel\'s "Unicode text"); {_FIX_ENCODING}'
        raise CampaignError([message])
    if head.startswith(b"PK\x03\x04") or head.startswith(b"\xd0\xcf\x11\xe0"):
        raise CampaignError(
            [
                f"{name}: an Excel workbook, not CSV; save the sheet as CSV "
                '(Excel: File > Save As > "CSV UTF-8")'
            ]
        )


def _line_at(path: Path, offset: int) -> int:
    """The 1-based line of the byte at ``offset`` (only called to report an error)."""
    with open(path, "rb") as file:
        return file.read(offset).count(b"\n") + 1


def _sample(path: Path, encoding: str) -> str:
    """The first whole lines of the file, up to about 64 KiB, decoded."""
    with open(path, "rb") as file:
        raw = file.read(SAMPLE_BYTES)
        more = bool(file.read(1))
    text = codecs.getincrementaldecoder(encoding)(errors="replace").decode(raw, final=not more)
    if more and "\n" in text:
        text = text[: text.rindex("\n") + 1]
    return text


def _trim_end(cells: list[str]) -> list[str]:
    while cells and not cells[-1]:
        cells.pop()
    return cells


def _count_records(sample: str) -> int:
    try:
        return sum(1 for _ in csv.reader(io.StringIO(sample, newline="")))
    except csv.Error:
        return sample.count("\n")


def sniff_delimiter(sample: str) -> str:
    """The delimiter among ``;`` ``,`` and tab that splits ``sample`` most regularly.

    The winner splits the first non-blank row (the header) into the most columns that
    the following rows repeat; ``;`` wins a tie (Italian spreadsheets export it), and a
    one-column file gets ``,``.
    """
    best, best_score = ",", (False, 0.0, 0)
    for delimiter in (";", ",", "\t"):
        try:
            rows = list(
                itertools.islice(
                    csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter), 100
                )
            )
        except csv.Error:
            continue
        widths = [len(_trim_end([c.strip() for c in row])) for row in rows]
        widths = [w for w in widths if w]
        if len(widths) > 2 and not sample.endswith("\n"):
            widths.pop()  # the last record may be cut by the sample's end
        if not widths:
            continue
        header, rest = widths[0], widths[1:]
        agree = sum(1 for w in rest if w == header) / len(rest) if rest else 1.0
        score = (header > 1, agree, header)
        if header > 1 and score > best_score:
            best, best_score = delimiter, score
    return best


def column_letter(index: int) -> str:
    """The spreadsheet letter of the 0-based column ``index``: A, B, ..., Z, AA, ..."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def _check_header(
    spec: CampaignSpec, name: str, row: int, headers: list[str], delimiter: str
) -> None:
    where = f"{name}, row {row} (the header)"
    problems: list[str] = []
    empty = [column_letter(i) for i, header in enumerate(headers) if not header]
    if empty:
        columns = ", ".join(empty)
        problems.append(
            f"{where}: column{'s' if len(empty) > 1 else ''} {columns} "
            f"{'have' if len(empty) > 1 else 'has'} no name; name "
            f"{'them' if len(empty) > 1 else 'it'} or delete the column"
        )
    positions: dict[str, list[str]] = {}
    for i, header in enumerate(headers):
        if header:
            positions.setdefault(header, []).append(column_letter(i))
    for header, letters in positions.items():
        if len(letters) > 1:
            problems.append(
                f'{where}: "{header}" names columns {" and ".join(letters)}; '
                "each column needs its own name, rename all but one"
            )
    known = list(positions)
    wanted = [("address_column", spec.address_column)]
    if spec.attachment_column:
        wanted.append(("attachment_column", spec.attachment_column))
    wanted += [("key_columns", column) for column in spec.key_columns]
    for key, column in wanted:
        if column in positions:
            continue
        message = f'{where}: no column "{column}" (the {key} of campaign.toml); '
        close = [h for h in known if h.lower() == column.lower()] or difflib.get_close_matches(
            column, known, n=1
        )
        if close:
            message += f'did you mean "{close[0]}"? Rename the column or change {key}'
        elif any("@" in h for h in known):
            message += (
                "the first row looks like a recipient, not a header; add a first row "
                f"naming the columns, e.g. {column}{delimiter}nome"
            )
        else:
            shown = ", ".join(f'"{h}"' for h in known)
            message += f"the columns are {shown}; add the column or change {key}"
        problems.append(message)
    if problems:
        raise CampaignError(problems)


def csv_error(exc: csv.Error) -> str:
    text = str(exc)
    if "field larger than field limit" in text:
        limit = csv.field_size_limit()
        return (
            f'a cell longer than {limit:,} characters, usually a quote (") that is never '
            "closed; check the quotes from this row on"
        )
    return f"{text}; check this row's quotes and delimiters"


class DuplicateIndex:
    """Rows seen so far, in little memory: the first row of each address, and of each
    address with the values of its key columns.

    An open-addressing table of arrays: the 64-bit ``hash()`` of the address (0 marks a
    free slot), the row (32 bits) and the hash of each of ``width`` key values of that
    first row; 12 bytes a slot plus 8 a key column, kept at most half full: 24 to 48
    bytes a recipient without key columns, 40 to 80 with one (about 36 and 60 MB for a
    million, 50% more for a moment while it doubles), where a ``dict`` of the same
    would take about 120 and 200. The rows at an address seen before with other key
    values go to a second table of the same kind, keyed by the address and its values.
    Two different addresses (or values) share a 64-bit hash with a probability of about
    n²/2⁶⁵ (3 in 100 million for a million recipients): the later one would be called a
    duplicate. ``hash()`` is salted per process, which is fine for an index that lives
    for one pass.
    """

    __slots__ = ("_keys", "_mask", "_more", "_rows", "_tags", "_used", "_width")

    def __init__(self, expected: int = 0, width: int = 0) -> None:
        capacity = 1 << 10
        while capacity < 2 * expected and capacity < 1 << 22:
            capacity <<= 1
        self._width = width
        self._keys = array("q", bytes(8 * capacity))
        self._rows = array("i", bytes(4 * capacity))
        self._tags = array("q", bytes(8 * capacity * width))
        self._mask = capacity - 1
        self._used = 0
        self._more: DuplicateIndex | None = None

    def __len__(self) -> int:
        return self._used

    def first(self, address: str, row: int) -> int:
        """The row where ``address`` was first seen; ``row`` itself the first time."""
        return self._first(hash(address) or 1, row, ())[0]

    def look(
        self, address: str, row: int, values: tuple[str, ...]
    ) -> tuple[int, int, tuple[int, ...]]:
        """``(first, same, differ)`` for the row ``row`` at ``address`` whose key columns
        hold ``values`` (``width`` of them): the first row seen at ``address``, the first
        seen at it with these values, and the positions of the values in which ``row``
        differs from ``first``. ``(row, row, ())`` the first time."""
        first, differ = self._first(hash(address) or 1, row, values)
        if not differ:
            return first, first, differ
        if self._more is None:
            self._more = DuplicateIndex()
        same = self._more._first(hash((address, values)) or 1, row, ())[0]
        return first, same, differ

    def _first(self, key: int, row: int, values: tuple[str, ...]) -> tuple[int, tuple[int, ...]]:
        keys, mask, width = self._keys, self._mask, self._width
        slot = key & mask
        while True:
            found = keys[slot]
            if found == 0:
                keys[slot] = key
                self._rows[slot] = row
                for at, value in enumerate(values, slot * width):
                    self._tags[at] = hash(value)
                self._used += 1
                if self._used * 2 > mask:
                    self._grow()
                return row, ()
            if found == key:
                tags, base = self._tags, slot * width
                differ = tuple(i for i, value in enumerate(values) if tags[base + i] != hash(value))
                return self._rows[slot], differ
            slot = (slot + 1) & mask

    def _grow(self) -> None:
        old_keys, old_rows, old_tags = self._keys, self._rows, self._tags
        width = self._width
        capacity = 2 * len(old_keys)
        keys = self._keys = array("q", bytes(8 * capacity))
        rows = self._rows = array("i", bytes(4 * capacity))
        tags = self._tags = array("q", bytes(8 * capacity * width))
        mask = self._mask = capacity - 1
        for old, (key, row) in enumerate(zip(old_keys, old_rows, strict=True)):
            if key:
                slot = key & mask
                while keys[slot]:
                    slot = (slot + 1) & mask
                keys[slot] = key
                rows[slot] = row
                tags[slot * width : (slot + 1) * width] = old_tags[old * width : (old + 1) * width]
