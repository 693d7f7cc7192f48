"""The ASGI app: routes of both vendor APIs, bearer auth, faults, request log, and the
simulated clock's ``Date`` on every answer."""

from __future__ import annotations

import asyncio
import email.utils
import json
import re
from http import HTTPStatus

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from massiva.simulator import admin, comunica, domains, inbox, provisioning, sending
from massiva.simulator.clock import SimClock
from massiva.simulator.faults import ConnectionDropped, Fault
from massiva.simulator.models import RequestRecord
from massiva.simulator.responses import (
    UNAUTHORIZED,
    is_massiva_path,
    massiva_error,
    pec_error,
)
from massiva.simulator.settings import SimulatorSettings
from massiva.simulator.state import Simulator

_BEARER = re.compile(r"^Bearer +(\S+) *$", re.IGNORECASE)
ADMIN_PREFIX = "/_simulator/"

ROUTES = [
    # PEC Massiva (sending), ws.pecmassiva.com
    Route("/send", sending.post_send, methods=["POST"]),
    Route("/send/{code}", inbox.sending_status, methods=["GET"]),
    Route("/send/{code}", inbox.delete_sending, methods=["DELETE"]),
    Route("/inbox", inbox.list_inbox, methods=["GET"]),
    Route("/inbox/{id}", inbox.get_message, methods=["GET"]),
    Route("/inbox/{id}", inbox.delete_message, methods=["DELETE"]),
    Route("/quota/{mailbox}", inbox.quota, methods=["GET"]),
    # PEC (provisioning), pec.openapi.it
    Route("/domini_pec/{dominio}", domains.check_domain, methods=["GET"]),
    Route("/verifica_pec/{pec}", provisioning.verifica_pec, methods=["GET"]),
    Route("/pec", provisioning.list_pec, methods=["GET"]),
    Route("/pec", provisioning.register_pec, methods=["POST"]),
    Route("/pec/{id}", provisioning.get_pec, methods=["GET"]),
    Route("/pec/{id}", provisioning.revoke_pec, methods=["DELETE"]),
    Route("/pec/{id}/attivazione", provisioning.activate_pec, methods=["PATCH"]),
    Route("/pec/{id}/modifica", provisioning.modify_pec, methods=["PATCH"]),
    Route("/pec/{id}/conservazione", provisioning.conserve_pec, methods=["PATCH"]),
    Route("/pec/{id}/trasformazione", provisioning.transform_pec, methods=["PATCH"]),
    Route("/pec/{id}/rinnovo", provisioning.renew_pec, methods=["GET"]),
    Route("/pec/{id}/multiutenza", provisioning.add_user, methods=["POST"]),
    Route("/pec/{id}/modulo_attivazione", provisioning.activation_form, methods=["GET"]),
    Route("/pec/{id}/modulo_conservazione", provisioning.storage_form, methods=["GET"]),
    Route("/comunica_pec", comunica.list_requests, methods=["GET"]),
    Route("/comunica_pec", comunica.create_request, methods=["POST"]),
    Route("/comunica_pec/{id}", comunica.get_request, methods=["GET"]),
    Route("/comunica_pec/{id}", comunica.upload_documents, methods=["PATCH"]),
    Route(
        "/comunica_pec/{id}/procura_registro_imprese",
        comunica.power_of_attorney,
        methods=["GET"],
    ),
    # Own domains: not in pec.openapi.json, from the seed page 001
    Route("/dominio", domains.list_domains, methods=["GET"]),
    Route("/dominio", domains.register_domain, methods=["POST"]),
    Route("/dominio/{id}", domains.get_domain, methods=["GET"]),
    Route("/dominio/{id}", domains.revoke_domain, methods=["DELETE"]),
    Route("/dominio/{id}/rinnovo", domains.renew_domain, methods=["GET"]),
    *admin.routes,
]


def _error_for(
    path: str, status: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """An error in the shape of the API that owns ``path``."""
    if is_massiva_path(path) or path.startswith(ADMIN_PREFIX):
        return massiva_error(status, message, headers)
    return pec_error(status, message, status, headers)


def _unauthorized(path: str) -> JSONResponse:
    # The PEC spec lists no 401: ours carries the PEC error shape with code 1.
    if is_massiva_path(path):
        return massiva_error(401, UNAUTHORIZED)
    return pec_error(401, UNAUTHORIZED, 1)


def _fault_response(fault: Fault, path: str, retry_after: int) -> Response:
    """The answer of a ``status`` or ``rate_limit`` fault, shaped like the vendor's errors."""
    status = 429 if fault.kind == "rate_limit" else fault.status or 500
    headers = {"Retry-After": str(retry_after)} if status in (429, 503) else None
    if fault.message is not None:
        message = fault.message
    elif status == 429:
        message = "Too many requests"
    elif path == "/send" and status == 500:
        message = "MySQL Error 2006"  # the spec's POST /send 500 ("MySQL Error {error code}")
    elif status == 503:
        message = "service temporarily unavailable"  # the PEC spec's 503 (/domini_pec)
    else:
        message = HTTPStatus(status).phrase
    return _error_for(path, status, message, headers)


async def _drop(send: Send) -> None:
    """Start a 201 answer and break the connection before its body."""
    body = json.dumps({"success": True, "sent": 1, "message": "", "message_id": "0"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 201,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    raise ConnectionDropped("connection dropped by a simulator fault")


async def _buffered(receive: Receive) -> Receive:
    """Read the whole request body now; the returned ``receive`` replays it."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client left before sending all of it
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    pending = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


def _dated(send: Send, clock: SimClock) -> Send:
    """``send`` with a ``Date`` header on the answer from the simulated clock: as a real
    server's Date tells its clock, this one tells the clock its receipts are dated by
    (massiva measures expiry on it: massiva.api.vendor_clock)."""

    async def dated(message: Message) -> None:
        if message["type"] == "http.response.start":
            stamp = email.utils.format_datetime(clock.now(), usegmt=True).encode("ascii")
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"date"]
            message = {**message, "headers": [*headers, (b"date", stamp)]}
        await send(message)

    return dated


class SimulatorMiddleware:
    """Around every vendor request: catch the timeline up, apply faults, check the bearer
    token, and log method, path, status and time (never headers or bodies)."""

    def __init__(self, app: ASGIApp, simulator: Simulator) -> None:
        self.app = app
        self.simulator = simulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sim = self.simulator
        send = _dated(send, sim.clock)
        path, method = scope["path"], scope["method"]
        if path.startswith(ADMIN_PREFIX):
            sim.catch_up()
            await self.app(scope, receive, send)
            return
        # Logged on arrival (status 0 until answered), so a slow request is seen at once.
        index = len(sim.requests)
        arrived = sim.clock.now()
        sim.requests.append(RequestRecord(method, path, 0, arrived))
        status = 500  # what the client gets if a handler fails before answering

        async def logged(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._handle(scope, receive, logged)
        except ConnectionDropped:
            status = 0
            raise
        finally:
            sim.requests[index] = RequestRecord(method, path, status, arrived)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        sim = self.simulator
        path = scope["path"]
        fault = sim.take_fault(scope["method"], path)
        if fault is not None and fault.kind == "slow":
            # The request has arrived whole; the vendor is slow to act on it, and acts
            # even if the client gives up meanwhile: read the body before waiting.
            receive = await _buffered(receive)
            await asyncio.sleep(fault.delay)
        sim.catch_up()
        if fault is not None and fault.kind in ("status", "rate_limit"):
            response = _fault_response(fault, path, sim.settings.fault_retry_after)
            await response(scope, receive, send)
            return
        if fault is not None and fault.kind == "drop_before_record":
            # Read the body first: closing a socket with unread data resets it, and the
            # client would see a reset instead of an answer cut short.
            await _buffered(receive)
            await _drop(send)
        if not self._authorized(Request(scope)):
            await _unauthorized(path)(scope, receive, send)
            return
        if fault is not None and fault.kind == "drop_after_record":

            async def dropping(message: Message) -> None:
                # Let the status line out, then break the connection: the handler has
                # already done its work (a send is recorded), the client never learns it.
                if message["type"] == "http.response.body":
                    raise ConnectionDropped("connection dropped by a simulator fault")
                await send(message)

            await self.app(scope, receive, dropping)
            return
        await self.app(scope, receive, send)

    def _authorized(self, request: Request) -> bool:
        match = _BEARER.match(request.headers.get("authorization", ""))
        tokens = self.simulator.settings.tokens
        return match is not None and (tokens is None or match.group(1) in tokens)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths and methods: JSON, in the shape of the API the path belongs to."""
    assert isinstance(exc, HTTPException)
    return _error_for(request.url.path, exc.status_code, exc.detail, dict(exc.headers or {}))


def create_app(
    settings: SimulatorSettings | None = None, clock: SimClock | None = None
) -> Starlette:
    """A new simulator app with its own state (``app.state.simulator``).

    ``clock`` defaults to a real-time clock starting now.
    """
    simulator = Simulator(settings or SimulatorSettings(), clock or SimClock())
    app = Starlette(
        routes=ROUTES,
        middleware=[Middleware(SimulatorMiddleware, simulator=simulator)],
        exception_handlers={HTTPException: _http_error},
    )
    # "/pec/" must be a 404 like any unknown path, not a redirect to "/pec".
    app.router.redirect_slashes = False
    app.state.simulator = simulator
    return app
