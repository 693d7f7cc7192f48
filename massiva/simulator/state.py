"""The Simulator: all the state of one fake vendor, and the timeline that moves it."""

from __future__ import annotations

import email.utils
import heapq
import itertools
import secrets
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from itertools import islice
from typing import Any

from massiva.simulator.clock import SimClock, epoch, rfc2822, rome_stamp
from massiva.simulator.faults import Fault
from massiva.simulator.models import InboxMessage, Mailbox, RequestRecord, SendRecord
from massiva.simulator.provisioning import configured_casella
from massiva.simulator.receipts import SYSTEM_SENDER, envelope
from massiva.simulator.settings import SimulatorSettings
from massiva.simulator.validation import is_email

#: What an injected message weighs on top of its subject and body (headers).
_HEADERS_BYTES = 512

Action = Callable[[datetime], None]


class Simulator:
    """State of the simulated vendor: mailboxes, PEC boxes, domains, sendings, requests.

    Time-driven changes (receipts arriving, boxes becoming ``evasa``...) are events on a
    timeline; :meth:`catch_up` applies the due ones in due-time order before every
    request, so inbox ids grow in arrival order whatever the clock does.
    """

    def __init__(self, settings: SimulatorSettings, clock: SimClock) -> None:
        self.settings = settings
        self.clock = clock
        self.sends: list[SendRecord] = []
        self.requests: list[RequestRecord] = []
        self.faults: list[Fault] = []
        #: Lower-cased address -> mailbox.
        self.mailboxes: dict[str, Mailbox] = {}
        #: The PEC API's records, as JSON objects, by id.
        self.caselle: dict[str, dict[str, Any]] = {}
        self.domini: dict[str, dict[str, Any]] = {}
        self.comunicazioni: dict[str, dict[str, Any]] = {}
        #: Mailbox address -> the ids of its inbox in arrival order, as last read (arrivals).
        self._arrivals: dict[str, list[int]] = {}
        self._timeline: list[tuple[datetime, int, Action]] = []
        self._order = itertools.count()
        self._inbox_ids = itertools.count(1)
        self._message_seq = itertools.count(1)
        self._object_seq = itertools.count(1)
        self._serials = itertools.count(10174594)
        # Mongo ObjectIds carry a per-process random part: so do ours.
        self._machine = secrets.token_hex(5)
        for address, password in settings.mailboxes.items():
            self.add_mailbox(address, password)

    # -- the timeline ---------------------------------------------------------------

    def schedule(self, due: datetime, action: Action) -> None:
        """Run ``action(due)`` once the clock reaches ``due``."""
        heapq.heappush(self._timeline, (due, next(self._order), action))

    def catch_up(self) -> None:
        """Apply every event due by now, in due-time order (ties in scheduling order)."""
        now = self.clock.now()
        while self._timeline and self._timeline[0][0] <= now:
            due, _, action = heapq.heappop(self._timeline)
            action(due)

    # -- identifiers ----------------------------------------------------------------

    def new_object_id(self) -> str:
        """A fresh 24-hex-digit id, shaped like the vendor's Mongo ObjectIds."""
        seconds = epoch(self.clock.now()) & 0xFFFFFFFF  # 4 bytes, whatever the clock says
        return f"{seconds:08x}{self._machine}{next(self._object_seq) & 0xFFFFFF:06x}"

    def new_serial(self) -> int:
        """A fresh number for activation codes and user ids."""
        return next(self._serials)

    def new_message_id(self, at: datetime) -> str:
        """The vendor's message id: send time ``YYYYMMDDHHMMSS`` in Rome + a sequence.

        The stamp has a fixed width, so stamp + increasing sequence never repeats.
        """
        return f"{rome_stamp(at)}{next(self._message_seq)}"

    # -- mailboxes ------------------------------------------------------------------

    def add_mailbox(self, address: str, password: str, *, username: str | None = None) -> None:
        """Add an active (``evasa``) PECMASSIVA box that can send at once.

        ``username`` defaults to the address. It also appears in GET /pec.
        """
        address = address.strip().lower()
        if not is_email(address):
            raise ValueError(f"not an e-mail address: {address!r}")
        if self.is_address_taken(address):
            raise ValueError(f"address already in use: {address}")
        record = configured_casella(self, address, self.clock.now())
        self.caselle[record["id"]] = record
        self.mailboxes[address] = Mailbox(address, username or address, password, record["id"])

    def open_mailbox(self, casella: dict[str, Any]) -> None:
        """Give a box that just became ``evasa`` its PEC Massiva mailbox (once)."""
        address = casella["casella_pec"]
        if address not in self.mailboxes:
            self.mailboxes[address] = Mailbox(
                address, address, self.settings.provisioned_password, casella["id"]
            )

    def active_mailbox(self, address: str) -> Mailbox | None:
        """The mailbox at ``address`` if its box is ``evasa``."""
        mailbox = self.mailboxes.get(address.strip().lower())
        if mailbox is None or self.caselle[mailbox.casella_id]["stato"] != "evasa":
            return None
        return mailbox

    def login(self, username: object, password: object) -> Mailbox | None:
        """The active mailbox these credentials open, or None."""
        if not isinstance(username, str) or not isinstance(password, str) or not password:
            return None
        wanted = username.strip().lower()
        for mailbox in self.mailboxes.values():
            if mailbox.username.lower() == wanted and secrets.compare_digest(
                mailbox.password.encode(), password.encode()
            ):
                return self.active_mailbox(mailbox.address)
        return None

    def is_address_taken(self, address: str) -> bool:
        """True if a PEC box holds ``address`` (a cancelled registration frees it)."""
        address = address.strip().lower()
        return any(
            record["casella_pec"] == address and record["stato"] != "registrazione_annullata"
            for record in self.caselle.values()
        )

    def certified_domains(self) -> set[str]:
        """Own domains registered with POST /dominio and now ``evaso``."""
        return {d["dominio"] for d in self.domini.values() if d["stato"] == "evaso"}

    def deliver(
        self,
        address: str,
        *,
        sender: str,
        recipient: str,
        date: str,
        subject: str,
        body: str,
        size: int,
    ) -> int:
        """Put a message in the inbox of ``address``; return its inbox id."""
        inbox_id = next(self._inbox_ids)
        self.mailboxes[address.strip().lower()].inbox[inbox_id] = InboxMessage(
            inbox_id, sender, recipient, date, subject, body, size
        )
        return inbox_id

    def inject_message(
        self,
        mailbox: str,
        *,
        subject: str,
        sender: str,
        recipient: str,
        date: datetime | str | None = None,
        body: str = "",
    ) -> int:
        """Put a message in a mailbox's inbox now, as PEC delivers it; return its inbox id.

        The provider's own messages (its certifying sender, ``SYSTEM_SENDER``: receipts)
        arrive as written. Anyone else's is wrapped, as a PEC provider wraps whatever
        reaches a PEC box: from a PEC address (a mailbox here, or a certified domain) as
        ``POSTA CERTIFICATA: <subject>``, from any other as ``ANOMALIA MESSAGGIO:
        <subject>``, sent ``"Per conto di: <address>"`` by the certifying sender. So a
        stranger can never write a top-level ``CONSEGNA:``.

        ``date`` is shown as given when a string, in the vendor's format when a datetime,
        and defaults to now. Raises KeyError for an unknown mailbox.
        """
        if mailbox.strip().lower() not in self.mailboxes:
            raise KeyError(f"no mailbox {mailbox!r}")
        self.catch_up()
        if not isinstance(date, str):
            date = rfc2822(date or self.clock.now())
        # The address itself, never the display name ("posta-certificata@..." <mallory@...>
        # is mallory's), read from a bounded part of the text.
        address = email.utils.parseaddr(sender[:512])[1].strip().lower()
        if address != SYSTEM_SENDER or "per conto di" in sender[:512].lower():
            certified = address in self.mailboxes or (
                address.rpartition("@")[2] in self.certified_domains()
            )
            prefix = "POSTA CERTIFICATA" if certified else "ANOMALIA MESSAGGIO"
            trasporto = "posta-certificata" if certified else "errore"
            body = envelope(trasporto, sender, subject, body)
            subject = f"{prefix}: {subject}"
            sender = f'"Per conto di: {address or sender}" <{SYSTEM_SENDER}>'
        size = len(subject.encode()) + len(body.encode()) + _HEADERS_BYTES
        return self.deliver(
            mailbox,
            sender=sender,
            recipient=recipient,
            date=date,
            subject=subject,
            body=body,
            size=size,
        )

    def arrivals(self, mailbox: Mailbox) -> list[int]:
        """The ids of ``mailbox``'s inbox in arrival order (the order of its dict), kept
        between requests so that serving a page costs the page, not the whole inbox.

        The inbox may change anywhere (a DELETE, a test deleting from the dict), so the
        list is checked against it at every call. Inbox ids are never reused (a counter
        gives them, and a new one goes at the end), so an inbox of as many messages with
        the same last id is unchanged, and one whose old last id is followed by exactly
        the messages it grew by only gained those; anything else is read again in full.
        """
        inbox = mailbox.inbox
        ids = self._arrivals.setdefault(mailbox.address, [])
        grown = len(inbox) - len(ids)
        if grown == 0 and (not ids or ids[-1] == next(reversed(inbox))):
            return ids
        if grown > 0 and ids:
            newest = list(islice(reversed(inbox), grown + 1))
            if newest[-1] == ids[-1]:
                ids.extend(reversed(newest[:-1]))
                return ids
        ids[:] = inbox
        return ids

    # -- what tests look at ---------------------------------------------------------

    def post_counts(self) -> dict[str, int]:
        """Lower-cased recipient address -> times it was posted and recorded."""
        return dict(Counter(r.lower() for send in self.sends for r in send.recipients))

    # -- faults ---------------------------------------------------------------------

    def add_fault(self, fault: Fault) -> None:
        """Queue a fault; requests consume matching faults in the order they were added."""
        self.faults.append(fault)

    def clear_faults(self) -> None:
        """Forget every pending fault."""
        self.faults.clear()

    def take_fault(self, method: str, path: str) -> Fault | None:
        """The first pending fault for this request, counted down (dropped at zero)."""
        for index, fault in enumerate(self.faults):
            if fault.matches(method, path):
                fault.times -= 1
                if fault.times == 0:
                    del self.faults[index]
                return fault
        return None
