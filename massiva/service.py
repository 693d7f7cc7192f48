"""``massiva run``: the service. Sends every active campaign from its pool, by its
schedule, and reads every mailbox's receipts periodically, until stopped.

It looks at the database every ``look_every`` seconds, so campaigns loaded, paused,
resumed or cancelled while it runs are seen within that time. Each mailbox is driven by
one :class:`~massiva.sender.MailboxSender` at a time, which sends for every campaign of
whose pool it is a member; when it stops, the mailbox rests:

- allowance spent: until the allowance renews (a Rome midnight, the 1st of a month);
- outside every window of its campaigns: until one opens;
- another process holds it: a lease's ttl (a minute), then again;
- the vendor cannot be reached: a minute, then again;
- the database cannot be reached (a PostgreSQL server restarting): a few seconds, then
  again; the service's one holder name for its leases lets it take back at once the
  mailboxes it held when the database went away;
- its password refused (or missing): for good, until the service restarts; the other
  mailboxes go on, and a ``mailbox.stopped`` notification says so.

Nothing here re-runs a post: a mailbox restarted after any stop first turns its own
dead claims ``unknown`` and searches the inbox for them (:mod:`massiva.sender`).

A stop (:meth:`Service.stop`, SIGTERM) finishes the requests in flight, records their
answers and releases the leases; a reconcile under way is given a few seconds, then cut
short (reconciling is idempotent: the next run reads what this one did not store).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from massiva.api import ApiError, ApiSession, AuthenticationError, PecMassivaClient
from massiva.archive import Archive
from massiva.campaign import CampaignError, message_attachments
from massiva.config import Config, ConfigError
from massiva.lease import LeaseBusy, holder_name
from massiva.lifecycle import State
from massiva.loaded import CampaignChanged, as_loaded
from massiva.metrics import Metrics
from massiva.quota import Plan, day_key, month_key
from massiva.reconcile import PAGE_FETCHES, read_mailbox
from massiva.sender import Box, Ended, Job, MailboxSender, Progress, SendOptions
from massiva.status_server import Health
from massiva.store import CampaignRow, Store, Unavailable
from massiva.times import utcnow
from massiva.webhook import CAMPAIGN_FINISHED, CAMPAIGN_STOPPED, MAILBOX_STOPPED, Notifier

Clock = Callable[[], datetime]
log = logging.getLogger("massiva.service")
#: Seconds between looks at the database for work.
LOOK_EVERY = 10.0
#: A mailbox another process holds, or that could not reach the vendor, is tried again
#: after this long.
RETRY_AFTER = timedelta(seconds=60)
#: A mailbox whose sending stopped because the database could not be reached is tried
#: again after this long.
DATABASE_RETRY = timedelta(seconds=5)
#: Seconds a reconcile under way at a stop is given to end (it is idempotent: one cut
#: short loses nothing, the next reads again what it did not store).
STOP_READING = 20.0


@dataclass
class _Mailbox:
    """What the service knows of one mailbox."""

    address: str
    sender: MailboxSender | None = None
    task: asyncio.Task[Ended] | None = None
    rest_until: datetime | None = None  # on the run's clock
    stopped: str | None = None  # why it stopped for good (credentials)
    failed: str | None = None  # the last failure told (a bug, a broken database)
    state: str = "idle"  # massiva.metrics.MAILBOX_STATES
    reconciled: float | None = None  # time.monotonic() of the last reconcile's start
    reading: asyncio.Task[None] | None = None


class Service:
    """Runs until :meth:`stop`: see the module's doc."""

    def __init__(
        self,
        store: Store,
        config: Config,
        connect: Callable[[], ApiSession],
        *,
        options: SendOptions | None = None,
        metrics: Metrics | None = None,
        notifier: Notifier | None = None,
        clock: Clock = utcnow,
        look_every: float = LOOK_EVERY,
        page_fetches: int = PAGE_FETCHES,
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        self.store = store
        self.config = config
        self.connect = connect  # a new session on the sending API: one a mailbox
        self._sessions = contextlib.AsyncExitStack()
        self._opened: dict[str, ApiSession] = {}
        self.options = options or SendOptions()
        self.metrics = metrics or Metrics()
        self.notifier = notifier
        self.clock = clock
        self.look_every = look_every
        self.page_fetches = page_fetches
        self.environ = environ
        self._stop = asyncio.Event()
        self._boxes: dict[str, _Mailbox] = {}
        self._jobs: dict[int, Job] = {}
        self._told: dict[int, str] = {}  # campaign id -> the last end notified
        self._notices: set[asyncio.Task[bool]] = set()
        self._looked = time.monotonic()  # the last look that worked
        self._first = True
        # This service's name in the mailboxes' leases (unique to the process and host).
        self.instance = holder_name()

    def stop(self) -> None:
        """Finish the requests in flight, release the leases, and return from :meth:`run`."""
        self._stop.set()
        for box in self._boxes.values():
            if box.sender is not None:
                box.sender.stop()

    def health(self) -> Health:
        """Healthy while the database was read lately (``/healthz``)."""
        late = time.monotonic() - self._looked
        detail: dict[str, object] = {
            "last_look_seconds_ago": round(late, 1),
            "mailboxes": {a: b.stopped or b.state for a, b in sorted(self._boxes.items())},
        }
        return Health(late < 3 * self.look_every + 30, detail)

    async def run(self) -> None:
        """Send and reconcile until :meth:`stop`."""
        try:
            while not self._stop.is_set():
                try:
                    await self._look()
                    self._looked = time.monotonic()
                except Unavailable as exc:  # a server restarting: said in a line, tried again
                    log.warning("%s; looking again in %g s", exc, self.look_every)
                except Exception:  # a locked or broken database: said, tried again
                    log.exception("the service could not look at the database; trying again")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.look_every)
        finally:
            await self._shut_down()

    async def _shut_down(self) -> None:
        async with self._sessions:
            await self._stop_all()

    async def _stop_all(self) -> None:
        self.stop()
        senders = [b.task for b in self._boxes.values() if b.task is not None]
        await asyncio.gather(*senders, return_exceptions=True)
        readings = {b.reading for b in self._boxes.values() if b.reading is not None}
        if readings:  # a reconcile gets a little time to end by itself, then is cut
            _, cut = await asyncio.wait(readings, timeout=STOP_READING)
            for reading in cut:
                reading.cancel()
            await asyncio.gather(*readings, return_exceptions=True)
        if self._notices:  # notifications under way get a little time, not forever
            await asyncio.wait(self._notices, timeout=10)

    # -- one look --------------------------------------------------------------------

    async def _look(self) -> None:
        now = self.clock()
        for box in self._boxes.values():
            if box.task is not None and box.task.done():
                self._ended(box, now)
        starting: dict[str, list[Job]] = {}
        closed: set[str] = set()  # mailboxes whose campaigns are outside their windows
        campaigns = await self.store.campaigns.all()
        for campaign in campaigns:
            counts = await self.store.campaigns.counts(campaign.id)
            self.metrics.recipients(campaign.name, counts)
            self._notice(campaign, counts, now)
            pending = counts[State.PENDING]
            unsettled = counts[State.UNKNOWN] or counts[State.SENDING]
            due = await self._due(campaign, now) if unsettled else set()
            if campaign.state != "active" or not (pending or due):
                continue
            opens = campaign.schedule.next_open(now)
            if opens is None:  # past its deadline, or no window opens before it
                continue
            job = await self._job(campaign)
            if job is None:
                continue
            for address in campaign.mailboxes:
                box = self._box(address)
                if not pending and address not in due:
                    continue
                if box.stopped or (box.rest_until is not None and now < box.rest_until):
                    continue
                if box.task is not None and box.sender is not None:
                    box.sender.add(job)  # its sender sends it when its window opens
                elif opens <= now:
                    starting.setdefault(address, []).append(job)
                else:
                    closed.add(address)
        for address, jobs in starting.items():
            await self._start(self._boxes[address], jobs)
        for address in closed - set(starting):
            if self._boxes[address].task is None:
                self._boxes[address].state = "waiting_window"
        self._first = False
        addresses = {*self.config.mailboxes, *await self.store.receipts.mailboxes()}
        for address in sorted(addresses):
            box = self._box(address)
            await self._measure(box, now)
            if box.reading is None or box.reading.done():
                every = self.config.service.reconcile_every
                if box.reconciled is None or time.monotonic() - box.reconciled >= every:
                    box.reconciled = time.monotonic()
                    box.reading = asyncio.create_task(self._reconcile(box))

    async def _due(self, campaign: CampaignRow, now: datetime) -> set[str]:
        """The mailboxes with a post of ``campaign`` of unknown outcome whose grace period
        is over, or with a claim left ``sending`` while no sender of this process runs
        there (a sender that died after its claim: another host's, or one that failed
        here): their sender, started, turns such a claim ``unknown`` (unless another
        live process holds the mailbox: then it waits), searches the inbox for it and,
        if it left nothing, sends it again."""
        due = set()
        for address in campaign.mailboxes:
            box = self._boxes.get(address)
            idle = box is None or box.task is None
            if idle and await self.store.outbox.in_flight(address):
                due.add(address)
                continue
            for unknown in await self.store.outbox.unknowns(address, campaign.name):
                if unknown.reason is None and unknown.claimed_at + self.options.grace <= now:
                    due.add(address)
                    break
        return due

    def _box(self, address: str) -> _Mailbox:
        if address not in self._boxes:
            self._boxes[address] = _Mailbox(address)
        return self._boxes[address]

    async def _job(self, campaign: CampaignRow) -> Job | None:
        """The campaign as it sends (its folder proven unchanged once); None if it cannot."""
        job = self._jobs.get(campaign.id)
        if job is not None:
            job.campaign = campaign  # its schedule and state as they are now
            return job
        if self._told.get(campaign.id, "").startswith("broken"):
            return None
        try:
            spec = await asyncio.to_thread(
                as_loaded, campaign, shared_templates=self.config.templates, pools=self.config.pools
            )
        except (CampaignChanged, CampaignError) as exc:
            self._tell(campaign, "broken", CAMPAIGN_STOPPED, {"reason": str(exc)})
            log.error("campaign %s cannot be sent: %s", campaign.name, exc)
            return None
        # The shared attachments kept and encoded once, off the event loop, before any post.
        await asyncio.to_thread(message_attachments, spec, None, Archive(self.store.archive_dir))
        job = self._jobs[campaign.id] = Job(campaign, spec, Progress(campaign.name))
        return job

    async def _client(self, address: str) -> PecMassivaClient:
        """The mailbox's client, over a session of its own (see Env.mailbox_clients)."""
        password = self.config.password(address, self.environ)
        if address not in self._opened:
            session = await self._sessions.enter_async_context(self.connect())
            self._opened.setdefault(address, session)  # a reading may have opened one too
        return PecMassivaClient(
            self._opened[address], self.config.mailbox(address).address, password
        )

    async def _start(self, box: _Mailbox, jobs: list[Job]) -> None:
        try:
            client = await self._client(box.address)
        except ConfigError as exc:
            self._stop_box(box, str(exc))
            return
        settings = self.config.mailbox(box.address)
        plan = Plan(settings.daily_limit, settings.monthly_limit)
        sender = MailboxSender(
            self.store,
            Box(client, plan, settings.send_rate, settings.trusted),
            jobs,
            self.options,
            clock=self.clock,
            on_post=lambda outcome: self.metrics.post(box.address, outcome),
            holder=self.instance,
        )
        box.sender, box.rest_until, box.state = sender, None, "sending"
        box.task = asyncio.create_task(sender.run())
        self.metrics.mailbox_state(box.address, "sending")

    def _ended(self, box: _Mailbox, now: datetime) -> None:
        """A mailbox's sender stopped: when to start it again."""
        assert box.task is not None
        task, box.task, box.sender = box.task, None, None
        box.state = "idle"
        if task.cancelled():
            return
        failure = task.exception()
        if isinstance(failure, Unavailable):
            # Nothing is posted without its committed claim; a post whose answer could
            # not be written is ``sending`` still, and searched for when it starts again.
            log.warning(
                "sending from %s paused: %s; trying again in %d s",
                box.address,
                failure,
                DATABASE_RETRY.total_seconds(),
            )
            box.rest_until = now + DATABASE_RETRY
        elif failure is not None:
            log.error("sending from %s failed", box.address, exc_info=failure)
            box.rest_until = now + RETRY_AFTER
            why = f"failed: {failure!r}; trying again in a minute"
            if why != box.failed:  # told once, not at every try
                self._tell_box(box, why)
            box.failed = why
        else:
            end = task.result()
            if end.why == "allowance":
                box.rest_until, box.state = end.renews_at, "waiting_allowance"
            elif end.why == "window":  # the window closed: started again when one opens
                box.state = "waiting_window"
            elif end.why == "busy":  # tried again when a dead holder's lease would lapse
                box.rest_until = now + min(RETRY_AFTER, self.options.lease_ttl)
            elif end.why == "aborted" and isinstance(end.error, AuthenticationError):
                self._stop_box(box, str(end.error))
            elif end.why == "aborted":
                log.warning("%s: %s; trying again in a minute", box.address, end.error)
                box.rest_until = now + RETRY_AFTER
            if end.why != "aborted":
                box.failed = None
        self.metrics.mailbox_state(box.address, box.state)

    def _stop_box(self, box: _Mailbox, why: str) -> None:
        box.stopped, box.state = why, "stopped"
        log.error("%s stopped: %s; the other mailboxes go on", box.address, why)
        self.metrics.mailbox_state(box.address, "stopped")
        self._tell_box(box, why)

    # -- receipts and measures -----------------------------------------------------------

    async def _reconcile(self, box: _Mailbox) -> None:
        try:
            client = await self._client(box.address)
            settings = self.config.mailbox(box.address)
            _, purged = await read_mailbox(
                self.store,
                client,
                trusted=settings.trusted,
                purge_archived=settings.purge_archived,
                page_fetches=self.page_fetches,
            )
        except LeaseBusy:
            return  # a massiva reconcile is on it
        except (ApiError, ConfigError, Unavailable) as exc:
            log.warning("reconciling %s failed: %s; trying again later", box.address, exc)
            return
        except Exception:
            log.exception("reconciling %s failed; trying again later", box.address)
            return
        self.metrics.reconciled(box.address, self.clock())
        if purged.nearly_full:
            log.warning("%s: %s", box.address, purged.warning)

    async def _measure(self, box: _Mailbox, now: datetime) -> None:
        settings = self.config.mailbox(box.address)
        day, month = await self.store.outbox.usage(box.address, day_key(now), month_key(now))
        self.metrics.allowance(
            box.address,
            day_used=day,
            day_limit=settings.daily_limit,
            month_used=month,
            month_limit=settings.monthly_limit,
        )
        self.metrics.unknowns(box.address, len(await self.store.outbox.unknowns(box.address)))
        self.metrics.mailbox_state(box.address, box.state)

    # -- notifications -----------------------------------------------------------------

    def _notice(self, campaign: CampaignRow, counts: Mapping[str, int], now: datetime) -> None:
        """A campaign that finished, or passed its deadline with recipients not sent, is
        told once (those already so when the service starts are not told again)."""
        unsettled = counts[State.PENDING] + counts[State.SENDING] + counts[State.UNKNOWN]
        if unsettled and self._told.get(campaign.id) == "finished":
            del self._told[campaign.id]  # recipients again (added, sent again): told anew
        if not unsettled:
            self._tell(campaign, "finished", CAMPAIGN_FINISHED, {"counts": dict(counts)})
        elif counts[State.PENDING] and campaign.schedule.past_deadline(now):
            reason = f"deadline passed: {counts[State.PENDING]} recipient(s) not sent"
            self._tell(campaign, "deadline", CAMPAIGN_STOPPED, {"reason": reason})

    def _tell(
        self, campaign: CampaignRow, end: str, event: str, payload: Mapping[str, object]
    ) -> None:
        if self._told.get(campaign.id) == end:
            return
        first = self._first and end != "broken"
        self._told[campaign.id] = end
        if first:
            return  # already so before this service started
        log.info("campaign %s: %s", campaign.name, end)
        self._notify(event, {"campaign": campaign.name, **payload})

    def _tell_box(self, box: _Mailbox, why: str) -> None:
        self._notify(MAILBOX_STOPPED, {"mailbox": box.address, "reason": why})

    def _notify(self, event: str, payload: Mapping[str, object]) -> None:
        if self.notifier is None:
            return
        task = asyncio.create_task(self.notifier.notify(event, payload))
        self._notices.add(task)
        task.add_done_callback(self._notices.discard)
