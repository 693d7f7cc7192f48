"""Freeing a sending mailbox of the receipts the database keeps, and telling how full it is.

Full delivery receipts carry the message sent, attachments included, so a 1 GB
PECMASSIVA box fills up in days at Flat volumes, and a full box refuses mail. With
``purge_archived = true`` for a mailbox in ``massiva.toml`` (off by default), each
``massiva reconcile`` frees it of the sendings it need not hold any longer, with
``DELETE /send/{code}``: a sending whose recipient is in a final state (delivered,
failed: no receipt moves it again) and every one of whose trusted messages (those that
name its message id: what the DELETE removes) is kept in the database with its body, the
body's SHA-256 recomputed here and equal to the one recorded when it was fetched. The
reconcile keeps the final receipts' bodies; the others (the acceptance, a 12-hour notice)
are fetched and kept here first. A recipient still awaiting a receipt (sent, accepted,
expired) is never purged; a body that cannot be fetched now waits for a later run; a kept
body that no longer matches its hash is never purged, and said. The database then holds
the only copy of those receipts: back it up.

Order, for crash safety. The bodies are committed by the reconcile before this runs, and
made durable (synced to disk, :meth:`~massiva.store.purge.PurgeQueries.make_durable`)
before the first ``DELETE``; ``recipient.purged_at`` is recorded only after the vendor
answered it. A crash before a ``DELETE`` leaves the receipts in the mailbox, and the next
run purges them; a crash after it, before ``purged_at`` is recorded, leaves them in the
database only, and the next run's ``DELETE`` gets 404 "Email not found", which means
done. They are never lost in both places.

Then ``GET /quota/INBOX`` tells how full the mailbox is; above :data:`NEARLY_FULL` of its
limit, a warning names the setting.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from massiva.api import ApiError, NotFound, PecMassivaClient, Quota
from massiva.store import Store
from massiva.store.purge import FinalSending, KeptReceipt
from massiva.times import utcnow

log = logging.getLogger("massiva.purge")

#: A mailbox using more than this share of its limit is nearly full: reconcile warns.
NEARLY_FULL = 0.8
#: Sendings checked, or ``DELETE /send/{code}`` requests, in flight.
IN_FLIGHT = 8
#: Sendings checked before their DELETEs (one sync to disk each batch).
BATCH = 250
#: Sendings purged by one run at most: a first run on a long history, and the cron runs
#: that start meanwhile, do not all work through it at once; the next runs go on.
PER_RUN = 1_000


@dataclass(frozen=True)
class Held:
    """A sending at its outcome whose receipts stay in the mailbox, and why."""

    address: str
    message_id: str
    why: str


@dataclass
class Purge:
    """What one purge of one mailbox did, and how full the mailbox is after it."""

    mailbox: str
    enabled: bool  # purge_archived
    purged: int = 0  # sendings freed in this run (a DELETE answered 200, or 404: gone)
    waiting: int = 0  # at their outcome, a receipt's body not kept yet: the next run
    held: list[Held] = field(default_factory=list)  # kept, but not as recorded: never purged
    postponed: bool = False  # the database could not be synced to disk: nothing deleted
    fetches: int = 0  # GET /inbox/{id} requests: bodies the reconcile does not keep
    deletes: int = 0  # DELETE /send/{code} requests
    quota: Quota | None = None  # after purging; None when it could not be read
    quota_error: str | None = None  # why it could not be read (the purge is done all the same)
    failure: ApiError | None = None  # the vendor's error that stopped it; the next run goes on

    @property
    def nearly_full(self) -> bool:
        """The mailbox uses more than :data:`NEARLY_FULL` of its limit."""
        return self.quota is not None and self.quota.fraction > NEARLY_FULL

    @property
    def warning(self) -> str | None:
        """What to do about a nearly full mailbox; None when it is not."""
        if not self.nearly_full or self.quota is None:
            return None
        full = (
            f"{self.mailbox} is {self.quota.fraction:.0%} full ({self.quota.usage:,.0f} of"
            f" {self.quota.limit:,.0f} KiB), and a full mailbox refuses mail"
        )
        if self.enabled:
            return (
                f"{full}; purge_archived is on: what fills it is not archived yet (recipients"
                " awaiting their outcome, receipts whose bodies are not kept yet) or is not"
                " massiva's"
            )
        return (
            f'{full}: set purge_archived = true under [mailboxes."{self.mailbox}"] in'
            " massiva.toml to free it of the receipts kept in the database (then back the"
            " database up: it holds their only copy)"
        )


def _unverified(receipts: Sequence[KeptReceipt]) -> tuple[bool, str] | None:
    """Why a sending's receipts may not leave the mailbox, with whether a later run may
    find them ready (True) or they need a person (False); None when they may."""
    if not any(r.final for r in receipts):
        return False, "no final receipt of it is kept"
    for r in receipts:
        if r.body is None:
            return True, f"the body of inbox {r.inbox_id} ({r.kind}) is not kept yet"
        if r.body_sha256 is None:
            return True, f"the SHA-256 of inbox {r.inbox_id} ({r.kind}) is not recorded yet"
        if hashlib.sha256(r.body.encode("utf-8")).hexdigest() != r.body_sha256:
            return False, (
                f"the kept body of inbox {r.inbox_id} ({r.kind}) no longer matches its"
                " SHA-256: the database was changed or damaged; restore it from a backup"
            )
    return None


class _Purger:
    """One purge of one mailbox: see the module's doc."""

    def __init__(self, store: Store, client: PecMassivaClient, result: Purge) -> None:
        self.store = store
        self.client = client
        self.result = result

    async def run(self) -> None:
        sendings = await self.store.purge.unpurged(self.result.mailbox)
        for start in range(0, len(sendings), BATCH):
            ready = await self._ready(sendings[start : start + BATCH])
            if not ready:
                continue
            if not await self.store.purge.make_durable():
                self.result.postponed = True
                return
            await _each(ready, self._free)
            if self.result.failure is not None or self.result.purged >= PER_RUN:
                return

    async def _ready(self, sendings: Sequence[FinalSending]) -> list[FinalSending]:
        """Those of ``sendings`` whose messages are all kept, verified."""
        ready: list[FinalSending] = []

        async def check(sending: FinalSending) -> None:
            if await self._archived(sending):
                ready.append(sending)

        await _each(sendings, check)
        return ready

    async def _archived(self, sending: FinalSending) -> bool:
        """Whether every message of ``sending`` is kept, verified. The reconcile keeps
        (and fetches again, a few times) the final receipts' bodies; once they are kept,
        the others (its acceptance, a 12-hour notice) are fetched and kept here, since
        the DELETE takes them too."""
        receipts = await self.store.purge.receipts(sending)
        missing = [r.inbox_id for r in receipts if r.body is None]
        if missing and not any(r.final and r.body is None for r in receipts):
            found = await self._bodies(missing)
            await self.store.receipts.keep_bodies(self.result.mailbox, found.items(), ())
            receipts = await self.store.purge.receipts(sending)  # as committed
        why = _unverified(receipts)
        if why is None:
            return True
        if why[0]:
            self.result.waiting += 1
        else:
            log.warning(
                "%s, message %s: not purged: %s", sending.address, sending.message_id, why[1]
            )
            self.result.held.append(Held(sending.address, sending.message_id, why[1]))
        return False

    async def _bodies(self, inbox_ids: Sequence[int]) -> dict[int, str]:
        """``GET /inbox/{id}`` of each: inbox id -> body, for those the vendor gave. A
        404 is not taken for "nothing left to keep": a vendor may be wrong, and the
        DELETE would take the message for good."""
        found = {}
        for inbox_id in inbox_ids:
            self.result.fetches += 1
            try:
                found[inbox_id] = (await self.client.message(inbox_id)).body
            except ApiError as exc:  # the sending waits for a run that can keep it
                log.warning("the body of message %s could not be fetched: %s", inbox_id, exc)
        return found

    async def _free(self, sending: FinalSending) -> None:
        if self.result.failure is not None:
            return  # the vendor failed another: stop here, the next run goes on
        self.result.deletes += 1
        try:
            await self.client.delete_send(sending.message_id)
        except NotFound:
            pass  # gone already: a run stopped after its DELETE, or deleted by hand
        except ApiError as exc:
            self.result.failure = self.result.failure or exc
            return
        await self.store.purge.purged(sending.recipient_id, utcnow())
        self.result.purged += 1


async def _each(
    items: Sequence[FinalSending], work: Callable[[FinalSending], Awaitable[None]]
) -> None:
    """``work`` on every item, :data:`IN_FLIGHT` at a time."""
    queue = iter(items)

    async def worker() -> None:
        for item in queue:
            await work(item)

    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))


async def purge(
    store: Store,
    client: PecMassivaClient,
    mailbox: str,
    *,
    enabled: bool,
) -> Purge:
    """Free ``mailbox`` (``client`` is its PEC Massiva client) of the sendings whose
    receipts the database keeps, verified, when ``enabled`` (its ``purge_archived``),
    then read its quota (see the module's doc). Run it after a reconcile of the mailbox:
    the receipts it reads are what that reconcile committed. A vendor's error stops the
    purge and is returned in :attr:`Purge.failure` (what was done is recorded); a quota
    that cannot be read is :attr:`Purge.quota_error`."""
    result = Purge(mailbox, enabled)
    if enabled:
        await _Purger(store, client, result).run()
    if result.failure is None:
        try:
            result.quota = await client.quota()
        except ApiError as exc:  # a figure to watch, not the run's work: said, not fatal
            result.quota_error = str(exc)
            log.warning("%s: the quota could not be read: %s", mailbox, exc)
    if result.warning is not None:
        log.warning("%s", result.warning)
    return result
