"""The receipts a sending produces, when they arrive, and what they say.

Per sending: one ``ACCETTAZIONE`` at once (as real PEC gives, one per message, naming
every accepted recipient). Per recipient, by the first matching Rule: exactly one
delivery-type receipt (``CONSEGNA``, ``AVVISO DI MANCATA CONSEGNA``...), or none for a
non-PEC address. Subjects are ``<PREFIX>: <subject> <message_id>``; bodies read like real
receipts: an ``X-Ricevuta`` header, the Italian text and the ``daticert.xml``.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

from massiva.simulator.clock import rfc2822
from massiva.simulator.models import SendRecord
from massiva.times import ROME

if TYPE_CHECKING:
    from massiva.simulator.state import Simulator

SYSTEM_SENDER = "posta-certificata@pecmassiva.com"
#: What a receipt weighs on top of the message it carries (headers, text, daticert).
RECEIPT_BYTES = 2048
#: Seconds after its delivery a ``reply`` recipient answers.
REPLY_AFTER = 600.0
#: Seconds after the send of a ``timeout`` recipient's warning, then final notice (24 h
#: is the legal maximum).
TIMEOUT_NOTICES = (12 * 3600.0, 24 * 3600.0)


@dataclass(frozen=True)
class Kind:
    """One kind of receipt: subject prefix, ``X-Ricevuta`` / daticert ``tipo`` and wording."""

    prefix: str
    ricevuta: str
    errore: str
    title: str
    verdict: str
    #: A full receipt carries the original message (and weighs it).
    full: bool = False


ACCETTAZIONE = Kind(
    "ACCETTAZIONE",
    "accettazione",
    "nessuno",
    "Ricevuta di accettazione",
    "è stato accettato dal sistema ed inoltrato.",
)
NON_ACCETTAZIONE = Kind(
    "AVVISO DI NON ACCETTAZIONE",
    "non-accettazione",
    "altro",
    "Avviso di non accettazione",
    "non è stato accettato: è stato rilevato un problema che ne impedisce l'accettazione.",
)
CONSEGNA = Kind(
    "CONSEGNA",
    "avvenuta-consegna",
    "nessuno",
    "Ricevuta di avvenuta consegna",
    "è stato consegnato nella casella di destinazione.",
    full=True,
)
MANCATA_CONSEGNA = Kind(
    "AVVISO DI MANCATA CONSEGNA",
    "errore-consegna",
    "no-dest",
    "Avviso di mancata consegna",
    "non è stato consegnato: 5.1.1 - casella di destinazione inesistente.",
)
VIRUS = Kind(
    "AVVISO DI MANCATA CONSEGNA PER VIRUS",
    "errore-consegna",
    "virus",
    "Avviso di mancata consegna per virus",
    "non è stato consegnato: è stato rilevato un virus informatico.",
)
TIMEOUT_WARNING = Kind(
    "AVVISO DI MANCATA CONSEGNA PER SUP. TEMPO MASSIMO",
    "preavviso-errore-consegna",
    "no-dest",
    "Avviso di mancata consegna per superamento del tempo massimo",
    "non è ancora stato consegnato entro 12 ore dall'invio.",
)
TIMEOUT_FINAL = Kind(
    "AVVISO DI MANCATA CONSEGNA PER SUP. TEMPO MASSIMO",
    "errore-consegna",
    "no-dest",
    "Avviso di mancata consegna per superamento del tempo massimo",
    "non è stato consegnato entro 24 ore dall'invio.",
)


def stable_delay(address: str) -> float:
    """30-120 s, always the same for one address: repeatable runs without a fixed seed."""
    digest = hashlib.sha256(address.lower().encode()).digest()
    return 30.0 + int.from_bytes(digest[:4], "big") % 91


def resolve(sim: Simulator, address: str) -> tuple[str, float]:
    """(outcome, delay in seconds) for one recipient: the first matching rule decides.

    No rule matching: delivered if the domain is certified here (POST /dominio) or the
    address is a simulator mailbox, otherwise ``none`` (not a PEC address).
    """
    for rule in sim.settings.rules:
        if rule.matches(address):
            delay = stable_delay(address) if rule.delay_seconds is None else rule.delay_seconds
            return rule.outcome, delay
    domain = address.rsplit("@", 1)[-1].lower()
    if domain in sim.certified_domains() or address.lower() in sim.mailboxes:
        return "delivered", stable_delay(address)
    return "none", 0.0


def _daticert(kind: Kind, send: SendRecord, recipients: list[tuple[str, str]], at: datetime) -> str:
    local = at.astimezone(ROME)
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<postacert tipo="{kind.ricevuta}" errore="{kind.errore}">',
        "  <intestazione>",
        f"    <mittente>{escape(send.mailbox)}</mittente>",
        *(
            f'    <destinatari tipo="{kind_of}">{escape(address)}</destinatari>'
            for address, kind_of in recipients
        ),
        f"    <risposte>{escape(send.mailbox)}</risposte>",
        f"    <oggetto>{escape(send.subject)}</oggetto>",
        "  </intestazione>",
        "  <dati>",
        "    <gestore-emittente>PEC MASSIVA</gestore-emittente>",
        f'    <data zona="{local.strftime("%z")}">',
        f"      <giorno>{local.strftime('%d/%m/%Y')}</giorno>",
        f"      <ora>{local.strftime('%H:%M:%S')}</ora>",
        "    </data>",
        f"    <identificativo>{identifier(send)}</identificativo>",
        f"    <msgid>&lt;{send.message_id}@pecmassiva.com&gt;</msgid>",
    ]
    if kind is CONSEGNA:
        lines.append(f"    <consegna>{escape(recipients[0][0])}</consegna>")
    elif kind.errore != "nessuno":
        lines.append(f"    <errore-esteso>{escape(kind.verdict)}</errore-esteso>")
    lines += ["  </dati>", "</postacert>"]
    return "\n".join(lines)


def identifier(send: SendRecord) -> str:
    """The PEC transport id of a sending, the same in all its receipts."""
    return f"opec.{send.message_id}@pecmassiva.com"


def receipt_body(
    kind: Kind, send: SendRecord, recipients: list[tuple[str, str]], at: datetime, subject: str
) -> str:
    """The plain text of a receipt: headers, Italian text, original message, daticert.xml.

    ``recipients`` are (address, "certificato" | "esterno") pairs.
    """
    local = at.astimezone(ROME)
    addressed = ", ".join(f'"{address}"' for address, _ in recipients)
    parts = [
        f"X-Ricevuta: {kind.ricevuta}\n"
        f"X-Riferimento-Message-ID: <{send.message_id}@pecmassiva.com>\n"
        f"Date: {rfc2822(at)}\n"
        f"From: {SYSTEM_SENDER}\n"
        f"To: {send.mailbox}\n"
        f"Subject: {subject}",
        f"{kind.title}\n"
        f"Il giorno {local.strftime('%d/%m/%Y')} alle ore {local.strftime('%H:%M:%S')} "
        f'({local.strftime("%z")}) il messaggio "{send.subject}" proveniente da '
        f'"{send.mailbox}" ed indirizzato a {addressed} {kind.verdict}\n'
        f"Identificativo messaggio: {identifier(send)}",
    ]
    if kind.full:
        attached = "".join(f"\nAllegato: {name} ({size} byte)" for name, size in send.attachments)
        parts.append(
            f"--- postacert.eml ---\nFrom: {send.mailbox}\nTo: {recipients[0][0]}\n"
            f"Subject: {send.subject}\n\n{send.body}{attached}"
        )
    parts.append("--- daticert.xml ---\n" + _daticert(kind, send, recipients, at))
    return "\n\n".join(parts)


def _deliver_receipt(
    sim: Simulator, send: SendRecord, kind: Kind, recipients: list[tuple[str, str]], at: datetime
) -> None:
    subject = f"{kind.prefix}: {send.subject} {send.message_id}"
    size = RECEIPT_BYTES + (send.size if kind.full else 0)
    sim.deliver(
        send.mailbox,
        sender=SYSTEM_SENDER,
        recipient=send.mailbox,
        date=rfc2822(at),
        subject=subject,
        body=receipt_body(kind, send, recipients, at, subject),
        size=size,
    )


def _deliver_message(sim: Simulator, send: SendRecord, recipient: str, at: datetime) -> None:
    """The message itself, in the recipient's inbox when it is a simulator mailbox.

    Sender, recipient and subject as in the spec's example of a message to oneself:
    ``"Per conto di: <sender>" `` (quotes and trailing space included) and the id.
    """
    if sim.active_mailbox(recipient) is None:
        return
    sim.deliver(
        recipient,
        sender=f'"Per conto di: {send.mailbox}" ',
        recipient=f'"{recipient}" ',
        date=rfc2822(at),
        subject=f"POSTA CERTIFICATA: {send.subject} {send.message_id}",
        body=send.body,
        size=RECEIPT_BYTES + send.size,
    )


def _deliver_reply(sim: Simulator, send: SendRecord, recipient: str, at: datetime) -> None:
    body = f'Risposta di {recipient} al messaggio "{send.subject}".'
    sim.deliver(
        send.mailbox,
        sender=f'"Per conto di: {recipient}" ',
        recipient=f'"{send.mailbox}" ',
        date=rfc2822(at),
        subject=f"POSTA CERTIFICATA: Re: {send.subject}",
        body=body,
        size=RECEIPT_BYTES + len(body.encode()),
    )


def schedule_receipts(sim: Simulator, send: SendRecord) -> None:
    """Put every receipt (and copy, and reply) of a recorded sending on the timeline."""
    outcomes = [(address, *resolve(sim, address)) for address in send.recipients]
    accepted = [
        (address, "esterno" if outcome == "none" else "certificato")
        for address, outcome, _ in outcomes
        if outcome != "not_accepted"
    ]

    def later(seconds: float, action: Callable[..., None], *args: object) -> None:
        sim.schedule(send.at + timedelta(seconds=seconds), functools.partial(action, *args))

    def receipt(kind: Kind, address: str, seconds: float = 0.0) -> None:
        later(seconds, _deliver_receipt, sim, send, kind, [(address, "certificato")])

    if accepted:
        later(0.0, _deliver_receipt, sim, send, ACCETTAZIONE, accepted)
    for address, outcome, delay in outcomes:
        if outcome == "not_accepted":
            receipt(NON_ACCETTAZIONE, address)
        elif outcome in ("delivered", "reply"):
            # The message reaches the recipient's box, then its CONSEGNA is issued.
            later(delay, _deliver_message, sim, send, address)
            receipt(CONSEGNA, address, delay)
            if outcome == "reply":
                later(delay + REPLY_AFTER, _deliver_reply, sim, send, address)
        elif outcome == "failed":
            receipt(MANCATA_CONSEGNA, address, delay)
        elif outcome == "virus":
            receipt(VIRUS, address, delay)
        elif outcome == "timeout":
            receipt(TIMEOUT_WARNING, address, TIMEOUT_NOTICES[0])
            receipt(TIMEOUT_FINAL, address, TIMEOUT_NOTICES[1])
