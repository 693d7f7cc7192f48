"""Provisioning decisions: check, register, activate, wait, renew, revoke; own domains.

Everything that can be checked locally is checked before the first call, so a bad
applicant file or a wrong document costs no request. What the vendor answers is recorded
in SQLite (never a password), so ``massiva mailbox list`` can warn before a box expires.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence, Set
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from massiva.api import Domain, Mailbox, PecClient
from massiva.provisioning.documents import DocumentError, merge_pdfs, page_count, read_pdfs
from massiva.store import DomainRow, MailboxRow, Store
from massiva.times import utcnow

ACTIVE = "evasa"
#: States a box does not leave by waiting: the wait ends there, unsuccessfully.
FAILED_STATES = frozenset({"documenti_errati", "registrazione_annullata", "revocata", "chiusa"})
#: States of a box no longer in use: an address names the one box not in them.
GONE_STATES = frozenset({"registrazione_annullata", "revocata", "chiusa"})
#: Box types whose activation takes ONE PDF: the signed form + the identity document.
SINGLE_DOCUMENT_TYPES = frozenset({"PECMASSIVA", "DOMICILIODIGITALE"})
#: ``mailbox list`` warns when a box expires sooner than this.
EXPIRY_WARNING = timedelta(days=30)

Sleep = Callable[[float], Any]


class WaitFailed(Exception):
    """The box reached a state it will not leave by waiting."""

    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox
        hint = {
            "documenti_errati": "the documents were refused: upload them again with"
            f" `massiva mailbox activate {mailbox.id} FORM.pdf ID.pdf`",
            "registrazione_annullata": "the registration was cancelled: register again",
        }.get(mailbox.state, "it cannot become active any more")
        super().__init__(f"{mailbox.address} is {mailbox.state}: {hint}")


class WaitTimedOut(Exception):
    """The box was still not active when the wait ran out of time."""


class NotKnown(LookupError):
    """No box (or domain) has the address (or name) given, or several in use have it."""


def _only(found: Sequence[tuple[str, str]], given: str, what: str, gone: Set[str]) -> str:
    """The one id among ``found`` (id, state) pairs: the only one, or the only one not
    in a ``gone`` state; NotKnown otherwise. ``what`` is "mailbox" or "domain"."""
    ids = {i for i, _ in found}
    live = {i for i, state in found if state not in gone}
    if len(ids) == 1 or len(live) == 1:
        return (ids if len(ids) == 1 else live).pop()
    if not ids:
        raise NotKnown(
            f"no {what} {given} on this account: `massiva {what} list` shows them with their ids"
        )
    raise NotKnown(
        f"{given} names more than one {what} ({', '.join(sorted(ids))}): give the id of the"
        " one you mean"
    )


def expires_soon(expires: date | None, today: date) -> bool:
    """True if a box expiring on ``expires`` needs renewing within 30 days."""
    return expires is not None and expires - today < EXPIRY_WARNING


class Provisioner:
    """Provisioning on a :class:`PecClient`, remembered in a :class:`Store`."""

    def __init__(self, pec: PecClient, store: Store) -> None:
        self.pec = pec
        self.store = store

    async def _remember(self, *boxes: Mailbox) -> None:
        now = utcnow()
        await self.store.provisioning.save_mailboxes(
            MailboxRow(b.id, b.address, b.box_type, b.state, b.expires, now) for b in boxes
        )

    async def _remember_domains(self, *domains: Domain) -> None:
        now = utcnow()
        await self.store.provisioning.save_domains(
            DomainRow(d.id, d.domain, d.provider, d.state, d.expires, now) for d in domains
        )

    # -- mailboxes ---------------------------------------------------------------------

    async def register(self, applicant: Mapping[str, Any]) -> Mailbox:
        """Register a box; ``applicant`` is the output of
        :func:`~massiva.provisioning.applicant.validate_applicant`, so that every problem
        is found before any request."""
        box = await self.pec.register_mailbox(applicant)
        await self._remember(box)
        return box

    async def activate(self, mailbox_id: str, files: Sequence[Path]) -> Mailbox:
        """Upload the signed form and the identity document.

        Every file is checked first (DocumentError names each bad one). For PECMASSIVA and
        DOMICILIODIGITALE boxes the files are merged into the single PDF the vendor wants.
        """
        documents = read_pdfs(files)  # every file checked before any request
        box = await self.pec.get_mailbox(mailbox_id)
        if box.box_type in SINGLE_DOCUMENT_TYPES:
            merged = merge_pdfs(files)
            if page_count(merged) < 2:
                raise DocumentError(
                    [
                        f"a {box.box_type} box needs the signed activation form AND the"
                        " identity document; these files hold a single page: add the"
                        " identity document"
                    ]
                )
            documents = [merged]
        box = await self.pec.activate_mailbox(mailbox_id, documents)
        await self._remember(box)
        return box

    async def status(self, mailbox_id: str) -> Mailbox:
        """The box as the vendor sees it now."""
        box = await self.pec.get_mailbox(mailbox_id)
        await self._remember(box)
        return box

    async def wait(
        self,
        mailbox_id: str,
        *,
        patience: float,
        interval: float = 10.0,
        max_interval: float = 300.0,
        on_poll: Callable[[Mailbox, float], None] = lambda box, elapsed: None,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> Mailbox:
        """Poll the box, backing off from ``interval`` to ``max_interval`` seconds, until it
        is active; raise WaitFailed on a failure state, WaitTimedOut when it is still not
        active at the last poll, made ``patience`` seconds after the first (the wait lasts
        its whole patience: the pause before the last poll is cut short, never skipped)."""
        started = clock()
        delay = interval
        while True:
            box = await self.status(mailbox_id)
            elapsed = clock() - started
            on_poll(box, elapsed)
            if box.state == ACTIVE:
                return box
            if box.state in FAILED_STATES:
                raise WaitFailed(box)
            left = patience - elapsed
            if left <= 0:
                raise WaitTimedOut(
                    f"{box.address} is still {box.state} after {elapsed:.0f} s; the vendor"
                    f" usually activates within a working day: run `massiva mailbox wait"
                    f" {box.address}` again later"
                )
            await sleep(min(delay, left))
            delay = min(delay * 1.5, max_interval)

    async def box_id(self, box: str) -> str:
        """The id of ``box``: an id as given, or an address (it has an ``@``) looked up
        among the boxes this database knows (registered here, or seen by ``mailbox
        list``), else in the vendor's list. Raises NotKnown when no box, or more than one
        still in use, has that address."""
        if "@" not in box:
            return box
        address = box.lower()
        rows = await self.store.provisioning.mailboxes()
        known = [(r.id, r.state) for r in rows if r.address.lower() == address]
        if not known:
            boxes = await self.mailboxes()
            known = [(b.id, b.state) for b in boxes if b.address.lower() == address]
        return _only(known, box, "mailbox", GONE_STATES)

    async def domain_id(self, domain: str) -> str:
        """The id of ``domain``: an id as given, or a domain name (it has a dot) looked up
        in the vendor's list. Raises NotKnown as :meth:`box_id` does."""
        if "." not in domain:
            return domain
        name = domain.lower().rstrip(".")
        known = [(d.id, d.state) for d in await self.domains() if d.domain.lower() == name]
        return _only(known, domain, "domain", {"revocato"})

    async def mailboxes(self) -> list[Mailbox]:
        """Every box of the account, from the vendor (and remembered)."""
        boxes = await self.pec.list_mailboxes()
        await self._remember(*boxes)
        return sorted(boxes, key=lambda b: (b.address, b.id))

    async def renew(self, mailbox_id: str, years: int) -> Mailbox:
        """Renew a box for ``years`` (charged by the vendor)."""
        box = await self.pec.renew_mailbox(mailbox_id, years)
        await self._remember(box)
        return box

    async def revoke(self, mailbox_id: str) -> Mailbox:
        """Revoke an active box."""
        box = await self.pec.revoke_mailbox(mailbox_id)
        await self._remember(box)
        return box

    # -- own domains -------------------------------------------------------------------

    async def add_domain(self, domain: str, provider: str, years: int, mailboxes: int) -> Domain:
        """Order the certification of an own domain."""
        found = await self.pec.register_domain(domain, provider, years=years, mailboxes=mailboxes)
        await self._remember_domains(found)
        return found

    async def domains(self) -> list[Domain]:
        """Every own domain of the account."""
        found = await self.pec.list_domains()
        await self._remember_domains(*found)
        return sorted(found, key=lambda d: (d.domain, d.id))

    async def domain(self, domain_id: str) -> Domain:
        """One own domain, as the vendor sees it now."""
        found = await self.pec.get_domain(domain_id)
        await self._remember_domains(found)
        return found

    async def renew_domain(self, domain_id: str, years: int) -> Domain:
        """Renew an own domain for ``years`` (charged by the vendor)."""
        found = await self.pec.renew_domain(domain_id, years)
        await self._remember_domains(found)
        return found

    async def revoke_domain(self, domain_id: str) -> Domain:
        """Revoke an own domain and its boxes."""
        found = await self.pec.revoke_domain(domain_id)
        await self._remember_domains(found)
        return found
