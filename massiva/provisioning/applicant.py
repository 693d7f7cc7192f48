"""The applicant of a new certified mailbox: load it from a file, check it, normalise it.

:func:`validate_applicant` turns what a user wrote into the body of ``POST /pec``, or
raises :class:`ApplicantError` listing every problem at once, each with the fix. All
checks are local: nothing here touches the network.
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# --- Tables copied from the vendor's spec (pec.openapi.json) --------------------------

#: components.schemas.BodyPostPec: every field, in the spec's order, with its description.
FIELDS: dict[str, str] = {
    "casella_pec": "mailbox name",
    "tipo_casella": "type of mailbox",
    "tipo_cliente": "customer type",
    "sottotipo_cliente": "customer subtype",
    "sottotipo_cliente_altro": "customer subtype, other",
    "nome_richiedente": "customer name",
    "cognome_richiedente": "customer surname",
    "email": "customer email",
    "telefono": "customer telephone",
    "cellulare": "customer mobile phone",
    "codice_fiscale_richiedente": "customer fiscal code",
    "data_nascita_richiedente": "customer date of birth, dd/mm/yyyy",
    "sesso_richiedente": "gender",
    "nazione_nascita_richiedente": "customer country code",
    "comune_nascita_richiedente": "customer city",
    "provincia_nascita_richiedente": "customer province code",
    "denominazione_titolare": "holder denomination",
    "cf_piva_titolare": "holder vat number",
    "indirizzo_titolare": "holder address",
    "comune_titolare": "holder city",
    "cap_titolare": "holder postal code",
    "nazione_titolare": "holder country code",
    "provincia_titolare": "holder province code",
    "callback": "where to notify changes of state",
    "autorinnovo": "renew automatically on expiry",
    "tipo_documento": "type of identity document",
    "numero_documento": "number of identity document",
    "data_scadenza_documento": "expiry date of the identity document, dd/mm/yyyy",
    "documento_rilasciato_da": "institution that issued the identity document",
    "data_rilascio_documento": "date of issue of the identity document, dd/mm/yyyy",
}

#: components.schemas.BodyPostPec.required
REQUIRED: frozenset[str] = frozenset(
    {
        "casella_pec",
        "tipo_casella",
        "tipo_cliente",
        "nome_richiedente",
        "cognome_richiedente",
        "email",
        "telefono",
        "codice_fiscale_richiedente",
        "data_nascita_richiedente",
        "sesso_richiedente",
        "nazione_nascita_richiedente",
        "indirizzo_titolare",
        "comune_titolare",
        "cap_titolare",
        "nazione_titolare",
        "provincia_titolare",
    }
)

#: BodyPostPec.tipo_casella
BOX_TYPES = ("STANDARD", "BRONZE", "SILVER", "GOLD", "DOMICILIODIGITALE", "PECMASSIVA")

#: BodyPostPec.tipo_cliente, with the names given in components.schemas.TipologieCliente.
CLIENT_TYPES: dict[str, str] = {
    "IM": "Impresa",
    "PS": "Professionista",
    "PL": "Pubblica Amministrazione Locale",
    "PC": "Pubblica Amministrazione Centrale",
    "A": "Associazione",
    "PV": "Privato",
    "X": "Altro",
}

#: components.schemas.TipologieCliente: the sub-types of each client type that has any.
#: (The spec spells TL "TRASPOSRTI LOGISTICA"; the label here is only shown to users.)
SUBTYPES: dict[str, dict[str, str]] = {
    "IM": {
        "SI": "SERVIZI IMPRESE",
        "IN": "INFORMATICA",
        "CM": "COMMERCIO",
        "TE": "TELECOMUNICAZIONI",
        "ES": "EDITORIA STAMPA",
        "ME": "MECCANICA ELETTRICA",
        "AL": "ALIMENTARE",
        "CF": "CHIMICA FARMACEUTICA",
        "ED": "EDILIZIA",
        "TM": "TESSILE MODA",
        "MA": "MOBILI ARREDAMENTI",
        "AR": "ALBERGHI RISTORANTI",
        "TL": "TRASPORTI LOGISTICA",
        "FI": "FINANZA",
        "X": "ALTRO",
    },
    "PS": {
        "PC": "COMMERCIALISTA",
        "PR": "RAGIONIERE",
        "PN": "NOTAIO",
        "PT": "TRIBUTARISTA",
        "PA": "AVVOCATO",
        "PL": "CONSULENTE LAVORO",
        "X": "ALTRO",
    },
    "PL": {
        "LR": "REGIONE",
        "LP": "PROVINCIA",
        "LC": "COMUNE",
        "LM": "COMUNITA MONTANA",
        "LA": "ASL",
        "LI": "CCIAA",
        "X": "ALTRO",
    },
}

#: BodyPostPec.sottotipo_cliente: exactly the union of the sub-types above, in order.
SUBTYPE_CODES: tuple[str, ...] = tuple(dict.fromkeys(c for s in SUBTYPES.values() for c in s))

#: BodyPostPec.sesso_richiedente
SEXES = ("M", "F")

#: BodyPostPec.tipo_documento
DOCUMENT_TYPES = ("CARTA_D_IDENTITA", "PATENTE", "PASSAPORTO")

#: components.schemas.Callback: its fields, and the enum of ``method``.
CALLBACK_FIELDS = ("method", "field", "url", "data")
CALLBACK_METHODS = ("POST", "JSON")

#: The description of POST /pec: the domain each box type needs without an own domain.
BOX_DOMAINS: dict[str, str] = {
    "STANDARD": "legalmail.it",
    "BRONZE": "legalmail.it",
    "SILVER": "legalmail.it",
    "GOLD": "legalmail.it",
    "DOMICILIODIGITALE": "domiciliodigitale.com",
    "PECMASSIVA": "pecmassiva.com",
}

#: ...and in the sandbox, where the spec names these two for every box type.
SANDBOX_DOMAINS = ("testcert.legalmail.it", "test.domiciliodigitale.com")

#: The fields whose values come from an enum of the spec.
_CHOICES: dict[str, Collection[str]] = {
    "tipo_casella": BOX_TYPES,
    "tipo_cliente": CLIENT_TYPES,
    "sesso_richiedente": SEXES,
    "tipo_documento": DOCUMENT_TYPES,
}

# --- Italian tables ---------------------------------------------------------------------

#: The sigle of the 107 Italian provinces and metropolitan cities, plus the four Sardinian
#: ones abolished in 2016 (CI, OG, OT, VS), still printed on older documents.
# fmt: off
PROVINCES: frozenset[str] = frozenset({
    "AG", "AL", "AN", "AO", "AP", "AQ", "AR", "AT", "AV", "BA", "BG", "BI", "BL", "BN", "BO",
    "BR", "BS", "BT", "BZ", "CA", "CB", "CE", "CH", "CL", "CN", "CO", "CR", "CS", "CT", "CZ",
    "EN", "FC", "FE", "FG", "FI", "FM", "FR", "GE", "GO", "GR", "IM", "IS", "KR", "LC", "LE",
    "LI", "LO", "LT", "LU", "MB", "MC", "ME", "MI", "MN", "MO", "MS", "MT", "NA", "NO", "NU",
    "OR", "PA", "PC", "PD", "PE", "PG", "PI", "PN", "PO", "PR", "PT", "PU", "PV", "PZ", "RA",
    "RC", "RE", "RG", "RI", "RM", "RN", "RO", "SA", "SI", "SO", "SP", "SR", "SS", "SU", "SV",
    "TA", "TE", "TN", "TO", "TP", "TR", "TS", "TV", "UD", "VA", "VB", "VC", "VE", "VI", "VR",
    "VT", "VV",
    "CI", "OG", "OT", "VS",
})
# fmt: on

#: Codice fiscale: the month letters (January..December) and the letters that replace
#: digits 0..9 when two people would otherwise get the same code (omocodia).
CF_MONTHS = "ABCDEHLMPRST"
CF_OMOCODIA = "LMNPQRSTUV"
_CF_DIGIT = "0123456789" + CF_OMOCODIA
_CF_LETTER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
#: What each of the 16 characters may be, and how to say it.
_CF_SHAPE: tuple[tuple[str, str], ...] = (
    *[(_CF_LETTER, "a letter")] * 6,
    *[(_CF_DIGIT, "a digit")] * 2,
    (CF_MONTHS, f"a month letter ({CF_MONTHS})"),
    *[(_CF_DIGIT, "a digit")] * 2,
    (_CF_LETTER, "a letter"),
    *[(_CF_DIGIT, "a digit")] * 3,
    (_CF_LETTER, "the check letter"),
)
_CF_DIGIT_POSITIONS = (6, 7, 9, 10, 12, 13, 14)
#: The official values of the characters in odd positions (1st, 3rd, ...) for the check
#: character; a digit counts as the letter at the same index (0 as A, 1 as B, ...).
# fmt: off
_CF_ODD = (
    1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18,
    20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23,
)
# fmt: on

_FIX_CF = "copy it again from the tessera sanitaria"
_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")
# Common look-alikes of dd/mm/yyyy, only to suggest the exact rewrite.
_ISO_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")
_OTHER_DATE = re.compile(r"(\d{1,2})[.-](\d{1,2})[.-](\d{4})")
_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")
_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_MAILBOX = re.compile(rf"[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?@{_LABEL}(?:\.{_LABEL})+")
_PHONE = re.compile(r"\+?[0-9 ]+")
_TWO_LETTERS = re.compile(r"[A-Z]{2}")


@dataclass(frozen=True)
class FieldError:
    """One problem with one field: what is wrong and how to fix it."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class ApplicantError(ValueError):
    """The applicant cannot be used; ``errors`` lists every problem found."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


class _Invalid(Exception):
    """A field's value is wrong; the message says how to fix it."""


def load_applicant(path: Path) -> dict[str, Any]:
    """Read the applicant's fields from a ``.toml`` or ``.json`` file.

    Raises :class:`ApplicantError` naming the file when it cannot be read, and the line
    and column of a syntax error.
    """
    kind = path.suffix.lower()
    if kind not in (".toml", ".json"):
        raise _file_error(path, "is not a .toml or .json file; write the applicant in one of those")
    try:
        # utf-8-sig: editors on Windows put a byte-order mark that both parsers refuse.
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise _file_error(path, "does not exist; check the path") from None
    except UnicodeDecodeError:
        raise _file_error(path, "is not UTF-8 text; save it as UTF-8") from None
    except OSError as exc:
        raise _file_error(path, f"cannot be read ({exc.strerror}); check the path") from None
    if kind == ".toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            # Python 3.11's TOMLDecodeError has no lineno: the position ends the message.
            found = re.fullmatch(r"(.*) \(at (line \d+, column \d+|end of document)\)", str(exc))
            where, what = (f"{found[2]}: ", found[1]) if found else ("", str(exc))
            raise _file_error(path, f"{where}invalid TOML ({what}); fix the syntax there") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        message = (
            f"line {exc.lineno}, column {exc.colno}: invalid JSON ({exc.msg}); fix the syntax there"
        )
        raise _file_error(path, message) from None
    if not isinstance(data, dict):
        raise _file_error(path, "must hold one JSON object, {...}, with the applicant's fields")
    return data


def _file_error(path: Path, message: str) -> ApplicantError:
    return ApplicantError([FieldError(str(path), message)])


def validate_applicant(
    data: Mapping[str, Any],
    *,
    box_type: str = "PECMASSIVA",
    own_domains: Collection[str] = (),
    sandbox: bool = False,
    today: date | None = None,
) -> dict[str, Any]:
    """Check an applicant and return the normalised body of ``POST /pec``.

    ``box_type`` is the ``tipo_casella`` used when ``data`` gives none. ``own_domains``
    are certified domains of our own, on which the mailbox may be instead of the vendor's;
    ``sandbox`` means the vendor's sandbox, which wants its own test domains. ``today``
    is for tests. Optional fields left empty are dropped.

    Raises :class:`ApplicantError` listing every problem found, each with its fix.
    """
    if box_type.upper() not in BOX_TYPES:
        raise ValueError(f"box_type {box_type!r} is not one of {', '.join(BOX_TYPES)}")
    today = today or date.today()
    errors: list[FieldError] = []
    text: dict[str, str] = {}

    for key in data:
        if key not in FIELDS:
            errors.append(FieldError(key, _unknown(key, FIELDS)))
    for field, description in FIELDS.items():
        if field in ("callback", "autorinnovo"):
            continue  # not text: checked below
        value = data.get(field)
        if field == "tipo_casella" and value is None:
            value = box_type
        hint = description + _choices_hint(field)
        if value is None:
            if field in REQUIRED:
                errors.append(FieldError(field, f"missing; add it ({hint})"))
        elif not isinstance(value, str):
            errors.append(FieldError(field, _not_text(value)))
        elif value.strip():
            text[field] = value.strip()
        elif field in REQUIRED:
            errors.append(FieldError(field, f"empty; fill it in ({hint})"))

    body: dict[str, Any] = {}
    for field, value in text.items():
        try:
            body[field] = _normalise(field, value, today)
        except _Invalid as exc:
            errors.append(FieldError(field, str(exc)))
    errors += _cross_check(body, own_domains, sandbox)
    if "callback" in data:
        callback, callback_errors = _callback(data["callback"])
        body["callback"] = callback
        errors += callback_errors
    if "autorinnovo" in data:
        if isinstance(data["autorinnovo"], bool):
            body["autorinnovo"] = data["autorinnovo"]
        else:
            shown = _show(data["autorinnovo"])
            message = f"{shown} is not true or false; write true or false, without quotes"
            errors.append(FieldError("autorinnovo", message))

    if errors:
        # In the order of the spec, unknown fields first: a typo often explains a gap.
        order = {field: i for i, field in enumerate(FIELDS)}
        errors.sort(key=lambda e: order.get(e.field.split(".")[0], -1))
        raise ApplicantError(errors)
    return {field: body[field] for field in FIELDS if field in body}


def _unknown(key: str, known: Collection[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        return f"unknown field; did you mean {close[0]}?"
    return f"unknown field; remove it (the known ones: {', '.join(known)})"


def _choices_hint(field: str) -> str:
    choices = _CHOICES.get(field)
    return f": one of {', '.join(choices)}" if choices else ""


def _show(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _not_text(value: object) -> str:
    # An unquoted TOML date (1980-01-31) arrives as a date object.
    if isinstance(value, date):
        return f'{value} is a TOML date, not text; write it in quotes as "{value:%d/%m/%Y}"'
    if isinstance(value, bool):
        kind = "true/false"
    elif isinstance(value, int | float):
        kind = "a number"
    elif isinstance(value, Mapping):
        kind = "a table"
    else:
        kind = "a list" if isinstance(value, list) else type(value).__name__
    return f"{_show(value)} is {kind}, not text; write it in quotes"


def _normalise(field: str, value: str, today: date) -> str:
    """The normalised ``value`` of ``field`` alone, or :class:`_Invalid`."""
    if field in _CHOICES:
        return _choice(value, _CHOICES[field])
    if field == "sottotipo_cliente":
        # Which sub-types fit the client type is checked in _cross_check.
        return _choice(value, SUBTYPE_CODES)
    if field.startswith("data_"):
        day = _date(value)
        if field == "data_nascita_richiedente":
            _check_birth(value, day, today)
        elif field == "data_scadenza_documento" and day < today:
            raise _Invalid(
                f'"{value}" is in the past: the identity document has expired; '
                "use a document that is still valid"
            )
        elif field == "data_rilascio_documento" and day > today:
            raise _Invalid(f'"{value}" is in the future; write the date the document was issued')
        return f"{day:%d/%m/%Y}"
    if field == "codice_fiscale_richiedente":
        return _codice_fiscale(value)
    if field.startswith("provincia_"):
        return _two_letters(value, "province code", "RM for Roma")
    if field.startswith("nazione_"):
        return _two_letters(value, "ISO country code", "IT for Italy")
    if field == "cap_titolare":
        if not re.fullmatch(r"\d{5}", value):
            raise _Invalid(f'"{value}" is not 5 digits; write the CAP as 5 digits, e.g. 00042')
        return value
    if field == "email":
        if not _EMAIL.fullmatch(value):
            raise _Invalid(
                f'"{value}" is not an e-mail address; write it like mario.rossi@example.com'
            )
        return value
    if field in ("telefono", "cellulare"):
        return _phone(value)
    if field == "casella_pec":
        if not _MAILBOX.fullmatch(value.lower()):
            raise _Invalid(
                f'"{value}" is not a mailbox address; write the box to create, '
                "e.g. ufficio@pecmassiva.com (letters, digits, dots, - and _ before the @)"
            )
        return value.lower()
    return value


def _choice(value: str, choices: Collection[str]) -> str:
    if value.upper() in choices:
        return value.upper()
    message = f'"{value}" is not a valid value; write one of: {", ".join(choices)}'
    close = difflib.get_close_matches(value.upper(), choices, n=1)
    raise _Invalid(message + (f"; did you mean {close[0]}?" if close else ""))


def _date(value: str) -> date:
    found = _DATE.fullmatch(value)
    if found is None:
        rewrite = _as_date(value)
        how = f"as {rewrite:%d/%m/%Y}" if rewrite else "like 31/01/1980"
        raise _Invalid(f'"{value}" is not a date in dd/mm/yyyy form; write it {how}')
    day, month, year = map(int, found.groups())
    try:
        return date(year, month, day)
    except ValueError:
        raise _Invalid(
            f'"{value}" is not a real calendar date; check the day and the month'
        ) from None


def _as_date(value: str) -> date | None:
    """The date meant by a common look-alike of dd/mm/yyyy, to suggest the rewrite."""
    if found := _ISO_DATE.fullmatch(value):
        year, month, day = map(int, found.groups())
    elif found := _OTHER_DATE.fullmatch(value):
        day, month, year = map(int, found.groups())
    else:
        return None
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _check_birth(value: str, born: date, today: date) -> None:
    if born >= today:
        raise _Invalid(f'"{value}" is not in the past; write the applicant\'s date of birth')
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    if age < 18:
        raise _Invalid(
            f'"{value}" makes the applicant {age}; the applicant must be at least 18 '
            "(check the date, or have an adult apply)"
        )


def _codice_fiscale(value: str) -> str:
    code = value.replace(" ", "").upper()
    if len(code) != 16:
        raise _Invalid(f'"{value}" has {len(code)} characters, a codice fiscale has 16; {_FIX_CF}')
    for position, (char, (allowed, what)) in enumerate(zip(code, _CF_SHAPE, strict=True), 1):
        if char not in allowed:
            raise _Invalid(
                f'"{value}" is not a codice fiscale: character {position} ({char}) '
                f"should be {what}; {_FIX_CF}"
            )
    expected = cf_check_letter(code[:15])
    if code[15] != expected:
        raise _Invalid(
            f'"{value}" has check letter {code[15]}, but its first 15 characters give '
            f"{expected}: one of them is mistyped; {_FIX_CF}"
        )
    return code


def cf_check_letter(first15: str) -> str:
    """The check letter of a codice fiscale from its first 15 (upper-case) characters."""
    total = 0
    for position, char in enumerate(first15):
        index = int(char) if char.isdigit() else ord(char) - ord("A")
        # 0-based even index = the 1st, 3rd, ... character, which the rules call odd.
        total += _CF_ODD[index] if position % 2 == 0 else index
    return chr(ord("A") + total % 26)


def _two_letters(value: str, what: str, example: str) -> str:
    if not _TWO_LETTERS.fullmatch(value.upper()):
        raise _Invalid(f'"{value}" is not a 2-letter {what}; write e.g. {example}')
    return value.upper()


def _phone(value: str) -> str:
    if not _PHONE.fullmatch(value):
        raise _Invalid(
            f'"{value}" may hold only digits, spaces and a leading +; write it like +39 06 1234567'
        )
    number = value.replace(" ", "")
    digits = len(number.lstrip("+"))
    if not 6 <= digits <= 15:
        raise _Invalid(f'"{value}" has {digits} digits; a phone number has 6 to 15')
    return number


def _cross_check(
    body: Mapping[str, Any], own_domains: Collection[str], sandbox: bool
) -> list[FieldError]:
    """The checks that need two fields, run only on fields valid on their own."""
    errors: list[FieldError] = []
    client, subtype = body.get("tipo_cliente"), body.get("sottotipo_cliente")
    if client and subtype:
        subtypes = SUBTYPES.get(client)
        named = f"tipo_cliente {client} ({CLIENT_TYPES[client]})"
        if subtypes is None:
            message = f"{named} has no sub-types; remove sottotipo_cliente"
            errors.append(FieldError("sottotipo_cliente", message))
        elif subtype not in subtypes:
            listed = ", ".join(f"{code} ({label})" for code, label in subtypes.items())
            message = f'"{subtype}" is not a sub-type of {named}; write one of: {listed}'
            errors.append(FieldError("sottotipo_cliente", message))

    for province, country in (
        ("provincia_nascita_richiedente", "nazione_nascita_richiedente"),
        ("provincia_titolare", "nazione_titolare"),
    ):
        # Only Italian provinces are known; abroad any two letters (e.g. EE) will do.
        if body.get(country) == "IT" and province in body and body[province] not in PROVINCES:
            message = f'"{body[province]}" is not an Italian province code; write e.g. RM for Roma'
            errors.append(FieldError(province, message))

    code = body.get("codice_fiscale_richiedente")
    if code:
        errors += _cf_matches(
            code, body.get("sesso_richiedente"), body.get("data_nascita_richiedente")
        )

    mailbox, box_type = body.get("casella_pec"), body.get("tipo_casella")
    if mailbox and box_type:
        problem = _mailbox_domain(mailbox, box_type, own_domains, sandbox)
        if problem:
            errors.append(FieldError("casella_pec", problem))
    return errors


def _cf_matches(code: str, sex: str | None, born: str | None) -> list[FieldError]:
    """The codice fiscale disagrees with the declared sex or date of birth."""
    digits = list(code)
    for i in _CF_DIGIT_POSITIONS:
        if digits[i] in CF_OMOCODIA:
            digits[i] = str(CF_OMOCODIA.index(digits[i]))
    year, day = "".join(digits[6:8]), int("".join(digits[9:11]))
    month = CF_MONTHS.index(code[8]) + 1
    coded_sex = "F" if day > 40 else "M"
    errors: list[FieldError] = []
    fix = "correct whichever is wrong"
    if sex and sex != coded_sex:
        whose = "a woman's (day + 40)" if coded_sex == "F" else "a man's"
        message = f"the code is {whose} but sesso_richiedente is {sex}; {fix}"
        errors.append(FieldError("codice_fiscale_richiedente", message))
    coded = f"{day % 40:02d}/{month:02d}/{year}"
    if born and born[:6] + born[-2:] != coded:
        message = f"the code says born {coded} but data_nascita_richiedente is {born}; {fix}"
        errors.append(FieldError("codice_fiscale_richiedente", message))
    return errors


def _mailbox_domain(
    mailbox: str, box_type: str, own_domains: Collection[str], sandbox: bool
) -> str | None:
    """Why ``mailbox`` is on the wrong domain for ``box_type``, or None if it is fine."""
    local, domain = mailbox.split("@")
    if domain in {d.lower().lstrip("@") for d in own_domains}:
        return None
    allowed: tuple[str, ...]
    if sandbox:
        allowed = SANDBOX_DOMAINS
        example = SANDBOX_DOMAINS[box_type == "DOMICILIODIGITALE"]
        where = "in the sandbox"
    else:
        allowed = (BOX_DOMAINS[box_type],)
        example = allowed[0]
        where = f"for a {box_type} box"
    if domain in allowed:
        return None
    required = " or ".join(f"@{d}" for d in allowed)
    vendors = {*BOX_DOMAINS.values(), *SANDBOX_DOMAINS}
    own = "your own certified domain" + ("" if domain in vendors else f" {domain}")
    return (
        f'"{mailbox}" must end in {required} {where}; write e.g. {local}@{example}, '
        f"or to use {own}, register it first with `massiva domain add`"
    )


def _callback(value: object) -> tuple[Any, list[FieldError]]:
    """The normalised callback object and its problems."""
    example = '{"url": "https://example.com/pec-callback"}'
    if not isinstance(value, Mapping):
        message = f"{_show(value)} is not an object with a url; write e.g. {example}"
        return value, [FieldError("callback", message)]
    errors = [
        FieldError(f"callback.{key}", _unknown(key, CALLBACK_FIELDS))
        for key in value
        if key not in CALLBACK_FIELDS
    ]
    callback = dict(value)
    url = value.get("url")
    if not isinstance(url, str) or not url.strip():
        errors.append(
            FieldError("callback.url", f"missing; add the address to call, e.g. {example}")
        )
    else:
        callback["url"] = url = url.strip()
        parts = urlsplit(url)
        secure = parts.scheme == "https" and bool(parts.hostname)
        # Plain http only to a test receiver on this machine.
        local = parts.scheme == "http" and parts.hostname == "localhost"
        if not (secure or local):
            message = (
                f'"{url}" is not an https:// address; the vendor calls it over the '
                "internet, so use https:// (http:// only for localhost)"
            )
            errors.append(FieldError("callback.url", message))
    method = value.get("method")
    if method is not None:
        if isinstance(method, str) and method.strip().upper() in CALLBACK_METHODS:
            callback["method"] = method.strip().upper()
        else:
            message = f"{_show(method)} is not a valid value; write one of: POST, JSON"
            errors.append(FieldError("callback.method", message))
    if "field" in value and not isinstance(value["field"], str):
        errors.append(FieldError("callback.field", _not_text(value["field"])))
    if "data" in value and not isinstance(value["data"], Mapping):
        message = f'{_show(value["data"])} is not an object; write e.g. {{"ref": "123"}}'
        errors.append(FieldError("callback.data", message))
    return callback, errors
