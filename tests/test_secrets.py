"""The Openapi token and the mailbox password never reach an exception or a log line."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Awaitable, Callable

import pytest

from massiva.api import ApiError, ApiSession, PecClient, PecMassivaClient
from massiva.simulator import Fault, Simulator
from tests.conftest import MAILBOX, PASSWORD, TOKEN
from tests.contract import ContractTransport

RECIPIENT = "mario.rossi@legalmail.it"


async def test_no_secret_in_any_exception_or_log_line(
    box: PecMassivaClient,
    pec: PecClient,
    session: ApiSession,
    simulator: Simulator,
    contract: ContractTransport,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    contract.undocumented.update({500, 503})
    wrong = PecMassivaClient(session, MAILBOX, PASSWORD + "-wrong")
    # A vendor that echoes what it was sent in its error message.
    simulator.add_fault(
        Fault(
            path="/inbox",
            method="GET",
            kind="status",
            status=503,
            times=9,
            message=f"bad credentials {MAILBOX}:{PASSWORD} with Bearer {TOKEN}",
        )
    )
    simulator.add_fault(
        Fault(
            path="/send",
            method="POST",
            kind="status",
            status=500,
            times=1,
            message=f"MySQL Error near '{PASSWORD}'",
        )
    )
    failing: list[Callable[[], Awaitable[object]]] = [
        lambda: box.inbox(),  # 5xx retried, then given up
        lambda: box.send(RECIPIENT, "Oggetto", "Corpo"),  # outcome unknown
        lambda: box.send("not-an-address", "Oggetto", "Corpo"),  # 400
        lambda: wrong.quota(),  # 401
        lambda: wrong.send(RECIPIENT, "Oggetto", "Corpo"),  # 401 on the body credentials
        lambda: pec.get_mailbox("xyz"),  # 400 with a vendor code
    ]
    seen: list[str] = []
    for call in failing:
        with pytest.raises(ApiError) as raised:
            await call()
        seen += [str(raised.value), repr(raised.value), raised.value.message]
        seen += traceback.format_exception(raised.value)

    seen += [record.getMessage() for record in caplog.records]
    assert len(caplog.records) > len(failing)  # the calls were logged...
    for text in seen:  # ...and nothing anywhere holds a secret
        assert TOKEN not in text
        assert PASSWORD not in text
    assert any("***" in text for text in seen)  # the echoed secrets were redacted
