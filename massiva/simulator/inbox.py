"""PEC Massiva API: the mailbox -- ``/inbox``, ``/send/{code}``, ``/quota/{mailbox}``.

Credentials come in the ``x-username`` / ``x-password`` headers.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import quote_plus

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from massiva.simulator.models import InboxMessage, Mailbox
from massiva.simulator.responses import UNAUTHORIZED, massiva_error, simulator_of
from massiva.simulator.state import Simulator


def _login(request: Request) -> Mailbox | None:
    headers = request.headers
    return simulator_of(request).login(headers.get("x-username"), headers.get("x-password"))


def _page(raw: str | None) -> int:
    """The ``page`` parameter; anything not a number >= 1 means page 1 (the spec lists
    no 400 for /inbox)."""
    try:
        value = float(raw or "1")
    except ValueError:
        return 1
    return int(value) if math.isfinite(value) and value >= 1 else 1


def _inbox_id(raw: str) -> int | None:
    return int(raw) if raw.isascii() and raw.isdigit() else None


def _listing(
    simulator: Simulator, mailbox: Mailbox, query: str, start: int, stop: int
) -> tuple[list[InboxMessage], int]:
    """Messages ``start:stop`` of the inbox as listed (found by the ``q`` search, in the
    configured order), and how many the listing holds."""
    newest_first = simulator.settings.inbox_order == "newest_first"
    if query:  # a search reads every message
        found = [m for m in mailbox.inbox.values() if m.matches(query)]
        if newest_first:
            found.reverse()
        return found[start:stop], len(found)
    ids = simulator.arrivals(mailbox)
    total = len(ids)
    if newest_first:  # positions counted back from the end of the arrival order
        chosen = ids[max(total - stop, 0) : max(total - start, 0)][::-1]
    else:
        chosen = ids[start:stop]
    return [mailbox.inbox[i] for i in chosen], total


async def list_inbox(request: Request) -> Response:
    """GET /inbox?page=N&q=...: one page of the inbox, in the configured order."""
    mailbox = _login(request)
    if mailbox is None:
        return massiva_error(401, UNAUTHORIZED)
    simulator = simulator_of(request)
    page, size = _page(request.query_params.get("page")), simulator.settings.inbox_page_size
    query = request.query_params.get("q", "")
    messages, total = _listing(simulator, mailbox, query, (page - 1) * size, page * size)
    data = [
        {
            "sender": m.sender,
            "recipient": m.recipient,
            "date": m.date,
            "object": m.object,
            "id": m.id,
        }
        for m in messages
    ]
    return JSONResponse(
        {
            "data": data,
            "success": True,
            "message": "",
            "total": total,
            "page": page,
            "n_of_pages": math.ceil(total / size),
        }
    )


async def get_message(request: Request) -> Response:
    """GET /inbox/{id}: one message, its body x-www-form-urlencoded (as the spec says)."""
    mailbox = _login(request)
    if mailbox is None:
        return massiva_error(401, UNAUTHORIZED)
    inbox_id = _inbox_id(request.path_params["id"])
    message = None if inbox_id is None else mailbox.inbox.get(inbox_id)
    if message is None:
        return massiva_error(404, "Message not found")
    data = {
        "sender": message.sender,
        "recipient": message.recipient,
        "date": message.date,
        "object": message.object,
        "body": quote_plus(message.body),
    }
    return JSONResponse({"data": data, "success": True, "message": ""})


async def delete_message(request: Request) -> Response:
    """DELETE /inbox/{id}: always 200 -- the spec lists no 404, so deleting is idempotent."""
    mailbox = _login(request)
    if mailbox is None:
        return massiva_error(401, UNAUTHORIZED)
    inbox_id = _inbox_id(request.path_params["id"])
    if inbox_id is not None:
        mailbox.inbox.pop(inbox_id, None)
    return JSONResponse({"success": True, "message": "Message deleted"})


def _of_sending(mailbox: Mailbox, code: str) -> list[InboxMessage]:
    """The messages whose subject ends with the sending's code, oldest first."""
    return [m for m in mailbox.inbox.values() if m.object.endswith(f" {code}")]


def _status_item(message: InboxMessage, fields: str) -> dict[str, Any]:
    if fields == "live":
        # What a public client reports the live API answers.
        return {
            "sender": message.sender,
            "recipient": message.recipient,
            "date": message.date,
            "subject": message.object,
            "body": message.body,
        }
    return {
        "sender": message.sender,
        "recipient": message.recipient,
        "data": message.date,
        "object": message.object,
        "message": message.body,
    }


async def sending_status(request: Request) -> Response:
    """GET /send/{code}: every message of one sending in the sender's inbox."""
    mailbox = _login(request)
    if mailbox is None:
        return massiva_error(401, UNAUTHORIZED)
    messages = _of_sending(mailbox, request.path_params["code"])
    if not messages:
        return massiva_error(404, "Result empty")
    fields = simulator_of(request).settings.send_status_fields
    data = [_status_item(message, fields) for message in messages]
    return JSONResponse({"data": data, "success": True, "message": ""})


async def delete_sending(request: Request) -> Response:
    """DELETE /send/{code}: remove a sending's messages from the inbox."""
    mailbox = _login(request)
    if mailbox is None:
        return massiva_error(401, UNAUTHORIZED)
    messages = _of_sending(mailbox, request.path_params["code"])
    if not messages:
        return massiva_error(404, "Email not found")
    for message in messages:
        del mailbox.inbox[message.id]
    return JSONResponse({"success": True, "message": "Operation succefull"})  # sic, the spec


async def quota(request: Request) -> Response:
    """GET /quota/{mailbox}: usage and limit of INBOX, in KiB (the spec says "megabyte",
    but its example, limit 1048576 and usage 171012, only makes sense as KiB of a 1 GiB
    box). The usage is what the inbox weighs now: it grows with the receipts and shrinks
    when they are deleted."""
    mailbox = _login(request)
    if mailbox is None:
        return massiva_error(401, UNAUTHORIZED)
    if request.path_params["mailbox"].lower() != "inbox":
        return massiva_error(400, "An error occured: the requested mailbox might be unavailable")
    usage = math.ceil(mailbox.usage_bytes / 1024)
    data = {"usage": usage, "limit": simulator_of(request).settings.quota_limit_kib}
    return JSONResponse({"data": data, "success": True, "message": ""})
