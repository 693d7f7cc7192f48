"""What a message in the sending mailbox is: a receipt's subject -> (kind, subject, id).

Receipts are titled ``<PREFIX>: <original subject> <message_id>``. The prefixes vary in
case, spacing and wording between providers; the original subject may itself end in
digits, so the trailing token is only a candidate message id, confirmed against the ids
the caller knows (:meth:`ParsedSubject.message_id_in`).

A receipt's body, when fetched, says the same with more detail (:func:`parse_body`: the
``X-Ricevuta`` header and the ``daticert.xml``) and wins over the subject.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import email.utils
import enum
import re
from collections.abc import Container, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from xml.etree import ElementTree

import defusedxml.ElementTree as safe_xml
from defusedxml import DefusedXmlException


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
#: The part of a body's end searched for a daticert.xml written as text (not MIME).
DATICERT_BYTES = 16_384
#: A daticert.xml is a few hundred bytes: a bigger one is not read.
DATICERT_LIMIT = 65_536
#: MIME parts nest a few levels in a receipt (signed > mixed > alternative).
_MAX_DEPTH = 8
#: The part of a sender read for its address (an address is at most 254 characters).
SENDER_CHARS = 512
_POSTACERT = re.compile(r"<postacert\b", re.IGNORECASE)
_CODE = re.compile(r"\s*(\d\.\d{1,3}\.\d{1,3})(?!\d)")
#: The daticert ``errore-esteso`` code of the final delivery-time notice (24 hours).
TIMEOUT_CODE = "5.4.1"


@dataclass(frozen=True)
class ReceiptBody:
    """What a receipt's body (``GET /inbox/{id}``) says, where it says it.

    A real receipt is a MIME message: ``multipart/signed`` (S/MIME) around a
    ``multipart/mixed`` holding the text, the ``daticert.xml`` (base64) and, for a full
    delivery receipt, the original as ``postacert.eml``. Its top-level ``X-Ricevuta``
    header says it is a receipt; an ``X-Trasporto`` header says it is an envelope (a
    certified message or an anomaly: someone's mail, whatever it quotes).
    """

    ricevuta: str | None = None  # the top-level X-Ricevuta header
    trasporto: str | None = None  # the top-level X-Trasporto header: an envelope
    tipo: str | None = None  # <postacert tipo=...>
    errore: str | None = None  # <postacert errore=...>: nessuno, no-dest, virus, altro...
    errore_esteso: str | None = None  # <errore-esteso>: the code, then the provider's words
    msgid: str | None = None  # <msgid>, without its angle brackets
    identificativo: str | None = None  # <identificativo>: the PEC transport id
    consegna: str | None = None  # <consegna>: whom a delivery receipt is about
    destinatari: tuple[str, ...] = ()
    gestore: str | None = None  # <gestore-emittente>: the provider that wrote it
    data: datetime | None = None  # <data zona=...><giorno/><ora/>: when, in UTC
    ricevuta_tipo: str | None = None  # <ricevuta tipo=...>: completa, breve, sintetica

    @property
    def says(self) -> str | None:
        """The kind of certified message, as the body names it: an envelope's
        ``X-Trasporto``, else the daticert ``tipo``, else the ``X-Ricevuta`` header (in
        real mail the two agree)."""
        return self.trasporto or self.tipo or self.ricevuta

    @property
    def message_id(self) -> str | None:
        """The sending's message id the daticert names: the local part of ``<msgid>``
        when it is all digits (the vendor's ids are), else None."""
        local = (self.msgid or "").partition("@")[0]
        return local if local.isdigit() else None

    @property
    def code(self) -> str | None:
        """The code at the start of ``errore-esteso`` (``5.1.1``): it says more than the
        ``errore`` attribute, which providers have changed over the years."""
        match = _CODE.match(self.errore_esteso or "")
        return match.group(1) if match else None

    def kind(self, subject_kind: Kind) -> Kind | None:
        """The kind this body proves, given the kind its subject claims; None when the
        body names no kind this module knows (then the subject stands).

        An envelope is a certified message or an anomaly, whatever its subject says.
        ``errore-consegna`` is the final notice of every delivery failure: a virus when
        ``errore="virus"``, an expired delivery time when the subject says so.
        """
        if self.trasporto is not None:
            return Kind.CERTIFIED if self.trasporto == "posta-certificata" else Kind.ANOMALY
        kind = _TIPI.get((self.tipo or self.ricevuta or "").lower())
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
        """For a delivery-time notice: True for a final one (``errore-consegna``, or the
        24-hour ``preavviso-errore-consegna``, code 5.4.1); None when only its date can
        tell (the 12-hour and the 24-hour notices share their subject and ``tipo``);
        None for any other receipt."""
        says = (self.tipo or self.ricevuta or "").lower()
        if says == "errore-consegna":
            return True
        if says == "preavviso-errore-consegna" and self.code == TIMEOUT_CODE:
            return True
        return None

    @property
    def detail(self) -> str | None:
        """Why delivery failed, in the provider's words, or None."""
        errore = self.errore if (self.errore or "").lower() not in ("", "nessuno") else None
        if self.errore_esteso and errore:
            return f"{self.errore_esteso} ({errore})"
        return self.errore_esteso or errore


def parse_body(body: str) -> ReceiptBody:
    """Read a receipt's body: its top-level ``X-Ricevuta`` / ``X-Trasporto`` header and
    its ``daticert.xml``; every field is None when absent (an ordinary message has
    neither).

    The body is parsed as the MIME message it is (:mod:`email`); the daticert is the
    ``daticert.xml`` part of the receipt itself, never one inside a message it carries
    (``postacert.eml``: the original, with its merge fields, is anyone's text). A body
    that is not MIME (a provider's text dump) is searched for its LAST ``<postacert>``,
    in a bounded part of its end. The XML is read with entities and external
    references refused.
    """
    message = email.message_from_string(body, policy=email.policy.compat32)
    trasporto = _header(message, "X-Trasporto")
    if trasporto is not None:  # an envelope: what it carries is someone's mail
        return ReceiptBody(trasporto=trasporto)
    xml = _daticert_part(message) if message.is_multipart() else _daticert_text(body)
    return _daticert(xml, ricevuta=_header(message, "X-Ricevuta"))


def _header(message: email.message.Message, name: str) -> str | None:
    """A top-level header's first word, lower-cased, or None."""
    value = message.get(name)
    words = str(value).split() if value is not None else []
    return words[0].lower() if words else None


def _daticert_part(message: email.message.Message) -> bytes | None:
    """The decoded ``daticert.xml`` part of a MIME receipt; None when it has none, or
    more than one (a receipt has exactly one)."""
    found: list[bytes] = []

    def visit(part: email.message.Message, depth: int) -> None:
        if depth > _MAX_DEPTH or part.get_content_maintype() == "message":
            return  # a message it carries (postacert.eml) is not the receipt
        if part.is_multipart():
            for inner in part.get_payload():
                if isinstance(inner, email.message.Message):
                    visit(inner, depth + 1)
        elif (part.get_filename() or "").strip().lower() == "daticert.xml":
            data = part.get_payload(decode=True)
            if isinstance(data, bytes):
                found.append(data)

    visit(message, 0)
    return found[0] if len(found) == 1 else None


def _daticert_text(body: str) -> bytes | None:
    """The last ``<postacert>...</postacert>`` written as text near a body's end."""
    tail = body[-DATICERT_BYTES:]
    starts = list(_POSTACERT.finditer(tail))
    if not starts:
        return None
    return tail[starts[-1].start() :].encode("utf-8", "surrogatepass")


def _daticert(xml: bytes | None, *, ricevuta: str | None) -> ReceiptBody:
    """What a ``daticert.xml`` says, with the body's ``X-Ricevuta``."""
    if xml is None or len(xml) > DATICERT_LIMIT:
        return ReceiptBody(ricevuta=ricevuta)
    try:
        root = safe_xml.fromstring(xml)
    except (ElementTree.ParseError, DefusedXmlException, ValueError):
        return ReceiptBody(ricevuta=ricevuta)
    if root.tag != "postacert":
        return ReceiptBody(ricevuta=ricevuta)

    def text(path: str) -> str | None:
        element = root.find(path)
        value = normalise("".join(element.itertext())) if element is not None else ""
        return value or None

    msgid = text("dati/msgid")
    ricevuta_element = root.find("dati/ricevuta")
    return ReceiptBody(
        ricevuta=ricevuta,
        tipo=root.get("tipo", "").strip().lower() or None,
        errore=root.get("errore", "").strip() or None,
        errore_esteso=text("dati/errore-esteso"),
        msgid=msgid.strip("<> ") if msgid else None,
        identificativo=text("dati/identificativo"),
        consegna=text("dati/consegna"),
        destinatari=tuple(
            normalise("".join(element.itertext()))
            for element in root.iterfind("intestazione/destinatari")
        ),
        gestore=text("dati/gestore-emittente"),
        data=_data(root.find("dati/data")),
        ricevuta_tipo=(ricevuta_element.get("tipo") or None)
        if ricevuta_element is not None
        else None,
    )


def _data(element: ElementTree.Element | None) -> datetime | None:
    """A daticert ``<data zona="+0200"><giorno>dd/mm/yyyy</giorno><ora>hh:mm:ss</ora>``
    in UTC; None when it is not such a date."""
    if element is None:
        return None
    text = f"{element.findtext('giorno', '')} {element.findtext('ora', '')} "
    try:
        moment = datetime.strptime(
            text.strip() + " " + element.get("zona", ""), "%d/%m/%Y %H:%M:%S %z"
        )
    except ValueError:
        return None
    return moment.astimezone(UTC) if EARLIEST <= moment < LATEST else None


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
