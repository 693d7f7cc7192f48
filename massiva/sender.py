"""The send loop: one ``POST /send`` per recipient, paced, within the allowances, and
never twice to the same recipient, whatever crashes.

Delivery semantics (docs/architecture.md; every move is one of :mod:`massiva.lifecycle`'s):

- A recipient is claimed (``sending``, its allowance counted) in one committed statement
  when its turn of the pace has come, just before its request leaves; the claim also
  proves this process holds the mailbox's lease, so two senders never share a mailbox.
  Right before the request leaves, the lease is proven again (:meth:`Lease.surely_held`):
  a sender frozen past its lease gives the claim back unposted.
- 201 -> ``sent``. 400 -> ``rejected`` (allowance given back). A 429, a 401 or a
  connection that was never made -> back to ``pending`` (allowance given back) and the
  run pauses or stops. A timeout, a 5xx or a dropped connection after the request left
  -> ``unknown``, settled by a search of the mailbox (:mod:`massiva.unknowns`) before
  the recipient can ever be posted again.
- A process killed between claim and answer leaves its ``sending`` row; the next sender
  to take the lease turns it ``unknown`` first.
- Requests overlap (up to ``in_flight``) so that a slow answer does not slow the pace;
  the pace itself is one :class:`Pacer` per mailbox, which sleeps until the next slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from massiva.api import (
    ApiError,
    Attachment,
    InvalidRequest,
    OutcomeUnknown,
    PecMassivaClient,
    RateLimited,
    SendResult,
)
from massiva.archive import Archive
from massiva.campaign import (
    CampaignError,
    CampaignSpec,
    Renderer,
    RenderError,
    message_attachments,
)
from massiva.lease import DEFAULT_TTL, Lease, held
from massiva.lifecycle import State
from massiva.loaded import ensure_unchanged
from massiva.quota import Plan, Usage, day_key, month_key, next_day, renews_at, room
from massiva.store import CampaignRow, Claimed, LeaseLost, Stopped, Store
from massiva.times import utcnow
from massiva.unknowns import DEFAULT_GRACE, Resolution, resolve_unknowns

Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]
log = logging.getLogger("massiva.sender")
# A 429 that asks to wait longer than this means an allowance is spent, not "slow down".
PACE_RETRY_LIMIT = 60.0
# The achieved pace is measured over this many of the latest sends.
PACE_SAMPLES = 30
# The allowance shown is read again from the database this often (seconds): other
# processes (a reconcile's requeue, a test send) change it too.
USAGE_READ_INTERVAL = 5.0


class SendAborted(Exception):
    """The run stopped on an error the user must fix (credentials, network)."""


@dataclass(frozen=True)
class SendOptions:
    """How to send: pace, allowances, patience."""

    plan: Plan = field(default_factory=Plan)
    rate: float | None = 1.0  # POST /send a second; None: unpaced (tests)
    max_recipients: int | None = None
    wait: bool = False  # sleep until the allowance renews, then go on
    grace: timedelta = DEFAULT_GRACE
    in_flight: int = 8
    lease_ttl: timedelta = DEFAULT_TTL
    trusted: frozenset[str] | None = None  # who writes the receipts (certifying senders)


@dataclass(frozen=True)
class Eta:
    """When a run stops sending, at its pace."""

    seconds: float  # real seconds from now
    why: str  # "done": all it means to send is sent by then; "allowance": it is spent by then


@dataclass
class Progress:
    """The run so far, for a progress display.

    The counts are this run's, except ``unknown``: it starts with the earlier unknown
    posts still waiting (``unknown_before``). The allowance is counted on the run's clock
    (``at``), the one its claims are counted on; the pace is measured in real time.
    """

    campaign: str
    rate: float | None = None  # the configured pace, POST /send a second (None: unpaced)
    wait: bool = False  # a spent allowance is waited out (--wait)
    to_send: int = 0  # the recipients pending when it started, or --max if fewer
    posted: int = 0  # requests that left, whatever their answer
    sent: int = 0  # posts the provider took (201 with a message id)
    accepted: int = 0  # of the whole campaign, as the reconciler records receipts
    rejected: int = 0
    unknown: int = 0
    unknown_before: int = 0  # of ``unknown``: the earlier ones, waiting when it started
    resolution: Resolution = field(default_factory=Resolution)
    allowance_left: int = 0  # recipients the day's and the month's windows still take
    at: datetime | None = None  # the run's clock when ``allowance_left`` was last known
    stopped: str = ""  # why the run ended: done, paused, cancelled, allowance, max, interrupted
    renews_at: datetime | None = None
    note: str = ""
    _sends: deque[float] = field(
        default_factory=lambda: deque(maxlen=PACE_SAMPLES), init=False, repr=False
    )

    @property
    def done(self) -> int:
        """Recipients of this run with an outcome: sent, rejected, or of unknown outcome."""
        return self.sent + self.rejected + self.unknown - self.unknown_before

    def count_sent(self, now: float | None = None) -> None:
        """One more post taken by the provider, at ``now`` (``time.monotonic()``)."""
        self.sent += 1
        self._sends.append(time.monotonic() if now is None else now)

    def pace_restarts(self) -> None:
        """Sending goes on after a wait: its pace is measured afresh."""
        self._sends.clear()

    def pace(self, now: float | None = None) -> float | None:
        """Sends a second the provider took lately, in real time; None before two.

        Measured between the latest sends; once the time since the last one is longer
        than their usual gap, that wait counts too: a run that stalled shows it.
        """
        sends = self._sends
        if len(sends) < 2:
            return None
        now = time.monotonic() if now is None else now
        gaps = len(sends) - 1
        span = sends[-1] - sends[0]
        return gaps / max(span, now - sends[0] - span / gaps, 1e-9)

    def eta(self, now: float | None = None) -> Eta | None:
        """When this run stops sending: at the pace achieved (the configured one until
        it is measured), and sooner if the allowance is spent first. None once stopped,
        or when the pace is unknown (unpaced)."""
        pace = self.pace(now) or self.rate
        if self.stopped or not pace:
            return None
        left = max(0, self.to_send - self.done)
        if left > self.allowance_left:
            return Eta(self.allowance_left / pace, "allowance")
        return Eta(left / pace, "done")


class Pacer:
    """The provider's pace for one mailbox: one slot every ``1 / rate`` seconds of real
    time. A caller sleeps until its slot (no polling: an idle mailbox costs nothing)."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1 / rate if rate else 0.0
        self._next = 0.0  # time.monotonic() of the next free slot

    async def turn(self) -> None:
        """Wait for the next slot."""
        now = time.monotonic()
        slot = max(now, self._next)
        self._next = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)

    def hold(self, seconds: float) -> None:
        """No slot for ``seconds`` from now (the provider said "slow down")."""
        self._next = max(self._next, time.monotonic() + seconds)


class Sender:
    """Sends one campaign from its mailbox."""

    def __init__(
        self,
        store: Store,
        client: PecMassivaClient,
        campaign: CampaignRow,
        spec: CampaignSpec,
        options: SendOptions,
        *,
        clock: Clock = utcnow,
        sleep: Sleep = asyncio.sleep,
        on_progress: Callable[[Progress], None] = lambda progress: None,
    ) -> None:
        self.store = store
        self.client = client
        self.campaign = campaign
        self.spec = spec
        self.options = options
        self.clock = clock
        self.sleep = sleep
        self.on_progress = on_progress
        self.progress = Progress(campaign.name, rate=options.rate, wait=options.wait)
        self._renderer = Renderer(spec)
        self._archive = Archive.beside(store.path)
        self._pacer = Pacer(options.rate)
        self._stop = asyncio.Event()
        self._abort: Exception | None = None  # a vendor error the user must act on
        self._failure: BaseException | None = None  # a bug or a broken database: re-raised
        self._resume_at: datetime | None = None  # the vendor's allowance renews (run's clock)
        self._taken = 0  # claims not given back: what --max counts
        self._usage_read = 0.0  # time.monotonic() when the allowance shown was read
        self._window = ("", "")  # the allowance windows it was read in (run's clock)
        self._claiming = 0  # 1 while a claim is on its way to the database

    def stop(self) -> None:
        """Finish the requests in flight and stop (SIGINT, SIGTERM)."""
        self._stop.set()
        if not self.progress.stopped:
            self.progress.stopped = "interrupted"

    async def run(self) -> Progress:
        """Send until done, paused, cancelled, stopped or out of allowance.

        Raises :class:`~massiva.loaded.CampaignChanged` if the campaign's folder changed
        since it was loaded, :class:`~massiva.lease.LeaseBusy` if another sender holds the
        mailbox, and :class:`SendAborted` when the vendor refuses the credentials or
        cannot be reached.
        """
        # What was checked is what is sent: the folder must be as it was loaded.
        await asyncio.to_thread(ensure_unchanged, self.campaign, self.spec)
        mailbox = self.campaign.mailbox
        # The lease lives in real time (it is about processes), whatever the run's clock.
        async with held(
            self.store, f"send:{mailbox}", ttl=self.options.lease_ttl, on_lost=self._lease_lost
        ) as lease:
            self._lease = lease
            now = self.clock()
            self.progress.unknown += await self.store.outbox.orphaned_sends(mailbox, now)
            await self._resolve()
            # The shared attachments: kept in the archive and encoded, once.
            await asyncio.to_thread(message_attachments, self.spec, None, self._archive)
            pending = (await self.store.campaigns.counts(self.campaign.id))[State.PENDING]
            limit = self.options.max_recipients
            self.progress.to_send = pending if limit is None else min(pending, limit)
            await self._read_allowance(self.clock())
            self._report()  # the first report knows the total and the allowance
            await self._loop()
        if self._failure is not None:
            raise self._failure
        if self._abort is not None:
            raise SendAborted(str(self._abort)) from self._abort
        return self.progress

    def _lease_lost(self) -> None:
        self._abort = SendAborted("this mailbox's lease lapsed or another process took it; stopped")
        self._stop.set()

    async def _resolve(self) -> None:
        resolution = await resolve_unknowns(
            self.store,
            self.client,
            self.campaign.mailbox,
            now=self.clock(),
            grace=self.options.grace,
            trusted=self.options.trusted,
        )
        self.progress.resolution = resolution
        self.progress.unknown = resolution.waiting + resolution.ambiguous
        self.progress.unknown_before = self.progress.unknown

    def _report(self) -> None:
        self.on_progress(self.progress)

    async def _read_allowance(self, now: datetime) -> None:
        """The allowance left at ``now`` on the run's clock, as the database counts it,
        less a claim on its way (for the display)."""
        self._window = (day_key(now), month_key(now))
        usage = Usage(*await self.store.outbox.usage(self.campaign.mailbox, *self._window))
        self.progress.allowance_left = room(self.options.plan, usage) - self._claiming
        self.progress.at = now
        self._usage_read = time.monotonic()

    async def _loop(self) -> None:
        """Claim one recipient when its turn comes, and post it; requests overlap."""
        slots = asyncio.Semaphore(self.options.in_flight)
        tasks: set[asyncio.Task[None]] = set()
        limit = self.options.max_recipients
        try:
            while not self._stop.is_set():
                if limit is not None and self._taken >= limit:
                    if tasks:  # a 429 may still give some back
                        await asyncio.gather(*tasks)
                        continue
                    self.progress.stopped = "max"
                    break
                await slots.acquire()
                await self._honour_pause()
                await self._pacer.turn()
                outcome = await self._claim() if not self._stop.is_set() else None
                if not isinstance(outcome, Claimed):
                    slots.release()
                if isinstance(outcome, Stopped):
                    if outcome.why == "allowance" and await self._wait_for_allowance(tasks):
                        continue
                    if outcome.why == "done" and tasks:
                        await asyncio.gather(*tasks)  # a 429 may give rows back
                        continue
                    self.progress.stopped = self.progress.stopped or outcome.why
                    break
                if outcome is None:  # stopped meanwhile
                    break
                self._taken += 1
                task = asyncio.create_task(self._post(outcome, slots))
                tasks.add(task)
                task.add_done_callback(lambda t: self._posted(t, tasks))
        finally:
            if tasks:
                await asyncio.gather(*tasks)
            self._report()

    def _posted(self, task: asyncio.Task[None], tasks: set[asyncio.Task[None]]) -> None:
        tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and self._failure is None:
            self._failure = task.exception()
            self._stop.set()

    async def _claim(self) -> Claimed | Stopped | None:
        now = self.clock()
        plan = self.options.plan
        window = (day_key(now), month_key(now))
        # Shown as counted before it commits: the display never shows more than is left.
        counted = self._claiming = min(1, self.progress.allowance_left)
        self.progress.allowance_left -= counted
        try:
            outcome = await self.store.outbox.claim(
                self.campaign.id,
                mailbox=self.campaign.mailbox,
                lease=self._lease.name,
                holder=self._lease.holder,
                day=window[0],
                month=window[1],
                daily_limit=plan.daily,
                monthly_limit=plan.monthly,
                now=now,
                wall=utcnow(),
            )
        except LeaseLost:
            self.progress.allowance_left += counted
            self._lease_lost()
            return None
        finally:
            self._claiming = 0
        # A new window (the run's clock passed a Rome midnight) and other processes'
        # counts are read again; a refusal counts nothing.
        if isinstance(outcome, Stopped):
            self.progress.allowance_left += counted
            if outcome.why in ("allowance", "done"):  # only these carry the usage
                usage = Usage(outcome.day_used, outcome.month_used)
                self.progress.allowance_left = room(plan, usage)
                self.progress.at = now
                if outcome.why == "allowance":
                    self.progress.renews_at = renews_at(plan, usage, now)
        elif window != self._window or time.monotonic() - self._usage_read > USAGE_READ_INTERVAL:
            await self._read_allowance(now)
            self.progress.accepted = await self.store.campaigns.accepted(self.campaign.id)
        else:
            self.progress.at = now
        return outcome

    async def _wait_for_allowance(self, tasks: set[asyncio.Task[None]]) -> bool:
        """Out of allowance: with ``wait``, sleep until it renews and say to go on."""
        if tasks:
            await asyncio.gather(*tasks)
        when = self.progress.renews_at
        if not self.options.wait or when is None:
            return False
        self.progress.note = f"allowance spent; waiting until {when.isoformat()}"
        self._report()
        await self._sleep_until(when)
        self.progress.note = ""
        return not self._stop.is_set()

    async def _sleep_until(self, when: datetime) -> None:
        """Sleep until ``when`` on the run's clock, waking for a stop; then renew the
        lease (a long sleep outlasts it)."""
        while not self._stop.is_set():
            left = (when - self.clock()).total_seconds()
            if left <= 0:
                break
            sleeper = asyncio.ensure_future(self.sleep(min(left, 30.0)))
            stopper = asyncio.ensure_future(self._stop.wait())
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
            for pending in (sleeper, stopper):
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pending
        self.progress.pace_restarts()
        if not await self._lease.renew():
            self._lease_lost()

    async def _honour_pause(self) -> None:
        if self._resume_at is not None:
            when, self._resume_at = self._resume_at, None
            await self._sleep_until(when)

    async def _post(self, claimed: Claimed, slots: asyncio.Semaphore) -> None:
        """Post one claimed recipient, then record what came of it. Its slot is free as
        soon as the request is over: the next may leave while this one is recorded."""
        try:
            outcome = await self._request(claimed, self._lease)
        finally:
            slots.release()
        now = self.clock()
        outbox, holder = self.store.outbox, self._lease.holder
        if isinstance(outcome, tuple):
            result, leaving = outcome
            if result.message_id:
                try:
                    recorded = await outbox.mark_sent(
                        claimed.id, holder, result.message_id, leaving
                    )
                except BaseException:
                    # The proof of sending must not vanish with a database error: the log
                    # keeps it for whoever settles the row (it stays `sending`, then unknown).
                    log.exception(
                        "recipient %s was sent as message %s, but the database refused"
                        " to record it",
                        claimed.id,
                        result.message_id,
                    )
                    raise
                if recorded:
                    self.progress.count_sent()
                else:
                    await self._not_recorded(claimed, result.message_id, now)
            else:  # a 201 without an id ties no receipt: search for it
                await outbox.mark_unknown(claimed.id, holder, now)
                self.progress.unknown += 1
        elif isinstance(outcome, OutcomeUnknown):
            await outbox.mark_unknown(claimed.id, holder, now)
            self.progress.unknown += 1
        elif isinstance(outcome, str):
            await outbox.mark_rejected(claimed.id, holder, outcome, now)
            self.progress.rejected += 1
            await self._read_allowance(now)  # its allowance is given back: shown at once
        else:  # held back, RateLimited, or an ApiError the user must act on: not sent
            await outbox.give_back(claimed.id, holder, now)
            self._taken -= 1
            await self._read_allowance(now)
        self._report()

    async def _not_recorded(self, claimed: Claimed, message_id: str, now: datetime) -> None:
        """A 201 whose message id could not be recorded: the row is another sender's claim
        now (this one lost its lease mid-request), or the vendor gave the id to another
        recipient too. Never silently: logged, and in the second case the row waits
        ``unknown`` for an operator (``massiva unknowns``)."""
        outbox = self.store.outbox
        if await outbox.message_ids_taken([message_id], other_than=claimed.id):
            why = f"the vendor gave message id {message_id} to another recipient too"
            await outbox.mark_unknown(claimed.id, self._lease.holder, now)
            await outbox.flag(claimed.id, f"ambiguous: {why}")
            self.progress.unknown += 1
        else:
            why = "its row is no longer this sender's claim"
        log.error("recipient %s was sent as message %s, but %s", claimed.address, message_id, why)

    async def _request(
        self, claimed: Claimed, lease: Lease
    ) -> tuple[SendResult, datetime] | ApiError | str | None:
        """The vendor's answer to the post of ``claimed`` with the time it left, the error
        it raised, why it was not sent (a reason to reject it with), or None when it was
        held back (the lease is no longer surely this process's, a slow down or a refusal
        came meanwhile)."""
        try:
            body = self._renderer.body(claimed.fields)
            if claimed.attachment:  # a file to read: off the event loop
                attachments = await asyncio.to_thread(
                    message_attachments, self.spec, claimed.attachment, self._archive
                )
            else:  # the shared ones, read once when the run started
                attachments = message_attachments(self.spec, None, self._archive)
            # What leaves is kept first: the body in the archive, every hash with the row.
            content = await asyncio.to_thread(self._keep, claimed.subject, body, attachments)
            if not await self.store.outbox.record_content(claimed.id, lease.holder, content):
                return None  # the claim is no longer this sender's: nothing leaves
        except (RenderError, CampaignError) as exc:
            # Checked at load; a file removed since then fails here, and only this one.
            return f"not sent: {exc}"
        except BaseException:
            # Anything else before the request left (a bug, a cancellation, an archive
            # that cannot keep the proof): it provably did not leave, so its claim goes
            # back now instead of waiting as unknown.
            back = self.store.outbox.give_back(claimed.id, lease.holder, self.clock())
            await asyncio.shield(back)
            raise
        if self._resume_at is not None or self._abort is not None:
            return None  # a 429 or a refusal came meanwhile
        if not lease.surely_held():  # frozen past the lease: another may be sending
            self._lease_lost()
            return None
        leaving = self.clock()  # "sent at": when the request left, not when answered
        self.progress.posted += 1
        try:
            result = await self.client.send(
                claimed.address, claimed.subject, body, attachments=attachments
            )
        except InvalidRequest as exc:
            return exc.message
        except (OutcomeUnknown, RateLimited) as exc:
            if isinstance(exc, RateLimited):  # before the slot is free: no post meanwhile
                self._rate_limited(exc)
            return exc
        except ApiError as exc:  # credentials refused, vendor unreachable: the user acts
            self._abort = exc
            self._stop.set()
            return exc
        return result, leaving

    def _keep(self, subject: str, body: str, attachments: list[Attachment]) -> str:
        """Keep the body in the archive; what the post carries, by SHA-256, as JSON
        (``recipient.sent_content``). Reads and writes files: call it in a thread."""
        return json.dumps(
            {
                "subject": hashlib.sha256(subject.encode("utf-8")).hexdigest(),
                "body": self._archive.put(body.encode("utf-8")),
                "attachments": [[a.name, a.sha256, a.size] for a in attachments],
            },
            ensure_ascii=False,
        )

    def _rate_limited(self, exc: RateLimited) -> None:
        """The vendor said "slow down" (pause briefly) or "allowance spent" (stop, or wait
        with ``wait``); no recipient fails for it."""
        if exc.retry_after is not None and exc.retry_after <= PACE_RETRY_LIMIT:
            self._pacer.hold(exc.retry_after)
            return
        now = self.clock()
        when = now + timedelta(seconds=exc.retry_after) if exc.retry_after else next_day(now)
        self.progress.renews_at = when
        self.progress.note = f"the provider says: {exc.message}"
        if self.options.wait:
            self._resume_at = when
        else:
            self.progress.stopped = "allowance"
            self._stop.set()
