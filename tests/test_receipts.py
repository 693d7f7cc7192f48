"""Reading receipts: subjects as real providers write them, bodies (X-Ricevuta and
daticert.xml), dates and senders; and the reconciler's forward-only state machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from massiva.receipts import Kind, classify, parse_body, parse_date, sender_address
from massiva.reconcile import advance, failure_reason, is_final
from massiva.simulator.models import SendRecord
from massiva.simulator.receipts import (
    CONSEGNA,
    MANCATA_CONSEGNA,
    TIMEOUT_FINAL,
    TIMEOUT_WARNING,
    VIRUS,
    receipt_body,
)
from massiva.simulator.receipts import Kind as Kind_
from massiva.store import Tracked

ID = "2026031012000001"
AT = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("subject", "kind", "token"),
    [
        (f"ACCETTAZIONE: Avviso di pagamento {ID}", Kind.ACCEPTED, ID),
        (f"accettazione:Avviso {ID}", Kind.ACCEPTED, ID),
        (f"  Accettazione  :   Avviso   di pagamento    {ID}  ", Kind.ACCEPTED, ID),
        (f"CONSEGNA: Fattura 2026 {ID}", Kind.DELIVERED, ID),
        (f"AVVENUTA CONSEGNA: Ore 10:30, riunione {ID}", Kind.DELIVERED, ID),
        (f"PRESA IN CARICO: Avviso {ID}", Kind.TAKEN_IN_CHARGE, ID),
        (f"AVVISO DI NON ACCETTAZIONE: Avviso {ID}", Kind.NOT_ACCEPTED, ID),
        (f"NON ACCETTAZIONE: Avviso {ID}", Kind.NOT_ACCEPTED, ID),
        (f"AVVISO DI NON ACCETTAZIONE PER ECCEZIONE FORMALE: Avviso {ID}", Kind.NOT_ACCEPTED, ID),
        (f"AVVISO DI NON ACCETTAZIONE PER VIRUS: Avviso {ID}", Kind.VIRUS, ID),
        (f"AVVISO DI MANCATA CONSEGNA: Avviso {ID}", Kind.NOT_DELIVERED, ID),
        (f"Avviso di mancata consegna: Avviso {ID}", Kind.NOT_DELIVERED, ID),
        (f"AVVISO DI MANCATA CONSEGNA PER SUP. TEMPO MASSIMO: Avviso {ID}", Kind.TIMEOUT, ID),
        (f"AVVISO DI MANCATA CONSEGNA PER SUP.TEMPO MASSIMO: Avviso {ID}", Kind.TIMEOUT, ID),
        (
            f"avviso di mancata consegna per sup. tempo massimo :  Avviso {ID}",
            Kind.TIMEOUT,
            ID,
        ),
        (f"AVVISO DI MANCATA CONSEGNA PER VIRUS: Avviso {ID}", Kind.VIRUS, ID),
        (f"PROBLEMA DI SICUREZZA: Avviso {ID}", Kind.VIRUS, ID),
        ("POSTA CERTIFICATA: Re: Avviso di pagamento", Kind.CERTIFIED, None),
        ("ANOMALIA MESSAGGIO: Offerta imperdibile", Kind.ANOMALY, None),
        ("Fattura 2026 2026031012000001", Kind.OTHER, ID),
        ("CONSEGNA: Fattura 2026", Kind.DELIVERED, "2026"),
    ],
)
def test_real_world_subjects_are_classified(subject: str, kind: Kind, token: str | None) -> None:
    parsed = classify(subject)

    assert parsed.kind is kind
    assert parsed.token == token


def test_a_subject_ending_in_digits_names_a_sending_only_if_its_id_is_known() -> None:
    parsed = classify("CONSEGNA: Fattura 2026")

    assert parsed.message_id_in({ID}) is None
    assert classify(f"CONSEGNA: Fattura 2026 {ID}").message_id_in({ID, "2026"}) == ID


def _send() -> SendRecord:
    return SendRecord(
        message_id=ID,
        mailbox="demo@pecmassiva.com",
        recipients=("mario.rossi@legalmail.it",),
        subject="Avviso di pagamento",
        body="<p>Gentile Mario</p>",
        at=AT,
        attachments=(),
    )


def _body(kind: Kind_) -> str:
    return receipt_body(
        kind,
        _send(),
        [("mario.rossi@legalmail.it", "certificato")],
        AT,
        f"SUBJECT {ID}",
    )


def test_a_delivery_receipt_body_names_its_kind_sending_and_recipient() -> None:
    body = parse_body(_body(CONSEGNA))

    assert (body.ricevuta, body.tipo, body.errore) == (
        "avvenuta-consegna",
        "avvenuta-consegna",
        "nessuno",
    )
    assert body.kind(Kind.DELIVERED) is Kind.DELIVERED
    assert body.message_id == ID
    assert body.msgid == f"{ID}@pecmassiva.com"
    assert body.identificativo == f"opec.{ID}@pecmassiva.com"
    assert body.consegna == "mario.rossi@legalmail.it"
    assert body.destinatari == ("mario.rossi@legalmail.it",)
    assert body.detail is None


def test_failure_bodies_say_which_failure_and_why() -> None:
    failed = parse_body(_body(MANCATA_CONSEGNA))
    virus = parse_body(_body(VIRUS))

    assert failed.kind(Kind.NOT_DELIVERED) is Kind.NOT_DELIVERED
    assert failed.code == "5.1.1"
    assert failed.detail == (
        "5.1.1 - pecmassiva.com - indirizzo non valido: casella di destinazione inesistente"
        " (no-dest)"
    )
    assert virus.kind(Kind.NOT_DELIVERED) is Kind.VIRUS


def test_the_body_tells_the_timeout_warning_from_the_final_notice() -> None:
    warning = parse_body(_body(TIMEOUT_WARNING))
    final = parse_body(_body(TIMEOUT_FINAL))

    # One subject, one tipo: the 24-hour notice says 5.4.1; the 12-hour one leaves it to
    # its date (is_final).
    assert (warning.kind(Kind.TIMEOUT), warning.final, warning.code) == (
        Kind.TIMEOUT,
        None,
        "4.4.7",
    )
    assert (final.kind(Kind.TIMEOUT), final.final, final.code) == (Kind.TIMEOUT, True, "5.4.1")


def test_the_daticert_wins_over_the_header_and_reads_single_quotes_and_entities() -> None:
    body = parse_body(
        "X-Ricevuta: avvenuta-consegna\n\n"
        "<postacert tipo='errore-consegna' errore='no-dest'>"
        "<dati><msgid>&lt;2026031012000001@pecmassiva.com&gt;</msgid>"
        "<errore-esteso>5.1.1 utente &quot;sconosciuto&quot;</errore-esteso></dati></postacert>"
    )

    assert body.kind(Kind.DELIVERED) is Kind.NOT_DELIVERED
    assert body.message_id == ID
    assert body.detail == '5.1.1 utente "sconosciuto" (no-dest)'


def test_a_body_with_only_the_header_or_nothing_at_all() -> None:
    assert parse_body("X-Ricevuta: accettazione\nDate: x").kind(Kind.OTHER) is Kind.ACCEPTED
    assert parse_body("Ciao, ti rispondo.").kind(Kind.CERTIFIED) is None
    assert parse_body("<postacert tipo='boh'></postacert>").kind(Kind.DELIVERED) is None


def test_a_message_id_that_is_not_the_vendors_is_not_taken_for_one() -> None:
    body = parse_body(
        "<postacert tipo='accettazione'><dati><msgid>&lt;opec275.x@pec.it&gt;</msgid></dati>"
        "</postacert>"
    )

    assert body.tipo == "accettazione"

    assert body.message_id is None


def test_dates_keep_utc_and_the_original_offset() -> None:
    summer = parse_date("Wed, 26 Aug 2020 10:00:35 +0200")
    unknown_zone = parse_date("Wed, 26 Aug 2020 10:00:35 -0000")

    assert summer is not None and unknown_zone is not None
    assert summer.utc == datetime(2020, 8, 26, 8, 0, 35, tzinfo=UTC)
    assert summer.offset == "+0200"
    assert (unknown_zone.utc.hour, unknown_zone.offset) == (10, "-0000")
    assert parse_date("ieri sera") is None
    assert parse_date("") is None


@pytest.mark.parametrize(
    ("sender", "address"),
    [
        ('"Per conto di: Mario.Rossi@legalmail.it" ', "mario.rossi@legalmail.it"),
        (
            '"Per conto di: mario@legalmail.it" <posta-certificata@legalmail.it>',
            "mario@legalmail.it",
        ),
        ("mario@legalmail.it", "mario@legalmail.it"),
        ("Mario Rossi <mario@legalmail.it>", "mario@legalmail.it"),
        ("sconosciuto", None),
    ],
)
def test_the_address_a_certified_message_comes_from(sender: str, address: str | None) -> None:
    assert sender_address(sender) == address


# -- the state machine ---------------------------------------------------------------------


def _recipient(state: str = "sent", **fields: object) -> Tracked:
    values: dict[str, object] = {
        "id": 1,
        "address": "mario@legalmail.it",
        "subject": "Avviso",
        "state": state,
        "message_id": ID,
        "sent_at": AT,
        "accepted_at": None,
        "delivered_at": None,
        "failed_at": None,
        "reason": None,
        **fields,
    }
    return Tracked(**values)  # type: ignore[arg-type]


def test_moves_are_forward_only() -> None:
    later = AT + timedelta(minutes=1)
    accepted = advance(_recipient(), Kind.ACCEPTED, False, AT, None)
    delivered = advance(accepted, Kind.DELIVERED, True, later, None)

    assert (accepted.state, accepted.accepted_at) == ("accepted", AT)
    assert (delivered.state, delivered.delivered_at) == ("delivered", later)
    assert advance(delivered, Kind.NOT_DELIVERED, True, later, "not delivered: x") == delivered
    assert advance(delivered, Kind.ACCEPTED, False, later, None) == delivered


def test_a_late_acceptance_only_fills_accepted_at() -> None:
    delivered = _recipient("delivered", delivered_at=AT)

    after = advance(delivered, Kind.ACCEPTED, False, AT - timedelta(seconds=5), None)

    assert (after.state, after.accepted_at) == ("delivered", AT - timedelta(seconds=5))


def test_a_receipt_that_comes_after_expiry_still_counts() -> None:
    expired = _recipient("expired", reason="no delivery receipt")

    after = advance(expired, Kind.DELIVERED, True, AT, None)

    assert (after.state, after.reason) == ("delivered", None)


def test_a_warning_changes_nothing_and_a_failure_keeps_its_reason() -> None:
    accepted = _recipient("accepted", accepted_at=AT)

    assert advance(accepted, Kind.TIMEOUT, False, AT, "x") == accepted
    failed = advance(accepted, Kind.NOT_DELIVERED, True, AT, "not delivered: no-dest")
    assert (failed.state, failed.failed_at, failed.reason) == (
        "failed",
        AT,
        "not delivered: no-dest",
    )


def test_a_delivery_time_notice_is_final_from_22_hours_or_when_its_body_says_so() -> None:
    assert is_final(Kind.TIMEOUT, None, AT + timedelta(hours=12), AT) is False
    assert is_final(Kind.TIMEOUT, None, AT + timedelta(hours=22), AT) is True
    assert is_final(Kind.TIMEOUT, True, AT + timedelta(hours=12), AT) is True
    assert is_final(Kind.TIMEOUT, False, AT + timedelta(hours=24), AT) is False
    assert is_final(Kind.TIMEOUT, None, AT, None) is None
    assert is_final(Kind.DELIVERED, None, None, None) is True
    assert is_final(Kind.ACCEPTED, None, AT, AT) is False


def test_failure_reasons_are_readable() -> None:
    body = parse_body(_body(MANCATA_CONSEGNA))

    assert failure_reason(Kind.NOT_DELIVERED, "Avviso di mancata consegna: x 1", None) == (
        "not delivered: AVVISO DI MANCATA CONSEGNA"
    )
    assert failure_reason(Kind.NOT_DELIVERED, "x", body) == (
        "not delivered: 5.1.1 - pecmassiva.com - indirizzo non valido: casella di destinazione"
        " inesistente (no-dest)"
    )
    assert failure_reason(Kind.DELIVERED, "CONSEGNA: x 1", None) is None
