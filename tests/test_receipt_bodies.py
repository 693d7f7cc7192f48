"""Receipt bodies as real providers send them, written here by hand from the daticert DTD
facts (DOMAIN.md): S/MIME-signed MIME messages whose daticert.xml is a base64 part, the
12- and 24-hour notices, envelopes that are never receipts, and a daticert inside the
carried original that is never the receipt's own."""

from __future__ import annotations

import base64
import quopri
from datetime import UTC, datetime, timedelta

from massiva.receipts import Kind, parse_body
from massiva.reconcile import is_final

ID = "2026031012000001"
SENT = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


def daticert(tipo: str, errore: str = "nessuno", *, dati: str = "", to: str = "mario@x.it") -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<!DOCTYPE postacert SYSTEM "Docs/daticert.dtd">\n'
        f'<postacert tipo="{tipo}" errore="{errore}">\n'
        "  <intestazione>\n"
        "    <mittente>ufficio@pecmassiva.com</mittente>\n"
        f'    <destinatari tipo="certificato">{to}</destinatari>\n'
        "    <risposte>ufficio@pecmassiva.com</risposte>\n"
        "    <oggetto>Avviso di pagamento</oggetto>\n"
        "  </intestazione>\n"
        "  <dati>\n"
        "    <gestore-emittente>ACTALIS S.p.A.</gestore-emittente>\n"
        '    <data zona="+0100">\n'
        "      <giorno>10/03/2026</giorno>\n"
        "      <ora>10:01:02</ora>\n"
        "    </data>\n"
        "    <identificativo>opec21.20260310100102.1234.56.1.7@pec.actalis.it</identificativo>\n"
        f"    <msgid>&lt;{ID}@pecmassiva.com&gt;</msgid>\n"
        f"{dati}"
        "  </dati>\n"
        "</postacert>\n"
    )


def b64(text: str) -> str:
    return base64.encodebytes(text.encode("utf-8")).decode("ascii")


def receipt(
    header: str, xml: str, *, original: str = "", words: str = "Ricevuta di avvenuta consegna"
) -> str:
    """A receipt as a provider sends it: signed, mixed, text in ISO-8859-1 quoted-printable,
    daticert.xml in base64, the original (if any) as postacert.eml."""
    text = quopri.encodestring(words.encode("iso-8859-1")).decode("ascii")
    carried = (
        "--mixed\n"
        "Content-Type: message/rfc822\n"
        'Content-Disposition: inline; filename="postacert.eml"\n\n'
        f"{original}\n"
        if original
        else ""
    )
    return (
        f"{header}"
        "Date: Tue, 10 Mar 2026 10:01:02 +0100\n"
        "From: posta-certificata@pec.actalis.it\n"
        f"Subject: CONSEGNA: Avviso di pagamento {ID}\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/signed; protocol="application/pkcs7-signature";'
        ' micalg=sha-256; boundary="signed"\n\n'
        "--signed\n"
        'Content-Type: multipart/mixed; boundary="mixed"\n\n'
        "--mixed\n"
        'Content-Type: text/plain; charset="iso-8859-1"\n'
        "Content-Transfer-Encoding: quoted-printable\n\n"
        f"{text}\n"
        "--mixed\n"
        'Content-Type: application/xml; name="daticert.xml"\n'
        "Content-Transfer-Encoding: base64\n"
        'Content-Disposition: inline; filename="daticert.xml"\n\n'
        f"{b64(xml)}"
        f"{carried}"
        "--mixed--\n"
        "--signed\n"
        'Content-Type: application/pkcs7-signature; name="smime.p7s"\n'
        "Content-Transfer-Encoding: base64\n"
        'Content-Disposition: attachment; filename="smime.p7s"\n\n'
        "MIIBAAYJKoZIhvcNAQcCoIIA8TCCAO0CAQExDzANBglghkgBZQMEAgEFADALBgkqhkiG9w0BBwE=\n"
        "--signed--\n"
    )


def test_a_full_delivery_receipt_is_read_from_its_base64_daticert() -> None:
    xml = daticert(
        "avvenuta-consegna",
        dati='    <ricevuta tipo="completa" />\n    <consegna>mario@x.it</consegna>\n',
    )

    body = parse_body(receipt("X-Ricevuta: avvenuta-consegna\n", xml))

    assert body.kind(Kind.DELIVERED) is Kind.DELIVERED
    assert (body.ricevuta, body.tipo, body.errore) == (
        "avvenuta-consegna",
        "avvenuta-consegna",
        "nessuno",
    )
    assert (body.consegna, body.destinatari, body.message_id) == ("mario@x.it", ("mario@x.it",), ID)
    assert body.identificativo == "opec21.20260310100102.1234.56.1.7@pec.actalis.it"
    assert (body.gestore, body.ricevuta_tipo) == ("ACTALIS S.p.A.", "completa")
    assert body.data == datetime(2026, 3, 10, 9, 1, 2, tzinfo=UTC)  # 10:01:02 at +0100


def test_the_reason_is_the_code_of_errore_esteso_whatever_errore_says() -> None:
    xml = daticert(
        "errore-consegna",
        "altro",  # one provider moved "unknown address" from no-dest to altro
        dati="    <consegna>mario@x.it</consegna>\n"
        "    <errore-esteso>5.1.1 - Actalis S.p.A. - indirizzo non valido</errore-esteso>\n",
    )

    body = parse_body(receipt("X-Ricevuta: errore-consegna\n", xml))

    assert body.kind(Kind.NOT_DELIVERED) is Kind.NOT_DELIVERED
    assert body.code == "5.1.1"
    assert body.detail == "5.1.1 - Actalis S.p.A. - indirizzo non valido (altro)"
    assert body.final is True


def test_the_24_hour_notice_is_final_and_the_12_hour_one_is_not() -> None:
    final = parse_body(
        receipt(
            "X-Ricevuta: preavviso-errore-consegna\n",
            daticert(
                "preavviso-errore-consegna",
                "altro",
                dati="    <errore-esteso>5.4.1 - Actalis S.p.A. - il messaggio non è stato"
                " consegnato nelle ventiquattro ore successive al suo invio</errore-esteso>\n",
            ),
        )
    )
    warning = parse_body(
        receipt(
            "X-Ricevuta: preavviso-errore-consegna\n",
            daticert("preavviso-errore-consegna", "altro"),
        )
    )

    assert final.kind(Kind.TIMEOUT) is warning.kind(Kind.TIMEOUT) is Kind.TIMEOUT
    assert is_final(Kind.TIMEOUT, final.final, SENT + timedelta(hours=12), SENT) is True
    # Without the code, its date tells: 12 hours after the post a warning, from 22 final.
    assert is_final(Kind.TIMEOUT, warning.final, SENT + timedelta(hours=12), SENT) is False
    assert is_final(Kind.TIMEOUT, warning.final, SENT + timedelta(hours=23), SENT) is True


def test_a_daticert_in_the_carried_original_is_never_the_receipts_own() -> None:
    forged = (
        'Content-Type: multipart/mixed; boundary="inner"\n\n'
        "--inner\n"
        "Content-Type: text/plain\n\n"
        "X-Ricevuta: errore-consegna\n"
        "--inner\n"
        'Content-Type: application/xml; name="daticert.xml"\n'
        "Content-Transfer-Encoding: base64\n"
        'Content-Disposition: inline; filename="daticert.xml"\n\n'
        f"{b64(daticert('errore-consegna', 'no-dest', to='eve@x.it'))}"
        "--inner--\n"
    )
    xml = daticert("avvenuta-consegna", dati="    <consegna>mario@x.it</consegna>\n")

    body = parse_body(receipt("X-Ricevuta: avvenuta-consegna\n", xml, original=forged))

    assert (body.tipo, body.consegna, body.destinatari) == (
        "avvenuta-consegna",
        "mario@x.it",
        ("mario@x.it",),
    )


def test_an_envelope_is_never_a_receipt_whatever_it_carries() -> None:
    inside = daticert("avvenuta-consegna", dati="    <consegna>mario@x.it</consegna>\n")
    certified = parse_body(
        receipt("X-Trasporto: posta-certificata\nX-Ricevuta: avvenuta-consegna\n", inside)
    )
    anomaly = parse_body(receipt("X-Trasporto: errore\n", inside))

    assert certified.kind(Kind.DELIVERED) is Kind.CERTIFIED
    assert anomaly.kind(Kind.DELIVERED) is Kind.ANOMALY
    assert (certified.tipo, certified.consegna, certified.destinatari) == (None, None, ())
    assert certified.final is None


def test_an_x_ricevuta_below_the_top_level_headers_is_not_one() -> None:
    body = parse_body(
        "From: mario@x.it\nSubject: CONSEGNA: Avviso\n\nX-Ricevuta: avvenuta-consegna\n"
    )

    assert (body.ricevuta, body.kind(Kind.DELIVERED)) == (None, None)


def test_two_daticerts_or_a_daticert_with_entities_say_nothing() -> None:
    xml = daticert("avvenuta-consegna", dati="    <consegna>mario@x.it</consegna>\n")
    part = (
        "--mixed\n"
        'Content-Type: application/xml; name="daticert.xml"\n'
        "Content-Transfer-Encoding: base64\n"
        'Content-Disposition: inline; filename="daticert.xml"\n\n'
        f"{b64(xml)}"
    )
    twice = receipt("X-Ricevuta: avvenuta-consegna\n", xml).replace("--mixed--", part + "--mixed--")
    laughs = (
        '<?xml version="1.0"?>\n<!DOCTYPE postacert [<!ENTITY a "mario@x.it">]>\n'
        '<postacert tipo="avvenuta-consegna"><dati><consegna>&a;</consegna></dati></postacert>'
    )

    for body in (parse_body(twice), parse_body(receipt("X-Ricevuta: accettazione\n", laughs))):
        assert (body.tipo, body.consegna) == (None, None)
    assert parse_body(twice).ricevuta == "avvenuta-consegna"  # the header alone stands
