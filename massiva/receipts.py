"""What a message in the sending mailbox is: a receipt's subject -> (kind, subject, id).

Receipts are titled ``<PREFIX>: <original subject> <message_id>``. The prefixes vary in
case, spacing and wording between providers; the original subject may itself end in
digits, so the trailing token is only a candidate message id, confirmed against the ids
the caller knows (:meth:`ParsedSubject.message_id_in`).

A receipt's body, when fetched, says the same with more detail (:func:`parse_body`: the
``X-Ricevuta`` header and the ``daticert.xml``) and wins over the subject.
"""

from __future__ import annotations

import email.utils
import enum
import html
import re
from collections.abc import Container, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime


class Kind(enum.StrEnum):
    """What a message in the mailbox says about a sending."""

    ACCEPTED = "accepted"  # ACCETTAZIONE: the sender's provider took it
    NOT_ACCEPTED = "not_accepted"  # NON ACCETTAZIONE: refused before sending (final)
    TAKEN_IN_CHARGE = "taken_in_charge"  # PRESA IN CARICO: the recipient's provider took it
    DELIVERED = "delivered"  # CONSEGNA: in the recipient's box, the legal proof (final)
    NOT_DELIVERED = "not_delivered"  # MANCATA CONSEGNA (final)
    TIMEOUT = "timeout"  # MANCATA CONSEGNA PER SUP. TEMPO MASSIMO (12 h warning, 24 h final)
    VIRUS = "virus"  # MANCATA CONSEGNA PER VIRUS, PROBLEMA DI SICUREZZA (final)
    CERTIFIED = "certified"  # POSTA CERTIFICATA: a reply, or a copy
    ANOMALY = "anomaly"  # ANOMALIA MESSAGGIO: ordinary mail that reached the box
    OTHER = "other"  # anything else


# Longest first: "AVVISO DI MANCATA CONSEGNA PER VIRUS" must not read as "... CONSEGNA".
_PREFIXES: tuple[tuple[str, Kind], ...] = (
    ("avviso di mancata consegna per sup. tempo massimo", Kind.TIMEOUT),
    ("avviso di mancata consegna per superamento tempo massimo", Kind.TIMEOUT),
    ("avviso di mancata consegna per sup.tempo massimo", Kind.TIMEOUT),
    ("avviso di mancata consegna per virus", Kind.VIRUS),
    ("avviso di mancata consegna", Kind.NOT_DELIVERED),
    ("avviso di non accettazione per virus", Kind.VIRUS),
    # The name the technical rules (DM 2 November 2005) give the formal refusal.
    ("avviso di non accettazione per eccezione formale", Kind.NOT_ACCEPTED),
    ("avviso di non accettazione", Kind.NOT_ACCEPTED),
    ("problema di sicurezza", Kind.VIRUS),
    ("mancata consegna", Kind.NOT_DELIVERED),
    ("non accettazione", Kind.NOT_ACCEPTED),
    ("avvenuta consegna", Kind.DELIVERED),
    ("consegna", Kind.DELIVERED),
    ("accettazione", Kind.ACCEPTED),
    ("presa in carico", Kind.TAKEN_IN_CHARGE),
    ("posta certificata", Kind.CERTIFIED),
    ("anomalia messaggio", Kind.ANOMALY),
)
_SPACES = re.compile(r"\s+")
_PREFIX = re.compile(r"^\s*([^:]{3,80}?)\s*:\s*(.*)$", re.DOTALL)


def normalise(text: str) -> str:
    """``text`` with runs of white space folded to one space and the ends trimmed."""
    return _SPACES.sub(" ", text).strip()


@dataclass(frozen=True)
class ParsedSubject:
    """A subject split into its receipt kind and the rest (``rest`` keeps its case)."""

    kind: Kind
    rest: str

    @property
    def token(self) -> str | None:
        """The trailing token when it is all digits: a candidate message id."""
        last = self.rest.rsplit(" ", 1)[-1]
        return last if last.isdigit() else None

    def message_id_in(self, known: Container[str]) -> str | None:
        """The trailing token, if it is one of the ``known`` message ids."""
        token = self.token
        return token if token is not None and token in known else None

    def is_about(self, subject: str, message_id: str) -> bool:
        """True if this is a receipt of the sending ``message_id`` titled ``subject``."""
        return self.rest.casefold() == normalise(f"{subject} {message_id}").casefold()


def classify(subject: str) -> ParsedSubject:
    """Read a mailbox message's subject (``object``): its kind and what follows the prefix."""
    text = normalise(subject)
    match = _PREFIX.match(text)
    if match:
        prefix = match.group(1).casefold()
        for known, kind in _PREFIXES:
            if prefix == known:
                return ParsedSubject(kind, match.group(2))
    return ParsedSubject(Kind.OTHER, text)


# -- bodies: the X-Ricevuta header and the daticert.xml ----------------------------------

# The daticert ``tipo`` (and X-Ricevuta value) of each kind of certified message.
_TIPI: dict[str, Kind] = {
    "accettazione": Kind.ACCEPTED,
    "non-accettazione": Kind.NOT_ACCEPTED,
    "presa-in-carico": Kind.TAKEN_IN_CHARGE,
    "avvenuta-consegna": Kind.DELIVERED,
    "errore-consegna": Kind.NOT_DELIVERED,
    "preavviso-errore-consegna": Kind.TIMEOUT,
    "rilevazione-virus": Kind.VIRUS,
    "posta-certificata": Kind.CERTIFIED,
}
_RICEVUTA = re.compile(r"^X-Ricevuta:[ \t]*([\w-]+)", re.IGNORECASE | re.MULTILINE)
_POSTACERT = re.compile(r"<postacert\b([^>]*)>", re.IGNORECASE)
#: The part of a body read for its headers, and for its daticert.xml (at its end).
DATICERT_BYTES = 16_384
#: The part of a sender read for its address (an address is at most 254 characters).
SENDER_CHARS = 512
# Where the top-level headers end: an X-Ricevuta below it is quoted text, not a header.
_HEADERS_END = re.compile(r"\r?\n\r?\n")
_ATTRIBUTE = re.compile(r"""([\w-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_ELEMENT = r"<{0}\b[^>]*>(.*?)</{0}\s*>"


def _element(xml: str, name: str) -> str | None:
    match = re.search(_ELEMENT.format(re.escape(name)), xml, re.IGNORECASE | re.DOTALL)
    return normalise(html.unescape(match.group(1))) if match else None


@dataclass(frozen=True)
class ReceiptBody:
    """What a receipt's body (``GET /inbox/{id}``) says, where it says it.

    Real receipts carry an ``X-Ricevuta`` header and a ``daticert.xml``; both are read
    with regular expressions, not an XML parser, because the body is a text dump in
    which the XML is one part (and an XML parser would resolve entities it should not).
    """

    ricevuta: str | None = None  # the X-Ricevuta header
    tipo: str | None = None  # <postacert tipo=...>
    errore: str | None = None  # <postacert errore=...>: nessuno, no-dest, virus, altro...
    errore_esteso: str | None = None  # <errore-esteso>: the provider's words
    msgid: str | None = None  # <msgid>, without its angle brackets
    identificativo: str | None = None  # <identificativo>: the PEC transport id
    consegna: str | None = None  # <consegna>: whom a delivery receipt is about
    destinatari: tuple[str, ...] = ()

    @property
    def says(self) -> str | None:
        """The kind of certified message, as the body names it: the daticert ``tipo``
        first, the ``X-Ricevuta`` header otherwise (in real mail the two agree)."""
        return self.tipo or self.ricevuta

    @property
    def message_id(self) -> str | None:
        """The sending's message id the daticert names: the local part of ``<msgid>``
        when it is all digits (the vendor's ids are), else None."""
        local = (self.msgid or "").partition("@")[0]
        return local if local.isdigit() else None

    def kind(self, subject_kind: Kind) -> Kind | None:
        """The kind this body proves, given the kind its subject claims; None when the
        body names no kind this module knows (then the subject stands).

        ``errore-consegna`` is the final notice of every delivery failure: a virus when
        ``errore="virus"``, an expired delivery time when the subject says so.
        """
        says = (self.says or "").lower()
        kind = _TIPI.get(says)
        if kind is None:
            return None
        if (self.errore or "").lower() == "virus" and kind in (
            Kind.NOT_DELIVERED,
            Kind.NOT_ACCEPTED,
        ):
            return Kind.VIRUS
        if kind is Kind.NOT_DELIVERED and subject_kind is Kind.TIMEOUT:
            return Kind.TIMEOUT
        return kind

    @property
    def final(self) -> bool | None:
        """For a delivery-time notice: True for the final one (``errore-consegna``),
        False for the 12-hour warning (``preavviso-errore-consegna``); None otherwise."""
        says = (self.says or "").lower()
        if says == "errore-consegna":
            return True
        if says == "preavviso-errore-consegna":
            return False
        return None

    @property
    def detail(self) -> str | None:
        """Why delivery failed, in the provider's words, or None."""
        errore = self.errore if (self.errore or "").lower() not in ("", "nessuno") else None
        if self.errore_esteso and errore:
            return f"{self.errore_esteso} ({errore})"
        return self.errore_esteso or errore


def parse_body(body: str) -> ReceiptBody:
    """Read the ``X-Ricevuta`` header and the ``daticert.xml`` out of a receipt's body;
    every field is None when absent (an ordinary message has neither).

    Only the top-level headers count (before the first blank line), and only the LAST
    ``<postacert>`` of the body: the ``daticert.xml`` is the receipt's last part, and
    whatever comes before it (the original message of a full delivery receipt, with
    its merge fields) is anyone's text. Both are looked for in a bounded part of the
    body (its head, its tail): the patterns cost more than linear time on hostile text.
    """
    head = body[:DATICERT_BYTES]
    end = _HEADERS_END.search(head)
    ricevuta = _RICEVUTA.search(head[: end.start()] if end else head)
    body = body[-DATICERT_BYTES:]  # a daticert.xml is a few hundred bytes, at the end
    found = list(_POSTACERT.finditer(body))
    postacert = found[-1] if found else None
    if postacert is None:
        return ReceiptBody(ricevuta=ricevuta.group(1).lower() if ricevuta else None)
    attributes = {
        m.group(1).lower(): html.unescape(m.group(2) if m.group(2) is not None else m.group(3))
        for m in _ATTRIBUTE.finditer(postacert.group(1))
    }
    xml = body[postacert.end() :]
    msgid = _element(xml, "msgid")
    return ReceiptBody(
        ricevuta=ricevuta.group(1).lower() if ricevuta else None,
        tipo=attributes.get("tipo", "").strip().lower() or None,
        errore=attributes.get("errore", "").strip() or None,
        errore_esteso=_element(xml, "errore-esteso"),
        msgid=msgid.strip("<> ") if msgid else None,
        identificativo=_element(xml, "identificativo"),
        consegna=_element(xml, "consegna"),
        destinatari=tuple(
            normalise(html.unescape(m))
            for m in re.findall(_ELEMENT.format("destinatari"), xml, re.IGNORECASE | re.DOTALL)
        ),
    )


# -- dates and senders ------------------------------------------------------------------


@dataclass(frozen=True)
class MessageDate:
    """A message's RFC 2822 date: the moment in UTC and the offset it was written with."""

    utc: datetime
    offset: str  # "+0200"; "-0000" when the date names no zone


#: The dates a message may carry: anything else is no date (a vendor can answer anything).
EARLIEST, LATEST = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)


def parse_date(text: str) -> MessageDate | None:
    """Parse ``Wed, 26 Aug 2020 10:00:35 +0200``; None when it is not such a date, or
    not one between 2000 and 2100."""
    try:
        moment = email.utils.parsedate_to_datetime(text.strip())
        if moment.tzinfo is None:  # "-0000": the zone is unknown, the time is UTC (RFC 2822)
            found = MessageDate(moment.replace(tzinfo=UTC), "-0000")
        else:
            found = MessageDate(moment.astimezone(UTC), moment.strftime("%z"))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return found if EARLIEST <= found.utc < LATEST else None


_ON_BEHALF = re.compile(r"per conto di:\s*<?([^\s\"<>]+@[^\s\"<>]+)", re.IGNORECASE)
_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def same_address(address: str) -> str:
    """An address as compared: trimmed, angle brackets off, case folded."""
    return address.strip().strip("<>").strip().casefold()


#: Who writes PEC Massiva's receipts, whatever the mailbox's domain (the vendor's spec).
PEC_MASSIVA_CERTIFIER = "posta-certificata@pecmassiva.com"


def certifiers(mailbox: str, configured: Iterable[str] = ()) -> frozenset[str]:
    """Who writes a mailbox's receipts: ``configured`` (``certifying_senders`` in
    massiva.toml), else PEC Massiva's certifying sender and ``posta-certificata@<the
    mailbox's domain>`` (the name PEC providers give the sender of their receipts)."""
    found = {address.strip().lower() for address in configured if address.strip()}
    own = f"posta-certificata@{mailbox.rpartition('@')[2].lower()}"
    return frozenset(found or {PEC_MASSIVA_CERTIFIER, own})


def certifying_address(sender: str) -> str | None:
    """The address that really sent a message, lower-cased, if it writes as a provider
    does; None for a message written on someone's behalf (``"Per conto di: ..."``: a
    certified message or an anomaly, never a receipt). The display name is never read
    as the address: ``"posta-certificata@x" <mallory@evil.it>`` is mallory's."""
    sender = sender[:SENDER_CHARS]
    if _ON_BEHALF.search(sender):
        return None
    address = email.utils.parseaddr(sender)[1].strip().lower()
    return address or None


def sender_address(sender: str) -> str | None:
    """The address a certified message comes from, lower-cased.

    PEC writes the sender of a certified message as ``"Per conto di: a@b.it"
    <posta-certificata@provider>``: the address on whose behalf it was sent is the
    one that counts, not the provider's.
    """
    sender = sender[:SENDER_CHARS]  # the patterns cost more than linear time on hostile text
    on_behalf = _ON_BEHALF.search(sender)
    if on_behalf is not None:
        return on_behalf.group(1).lower()
    plain = _ADDRESS.search(sender)
    return plain.group(0).lower() if plain is not None else None
