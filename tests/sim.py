"""Helpers for the tests that drive the simulator in process with raw HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import httpx
from starlette.types import ASGIApp

from tests.contract import ContractTransport

#: Any non-empty bearer token is accepted unless SimulatorSettings.tokens says otherwise.
BEARER = {"Authorization": "Bearer test-token"}
#: x-username / x-password of the default mailbox, with the bearer token.
DEMO_MAILBOX = {**BEARER, "x-username": "demo@pecmassiva.com", "x-password": "demo"}


@asynccontextmanager
async def sim_client(
    app: ASGIApp,
    *,
    auth: bool = True,
    undocumented: Iterable[int] = (),
    check_requests: bool = True,
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on ``app`` (no socket), sending the bearer token unless ``auth=False``.

    Every answer is validated against the vendor's specs (:class:`ContractTransport`):
    ``undocumented`` adds the statuses no spec lists that the test provokes on purpose
    (401 and 429 are always allowed); ``check_requests=False`` skips validating the
    requests the simulator accepted, for tests that send garbage on purpose.
    """
    transport = ContractTransport(httpx.ASGITransport(app=app), check_requests=check_requests)
    transport.undocumented.update(undocumented)
    headers = BEARER if auth else None
    async with httpx.AsyncClient(
        transport=transport, base_url="http://sim", headers=headers
    ) as client:
        yield client
