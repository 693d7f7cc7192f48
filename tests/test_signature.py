"""A receipt's S/MIME signature, checked with openssl: intact, changed, unsigned, expired."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime

import pytest

from massiva.signature import check
from massiva.simulator.models import SendRecord
from massiva.simulator.receipts import CONSEGNA, receipt_body

AT = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)

pytestmark = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="openssl checks the signatures; it is not here"
)


def signed_receipt() -> str:
    send = SendRecord(
        message_id="2026031012000001",
        mailbox="ufficio@pecmassiva.com",
        recipients=("mario.rossi@legalmail.it",),
        subject="Avviso di pagamento è",
        body="<p>Gentile Mario</p>",
        at=AT,
        attachments=(),
    )
    return receipt_body(
        CONSEGNA, send, [("mario.rossi@legalmail.it", "certificato")], AT, "CONSEGNA: Avviso"
    )


def test_a_signed_receipt_as_received_is_intact_and_names_its_signer() -> None:
    signature = check(signed_receipt())

    assert signature.intact is True
    assert signature.signer is not None
    assert "CN=PEC MASSIVA simulatore - posta-certificata@pecmassiva.com" in signature.signer
    assert signature.valid_until == datetime(2030, 1, 1, tzinfo=UTC)
    assert not signature.expired(AT)
    assert signature.expired(datetime(2031, 1, 1, tzinfo=UTC))


def test_one_changed_character_breaks_it() -> None:
    body = signed_receipt().replace("consegnato nella", "consegnato NELLA")

    signature = check(body)

    assert (signature.intact, signature.why) == (False, "the signature does not match the content")


def test_an_unsigned_body_or_no_openssl_is_said_plainly(monkeypatch: pytest.MonkeyPatch) -> None:
    unsigned = check("X-Ricevuta: accettazione\n\nRicevuta di accettazione")
    monkeypatch.setenv("PATH", "")
    without_openssl = check(signed_receipt())

    assert (unsigned.intact, unsigned.why) == (
        None,
        "not signed (no S/MIME signature in the body kept)",
    )
    assert (without_openssl.intact, without_openssl.why) == (
        None,
        "openssl is not installed here: the signature was not checked",
    )
