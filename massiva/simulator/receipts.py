"""The receipts a sending produces, when they arrive, and what they say.

Per sending: one ``ACCETTAZIONE`` at once (as real PEC gives, one per message, naming
every accepted recipient). Per recipient, by the first matching Rule: exactly one
delivery-type receipt (``CONSEGNA``, ``AVVISO DI MANCATA CONSEGNA``...), or none for a
non-PEC address. Subjects are ``<PREFIX>: <subject> <message_id>``; bodies read like real
receipts: S/MIME-signed MIME messages with an ``X-Ricevuta`` header, the Italian text
and the ``daticert.xml`` (see :func:`receipt_body`).
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.header import Header
from email.message import Message
from email.mime.application import MIMEApplication
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

from massiva.simulator.clock import rfc2822
from massiva.simulator.models import SendRecord
from massiva.simulator.signing import sign
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
    #: The daticert's ``errore-esteso``: its code first, then the provider's words.
    esteso: str | None = None
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
    "5.6.0 - pecmassiva.com - messaggio non accettato per eccezione formale",
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
    "non è stato consegnato.",
    "5.1.1 - pecmassiva.com - indirizzo non valido: casella di destinazione inesistente",
)
VIRUS = Kind(
    "AVVISO DI MANCATA CONSEGNA PER VIRUS",
    "errore-consegna",
    "virus",
    "Avviso di mancata consegna per virus",
    "non è stato consegnato: è stato rilevato un virus informatico.",
    "5.7.1 - pecmassiva.com - rilevato virus informatico",
)
# The 12-hour and the 24-hour notices share their subject and ``tipo``; the final one
# says so by its code (5.4.1), as real providers' do.
TIMEOUT_WARNING = Kind(
    "AVVISO DI MANCATA CONSEGNA PER SUP. TEMPO MASSIMO",
    "preavviso-errore-consegna",
    "altro",
    "Avviso di mancata consegna per superamento del tempo massimo",
    "non è ancora stato consegnato entro 12 ore dall'invio.",
    "4.4.7 - pecmassiva.com - il messaggio non è ancora stato consegnato nelle dodici ore"
    " successive al suo invio",
)
TIMEOUT_FINAL = Kind(
    "AVVISO DI MANCATA CONSEGNA PER SUP. TEMPO MASSIMO",
    "preavviso-errore-consegna",
    "altro",
    "Avviso di mancata consegna per superamento del tempo massimo",
    "non è stato consegnato entro 24 ore dall'invio.",
    "5.4.1 - pecmassiva.com - il messaggio non è stato consegnato nelle ventiquattro ore"
    " successive al suo invio",
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
        '<!DOCTYPE postacert SYSTEM "Docs/daticert.dtd">',
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
        f'    <ricevuta tipo="{"completa" if kind.full else "breve"}" />',
    ]
    if kind is CONSEGNA:
        lines.append(f"    <consegna>{escape(recipients[0][0])}</consegna>")
    if kind.esteso is not None:
        lines.append(f"    <errore-esteso>{escape(kind.esteso)}</errore-esteso>")
    lines += ["  </dati>", "</postacert>"]
    return "\n".join(lines)


def identifier(send: SendRecord) -> str:
    """The PEC transport id of a sending, the same in all its receipts."""
    return f"opec.{send.message_id}@pecmassiva.com"


def receipt_body(
    kind: Kind, send: SendRecord, recipients: list[tuple[str, str]], at: datetime, subject: str
) -> str:
    """A receipt as real providers write it: ``multipart/signed`` (S/MIME, ``smime.p7s``)
    around ``multipart/mixed``: the Italian text (ISO-8859-1, quoted-printable), the
    ``daticert.xml`` (base64) and, for a full delivery receipt, the original message as
    ``postacert.eml``. The top-level headers carry ``X-Ricevuta``.

    ``recipients`` are (address, "certificato" | "esterno") pairs.
    """
    local = at.astimezone(ROME)
    addressed = ", ".join(f'"{address}"' for address, _ in recipients)
    text = (
        f"{kind.title}\n\n"
        f"Il giorno {local.strftime('%d/%m/%Y')} alle ore {local.strftime('%H:%M:%S')} "
        f'({local.strftime("%z")}) il messaggio "{send.subject}" proveniente da '
        f'"{send.mailbox}" ed indirizzato a {addressed} {kind.verdict}\n'
        f"Identificativo messaggio: {identifier(send)}\n"
    )
    daticert = MIMEApplication(
        _daticert(kind, send, recipients, at).encode("utf-8"), "xml", name="daticert.xml"
    )
    daticert.add_header("Content-Disposition", "inline", filename="daticert.xml")
    parts: list[Message] = [MIMEText(text, "plain", "iso-8859-1"), daticert]
    if kind.full:
        attached = "".join(f"\nAllegato: {name} ({size} byte)" for name, size in send.attachments)
        original = MIMEText(send.body + attached, "html", "utf-8")
        original["From"] = send.mailbox
        original["To"] = recipients[0][0]
        original["Subject"] = Header(send.subject, "utf-8").encode()
        original["Message-ID"] = f"<{send.message_id}@pecmassiva.com>"
        postacert = MIMEMessage(original)
        postacert.add_header("Content-Disposition", "inline", filename="postacert.eml")
        parts.append(postacert)
    signed = MIMEMultipart("mixed", boundary=f"=_mixed_{send.message_id}", _subparts=parts)
    content = signed.as_string().rstrip("\n")
    signature = base64.encodebytes(sign(content.replace("\n", "\r\n").encode("ascii")))
    boundary = f"=_signed_{send.message_id}"
    return (
        f"X-Ricevuta: {kind.ricevuta}\n"
        f"X-Riferimento-Message-ID: <{send.message_id}@pecmassiva.com>\n"
        f"Date: {rfc2822(at)}\n"
        f"From: {SYSTEM_SENDER}\n"
        f"To: {send.mailbox}\n"
        f"Subject: {Header(subject, 'utf-8').encode()}\n"
        f"Message-ID: <{kind.ricevuta}.{identifier(send)}>\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/signed; protocol="application/pkcs7-signature";'
        f' micalg=sha-256; boundary="{boundary}"\n\n'
        "This is an S/MIME signed message\n\n"
        f"--{boundary}\n{content}\n--{boundary}\n"
        'Content-Type: application/pkcs7-signature; name="smime.p7s"\n'
        "Content-Transfer-Encoding: base64\n"
        'Content-Disposition: attachment; filename="smime.p7s"\n\n'
        f"{signature.decode('ascii')}\n--{boundary}--\n"
    )


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


def envelope(trasporto: str, sender: str, subject: str, original: str) -> str:
    """What a PEC provider delivers for a message that is no receipt: an envelope whose
    top-level ``X-Trasporto`` says what it is (``posta-certificata``: a certified message;
    ``errore``: an anomaly, ordinary mail), carrying the original as ``postacert.eml``.
    Whatever the original says (a forged ``X-Ricevuta``, a ``daticert.xml``), it is
    someone's message, never a receipt."""
    carried = MIMEText(original, "html" if original.lstrip().startswith("<") else "plain")
    carried["From"] = sender
    carried["Subject"] = Header(subject, "utf-8").encode()
    postacert = MIMEMessage(carried)
    postacert.add_header("Content-Disposition", "inline", filename="postacert.eml")
    words = (
        "Messaggio di posta certificata"
        if trasporto == "posta-certificata"
        else "Anomalia nel messaggio: non è un messaggio di posta certificata"
    )
    wrapped = MIMEMultipart("mixed", _subparts=[MIMEText(words, "plain", "utf-8"), postacert])
    wrapped["X-Trasporto"] = trasporto
    wrapped["Subject"] = Header(subject, "utf-8").encode()
    return wrapped.as_string()


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
        body=envelope("posta-certificata", send.mailbox, send.subject, send.body),
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
        body=envelope("posta-certificata", recipient, f"Re: {send.subject}", body),
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
