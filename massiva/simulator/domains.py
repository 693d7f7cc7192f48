"""PEC API: domain checks (``/domini_pec``) and own certified domains (``/dominio``).

``/dominio`` is not in pec.openapi.json; its shapes follow the seed page 001. The
error codes 410-422 are ours (docs/simulator.md).
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from massiva.simulator.clock import add_years, ddmmyyyy, epoch, extend_expiry
from massiva.simulator.responses import pec_error, pec_ok, read_json, simulator_of
from massiva.simulator.settings import is_pec_domain
from massiva.simulator.validation import (
    is_domain,
    is_missing,
    is_object_id,
    parse_callback,
    parse_years,
)

if TYPE_CHECKING:
    from massiva.simulator.state import Simulator

SUPPLIERS = ("infocert", "namirial")


async def check_domain(request: Request) -> Response:
    """GET /domini_pec/{dominio}: 200 for a domain that handles PEC, else 204."""
    domain = request.path_params["dominio"].strip().lower()
    if not domain:
        return pec_error(428, "domain required", 400)
    if not is_domain(domain):
        return pec_error(406, "domain not valid", 401)
    if is_pec_domain(domain) or domain in simulator_of(request).certified_domains():
        return pec_ok([], f"{domain} found!")
    return Response(status_code=204)


def _certify(sim: Simulator, domain_id: str, at: datetime) -> None:
    record = sim.domini[domain_id]
    if record["stato"] != "registrato":  # revoked before certification
        return
    record.update(
        stato_fornitore="OK",
        dns="OK",
        config="OK",
        certif="OK",
        stato="evaso",
        data_certificazione=ddmmyyyy(at),
    )
    record["timestamp"].update(certificazione=epoch(at), ultima_modifica=epoch(at))


async def register_domain(request: Request) -> Response:
    """POST /dominio: register an own domain; it is ``evaso`` after the certification delay."""
    sim = simulator_of(request)
    payload = await read_json(request)
    body: dict[str, Any] = payload if isinstance(payload, dict) else {}
    if is_missing(body.get("dominio")):
        return pec_error(428, "dominio required", 410)
    if not isinstance(body["dominio"], str) or not is_domain(body["dominio"].strip()):
        return pec_error(406, "dominio not valid", 411)
    if is_missing(body.get("fornitore")):
        return pec_error(428, "fornitore required", 412)
    supplier = body["fornitore"]
    if not isinstance(supplier, str) or supplier.strip().lower() not in SUPPLIERS:
        return pec_error(406, "fornitore not valid", 413)
    years = parse_years(body.get("anni", 1))
    if years is None:
        return pec_error(406, "anni not valid", 414)
    boxes = body.get("numero_pec", 1)
    if isinstance(boxes, bool) or not isinstance(boxes, int) or boxes < 1:
        return pec_error(406, "numero_pec not valid", 415)
    callback = None
    if body.get("callback") is not None:
        callback = parse_callback(body["callback"])
        if callback is None:
            return pec_error(406, "callback not valid", 416)
    domain = body["dominio"].strip().lower()
    if any(d["dominio"] == domain and d["stato"] != "revocato" for d in sim.domini.values()):
        return pec_error(406, "dominio already registered", 417)
    now = sim.clock.now()
    expiry = add_years(now, years)
    record: dict[str, Any] = {
        "dominio": domain,
        "fornitore": supplier.strip().lower(),
        "stato_fornitore": "KO",
        "dns": "OK",
        "config": "KO",
        "certif": "KO",
        "tipo_dominio": "interno" if domain.endswith("legalmail.it") else "esterno",
        "stato": "registrato",
        "data_scadenza": ddmmyyyy(expiry),
        "timestamp": {
            "registrazione": epoch(now),
            "scadenza": epoch(expiry),
            "ultima_modifica": epoch(now),
        },
        "anni": years,
        "numero_pec": boxes,
        "id_ordine": f"{sim.new_serial() & 0xFFFFFF:06x}",
        "autorinnovo": False,
    }
    if callback is not None:
        record["callback"] = callback
    record["id"] = sim.new_object_id()
    sim.domini[record["id"]] = record
    due = now + timedelta(seconds=sim.settings.domain_certification_delay)
    sim.schedule(due, functools.partial(_certify, sim, record["id"]))
    return pec_ok(record)


async def list_domains(request: Request) -> Response:
    """GET /dominio: the account's domains."""
    domains = list(simulator_of(request).domini.values())
    if not domains:
        return pec_error(404, "no domain linked to this account", 422)
    return pec_ok(domains)


def _find(request: Request) -> dict[str, Any] | JSONResponse:
    raw = request.path_params["id"]
    if not is_object_id(raw):
        return pec_error(400, "Wrong id", 418)
    record = simulator_of(request).domini.get(raw)
    return pec_error(404, "no domain found", 419) if record is None else record


async def get_domain(request: Request) -> Response:
    """GET /dominio/{id}."""
    record = _find(request)
    return record if isinstance(record, JSONResponse) else pec_ok(record)


async def revoke_domain(request: Request) -> Response:
    """DELETE /dominio/{id}: revoke the domain and every box on it.

    Active boxes become ``revocata``; boxes not yet active ``registrazione_annullata``.
    """
    sim = simulator_of(request)
    record = _find(request)
    if isinstance(record, JSONResponse):
        return record
    if record["stato"] == "revocato":
        return pec_error(406, "domain already revoked", 421)
    now = epoch(sim.clock.now())
    record["stato"] = "revocato"
    record["timestamp"].update(revoca=now, ultima_modifica=now)
    for box in sim.caselle.values():
        if box["dominio"] != record["dominio"] or box["stato"] in (
            "revocata",
            "chiusa",
            "registrazione_annullata",
        ):
            continue
        if box["stato"] == "evasa":
            box["stato"] = "revocata"
            box["timestamp"]["revoca"] = now
        else:
            box["stato"] = "registrazione_annullata"
        box["timestamp"]["ultima_modifica"] = now
    return pec_ok(record, "Domain and associated boxes revoked")


async def renew_domain(request: Request) -> Response:
    """GET /dominio/{id}/rinnovo?anni=N: extend a certified domain by N years."""
    sim = simulator_of(request)
    record = _find(request)
    if isinstance(record, JSONResponse):
        return record
    years = parse_years(request.query_params.get("anni", 1))
    if years is None:
        return pec_error(400, "anni not valid", 414)
    if record["stato"] != "evaso":
        return pec_error(428, "you can renew only certified domains", 420)
    extend_expiry(record, sim.clock.now(), years)
    return pec_ok(record)
