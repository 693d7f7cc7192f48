"""PEC API: /domini_pec checks and own certified domains (/dominio, seed page 001)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from massiva.simulator import SimClock, SimulatorSettings, create_app
from tests.pdfs import pdf
from tests.sim import DEMO_MAILBOX, sim_client

START = datetime(2026, 2, 2, 9, 18, 2, tzinfo=UTC)
ROME = ZoneInfo("Europe/Rome")


def pdf_base64(pages: int) -> str:
    """A blank PDF of ``pages`` pages, base64-encoded as the PEC API wants documents."""
    return base64.b64encode(pdf(pages)).decode()


@pytest.fixture
def clock() -> SimClock:
    return SimClock(START, speed=0)


@pytest.fixture
async def client(clock: SimClock) -> AsyncIterator[httpx.AsyncClient]:
    async with sim_client(create_app(SimulatorSettings(send_rate=None), clock)) as client:
        yield client


def error(response: httpx.Response) -> tuple[int, str, int]:
    body = response.json()
    assert body["success"] is False
    assert body["data"] is None
    return response.status_code, body["message"], body["error"]


async def certified(client: httpx.AsyncClient, clock: SimClock, domain: str) -> dict[str, Any]:
    response = await client.post("/dominio", json={"dominio": domain, "fornitore": "infocert"})
    assert response.status_code == 200, response.text
    clock.advance(3600)
    record: dict[str, Any] = (await client.get(f"/dominio/{response.json()['data']['id']}")).json()[
        "data"
    ]
    assert record["stato"] == "evaso"
    return record


@pytest.mark.parametrize(
    "domain", ["legalmail.it", "pec.it", "pecmassiva.com", "cert.legalmail.it"]
)
async def test_known_pec_domain_is_found(client: httpx.AsyncClient, domain: str) -> None:
    response = await client.get(f"/domini_pec/{domain}")
    assert response.json() == {
        "data": [],
        "success": True,
        "message": f"{domain} found!",
        "error": None,
    }


async def test_other_domain_is_204(client: httpx.AsyncClient) -> None:
    response = await client.get("/domini_pec/gmail.com")
    assert (response.status_code, response.content) == (204, b"")


@pytest.mark.parametrize("domain", ["not_a_domain", "a..b", "-x.it", "x"])
async def test_invalid_domain_is_406(client: httpx.AsyncClient, domain: str) -> None:
    assert error(await client.get(f"/domini_pec/{domain}")) == (406, "domain not valid", 401)


async def test_domain_registration_and_certification(
    client: httpx.AsyncClient, clock: SimClock
) -> None:
    response = await client.post(
        "/dominio", json={"dominio": "Acme.it", "fornitore": "namirial", "anni": 2, "numero_pec": 3}
    )
    record = response.json()["data"]
    assert (record["dominio"], record["stato"], record["tipo_dominio"]) == (
        "acme.it",
        "registrato",
        "esterno",
    )
    assert (record["stato_fornitore"], record["certif"], record["anni"], record["numero_pec"]) == (
        "KO",
        "KO",
        2,
        3,
    )
    assert record["data_scadenza"] == "02/02/2028"
    assert len(record["id_ordine"]) == 6
    assert len(record["id"]) == 24
    assert (await client.get("/domini_pec/acme.it")).status_code == 204

    clock.advance(3599)
    assert (await client.get(f"/dominio/{record['id']}")).json()["data"]["stato"] == "registrato"
    clock.advance(1)
    done = (await client.get(f"/dominio/{record['id']}")).json()["data"]
    assert (
        done["stato"],
        done["stato_fornitore"],
        done["dns"],
        done["config"],
        done["certif"],
    ) == (
        "evaso",
        "OK",
        "OK",
        "OK",
        "OK",
    )
    assert done["data_certificazione"] == "02/02/2026"
    assert done["timestamp"]["certificazione"] == int(START.timestamp()) + 3600
    assert (await client.get("/domini_pec/acme.it")).json()["message"] == "acme.it found!"
    assert [d["id"] for d in (await client.get("/dominio")).json()["data"]] == [record["id"]]


async def test_certified_domain_hosts_boxes_and_receives_pec(
    client: httpx.AsyncClient, clock: SimClock
) -> None:
    await certified(client, clock, "acme.it")
    box = {
        "casella_pec": "info@acme.it",
        "tipo_casella": "STANDARD",
        "tipo_cliente": "IM",
        "nome_richiedente": "a",
        "cognome_richiedente": "b",
        "email": "a@b.it",
        "telefono": "1",
        "codice_fiscale_richiedente": "X",
        "data_nascita_richiedente": "01/01/1990",
        "sesso_richiedente": "F",
        "nazione_nascita_richiedente": "IT",
        "indirizzo_titolare": "via",
        "comune_titolare": "roma",
        "cap_titolare": "00100",
        "nazione_titolare": "IT",
        "provincia_titolare": "RM",
    }
    assert (await client.post("/pec", json=box)).json()["data"]["dominio"] == "acme.it"
    # A recipient on a domain certified here gets a delivery receipt.
    payload = {"recipient": "ufficio@acme.it", "subject": "s", "body": "b"}
    payload |= {"username": "demo@pecmassiva.com", "password": "demo"}
    code = (await client.post("/send", json=payload)).json()["message_id"]
    clock.advance(120)
    objects = [
        m["object"] for m in (await client.get("/inbox", headers=DEMO_MAILBOX)).json()["data"]
    ]
    assert f"CONSEGNA: s {code}" in objects


async def test_revoking_a_domain_revokes_its_boxes(
    client: httpx.AsyncClient, clock: SimClock
) -> None:
    domain = await certified(client, clock, "acme.legalmail.it")
    assert domain["tipo_dominio"] == "interno"
    base = {
        "tipo_casella": "GOLD",
        "tipo_cliente": "IM",
        "nome_richiedente": "a",
        "cognome_richiedente": "b",
        "email": "a@b.it",
        "telefono": "1",
        "codice_fiscale_richiedente": "X",
        "data_nascita_richiedente": "01/01/1990",
        "sesso_richiedente": "F",
        "nazione_nascita_richiedente": "IT",
        "indirizzo_titolare": "via",
        "comune_titolare": "roma",
        "cap_titolare": "00100",
        "nazione_titolare": "IT",
        "provincia_titolare": "RM",
    }
    active = (
        await client.post("/pec", json={**base, "casella_pec": "one@acme.legalmail.it"})
    ).json()["data"]
    pending = (
        await client.post("/pec", json={**base, "casella_pec": "two@acme.legalmail.it"})
    ).json()["data"]
    docs = {"documenti": [pdf_base64(1), pdf_base64(1)]}
    await client.patch(f"/pec/{active['id']}/attivazione", json=docs)
    clock.advance(600)

    response = await client.delete(f"/dominio/{domain['id']}")
    assert response.json()["message"] == "Domain and associated boxes revoked"
    assert response.json()["data"]["stato"] == "revocato"
    assert (await client.get(f"/pec/{active['id']}")).json()["data"]["stato"] == "revocata"
    assert (await client.get(f"/pec/{pending['id']}")).json()["data"][
        "stato"
    ] == "registrazione_annullata"
    assert error(await client.delete(f"/dominio/{domain['id']}")) == (
        406,
        "domain already revoked",
        421,
    )
    assert error(await client.get(f"/dominio/{domain['id']}/rinnovo")) == (
        428,
        "you can renew only certified domains",
        420,
    )


async def test_domain_renewal(client: httpx.AsyncClient, clock: SimClock) -> None:
    domain = await certified(client, clock, "acme.it")
    renewed = (await client.get(f"/dominio/{domain['id']}/rinnovo", params={"anni": 3})).json()[
        "data"
    ]
    assert renewed["data_scadenza"] == "02/02/2030"
    for anni in ("11", "0", "x", "+1"):
        bad = await client.get(f"/dominio/{domain['id']}/rinnovo", params={"anni": anni})
        assert error(bad) == (400, "anni not valid", 414)


@pytest.mark.parametrize(
    ("registered", "expires", "renewed"),
    [
        (datetime(2026, 3, 28, 23, 30, tzinfo=ROME), "28/03/2027", "28/03/2028"),
        (datetime(2028, 2, 29, 0, 30, tzinfo=ROME), "28/02/2029", "28/02/2030"),
    ],
)
async def test_domain_expiry_is_counted_on_the_rome_calendar(
    client: httpx.AsyncClient, clock: SimClock, registered: datetime, expires: str, renewed: str
) -> None:
    clock.set(registered)
    added = await client.post("/dominio", json={"dominio": "acme.it", "fornitore": "infocert"})
    clock.advance(3600)
    again = await client.get(f"/dominio/{added.json()['data']['id']}/rinnovo")

    assert added.json()["data"]["data_scadenza"] == expires
    assert again.json()["data"]["data_scadenza"] == renewed


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, (428, "dominio required", 410)),
        ({"dominio": "no domain", "fornitore": "infocert"}, (406, "dominio not valid", 411)),
        ({"dominio": "acme.it"}, (428, "fornitore required", 412)),
        ({"dominio": "acme.it", "fornitore": "aruba"}, (406, "fornitore not valid", 413)),
        ({"dominio": "acme.it", "fornitore": "infocert", "anni": 0}, (406, "anni not valid", 414)),
        (
            {"dominio": "acme.it", "fornitore": "infocert", "anni": True},
            (406, "anni not valid", 414),
        ),
        (
            {"dominio": "acme.it", "fornitore": "infocert", "numero_pec": "2"},
            (406, "numero_pec not valid", 415),
        ),
        (
            {"dominio": "acme.it", "fornitore": "infocert", "callback": []},
            (406, "callback not valid", 416),
        ),
    ],
)
async def test_domain_registration_errors(
    client: httpx.AsyncClient, body: dict[str, Any], expected: tuple[int, str, int]
) -> None:
    assert error(await client.post("/dominio", json=body)) == expected


async def test_domain_registered_twice_is_406(client: httpx.AsyncClient) -> None:
    body = {"dominio": "acme.it", "fornitore": "infocert"}
    await client.post("/dominio", json=body)
    assert error(await client.post("/dominio", json=body)) == (
        406,
        "dominio already registered",
        417,
    )


async def test_domain_ids(client: httpx.AsyncClient) -> None:
    assert error(await client.get("/dominio")) == (404, "no domain linked to this account", 422)
    assert error(await client.get("/dominio/zzz")) == (400, "Wrong id", 418)
    assert error(await client.get("/dominio/69806bcce09fb76c6b0fef0b")) == (
        404,
        "no domain found",
        419,
    )
