"""Client of the PEC Massiva API (``ws.pecmassiva.com``): send, receipts, inbox, quota.

The mailbox's credentials travel in the JSON body for ``POST /send`` and as the headers
``x-username``/``x-password`` everywhere else, as the vendor specifies.
``POST /send`` is never repeated once it may have left: see
:class:`~massiva.api.errors.OutcomeUnknown`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from massiva.api.errors import NotFound
from massiva.api.models import Attachment, InboxMessage, InboxPage, Quota, SendResult
from massiva.api.session import ApiSession, Repeat, segment


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

    def _headers(self) -> dict[str, str]:
        return {"x-username": self.username, "x-password": self._password}

    async def _get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        response = await self._session.request(
            "GET", path, repeat=Repeat.ALWAYS, params=params, headers=self._headers()
        )
        return response.json()

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
        raises :class:`~massiva.api.errors.OutcomeUnknown`.
        """
        payload: dict[str, Any] = {
            "sender": sender or self.username,
            "recipient": recipient if isinstance(recipient, str) else list(recipient),
            "subject": subject,
            "body": body,
            "username": self.username,
            "password": self._password,
        }
        if attachments:
            payload["attachments"] = [a.as_json() for a in attachments]
        response = await self._session.request(
            "POST", "/send", repeat=Repeat.IF_NOT_SENT, json=payload
        )
        return SendResult.parse(response.json())

    async def send_status(self, code: str) -> list[InboxMessage]:
        """``GET /send/{code}``: the receipts of one sending so far.

        The vendor answers 404 "Result empty" while there are none: that is an empty list.
        """
        try:
            body = await self._get_json(f"/send/{segment(code)}")
        except NotFound:
            return []
        data = body.get("data") if isinstance(body, Mapping) else None
        return [InboxMessage.parse(d) for d in data or () if isinstance(d, Mapping)]

    async def delete_send(self, code: str) -> None:
        """``DELETE /send/{code}``: remove a sending's receipts from the mailbox."""
        await self._session.request(
            "DELETE", f"/send/{segment(code)}", repeat=Repeat.IF_NOT_SENT, headers=self._headers()
        )

    async def inbox(self, page: int = 1, q: str | None = None) -> InboxPage:
        """``GET /inbox``: one page of up to 25 messages, optionally searched with ``q``."""
        params: dict[str, Any] = {"page": page}
        if q:
            params["q"] = q
        return InboxPage.parse(await self._get_json("/inbox", params))

    async def message(self, message_id: int) -> InboxMessage:
        """``GET /inbox/{id}``: one message with its decoded body."""
        body = await self._get_json(f"/inbox/{segment(message_id)}")
        data = body.get("data") if isinstance(body, Mapping) else None
        return InboxMessage.parse(data if isinstance(data, Mapping) else {})

    async def delete_message(self, message_id: int) -> None:
        """``DELETE /inbox/{id}``: remove one message from the mailbox."""
        await self._session.request(
            "DELETE", f"/inbox/{segment(message_id)}", repeat=Repeat.ALWAYS, headers=self._headers()
        )

    async def quota(self, mailbox: str = "INBOX") -> Quota:
        """``GET /quota/{mailbox}``: storage used and available."""
        body = await self._get_json(f"/quota/{segment(mailbox)}")
        data = body.get("data") if isinstance(body, Mapping) else None
        return Quota.parse(data if isinstance(data, Mapping) else {})
