"""PEC API: mailbox availability, registration, activation, renewal, revocation, options.

Statuses, messages and codes come from pec.openapi.json where it gives them; the others
are ours and listed in docs/simulator.md. Records are the vendor's JSON objects.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from massiva.simulator.clock import add_years, ddmmyyyy, epoch, extend_expiry
from massiva.simulator.pdf import make_pdf, pdf_pages
from massiva.simulator.responses import (
    pec_error,
    pec_ok,
    read_json,
    simulator_of,
    text_error,
)
from massiva.simulator.validation import (
    decode_documents,
    is_email,
    is_missing,
    is_object_id,
    parse_callback,
    parse_ddmmyyyy,
    parse_years,
)

if TYPE_CHECKING:
    from massiva.simulator.state import Simulator

#: The Openapi account every record belongs to (the spec's example value).
OWNER = "mail@domain.com"

BOX_TYPES = ("STANDARD", "BRONZE", "SILVER", "GOLD", "DOMICILIODIGITALE", "PECMASSIVA")
#: Boxes refused /modifica, /conservazione, /trasformazione, /multiutenza, and whose
#: activation takes ONE document (signed form + identity document).
SINGLE_DOCUMENT_TYPES = ("DOMICILIODIGITALE", "PECMASSIVA")
UPGRADE_ORDER = ("STANDARD", "BRONZE", "SILVER", "GOLD")
CLIENT_TYPES = ("IM", "PS", "PL", "PC", "A", "PV", "X")
CLIENT_SUBTYPES = (
    "SI",
    "IN",
    "CM",
    "TE",
    "ES",
    "ME",
    "AL",
    "CF",
    "ED",
    "TM",
    "MA",
    "AR",
    "TL",
    "FI",
    "X",
    "PC",
    "PR",
    "PN",
    "PT",
    "PA",
    "PL",
    "LR",
    "LP",
    "LC",
    "LM",
    "LA",
    "LI",
)
DOCUMENT_TYPES = ("CARTA_D_IDENTITA", "PATENTE", "PASSAPORTO")
SANDBOX_DOMAINS = ("testcert.legalmail.it", "test.domiciliodigitale.com")
#: (spazio_disco, spazio_storico) MB of a box once active.
SPACES = {
    "STANDARD": (1024, 0),
    "BRONZE": (1024, 1024),
    "SILVER": (2048, 2048),
    "GOLD": (3072, 3072),
    "DOMICILIODIGITALE": (1024, 0),
    "PECMASSIVA": (1024, 1024),
}

#: POST /pec required fields and the codes of their 428 "<field> required"
#: (the spec gives 224 for tipo_casella; the rest are ours, in the same run).
REQUIRED = {
    "casella_pec": 223,
    "tipo_casella": 224,
    "tipo_cliente": 225,
    "nome_richiedente": 226,
    "cognome_richiedente": 227,
    "email": 228,
    "telefono": 229,
    "codice_fiscale_richiedente": 230,
    "data_nascita_richiedente": 231,
    "sesso_richiedente": 232,
    "nazione_nascita_richiedente": 233,
    "indirizzo_titolare": 234,
    "comune_titolare": 235,
    "cap_titolare": 236,
    "nazione_titolare": 237,
    "provincia_titolare": 238,
}
OPTIONAL_TEXT = (
    "sottotipo_cliente",
    "sottotipo_cliente_altro",
    "cellulare",
    "comune_nascita_richiedente",
    "provincia_nascita_richiedente",
    "denominazione_titolare",
    "cf_piva_titolare",
)
DOCUMENT_FIELDS = (
    "tipo_documento",
    "numero_documento",
    "data_scadenza_documento",
    "documento_rilasciato_da",
    "data_rilascio_documento",
)
#: 406 "<field> not valid" codes (242 is the spec's); any other field: 253.
INVALID = {
    "casella_pec": 239,
    "data_nascita_richiedente": 242,
    "tipo_casella": 243,
    "tipo_cliente": 244,
    "sottotipo_cliente": 245,
    "sesso_richiedente": 246,
    "tipo_documento": 247,
    "data_scadenza_documento": 248,
    "data_rilascio_documento": 249,
    "email": 250,
    "callback": 251,
    "autorinnovo": 252,
}
DATE_FIELDS = ("data_nascita_richiedente", "data_scadenza_documento", "data_rilascio_documento")
REFUSED = "this service cannot be activated on these boxes: DOMICILIODIGITALE|PECMASSIVA"
NO_FORM = "you cannot activate conservation if you do not first activate a pec"


def _not_valid(field: str) -> JSONResponse:
    if field in DATE_FIELDS:
        return pec_error(406, f"{field} not valid, accepted format: dd/mm/yyyy", INVALID[field])
    return pec_error(406, f"{field} not valid", INVALID.get(field, 253))


def normalise_box_type(value: str) -> str:
    """``bronze`` -> BRONZE; ``Domicilio Digitale`` (seen in a vendor page) -> DOMICILIODIGITALE."""
    return value.upper().replace(" ", "").replace("_", "")


def _parse_registration(sim: Simulator, payload: object) -> dict[str, Any] | JSONResponse:
    """Validate a POST /pec body: the normalised fields, or the vendor's error."""
    body: dict[str, Any] = payload if isinstance(payload, dict) else {}
    for field, code in REQUIRED.items():
        if is_missing(body.get(field)):
            return pec_error(428, f"{field} required", code)
    for field in (*REQUIRED, *OPTIONAL_TEXT, *DOCUMENT_FIELDS):
        if field in body and not isinstance(body[field], str):
            return _not_valid(field)
    fields: dict[str, Any] = {f: body[f].strip() for f in REQUIRED}
    fields.update({f: body.get(f, "").strip() for f in OPTIONAL_TEXT})
    fields["casella_pec"] = fields["casella_pec"].lower()
    if not is_email(fields["casella_pec"]):
        return pec_error(406, "invalid casella_pec", INVALID["casella_pec"])
    fields["tipo_casella"] = normalise_box_type(fields["tipo_casella"])
    choices = {
        "tipo_casella": BOX_TYPES,
        "tipo_cliente": CLIENT_TYPES,
        "sottotipo_cliente": ("", *CLIENT_SUBTYPES),
        "sesso_richiedente": ("M", "F"),
    }
    for field, allowed in choices.items():
        fields[field] = fields[field].upper()
        if fields[field] not in allowed:
            return _not_valid(field)
    if parse_ddmmyyyy(fields["data_nascita_richiedente"]) is None:
        return _not_valid("data_nascita_richiedente")
    if not is_email(fields["email"]):
        return _not_valid("email")
    for field in ("nazione_nascita_richiedente", "nazione_titolare"):
        fields[field] = fields[field].upper()
    for field in DOCUMENT_FIELDS:
        if body.get(field, "").strip():  # optional: an empty one counts as absent
            fields[field] = body[field].strip()
    if "tipo_documento" in fields:
        fields["tipo_documento"] = fields["tipo_documento"].upper()
        if fields["tipo_documento"] not in DOCUMENT_TYPES:
            return _not_valid("tipo_documento")
    for field in DATE_FIELDS[1:]:
        if field in fields and parse_ddmmyyyy(fields[field]) is None:
            return _not_valid(field)
    autorinnovo = body.get("autorinnovo", False)
    if not isinstance(autorinnovo, bool):
        return _not_valid("autorinnovo")
    fields["autorinnovo"] = autorinnovo
    if body.get("callback") is not None:
        callback = parse_callback(body["callback"])
        if callback is None:
            return _not_valid("callback")
        fields["callback"] = callback
    domain = fields["casella_pec"].split("@", 1)[1]
    own_domain = {"PECMASSIVA": "pecmassiva.com", "DOMICILIODIGITALE": "domiciliodigitale.com"}
    allowed_domains = {
        own_domain.get(fields["tipo_casella"], "legalmail.it"),
        *SANDBOX_DOMAINS,
        *sim.certified_domains(),
    }
    if domain not in allowed_domains:
        message = f"the domain {domain} is non-existent in the system or belongs to someone else"
        return pec_error(404, message, 326)
    if sim.is_address_taken(fields["casella_pec"]):
        return pec_error(406, "casella_pec not available", 241)
    return fields


def new_casella(sim: Simulator, fields: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A ``registrata`` box record, keys in the order of the spec's example."""
    serial = sim.new_serial()
    record: dict[str, Any] = {
        key: fields[key]
        for key in (
            "casella_pec",
            "tipo_casella",
            "tipo_cliente",
            "sottotipo_cliente",
            "sottotipo_cliente_altro",
            "nome_richiedente",
            "cognome_richiedente",
            "email",
            "telefono",
            "codice_fiscale_richiedente",
            "data_nascita_richiedente",
            "sesso_richiedente",
            "nazione_nascita_richiedente",
            "provincia_nascita_richiedente",
            "denominazione_titolare",
            "cf_piva_titolare",
            "indirizzo_titolare",
            "comune_titolare",
            "cap_titolare",
            "nazione_titolare",
            "provincia_titolare",
        )
    }
    if "callback" in fields:
        record["callback"] = fields["callback"]
    record.update(
        {
            "dominio": fields["casella_pec"].split("@", 1)[1],
            "owner": OWNER,
            "timestamp": {"registrazione": epoch(now), "ultima_modifica": epoch(now)},
            "cellulare": fields["cellulare"],
            "comune_nascita_richiedente": fields["comune_nascita_richiedente"],
            "cod_attivazione": str(serial),
            "uid": f"MA{serial % 1_000_000:06d}",
            "conservazione": False,
            "data_scadenza": "",
            "descrizione": fields["casella_pec"],
            "sms": False,
            "spazio_conservazione": 0,
            "spazio_disco": 0,
            "spazio_storico": 0,
            "stato": "registrata",
            "storico": False,
        }
    )
    record.update({f: fields[f] for f in DOCUMENT_FIELDS if f in fields})
    record["id"] = sim.new_object_id()
    record["autorinnovo"] = fields["autorinnovo"]
    return record


def activate(sim: Simulator, record: dict[str, Any], at: datetime) -> None:
    """Make a box ``evasa`` for one year from ``at`` and open its mailbox."""
    expiry = add_years(at, 1)
    disk, archive = SPACES[record["tipo_casella"]]
    record.update(
        stato="evasa",
        data_attivazione=ddmmyyyy(at),
        data_scadenza=ddmmyyyy(expiry),
        spazio_disco=max(record["spazio_disco"], disk),
        spazio_storico=max(record["spazio_storico"], archive),
        storico=archive > 0,
    )
    record["timestamp"].update(
        evasione=epoch(at), scadenza=epoch(expiry), ultima_modifica=epoch(at)
    )
    sim.open_mailbox(record)


def configured_casella(sim: Simulator, address: str, now: datetime) -> dict[str, Any]:
    """The ``evasa`` PECMASSIVA record of a mailbox configured in the settings."""
    fields: dict[str, Any] = dict.fromkeys((*REQUIRED, *OPTIONAL_TEXT), "")
    fields.update(
        casella_pec=address,
        tipo_casella="PECMASSIVA",
        tipo_cliente="PV",
        nome_richiedente="demo",
        cognome_richiedente="simulatore",
        email=OWNER,
        data_nascita_richiedente="01/01/1980",
        sesso_richiedente="M",
        nazione_nascita_richiedente="IT",
        nazione_titolare="IT",
        autorinnovo=False,
    )
    record = new_casella(sim, fields, now)
    activate(sim, record, now)
    return record


def summary(record: dict[str, Any]) -> dict[str, Any]:
    """The ``Caselle`` item of GET /pec."""
    keys = ("id", "casella_pec", "tipo_casella", "stato", "data_scadenza", "timestamp", "owner")
    return {key: record[key] for key in keys}


def _touch(sim: Simulator, record: dict[str, Any]) -> None:
    record["timestamp"]["ultima_modifica"] = epoch(sim.clock.now())


def _find(request: Request, wrong_id: int, not_found: int) -> dict[str, Any] | JSONResponse:
    """The box named by the path's id, or the endpoint's 400/404 error."""
    raw = request.path_params["id"]
    if not is_object_id(raw):
        return pec_error(400, "Wrong id", wrong_id)
    record = simulator_of(request).caselle.get(raw)
    if record is None:
        return pec_error(404, "no pec found", not_found)
    return record


def _int_param(raw: str | None, default: int, low: int) -> int | None:
    """A query parameter as an int >= low; ``default`` if absent; None if invalid."""
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if value >= low else None


async def verifica_pec(request: Request) -> Response:
    """GET /verifica_pec/{pec}: is the address free?"""
    pec = request.path_params["pec"].strip()
    if not pec:
        return pec_error(428, "casella_pec required", 207)
    if not is_email(pec):
        return pec_error(406, "invalid casella_pec", 208)
    return pec_ok({"available": not simulator_of(request).is_address_taken(pec)})


async def list_pec(request: Request) -> Response:
    """GET /pec?skip&limit: the account's boxes (invalid skip/limit: their defaults)."""
    skip = _int_param(request.query_params.get("skip"), 0, 0)
    limit = _int_param(request.query_params.get("limit"), 100, 1)
    start = 0 if skip is None else skip
    items = list(simulator_of(request).caselle.values())[start : start + (limit or 100)]
    if not items:
        return pec_error(404, "no pec linked to this account", 200)
    return pec_ok([summary(record) for record in items])


async def register_pec(request: Request) -> Response:
    """POST /pec: register a box (``stato: registrata``)."""
    sim = simulator_of(request)
    fields = _parse_registration(sim, await read_json(request))
    if isinstance(fields, JSONResponse):
        return fields
    record = new_casella(sim, fields, sim.clock.now())
    sim.caselle[record["id"]] = record
    return pec_ok(record)


async def get_pec(request: Request) -> Response:
    """GET /pec/{id}."""
    record = _find(request, 201, 202)
    return record if isinstance(record, JSONResponse) else pec_ok(record)


async def revoke_pec(request: Request) -> Response:
    """DELETE /pec/{id}: revoke an active box; its mailbox stops working."""
    record = _find(request, 301, 302)
    if isinstance(record, JSONResponse):
        return record
    if record["stato"] == "revocata":
        return pec_error(406, "your pec has already been revoked", 303)
    if record["stato"] != "evasa":
        return pec_error(428, "you can revoke the pec only if it is active", 304)
    record["stato"] = "revocata"
    _touch(simulator_of(request), record)
    record["timestamp"]["revoca"] = record["timestamp"]["ultima_modifica"]
    return pec_ok(record)


def _finish_activation(sim: Simulator, box_id: str, complete: bool, at: datetime) -> None:
    record = sim.caselle[box_id]
    if record["stato"] != "in_evasione":  # revoked with its domain meanwhile
        return
    if complete:
        activate(sim, record, at)
    else:
        record["stato"] = "documenti_errati"
        record["timestamp"]["ultima_modifica"] = epoch(at)


async def activate_pec(request: Request) -> Response:
    """PATCH /pec/{id}/attivazione: upload the signed form and identity document.

    The box goes ``in_evasione`` and, ``activation_delay`` later, ``evasa`` -- or
    ``documenti_errati`` when the PDFs hold fewer than 2 pages (form + identity document).
    """
    sim = simulator_of(request)
    record = _find(request, 265, 266)
    if isinstance(record, JSONResponse):
        return record
    if record["stato"] not in ("registrata", "documenti_errati"):
        message = (
            "you can activate the pec only when it is in the 'registrata|documenti_errati' state"
        )
        return pec_error(428, message, 267)
    payload = await read_json(request)
    documents = payload.get("documenti") if isinstance(payload, dict) else None
    if is_missing(documents):
        return pec_error(428, "documenti required", 268)
    files = decode_documents(documents)
    if files is None:
        return pec_error(406, "wrong file format, pdf required", 296)
    if record["tipo_casella"] in SINGLE_DOCUMENT_TYPES and len(files) > 1:
        message = (
            "DOMICILIODIGITALE and PECMASSIVA boxes take one document: the signed activation"
            " form and the identity document in a single pdf"
        )
        return pec_error(406, message, 295)
    pages = [pdf_pages(data) for data in files]
    if None in pages:
        return pec_error(406, "wrong file format, pdf required", 296)
    complete = sum(count or 0 for count in pages) >= 2
    record["stato"] = "in_evasione"
    record["documenti_attivazione"] = [
        f"{record['id']}_{index}_attivazione.pdf" for index in range(len(files))
    ]
    _touch(sim, record)
    due = sim.clock.now() + timedelta(seconds=sim.settings.activation_delay)
    sim.schedule(due, functools.partial(_finish_activation, sim, record["id"], complete))
    return pec_ok(record)


async def renew_pec(request: Request) -> Response:
    """GET /pec/{id}/rinnovo?anni=N: extend by N years; a revoked box comes back."""
    sim = simulator_of(request)
    record = _find(request, 201, 202)
    if isinstance(record, JSONResponse):
        return record
    years = parse_years(request.query_params.get("anni", 1))
    if years is None:
        return pec_error(400, "anni not valid", 204)
    if record["stato"] not in ("evasa", "revocata"):
        return pec_error(428, "you can renew only evaded or revoked pec", 203)
    record["stato"] = "evasa"
    record["timestamp"].pop("revoca", None)
    extend_expiry(record, sim.clock.now(), years)
    return pec_ok(record)


def _space(value: object, multiple: int, allow_plus: bool) -> tuple[int, bool] | str:
    """``1024`` or ``"+1024"`` -> (amount, is an addition), or the error message."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str):
        return "not valid"
    plus = allow_plus and text.startswith("+")
    digits = text[1:] if plus else text
    if not digits.isascii() or not digits.isdigit():
        return "not valid"
    amount = int(digits)
    if amount % multiple:
        return f"the system only takes into account multiples of {multiple}"
    return amount, plus


def _refused(record: dict[str, Any], state_message: str, state_code: int) -> JSONResponse | None:
    """The 428 every option endpoint gives for PECMASSIVA boxes and inactive boxes."""
    if record["tipo_casella"] in SINGLE_DOCUMENT_TYPES:
        return pec_error(428, REFUSED, 390)
    if record["stato"] != "evasa":
        return pec_error(428, state_message, state_code)
    return None


async def modify_pec(request: Request) -> Response:
    """PATCH /pec/{id}/modifica: raise disk, archive or storage space (upgrade only)."""
    sim = simulator_of(request)
    record = _find(request, 265, 266)
    if isinstance(record, JSONResponse):
        return record
    refused = _refused(
        record, "you can modify your certified mail only if it has been processed", 280
    )
    if refused is not None:
        return refused
    payload = await read_json(request)
    body: dict[str, Any] = payload if isinstance(payload, dict) else {}
    multiples = {"spazio_disco": 1024, "spazio_storico": 1024, "spazio_conservazione": 512}
    asked = [field for field in multiples if field in body]
    if not asked:
        return pec_error(428, "spazio_disco, spazio_storico or spazio_conservazione required", 284)
    changes = {}
    for field in asked:
        parsed = _space(body[field], multiples[field], allow_plus=True)
        if parsed == "not valid":
            return pec_error(406, f"{field} not valid", 285)
        if isinstance(parsed, str):
            return pec_error(406, parsed, 325)
        if field == "spazio_conservazione" and not record["conservazione"]:
            return pec_error(428, "you must first activate the 'conservazione' service", 282)
        amount, plus = parsed
        changes[field] = record[field] + amount if plus else amount
        if changes[field] < record[field]:
            return pec_error(406, "only a space upgrade is allowed", 286)
    record.update(changes)
    record["storico"] = record["spazio_storico"] > 0
    _touch(sim, record)
    return pec_ok(record)


async def conserve_pec(request: Request) -> Response:
    """PATCH /pec/{id}/conservazione: activate legal storage (default 512 MB)."""
    sim = simulator_of(request)
    record = _find(request, 265, 266)
    if isinstance(record, JSONResponse):
        return record
    refused = _refused(record, "you can activate conservazione only on an active pec", 292)
    if refused is not None:
        return refused
    if record["conservazione"]:
        return pec_error(406, "conservazione service is already active", 293)
    payload = await read_json(request)
    body: dict[str, Any] = payload if isinstance(payload, dict) else {}
    if is_missing(body.get("documenti")):
        return pec_error(428, "documenti required", 294)
    files = decode_documents(body["documenti"])
    if files is None or any(pdf_pages(data) is None for data in files):
        return pec_error(406, "wrong file format, pdf required", 298)
    parsed = _space(body.get("spazio_conservazione", 512), 512, allow_plus=False)
    if parsed == "not valid":
        return pec_error(406, "spazio_conservazione not valid", 285)
    if isinstance(parsed, str):
        return pec_error(406, parsed, 325)
    record.update(
        conservazione=True,
        spazio_conservazione=parsed[0],
        documenti_conservazione=[
            f"{record['id']}_{index}_conservazione.pdf" for index in range(len(files))
        ],
    )
    _touch(sim, record)
    return pec_ok(record)


async def transform_pec(request: Request) -> Response:
    """PATCH /pec/{id}/trasformazione: upgrade the box type (STANDARD < ... < GOLD)."""
    sim = simulator_of(request)
    record = _find(request, 265, 266)
    if isinstance(record, JSONResponse):
        return record
    refused = _refused(
        record, "you can trasform your certified mail only if it has been processed", 272
    )
    if refused is not None:
        return refused
    payload = await read_json(request)
    wanted = payload.get("tipo_casella") if isinstance(payload, dict) else None
    if is_missing(wanted):
        return pec_error(428, "tipo_casella required", 274)
    if not isinstance(wanted, str) or normalise_box_type(wanted) not in UPGRADE_ORDER:
        return pec_error(406, "tipo_casella not valid", 275)
    wanted = normalise_box_type(wanted)
    higher = UPGRADE_ORDER[UPGRADE_ORDER.index(record["tipo_casella"]) + 1 :]
    if wanted not in higher:
        message = "a downgrade of the 'tipo_casella' is not allowed"
        if higher:
            message += f"; only {' or '.join(higher)} allowed"
        return pec_error(406, message, 276)
    disk, archive = SPACES[wanted]
    record.update(
        tipo_casella=wanted,
        spazio_disco=max(record["spazio_disco"], disk),
        spazio_storico=max(record["spazio_storico"], archive),
        storico=max(record["spazio_storico"], archive) > 0,
    )
    _touch(sim, record)
    return pec_ok(record)


async def add_user(request: Request) -> Response:
    """POST /pec/{id}/multiutenza: add one of at most 25 users."""
    sim = simulator_of(request)
    record = _find(request, 212, 213)
    if isinstance(record, JSONResponse):
        return record
    refused = _refused(record, "you can add users only to an active pec", 214)
    if refused is not None:
        return refused
    payload = await read_json(request)
    body: dict[str, Any] = payload if isinstance(payload, dict) else {}
    names = ("nome", "cognome", "descrizione", "email_gestione_password")
    for field in names:
        if is_missing(body.get(field)):
            return pec_error(428, f"{field} required", 215)
        if not isinstance(body[field], str):
            return pec_error(406, f"{field} not valid", 216)
    if not is_email(body["email_gestione_password"].strip()):
        return pec_error(406, "email_gestione_password not valid", 216)
    users = record.setdefault("multiutenza", [])
    if len(users) >= 25:
        return pec_error(406, "maximum number of users reached: 25", 217)
    now = epoch(sim.clock.now())
    user: dict[str, Any] = {field: body[field].strip() for field in names}
    user.update(
        id_utenza=f"{record['id']}_{len(users)}",
        timestamp={"attivazione": now},
        userid=f"MA{sim.new_serial() % 1_000_000:06d}",
    )
    users.append(user)
    _touch(sim, record)
    return pec_ok(record)


def _pdf(filename: str, content: bytes) -> Response:
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return Response(content, media_type="application/pdf", headers=headers)


def _find_for_form(request: Request) -> dict[str, Any] | Response:
    # The PDF endpoints answer errors in text/plain (spec); seed 001 shows JSON: the spec wins.
    raw = request.path_params["id"]
    if not is_object_id(raw):
        return text_error(400, "Invalid id")
    record = simulator_of(request).caselle.get(raw)
    return text_error(404, "no request matches this id:") if record is None else record


async def activation_form(request: Request) -> Response:
    """GET /pec/{id}/modulo_attivazione: the activation form to sign (PDF)."""
    record = _find_for_form(request)
    if isinstance(record, Response):
        return record
    lines = [
        f"Richiedente: {record['nome_richiedente']} {record['cognome_richiedente']}",
        f"Codice fiscale: {record['codice_fiscale_richiedente']}",
        f"Casella PEC: {record['casella_pec']} ({record['tipo_casella']})",
        f"Codice di attivazione: {record['cod_attivazione']}",
        "Firma del richiedente: ______________________",
    ]
    return _pdf(
        f"{record['id']}_modulo_attivazione.pdf", make_pdf("Modulo di attivazione PEC", lines)
    )


async def storage_form(request: Request) -> Response:
    """GET /pec/{id}/modulo_conservazione: the storage form, once storage can be asked."""
    record = _find_for_form(request)
    if isinstance(record, Response):
        return record
    can_ask = record["stato"] == "evasa" and record["tipo_casella"] not in SINGLE_DOCUMENT_TYPES
    if not can_ask or record["conservazione"]:
        return text_error(406, NO_FORM)
    lines = [
        f"Titolare: {record['nome_richiedente']} {record['cognome_richiedente']}",
        f"Casella PEC: {record['casella_pec']}",
        "Firma del titolare: ______________________",
    ]
    return _pdf(
        f"{record['id']}_modulo_conservazione.pdf", make_pdf("Modulo di conservazione", lines)
    )
