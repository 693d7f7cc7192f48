"""Every answer the simulator gives with a status the vendor's spec lists validates against
it, for every operation of both specs (``tests/contract.py`` holds the validator and the
patches of the specs' known defects)."""

from __future__ import annotations

import base64
import json

import httpx

from massiva.simulator import SimClock, SimulatorSettings, create_app
from tests.contract import SPECS, ContractTransport
from tests.pdfs import pdf
from tests.sim import BEARER, DEMO_MAILBOX


def pdf_base64(pages: int) -> str:
    """A blank PDF of ``pages`` pages, base64-encoded as the PEC API wants documents."""
    return base64.b64encode(pdf(pages)).decode()


def operations() -> dict[tuple[str, str], list[str]]:
    """(method, path template) of every operation of both specs -> the paths tested."""
    found: dict[tuple[str, str], list[str]] = {}
    for name in ("pec.openapi.json", "pecmassiva.openapi.json"):
        for template, methods in json.loads((SPECS / name).read_text())["paths"].items():
            for method in methods:
                found[(method.upper(), template)] = []
    return found


def template_of(path: str, templates: list[str]) -> str:
    parts = path.strip("/").split("/")
    for template in templates:
        pieces = template.strip("/").split("/")
        if len(pieces) == len(parts) and all(
            piece == part or piece.startswith("{")
            for piece, part in zip(pieces, parts, strict=True)
        ):
            return template
    raise AssertionError(f"no spec path for {path}")


async def test_every_listed_answer_validates_against_the_spec() -> None:
    clock = SimClock(speed=0)
    contract = ContractTransport(
        httpx.ASGITransport(create_app(SimulatorSettings(send_rate=None), clock))
    )
    async with httpx.AsyncClient(
        transport=contract, base_url="http://sim", headers=BEARER
    ) as client:
        mail = DEMO_MAILBOX
        send = {"recipient": "demo@pecmassiva.com", "subject": "s", "body": "b"}
        send |= {"username": "demo@pecmassiva.com", "password": "demo"}
        attachment = [{"name": "a.txt", "file": base64.b64encode(b"x").decode()}]
        code = (await client.post("/send", json={**send, "attachments": attachment})).json()[
            "message_id"
        ]
        await client.post("/send", json={**send, "subject": ""})
        clock.advance(3600)
        await client.get("/inbox", headers=mail)
        await client.get("/inbox", params={"page": 9, "q": "CONSEGNA"}, headers=mail)
        await client.get("/inbox/1", headers=mail)
        await client.get("/inbox/999", headers=mail)
        await client.get(f"/send/{code}", headers=mail)
        await client.get("/send/1", headers=mail)
        await client.get("/quota/INBOX", headers=mail)
        await client.get("/quota/Sent", headers=mail)
        await client.delete("/inbox/1", headers=mail)
        await client.delete(f"/send/{code}", headers=mail)
        await client.delete(f"/send/{code}", headers=mail)
        await client.get("/inbox", headers={**mail, "x-password": "no"})

        await client.get("/domini_pec/legalmail.it")
        await client.get("/domini_pec/gmail.com")
        await client.get("/domini_pec/not_valid")
        await client.get("/verifica_pec/x@legalmail.it")
        await client.get("/verifica_pec/nope")
        applicant = {
            "casella_pec": "y@testcert.legalmail.it",
            "tipo_casella": "BRONZE",
            "tipo_cliente": "PV",
            "nome_richiedente": "mario",
            "cognome_richiedente": "rossi",
            "email": "m@d.it",
            "telefono": "1",
            "codice_fiscale_richiedente": "X",
            "data_nascita_richiedente": "11/04/1982",
            "sesso_richiedente": "M",
            "nazione_nascita_richiedente": "it",
            "indirizzo_titolare": "v",
            "comune_titolare": "roma",
            "cap_titolare": "00042",
            "nazione_titolare": "it",
            "provincia_titolare": "rm",
            "callback": {"url": "https://x.it/cb", "field": "data"},
            "tipo_documento": "PATENTE",
        }
        box = (await client.post("/pec", json=applicant)).json()["data"]
        await client.post("/pec", json={**applicant, "tipo_casella": None})
        await client.post("/pec", json={**applicant, "data_nascita_richiedente": "x"})
        await client.post("/pec", json={**applicant, "casella_pec": "y@gmail.com"})
        url = f"/pec/{box['id']}"
        await client.get("/pec")
        await client.get(url)
        await client.get("/pec/nope")
        await client.get("/pec/6040e4613a716838dc4eee0e")
        await client.get(f"{url}/modulo_attivazione")
        await client.get("/pec/nope/modulo_attivazione")
        await client.get(f"{url}/modulo_conservazione")
        await client.get(f"{url}/rinnovo")
        await client.delete(url)
        await client.patch(f"{url}/attivazione", json={"documenti": "eA=="})
        await client.patch(f"{url}/attivazione", json={"documenti": [pdf_base64(1), pdf_base64(1)]})
        await client.patch(f"{url}/attivazione", json={"documenti": pdf_base64(2)})
        clock.advance(600)
        await client.get(url)
        await client.get(f"{url}/modulo_conservazione")
        await client.patch(f"{url}/modifica", json={"spazio_disco": "+1024"})
        await client.patch(f"{url}/modifica", json={"spazio_disco": 100})
        await client.patch(f"{url}/modifica", json={"spazio_conservazione": 512})
        await client.patch(
            f"{url}/conservazione", json={"spazio_conservazione": 1024, "documenti": pdf_base64(1)}
        )
        await client.patch(f"{url}/conservazione", json={"documenti": pdf_base64(1)})
        await client.patch(f"{url}/trasformazione", json={"tipo_casella": "STANDARD"})
        await client.patch(f"{url}/trasformazione", json={"tipo_casella": "GOLD"})
        user = {
            "nome": "l",
            "cognome": "b",
            "descrizione": "d",
            "email_gestione_password": "l@b.it",
        }
        await client.post(f"{url}/multiutenza", json=user)
        await client.post(f"{url}/multiutenza", json={})
        await client.get(f"{url}/rinnovo", params={"anni": 2})
        await client.delete(url)
        await client.delete(url)
        demo = (await client.get("/pec")).json()["data"][0]["id"]
        await client.patch(f"/pec/{demo}/modifica", json={"spazio_disco": 2048})
        await client.post(f"/pec/{demo}/multiutenza", json=user)

        await client.get("/comunica_pec")
        request = {
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
        }
        created = (await client.post("/comunica_pec", json=request)).json()["data"]
        await client.post("/comunica_pec", json={**request, "cf_piva": ""})
        await client.post("/comunica_pec", json={**request, "casella_pec": "x"})
        curl = f"/comunica_pec/{created['id']}"
        await client.get(f"{curl}/procura_registro_imprese")
        await client.patch(curl, json={"documenti": base64.b64encode(b"0").decode()})
        clock.advance(600)
        await client.get(f"{curl}/procura_registro_imprese")
        await client.patch(curl, json={})
        await client.patch(curl, json={"documenti": base64.b64encode(b"\x30\x03abc").decode()})
        await client.get(curl)
        await client.get("/comunica_pec")
        await client.get("/comunica_pec/nope")
        await client.get("/comunica_pec/60ad149c3a7168084f1d2b68")
        await client.get("/comunica_pec/nope/procura_registro_imprese")

    assert contract.unchecked == []
    tested = operations()
    templates = sorted({template for _, template in tested})
    for line in contract.checked:
        method, path, _, status = line.split(" ")
        tested[(method, template_of(path, templates))].append(status)
    assert all(tested.values()), [operation for operation, seen in tested.items() if not seen]
