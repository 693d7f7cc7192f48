"""The PEC (provisioning) client against the simulator: every path, a success and an error."""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

import pytest
from pypdf import PdfReader

from massiva.api import (
    ApiSession,
    AuthenticationError,
    InvalidRequest,
    Mailbox,
    NotFound,
    OutcomeUnknown,
    PecClient,
)
from massiva.simulator import Fault, SimClock, Simulator
from tests.conftest import BASE_URL, Sleeps
from tests.contract import ContractTransport
from tests.pdfs import pdf

UNKNOWN_ID = "6040e4613a716838dc4eee0e"
P7M = b"\x30\x82\x01\x00 a CAdES envelope"  # DER: an ASN.1 SEQUENCE
DAY = 86_400


def applicant(address: str = "studio.bianchi@pecmassiva.com", **overrides: Any) -> dict[str, Any]:
    """A complete, valid ``BodyPostPec`` for a PECMASSIVA box."""
    body: dict[str, Any] = {
        "casella_pec": address,
        "tipo_casella": "PECMASSIVA",
        "tipo_cliente": "PS",
        "sottotipo_cliente": "PA",
        "nome_richiedente": "Giulia",
        "cognome_richiedente": "Bianchi",
        "email": "giulia@studiobianchi.it",
        "telefono": "0548798569",
        "codice_fiscale_richiedente": "BNCGLI80A41H501C",
        "data_nascita_richiedente": "01/01/1980",
        "sesso_richiedente": "F",
        "nazione_nascita_richiedente": "IT",
        "provincia_nascita_richiedente": "RM",
        "indirizzo_titolare": "via Verdi 20",
        "comune_titolare": "Roma",
        "cap_titolare": "00042",
        "nazione_titolare": "IT",
        "provincia_titolare": "RM",
    }
    body.update(overrides)
    return body


async def active_box(pec: PecClient, clock: SimClock, **overrides: Any) -> Mailbox:
    """Register a box and take it through activation to ``evasa``."""
    box = await pec.register_mailbox(applicant(**overrides))
    await pec.activate_mailbox(box.id, [pdf(pages=2)])
    clock.advance(DAY)
    return await pec.get_mailbox(box.id)


USER = {
    "nome": "Luca",
    "cognome": "Bianchi",
    "descrizione": "segreteria",
    "email_gestione_password": "luca@studiobianchi.it",
}
COMMUNICATION = {
    "casella_pec": "studio.bianchi@legalmail.it",
    "cf": "BNCGLI80A41H501C",
    "nome": "Giulia",
    "cognome": "Bianchi",
    "qualifica": "TITOLARE",
    "email": "giulia@studiobianchi.it",
    "cellulare": "3470000000",
    "ragione_sociale": "Studio Bianchi",
    "cf_piva": "12345678910",
    "comune": "Roma",
    "provincia": "RM",
}
#: One call of every PecClient method, with arguments that would otherwise succeed or at
#: least be looked at (an id of the right shape).
EVERY_METHOD: dict[str, Callable[[PecClient], Awaitable[object]]] = {
    "domain_accepts_pec": lambda pec: pec.domain_accepts_pec("legalmail.it"),
    "is_available": lambda pec: pec.is_available("nuova.casella@pecmassiva.com"),
    "list_mailboxes": lambda pec: pec.list_mailboxes(),
    "register_mailbox": lambda pec: pec.register_mailbox(applicant()),
    "get_mailbox": lambda pec: pec.get_mailbox(UNKNOWN_ID),
    "revoke_mailbox": lambda pec: pec.revoke_mailbox(UNKNOWN_ID),
    "activation_form": lambda pec: pec.activation_form(UNKNOWN_ID),
    "activate_mailbox": lambda pec: pec.activate_mailbox(UNKNOWN_ID, [pdf(pages=2)]),
    "renew_mailbox": lambda pec: pec.renew_mailbox(UNKNOWN_ID),
    "change_space": lambda pec: pec.change_space(UNKNOWN_ID, disk=1024),
    "conservation_form": lambda pec: pec.conservation_form(UNKNOWN_ID),
    "activate_conservation": lambda pec: pec.activate_conservation(UNKNOWN_ID, [pdf()]),
    "change_type": lambda pec: pec.change_type(UNKNOWN_ID, "GOLD"),
    "add_user": lambda pec: pec.add_user(UNKNOWN_ID, USER),
    "list_communications": lambda pec: pec.list_communications(),
    "communicate": lambda pec: pec.communicate(COMMUNICATION),
    "get_communication": lambda pec: pec.get_communication(UNKNOWN_ID),
    "power_of_attorney": lambda pec: pec.power_of_attorney(UNKNOWN_ID),
    "upload_communication_documents": lambda pec: pec.upload_communication_documents(
        UNKNOWN_ID, [P7M]
    ),
    "list_domains": lambda pec: pec.list_domains(),
    "register_domain": lambda pec: pec.register_domain("pec.studiobianchi.it", "infocert"),
    "get_domain": lambda pec: pec.get_domain(UNKNOWN_ID),
    "revoke_domain": lambda pec: pec.revoke_domain(UNKNOWN_ID),
    "renew_domain": lambda pec: pec.renew_domain(UNKNOWN_ID),
}


def test_every_method_is_in_the_list() -> None:
    public = {name for name in vars(PecClient) if not name.startswith("_")}
    assert public == set(EVERY_METHOD)


@pytest.mark.parametrize("method", sorted(EVERY_METHOD))
async def test_every_pec_path_without_a_token_is_refused(
    contract: ContractTransport, simulator: Simulator, method: str
) -> None:
    def records() -> tuple[int, ...]:
        return len(simulator.caselle), len(simulator.domini), len(simulator.comunicazioni)

    before = records()
    async with ApiSession(BASE_URL, "", transport=contract) as session:
        with pytest.raises(AuthenticationError) as raised:
            await EVERY_METHOD[method](PecClient(session))

    assert raised.value.status == 401
    assert [r.status for r in simulator.requests] == [401]  # one call...
    assert records() == before  # ...and nothing done


@pytest.mark.parametrize(
    ("call", "path"),
    [
        (lambda pec: pec.renew_mailbox(UNKNOWN_ID, 2), f"/pec/{UNKNOWN_ID}/rinnovo"),
        (lambda pec: pec.renew_domain(UNKNOWN_ID, 2), f"/dominio/{UNKNOWN_ID}/rinnovo"),
        (lambda pec: pec.domain_accepts_pec("legalmail.it"), "/domini_pec/legalmail.it"),
    ],
    ids=["pec-rinnovo", "dominio-rinnovo", "domini_pec"],
)
async def test_charged_reads_are_never_repeated_after_a_server_error(
    pec: PecClient,
    simulator: Simulator,
    contract: ContractTransport,
    sleeps: Sleeps,
    call: Callable[[PecClient], Awaitable[object]],
    path: str,
) -> None:
    contract.undocumented.add(503)
    simulator.add_fault(Fault(path=path, method="GET", kind="status", status=503, times=9))

    with pytest.raises(OutcomeUnknown) as raised:
        await call(pec)

    assert raised.value.status == 503
    assert "may have been carried out" in str(raised.value)
    assert [(r.method, r.path) for r in simulator.requests] == [("GET", path)]
    assert sleeps.waits == []


# -- checks ----------------------------------------------------------------------------


async def test_domain_check(pec: PecClient) -> None:
    assert await pec.domain_accepts_pec("legalmail.it") is True
    assert await pec.domain_accepts_pec("gmail.com") is False


async def test_domain_check_of_a_malformed_domain(pec: PecClient) -> None:
    with pytest.raises(InvalidRequest) as raised:
        await pec.domain_accepts_pec("not a domain")
    assert (raised.value.status, raised.value.code) == (406, 401)


async def test_availability(pec: PecClient) -> None:
    assert await pec.is_available("nuova.casella@pecmassiva.com") is True
    assert await pec.is_available("demo@pecmassiva.com") is False


async def test_availability_of_a_malformed_address(pec: PecClient) -> None:
    with pytest.raises(InvalidRequest) as raised:
        await pec.is_available("nessuna-chiocciola")
    assert (raised.value.status, raised.value.code) == (406, 208)
    assert raised.value.message == "invalid casella_pec"


# -- mailboxes -------------------------------------------------------------------------


async def test_register_list_and_get(pec: PecClient) -> None:
    box = await pec.register_mailbox(applicant())

    assert (box.address, box.box_type, box.state) == (
        "studio.bianchi@pecmassiva.com",
        "PECMASSIVA",
        "registrata",
    )
    assert box.id in {b.id for b in await pec.list_mailboxes()}
    assert "demo@pecmassiva.com" in {b.address for b in await pec.list_mailboxes()}
    assert (await pec.get_mailbox(box.id)).address == box.address
    every = await pec.list_mailboxes()
    first = await pec.list_mailboxes(skip=0, limit=1)
    second = await pec.list_mailboxes(skip=1, limit=1)
    assert len(first) == len(second) == 1
    assert first[0].id != second[0].id
    assert [first[0].id, second[0].id] == [b.id for b in every[:2]]
    assert await pec.list_mailboxes(skip=len(every)) == []


async def test_register_without_a_box_type_is_refused(pec: PecClient) -> None:
    body = applicant()
    del body["tipo_casella"]
    with pytest.raises(InvalidRequest) as raised:
        await pec.register_mailbox(body)
    assert (raised.value.status, raised.value.code) == (428, 224)
    assert raised.value.message == "tipo_casella required"


async def test_register_with_a_bad_birth_date_is_refused(pec: PecClient) -> None:
    with pytest.raises(InvalidRequest) as raised:
        await pec.register_mailbox(applicant(data_nascita_richiedente="1980-01-01"))
    assert (raised.value.status, raised.value.code) == (406, 242)


async def test_get_mailbox_errors(pec: PecClient) -> None:
    with pytest.raises(InvalidRequest) as wrong:
        await pec.get_mailbox("xyz")
    with pytest.raises(NotFound) as unknown:
        await pec.get_mailbox(UNKNOWN_ID)
    assert (wrong.value.status, wrong.value.code) == (400, 201)
    assert (unknown.value.status, unknown.value.code) == (404, 202)


async def test_activation_form_is_a_real_pdf(pec: PecClient) -> None:
    box = await pec.register_mailbox(applicant())

    form = await pec.activation_form(box.id)

    assert form.startswith(b"%PDF")
    assert len(PdfReader(io.BytesIO(form)).pages) >= 1


async def test_activation_form_of_a_malformed_id(pec: PecClient) -> None:
    with pytest.raises(InvalidRequest) as raised:
        await pec.activation_form("xyz")
    assert raised.value.message == "Invalid id"


async def test_activation_goes_through_in_evasione_to_evasa(
    pec: PecClient, clock: SimClock
) -> None:
    box = await pec.register_mailbox(applicant())

    pending = await pec.activate_mailbox(box.id, [pdf(pages=2)])
    clock.advance(DAY)
    active = await pec.get_mailbox(box.id)

    assert pending.state == "in_evasione"
    assert active.state == "evasa"
    assert active.expires is not None and active.expires > clock.now().date()


async def test_activation_with_a_file_that_is_not_a_pdf(pec: PecClient) -> None:
    box = await pec.register_mailbox(applicant())
    with pytest.raises(InvalidRequest) as raised:
        await pec.activate_mailbox(box.id, [b"GIF89a not a pdf"])
    assert (raised.value.status, raised.value.code) == (406, 296)


async def test_renew_extends_the_expiry(pec: PecClient, clock: SimClock) -> None:
    box = await active_box(pec, clock)
    assert box.expires is not None

    renewed = await pec.renew_mailbox(box.id, years=2)

    assert renewed.expires == date(box.expires.year + 2, box.expires.month, box.expires.day)


async def test_renew_of_a_box_not_yet_active(pec: PecClient) -> None:
    box = await pec.register_mailbox(applicant())
    with pytest.raises(InvalidRequest) as raised:
        await pec.renew_mailbox(box.id)
    assert (raised.value.status, raised.value.code) == (428, 203)


async def test_revoke_and_revoke_again(pec: PecClient, clock: SimClock) -> None:
    box = await active_box(pec, clock)

    revoked = await pec.revoke_mailbox(box.id)
    with pytest.raises(InvalidRequest) as again:
        await pec.revoke_mailbox(box.id)

    assert revoked.state == "revocata"
    assert (again.value.status, again.value.code) == (406, 303)


@pytest.mark.parametrize(
    "call",
    [
        lambda pec, i: pec.change_space(i, disk=1024),
        lambda pec, i: pec.activate_conservation(i, [pdf()]),
        lambda pec, i: pec.change_type(i, "GOLD"),
        lambda pec, i: pec.add_user(
            i,
            {
                "nome": "Luca",
                "cognome": "Bianchi",
                "descrizione": "segreteria",
                "email_gestione_password": "luca@studiobianchi.it",
            },
        ),
    ],
    ids=["modifica", "conservazione", "trasformazione", "multiutenza"],
)
async def test_services_refused_for_pecmassiva_boxes(
    pec: PecClient, clock: SimClock, call: Any
) -> None:
    box = await active_box(pec, clock)
    with pytest.raises(InvalidRequest) as raised:
        await call(pec, box.id)
    assert raised.value.status == 428
    assert "PECMASSIVA" in raised.value.message


async def test_services_of_a_standard_box(pec: PecClient, clock: SimClock) -> None:
    box = await active_box(
        pec, clock, casella_pec="studio.bianchi@legalmail.it", tipo_casella="STANDARD"
    )

    await pec.change_space(box.id, disk="+1024")
    form = await pec.conservation_form(box.id)
    await pec.activate_conservation(box.id, [pdf(pages=2)])
    upgraded = await pec.change_type(box.id, "GOLD")
    await pec.add_user(
        box.id,
        {
            "nome": "Luca",
            "cognome": "Bianchi",
            "descrizione": "segreteria",
            "email_gestione_password": "luca@studiobianchi.it",
        },
    )

    assert form.startswith(b"%PDF")
    assert upgraded.box_type == "GOLD"


async def test_conservation_form_of_a_pecmassiva_box_is_refused(
    pec: PecClient, clock: SimClock
) -> None:
    box = await active_box(pec, clock)
    with pytest.raises(InvalidRequest) as raised:
        await pec.conservation_form(box.id)
    assert raised.value.status == 406


# -- business register -----------------------------------------------------------------


async def test_communication_to_the_business_register(pec: PecClient, clock: SimClock) -> None:
    assert await pec.list_communications() == []
    started = await pec.communicate(COMMUNICATION)
    with pytest.raises(InvalidRequest) as too_early:
        await pec.power_of_attorney(started.id)
    clock.advance(DAY)

    form = await pec.power_of_attorney(started.id)
    uploaded = await pec.upload_communication_documents(started.id, [P7M])

    assert started.state == "codice_in_richiesta"
    assert too_early.value.status == 406
    assert form.startswith(b"%PDF")
    assert uploaded.state == "documenti_caricati"
    assert (await pec.get_communication(started.id)).state in {
        "documenti_caricati",
        "comunicazione_evasa",
    }
    assert [c.id for c in await pec.list_communications()] == [started.id]


async def test_communication_errors(pec: PecClient) -> None:
    incomplete = {k: v for k, v in COMMUNICATION.items() if k != "cf_piva"}
    with pytest.raises(InvalidRequest) as missing:
        await pec.communicate(incomplete)
    with pytest.raises(NotFound):
        await pec.get_communication(UNKNOWN_ID)
    started = await pec.communicate(COMMUNICATION)
    with pytest.raises(InvalidRequest) as not_yet:
        await pec.upload_communication_documents(started.id, [P7M])
    assert (missing.value.status, missing.value.code) == (428, 344)
    assert (not_yet.value.status, not_yet.value.code) == (406, 355)


# -- own domains -----------------------------------------------------------------------


async def test_domain_lifecycle(pec: PecClient, clock: SimClock) -> None:
    registered = await pec.register_domain("pec.studiobianchi.it", "infocert", years=1)
    clock.advance(DAY)

    certified = await pec.get_domain(registered.id)
    renewed = await pec.renew_domain(registered.id, years=2)
    listed = await pec.list_domains()
    revoked = await pec.revoke_domain(registered.id)

    assert registered.state == "registrato"
    assert certified.state == "evaso"
    assert renewed.expires and certified.expires and renewed.expires > certified.expires
    assert [d.domain for d in listed] == ["pec.studiobianchi.it"]
    assert revoked.state == "revocato"


async def test_domain_errors(pec: PecClient) -> None:
    with pytest.raises(InvalidRequest) as bad_provider:
        await pec.register_domain("pec.studiobianchi.it", "aruba")
    with pytest.raises(NotFound):
        await pec.get_domain(UNKNOWN_ID)
    with pytest.raises(InvalidRequest):
        await pec.revoke_domain("xyz")
    assert bad_provider.value.status == 406
