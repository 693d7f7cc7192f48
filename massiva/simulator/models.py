"""The simulator's records: what was sent, what was asked, what sits in a mailbox."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime


@dataclass(frozen=True)
class SendRecord:
    """One sending the vendor accepted (answered 201, or recorded before a dropped answer)."""

    message_id: str
    mailbox: str
    recipients: tuple[str, ...]
    subject: str
    body: str
    at: datetime
    #: (name, decoded size in bytes) of each attachment.
    attachments: tuple[tuple[str, int], ...]

    @property
    def size(self) -> int:
        """Bytes of the message: subject, body and decoded attachments."""
        text = len(self.subject.encode()) + len(self.body.encode())
        return text + sum(size for _, size in self.attachments)


@dataclass(frozen=True)
class RequestRecord:
    """One request received on a vendor path: never its headers or body (secrets).

    ``status`` is 0 while the request is being handled, and when a fault dropped the
    connection.
    """

    method: str
    path: str
    status: int
    at: datetime


@dataclass(frozen=True)
class InboxMessage:
    """One message in a mailbox; ``body`` is plain text (GET /inbox/{id} url-encodes it)."""

    id: int
    sender: str
    recipient: str
    date: str
    object: str
    body: str
    #: Bytes it weighs against the mailbox quota.
    size: int

    def matches(self, query: str) -> bool:
        """The GET /inbox ``q`` search: case-insensitive substring of any text field."""
        query = query.lower()
        fields = (self.object, self.sender, self.recipient, self.body)
        return any(query in text.lower() for text in fields)


@dataclass
class Mailbox:
    """A PEC Massiva mailbox: credentials, inbox, pace and allowance counters.

    It may send and be read while its PEC box (``casella_id``) is ``evasa``.
    """

    address: str
    username: str
    password: str
    casella_id: str
    inbox: dict[int, InboxMessage] = field(default_factory=dict)
    #: time.monotonic() of the last POST /send let through the pace check.
    last_send: float | None = None
    day_counts: dict[date, int] = field(default_factory=dict)
    month_counts: dict[tuple[int, int], int] = field(default_factory=dict)

    @property
    def usage_bytes(self) -> int:
        """What the inbox weighs."""
        return sum(message.size for message in self.inbox.values())
