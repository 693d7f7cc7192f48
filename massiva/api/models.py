"""Typed results of the vendor APIs, parsed tolerantly.

The vendor's documents drift: ``GET /send/{code}`` is specified with the fields
``{sender, recipient, data, object, message}`` while a public client, after talking to
the live API, reads ``{sender, recipient, date, subject, body}``. Every parser here
accepts both spellings (and ``object``/``subject``, ``body``/``message`` elsewhere).
Each result keeps the vendor's ``raw`` mapping for anything not lifted into a field.
"""

from __future__ import annotations

import base64
import mimetypes
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from urllib.parse import unquote_plus

Raw = Mapping[str, Any]


def _text(raw: Raw, *names: str) -> str:
    """The first of ``names`` present in ``raw``, as text ('' when none is)."""
    for name in names:
        value = raw.get(name)
        if value is not None:
            return str(value)
    return ""


def _int(raw: Raw, name: str) -> int:
    value = raw.get(name)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return 0


def parse_vendor_date(value: str) -> date | None:
    """A ``dd/mm/yyyy`` date of the PEC API, or None when empty or malformed."""
    try:
        return datetime.strptime(value.strip(), "%d/%m/%Y").date()
    except ValueError:
        return None


# -- PEC Massiva (sending) -------------------------------------------------------------


@dataclass(frozen=True)
class Attachment:
    """A file to send: ``file`` is the vendor's ``data:<mime>;base64,...`` URI."""

    name: str
    file: str

    @classmethod
    def from_bytes(cls, name: str, content: bytes, mime: str | None = None) -> Attachment:
        """Encode ``content`` as the data URI the vendor expects."""
        mime = mime or mimetypes.guess_type(name)[0] or "application/octet-stream"
        encoded = base64.b64encode(content).decode("ascii")
        return cls(name=name, file=f"data:{mime};base64,{encoded}")

    def as_json(self) -> dict[str, str]:
        """The JSON object ``POST /send`` takes."""
        return {"name": self.name, "file": self.file}


@dataclass(frozen=True)
class SendResult:
    """The answer to ``POST /send``: the sending's ``message_id`` and how many it sent."""

    message_id: str
    sent: int
    message: str
    raw: Raw = field(repr=False)

    @classmethod
    def parse(cls, raw: Raw) -> SendResult:
        """Parse the 201 body."""
        return cls(
            message_id=_text(raw, "message_id"),
            sent=_int(raw, "sent"),
            message=_text(raw, "message"),
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
        """Parse one ``data`` entry; ``object`` and ``subject`` are both accepted."""
        return cls(
            id=_int(raw, "id"),
            sender=_text(raw, "sender"),
            recipient=_text(raw, "recipient"),
            date=_text(raw, "date", "data"),
            subject=_text(raw, "object", "subject"),
            raw=raw,
        )


@dataclass(frozen=True)
class InboxPage:
    """One page of ``GET /inbox``: up to 25 messages, and where it stands."""

    items: list[InboxItem]
    total: int
    page: int
    pages: int

    @classmethod
    def parse(cls, raw: Raw) -> InboxPage:
        """Parse the 200 body."""
        data = raw.get("data")
        items = [InboxItem.parse(d) for d in data if isinstance(d, Mapping)] if data else []
        return cls(
            items=items,
            total=_int(raw, "total"),
            page=_int(raw, "page"),
            pages=_int(raw, "n_of_pages"),
        )


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
        """Parse a message in either of the documented field spellings."""
        return cls(
            sender=_text(raw, "sender"),
            recipient=_text(raw, "recipient"),
            date=_text(raw, "date", "data"),
            subject=_text(raw, "object", "subject"),
            body=unquote_plus(_text(raw, "body", "message")),
            raw=raw,
        )


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
        """Parse the ``data`` object."""
        usage, limit = raw.get("usage"), raw.get("limit")
        return cls(
            usage=float(usage) if isinstance(usage, int | float) else 0.0,
            limit=float(limit) if isinstance(limit, int | float) else 0.0,
        )


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
