"""PEC API: communicating a PEC address to the business register (``/comunica_pec``).

A request goes ``codice_in_richiesta`` -> (activation_delay) ``in_attesa_di_documenti``
-> upload of the signed power of attorney -> ``documenti_caricati`` -> (activation_delay)
``comunicazione_evasa``.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from massiva.simulator.clock import epoch
from massiva.simulator.pdf import make_pdf
from massiva.simulator.provisioning import OWNER
from massiva.simulator.responses import (
    pec_error,
    pec_ok,
    read_json,
    simulator_of,
    text_error,
)
from massiva.simulator.settings import is_pec_domain
from massiva.simulator.validation import (
    decode_documents,
    is_email,
    is_missing,
    is_object_id,
    parse_callback,
)

if TYPE_CHECKING:
    from massiva.simulator.state import Simulator

#: Required fields and the codes of their 428 (the spec gives 344 for cf_piva).
REQUIRED = {
    "casella_pec": 335,
    "cf": 337,
    "nome": 338,
    "cognome": 339,
    "qualifica": 340,
    "email": 341,
    "cellulare": 342,
    "ragione_sociale": 343,
    "cf_piva": 344,
    "comune": 345,
    "provincia": 346,
}
QUALIFICHE = (
    "AMMINISTRATORE",
    "COMMISSARIO_GIUDIZIARIO",
    "CURATORE_FALLIMENTARE",
    "LEGALE_RAPPRESENTANTE",
    "LIQUIDATORE",
    "SOCIO",
    "TITOLARE",
)


def _advance(sim: Simulator, request_id: str, before: str, after: str, at: datetime) -> None:
    record = sim.comunicazioni[request_id]
    if record["stato"] == before:
        record["stato"] = after
        record["timestamp"] = epoch(at)


def _later(sim: Simulator, request_id: str, before: str, after: str) -> None:
    due = sim.clock.now() + timedelta(seconds=sim.settings.activation_delay)
    sim.schedule(due, functools.partial(_advance, sim, request_id, before, after))


def _is_p7m(data: bytes) -> bool:
    # A CAdES envelope: DER (an ASN.1 SEQUENCE, 0x30) or its PEM armour.
    return data[:1] == b"\x30" or data.lstrip().startswith(b"-----BEGIN")


async def create_request(request: Request) -> Response:
    """POST /comunica_pec: start a communication (``codice_in_richiesta``)."""
    sim = simulator_of(request)
    payload = await read_json(request)
    body: dict[str, Any] = payload if isinstance(payload, dict) else {}
    for field, code in REQUIRED.items():
        if is_missing(body.get(field)):
            return pec_error(428, f"{field} required", code)
        if not isinstance(body[field], str):
            return pec_error(406, f"{field} not valid", 347)
    fields = {field: body[field].strip() for field in REQUIRED}
    address = fields["casella_pec"].lower()
    if not is_email(address) or not is_pec_domain(address.split("@", 1)[1]):
        return pec_error(406, "invalid casella_pec", 336)
    fields["casella_pec"] = address
    fields["qualifica"] = fields["qualifica"].upper()
    if fields["qualifica"] not in QUALIFICHE:
        return pec_error(406, "qualifica not valid", 347)
    if not is_email(fields["email"]):
        return pec_error(406, "email not valid", 348)
    admin = body.get("pec_amministratore", False)
    if not isinstance(admin, bool):
        return pec_error(406, "pec_amministratore not valid", 349)
    record: dict[str, Any] = {**fields, "pec_amministratore": admin}
    # The spec's examples show "callback": false without one; its schema wants an
    # object, so an absent callback is left out.
    if body.get("callback") is not None:
        callback = parse_callback(body["callback"])
        if callback is None:
            return pec_error(406, "callback not valid", 350)
        record["callback"] = callback
    record.update(
        stato="codice_in_richiesta",
        codice_registro_imprese="openapi",
        documenti_registro_imprese=[],
        owner=OWNER,
        timestamp=epoch(sim.clock.now()),
        id=sim.new_object_id(),
    )
    sim.comunicazioni[record["id"]] = record
    _later(sim, record["id"], "codice_in_richiesta", "in_attesa_di_documenti")
    return pec_ok(record)


async def list_requests(request: Request) -> Response:
    """GET /comunica_pec: the account's communications."""
    keys = ("id", "casella_pec", "stato", "timestamp", "owner")
    items = [
        {key: record[key] for key in keys}
        for record in simulator_of(request).comunicazioni.values()
    ]
    if not items:
        return pec_error(404, "no request linked to this account", 332)
    return pec_ok(items)


def _find(request: Request, wrong_id: int, not_found: int) -> dict[str, Any] | JSONResponse:
    raw = request.path_params["id"]
    if not is_object_id(raw):
        return pec_error(400, "Wrong id", wrong_id)
    record = simulator_of(request).comunicazioni.get(raw)
    return pec_error(404, "no request found", not_found) if record is None else record


async def get_request(request: Request) -> Response:
    """GET /comunica_pec/{id}."""
    record = _find(request, 333, 334)
    return record if isinstance(record, JSONResponse) else pec_ok(record)


async def upload_documents(request: Request) -> Response:
    """PATCH /comunica_pec/{id}: upload the signed (p7m) power of attorney."""
    sim = simulator_of(request)
    record = _find(request, 353, 354)
    if isinstance(record, JSONResponse):
        return record
    payload = await read_json(request)
    documents = payload.get("documenti") if isinstance(payload, dict) else None
    if is_missing(documents):
        return pec_error(428, "documenti required", 356)
    if record["stato"] != "in_attesa_di_documenti":
        message = "you can only upload documents when stato is 'in_attesa_di_documenti'"
        return pec_error(406, message, 355)
    files = decode_documents(documents)
    if files is None or not all(_is_p7m(data) for data in files):
        return pec_error(406, "wrong file format, p7m required", 357)
    record["documenti_registro_imprese"] = [
        f"{record['id']}_{index}_registro_imprese.p7m" for index in range(len(files))
    ]
    record["stato"] = "documenti_caricati"
    record["timestamp"] = epoch(sim.clock.now())
    _later(sim, record["id"], "documenti_caricati", "comunicazione_evasa")
    return pec_ok(record)


async def power_of_attorney(request: Request) -> Response:
    """GET /comunica_pec/{id}/procura_registro_imprese: the form to sign (PDF)."""
    raw = request.path_params["id"]
    if not is_object_id(raw):
        return text_error(400, "Invalid id")
    record = simulator_of(request).comunicazioni.get(raw)
    if record is None:
        return text_error(404, "no request matches this id:")
    if record["stato"] == "codice_in_richiesta":
        return text_error(406, "you cannot download this module, it doesn't exist yet")
    lines = [
        f"Impresa: {record['ragione_sociale']} ({record['cf_piva']})",
        f"Richiedente: {record['nome']} {record['cognome']}, {record['qualifica']}",
        f"Casella PEC da comunicare: {record['casella_pec']}",
        "Firma digitale (p7m) del richiedente",
    ]
    content = make_pdf("Procura per la comunicazione al Registro Imprese", lines)
    headers = {"Content-Disposition": f'attachment; filename="{record["id"]}_procura.pdf"'}
    return Response(content, media_type="application/pdf", headers=headers)
