"""PEC Massiva API: ``POST /send`` -- validation, pacing, allowances, recording."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from massiva.simulator.clock import rome_day, seconds_until_next_day, seconds_until_next_month
from massiva.simulator.models import Mailbox, SendRecord
from massiva.simulator.receipts import schedule_receipts
from massiva.simulator.responses import (
    BAD_PARAMETER,
    UNAUTHORIZED,
    massiva_error,
    read_json,
    simulator_of,
)
from massiva.simulator.validation import decode_base64, is_email

if TYPE_CHECKING:
    from massiva.simulator.state import Simulator


@dataclass(frozen=True)
class Outgoing:
    """A valid POST /send body, minus the credentials."""

    recipients: tuple[str, ...]
    subject: str
    body: str
    attachments: tuple[tuple[str, int], ...]


def _text(payload: dict[str, Any], field: str) -> str | None:
    value = payload.get(field)
    return value if isinstance(value, str) and value.strip() else None


def parse_send(payload: dict[str, Any], max_bytes: int) -> Outgoing | str:
    """The message in a POST /send body, or the name of the first invalid parameter."""
    subject, body = _text(payload, "subject"), _text(payload, "body")
    if subject is None:
        return "subject"
    if body is None:
        return "body"
    if payload.get("sender") is not None and not isinstance(payload["sender"], str):
        return "sender"
    raw = payload.get("recipient")
    listed = [raw] if isinstance(raw, str) else raw
    if not isinstance(listed, list) or not listed:
        return "recipient"
    recipients: dict[str, str] = {}  # lower-cased -> as given: one copy per address
    for address in listed:
        if not isinstance(address, str) or not is_email(address.strip()):
            return "recipient"
        recipients.setdefault(address.strip().lower(), address.strip())
    files = payload.get("attachments")
    # The spec's RequestSend types `attachments` as ONE Attachment object; its own example,
    # the vendor's pages and real clients send an array: take both.
    items = [] if files is None else [files] if isinstance(files, dict) else files
    if not isinstance(items, list):
        return "attachments"
    attachments = []
    for item in items:
        name = item.get("name") if isinstance(item, dict) else None
        content = item.get("file") if isinstance(item, dict) else None
        data = decode_base64(content) if isinstance(content, str) else None
        if not isinstance(name, str) or not name.strip() or data is None:
            return "attachments"
        attachments.append((name, len(data)))
    size = len(subject.encode()) + len(body.encode()) + sum(n for _, n in attachments)
    if size > max_bytes:
        return f"message larger than {max_bytes} bytes"
    return Outgoing(tuple(recipients.values()), subject, body, tuple(attachments))


def _pace(sim: Simulator, mailbox: Mailbox) -> JSONResponse | None:
    """429 if this mailbox posted less than one interval ago, in real (monotonic) time.

    The vendor paces requests as they reach it, whatever the simulated clock says.
    Only requests let through move the window: a refused one does not delay the next.
    """
    rate = sim.settings.send_rate
    if rate is None:
        return None
    now = time.monotonic()
    if mailbox.last_send is not None:
        elapsed = now - mailbox.last_send
        if elapsed < (1 - sim.settings.send_rate_tolerance) / rate:
            retry = str(max(1, math.ceil(1 / rate - elapsed)))
            message = f"Too many requests: max {rate:g} request/second"
            return massiva_error(429, message, {"Retry-After": retry})
    mailbox.last_send = now
    return None


def _allowance(sim: Simulator, mailbox: Mailbox, count: int, now: datetime) -> JSONResponse | None:
    """Refuse a send whose recipients would overrun the Rome day's or month's allowance.

    No source documents the vendor's answer: status ``allowance_status`` (429) with a
    ``Retry-After`` up to the moment the allowance renews.
    """
    settings = sim.settings
    day = rome_day(now)
    daily, monthly = settings.daily_limit, settings.monthly_limit
    if daily is not None and mailbox.day_counts.get(day, 0) + count > daily:
        message = f"Daily sending limit reached: {daily} recipients per day"
        retry = seconds_until_next_day(now)
    elif (
        monthly is not None and mailbox.month_counts.get((day.year, day.month), 0) + count > monthly
    ):
        message = f"Monthly sending limit reached: {monthly} recipients per month"
        retry = seconds_until_next_month(now)
    else:
        return None
    return massiva_error(settings.allowance_status, message, {"Retry-After": str(retry)})


def record_send(sim: Simulator, mailbox: Mailbox, outgoing: Outgoing, now: datetime) -> SendRecord:
    """Record an accepted sending: count it, schedule its receipts, file the acceptance."""
    send = SendRecord(
        message_id=sim.new_message_id(now),
        mailbox=mailbox.address,
        recipients=outgoing.recipients,
        subject=outgoing.subject,
        body=outgoing.body,
        at=now,
        attachments=outgoing.attachments,
    )
    sim.sends.append(send)
    day = rome_day(now)
    count = len(send.recipients)
    mailbox.day_counts[day] = mailbox.day_counts.get(day, 0) + count
    month = (day.year, day.month)
    mailbox.month_counts[month] = mailbox.month_counts.get(month, 0) + count
    schedule_receipts(sim, send)
    sim.catch_up()  # the ACCETTAZIONE is due now: file it before answering
    return send


async def post_send(request: Request) -> Response:
    """POST /send: credentials in the body; 201 with the vendor's message id."""
    sim = simulator_of(request)
    payload = await read_json(request)
    if not isinstance(payload, dict):
        return massiva_error(400, BAD_PARAMETER)
    mailbox = sim.login(payload.get("username"), payload.get("password"))
    if mailbox is None:
        return massiva_error(401, UNAUTHORIZED)
    refused = _pace(sim, mailbox)
    if refused is not None:
        return refused
    outgoing = parse_send(payload, sim.settings.max_message_bytes)
    if isinstance(outgoing, str):
        return massiva_error(400, f"{BAD_PARAMETER}: {outgoing}")
    now = sim.clock.now()
    refused = _allowance(sim, mailbox, len(outgoing.recipients), now)
    if refused is not None:
        return refused
    send = record_send(sim, mailbox, outgoing, now)
    body = {
        "success": True,
        "sent": len(send.recipients),
        "message": "",
        "message_id": send.message_id,
    }
    return JSONResponse(body, 201)
