"""The applicant of a new box: every problem reported at once, each with its fix."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from massiva.provisioning import ApplicantError, FieldError, load_applicant, validate_applicant
from massiva.provisioning.applicant import PROVINCES, cf_check_letter

TODAY = date(2026, 3, 10)

# As a user might write it: mixed case, short dates, spaces in the phone number.
APPLICANT: dict[str, Any] = {
    "casella_pec": " Ufficio@PecMassiva.com ",
    "tipo_cliente": "im",
    "sottotipo_cliente": "in",
    "sottotipo_cliente_altro": "",
    "nome_richiedente": "Mario",
    "cognome_richiedente": "Rossi",
    "email": "mario.rossi@example.com",
    "telefono": "+39 06 1234567",
    "codice_fiscale_richiedente": "rssmra80a01h501u",
    "data_nascita_richiedente": "1/1/1980",
    "sesso_richiedente": "m",
    "nazione_nascita_richiedente": "it",
    "comune_nascita_richiedente": "Roma",
    "provincia_nascita_richiedente": "rm",
    "denominazione_titolare": "Rossi Srl",
    "cf_piva_titolare": "12345678901",
    "indirizzo_titolare": "Via Verdi 20",
    "comune_titolare": "Roma",
    "cap_titolare": "00042",
    "nazione_titolare": "IT",
    "provincia_titolare": "RM",
    "callback": {"url": "https://example.com/pec-callback", "method": "post"},
    "autorinnovo": True,
    "tipo_documento": "carta_d_identita",
    "numero_documento": "CA00000AA",
    "data_scadenza_documento": "31/12/2030",
    "documento_rilasciato_da": "Comune di Roma",
    "data_rilascio_documento": "01/01/2021",
}


def errors_of(data: dict[str, Any], **options: Any) -> list[str]:
    """The problems ``validate_applicant`` reports, one string each."""
    with pytest.raises(ApplicantError) as caught:
        validate_applicant(data, today=TODAY, **options)
    return [str(e) for e in caught.value.errors]


def test_a_valid_applicant_becomes_the_normalised_body() -> None:
    body = validate_applicant(APPLICANT, today=TODAY)

    assert body == {
        "casella_pec": "ufficio@pecmassiva.com",
        "tipo_casella": "PECMASSIVA",
        "tipo_cliente": "IM",
        "sottotipo_cliente": "IN",
        "nome_richiedente": "Mario",
        "cognome_richiedente": "Rossi",
        "email": "mario.rossi@example.com",
        "telefono": "+39061234567",
        "codice_fiscale_richiedente": "RSSMRA80A01H501U",
        "data_nascita_richiedente": "01/01/1980",
        "sesso_richiedente": "M",
        "nazione_nascita_richiedente": "IT",
        "comune_nascita_richiedente": "Roma",
        "provincia_nascita_richiedente": "RM",
        "denominazione_titolare": "Rossi Srl",
        "cf_piva_titolare": "12345678901",
        "indirizzo_titolare": "Via Verdi 20",
        "comune_titolare": "Roma",
        "cap_titolare": "00042",
        "nazione_titolare": "IT",
        "provincia_titolare": "RM",
        "callback": {"url": "https://example.com/pec-callback", "method": "POST"},
        "autorinnovo": True,
        "tipo_documento": "CARTA_D_IDENTITA",
        "numero_documento": "CA00000AA",
        "data_scadenza_documento": "31/12/2030",
        "documento_rilasciato_da": "Comune di Roma",
        "data_rilascio_documento": "01/01/2021",
    }


def test_every_problem_is_reported_at_once() -> None:
    bad = {key: value for key, value in APPLICANT.items() if key != "nome_richiedente"}
    bad |= {
        "nome_richedente": "Mario",
        "casella_pec": "ufficio@gmail.com",
        "email": "mario.rossi@",
        "telefono": "06-1234567",
        "codice_fiscale_richiedente": "RSSMRA80A01H501X",
        "data_nascita_richiedente": "1980-01-31",
        "sesso_richiedente": "X",
        "cap_titolare": "0042",
        "callback": {"url": "http://example.com/cb"},
    }

    with pytest.raises(ApplicantError) as caught:
        validate_applicant(bad, today=TODAY)

    assert str(caught.value) == "\n".join(
        [
            "nome_richedente: unknown field; did you mean nome_richiedente?",
            'casella_pec: "ufficio@gmail.com" must end in @pecmassiva.com for a PECMASSIVA box;'
            " write e.g. ufficio@pecmassiva.com, or to use your own certified domain gmail.com,"
            " register it first with `massiva domain add`",
            "nome_richiedente: missing; add it (customer name)",
            'email: "mario.rossi@" is not an e-mail address; write it like mario.rossi@example.com',
            'telefono: "06-1234567" may hold only digits, spaces and a leading +;'
            " write it like +39 06 1234567",
            'codice_fiscale_richiedente: "RSSMRA80A01H501X" has check letter X, but its first 15'
            " characters give U: one of them is mistyped; copy it again from the tessera sanitaria",
            'data_nascita_richiedente: "1980-01-31" is not a date in dd/mm/yyyy form;'
            " write it as 31/01/1980",
            'sesso_richiedente: "X" is not a valid value; write one of: M, F',
            'cap_titolare: "0042" is not 5 digits; write the CAP as 5 digits, e.g. 00042',
            'callback.url: "http://example.com/cb" is not an https:// address; the vendor calls'
            " it over the internet, so use https:// (http:// only for localhost)",
        ]
    )
    assert caught.value.errors[0] == FieldError(
        "nome_richedente", "unknown field; did you mean nome_richiedente?"
    )


def test_missing_empty_and_non_text_fields() -> None:
    data = {key: value for key, value in APPLICANT.items() if key != "tipo_cliente"}
    data |= {"cognome_richiedente": "  ", "cap_titolare": 42, "numero_documento": ""}

    assert errors_of(data) == [
        "tipo_cliente: missing; add it (customer type: one of IM, PS, PL, PC, A, PV, X)",
        "cognome_richiedente: empty; fill it in (customer surname)",
        "cap_titolare: 42 is a number, not text; write it in quotes",
    ]


def test_tipo_casella_defaults_to_the_box_type_and_is_checked() -> None:
    data = {**APPLICANT, "casella_pec": "mario@domiciliodigitale.com"}

    body = validate_applicant(data, box_type="DOMICILIODIGITALE", today=TODAY)
    assert body["tipo_casella"] == "DOMICILIODIGITALE"

    assert errors_of({**APPLICANT, "tipo_casella": "PECMASIVA"}) == [
        'tipo_casella: "PECMASIVA" is not a valid value; write one of: STANDARD, BRONZE,'
        " SILVER, GOLD, DOMICILIODIGITALE, PECMASSIVA; did you mean PECMASSIVA?"
    ]
    with pytest.raises(ValueError, match="box_type 'PLATINUM' is not one of"):
        validate_applicant(APPLICANT, box_type="PLATINUM", today=TODAY)


def test_sub_types_must_belong_to_the_client_type() -> None:
    assert errors_of({**APPLICANT, "tipo_cliente": "PV"}) == [
        "sottotipo_cliente: tipo_cliente PV (Privato) has no sub-types; remove sottotipo_cliente"
    ]
    assert errors_of({**APPLICANT, "tipo_cliente": "PL", "sottotipo_cliente": "PA"}) == [
        'sottotipo_cliente: "PA" is not a sub-type of tipo_cliente PL (Pubblica Amministrazione'
        " Locale); write one of: LR (REGIONE), LP (PROVINCIA), LC (COMUNE), LM (COMUNITA"
        " MONTANA), LA (ASL), LI (CCIAA), X (ALTRO)"
    ]
    body = validate_applicant(
        {**APPLICANT, "tipo_cliente": "ps", "sottotipo_cliente": "pa"}, today=TODAY
    )
    assert (body["tipo_cliente"], body["sottotipo_cliente"]) == ("PS", "PA")


def test_the_codice_fiscale_check_letter() -> None:
    assert cf_check_letter("RSSMRA80A01H501") == "U"
    # The Agenzia delle Entrate's own example.
    assert cf_check_letter("MRTMTT25D09F205") == "Z"

    assert errors_of({**APPLICANT, "codice_fiscale_richiedente": "RSSMRA80A01H501A"}) == [
        'codice_fiscale_richiedente: "RSSMRA80A01H501A" has check letter A, but its first 15'
        " characters give U: one of them is mistyped; copy it again from the tessera sanitaria"
    ]


def test_the_shape_of_the_codice_fiscale() -> None:
    assert errors_of({**APPLICANT, "codice_fiscale_richiedente": "RSSMRA80A01H501"}) == [
        'codice_fiscale_richiedente: "RSSMRA80A01H501" has 15 characters, a codice fiscale has'
        " 16; copy it again from the tessera sanitaria"
    ]
    assert errors_of({**APPLICANT, "codice_fiscale_richiedente": "RSSMRA80Z01H501U"}) == [
        'codice_fiscale_richiedente: "RSSMRA80Z01H501U" is not a codice fiscale: character 9'
        " (Z) should be a month letter (ABCDEHLMPRST); copy it again from the tessera sanitaria"
    ]


def test_an_omocodia_code_is_accepted_and_decoded() -> None:
    # The last digit of the place code, 1, replaced by its omocodia letter M.
    code = "RSSMRA80A01H50M" + cf_check_letter("RSSMRA80A01H50M")
    body = validate_applicant({**APPLICANT, "codice_fiscale_richiedente": code}, today=TODAY)
    assert body["codice_fiscale_richiedente"] == code

    # Day 0R = 05 with omocodia, + 40 for a woman = 45.
    code = "RSSMRA80A4RH501" + cf_check_letter("RSSMRA80A4RH501")
    data = {**APPLICANT, "codice_fiscale_richiedente": code}
    body = validate_applicant(
        data | {"sesso_richiedente": "F", "data_nascita_richiedente": "05/01/1980"}, today=TODAY
    )
    assert body["sesso_richiedente"] == "F"


def test_the_codice_fiscale_must_match_sex_and_birth_date() -> None:
    data = {**APPLICANT, "sesso_richiedente": "F", "data_nascita_richiedente": "02/01/1981"}

    assert errors_of(data) == [
        "codice_fiscale_richiedente: the code is a man's but sesso_richiedente is F;"
        " correct whichever is wrong",
        "codice_fiscale_richiedente: the code says born 01/01/80 but data_nascita_richiedente"
        " is 02/01/1981; correct whichever is wrong",
    ]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "data_nascita_richiedente",
            "31/02/1980",
            '"31/02/1980" is not a real calendar date; check the day and the month',
        ),
        (
            "data_nascita_richiedente",
            "31.01.1980",
            '"31.01.1980" is not a date in dd/mm/yyyy form; write it as 31/01/1980',
        ),
        (
            "data_nascita_richiedente",
            "January 1980",
            '"January 1980" is not a date in dd/mm/yyyy form; write it like 31/01/1980',
        ),
        (
            "data_nascita_richiedente",
            "11/03/2008",
            '"11/03/2008" makes the applicant 17; the applicant must be at least 18'
            " (check the date, or have an adult apply)",
        ),
        (
            "data_nascita_richiedente",
            "01/01/2027",
            '"01/01/2027" is not in the past; write the applicant\'s date of birth',
        ),
        (
            "data_scadenza_documento",
            "09/03/2026",
            '"09/03/2026" is in the past: the identity document has expired;'
            " use a document that is still valid",
        ),
        (
            "data_rilascio_documento",
            "11/03/2026",
            '"11/03/2026" is in the future; write the date the document was issued',
        ),
        (
            "data_nascita_richiedente",
            date(1980, 1, 31),
            '1980-01-31 is a TOML date, not text; write it in quotes as "31/01/1980"',
        ),
    ],
)
def test_dates(field: str, value: object, message: str) -> None:
    errors = [e for e in errors_of({**APPLICANT, field: value}) if e.startswith(field)]
    assert errors == [f"{field}: {message}"]


def test_18_on_the_birthday_and_a_document_expiring_today_are_fine() -> None:
    body = validate_applicant(
        {
            **APPLICANT,
            "codice_fiscale_richiedente": "RSSMRA08C10H501" + cf_check_letter("RSSMRA08C10H501"),
            "data_nascita_richiedente": "10/03/2008",
        },
        today=TODAY,
    )
    assert body["data_nascita_richiedente"] == "10/03/2008"
    assert validate_applicant({**APPLICANT, "data_scadenza_documento": "10/03/2026"}, today=TODAY)


def test_pecmassiva_boxes_need_pecmassiva_com_or_an_own_domain() -> None:
    data = {**APPLICANT, "casella_pec": "Ufficio@Rossi.it"}

    assert errors_of(data) == [
        'casella_pec: "ufficio@rossi.it" must end in @pecmassiva.com for a PECMASSIVA box;'
        " write e.g. ufficio@pecmassiva.com, or to use your own certified domain rossi.it,"
        " register it first with `massiva domain add`"
    ]
    body = validate_applicant(data, own_domains={"ROSSI.IT"}, today=TODAY)
    assert body["casella_pec"] == "ufficio@rossi.it"
    assert validate_applicant(data, own_domains=["@rossi.it"], today=TODAY)


def test_each_box_type_has_its_domain() -> None:
    gold = {**APPLICANT, "tipo_casella": "gold"}
    assert errors_of(gold) == [
        'casella_pec: "ufficio@pecmassiva.com" must end in @legalmail.it for a GOLD box;'
        " write e.g. ufficio@legalmail.it, or to use your own certified domain,"
        " register it first with `massiva domain add`"
    ]
    body = validate_applicant(gold | {"casella_pec": "ufficio@legalmail.it"}, today=TODAY)
    assert body["tipo_casella"] == "GOLD"


def test_the_sandbox_wants_its_test_domains() -> None:
    assert errors_of(APPLICANT, sandbox=True) == [
        'casella_pec: "ufficio@pecmassiva.com" must end in @testcert.legalmail.it or'
        " @test.domiciliodigitale.com in the sandbox; write e.g. ufficio@testcert.legalmail.it,"
        " or to use your own certified domain, register it first with `massiva domain add`"
    ]
    for mailbox in ("ufficio@testcert.legalmail.it", "ufficio@test.domiciliodigitale.com"):
        data = {**APPLICANT, "casella_pec": mailbox}
        assert validate_applicant(data, sandbox=True, today=TODAY)["casella_pec"] == mailbox


def test_mailbox_address_shape() -> None:
    assert errors_of({**APPLICANT, "casella_pec": "uff icio@pecmassiva.com"}) == [
        'casella_pec: "uff icio@pecmassiva.com" is not a mailbox address; write the box to'
        " create, e.g. ufficio@pecmassiva.com (letters, digits, dots, - and _ before the @)"
    ]


def test_provinces_countries_and_phones() -> None:
    data = {
        **APPLICANT,
        "provincia_titolare": "XX",
        "provincia_nascita_richiedente": "Roma",
        "nazione_titolare": "ITA",
        "cellulare": "+39 3",
    }

    assert errors_of(data) == [
        'cellulare: "+39 3" has 3 digits; a phone number has 6 to 15',
        'provincia_nascita_richiedente: "Roma" is not a 2-letter province code;'
        " write e.g. RM for Roma",
        'nazione_titolare: "ITA" is not a 2-letter ISO country code; write e.g. IT for Italy',
    ]
    # Only Italian provinces are checked against the list: abroad, EE (estero) will do.
    data = {**APPLICANT, "nazione_nascita_richiedente": "fr", "provincia_nascita_richiedente": "ee"}
    assert validate_applicant(data, today=TODAY)["provincia_nascita_richiedente"] == "EE"
    assert errors_of({**APPLICANT, "provincia_titolare": "xx"}) == [
        'provincia_titolare: "XX" is not an Italian province code; write e.g. RM for Roma'
    ]
    assert len(PROVINCES) == 107 + 4


def test_callback_and_autorinnovo() -> None:
    data = {**APPLICANT, "callback": {"url": "http://localhost:8000/cb", "metod": "POST"}}
    assert errors_of(data) == ["callback.metod: unknown field; did you mean method?"]

    data["callback"] = {"url": "http://localhost:8000/cb"}
    assert validate_applicant(data, today=TODAY)["callback"] == {"url": "http://localhost:8000/cb"}

    data = {**APPLICANT, "callback": "https://example.com/cb", "autorinnovo": "yes"}
    assert errors_of(data) == [
        'callback: "https://example.com/cb" is not an object with a url;'
        ' write e.g. {"url": "https://example.com/pec-callback"}',
        'autorinnovo: "yes" is not true or false; write true or false, without quotes',
    ]
    data = {**APPLICANT, "callback": {"url": "https://localhost.evil.example/cb", "method": "GET"}}
    assert errors_of(data) == [
        'callback.method: "GET" is not a valid value; write one of: POST, JSON'
    ]


def test_an_unknown_field_far_from_any_known_one_lists_them() -> None:
    (error,) = errors_of({**APPLICANT, "zzz": "1"})
    assert error.startswith("zzz: unknown field; remove it (the known ones: casella_pec, ")


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_load_toml(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "applicant.toml",
        'casella_pec = "ufficio@pecmassiva.com"\nautorinnovo = true\n\n'
        '[callback]\nurl = "https://example.com/cb"\n',
    )

    assert load_applicant(path) == {
        "casella_pec": "ufficio@pecmassiva.com",
        "autorinnovo": True,
        "callback": {"url": "https://example.com/cb"},
    }


def test_load_json_with_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "applicant.JSON"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(APPLICANT).encode())

    assert validate_applicant(load_applicant(path), today=TODAY)["tipo_cliente"] == "IM"


def test_syntax_errors_give_file_and_line(tmp_path: Path) -> None:
    toml = write(tmp_path, "applicant.toml", 'nome_richiedente = "Mario"\ncap_titolare = \n')
    with pytest.raises(ApplicantError) as caught:
        load_applicant(toml)
    assert str(caught.value) == (
        f"{toml}: line 2, column 16: invalid TOML (Invalid value); fix the syntax there"
    )

    js = write(tmp_path, "applicant.json", '{\n  "nome_richiedente": "Mario"\n  "cap": "1"\n}')
    with pytest.raises(ApplicantError) as caught:
        load_applicant(js)
    assert str(caught.value) == (
        f"{js}: line 3, column 3: invalid JSON (Expecting ',' delimiter); fix the syntax there"
    )


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "applicant.yaml",
            "a: 1",
            "is not a .toml or .json file; write the applicant in one of those",
        ),
        ("absent.toml", None, "does not exist; check the path"),
        ("list.json", "[1, 2]", "must hold one JSON object, {...}, with the applicant's fields"),
    ],
)
def test_unusable_files(tmp_path: Path, name: str, text: str | None, message: str) -> None:
    path = tmp_path / name
    if text is not None:
        path.write_text(text, encoding="utf-8")

    with pytest.raises(ApplicantError) as caught:
        load_applicant(path)
    assert caught.value.errors == [FieldError(str(path), message)]


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "applicant.toml"
    path.write_bytes('nome_richiedente = "Niccolò"'.encode("latin-1"))

    with pytest.raises(ApplicantError, match="is not UTF-8 text; save it as UTF-8"):
        load_applicant(path)
