"""Typed results of the vendor APIs, validated before anything else sees them.

The vendor's documents drift: ``GET /send/{code}`` is specified with the fields
``{sender, recipient, data, object, message}`` while a public client, after talking to
the live API, reads ``{sender, recipient, date, subject, body}``. Every parser here
accepts both spellings (and ``object``/``subject``, ``body``/``message`` elsewhere).
Each result keeps the vendor's ``raw`` mapping for anything not lifted into a field.

Tolerant of spelling, strict of sense. The PEC Massiva parsers raise :class:`Malformed`
when an answer cannot be what the API documents (not an object, counts that are not
whole numbers, an id out of range): the clients turn that into
:class:`~massiva.api.errors.BadAnswer`, or :class:`~massiva.api.errors.OutcomeUnknown`
for ``POST /send``. One bad entry of a list (an inbox page, a sending's receipts) does
not spoil the others: it is skipped and said so (:attr:`InboxPage.skipped`). No message
of theirs quotes the vendor's values: an answer may echo a password.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import io
import json as jsonlib
import math
import mimetypes
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, BinaryIO
from urllib.parse import unquote_plus

from massiva.api.errors import encodable

Raw = Mapping[str, Any]

#: The largest id or count kept: what SQLite's INTEGER holds.
MAX_ID = 2**63 - 1
#: An RFC 2822 date outside these years is nonsense (a clock or a forgery): dropped.
MIN_YEAR, MAX_YEAR = 2000, 2099
#: The longest message id (the vendor's are 16 digits or so).
MAX_MESSAGE_ID = 64


class Malformed(ValueError):
    """The vendor's answer is not what its API documents; the text says what (one line,
    never quoting the answer)."""


def _kind(value: Any) -> str:
    """What ``value`` is, for a message that must not quote it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return "infinite" if math.isinf(value) else "a number with a fraction"
    if isinstance(value, str):
        return "text" if value else "empty text"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, Mapping) else type(value).__name__


def _problem(value: Any) -> str:
    """What is wrong with ``value`` where a whole number in range was wanted."""
    return "out of range" if type(value) is int else _kind(value)


def _whole(value: Any, low: int) -> int | None:
    """``value`` as an int in ``low``..:data:`MAX_ID`: a JSON integer or a string of ASCII
    digits (None otherwise: a float, NaN, a boolean, other text)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        number = int(value)
    else:
        return None
    return number if low <= number <= MAX_ID else None


def _id(raw: Raw, name: str = "id") -> int:
    """An inbox id: a whole number from 1 to 2**63-1."""
    value = raw.get(name)
    number = _whole(value, 1)
    if number is None:
        raise Malformed(f"{name} is not a whole number from 1 to 2**63-1 (it is {_problem(value)})")
    return number


def _count(raw: Raw, name: str) -> int:
    """A count of the vendor's (``total``, ``page``, ``n_of_pages``): a whole number, 0 or
    more; 0 when absent. The spec says "number", so 39.0 is 39; NaN and Infinity are
    refused."""
    value = raw.get(name)
    if value is None:
        return 0
    if isinstance(value, float) and value.is_integer():  # False for NaN and infinities
        value = int(value)
    number = _whole(value, 0)
    if number is None:
        raise Malformed(f"{name} is not a whole number, 0 or more (it is {_problem(value)})")
    return number


def _text(raw: Raw, *names: str) -> str:
    """The first of ``names`` present in ``raw``, as text ('' when none is, or when it is
    a list or an object: no text, and the repr of a deeply nested one recurses)."""
    for name in names:
        value = raw.get(name)
        if value is not None:
            return encodable(str(value)) if isinstance(value, str | int | float) else ""
    return ""


def _field(raw: Raw, *names: str) -> str:
    """The first of ``names`` present in ``raw`` ('' when none is), which must be text (a
    number or a list of texts is taken as text, too)."""
    for name in names:
        value = raw.get(name)
        if value is None:
            continue
        if isinstance(value, str):
            return encodable(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, float) and math.isfinite(value):
            return str(value)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return encodable(", ".join(value))
        raise Malformed(f"{name} is not text (it is {_kind(value)})")
    return ""


def _date(raw: Raw, *names: str) -> str:
    """A message's date as the vendor wrote it, or '' when it is an RFC 2822 date outside
    :data:`MIN_YEAR`..:data:`MAX_YEAR` (or with an offset of a day or more): such a date
    is unknown, not a moment to store. Text that is no RFC 2822 date is left as it is
    (it is read as no date)."""
    text = _field(raw, *names)
    try:
        parsed = email.utils.parsedate_tz(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return ""
    if parsed is None:
        return text
    offset = parsed[9]
    sane = MIN_YEAR <= parsed[0] <= MAX_YEAR and (offset is None or abs(offset) < 86400)
    return text if sane else ""


def _object(body: Any, what: str = "its body") -> Raw:
    """``body`` when it is a JSON object."""
    if not isinstance(body, Mapping):
        raise Malformed(f"{what} is not a JSON object (it is {_kind(body)})")
    return body


def _list(body: Raw, name: str = "data") -> list[Any]:
    """The list ``body[name]``; absent or null is an empty list (the vendor's documents
    show no empty answer)."""
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise Malformed(f"{name} is not a list (it is {_kind(value)})")
    return value


def parse_vendor_date(value: str) -> date | None:
    """A ``dd/mm/yyyy`` date of the PEC API, or None when empty or malformed."""
    try:
        return datetime.strptime(value.strip(), "%d/%m/%Y").date()
    except ValueError:
        return None


# -- PEC Massiva (sending) -------------------------------------------------------------


#: Bytes of a file encoded at a time: a multiple of 3 (no padding inside the base64),
#: so each piece of an attachment's encoding is 1 MiB.
_BLOCK = 3 * 2**18


@dataclass(frozen=True)
class Attachment:
    """A file to send, read and base64-encoded once.

    ``encoded`` is the file's base64 in pieces of 1 MiB. Every request that carries the
    attachment refers to these same bytes objects (:meth:`json_parts`) and never copies
    them, so memory holds one encoding of a shared file however many requests are in
    flight. ``sha256`` and ``size`` are those of the file's bytes: what was sent.
    """

    name: str
    mime: str
    encoded: tuple[bytes, ...] = field(repr=False)
    sha256: str = ""
    size: int = 0

    @classmethod
    def from_file(cls, name: str, file: BinaryIO, mime: str | None = None) -> Attachment:
        """Read ``file`` to its end and encode it, a block at a time (the whole file is
        never held unencoded); ``mime`` is guessed from ``name`` when not given."""
        mime = mime or mimetypes.guess_type(name)[0] or "application/octet-stream"
        pieces: list[bytes] = []
        digest, size = hashlib.sha256(), 0

        def read() -> bytes:  # every byte read is counted once, as read
            nonlocal size
            data = file.read(_BLOCK)
            digest.update(data)
            size += len(data)
            return data

        block = read()
        while block:
            following = read()
            if following and len(block) % 3:  # a short read: padding only at the end
                whole = len(block) - len(block) % 3
                block, following = block[:whole], block[whole:] + following
            if block:
                pieces.append(base64.b64encode(block))
            block = following
        return cls(name, mime, tuple(pieces), digest.hexdigest(), size)

    @classmethod
    def from_bytes(cls, name: str, content: bytes, mime: str | None = None) -> Attachment:
        """:meth:`from_file` of ``content``."""
        return cls.from_file(name, io.BytesIO(content), mime)

    @property
    def file(self) -> str:
        """The vendor's ``data:<mime>;base64,...`` URI, as one new string (to look at:
        a request refers to the pieces instead)."""
        return f"data:{self.mime};base64," + b"".join(self.encoded).decode("ascii")

    def json_parts(self) -> tuple[bytes, ...]:
        """The JSON object ``POST /send`` takes for it, ``{"name": ..., "file":
        "data:<mime>;base64,..."}``, UTF-8, in parts: a head, the shared pieces of
        :attr:`encoded` themselves, a tail."""
        name = jsonlib.dumps(self.name, ensure_ascii=False)
        # The data URI's start as a JSON string left open: the pieces follow, then '"'.
        uri = jsonlib.dumps(f"data:{self.mime};base64,", ensure_ascii=False)[:-1]
        return (f'{{"name":{name},"file":{uri}'.encode(), *self.encoded, b'"}')


@dataclass(frozen=True)
class SendResult:
    """The answer to ``POST /send``: the sending's ``message_id`` and how many it sent."""

    message_id: str
    sent: int
    message: str
    raw: Raw = field(repr=False)

    @classmethod
    def parse(cls, body: Any) -> SendResult:
        """Parse the 201 body. Raises :class:`Malformed` unless it is an object naming a
        ``message_id`` of digits (a string, or a whole number): without one, no receipt
        can be tied to the message. ``sent`` and ``message`` are informative only, and
        taken as they come."""
        raw = _object(body)
        value = raw.get("message_id")
        number = _whole(value, 1) if isinstance(value, int) else None
        message_id = str(number) if number is not None else value
        if not (
            isinstance(message_id, str)
            and message_id.isascii()
            and message_id.isdigit()
            and len(message_id) <= MAX_MESSAGE_ID
        ):
            raise Malformed(
                f"message_id is not a string of at most {MAX_MESSAGE_ID} digits"
                f" (it is {_problem(value)})"
            )
        sent = _whole(raw.get("sent"), 0)
        message = raw.get("message")
        return cls(
            message_id=message_id,
            sent=sent if sent is not None else 0,
            message=message if isinstance(message, str) else "",
            raw=raw,
        )


@dataclass(frozen=True)
class InboxItem:
    """One message of an inbox page (``GET /inbox``)."""

    id: int
    sender: str
    recipient: str
    date: str
    subject: str
    raw: Raw = field(repr=False)

    @classmethod
    def parse(cls, raw: Raw) -> InboxItem:
        """Parse one ``data`` entry; ``object`` and ``subject`` are both accepted.

        Raises :class:`Malformed` when the id is not a whole number from 1 to 2**63-1 or
        a field is not text. A date out of :data:`MIN_YEAR`..:data:`MAX_YEAR` is ''.
        """
        return cls(
            id=_id(raw),
            sender=_field(raw, "sender"),
            recipient=_field(raw, "recipient"),
            date=_date(raw, "date", "data"),
            subject=_field(raw, "object", "subject"),
            raw=raw,
        )


@dataclass(frozen=True)
class InboxPage:
    """One page of ``GET /inbox``: up to 25 messages, and where it stands.

    ``skipped`` says, one line each, which entries were left out because they are not
    what the API documents (an id that is no whole number in range, the same id twice,
    a field that is not text); ``items`` holds the others.
    """

    items: list[InboxItem]
    total: int
    page: int
    pages: int
    skipped: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        """How many entries the vendor put on the page, skipped ones included (what a
        page size is measured with)."""
        return len(self.items) + len(self.skipped)

    @classmethod
    def parse(cls, body: Any) -> InboxPage:
        """Parse the 200 body.

        Raises :class:`Malformed` when the body is not an object, ``data`` is not a list
        or a count (``total``, ``page``, ``n_of_pages``) is not a whole number, 0 or
        more. A bad entry is only skipped.
        """
        raw = _object(body)
        total, page, pages = (_count(raw, n) for n in ("total", "page", "n_of_pages"))
        items: list[InboxItem] = []
        skipped: list[str] = []
        seen: dict[int, int] = {}
        for number, entry in enumerate(_list(raw), start=1):
            try:
                item = InboxItem.parse(_object(entry, "it"))
            except Malformed as exc:
                skipped.append(f"entry {number}: {exc}")
                continue
            if item.id in seen:  # storing is keyed by id: a second one would clash
                skipped.append(f"entry {number}: id {item.id} repeats entry {seen[item.id]}")
                continue
            seen[item.id] = number
            items.append(item)
        return cls(items=items, total=total, page=page, pages=pages, skipped=skipped)


@dataclass(frozen=True)
class InboxMessage:
    """One whole message (``GET /inbox/{id}``, or an entry of ``GET /send/{code}``).

    ``body`` is decoded from the x-www-form-urlencoded string the vendor sends.
    """

    sender: str
    recipient: str
    date: str
    subject: str
    body: str
    raw: Raw = field(repr=False)

    @classmethod
    def parse(cls, raw: Raw) -> InboxMessage:
        """Parse a message in either of the documented field spellings.

        Raises :class:`Malformed` when a field is not text. A date out of
        :data:`MIN_YEAR`..:data:`MAX_YEAR` is ''.
        """
        return cls(
            sender=_field(raw, "sender"),
            recipient=_field(raw, "recipient"),
            date=_date(raw, "date", "data"),
            subject=_field(raw, "object", "subject"),
            body=encodable(unquote_plus(_field(raw, "body", "message"))),
            raw=raw,
        )

    @classmethod
    def parse_answer(cls, body: Any) -> InboxMessage:
        """Parse the 200 body of ``GET /inbox/{id}``: an object whose ``data`` is the
        message. Raises :class:`Malformed` otherwise."""
        return cls.parse(_object(_object(body).get("data"), "data"))


@dataclass(frozen=True)
class Receipts:
    """The 200 body of ``GET /send/{code}``: a sending's messages, and the entries
    ``skipped`` (one line each) because they are not what the API documents."""

    messages: list[InboxMessage]
    skipped: list[str]

    @classmethod
    def parse(cls, body: Any) -> Receipts:
        """Raises :class:`Malformed` when the body is not an object or ``data`` not a
        list; a bad entry is only skipped."""
        messages: list[InboxMessage] = []
        skipped: list[str] = []
        for number, entry in enumerate(_list(_object(body)), start=1):
            try:
                messages.append(InboxMessage.parse(_object(entry, "it")))
            except Malformed as exc:
                skipped.append(f"entry {number}: {exc}")
        return cls(messages, skipped)


def _amount(raw: Raw, name: str) -> float:
    """A quota figure: a finite number, 0 or more; 0 when absent."""
    value = raw.get(name)
    if value is None:
        return 0.0
    problem = _kind(value)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        if 0 <= value <= MAX_ID:
            return float(value)
        problem = "out of range"
    raise Malformed(f"{name} is not a finite number, 0 or more (it is {problem})")


@dataclass(frozen=True)
class Quota:
    """Storage of a mailbox (``GET /quota/{mailbox}``).

    The spec says megabytes, but its example (171012 of 1048576 for a 1 GB box) is in
    KiB; the numbers are kept as the vendor sends them and :attr:`fraction` is unitless.
    """

    usage: float
    limit: float

    @property
    def fraction(self) -> float:
        """Share of the box in use, 0..1 (0 when the limit is unknown)."""
        return self.usage / self.limit if self.limit > 0 else 0.0

    @classmethod
    def parse(cls, raw: Raw) -> Quota:
        """Parse the ``data`` object. Raises :class:`Malformed` when ``usage`` or
        ``limit`` is not a finite number, 0 or more."""
        return cls(usage=_amount(raw, "usage"), limit=_amount(raw, "limit"))

    @classmethod
    def parse_answer(cls, body: Any) -> Quota:
        """Parse the 200 body: an object whose ``data`` is the quota."""
        return cls.parse(_object(_object(body).get("data"), "data"))


# -- PEC (provisioning) ----------------------------------------------------------------


@dataclass(frozen=True)
class Mailbox:
    """A certified mailbox of the PEC API (``Casella``)."""

    id: str
    address: str
    box_type: str
    state: str
    expires: date | None
    owner: str
    raw: Raw = field(repr=False)

    @classmethod
    def parse(cls, raw: Raw) -> Mailbox:
        """Parse a ``Casella`` (or the shorter ``Caselle`` list entry)."""
        return cls(
            id=_text(raw, "id"),
            address=_text(raw, "casella_pec"),
            box_type=_text(raw, "tipo_casella").upper(),
            state=_text(raw, "stato"),
            expires=parse_vendor_date(_text(raw, "data_scadenza")),
            owner=_text(raw, "owner"),
            raw=raw,
        )


@dataclass(frozen=True)
class Domain:
    """An own certified domain (``/dominio``)."""

    id: str
    domain: str
    provider: str
    state: str
    expires: date | None
    raw: Raw = field(repr=False)

    @classmethod
    def parse(cls, raw: Raw) -> Domain:
        """Parse a ``Dominio``."""
        return cls(
            id=_text(raw, "id"),
            domain=_text(raw, "dominio"),
            provider=_text(raw, "fornitore"),
            state=_text(raw, "stato"),
            expires=parse_vendor_date(_text(raw, "data_scadenza")),
            raw=raw,
        )


@dataclass(frozen=True)
class Communication:
    """A communication of a PEC address to the business register (``/comunica_pec``)."""

    id: str
    address: str
    state: str
    raw: Raw = field(repr=False)

    @classmethod
    def parse(cls, raw: Raw) -> Communication:
        """Parse a ``RichiestaComunicazionePec``."""
        return cls(
            id=_text(raw, "id"),
            address=_text(raw, "casella_pec"),
            state=_text(raw, "stato"),
            raw=raw,
        )
