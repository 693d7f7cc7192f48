"""The send loop: one ``POST /send`` per recipient, paced, within the allowances, and
never twice to the same recipient, whatever crashes; from a pool of mailboxes.

A :class:`MailboxSender` drives one mailbox: its lease, its pace, its allowances, and
the campaigns (:class:`Job`) it sends for, each within its schedule. A :class:`Sender`
sends one campaign from every mailbox of its pool at once: each claims the next
pending recipient when its own pace allows, so the recipients spread by themselves and
the campaign ends as early as the allowances allow; a mailbox that stops (its password
refused, its allowance spent, another process holding it) stops alone.

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
- A recipient is claimed by one mailbox, which the row records; its allowance is
  counted in that mailbox, and an unknown post is searched for in that mailbox's inbox.
- A schedule's window and deadline are checked at the claim and again just before the
  request leaves: a post is never made outside them (the claim is given back).
- Requests overlap (up to ``in_flight``) so that a slow answer does not slow the pace;
  the pace itself is one :class:`Pacer` per mailbox, which sleeps until the next slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import astuple, dataclass, field
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
from massiva.lease import DEFAULT_TTL, Lease, LeaseBusy, held
from massiva.lifecycle import State
from massiva.loaded import ensure_unchanged
from massiva.quota import Plan, Usage, day_key, month_key, next_day, renews_at, room
from massiva.schedule import Schedule
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
    """How to send: patience, overlap and, for a pool of one given as a bare client, its
    allowances, pace and certifying senders (:class:`Box` carries them otherwise)."""

    plan: Plan = field(default_factory=Plan)
    rate: float | None = 1.0  # POST /send a second; None: unpaced (tests)
    max_recipients: int | None = None
    wait: bool = False  # sleep until the allowance renews or the window opens, then go on
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
    # Why the run ended: done, paused, cancelled, allowance, max, interrupted; window (the
    # schedule's window is closed; ``opens_at`` says when it opens), deadline (past it).
    stopped: str = ""
    opens_at: datetime | None = None
    # Mailboxes of the pool that stopped alone, and why (the others went on).
    box_stops: dict[str, str] = field(default_factory=dict)
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


@dataclass(frozen=True)
class Box:
    """A mailbox to send from: its client, its plan's allowances, its pace (``POST /send``
    a second; None: unpaced, for tests) and who writes its receipts."""

    client: PecMassivaClient
    plan: Plan = field(default_factory=Plan)
    rate: float | None = 1.0
    trusted: frozenset[str] | None = None

    @property
    def address(self) -> str:
        """The mailbox's address."""
        return self.client.username


@dataclass(eq=False)
class Job:
    """A campaign being sent: its templates, its run's progress, its ``--max`` and the
    posts of it in flight, from whichever mailbox."""

    campaign: CampaignRow
    spec: CampaignSpec
    progress: Progress
    limit: int | None = None  # claims at most (those given back do not count)
    taken: int = 0
    in_flight: set[asyncio.Task[None]] = field(default_factory=set)
    renderer: Renderer = field(init=False)

    def __post_init__(self) -> None:
        self.renderer = Renderer(self.spec)

    @property
    def schedule(self) -> Schedule:
        """When its messages may leave (as loaded)."""
        return self.campaign.schedule


@dataclass(frozen=True)
class Ended:
    """Why a mailbox stopped sending: as :attr:`Progress.stopped` says it, or 'busy'
    (another process holds the mailbox: ``error`` is the :class:`LeaseBusy`) or
    'aborted' (``error``: the vendor refused the credentials or could not be reached)."""

    why: str
    error: Exception | None = None
    renews_at: datetime | None = None  # 'allowance': when it renews (the run's clock)
    opens_at: datetime | None = None  # 'window': when a window opens next


#: Why a mailbox's sending of a campaign ended, most telling first: the campaign's
#: stop is the first of its mailboxes' in this order.
_PRECEDENCE = ("cancelled", "paused", "max", "deadline", "done", "allowance", "window")


def _first(whys: list[str]) -> str:
    return next((why for why in _PRECEDENCE if why in whys), whys[0] if whys else "done")


class MailboxSender:
    """Sends the campaigns ``jobs`` from one mailbox, under its lease, at its pace and
    within its allowances, until none of them has anything it may send now."""

    def __init__(
        self,
        store: Store,
        box: Box,
        jobs: list[Job],
        options: SendOptions,
        *,
        clock: Clock = utcnow,
        sleep: Sleep = asyncio.sleep,
        on_progress: Callable[[Progress], None] = lambda progress: None,
        on_allowance: Callable[[MailboxSender], None] | None = None,
        on_post: Callable[[str], None] = lambda outcome: None,
        holder: str | None = None,
    ) -> None:
        self.store = store
        self.holder = holder  # who holds the mailbox's lease (default: a new name a run)
        self.box = box
        self.on_post = on_post  # what came of each claim: sent, rejected, unknown, given_back
        self.address = box.address
        self.jobs = list(jobs)
        self.options = options
        self.clock = clock
        self.sleep = sleep
        self.on_progress = on_progress
        self._on_allowance = on_allowance or _show_allowance
        self.left = 0  # the allowance left, as the database counts it, less a claim on its way
        self.at: datetime | None = None  # the run's clock when ``left`` was last known
        self.renews_at: datetime | None = None  # when a spent allowance renews
        self.failure: BaseException | None = None  # a bug or a broken database: re-raised
        self._archive = Archive(store.archive_dir)
        self._pacer = Pacer(box.rate)
        self._stop = asyncio.Event()
        self._abort: Exception | None = None  # a vendor error the user must act on
        self._spent = False  # the vendor said the allowance is spent (a long 429)
        self._resume_at: datetime | None = None  # the vendor's allowance renews (run's clock)
        self._usage_read = 0.0  # time.monotonic() when the allowance shown was read
        self._window = ("", "")  # the allowance windows it was read in (run's clock)
        self._claiming = 0  # 1 while a claim is on its way to the database
        self._ends: dict[int, str] = {}  # campaign id -> why its sending ended here

    def add(self, job: Job) -> None:
        """Send for ``job`` too, from the next claim on (a service found a new campaign)."""
        if all(j.campaign.id != job.campaign.id for j in self.jobs):
            self.jobs.append(job)

    def stop(self) -> None:
        """Finish the requests in flight and stop."""
        self._stop.set()

    async def run(self) -> Ended:
        """Send until nothing may be sent now; why it stopped.

        Raises whatever bug or database error broke a post (after the others in flight
        are recorded)."""
        try:
            # The lease lives in real time (it is about processes), whatever the run's clock.
            async with held(
                self.store,
                f"send:{self.address}",
                ttl=self.options.lease_ttl,
                on_lost=self._lease_lost,
                holder=self.holder,
            ) as lease:
                self._lease = lease
                await self.store.outbox.orphaned_sends(self.address, self.clock())
                await self._resolve()
                for job in self.jobs:  # the shared attachments: kept and encoded, once
                    await asyncio.to_thread(message_attachments, job.spec, None, self._archive)
                await self._read_allowance(self.clock())
                for job in self.jobs:
                    self.on_progress(job.progress)  # the first report knows the allowance
                ended = await self._loop()
        except LeaseBusy as busy:
            return Ended("busy", busy)
        if self.failure is not None:
            raise self.failure
        if self._abort is not None:
            return Ended("aborted", self._abort)
        return ended

    def _lease_lost(self) -> None:
        self._abort = SendAborted(
            f"{self.address}: this mailbox's lease lapsed or another process took it; stopped"
        )
        self._stop.set()

    async def _resolve(self) -> None:
        resolution = await resolve_unknowns(
            self.store,
            self.box.client,
            self.address,
            now=self.clock(),
            grace=self.options.grace,
            trusted=self.box.trusted,
        )
        waiting = resolution.waiting + resolution.ambiguous
        for job in self.jobs:
            p = job.progress
            p.resolution = Resolution(
                *(a + b for a, b in zip(astuple(p.resolution), astuple(resolution), strict=True))
            )
            p.unknown += waiting
            p.unknown_before += waiting

    async def _read_allowance(self, now: datetime) -> None:
        """The allowance left at ``now`` on the run's clock, as the database counts it,
        less a claim on its way (for the display)."""
        self._window = (day_key(now), month_key(now))
        usage = Usage(*await self.store.outbox.usage(self.address, *self._window))
        self.left = room(self.box.plan, usage) - self._claiming
        self.at = now
        self._usage_read = time.monotonic()
        self._on_allowance(self)

    async def _loop(self) -> Ended:
        """Claim one recipient when its turn comes, and post it; requests overlap."""
        slots = asyncio.Semaphore(self.options.in_flight)
        tasks: set[asyncio.Task[None]] = set()
        ended = Ended("interrupted")
        try:
            while not self._stop.is_set():
                await slots.acquire()
                await self._honour_pause()
                await self._pacer.turn()
                got = await self._next() if not self._stop.is_set() else None
                if not isinstance(got, tuple):
                    slots.release()
                if isinstance(got, Ended):
                    if got.why == "allowance" and await self._wait_for_allowance(tasks):
                        continue
                    ended = got
                    break
                if got is None:  # a campaign ended here, or stopped meanwhile: look again
                    continue
                job, claimed = got
                task = asyncio.create_task(self._post(job, claimed, slots))
                tasks.add(task)
                job.in_flight.add(task)
                task.add_done_callback(functools.partial(self._posted, tasks=tasks, job=job))
                await self._refresh(job)  # only now: the post is seen in flight meanwhile
        finally:
            if tasks:
                await asyncio.gather(*tasks)
            for job in self.jobs:
                self.on_progress(job.progress)
        if self._spent:
            return Ended("allowance", renews_at=self.renews_at)
        return ended

    def _posted(self, task: asyncio.Task[None], tasks: set[asyncio.Task[None]], job: Job) -> None:
        tasks.discard(task)
        job.in_flight.discard(task)
        if not task.cancelled() and task.exception() is not None and self.failure is None:
            self.failure = task.exception()
            self._stop.set()

    async def _next(self) -> tuple[Job, Claimed] | Ended | None:
        """Claim the next recipient of the first campaign that may send now. None: look
        again (a campaign ended here, a claim was refused for a lost lease); Ended:
        nothing may be sent from this mailbox now."""
        now = self.clock()
        for job in list(self.jobs):
            if job.limit is not None and job.taken >= job.limit:
                if not await self._settle(job):  # a 429 may give some back
                    self._finish(job, "max")
                return None
            if job.schedule.past_deadline(now):
                self._finish(job, "deadline")
        ready = [job for job in self.jobs if job.schedule.is_open(now)]
        if not ready:
            return await self._closed(now)
        job = ready[0]
        job.taken += 1  # before the claim: the pool's other mailboxes see it at once (--max)
        outcome = await self._claim(job, now)
        if isinstance(outcome, Claimed):
            return job, outcome
        job.taken -= 1
        if outcome is None:
            return None
        if outcome.why == "allowance":
            return Ended("allowance", renews_at=self.renews_at)
        if outcome.why == "done" and await self._settle(job):  # a 429 may give rows back
            return None
        self._finish(job, outcome.why)
        return None

    async def _settle(self, job: Job) -> bool:
        """Wait for the job's posts in flight, from any mailbox; False if there were none."""
        if not job.in_flight:
            return False
        await asyncio.wait(set(job.in_flight))
        return True

    def _finish(self, job: Job, why: str) -> None:
        """This mailbox is done with ``job``: ``why`` (done, paused, cancelled, max, deadline)."""
        self.jobs.remove(job)
        self._ends[job.campaign.id] = why

    async def _closed(self, now: datetime) -> Ended | None:
        """No campaign may send now: every one ended here (why, as the most telling of
        theirs), or their windows are closed (with ``wait``, sleep until one opens)."""
        if not self.jobs:
            return Ended(_first(list(self._ends.values())))
        opens = [when for job in self.jobs if (when := job.schedule.next_open(now))]
        if not opens:  # no window opens before a deadline: they end here
            for job in list(self.jobs):
                self._finish(job, "deadline")
            return None
        if not self.options.wait:
            return Ended("window", opens_at=min(opens))
        for job in self.jobs:
            job.progress.note = f"outside the sending window; it opens {min(opens).isoformat()}"
            self.on_progress(job.progress)
        await self._sleep_until(min(opens))
        for job in self.jobs:
            job.progress.note = ""
        return None

    async def _claim(self, job: Job, now: datetime) -> Claimed | Stopped | None:
        plan = self.box.plan
        window = (day_key(now), month_key(now))
        if window != self._window:  # a Rome midnight passed: the new window's room first
            await self._read_allowance(now)
        # Shown as counted before it commits: the display never shows more than is left.
        counted = self._claiming = min(1, self.left)
        self.left -= counted
        # Shown now, not once it returns: a report meanwhile (a post recorded) must not
        # show the allowance without it. PostgreSQL commits the claim while this task
        # awaits its answer, and other tasks report in between.
        self._on_allowance(self)
        try:
            outcome = await self.store.outbox.claim(
                job.campaign.id,
                mailbox=self.address,
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
            self.left += counted
            self._lease_lost()
            return None
        finally:
            self._claiming = 0
        # A new window (the run's clock passed a Rome midnight) and other processes'
        # counts are read again; a refusal counts nothing.
        if isinstance(outcome, Stopped):
            self.left += counted
            if outcome.why in ("allowance", "done"):  # only these carry the usage
                usage = Usage(outcome.day_used, outcome.month_used)
                self.left = room(plan, usage)
                self.at = now
                if outcome.why == "allowance":
                    self.renews_at = renews_at(plan, usage, now)
                    for other in self.jobs:
                        p = other.progress
                        p.renews_at = min(filter(None, (p.renews_at, self.renews_at)))
            self._on_allowance(self)
        else:
            self.at = now
            self._on_allowance(self)
        return outcome

    async def _refresh(self, job: Job) -> None:
        """After a claim: a new window (the run's clock passed a Rome midnight), other
        processes' counts and the campaign's schedule are read again, every few seconds."""
        now = self.clock()
        window = (day_key(now), month_key(now))
        if window != self._window or time.monotonic() - self._usage_read > USAGE_READ_INTERVAL:
            await self._read_allowance(now)
            job.progress.accepted = await self.store.campaigns.accepted(job.campaign.id)
            # Its schedule as loaded now: campaign.toml loaded again may have changed it.
            job.campaign = await self.store.campaigns.get(job.campaign.name) or job.campaign

    async def _wait_for_allowance(self, tasks: set[asyncio.Task[None]]) -> bool:
        """Out of allowance: with ``wait``, sleep until it renews and say to go on."""
        if tasks:
            await asyncio.gather(*tasks)
        when = self.renews_at
        if not self.options.wait or when is None:
            return False
        self._note(f"allowance spent; waiting until {when.isoformat()}")
        await self._sleep_until(when)
        self._note("")
        return not self._stop.is_set()

    def _note(self, note: str) -> None:
        for job in self.jobs:
            job.progress.note = note and f"{self.address}: {note}"
            self.on_progress(job.progress)

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
        for job in self.jobs:
            job.progress.pace_restarts()
        if not await self._lease.renew():
            self._lease_lost()

    async def _honour_pause(self) -> None:
        if self._resume_at is not None:
            when, self._resume_at = self._resume_at, None
            await self._sleep_until(when)

    async def _post(self, job: Job, claimed: Claimed, slots: asyncio.Semaphore) -> None:
        """Post one claimed recipient, then record what came of it. Its slot is free as
        soon as the request is over: the next may leave while this one is recorded."""
        progress = job.progress
        try:
            outcome = await self._request(job, claimed, self._lease)
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
                    progress.count_sent()
                    self.on_post("sent")
                else:
                    await self._not_recorded(progress, claimed, result.message_id, now)
            else:  # a 201 without an id ties no receipt: search for it
                await outbox.mark_unknown(claimed.id, holder, now)
                progress.unknown += 1
                self.on_post("unknown")
        elif isinstance(outcome, OutcomeUnknown):
            await outbox.mark_unknown(claimed.id, holder, now)
            progress.unknown += 1
            self.on_post("unknown")
        elif isinstance(outcome, str):
            await outbox.mark_rejected(claimed.id, holder, outcome, now)
            progress.rejected += 1
            self.on_post("rejected")
            await self._read_allowance(now)  # its allowance is given back: shown at once
        else:  # held back, RateLimited, or an ApiError the user must act on: not sent
            await outbox.give_back(claimed.id, holder, now)
            job.taken -= 1
            self.on_post("given_back")
            await self._read_allowance(now)
        self.on_progress(progress)

    async def _not_recorded(
        self, progress: Progress, claimed: Claimed, message_id: str, now: datetime
    ) -> None:
        """A 201 whose message id could not be recorded: the row is another sender's claim
        now (this one lost its lease mid-request), or the vendor gave the id to another
        recipient too. Never silently: logged, and in the second case the row waits
        ``unknown`` for an operator (``massiva unknowns``)."""
        outbox = self.store.outbox
        if await outbox.message_ids_taken([message_id], other_than=claimed.id):
            why = f"the vendor gave message id {message_id} to another recipient too"
            await outbox.mark_unknown(claimed.id, self._lease.holder, now)
            await outbox.flag(claimed.id, f"ambiguous: {why}")
            progress.unknown += 1
        else:
            why = "its row is no longer this sender's claim"
        log.error("recipient %s was sent as message %s, but %s", claimed.address, message_id, why)

    async def _request(
        self, job: Job, claimed: Claimed, lease: Lease
    ) -> tuple[SendResult, datetime] | ApiError | str | None:
        """The vendor's answer to the post of ``claimed`` with the time it left, the error
        it raised, why it was not sent (a reason to reject it with), or None when it was
        held back (the lease is no longer surely this process's, the schedule closed, a
        slow down or a refusal came meanwhile)."""
        try:
            body = job.renderer.body(claimed.fields)
            if claimed.attachment:  # a file to read: off the event loop
                attachments = await asyncio.to_thread(
                    message_attachments, job.spec, claimed.attachment, self._archive
                )
            else:  # the shared ones, read once when the job started
                attachments = message_attachments(job.spec, None, self._archive)
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
        if self._resume_at is not None or self._abort is not None or self._spent:
            return None  # a 429 or a refusal came meanwhile
        if not lease.surely_held():  # frozen past the lease: another may be sending
            self._lease_lost()
            return None
        leaving = self.clock()  # "sent at": when the request left, not when answered
        if not job.schedule.is_open(leaving):  # the window closed, the deadline passed
            return None
        job.progress.posted += 1
        closes = job.schedule.closes_at(leaving)
        # A call may retry a connection that failed for up to two minutes: none may start
        # after the window closes or the deadline passes. A call cut there may have left:
        # its outcome is unknown, searched for as any other.
        cut = None if closes is None else max(0.0, (closes - leaving).total_seconds())
        try:
            async with asyncio.timeout(cut):
                result = await self.box.client.send(
                    claimed.address, claimed.subject, body, attachments=attachments
                )
        except TimeoutError:
            why = "cut short: the sending window closed or the deadline passed meanwhile"
            return OutcomeUnknown(why, method="POST", path="/send")
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
        self.renews_at = when
        for job in self.jobs:
            job.progress.renews_at = when
        self._note(f"the provider says: {exc.message}")
        if self.options.wait:
            self._resume_at = when
        else:
            self._spent = True
            self._stop.set()


def _show_allowance(sender: MailboxSender) -> None:
    """A mailbox's allowance, as each of its campaigns' progress shows it."""
    for job in sender.jobs:
        job.progress.allowance_left = sender.left
        job.progress.at = sender.at


class Sender:
    """Sends one campaign from every mailbox of its pool at once.

    ``boxes`` are the pool's mailboxes; a bare client is a pool of one, with the
    options' plan, pace and certifying senders.
    """

    def __init__(
        self,
        store: Store,
        boxes: PecMassivaClient | list[Box],
        campaign: CampaignRow,
        spec: CampaignSpec,
        options: SendOptions,
        *,
        clock: Clock = utcnow,
        sleep: Sleep = asyncio.sleep,
        on_progress: Callable[[Progress], None] = lambda progress: None,
    ) -> None:
        if isinstance(boxes, PecMassivaClient):
            boxes = [Box(boxes, options.plan, options.rate, options.trusted)]
        self.store = store
        self.campaign = campaign
        self.spec = spec
        self.clock = clock
        self.on_progress = on_progress
        rate = sum(box.rate for box in boxes if box.rate) or None
        self.progress = Progress(campaign.name, rate=rate, wait=options.wait)
        self._job = Job(campaign, spec, self.progress, limit=options.max_recipients)
        self._left: dict[str, int] = {}  # each mailbox's allowance left, as last reported
        self._senders = [
            MailboxSender(
                store,
                box,
                [self._job],
                options,
                clock=clock,
                sleep=sleep,
                on_progress=lambda progress: self.on_progress(progress),
                on_allowance=self._allowance,
            )
            for box in boxes
        ]

    def _allowance(self, sender: MailboxSender) -> None:
        """The pool's allowance left: what each of its mailboxes still takes (a running
        total: hundreds of mailboxes each report it at every claim)."""
        self.progress.allowance_left += sender.left - self._left.get(sender.address, 0)
        self._left[sender.address] = sender.left
        self.progress.at = sender.at

    def stop(self) -> None:
        """Finish the requests in flight and stop (SIGINT, SIGTERM)."""
        for sender in self._senders:
            sender.stop()
        if not self.progress.stopped:
            self.progress.stopped = "interrupted"

    async def run(self) -> Progress:
        """Send until done, paused, cancelled, stopped, out of allowance or outside the
        schedule, from every mailbox of the pool at once.

        Raises :class:`~massiva.loaded.CampaignChanged` if the campaign's folder changed
        since it was loaded. A mailbox another process holds, or whose credentials the
        vendor refuses, stops alone (``progress.box_stops`` says why); when every one
        does, :class:`~massiva.lease.LeaseBusy` or :class:`SendAborted` is raised.
        """
        # What was checked is what is sent: the folder must be as it was loaded.
        await asyncio.to_thread(ensure_unchanged, self.campaign, self.spec)
        pending = (await self.store.campaigns.counts(self.campaign.id))[State.PENDING]
        limit = self._job.limit
        self.progress.to_send = pending if limit is None else min(pending, limit)
        runs = {asyncio.create_task(sender.run()): sender for sender in self._senders}
        try:
            running = set(runs)
            while running:
                done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for run in done:
                    if run.exception() is not None:
                        self.stop()  # a bug or a broken database: the others stop too
                    elif run.result().why == "done":
                        # Nothing is pending: a mailbox waiting for its allowance or a
                        # window has nothing to wait for (the others finish what they hold).
                        for sender in runs.values():
                            sender.stop()
        except BaseException:
            self.stop()
            await asyncio.wait(runs)
            raise
        ends = [run.result() for run in runs]  # re-raises the first failure, in pool order
        self._ended(ends)
        self.on_progress(self.progress)  # the last report knows why it stopped
        return self.progress

    def _ended(self, ends: list[Ended]) -> None:
        """The campaign's stop, from its mailboxes'."""
        p = self.progress
        failed = {
            sender.address: end
            for sender, end in zip(self._senders, ends, strict=True)
            if end.why in ("busy", "aborted")
        }
        p.box_stops = {address: str(end.error) for address, end in failed.items()}
        if len(failed) == len(ends):  # every mailbox failed: say why the first did
            error = ends[0].error
            if isinstance(error, LeaseBusy):
                raise error
            raise SendAborted(str(error)) from error
        if p.stopped:  # interrupted
            return
        whys = [end.why for end in ends if end.why not in ("busy", "aborted")]
        p.stopped = _first(whys)
        opens = [end.opens_at for end in ends if end.opens_at]
        p.opens_at = min(opens) if p.stopped == "window" and opens else None
        renew = [end.renews_at for end in ends if end.why == "allowance" and end.renews_at]
        if p.stopped == "allowance" and renew:
            p.renews_at = min(renew)
