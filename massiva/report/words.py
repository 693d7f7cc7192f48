"""The HTML report's words, in Italian (the default: the page is filed and read in Italy)
and in English (``massiva report NAME --format html --lang en``).

Every text the page shows is here, under the same keys in both languages (a test holds
them to that); the data (addresses, subjects, reasons in the provider's words) is shown
as it is. Numbers are written as each language writes them: ``2.000`` and ``20,0%`` in
Italian, ``2,000`` and ``20.0%`` in English.
"""

from __future__ import annotations

from massiva.lifecycle import State

LANGUAGES = ("it", "en")

#: A recipient's state, as a table cell or a failure reason's label says it.
STATE_NAMES: dict[str, dict[str, str]] = {
    "it": {
        State.PENDING: "da inviare",
        State.SENDING: "in invio",
        State.SENT: "inviato",
        State.ACCEPTED: "accettato",
        State.DELIVERED: "consegnato",
        State.FAILED: "mancata consegna",
        State.REJECTED: "rifiutato",
        State.UNKNOWN: "esito incerto",
        State.EXPIRED: "scaduto",
    },
    "en": {state: str(state) for state in State},
}

#: The page's words; ``{name}`` fields are filled in by massiva/report/as_html.py.
WORDS: dict[str, dict[str, str]] = {
    "it": {
        "title": "Rapporto di consegna: {name}",
        "mailbox": "Casella mittente",
        "mailboxes": "Caselle mittenti",
        "schedule": "Finestra di invio",
        "deadline_label": "non inviato entro la scadenza",
        "banner_late": "Scadenza superata: {count} destinatari non inviati entro la scadenza"
        " (non saranno inviati).",
        "card_deadline": "Non inviati entro la scadenza",
        "card_deadline_note": "scadenza superata: non saranno inviati",
        "by_mailbox": "Invii per casella",
        "by_mailbox_note": "I destinatari inviati da ciascuna casella mittente.",
        "col_mailbox": "Casella",
        "col_sent_from": "Destinatari inviati",
        "col_delivered": "Consegnati",
        "col_not_through": "Non raggiunti",
        "attention_note_late": "Mancata consegna, rifiutati, scaduti, con esito incerto o"
        " non inviati entro la scadenza, nell'ordine del file: {listed}.",
        "status": "Stato",
        "loaded": "Caricata",
        "generated": "Rapporto generato",
        "times": "Orari: ora di Roma (Europe/Rome), ISO 8601 con lo scarto da UTC",
        "finished": "conclusa",
        "active": "in corso",
        "paused": "in pausa",
        "cancelled": "annullata",
        "banner_finished": "Campagna conclusa: ogni destinatario ha il suo esito.",
        "banner_open": "Campagna {status}: {open} su {total} destinatari ancora senza esito.",
        "summary": "Riepilogo",
        "card_total": "Destinatari",
        "card_total_note": "nella campagna",
        "card_delivered": "Consegnati",
        "card_delivered_note": "{percent} dei destinatari",
        "card_accepted": "Accettati",
        "card_accepted_note": "in attesa della ricevuta di consegna",
        "card_sent": "Inviati",
        "card_sent_note": "in attesa delle ricevute",
        "card_failed": "Mancata consegna",
        "card_failed_note": "non accettati o non consegnati",
        "card_expired": "Scaduti",
        "card_expired_note": "nessuna ricevuta finale entro 24 ore",
        "card_rejected": "Rifiutati",
        "card_rejected_note": "rifiutati dal fornitore: non inviati",
        "card_unknown": "Esito incerto",
        "card_unknown_note": "forse partiti, forse no",
        "card_not_sent": "Da inviare",
        "card_not_sent_note": "non ancora inviati",
        "timeline": "Consegne e mancate consegne nel tempo",
        "timeline_chart": "Consegne e mancate consegne nel tempo (ora di Roma)",
        "timeline_empty": "Nessuna ricevuta di consegna o di mancata consegna, per ora.",
        "reasons": "Perché alcuni destinatari non sono stati raggiunti",
        "reasons_count": "Destinatari con mancata consegna, rifiutati o scaduti: {count}.",
        "reasons_empty": "Nessun destinatario con mancata consegna, rifiutato o scaduto.",
        "no_reason": "(nessun motivo indicato)",
        "other_reasons": "altri motivi",
        "attention": "Destinatari da verificare",
        "attention_note": "Mancata consegna, rifiutati, scaduti o con esito incerto,"
        " nell'ordine del file: {listed}.",
        "attention_all": "tutti ({count})",
        "attention_first": "i primi {limit} di {count}",
        "attention_none": "Nessun destinatario da verificare.",
        "everyone": "Tutti i destinatari",
        "everyone_note": "Ogni destinatario, nell'ordine del file.",
        "first": "I primi {count} destinatari",
        "first_note": "Nell'ordine del file, qualunque sia il loro stato.",
        "partial": "La tabella elenca i primi {listed} dei {total} destinatari: una pagina"
        " non li contiene tutti restando leggibile. Tutti i destinatari, con le stesse"
        " colonne, sono nel rapporto completo:",
        "print_note": "Stampa del riepilogo: l'elenco di tutti i destinatari, con oggetto,"
        " ID messaggio e ricevute di ciascuno, non è stampato. È nel rapporto CSV o XLSX:",
        "print_full": "per stamparlo:",
        "or": "o",
        "col_row": "Riga",
        "col_address": "Indirizzo",
        "col_subject": "Oggetto",
        "col_state": "Stato",
        "col_message_id": "ID messaggio",
        "col_sent_at": "Invio",
        "col_accepted_at": "Accettazione",
        "col_delivered_at": "Consegna",
        "col_failed_at": "Errore",
        "col_failure_code": "Codice",
        "col_reason": "Motivo",
        "col_receipt_ids": "ID ricevute",
        "footer": "Prodotto da massiva dal suo database il {at}. Stati: consegnato = è"
        " arrivata la ricevuta di consegna (CONSEGNA), la prova legale; accettato = è"
        " arrivata la ricevuta di accettazione del gestore; inviato = il fornitore ha preso"
        " in carico il messaggio; mancata consegna = non accettato o non consegnato (il"
        " codice è quello della ricevuta, es. 5.1.1 casella inesistente); scaduto ="
        " nessuna ricevuta finale entro 24 ore dall'invio; rifiutato = rifiutato dal"
        " fornitore, nulla è stato inviato; esito incerto = la richiesta potrebbe essere"
        " partita o no; non inviato entro la scadenza = da inviare quando la scadenza della"
        " campagna è passata: non sarà mai inviato in ritardo.",
    },
    "en": {
        "title": "Delivery report: {name}",
        "mailbox": "Sending mailbox",
        "mailboxes": "Sending mailboxes",
        "schedule": "Sending window",
        "deadline_label": "not sent by the deadline",
        "banner_late": "Deadline passed: {count} recipients not sent by the deadline (they"
        " will not be sent).",
        "card_deadline": "Not sent by the deadline",
        "card_deadline_note": "the deadline passed: never sent",
        "by_mailbox": "Sent from each mailbox",
        "by_mailbox_note": "The recipients each sending mailbox sent.",
        "col_mailbox": "Mailbox",
        "col_sent_from": "Recipients sent",
        "col_delivered": "Delivered",
        "col_not_through": "Not reached",
        "attention_note_late": "Failed, rejected, expired, unknown or not sent by the deadline,"
        " in the order of the file: {listed}.",
        "status": "Status",
        "loaded": "Loaded",
        "generated": "Report generated",
        "times": "Times: Europe/Rome, ISO 8601 with the offset from UTC",
        "finished": "finished",
        "active": "in progress",
        "paused": "paused",
        "cancelled": "cancelled",
        "banner_finished": "Campaign finished: every recipient has its outcome.",
        "banner_open": "Campaign {status}: {open} of {total} recipients still without an outcome.",
        "summary": "Summary",
        "card_total": "Recipients",
        "card_total_note": "in the campaign",
        "card_delivered": "Delivered",
        "card_delivered_note": "{percent} of the recipients",
        "card_accepted": "Accepted",
        "card_accepted_note": "awaiting the delivery receipt",
        "card_sent": "Sent",
        "card_sent_note": "awaiting the receipts",
        "card_failed": "Failed",
        "card_failed_note": "not accepted or not delivered",
        "card_expired": "Expired",
        "card_expired_note": "no final receipt within 24 hours",
        "card_rejected": "Rejected",
        "card_rejected_note": "refused by the provider: not sent",
        "card_unknown": "Unknown",
        "card_unknown_note": "may or may not have left",
        "card_not_sent": "Not yet sent",
        "card_not_sent_note": "pending",
        "timeline": "Deliveries and failures over time",
        "timeline_chart": "Deliveries and failures over time (Europe/Rome)",
        "timeline_empty": "No delivery or failure receipt yet.",
        "reasons": "Why recipients were not reached",
        "reasons_count": "Recipients failed, rejected or expired: {count}.",
        "reasons_empty": "No recipient failed, was rejected or expired.",
        "no_reason": "(no reason given)",
        "other_reasons": "other reasons",
        "attention": "Recipients needing attention",
        "attention_note": "Failed, rejected, expired or unknown, in the order of the file:"
        " {listed}.",
        "attention_all": "all of them ({count})",
        "attention_first": "the first {limit} of {count}",
        "attention_none": "No recipient needs attention.",
        "everyone": "Every recipient",
        "everyone_note": "Every recipient, in the order of the file.",
        "first": "The first {count} recipients",
        "first_note": "In the order of the file, whatever their state.",
        "partial": "The table lists the first {listed} of the {total} recipients: a page"
        " cannot hold them all and stay usable. Every recipient, with the same columns,"
        " is in the full report:",
        "print_note": "Summary print: the list of every recipient, with each one's subject,"
        " message id and receipts, is not printed. It is in the CSV or XLSX report:",
        "print_full": "to print it:",
        "or": "or",
        "col_row": "Row",
        "col_address": "Address",
        "col_subject": "Subject",
        "col_state": "State",
        "col_message_id": "Message id",
        "col_sent_at": "Sent",
        "col_accepted_at": "Accepted",
        "col_delivered_at": "Delivered",
        "col_failed_at": "Failed",
        "col_failure_code": "Code",
        "col_reason": "Reason",
        "col_receipt_ids": "Receipt ids",
        "footer": "Made by massiva from its database at {at}. States: delivered = the"
        " delivery receipt (CONSEGNA) came, the legal proof; accepted = the provider's"
        " acceptance receipt came; sent = the provider took the message; failed = not"
        " accepted or not delivered (the code is the receipt's, e.g. 5.1.1 no such"
        " mailbox); expired = no final receipt within 24 hours of sending; rejected ="
        " refused by the provider, nothing sent; unknown = the request may or may not"
        " have left; not sent by the deadline = pending when the campaign's deadline"
        " passed: it is never sent late.",
    },
}


def number(value: int, lang: str) -> str:
    """``value`` with the language's thousands separator (``2.000``, ``2,000``)."""
    shown = f"{value:,}"
    return shown.replace(",", ".") if lang == "it" else shown


def percent(part: int, whole: int, lang: str) -> str:
    """``part`` of ``whole`` as a percentage to a tenth (``20,0%``, ``20.0%``)."""
    shown = f"{part / whole:.1%}" if whole else "0.0%"
    return shown.replace(".", ",") if lang == "it" else shown
