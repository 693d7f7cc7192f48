"""The printable page of each recipient's evidence: "attestazione di invio e consegna".

It says, in Italian, which mailbox sent it, what was sent (every SHA-256), when it was
sent, accepted and delivered or why not (Europe/Rome, with the offset), and each receipt
kept with its signature's verdict. Its words are here; its layout is the Jinja template
``templates/attestazione.html``, rendered with autoescaping (a subject or a receipt's
sender is anyone's text: it can never become markup).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template

from massiva.lifecycle import State
from massiva.receipts import Kind
from massiva.resources import TEMPLATES
from massiva.signature import Signature
from massiva.times import ROME, from_db

TEMPLATE = "attestazione.html"

#: A receipt's kind as its file is named: the daticert ``tipo`` of that kind (DM 2
#: November 2005), so that the name says what the receipt says of itself.
SLUGS: dict[str, str] = {
    Kind.ACCEPTED: "accettazione",
    Kind.NOT_ACCEPTED: "non-accettazione",
    Kind.TAKEN_IN_CHARGE: "presa-in-carico",
    Kind.DELIVERED: "avvenuta-consegna",
    Kind.NOT_DELIVERED: "errore-consegna",
    Kind.TIMEOUT: "preavviso-errore-consegna",
    Kind.VIRUS: "rilevazione-virus",
    Kind.CERTIFIED: "posta-certificata",
    Kind.ANOMALY: "anomalia-messaggio",
    Kind.OTHER: "altro",
}
_KINDS: dict[str, str] = {
    Kind.ACCEPTED: "ricevuta di accettazione",
    Kind.NOT_ACCEPTED: "avviso di non accettazione",
    Kind.TAKEN_IN_CHARGE: "ricevuta di presa in carico",
    Kind.DELIVERED: "ricevuta di avvenuta consegna",
    Kind.NOT_DELIVERED: "avviso di mancata consegna",
    Kind.TIMEOUT: "avviso di mancata consegna per superamento del tempo massimo",
    Kind.VIRUS: "avviso di rilevazione virus",
    Kind.CERTIFIED: "messaggio di posta certificata",
    Kind.ANOMALY: "anomalia messaggio",
    Kind.OTHER: "altro messaggio",
}
_STATES: dict[str, str] = {
    State.PENDING: "non ancora inviato",
    State.SENDING: "in invio",
    State.SENT: "inviato, in attesa della ricevuta di accettazione",
    State.ACCEPTED: "accettato, in attesa della ricevuta di consegna",
    State.DELIVERED: "consegnato",
    State.FAILED: "non consegnato",
    State.REJECTED: "rifiutato dal gestore: non inviato",
    State.UNKNOWN: "esito dell'invio non noto (la richiesta può essere partita o no)",
    State.EXPIRED: "nessuna ricevuta di consegna entro 24 ore dall'invio",
}
#: massiva/signature.py's reasons for a signature it could not check, in Italian.
_UNCHECKED: dict[str, str] = {
    "not signed (no S/MIME signature in the body kept)": (
        "non firmata: il corpo conservato non ha una firma S/MIME"
    ),
    "openssl is not installed here: the signature was not checked": (
        "firma non verificata: openssl non è installato su questo computer"
    ),
    "openssl did not answer: the signature was not checked": (
        "firma non verificata: openssl non ha risposto"
    ),
}


@dataclass(frozen=True)
class SentLine:
    """One thing the post carried: what it is, its SHA-256 and size as sent, and where
    the bundle holds it (its path from the recipient's folder), or why it does not."""

    what: str
    sha256: str
    size: int | None  # None: not known (not recorded, and not in the archive)
    where: str


@dataclass(frozen=True)
class ReceiptLine:
    """One message kept about the recipient, as the page lists it."""

    inbox_id: int
    kind: str
    date: str
    subject: str
    sender: str
    sha256: str | None  # of the body as kept; None: no body
    signature: str
    file: str | None  # its path from the recipient's folder
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Page:
    """Everything one attestazione says, already in words."""

    campaign: str
    mailbox: str  # the one that sent it; '' while none has
    address: str
    row: int
    subject: str
    message_id: str
    state: str
    times: tuple[tuple[str, str], ...]
    reason: str
    code: str
    sent: tuple[SentLine, ...]
    sent_note: str
    receipts: tuple[ReceiptLine, ...]
    doubtful: tuple[ReceiptLine, ...]
    notes: tuple[str, ...]
    generated_at: str
    version: str


def kind_name(kind: str, final: bool | None) -> str:
    """A receipt's kind as the page names it; a delivery-time notice says whether it is
    the final one (24 hours) or the warning (12 hours)."""
    name = _KINDS.get(kind, f"messaggio ({kind})")
    if kind == Kind.TIMEOUT and final is not None:
        name += " (definitivo, 24 ore)" if final else " (preavviso, 12 ore)"
    return name


#: A pending recipient of a campaign past its deadline: its outcome (the state stays).
NOT_SENT_BY_DEADLINE = "non inviato entro la scadenza"


def state_name(state: str, *, late: bool = False) -> str:
    """A recipient's state in words; ``late``: the campaign's deadline has passed, so a
    pending recipient was not sent by it (and never will be)."""
    if late and state == State.PENDING:
        return NOT_SENT_BY_DEADLINE
    return _STATES.get(state, state)


def when(moment: datetime) -> str:
    """A moment as the page shows it: Europe/Rome, with the offset from UTC."""
    rome = moment.astimezone(ROME)
    offset = rome.isoformat()[-6:]
    return f"{rome:%d/%m/%Y %H:%M:%S} (UTC{offset})"


def when_stored(stored: str | None) -> str:
    """A stored UTC time as :func:`when` shows it; '' when it did not happen."""
    return when(from_db(stored)) if stored else ""


def signature_verdict(signature: Signature, now: datetime) -> str:
    """What a receipt's signature proves, in a line: intact and by whom, with the end of
    the certificate's validity (or that it has ended), or plainly why not."""
    if signature.intact is True:
        verdict = f"firma integra, firmatario {signature.signer or 'non indicato'}"
        if signature.valid_until is None:
            return verdict
        day = f"{signature.valid_until.astimezone(ROME):%d/%m/%Y}"
        if signature.expired(now):
            return f"{verdict}; certificato scaduto il {day}"
        return f"{verdict}; certificato valido fino al {day}"
    if signature.intact is False:
        return "firma NON integra: il contenuto non corrisponde alla firma"
    return _UNCHECKED.get(signature.why, f"firma non verificata: {signature.why}")


@functools.cache
def template() -> Template:
    """The page's template, read once (the one massiva ships)."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template(TEMPLATE)


def render(page: Page) -> bytes:
    """The page as UTF-8 HTML."""
    return template().render(page=page).encode("utf-8")
