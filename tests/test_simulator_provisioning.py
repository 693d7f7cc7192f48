"""PEC API: registering, activating, renewing and revoking boxes; options; comunica_pec."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from pypdf import PdfReader

from massiva.simulator import SimClock, SimulatorSettings, create_app
from tests.pdfs import pdf
from tests.sim import BEARER, sim_client

START = datetime(2024, 3, 8, 10, 0, tzinfo=UTC)


def pdf_base64(pages: int) -> str:
    """A blank PDF of ``pages`` pages, base64-encoded as the PEC API wants documents."""
    return base64.b64encode(pdf(pages)).decode()


def applicant(**overrides: Any) -> dict[str, Any]:
    """The spec's POST /pec example, as a PECMASSIVA box."""
    body: dict[str, Any] = {
        "casella_pec": "impresa@pecmassiva.com",
        "tipo_casella": "PECMASSIVA",
        "tipo_cliente": "PV",
        "sottotipo_cliente": "",
        "sottotipo_cliente_altro": "",
        "nome_richiedente": "mario",
        "cognome_richiedente": "rossi",
        "email": "mail@domain.com",
        "telefono": "0548798569",
        "codice_fiscale_richiedente": "RSSXXXXXXXX56E",
        "data_nascita_richiedente": "11/04/1982",
        "sesso_richiedente": "M",
        "nazione_nascita_richiedente": "it",
        "provincia_nascita_richiedente": "RM",
        "denominazione_titolare": "",
        "cf_piva_titolare": "",
        "indirizzo_titolare": "via verdi 20",
        "comune_titolare": "roma",
        "cap_titolare": "00042",
        "nazione_titolare": "it",
        "provincia_titolare": "rm",
        "callback": {"url": "https://your_domain.it/your_callback.php", "field": "data"},
    }
    body.update(overrides)
    return body


@pytest.fixture
def clock() -> SimClock:
    return SimClock(START, speed=0)


@pytest.fixture
async def client(clock: SimClock) -> AsyncIterator[httpx.AsyncClient]:
    async with sim_client(create_app(SimulatorSettings(send_rate=None), clock)) as client:
        yield client


async def register(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    response = await client.post("/pec", json=applicant(**overrides))
    assert response.status_code == 200, response.text
    record: dict[str, Any] = response.json()["data"]
    return record


async def active_box(
    client: httpx.AsyncClient, clock: SimClock, **overrides: Any
) -> dict[str, Any]:
    """A registered box, documents uploaded, activation delay passed: ``evasa``."""
    box = await register(client, **overrides)
    documents = (
        pdf_base64(2)
        if box["tipo_casella"] in ("PECMASSIVA", "DOMICILIODIGITALE")
        else [
            pdf_base64(1),
            pdf_base64(1),
        ]
    )
    response = await client.patch(f"/pec/{box['id']}/attivazione", json={"documenti": documents})
    assert response.status_code == 200, response.text
    clock.advance(600)
    record: dict[str, Any] = (await client.get(f"/pec/{box['id']}")).json()["data"]
    assert record["stato"] == "evasa"
    return record


def pec_error(response: httpx.Response) -> tuple[int, str, int]:
    body = response.json()
    assert body["success"] is False
    assert body["data"] is None
    return response.status_code, body["message"], body["error"]


async def test_pecmassiva_box_from_registration_to_first_send(
    client: httpx.AsyncClient, clock: SimClock
) -> None:
    address = "impresa@pecmassiva.com"
    available = (await client.get(f"/verifica_pec/{address}")).json()
    assert available == {"data": {"available": True}, "success": True, "message": "", "error": None}

    response = await client.post("/pec", json=applicant())
    assert response.status_code == 200
    body = response.json()
    assert (body["success"], body["message"], body["error"]) == (True, "", None)
    box = body["data"]
    assert box["stato"] == "registrata"
    assert (box["tipo_casella"], box["nazione_nascita_richiedente"], box["nazione_titolare"]) == (
        "PECMASSIVA",
        "IT",
        "IT",
    )
    assert box["dominio"] == "pecmassiva.com"
    assert box["data_scadenza"] == ""
    assert box["timestamp"] == {"registrazione": 1709892000, "ultima_modifica": 1709892000}
    assert box["callback"] == {
        "url": "https://your_domain.it/your_callback.php",
        "field": "data",
        "method": "POST",
        "data": {},
    }
    assert len(box["id"]) == 24
    assert int(box["id"], 16) >= 0
    assert box["cod_attivazione"].isdigit()
    assert box["uid"].startswith("MA")
    assert (await client.get(f"/verifica_pec/{address}")).json()["data"]["available"] is False

    form = await client.get(f"/pec/{box['id']}/modulo_attivazione")
    assert form.headers["content-type"] == "application/pdf"
    text = PdfReader(io.BytesIO(form.content)).pages[0].extract_text()
    for expected in ("mario rossi", address, box["cod_attivazione"]):
        assert expected in text

    uploaded = await client.patch(
        f"/pec/{box['id']}/attivazione", json={"documenti": pdf_base64(2)}
    )
    assert uploaded.status_code == 200
    assert uploaded.json()["data"]["stato"] == "in_evasione"
    assert uploaded.json()["data"]["documenti_attivazione"] == [f"{box['id']}_0_attivazione.pdf"]

    credentials = {"username": address, "password": "demo"}
    message = {"recipient": "x@legalmail.it", "subject": "s", "body": "b", **credentials}
    assert (await client.post("/send", json=message)).status_code == 401  # not active yet

    clock.advance(599)
    assert (await client.get(f"/pec/{box['id']}")).json()["data"]["stato"] == "in_evasione"
    clock.advance(1)
    active = (await client.get(f"/pec/{box['id']}")).json()["data"]
    assert active["stato"] == "evasa"
    assert (active["data_attivazione"], active["data_scadenza"]) == ("08/03/2024", "08/03/2025")
    assert active["timestamp"]["evasione"] == 1709892600
    assert active["timestamp"]["scadenza"] == 1741428600
    assert (await client.post("/send", json=message)).status_code == 201


async def test_one_page_pdf_ends_in_documenti_errati_and_can_be_redone(
    client: httpx.AsyncClient, clock: SimClock
) -> None:
    box = await register(client)
    response = await client.patch(
        f"/pec/{box['id']}/attivazione", json={"documenti": pdf_base64(1)}
    )
    assert response.json()["data"]["stato"] == "in_evasione"
    clock.advance(600)
    assert (await client.get(f"/pec/{box['id']}")).json()["data"]["stato"] == "documenti_errati"
    retry = await client.patch(f"/pec/{box['id']}/attivazione", json={"documenti": [pdf_base64(2)]})
    assert retry.status_code == 200
    clock.advance(600)
    assert (await client.get(f"/pec/{box['id']}")).json()["data"]["stato"] == "evasa"


@pytest.mark.parametrize(
    ("documents", "expected"),
    [
        (None, (428, "documenti required", 268)),
        ([], (428, "documenti required", 268)),
        (base64.b64encode(b"not a pdf").decode(), (406, "wrong file format, pdf required", 296)),
        ("%%% not base64", (406, "wrong file format, pdf required", 296)),
        (
            base64.b64encode(b"%PDF-1.4 broken").decode(),
            (406, "wrong file format, pdf required", 296),
        ),
        (42, (406, "wrong file format, pdf required", 296)),
    ],
)
async def test_activation_documents_must_be_pdfs(
    client: httpx.AsyncClient, documents: object, expected: tuple[int, str, int]
) -> None:
    box = await register(client)
    response = await client.patch(f"/pec/{box['id']}/attivazione", json={"documenti": documents})
    assert pec_error(response) == expected
    assert (await client.get(f"/pec/{box['id']}")).json()["data"]["stato"] == "registrata"


async def test_pecmassiva_activation_takes_one_document(client: httpx.AsyncClient) -> None:
    box = await register(client)
    two = [pdf_base64(1), pdf_base64(1)]
    response = await client.patch(f"/pec/{box['id']}/attivazione", json={"documenti": two})
    status, message, code = pec_error(response)
    assert (status, code) == (406, 295)
    assert "single pdf" in message


async def test_activation_only_from_registrata_or_documenti_errati(
    client: httpx.AsyncClient, clock: SimClock
) -> None:
    box = await active_box(client, clock)
    response = await client.patch(
        f"/pec/{box['id']}/attivazione", json={"documenti": pdf_base64(2)}
    )
    assert pec_error(response) == (
        428,
        "you can activate the pec only when it is in the 'registrata|documenti_errati' state",
        267,
    )


ROME = ZoneInfo("Europe/Rome")


@pytest.mark.parametrize(
    ("activated", "expires", "renewed"),
    [
        # Summer time starts the next night in 2026, the same night in 2027: in UTC the
        # year after is already 00:30 on the 29th.
        (datetime(2026, 3, 28, 23, 30, tzinfo=ROME), "28/03/2027", "28/03/2028"),
        # 00:30 Rome on 29 February is still the 28th in UTC.
        (datetime(2028, 2, 29, 0, 30, tzinfo=ROME), "28/02/2029", "28/02/2030"),
    ],
)
async def test_expiry_is_counted_on_the_rome_calendar(
    client: httpx.AsyncClient, clock: SimClock, activated: datetime, expires: str, renewed: str
) -> None:
    clock.set(activated - timedelta(seconds=600))  # the activation delay
    box = await active_box(client, clock)
    again = (await client.get(f"/pec/{box['id']}/rinnovo")).json()["data"]

    assert (box["data_attivazione"], box["data_scadenza"]) == (
        activated.strftime("%d/%m/%Y"),
        expires,
    )
    assert again["data_scadenza"] == renewed
    scadenza = datetime.fromtimestamp(again["timestamp"]["scadenza"], ROME)
    assert scadenza.strftime("%d/%m/%Y %H:%M") == f"{renewed} {activated:%H:%M}"


async def test_renew_and_revoke(client: httpx.AsyncClient, clock: SimClock) -> None:
    box = await active_box(client, clock)
    renewed = (await client.get(f"/pec/{box['id']}/rinnovo", params={"anni": 2})).json()["data"]
    assert renewed["data_scadenza"] == "08/03/2027"
    for anni in ("x", "0", "11", "+2", " 2"):
        bad = await client.get(f"/pec/{box['id']}/rinnovo", params={"anni": anni})
        assert pec_error(bad) == (400, "anni not valid", 204)

    revoked = await client.delete(f"/pec/{box['id']}")
    assert revoked.json()["data"]["stato"] == "revocata"
    assert "revoca" in revoked.json()["data"]["timestamp"]
    headers = {**BEARER, "x-username": box["casella_pec"], "x-password": "demo"}
    assert (await client.get("/inbox", headers=headers)).status_code == 401
    assert pec_error(await client.delete(f"/pec/{box['id']}")) == (
        406,
        "your pec has already been revoked",
        303,
    )
    back = (await client.get(f"/pec/{box['id']}/rinnovo")).json()["data"]
    assert back["stato"] == "evasa"
    assert (await client.get("/inbox", headers=headers)).status_code == 200


async def test_not_yet_active_box_can_be_neither_renewed_nor_revoked(
    client: httpx.AsyncClient,
) -> None:
    box = await register(client)
    assert pec_error(await client.get(f"/pec/{box['id']}/rinnovo")) == (
        428,
        "you can renew only evaded or revoked pec",
        203,
    )
    assert pec_error(await client.delete(f"/pec/{box['id']}")) == (
        428,
        "you can revoke the pec only if it is active",
        304,
    )


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("PATCH", "modifica", {"spazio_disco": 2048}),
        ("PATCH", "conservazione", {"documenti": "x"}),
        ("PATCH", "trasformazione", {"tipo_casella": "GOLD"}),
        ("POST", "multiutenza", {"nome": "a"}),
    ],
)
@pytest.mark.parametrize("box_type", ["PECMASSIVA", "DOMICILIODIGITALE"])
async def test_options_are_refused_for_pecmassiva_and_domiciliodigitale(
    client: httpx.AsyncClient,
    clock: SimClock,
    method: str,
    suffix: str,
    body: dict[str, Any],
    box_type: str,
) -> None:
    domain = "pecmassiva.com" if box_type == "PECMASSIVA" else "domiciliodigitale.com"
    box = await active_box(client, clock, tipo_casella=box_type, casella_pec=f"box@{domain}")
    response = await client.request(method, f"/pec/{box['id']}/{suffix}", json=body)
    assert pec_error(response) == (
        428,
        "this service cannot be activated on these boxes: DOMICILIODIGITALE|PECMASSIVA",
        390,
    )
    assert (await client.get(f"/pec/{box['id']}/modulo_conservazione")).status_code == 406


async def test_options_of_a_bronze_box(client: httpx.AsyncClient, clock: SimClock) -> None:
    box = await active_box(
        client, clock, tipo_casella="bronze", casella_pec="yourpec@testcert.legalmail.it"
    )
    assert (box["tipo_casella"], box["spazio_disco"]) == ("BRONZE", 1024)
    url = f"/pec/{box['id']}"

    odd = await client.patch(f"{url}/modifica", json={"spazio_disco": 1000})
    assert pec_error(odd) == (406, "the system only takes into account multiples of 1024", 325)
    storage_first = await client.patch(f"{url}/modifica", json={"spazio_conservazione": 512})
    assert pec_error(storage_first)[2] == 282
    grown = await client.patch(f"{url}/modifica", json={"spazio_disco": "+1024"})
    assert grown.json()["data"]["spazio_disco"] == 2048
    assert pec_error(await client.patch(f"{url}/modifica", json={"spazio_disco": 1024}))[0] == 406

    form = await client.get(f"{url}/modulo_conservazione")
    assert form.headers["content-type"] == "application/pdf"
    conserved = await client.patch(f"{url}/conservazione", json={"documenti": pdf_base64(1)})
    assert (
        conserved.json()["data"]["conservazione"],
        conserved.json()["data"]["spazio_conservazione"],
    ) == (
        True,
        512,
    )
    again = await client.patch(f"{url}/conservazione", json={"documenti": pdf_base64(1)})
    assert pec_error(again) == (406, "conservazione service is already active", 293)
    assert (await client.get(f"{url}/modulo_conservazione")).status_code == 406

    down = await client.patch(f"{url}/trasformazione", json={"tipo_casella": "STANDARD"})
    assert pec_error(down) == (
        406,
        "a downgrade of the 'tipo_casella' is not allowed; only SILVER or GOLD allowed",
        276,
    )
    up = await client.patch(f"{url}/trasformazione", json={"tipo_casella": "GOLD"})
    assert up.json()["data"]["tipo_casella"] == "GOLD"

    user = {
        "nome": "luca",
        "cognome": "bianchi",
        "descrizione": "prima",
        "email_gestione_password": "l@b.it",
    }
    added = (await client.post(f"{url}/multiutenza", json=user)).json()["data"]["multiutenza"]
    assert added[0]["id_utenza"] == f"{box['id']}_0"
    for _ in range(24):
        await client.post(f"{url}/multiutenza", json=user)
    full = await client.post(f"{url}/multiutenza", json=user)
    assert pec_error(full) == (406, "maximum number of users reached: 25", 217)
    missing = await client.post(f"{url}/multiutenza", json={"nome": "x"})
    assert pec_error(missing) == (428, "cognome required", 215)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"tipo_casella": None}, (428, "tipo_casella required", 224)),
        ({"casella_pec": ""}, (428, "casella_pec required", 223)),
        ({"provincia_titolare": "  "}, (428, "provincia_titolare required", 238)),
        (
            {"data_nascita_richiedente": "1982-04-11"},
            (406, "data_nascita_richiedente not valid, accepted format: dd/mm/yyyy", 242),
        ),
        (
            {"data_nascita_richiedente": "31/02/1982"},
            (406, "data_nascita_richiedente not valid, accepted format: dd/mm/yyyy", 242),
        ),
        ({"tipo_casella": "PLATINUM"}, (406, "tipo_casella not valid", 243)),
        ({"tipo_cliente": "ZZ"}, (406, "tipo_cliente not valid", 244)),
        ({"sesso_richiedente": "X"}, (406, "sesso_richiedente not valid", 246)),
        ({"tipo_documento": "TESSERA"}, (406, "tipo_documento not valid", 247)),
        ({"casella_pec": "not an address"}, (406, "invalid casella_pec", 239)),
        ({"nome_richiedente": 12}, (406, "nome_richiedente not valid", 253)),
        ({"callback": "https://x"}, (406, "callback not valid", 251)),
        ({"autorinnovo": "yes"}, (406, "autorinnovo not valid", 252)),
        (
            {"casella_pec": "impresa@legalmail.it"},
            (
                404,
                "the domain legalmail.it is non-existent in the system or belongs to someone else",
                326,
            ),
        ),
        ({"casella_pec": "demo@pecmassiva.com"}, (406, "casella_pec not available", 241)),
    ],
)
async def test_registration_errors(
    client: httpx.AsyncClient, overrides: dict[str, Any], expected: tuple[int, str, int]
) -> None:
    assert pec_error(await client.post("/pec", json=applicant(**overrides))) == expected


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b"null", b'"x"'])
async def test_registration_with_no_usable_body_is_428(
    client: httpx.AsyncClient, raw: bytes
) -> None:
    assert pec_error(await client.post("/pec", content=raw)) == (428, "casella_pec required", 223)


async def test_box_type_spelling_of_the_vendor_pages_is_accepted(clock: SimClock) -> None:
    app = create_app(SimulatorSettings(send_rate=None), clock)
    # Not in the spec's enum, on purpose: only the answer is validated.
    async with sim_client(app, check_requests=False) as client:
        box = await register(
            client, tipo_casella="Domicilio Digitale", casella_pec="mario@domiciliodigitale.com"
        )
    assert box["tipo_casella"] == "DOMICILIODIGITALE"


async def test_sandbox_domains_are_accepted_for_every_type(client: httpx.AsyncClient) -> None:
    box = await register(client, casella_pec="mario@testcert.legalmail.it")
    assert box["dominio"] == "testcert.legalmail.it"


async def test_list_contains_the_demo_box_and_pages(client: httpx.AsyncClient) -> None:
    await register(client)
    listed = (await client.get("/pec")).json()["data"]
    assert [item["casella_pec"] for item in listed] == [
        "demo@pecmassiva.com",
        "impresa@pecmassiva.com",
    ]
    assert set(listed[0]) == {
        "id",
        "casella_pec",
        "tipo_casella",
        "stato",
        "data_scadenza",
        "timestamp",
        "owner",
    }
    assert listed[0]["stato"] == "evasa"
    page = (await client.get("/pec", params={"skip": 1, "limit": 1})).json()["data"]
    assert [item["casella_pec"] for item in page] == ["impresa@pecmassiva.com"]
    empty = await client.get("/pec", params={"skip": 5})
    assert pec_error(empty) == (404, "no pec linked to this account", 200)


@pytest.mark.parametrize(
    ("box_id", "expected"),
    [
        ("nope", (400, "Wrong id", 201)),
        ("6040E4613A716838DC4EEE0E", (400, "Wrong id", 201)),
        ("6040e4613a716838dc4eee0e", (404, "no pec found", 202)),
    ],
)
async def test_unknown_and_malformed_ids(
    client: httpx.AsyncClient, box_id: str, expected: tuple[int, str, int]
) -> None:
    assert pec_error(await client.get(f"/pec/{box_id}")) == expected


async def test_forms_answer_errors_in_plain_text(client: httpx.AsyncClient) -> None:
    bad = await client.get("/pec/xyz/modulo_attivazione")
    assert (bad.status_code, bad.text, bad.headers["content-type"].split(";")[0]) == (
        400,
        "Invalid id",
        "text/plain",
    )
    unknown = await client.get("/pec/6040e4613a716838dc4eee0e/modulo_attivazione")
    assert (unknown.status_code, unknown.text) == (404, "no request matches this id:")


@pytest.mark.parametrize("address", ["nope", "a@b", "@pec.it"])
async def test_verifica_pec_refuses_invalid_addresses(
    client: httpx.AsyncClient, address: str
) -> None:
    assert pec_error(await client.get(f"/verifica_pec/{address}")) == (
        406,
        "invalid casella_pec",
        208,
    )


def communication(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "casella_pec": "mypec@pec.it",
        "cf": "RSSMRA80A01L117D",
        "nome": "mario",
        "cognome": "rossi",
        "qualifica": "LEGALE_RAPPRESENTANTE",
        "email": "mail@domain.com",
        "cellulare": "3400000018",
        "ragione_sociale": "azienda test",
        "cf_piva": "12345678910",
        "comune": "roma",
        "provincia": "RM",
        "pec_amministratore": False,
    }
    body.update(overrides)
    return body


async def test_business_register_communication_flow(
    client: httpx.AsyncClient, clock: SimClock
) -> None:
    assert pec_error(await client.get("/comunica_pec")) == (
        404,
        "no request linked to this account",
        332,
    )
    created = (await client.post("/comunica_pec", json=communication())).json()["data"]
    assert created["stato"] == "codice_in_richiesta"
    assert "callback" not in created
    url = f"/comunica_pec/{created['id']}"
    early = await client.get(f"{url}/procura_registro_imprese")
    assert (early.status_code, early.text) == (
        406,
        "you cannot download this module, it doesn't exist yet",
    )
    p7m = base64.b64encode(b"\x30\x82\x01\x00signed").decode()
    refused = await client.patch(url, json={"documenti": p7m})
    assert pec_error(refused)[0::2] == (406, 355)

    clock.advance(600)
    assert (await client.get(url)).json()["data"]["stato"] == "in_attesa_di_documenti"
    form = await client.get(f"{url}/procura_registro_imprese")
    assert form.headers["content-type"] == "application/pdf"
    assert pec_error(await client.patch(url, json={})) == (428, "documenti required", 356)
    not_p7m = await client.patch(url, json={"documenti": pdf_base64(1)})
    assert pec_error(not_p7m)[0::2] == (406, 357)
    uploaded = (await client.patch(url, json={"documenti": [p7m]})).json()["data"]
    assert uploaded["stato"] == "documenti_caricati"
    assert uploaded["documenti_registro_imprese"] == [f"{created['id']}_0_registro_imprese.p7m"]
    clock.advance(600)
    listed = (await client.get("/comunica_pec")).json()["data"]
    assert listed == [
        {
            "id": created["id"],
            "casella_pec": "mypec@pec.it",
            "stato": "comunicazione_evasa",
            "timestamp": listed[0]["timestamp"],
            "owner": created["owner"],
        }
    ]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"cf_piva": None}, (428, "cf_piva required", 344)),
        ({"casella_pec": "someone@gmail.com"}, (406, "invalid casella_pec", 336)),
        ({"qualifica": "CAPO"}, (406, "qualifica not valid", 347)),
    ],
)
async def test_communication_errors(
    client: httpx.AsyncClient, overrides: dict[str, Any], expected: tuple[int, str, int]
) -> None:
    assert (
        pec_error(await client.post("/comunica_pec", json=communication(**overrides))) == expected
    )


async def test_communication_ids(client: httpx.AsyncClient) -> None:
    assert pec_error(await client.get("/comunica_pec/zzz")) == (400, "Wrong id", 333)
    assert pec_error(await client.get("/comunica_pec/60ad149c3a7168084f1d2b68")) == (
        404,
        "no request found",
        334,
    )
    assert pec_error(await client.patch("/comunica_pec/zzz", json={})) == (400, "Wrong id", 353)
