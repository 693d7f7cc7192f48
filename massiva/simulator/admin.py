"""``/_simulator/``: a JSON view to drive and inspect a simulator in another process.

No auth: the server only listens on loopback. Never shows a password or a token.
A browser is another matter: any page it shows can send requests to 127.0.0.1, so a
request a browser marks as coming from another site or origin is refused (403): see
:func:`cross_site`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from massiva.simulator.faults import Fault
from massiva.simulator.models import RequestRecord, SendRecord
from massiva.simulator.provisioning import summary
from massiva.simulator.responses import read_json, simulator_of

#: Settings a running simulator may change, and the JSON types each takes.
RUNTIME_SETTINGS: dict[str, tuple[type, ...]] = {
    "inbox_order": (str,),
    "send_status_fields": (str,),
    "send_rate": (int, float, type(None)),
    "daily_limit": (int, type(None)),
    "monthly_limit": (int, type(None)),
    "allowance_status": (int,),
    "inbox_page_size": (int,),
    "quota_limit_kib": (int,),
}
_FAULT_FIELDS: dict[str, tuple[type, ...]] = {
    "path": (str,),
    "method": (str, type(None)),
    "kind": (str,),
    "times": (int,),
    "status": (int, type(None)),
    "delay": (int, float),
    "message": (str, type(None)),
}


#: The names the simulator's own origin may have: it listens on loopback only.
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def _bad(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, 400)


def _origin(url: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of an http(s) origin or URL, or None (e.g. ``null``)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        return None
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or (443 if scheme == "https" else 80)


def cross_site(request: Request) -> str | None:
    """Why ``request`` is refused as coming from a page of another site, or None.

    Browsers say where a request comes from: ``Origin`` (on every POST and DELETE) and
    ``Sec-Fetch-Site``. A request with neither is a script's or a test's, and is
    answered. One with ``Sec-Fetch-Site: cross-site`` or ``same-site``, or an ``Origin``
    that is not the simulator's own (its own scheme, host and port, on a loopback name:
    a foreign name pointed at 127.0.0.1 is refused too) is refused: without this, any
    web page open in a browser could add faults or move the clock with a form.
    """
    fetch_site = request.headers.get("sec-fetch-site", "").lower()
    if fetch_site in ("cross-site", "same-site"):
        return f"Sec-Fetch-Site: {fetch_site}"
    origin = request.headers.get("origin")
    if origin is None:
        return None
    own = _origin(f"{request.url.scheme}://{request.url.netloc}")
    if own is None or own[1] not in _LOOPBACK or _origin(origin) != own:
        return f"Origin: {origin}"
    return None


def _same_origin_only(
    endpoint: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """``endpoint``, answering 403 to a request :func:`cross_site` refuses."""

    @functools.wraps(endpoint)
    async def guarded(request: Request) -> Response:
        why = cross_site(request)
        if why is not None:
            return JSONResponse(
                {
                    "error": f"cross-site request refused ({why}): the admin view answers"
                    " only its own origin, or clients that send no Origin (scripts, tests)"
                },
                403,
            )
        return await endpoint(request)

    return guarded


def _typed(value: object, types: tuple[type, ...]) -> bool:
    # JSON true/false are ints to Python: never a valid number here.
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return isinstance(value, types) and not isinstance(value, bool)


def send_json(send: SendRecord) -> dict[str, Any]:
    """A SendRecord as JSON."""
    return {
        "message_id": send.message_id,
        "mailbox": send.mailbox,
        "recipients": list(send.recipients),
        "subject": send.subject,
        "body": send.body,
        "at": send.at.isoformat(),
        "attachments": [{"name": name, "size": size} for name, size in send.attachments],
    }


def request_json(record: RequestRecord) -> dict[str, Any]:
    """A RequestRecord as JSON."""
    return {
        "method": record.method,
        "path": record.path,
        "status": record.status,
        "at": record.at.isoformat(),
    }


async def sends(request: Request) -> Response:
    """GET /_simulator/sends: every recorded sending."""
    return JSONResponse({"sends": [send_json(s) for s in simulator_of(request).sends]})


async def posts(request: Request) -> Response:
    """GET /_simulator/posts: recipient -> times posted."""
    return JSONResponse({"posts": simulator_of(request).post_counts()})


async def requests(request: Request) -> Response:
    """GET /_simulator/requests?since=N: requests from index N on; ``next`` is the next N."""
    records = simulator_of(request).requests
    raw = request.query_params.get("since", "0")
    since = int(raw) if raw.isascii() and raw.isdigit() else 0
    return JSONResponse(
        {"requests": [request_json(r) for r in records[since:]], "next": len(records)}
    )


async def inject(request: Request) -> Response:
    """POST /_simulator/inbox {mailbox, subject, sender, recipient, date?, body?} -> {id}."""
    body = await read_json(request)
    if not isinstance(body, dict):
        return _bad("a JSON object is required")
    for key in ("mailbox", "subject", "sender", "recipient"):
        if not isinstance(body.get(key), str):
            return _bad(f"{key} (a string) is required")
    for key in ("date", "body"):
        if body.get(key) is not None and not isinstance(body[key], str):
            return _bad(f"{key} must be a string")
    try:
        inbox_id = simulator_of(request).inject_message(
            body["mailbox"],
            subject=body["subject"],
            sender=body["sender"],
            recipient=body["recipient"],
            date=body.get("date"),
            body=body.get("body") or "",
        )
    except KeyError:
        return _bad(f"no mailbox {body['mailbox']}")
    return JSONResponse({"id": inbox_id})


async def clock(request: Request) -> Response:
    """GET /_simulator/clock; POST {"advance": seconds} or {"set": iso8601} -> {now}."""
    sim = simulator_of(request)
    if request.method == "POST":
        body = await read_json(request)
        # The clock refuses (ValueError) a move out of the years 2000 to 2100: past them
        # the calendar arithmetic overflows and every later request would fail.
        try:
            if isinstance(body, dict) and _typed(body.get("advance"), (int, float)):
                sim.clock.advance(body["advance"])
            elif isinstance(body, dict) and isinstance(body.get("set"), str):
                sim.clock.set(datetime.fromisoformat(body["set"]))
            else:
                return _bad('give {"advance": seconds} or {"set": "<aware ISO 8601>"}')
        except ValueError as error:
            return _bad(str(error))
        sim.catch_up()
    return JSONResponse({"now": sim.clock.now().isoformat(), "speed": sim.clock.speed})


async def faults(request: Request) -> Response:
    """GET: pending faults; POST: add one (the Fault fields); DELETE: clear them all."""
    sim = simulator_of(request)
    if request.method == "POST":
        body = await read_json(request)
        if not isinstance(body, dict) or not set(body) <= set(_FAULT_FIELDS):
            return _bad(f"a JSON object with keys among {sorted(_FAULT_FIELDS)}")
        for key, value in body.items():
            if not _typed(value, _FAULT_FIELDS[key]):
                return _bad(f"{key} has the wrong type")
        if "path" not in body or "kind" not in body:
            return _bad("path and kind are required")
        try:
            sim.add_fault(Fault(**body))
        except ValueError as error:
            return _bad(str(error))
    elif request.method == "DELETE":
        sim.clear_faults()
    return JSONResponse({"faults": [dataclasses.asdict(fault) for fault in sim.faults]})


async def add_mailbox(request: Request) -> Response:
    """POST /_simulator/mailboxes {address, password, username?}: an active box."""
    body = await read_json(request)
    if not isinstance(body, dict) or not all(
        isinstance(body.get(key), str) for key in ("address", "password")
    ):
        return _bad("address and password (strings) are required")
    username = body.get("username")
    if username is not None and not isinstance(username, str):
        return _bad("username must be a string")
    try:
        simulator_of(request).add_mailbox(body["address"], body["password"], username=username)
    except ValueError as error:
        return _bad(str(error))
    return JSONResponse({"address": body["address"].strip().lower()})


async def settings(request: Request) -> Response:
    """GET the settings a running simulator may change; POST {name: value, ...} to change them."""
    sim = simulator_of(request)
    if request.method == "POST":
        body = await read_json(request)
        if not isinstance(body, dict) or not set(body) <= set(RUNTIME_SETTINGS):
            return _bad(f"a JSON object with keys among {sorted(RUNTIME_SETTINGS)}")
        for key, value in body.items():
            if not _typed(value, RUNTIME_SETTINGS[key]):
                return _bad(f"{key} has the wrong type")
        try:
            dataclasses.replace(sim.settings, **body)  # validates the combination
        except ValueError as error:
            return _bad(str(error))
        for key, value in body.items():
            setattr(sim.settings, key, value)
    return JSONResponse({key: getattr(sim.settings, key) for key in RUNTIME_SETTINGS})


async def state(request: Request) -> Response:
    """GET /_simulator/state: mailboxes, PEC boxes, domains, communications; no passwords."""
    sim = simulator_of(request)
    now = sim.clock.now()
    mailboxes = [
        {
            "address": m.address,
            "username": m.username,
            "active": sim.active_mailbox(m.address) is not None,
            "inbox": len(m.inbox),
            "usage_bytes": m.usage_bytes,
            "recipients_by_day": {day.isoformat(): n for day, n in m.day_counts.items()},
            "recipients_by_month": {f"{y}-{mo:02d}": n for (y, mo), n in m.month_counts.items()},
        }
        for m in sim.mailboxes.values()
    ]
    return JSONResponse(
        {
            "now": now.isoformat(),
            "mailboxes": mailboxes,
            "pec": [summary(record) for record in sim.caselle.values()],
            "domains": [
                {"id": d["id"], "dominio": d["dominio"], "stato": d["stato"]}
                for d in sim.domini.values()
            ],
            "comunicazioni": [
                {"id": c["id"], "casella_pec": c["casella_pec"], "stato": c["stato"]}
                for c in sim.comunicazioni.values()
            ],
        }
    )


routes = [
    Route(path, _same_origin_only(endpoint), methods=methods)
    for path, endpoint, methods in (
        ("/_simulator/sends", sends, ["GET"]),
        ("/_simulator/posts", posts, ["GET"]),
        ("/_simulator/requests", requests, ["GET"]),
        ("/_simulator/inbox", inject, ["POST"]),
        ("/_simulator/clock", clock, ["GET", "POST"]),
        ("/_simulator/faults", faults, ["GET", "POST", "DELETE"]),
        ("/_simulator/mailboxes", add_mailbox, ["POST"]),
        ("/_simulator/settings", settings, ["GET", "POST"]),
        ("/_simulator/state", state, ["GET"]),
    )
]
