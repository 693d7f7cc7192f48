"""The PEC Massiva client against the simulator: every path, a success and an error."""

from __future__ import annotations

import re

import pytest

from massiva.api import (
    ApiSession,
    Attachment,
    AuthenticationError,
    InvalidRequest,
    NotFound,
    PecMassivaClient,
)
from massiva.simulator import SimClock, Simulator
from tests.conftest import MAILBOX

DELIVERED = "mario.rossi@legalmail.it"
NON_PEC = "mario.rossi@gmail.com"


@pytest.fixture
def intruder(session: ApiSession) -> PecMassivaClient:
    """The test mailbox with a wrong password."""
    return PecMassivaClient(session, MAILBOX, "not-the-password")


async def test_send_returns_a_vendor_message_id_and_the_acceptance_arrives(
    box: PecMassivaClient, simulator: Simulator
) -> None:
    result = await box.send(DELIVERED, "Avviso di pagamento 2026", "<p>Gentile Mario</p>")

    assert result.sent == 1
    assert re.fullmatch(r"\d{15,}", result.message_id)
    assert simulator.post_counts() == {DELIVERED: 1}
    page = await box.inbox()
    subjects = [item.subject for item in page.items]
    assert f"ACCETTAZIONE: Avviso di pagamento 2026 {result.message_id}" in subjects


async def test_send_carries_attachments_as_data_uris(
    box: PecMassivaClient, simulator: Simulator
) -> None:
    attachment = Attachment.from_bytes("fattura.pdf", b"%PDF-1.4 fake")
    assert attachment.file.startswith("data:application/pdf;base64,")

    await box.send(DELIVERED, "Fattura", "<p>In allegato</p>", attachments=[attachment])

    (record,) = simulator.sends
    assert record.attachments == (("fattura.pdf", len(b"%PDF-1.4 fake")),)


async def test_send_with_a_wrong_password_is_refused(
    intruder: PecMassivaClient, simulator: Simulator
) -> None:
    with pytest.raises(AuthenticationError) as raised:
        await intruder.send(DELIVERED, "Oggetto", "Corpo")
    assert raised.value.status == 401
    assert "Authorization is not valid or empty" in str(raised.value)
    assert simulator.post_counts() == {}


async def test_send_with_an_invalid_recipient_is_a_bad_request(box: PecMassivaClient) -> None:
    with pytest.raises(InvalidRequest) as raised:
        await box.send("not-an-address", "Oggetto", "Corpo")
    assert raised.value.status == 400
    assert "Post parameter is not valid" in raised.value.message


async def test_send_status_lists_the_receipts_of_one_sending(
    box: PecMassivaClient, clock: SimClock
) -> None:
    result = await box.send(DELIVERED, "Convocazione", "<p>Assemblea</p>")
    clock.advance(3600)

    receipts = await box.send_status(result.message_id)

    kinds = sorted(r.subject.split(":")[0] for r in receipts)
    assert kinds == ["ACCETTAZIONE", "CONSEGNA"]
    assert all(r.subject.endswith(result.message_id) for r in receipts)
    assert all(r.date for r in receipts)


async def test_send_status_reads_the_field_names_the_live_api_uses(
    box: PecMassivaClient, simulator: Simulator, clock: SimClock
) -> None:
    simulator.settings.send_status_fields = "live"
    result = await box.send(DELIVERED, "Convocazione", "<p>Assemblea</p>")
    clock.advance(3600)

    receipts = await box.send_status(result.message_id)

    assert {r.subject.split(":")[0] for r in receipts} == {"ACCETTAZIONE", "CONSEGNA"}
    assert all(r.date for r in receipts)


async def test_send_status_of_an_unknown_sending_is_empty(box: PecMassivaClient) -> None:
    assert await box.send_status("2020082610003492") == []


async def test_send_status_with_a_wrong_password_is_refused(intruder: PecMassivaClient) -> None:
    with pytest.raises(AuthenticationError):
        await intruder.send_status("2020082610003492")


async def test_delete_send_removes_its_receipts(box: PecMassivaClient) -> None:
    result = await box.send(DELIVERED, "Da cancellare", "x")

    await box.delete_send(result.message_id)

    assert await box.send_status(result.message_id) == []


async def test_delete_send_of_an_unknown_sending_is_not_found(box: PecMassivaClient) -> None:
    with pytest.raises(NotFound) as raised:
        await box.delete_send("2020082610003492")
    assert raised.value.message == "Email not found"


async def test_inbox_pages_hold_25_messages_and_search_finds_one(
    box: PecMassivaClient, simulator: Simulator
) -> None:
    for n in range(30):
        simulator.inject_message(
            MAILBOX,
            subject=f"messaggio {n:02d}",
            sender=NON_PEC,
            recipient=MAILBOX,
        )

    first, second = await box.inbox(page=1), await box.inbox(page=2)
    found = await box.inbox(q="messaggio 07")

    assert (first.total, first.pages, len(first.items)) == (30, 2, 25)
    assert (second.page, len(second.items)) == (2, 5)
    assert {i.id for i in first.items}.isdisjoint(i.id for i in second.items)
    assert [i.subject for i in found.items] == ["ANOMALIA MESSAGGIO: messaggio 07"]


async def test_inbox_with_a_wrong_password_is_refused(intruder: PecMassivaClient) -> None:
    with pytest.raises(AuthenticationError):
        await intruder.inbox()


async def test_message_has_its_body_decoded(box: PecMassivaClient, clock: SimClock) -> None:
    result = await box.send(DELIVERED, "Convocazione", "<p>Assemblea</p>")
    clock.advance(3600)
    page = await box.inbox(q=f"CONSEGNA: Convocazione {result.message_id}")
    (item,) = [i for i in page.items if i.subject.startswith("CONSEGNA")]

    message = await box.message(item.id)

    assert message.subject == item.subject
    assert "X-Ricevuta: avvenuta-consegna" in message.body
    assert "%" not in message.body.split("\n")[0]  # url-decoded


async def test_message_unknown_is_not_found(box: PecMassivaClient) -> None:
    with pytest.raises(NotFound):
        await box.message(999_999)


async def test_delete_message_removes_it(box: PecMassivaClient, simulator: Simulator) -> None:
    message_id = simulator.inject_message(
        MAILBOX, subject="ANOMALIA MESSAGGIO: spam", sender=NON_PEC, recipient=MAILBOX
    )

    await box.delete_message(message_id)

    with pytest.raises(NotFound):
        await box.message(message_id)


async def test_delete_message_with_a_wrong_password_is_refused(
    intruder: PecMassivaClient,
) -> None:
    with pytest.raises(AuthenticationError):
        await intruder.delete_message(1)


async def test_quota_grows_with_the_receipts(box: PecMassivaClient, clock: SimClock) -> None:
    before = await box.quota()

    await box.send(
        DELIVERED,
        "Con allegato",
        "x",
        attachments=[Attachment.from_bytes("grande.bin", b"\0" * 200_000)],
    )
    clock.advance(3600)
    after = await box.quota()

    assert before.limit == after.limit > 0
    assert after.usage > before.usage
    assert 0 < after.fraction < 1


async def test_quota_of_an_unknown_mailbox_is_a_bad_request(box: PecMassivaClient) -> None:
    with pytest.raises(InvalidRequest) as raised:
        await box.quota("ARCHIVIO")
    assert raised.value.status == 400
    assert "mailbox might be unavailable" in raised.value.message
