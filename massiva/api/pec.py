"""Client of the PEC API (``pec.openapi.it``): mailboxes, own domains, forms, and the
communication of an address to the business register.

Every path of the vendor's ``pec.openapi.json``, plus ``GET /pec?skip&limit`` and the
``/dominio`` endpoints of the vendor's product page. Renewals and the domain check are
GETs that the vendor charges for (the spec lists 402 "Insufficient Credit in Wallet" for
``GET /domini_pec/{dominio}``), so they are repeated only when they certainly never left,
like every call that changes something.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

from massiva.api.errors import NotFound
from massiva.api.models import Communication, Domain, Mailbox, Malformed
from massiva.api.session import ApiSession, Repeat, json_body, segment, unreadable

Json = dict[str, Any]


def _documents(files: Sequence[bytes]) -> str | list[str]:
    """The ``documenti`` field: one base64 string, or a list of them."""
    encoded = [base64.b64encode(f).decode("ascii") for f in files]
    return encoded[0] if len(encoded) == 1 else encoded


class PecClient:
    """Async client of the PEC provisioning API on an :class:`ApiSession`.

    The session belongs to the caller, who closes it.
    """

    def __init__(self, session: ApiSession) -> None:
        self._session = session

    async def _call(
        self,
        method: str,
        path: str,
        *,
        repeat: Repeat = Repeat.IF_NOT_SENT,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        response = await self._session.request(
            method, path, repeat=repeat, params=params, json=json
        )
        if response.status_code == 204 or not response.content:
            return None
        try:
            return json_body(response)
        except Malformed as exc:  # a read: BadAnswer; a change: its outcome is unknown
            raise unreadable(
                str(exc), method=method, path=path, repeat=repeat, status=response.status_code
            ) from None

    async def _data(self, method: str, path: str, **kw: Any) -> Json:
        body = await self._call(method, path, **kw)
        data = body.get("data") if isinstance(body, Mapping) else None
        return dict(data) if isinstance(data, Mapping) else {}

    async def _list(self, path: str, params: Mapping[str, Any] | None = None) -> list[Json]:
        """A list endpoint; the vendor answers 404 when the list is empty."""
        try:
            body = await self._call("GET", path, repeat=Repeat.ALWAYS, params=params)
        except NotFound:
            return []
        data = body.get("data") if isinstance(body, Mapping) else None
        return [dict(d) for d in data or () if isinstance(d, Mapping)]

    async def _download(self, path: str) -> bytes:
        response = await self._session.request("GET", path, repeat=Repeat.ALWAYS)
        return response.content

    # -- checks ------------------------------------------------------------------------

    async def domain_accepts_pec(self, domain: str) -> bool:
        """``GET /domini_pec/{dominio}``: can this domain send or receive PEC?

        Charged (the spec lists 402 for it): never repeated blindly.
        """
        body = await self._call("GET", f"/domini_pec/{segment(domain)}")
        return body is not None  # 204 No Content: not a PEC domain

    async def is_available(self, address: str) -> bool:
        """``GET /verifica_pec/{pec}``: is this address free to register?"""
        data = await self._data("GET", f"/verifica_pec/{segment(address)}", repeat=Repeat.ALWAYS)
        return bool(data.get("available"))

    # -- mailboxes ---------------------------------------------------------------------

    async def list_mailboxes(self, skip: int = 0, limit: int = 100) -> list[Mailbox]:
        """``GET /pec?skip&limit``: the account's mailboxes (empty list when none)."""
        rows = await self._list("/pec", {"skip": skip, "limit": limit})
        return [Mailbox.parse(r) for r in rows]

    async def register_mailbox(self, applicant: Mapping[str, Any]) -> Mailbox:
        """``POST /pec``: register a mailbox; ``applicant`` is the ``BodyPostPec`` object."""
        return Mailbox.parse(await self._data("POST", "/pec", json=dict(applicant)))

    async def get_mailbox(self, mailbox_id: str) -> Mailbox:
        """``GET /pec/{id}``."""
        return Mailbox.parse(
            await self._data("GET", f"/pec/{segment(mailbox_id)}", repeat=Repeat.ALWAYS)
        )

    async def revoke_mailbox(self, mailbox_id: str) -> Mailbox:
        """``DELETE /pec/{id}``: revoke an active mailbox."""
        return Mailbox.parse(await self._data("DELETE", f"/pec/{segment(mailbox_id)}"))

    async def activation_form(self, mailbox_id: str) -> bytes:
        """``GET /pec/{id}/modulo_attivazione``: the activation form to sign (PDF)."""
        return await self._download(f"/pec/{segment(mailbox_id)}/modulo_attivazione")

    async def activate_mailbox(self, mailbox_id: str, documents: Sequence[bytes]) -> Mailbox:
        """``PATCH /pec/{id}/attivazione``: upload the signed form and identity document.

        PECMASSIVA and DOMICILIODIGITALE boxes take ONE PDF holding both.
        """
        return Mailbox.parse(
            await self._data(
                "PATCH",
                f"/pec/{segment(mailbox_id)}/attivazione",
                json={"documenti": _documents(documents)},
            )
        )

    async def renew_mailbox(self, mailbox_id: str, years: int = 1) -> Mailbox:
        """``GET /pec/{id}/rinnovo?anni=N``: renew (charged; never repeated blindly)."""
        return Mailbox.parse(
            await self._data("GET", f"/pec/{segment(mailbox_id)}/rinnovo", params={"anni": years})
        )

    async def change_space(
        self,
        mailbox_id: str,
        *,
        disk: int | str | None = None,
        archive: int | str | None = None,
    ) -> Mailbox:
        """``PATCH /pec/{id}/modifica``: set (``1024``) or add (``"+1024"``) space, in MB.

        Refused for PECMASSIVA boxes.
        """
        body: Json = {}
        if disk is not None:
            body["spazio_disco"] = disk
        if archive is not None:
            body["spazio_storico"] = archive
        return Mailbox.parse(
            await self._data("PATCH", f"/pec/{segment(mailbox_id)}/modifica", json=body)
        )

    async def conservation_form(self, mailbox_id: str) -> bytes:
        """``GET /pec/{id}/modulo_conservazione``: the legal-storage form (PDF)."""
        return await self._download(f"/pec/{segment(mailbox_id)}/modulo_conservazione")

    async def activate_conservation(
        self, mailbox_id: str, documents: Sequence[bytes], space: int | None = None
    ) -> Mailbox:
        """``PATCH /pec/{id}/conservazione``: legal storage. Refused for PECMASSIVA boxes."""
        body: Json = {"documenti": _documents(documents)}
        if space is not None:
            body["spazio_conservazione"] = space
        return Mailbox.parse(
            await self._data("PATCH", f"/pec/{segment(mailbox_id)}/conservazione", json=body)
        )

    async def change_type(self, mailbox_id: str, box_type: str) -> Mailbox:
        """``PATCH /pec/{id}/trasformazione``: upgrade the box type. Refused for PECMASSIVA."""
        return Mailbox.parse(
            await self._data(
                "PATCH",
                f"/pec/{segment(mailbox_id)}/trasformazione",
                json={"tipo_casella": box_type},
            )
        )

    async def add_user(self, mailbox_id: str, user: Mapping[str, Any]) -> Mailbox:
        """``POST /pec/{id}/multiutenza``: add a user. Refused for PECMASSIVA boxes."""
        return Mailbox.parse(
            await self._data("POST", f"/pec/{segment(mailbox_id)}/multiutenza", json=dict(user))
        )

    # -- business register -------------------------------------------------------------

    async def list_communications(self) -> list[Communication]:
        """``GET /comunica_pec``: communications to the business register (empty when none)."""
        return [Communication.parse(r) for r in await self._list("/comunica_pec")]

    async def communicate(self, request: Mapping[str, Any]) -> Communication:
        """``POST /comunica_pec``: communicate an address to the business register."""
        return Communication.parse(await self._data("POST", "/comunica_pec", json=dict(request)))

    async def get_communication(self, communication_id: str) -> Communication:
        """``GET /comunica_pec/{id}``."""
        return Communication.parse(
            await self._data(
                "GET", f"/comunica_pec/{segment(communication_id)}", repeat=Repeat.ALWAYS
            )
        )

    async def power_of_attorney(self, communication_id: str) -> bytes:
        """``GET /comunica_pec/{id}/procura_registro_imprese``: the form to sign (PDF)."""
        return await self._download(
            f"/comunica_pec/{segment(communication_id)}/procura_registro_imprese"
        )

    async def upload_communication_documents(
        self, communication_id: str, documents: Sequence[bytes]
    ) -> Communication:
        """``PATCH /comunica_pec/{id}``: upload the signed (p7m) power of attorney."""
        return Communication.parse(
            await self._data(
                "PATCH",
                f"/comunica_pec/{segment(communication_id)}",
                json={"documenti": _documents(documents)},
            )
        )

    # -- own certified domains ---------------------------------------------------------

    async def list_domains(self) -> list[Domain]:
        """``GET /dominio``: the account's own certified domains."""
        return [Domain.parse(r) for r in await self._list("/dominio")]

    async def register_domain(
        self, domain: str, provider: str, *, years: int = 1, mailboxes: int = 1
    ) -> Domain:
        """``POST /dominio``: certify an own domain with ``infocert`` or ``namirial``."""
        body = {"dominio": domain, "fornitore": provider, "anni": years, "numero_pec": mailboxes}
        return Domain.parse(await self._data("POST", "/dominio", json=body))

    async def get_domain(self, domain_id: str) -> Domain:
        """``GET /dominio/{id}``."""
        return Domain.parse(
            await self._data("GET", f"/dominio/{segment(domain_id)}", repeat=Repeat.ALWAYS)
        )

    async def revoke_domain(self, domain_id: str) -> Domain:
        """``DELETE /dominio/{id}``: revoke the domain and its mailboxes."""
        return Domain.parse(await self._data("DELETE", f"/dominio/{segment(domain_id)}"))

    async def renew_domain(self, domain_id: str, years: int = 1) -> Domain:
        """``GET /dominio/{id}/rinnovo?anni=N``: renew (charged; never repeated blindly)."""
        return Domain.parse(
            await self._data(
                "GET", f"/dominio/{segment(domain_id)}/rinnovo", params={"anni": years}
            )
        )
