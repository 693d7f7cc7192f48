"""Helpers for the tests that drive the simulator in process with raw HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.types import ASGIApp

#: Any non-empty bearer token is accepted unless SimulatorSettings.tokens says otherwise.
BEARER = {"Authorization": "Bearer test-token"}
#: x-username / x-password of the default mailbox, with the bearer token.
DEMO_MAILBOX = {**BEARER, "x-username": "demo@pecmassiva.com", "x-password": "demo"}


@asynccontextmanager
async def sim_client(app: ASGIApp, *, auth: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on ``app`` (no socket), sending the bearer token unless ``auth=False``."""
    transport = httpx.ASGITransport(app=app)
    headers = BEARER if auth else None
    async with httpx.AsyncClient(
        transport=transport, base_url="http://sim", headers=headers
    ) as client:
        yield client
