"""Garbage in never gives a 500: every endpoint, malformed bodies, ids, pages, headers.

Every answer must also be one the vendor's spec lists for the operation, in the spec's
shape (tests/contract.py), or one docs/simulator.md documents.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from starlette.applications import Starlette

from massiva.simulator import SimClock, Simulator, SimulatorSettings, create_app
from tests.contract import SPECS
from tests.pdfs import pdf
from tests.sim import DEMO_MAILBOX, sim_client

ENDPOINTS = [
    ("POST", "/send"),
    ("GET", "/send/{code}"),
    ("DELETE", "/send/{code}"),
    ("GET", "/inbox"),
    ("GET", "/inbox/{id}"),
    ("DELETE", "/inbox/{id}"),
    ("GET", "/quota/{mailbox}"),
    ("GET", "/domini_pec/{dominio}"),
    ("GET", "/verifica_pec/{pec}"),
    ("GET", "/pec"),
    ("POST", "/pec"),
    ("GET", "/pec/{id}"),
    ("DELETE", "/pec/{id}"),
    ("PATCH", "/pec/{id}/attivazione"),
    ("PATCH", "/pec/{id}/modifica"),
    ("PATCH", "/pec/{id}/conservazione"),
    ("PATCH", "/pec/{id}/trasformazione"),
    ("GET", "/pec/{id}/rinnovo"),
    ("POST", "/pec/{id}/multiutenza"),
    ("GET", "/pec/{id}/modulo_attivazione"),
    ("GET", "/pec/{id}/modulo_conservazione"),
    ("GET", "/comunica_pec"),
    ("POST", "/comunica_pec"),
    ("GET", "/comunica_pec/{id}"),
    ("PATCH", "/comunica_pec/{id}"),
    ("GET", "/comunica_pec/{id}/procura_registro_imprese"),
    ("GET", "/dominio"),
    ("POST", "/dominio"),
    ("GET", "/dominio/{id}"),
    ("DELETE", "/dominio/{id}"),
    ("GET", "/dominio/{id}/rinnovo"),
]


def pdf_base64(pages: int) -> str:
    """A blank PDF of ``pages`` pages, base64-encoded as the PEC API wants documents."""
    return base64.b64encode(pdf(pages)).decode()


def request_fields() -> list[str]:
    """Every request body field of both specs, plus those of /dominio (seed page 001)."""
    names = {"dominio", "fornitore", "anni", "numero_pec"}
    for spec_name in ("pec.openapi.json", "pecmassiva.openapi.json"):
        spec = json.loads((SPECS / spec_name).read_text())
        schemas = list(spec["components"]["schemas"].values())
        for operations in spec["paths"].values():
            for operation in operations.values():
                content = operation.get("requestBody", {}).get("content", {})
                schemas.append(content.get("application/json", {}).get("schema", {}))
        for schema in schemas:
            names |= set(schema.get("properties", {}))
    return sorted(names)


WRONG_TYPES = {key: {"nested": [1, None]} for key in request_fields()}
BODIES: list[bytes] = [
    b"",
    b"{",
    b"null",
    b"[]",
    b"123456789012345678901234567890",
    b'"\\ud800"',
    b'{"subject": "\\udfff", "body": "x", "recipient": "a@b.it"}',
    b"[" * 50_000,
    b"NaN",
    b"\x00\xff\xfe",
    json.dumps(WRONG_TYPES).encode(),
    json.dumps(dict.fromkeys(WRONG_TYPES, 1e308)).encode(),
    json.dumps(dict.fromkeys(WRONG_TYPES, "")).encode(),
    json.dumps(dict.fromkeys(WRONG_TYPES, "x" * 5000)).encode(),
    json.dumps(dict.fromkeys(WRONG_TYPES, True)).encode(),
    json.dumps(
        {
            "username": "demo@pecmassiva.com",
            "password": "demo",
            "recipient": ["a@legalmail.it"],
            "subject": "s",
            "body": "b",
            "attachments": [{"name": "a", "file": "data:;base64,!!"}, None, 5],
            "documenti": ["JVBERi0=", "", 1],
            "spazio_disco": "+-1024",
            "callback": {"method": 5, "data": []},
        }
    ).encode(),
]
# A valid registration but for one value JSON can parse and our answer could not carry.
REGISTRATION = {
    "casella_pec": "z@testcert.legalmail.it",
    "tipo_casella": "GOLD",
    "tipo_cliente": "PV",
    "nome_richiedente": "@NAME@",
    "cognome_richiedente": "b",
    "email": "a@b.it",
    "telefono": "1",
    "codice_fiscale_richiedente": "X",
    "data_nascita_richiedente": "01/01/1990",
    "sesso_richiedente": "F",
    "nazione_nascita_richiedente": "IT",
    "indirizzo_titolare": "v",
    "comune_titolare": "c",
    "cap_titolare": "1",
    "nazione_titolare": "IT",
    "provincia_titolare": "RM",
    "callback": {"data": {"x": "@DATA@"}},
}
BODIES += [
    json.dumps(REGISTRATION).replace('"@DATA@"', "NaN").encode(),
    json.dumps(REGISTRATION).replace("@NAME@", "\\ud800").encode(),
]
#: Statuses docs/simulator.md documents where the specs list none: 401 on every PEC path
#: and 429 on POST /send (ContractTransport always allows both), and for /dominio (not in
#: the specs) its whole table.
DOMINIO_STATUSES = {200, 400, 401, 404, 406, 428}
IDS = [
    "x",
    "0",
    "-1",
    "1e999",
    "6040e4613a716838dc4eee0e",
    "%00",
    "%F0%9F%98%80",
    "a" * 2000,
    "INBOX",
]
QUERIES = [
    {},
    {"page": "-1", "q": "\x00"},
    {"page": "1e999"},
    {"anni": "99999999999999999999"},
    {"skip": "-5", "limit": "x"},
    {"since": "x"},
]


@pytest.fixture
async def app() -> Starlette:
    """A simulator holding one box in each interesting state, so bodies get parsed."""
    clock = SimClock(datetime(2024, 1, 15, 9, 0, tzinfo=UTC), speed=0)
    app = create_app(SimulatorSettings(send_rate=None), clock)
    async with sim_client(app) as client:
        base = {
            "tipo_cliente": "PV",
            "nome_richiedente": "a",
            "cognome_richiedente": "b",
            "email": "a@b.it",
            "telefono": "1",
            "codice_fiscale_richiedente": "X",
            "data_nascita_richiedente": "01/01/1990",
            "sesso_richiedente": "F",
            "nazione_nascita_richiedente": "IT",
            "indirizzo_titolare": "v",
            "comune_titolare": "c",
            "cap_titolare": "1",
            "nazione_titolare": "IT",
            "provincia_titolare": "RM",
        }
        bronze = {**base, "casella_pec": "b@testcert.legalmail.it", "tipo_casella": "BRONZE"}
        box = (await client.post("/pec", json=bronze)).json()["data"]
        docs = {"documenti": [pdf_base64(1), pdf_base64(1)]}
        await client.patch(f"/pec/{box['id']}/attivazione", json=docs)
        await client.post(
            "/pec", json={**base, "casella_pec": "r@pecmassiva.com", "tipo_casella": "PECMASSIVA"}
        )
        await client.post(
            "/comunica_pec",
            json={
                "casella_pec": "c@pec.it",
                "cf": "x",
                "nome": "n",
                "cognome": "c",
                "qualifica": "SOCIO",
                "email": "e@e.it",
                "cellulare": "1",
                "ragione_sociale": "r",
                "cf_piva": "1",
                "comune": "c",
                "provincia": "p",
            },
        )
        await client.post("/dominio", json={"dominio": "acme.it", "fornitore": "infocert"})
        await client.post(
            "/send",
            json={
                "username": "demo@pecmassiva.com",
                "password": "demo",
                "recipient": "a@pec.it",
                "subject": "s",
                "body": "b",
            },
        )
    clock.advance(600)
    return app


def real_ids(sim: Simulator, template: str) -> list[str]:
    """Ids of existing records for ``template``: garbage bodies then reach the parsers."""
    if template.startswith("/pec/"):
        return list(sim.caselle)
    if template.startswith("/comunica_pec/"):
        return list(sim.comunicazioni)
    if template.startswith("/dominio/"):
        return list(sim.domini)
    if template.startswith("/send/"):
        return [sim.sends[0].message_id]
    return ["1"]


@pytest.mark.parametrize(("method", "template"), ENDPOINTS)
async def test_garbage_never_gives_a_500(app: Starlette, method: str, template: str) -> None:
    def path(raw_id: str) -> str:
        return template.format(code=raw_id, id=raw_id, mailbox=raw_id, dominio=raw_id, pec=raw_id)

    real = sorted({path(raw_id) for raw_id in real_ids(app.state.simulator, template)})
    requests = [(path(raw_id), BODIES[1], QUERIES[1]) for raw_id in IDS]
    requests += [(url, body, {}) for url in real for body in BODIES]
    requests += [(url, b"", query) for url in real for query in QUERIES]
    # The requests are garbage on purpose: only the answers are validated.
    async with sim_client(app, auth=False, check_requests=False) as client:
        for url, body, query in requests:
            response = await client.request(
                method, url, content=body, params=query, headers=DEMO_MAILBOX
            )
            assert response.status_code < 500, (method, url, body[:80], response.text)
            if template.startswith("/dominio"):
                assert response.status_code in DOMINIO_STATUSES, (url, response.text)
        # No bearer token, or a garbage one: 401, never a crash.
        for headers in ({}, {b"Authorization": b"Bearer \t"}, {b"Authorization": b"Basic \xff"}):
            response = await client.request(method, template, headers=headers)
            assert response.status_code == 401


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nothing"),
        ("GET", "/pec/"),
        ("POST", "/inbox"),
        ("PUT", "/send"),
        ("GET", "/pec/x/y/z"),
    ],
)
async def test_unknown_paths_and_methods_are_json_4xx(
    app: Starlette, method: str, path: str
) -> None:
    async with sim_client(app) as client:
        response = await client.request(method, path)
    assert response.status_code in (404, 405)
    assert response.json()["success"] is False


def test_the_endpoint_list_covers_both_specs() -> None:
    listed = set(ENDPOINTS)
    for name in ("pec.openapi.json", "pecmassiva.openapi.json"):
        spec = json.loads((SPECS / name).read_text())
        for path, operations in spec["paths"].items():
            for method in operations:
                assert (method.upper(), path) in listed
