"""Client of the PEC Massiva API (``ws.pecmassiva.com``): send, receipts, inbox, quota.

The mailbox's credentials travel in the JSON body for ``POST /send`` and as the headers
``x-username``/``x-password`` everywhere else, as the vendor specifies.
``POST /send`` is never repeated once it may have left: see
:class:`~massiva.api.errors.OutcomeUnknown`.

Every answer is validated (:mod:`massiva.api.models`) before it is returned: one that is
not what the API documents raises :class:`~massiva.api.errors.BadAnswer`, naming the
endpoint, or for ``POST /send`` :class:`~massiva.api.errors.OutcomeUnknown`.
"""

from __future__ import annotations

import json as jsonlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from massiva.api.errors import NotFound
from massiva.api.models import Attachment, InboxMessage, InboxPage, Quota, Receipts, SendResult
from massiva.api.session import ApiSession, Repeat, segment
from massiva.api.vendor_clock import VendorClock

log = logging.getLogger("massiva.api")

T = TypeVar("T")


class PecMassivaClient:
    """Async client of one PECMASSIVA mailbox.

    ``session`` is an :class:`~massiva.api.session.ApiSession` on the sending base URL;
    the client registers ``password`` with it so that it is redacted from every error.
    The session belongs to the caller, who closes it.
    """

    def __init__(self, session: ApiSession, username: str, password: str) -> None:
        self._session = session
        self.username = username
        self._password = password
        session.add_secret(password)

    @property
    def vendor_clock(self) -> VendorClock:
        """The vendor's clock, as its answers to this client's session tell it."""
        return self._session.vendor_clock

    def _headers(self) -> dict[str, str]:
        return {"x-username": self.username, "x-password": self._password}

    async def _get(
        self, path: str, parse: Callable[[Any], T], params: Mapping[str, Any] | None = None
    ) -> T:
        return await self._session.call(
            "GET", path, parse, repeat=Repeat.ALWAYS, params=params, headers=self._headers()
        )

    async def send(
        self,
        recipient: str | Sequence[str],
        subject: str,
        body: str,
        *,
        attachments: Sequence[Attachment] = (),
        sender: str | None = None,
    ) -> SendResult:
        """``POST /send``: one certified message to one recipient (or to several, who
        then all see each other's address).

        Repeated only when the connection could not even be made; any later failure
        raises :class:`~massiva.api.errors.OutcomeUnknown`. So does a 201 whose body
        cannot be read (not JSON, not an object, no ``message_id`` of digits) and a
        redirect: the vendor said "created", or nothing says it did not, so the message
        may have gone; look for its receipts (the sender marks it unknown and searches
        the inbox) rather than post it again.
        """
        fields = {
            "sender": sender or self.username,
            "recipient": recipient if isinstance(recipient, str) else list(recipient),
            "subject": subject,
            "body": body,
            "username": self.username,
            "password": self._password,
        }
        return await self._session.call(
            "POST",
            "/send",
            SendResult.parse,
            repeat=Repeat.IF_NOT_SENT,
            json_parts=_send_body(fields, attachments),
        )

    async def send_status(self, code: str) -> list[InboxMessage]:
        """``GET /send/{code}``: the receipts of one sending so far.

        The vendor answers 404 "Result empty" while there are none: that is an empty list.
        An entry that is not what the API documents is left out, with a warning.
        """
        try:
            receipts = await self._get(f"/send/{segment(code)}", Receipts.parse)
        except NotFound:
            return []
        for reason in receipts.skipped:
            log.warning("GET /send/%s: an entry was left out: %s", segment(code), reason)
        return receipts.messages

    async def delete_send(self, code: str) -> None:
        """``DELETE /send/{code}``: remove a sending's receipts from the mailbox."""
        await self._session.request(
            "DELETE", f"/send/{segment(code)}", repeat=Repeat.IF_NOT_SENT, headers=self._headers()
        )

    async def inbox(self, page: int = 1, q: str | None = None) -> InboxPage:
        """``GET /inbox``: one page of up to 25 messages, optionally searched with ``q``.

        Entries that are not what the API documents are left out and listed in
        :attr:`~massiva.api.models.InboxPage.skipped`, for the caller to log.
        """
        params: dict[str, Any] = {"page": page}
        if q:
            params["q"] = q
        return await self._get("/inbox", InboxPage.parse, params)

    async def message(self, message_id: int) -> InboxMessage:
        """``GET /inbox/{id}``: one message with its decoded body."""
        return await self._get(f"/inbox/{segment(message_id)}", InboxMessage.parse_answer)

    async def delete_message(self, message_id: int) -> None:
        """``DELETE /inbox/{id}``: remove one message from the mailbox."""
        await self._session.request(
            "DELETE", f"/inbox/{segment(message_id)}", repeat=Repeat.ALWAYS, headers=self._headers()
        )

    async def quota(self, mailbox: str = "INBOX") -> Quota:
        """``GET /quota/{mailbox}``: storage used and available."""
        return await self._get(f"/quota/{segment(mailbox)}", Quota.parse_answer)


def _send_body(fields: dict[str, Any], attachments: Sequence[Attachment]) -> list[bytes]:
    """The JSON body of ``POST /send`` in parts: ``fields``, then ``attachments`` as the
    list of their own JSON objects, whose encoded pieces are referred to, not copied."""
    encoded = jsonlib.dumps(
        fields, ensure_ascii=False, separators=(",", ":"), allow_nan=False
    ).encode("utf-8")
    if not attachments:
        return [encoded]
    parts = [encoded[:-1], b',"attachments":[']  # the object's closing brace comes last
    for n, attachment in enumerate(attachments):
        if n:
            parts.append(b",")
        parts.extend(attachment.json_parts())
    parts.append(b"]}")
    return parts
