"""The receipt reconciler: a mailbox's inbox -> each recipient's legal outcome.

One run on one mailbox (``reconcile``), under the lease ``reconcile:<mailbox>`` so that
overlapping cron jobs never run twice at once:

1. the mailbox's ``unknown`` recipients are settled (:func:`massiva.unknowns.resolve_unknowns`);
2. the inbox pages that can hold new messages are read, and every message not seen before
   is stored once (keyed by its inbox id) together with the moves it causes, one short
   write transaction per page;
3. receipts stored earlier as orphans whose message id has since become a recipient's
   (the sender's answer, or an inbox search, came after the receipt was read) are tied to
   it and applied;
4. ``sent``/``accepted`` recipients with no final receipt 24 hours after their post
   become ``expired`` ("no delivery receipt": the fate of a non-PEC address).

Whose clock. The vendor dates its receipts by its own clock, which is not ours (and the
simulator's may run hours a second), so time is measured against the vendor's dates on
the vendor's clock: ``clock`` is the vendor's time, which ``massiva reconcile`` takes from
the ``Date`` header of its answers (:class:`massiva.api.vendor_clock.VendorClock`), and a
post's time is the date of its acceptance, the vendor's own stamp of it (the time the
sender recorded only while no acceptance has come: :func:`posted_at`). So a receipt is
"dated in the future" against the vendor's now, and a recipient expires when the vendor's
now is 24 hours past its acceptance. With the real vendor all of this is our clock within
a second or two; with the simulator running fast (``massiva simulator --clock-speed``) it
is the simulator's, so its receipts are trusted and its silent recipients expire on its
day. Only leases run on this machine's clock: they are about its processes.

Moves are forward only: ``sent -> accepted -> delivered | failed``. An acceptance after a
delivery only fills ``accepted_at``; ``delivered`` and ``failed`` are final. ``expired``
is a conclusion drawn from silence, not a receipt: a delivery or failure receipt that
arrives later still moves an expired recipient to ``delivered`` or ``failed``, because the
receipt is the legal evidence. Timestamps are the receipts' own dates, in UTC. Other
messages (``PRESA IN CARICO``, the 12-hour warning, anomalies) are stored and move
nothing; a ``POSTA CERTIFICATA`` from a recipient's address (a reply) is tied to that
recipient, and moves nothing either.

Which receipts are final. ``CONSEGNA`` (delivered), ``NON ACCETTAZIONE``, ``MANCATA
CONSEGNA`` and the virus notices (failed) always are. ``MANCATA CONSEGNA PER SUP. TEMPO
MASSIMO`` is sent twice with the same subject: a warning 12 hours after the post, and
the final notice at 22-24 hours. Its body (fetched for every final receipt) tells them
apart (``errore-consegna`` final, ``preavviso-errore-consegna`` warning); otherwise the
notice is final when its date is 22 hours or more after the recipient's post.

Reading the inbox incrementally. ``GET /inbox`` serves 25 messages a page in an order the
vendor does not document; the only thing trusted is that inbox ids grow with arrival.
The order is detected from the ids within a page, and a cursor per mailbox remembers the
order, the highest id read (``last_id``) and, for the oldest-first order, how many
messages had an id up to it (``position``):

- newest first: new messages are on top; pages are read from the first until one holds a
  message read before. N new messages cost ceil((N + 1) / 25) requests.
- oldest first: new messages are at the end; reading starts at the page that holds
  ``position`` and goes to the last page. That page must start with a message read
  before: if it does not, messages were deleted before it (positions shifted) and every
  page is read instead, which is rare. N new messages cost at most ceil(N / 25) + 1.

Pages are fetched a few at a time (``Reconciler(page_fetches=8)``): the first page of a
reading alone, so that a quiet run costs one request, then up to ``page_fetches`` of the
pages the first shows are needed (every page to the last; newest first, as many as the
inbox grew by). They are stored strictly in page order, whatever order they come in, so
a concurrent reading stores what a reading page after page does. A page that shows fewer
messages than the one stored before it was answered from an older inbox (fetched at the
same time, answered first): a message that came in between may have pushed another past
it, so it is fetched again; if it still shows fewer, messages were deleted.

Every page is read when there is no cursor yet, when the order is not known (an inbox of
at most one message, or pages not ordered by id), when a page contradicts the order, and
on the run after one during which the inbox shrank (a deletion while reading may shift a
message past a page boundary unseen). Storing is idempotent, so reading a page twice
costs a request and nothing else; the cursor moves only after a complete reading, so a
run that dies half-way is simply done again.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from itertools import pairwise

from massiva.api import ApiError, InboxItem, InboxPage, PecMassivaClient
from massiva.lease import dead, held
from massiva.lifecycle import (
    ACCEPTANCE,
    AWAITING_RECEIPT,
    DELIVERY,
    EXPIRY,
    FAILURE,
    POSTED_STATES,
    State,
    check_move,
)
from massiva.purge import Purge, purge
from massiva.receipts import (
    Kind,
    MessageDate,
    ReceiptBody,
    certifiers,
    certifying_address,
    classify,
    normalise,
    parse_body,
    parse_date,
    same_address,
    sender_address,
)
from massiva.store import Cursor, ReceiptBatch, ReceiptRow, Store, Tracked
from massiva.times import utcnow
from massiva.unknowns import DEFAULT_GRACE, Resolution, resolve_unknowns

Clock = Callable[[], datetime]
log = logging.getLogger("massiva.reconcile")

NEWEST_FIRST, OLDEST_FIRST = "newest_first", "oldest_first"
#: Messages a ``GET /inbox`` page holds (vendor spec); the cursor keeps what it saw.
PAGE_SIZE = 25
#: A recipient with no final receipt this long after its post is ``expired``.
EXPIRE_AFTER = timedelta(hours=24)
#: A delivery-time notice this long after the post is the final one (sent at 22-24 h;
#: the warning comes at 12 h).
TIMEOUT_FINAL_AFTER = timedelta(hours=22)
NO_RECEIPT = "no delivery receipt"
#: What a reading strategy says of a page: read the next one, this was the last, or the
#: pages are not as the cursor expects (then every page is read).
_MORE, _LAST, _GIVE_UP = "more", "last", "give up"
#: ``GET /inbox/{id}`` requests in flight.
BODY_FETCHES = 8
#: ``GET /inbox`` requests in flight while the inbox is read (``Reconciler(page_fetches=)``).
PAGE_FETCHES = 8
#: Failed fetches of a receipt's body after which it is no longer tried (it is still
#: counted as missing: ``Summary.bodies_missing``).
BODY_TRIES = 10
#: Receipt bodies fetched late (backfilled) in one run at most: the rest, next run.
BACKFILL = 1_000
#: How far a receipt's date may stray from the run's clock (the vendor's, read to the
#: second from its answers: a receipt may be dated a little ahead of it).
CLOCK_SKEW = timedelta(minutes=15)
#: Why a receipt is not trusted yet: it is checked again at every run (clocks differ).
FUTURE = "dated in the future"
#: Pages one reading reads at most: a vendor that pages without end is not followed
#: (the next run reads every page again, bounded the same way).
MAX_PAGES = 20_000

#: Receipts about a sending: one whose message id is no recipient's is an orphan.
RECEIPT_KINDS = frozenset(
    {
        Kind.ACCEPTED,
        Kind.NOT_ACCEPTED,
        Kind.TAKEN_IN_CHARGE,
        Kind.DELIVERED,
        Kind.NOT_DELIVERED,
        Kind.TIMEOUT,
        Kind.VIRUS,
    }
)
#: What each failure says, before the provider's detail.
_FAILURES = {
    Kind.NOT_ACCEPTED: "not accepted",
    Kind.NOT_DELIVERED: "not delivered",
    Kind.VIRUS: "not delivered: virus",
    Kind.TIMEOUT: "not delivered within the maximum time",
}
#: Receipts that end a recipient's story whatever their date.
_ALWAYS_FINAL = frozenset({Kind.DELIVERED, Kind.NOT_ACCEPTED, Kind.NOT_DELIVERED, Kind.VIRUS})
#: Receipts whose body is kept as evidence (and read: it wins over the subject): the
#: acceptance (it proves when the message left), the final ones, and the delivery-time
#: notices (only the body tells the 24-hour one).
_BODY_KINDS = _ALWAYS_FINAL | {Kind.ACCEPTED, Kind.TIMEOUT}


@dataclass(frozen=True)
class Orphan:
    """A receipt of a sending no recipient has (yet)."""

    inbox_id: int
    kind: str
    subject: str
    date: datetime | None


@dataclass(frozen=True)
class Suspicious:
    """A message that looks like a receipt and is not trusted: it moved nothing."""

    inbox_id: int
    sender: str
    subject: str
    why: str


@dataclass
class Summary:
    """What one run on one mailbox did."""

    mailbox: str
    receipts: Counter[str] = field(default_factory=Counter)  # new messages, by kind
    moved: Counter[str] = field(default_factory=Counter)  # recipients, by the state reached
    orphans: list[Orphan] = field(default_factory=list)  # new orphans
    orphans_matched: int = 0  # earlier orphans tied to a recipient in this run
    orphans_total: int = 0  # orphans stored for this mailbox
    suspicious: list[Suspicious] = field(default_factory=list)  # new untrusted "receipts"
    suspicious_total: int = 0  # untrusted messages stored for this mailbox
    page_limit: bool = False  # the reading stopped at its page limit or a repeated page
    skipped: int = 0  # inbox entries left out: not what the vendor's API documents
    unknowns: Resolution = field(default_factory=Resolution)
    pages: int = 0  # GET /inbox requests of the reading (unknowns' searches not included)
    bodies: int = 0  # GET /inbox/{id} requests
    backfilled: int = 0  # bodies of receipts stored earlier, kept in this run
    bodies_missing: int = 0  # final receipts whose body is not kept yet (tried again later)
    full_scan: bool = False  # every page was read

    @property
    def requests(self) -> int:
        """Requests the reading made: pages and bodies."""
        return self.pages + self.bodies


# -- the state machine -----------------------------------------------------------------


def posted_at(recipient: Tracked) -> datetime | None:
    """When ``recipient`` was posted, on the vendor's clock: the date of its acceptance
    (the vendor's own stamp of the post), else the time the sender recorded."""
    return recipient.accepted_at or recipient.sent_at


def is_final(
    kind: Kind, body_final: bool | None, at: datetime | None, posted: datetime | None
) -> bool | None:
    """Whether a receipt of ``kind`` dated ``at`` ends the story of a recipient posted at
    ``posted`` (:func:`posted_at`); None when that cannot be told yet (a delivery-time
    notice of no known sending, whose body was not read)."""
    if kind is Kind.TIMEOUT:
        if body_final is not None:
            return body_final
        if at is None or posted is None:
            return None
        return at - posted >= TIMEOUT_FINAL_AFTER
    return kind in _ALWAYS_FINAL


def advance(
    recipient: Tracked, kind: Kind, final: bool | None, at: datetime, error: str | None
) -> Tracked:
    """The recipient after one receipt: moves are forward only (see the module's doc)."""
    # An acceptance fills in any posted recipient's accepted_at, and moves a sent one.
    if kind is Kind.ACCEPTED and recipient.state in POSTED_STATES:
        return replace(
            recipient,
            state=ACCEPTANCE.target if recipient.state in ACCEPTANCE.sources else recipient.state,
            accepted_at=recipient.accepted_at or at,
        )
    if recipient.state not in AWAITING_RECEIPT or not final:
        return recipient
    if kind is Kind.DELIVERED:
        return replace(recipient, state=DELIVERY.target, delivered_at=at, reason=None)
    if kind in _FAILURES:
        return replace(recipient, state=FAILURE.target, failed_at=at, reason=error)
    return recipient


def failure_reason(kind: Kind, subject: str, body: ReceiptBody | None) -> str | None:
    """A failure receipt's reason for people: what failed, then the provider's words
    (the daticert's ``errore-esteso`` and ``errore``) or, without a body, the receipt's
    subject prefix. None for a receipt that is no failure."""
    base = _FAILURES.get(kind)
    if base is None:
        return None
    detail = body.detail if body is not None else None
    return f"{base}: {detail or normalise(subject.partition(':')[0]).upper()}"


def suspicion(
    kind: Kind,
    sender: str,
    subject: str,
    at: datetime | None,
    facts: ReceiptBody | None,
    target: Tracked | None,
    trusted: frozenset[str],
    now: datetime,
) -> str | None:
    """Why a message of a receipt's ``kind`` about ``target`` (None: a sending not known
    yet) is not trusted; None when it is, or is no receipt at all.

    Anyone can write to a PEC mailbox, but the provider wraps what others write
    (``POSTA CERTIFICATA:``, ``ANOMALIA MESSAGGIO:``): a receipt comes from the
    provider's certifying sender (``trusted``), quotes the subject that was sent, is
    dated after the post and not in the future and, when its body was read, its
    daticert names that sending and that recipient.
    """
    if kind not in RECEIPT_KINDS:
        return None
    if certifying_address(sender) not in trusted:
        return f"not from the provider's certifying sender ({', '.join(sorted(trusted))})"
    if at is None:
        return "its date cannot be read"
    if at > now + CLOCK_SKEW:
        return FUTURE
    if target is None:
        return None  # checked again once its sending is known
    if target.message_id is None or not classify(subject).is_about(
        target.subject, target.message_id
    ):
        return "its subject does not quote the subject that was sent"
    if target.sent_at is not None and at < target.sent_at - CLOCK_SKEW:
        return "dated before the post"
    if facts is not None:
        if facts.message_id not in (None, target.message_id):
            return f"its daticert is about message {facts.message_id}"
        named = {same_address(a) for a in (*facts.destinatari, facts.consegna or "") if a}
        if same_address(target.address) not in named:
            return "its daticert does not name the recipient"
    return None


def _facts(body: str) -> ReceiptBody | None:
    """What a receipt's body says; None when it says nothing (neither X-Ricevuta nor a
    daticert.xml: the vendor may give only the original text), and the subject stands."""
    facts = parse_body(body)
    return facts if facts.says is not None else None


def _direction(ids: Sequence[int]) -> str | None:
    """The order of a page's ids: ``newest_first``, ``oldest_first``, "mixed" when
    neither, None with fewer than two."""
    if len(ids) < 2:
        return None
    if all(a > b for a, b in pairwise(ids)):
        return NEWEST_FIRST
    if all(a < b for a, b in pairwise(ids)):
        return OLDEST_FIRST
    return "mixed"


def _last_page(page: InboxPage) -> int:
    """How far a reading to the last page goes, as ``page`` tells."""
    return page.pages


def _replier(candidates: Sequence[Tracked], subject: str) -> Tracked | None:
    """Whom a certified message from a recipient's address answers: the recipient whose
    subject it quotes, else the one posted last."""
    quoted = [c for c in candidates if c.subject.casefold() in subject.casefold()]
    pool = quoted or list(candidates)
    return max(pool, key=lambda c: (c.sent_at is not None, c.sent_at, c.id)) if pool else None


# -- one message read from the inbox ---------------------------------------------------


@dataclass
class _Message:
    """A new message of the inbox, as classified (by its body, once fetched)."""

    item: InboxItem
    kind: Kind
    subject_kind: Kind
    tokens: tuple[str, ...]  # candidate message ids, best first
    date: MessageDate | None
    body: str | None = None
    facts: ReceiptBody | None = None
    tries: int = 0  # failed fetches of its body

    @classmethod
    def read(cls, item: InboxItem) -> _Message:
        parsed = classify(item.subject)
        token = parsed.token
        return cls(item, parsed.kind, parsed.kind, (token,) if token else (), parse_date(item.date))

    def with_body(self, body: str) -> None:
        """The body wins over the subject where it says something."""
        self.body = body
        self.facts = _facts(body)
        if self.facts is None:
            return  # a body that names no kind (the original text only): the subject stands
        self.kind = self.facts.kind(self.subject_kind) or self.subject_kind
        named = self.facts.message_id
        if named:
            self.tokens = (named, *(t for t in self.tokens if t != named))

    @property
    def at(self) -> datetime | None:
        return self.date.utc if self.date else None

    def row(self, target: Tracked | None, final: bool | None) -> ReceiptRow:
        return ReceiptRow(
            inbox_id=self.item.id,
            kind=self.kind.value,
            final=final,
            message_id=target.message_id if target else (self.tokens[0] if self.tokens else None),
            recipient_id=target.id if target else None,
            sender=self.item.sender,
            recipient=self.item.recipient,
            subject=self.item.subject,
            date_raw=self.item.date,
            date_utc=self.at,
            date_offset=self.date.offset if self.date else None,
            body=self.body,
            error=failure_reason(self.kind, self.item.subject, self.facts),
            body_tries=self.tries,
        )


@dataclass
class _Reading:
    """What one reading of the inbox saw: for the next cursor."""

    page_size: int | None
    last_id: int | None = None  # the highest id read
    position: int | None = None  # its place from the oldest (meaningful oldest first)
    total: int | None = None
    shrank: bool = False  # the inbox lost messages while it was read
    orders: set[str | None] = field(default_factory=set)

    def saw(self, number: int, page: InboxPage) -> None:
        if self.total is not None and page.total < self.total:
            self.shrank = True
        self.total = page.total
        self.orders.add(_direction([i.id for i in page.items]))
        for index, item in enumerate(page.items):
            if self.last_id is None or item.id > self.last_id:
                self.last_id = item.id
                self.position = (number - 1) * (self.page_size or 0) + index + 1

    def cursor(self, mailbox: str, order: str | None, before: Cursor | None) -> Cursor:
        last_ids = [i for i in (self.last_id, before.last_id if before else None) if i is not None]
        return Cursor(
            mailbox=mailbox,
            order=order,
            last_id=max(last_ids) if last_ids else None,
            position=self.position if order == OLDEST_FIRST else None,
            page_size=self.page_size,
            total=self.total or 0,
            rescan=self.shrank,
        )


# -- the run ---------------------------------------------------------------------------


class Reconciler:
    """Reconciles one mailbox: see the module's doc. ``clock`` is the vendor's time
    (default: ours), against which receipts are dated; ``claims_clock`` the one massiva
    send records its claims on (default: ``clock``), against which the grace of a post of
    unknown outcome is measured: with a vendor ahead of us, its clock would cut the grace
    short and a post that did leave could be sent again."""

    def __init__(
        self,
        store: Store,
        client: PecMassivaClient,
        mailbox: str,
        *,
        clock: Clock = utcnow,
        claims_clock: Clock | None = None,
        grace: timedelta = DEFAULT_GRACE,
        trusted: frozenset[str] | None = None,
        max_pages: int = MAX_PAGES,
        page_fetches: int = PAGE_FETCHES,
    ) -> None:
        if page_fetches < 1:
            raise ValueError(f"page_fetches must be 1 or more, not {page_fetches}")
        self.store = store
        self.max_pages = max_pages
        # Inbox pages fetched at once when a reading needs many (1: one after another).
        self.page_fetches = page_fetches
        self.client = client
        self.mailbox = mailbox
        self.clock = clock
        self.claims_clock = claims_clock or clock
        self.grace = grace
        # Who writes this mailbox's receipts (massiva.toml's certifying_senders).
        self.trusted = trusted or certifiers(mailbox)
        self.summary = Summary(mailbox)
        # Each recipient's state before its first move in this run, and after its last.
        self._before: dict[int, str] = {}
        self._after: dict[int, str] = {}

    async def _adopt_orphaned_sends(self) -> None:
        """Rows a killed sender left ``sending`` become ``unknown`` (and are then searched
        for), unless a sender is running on the mailbox now: they may be its own. The
        send lease is only read, never taken: a sender starting now must not find it
        busy."""
        name = f"send:{self.mailbox}"
        holder = await self.store.outbox.lease_holder(name, utcnow())
        if holder is not None and not dead(holder, self.store):
            return
        await self.store.outbox.orphaned_sends(
            self.mailbox,
            self.claims_clock(),
            unless_held=name,
            wall=utcnow(),
            dead=(holder,) if holder else (),
        )

    async def run(self) -> Summary:
        """Reconcile the mailbox once. Raises :class:`~massiva.lease.LeaseBusy` when
        another reconciler is on it, and the API's errors when the vendor fails."""
        # Leases live in real time (they are about processes), whatever the run's clock.
        async with held(self.store, f"reconcile:{self.mailbox}"):
            await self._adopt_orphaned_sends()
            self.summary.unknowns = await resolve_unknowns(
                self.store,
                self.client,
                self.mailbox,
                now=self.claims_clock(),  # claimed_at is on the sender's clock
                grace=self.grace,
                trusted=self.trusted,
            )
            await self._backfill()  # before the reading: what it stores waits a run
            await self._read_inbox()
            await self._match_orphans()
            await self._expire()
            self.summary.orphans_total = await self.store.receipts.count_orphans(
                self.mailbox, RECEIPT_KINDS
            )
            self.summary.suspicious_total = len(await self.store.receipts.suspicious(self.mailbox))
            self.summary.bodies_missing = await self.store.receipts.count_bodiless(
                self.mailbox, [k.value for k in _BODY_KINDS]
            )
        self.summary.moved = Counter(
            after for rid, after in self._after.items() if after != self._before[rid]
        )
        return self.summary

    # -- reading the inbox -------------------------------------------------------------

    async def _read_inbox(self) -> None:
        before = await self.store.receipts.cursor(self.mailbox)
        reading: _Reading | None = None
        if before is not None and before.last_id is not None and not before.rescan:
            if before.order == NEWEST_FIRST:
                reading = await self._newest_first(before, before.last_id)
            elif before.order == OLDEST_FIRST:
                reading = await self._oldest_first(before, before.last_id)
        order = before.order if before else None
        if reading is None:
            self.summary.full_scan = True
            reading = await self._every_page()
            known = reading.orders - {None}
            order = known.pop() if len(known) == 1 and "mixed" not in known else None
        cursor = reading.cursor(self.mailbox, order, before)
        await self.store.receipts.save_cursor(cursor, self.clock())

    async def _newest_first(self, before: Cursor, last_id: int) -> _Reading | None:
        """Pages from the first until one holds a message read before; None if the pages
        are not newest first (then every page is read)."""

        def check(number: int, page: InboxPage) -> str:
            ids = [i.id for i in page.items]
            if _direction(ids) not in (None, NEWEST_FIRST):
                return _GIVE_UP
            if ids and number < page.pages and min(ids) > last_id:
                return _MORE
            return _LAST

        def reach(page: InboxPage) -> int:
            # The page of the newest message read before, if the inbox only grew since.
            return math.ceil((page.total - before.total + 1) / max(page.size, 1))

        return await self._walk(_Reading(before.page_size), 1, check, reach)

    async def _oldest_first(self, before: Cursor, last_id: int) -> _Reading | None:
        """From the page holding the cursor's position to the last; None if that page
        does not start with a message read before, or the pages changed shape."""
        size = before.page_size or PAGE_SIZE
        first = max(1, math.ceil((before.position or 1) / size))

        def check(number: int, page: InboxPage) -> str:
            ids = [i.id for i in page.items]
            if _direction(ids) not in (None, OLDEST_FIRST):
                return _GIVE_UP
            if number == first and (not ids or ids[0] > last_id):
                return _GIVE_UP  # messages before the anchor were deleted: positions shifted
            if number < page.pages and page.size != size:
                return _GIVE_UP  # the vendor changed its page size
            return _MORE if number < page.pages else _LAST

        return await self._walk(_Reading(size), first, check, _last_page)

    async def _every_page(self) -> _Reading:
        reading = _Reading(None)

        def check(number: int, page: InboxPage) -> str:
            if number == 1 and page.pages > 1:
                reading.page_size = page.size
            return _MORE if page.items and number < page.pages else _LAST

        read = await self._walk(reading, 1, check, _last_page)
        assert read is not None  # this check never gives up
        return read

    async def _walk(
        self,
        reading: _Reading,
        first: int,
        check: Callable[[int, InboxPage], str],
        reach: Callable[[InboxPage], int],
    ) -> _Reading | None:
        """Read pages from ``first`` while ``check`` says there are more; None when it
        gives up.

        The first page is read alone (a quiet run costs one request); after it, the pages
        up to the last one ``reach`` says a page shows can be needed are fetched
        ``page_fetches`` at a time, and stored strictly in page order as they come, so
        the store ends as a reading one page after another leaves it. A page is fetched
        again when it shows fewer messages than the page stored before it: it was
        answered first, from an older inbox, and messages that came in between may have
        pushed one past it unseen (newest first); a second time, it is a deletion."""
        last = first  # the highest page number known to be needed
        fetches = {first: asyncio.create_task(self._page(first))}
        number, seen = first, None
        try:
            while True:
                page = await fetches.pop(number)
                if reading.total is not None and page.total < reading.total:
                    page = await self._page(number)
                verdict = check(number, page)
                if verdict == _GIVE_UP:
                    return None
                ids = [item.id for item in page.items]
                if verdict == _MORE and (ids == seen or number - first + 1 >= self.max_pages):
                    # A page that repeats the last one, or paging without end: stop here,
                    # and read every page next time (nothing is skipped for good).
                    self.summary.page_limit = reading.shrank = True
                    verdict = _LAST
                seen = ids
                if verdict == _MORE:
                    # Fetched before this page is stored: the requests' wait and the
                    # database's work overlap.
                    last = max(last, number + 1, min(reach(page), first + self.max_pages - 1))
                    for ahead in range(number + 1, min(last, number + self.page_fetches) + 1):
                        if ahead not in fetches:
                            fetches[ahead] = asyncio.create_task(self._page(ahead))
                reading.saw(number, page)
                await self._take(page.items)
                if verdict == _LAST:
                    return reading
                number += 1
        finally:
            for fetch in fetches.values():  # ahead of a last page, or of an error
                fetch.cancel()
            await asyncio.gather(*fetches.values(), return_exceptions=True)

    async def _page(self, number: int) -> InboxPage:
        self.summary.pages += 1
        page = await self.client.inbox(page=number)
        for why in page.skipped:  # one bad entry does not spoil the others: said, and left
            log.warning("%s, inbox page %s: an entry was left out: %s", self.mailbox, number, why)
        self.summary.skipped += len(page.skipped)
        return page

    # -- storing and applying ----------------------------------------------------------

    async def _take(self, items: Sequence[InboxItem]) -> None:
        """Store the new messages of one page and apply them, in one transaction."""
        stored = await self.store.receipts.stored(self.mailbox, [i.id for i in items])
        messages = [
            _Message.read(i) for i in sorted(items, key=lambda i: i.id) if i.id not in stored
        ]
        if not messages:
            return
        await self._fetch_bodies(messages)
        now = self.clock()
        async with self.store.receipts.batch() as batch:
            known = await batch.by_message_id(self.mailbox, {t for m in messages for t in m.tokens})
            repliers = await batch.by_address(
                self.mailbox,
                {
                    address
                    for m in messages
                    if m.kind is Kind.CERTIFIED
                    and not any(t in known for t in m.tokens)
                    and (address := sender_address(m.item.sender))
                },
            )
            current = {t.id: t for t in known.values()}
            rows = []
            for message in messages:
                target = next((known[t] for t in message.tokens if t in known), None)
                why = self._suspicion(message, current[target.id] if target else None, now)
                if why is not None:
                    rows.append(self._suspicious(message, why))
                    continue
                if target is None:
                    rows.append(self._unmatched(message, repliers))
                    continue
                target = current[target.id]
                final = is_final(
                    message.kind,
                    message.facts.final if message.facts else None,
                    message.at,
                    posted_at(target),
                )
                row = message.row(target, final)
                current[target.id] = advance(
                    target, message.kind, final, message.at or now, row.error
                )
                rows.append(row)
            await batch.insert(self.mailbox, rows, now)
            await self._write_moves(batch, known.values(), current, now)
        self.summary.receipts.update(m.kind.value for m in messages)

    def _suspicion(self, message: _Message, target: Tracked | None, now: datetime) -> str | None:
        item = message.item
        return suspicion(
            message.kind,
            item.sender,
            item.subject,
            message.at,
            message.facts,
            target,
            self.trusted,
            now,
        )

    def _suspicious(self, message: _Message, why: str) -> ReceiptRow:
        """An untrusted "receipt": kept as it came, tied to nobody, moving nothing."""
        item = message.item
        self.summary.suspicious.append(Suspicious(item.id, item.sender, item.subject, why))
        return replace(message.row(None, None), suspicious=why)

    def _unmatched(self, message: _Message, repliers: dict[str, list[Tracked]]) -> ReceiptRow:
        """A message of no known sending: a reply from a recipient, or an orphan."""
        if message.kind is Kind.CERTIFIED:
            address = sender_address(message.item.sender)
            replier = _replier(repliers.get(address or "", []), message.item.subject)
            if replier is not None:
                return replace(message.row(None, False), recipient_id=replier.id)
        row = message.row(
            None, is_final(message.kind, message.facts.final if message.facts else None, None, None)
        )
        if message.kind in RECEIPT_KINDS:
            self.summary.orphans.append(
                Orphan(message.item.id, message.kind.value, message.item.subject, message.at)
            )
        return row

    async def _fetch_bodies(self, messages: Sequence[_Message]) -> None:
        """Fetch the bodies of the final receipts: evidence, and the body's word wins. A
        body that cannot be fetched now (gone, unreadable, the vendor failing) leaves the
        subject's word and is tried again by the next runs (:meth:`_backfill`)."""
        wanted = [m for m in messages if m.subject_kind in _BODY_KINDS]
        bodies = await self._bodies([m.item.id for m in wanted])
        for message in wanted:
            body = bodies.get(message.item.id)
            if body is None:
                message.tries = 1
            else:
                message.with_body(body)

    async def _backfill(self) -> None:
        """Keep the bodies of final receipts stored without one (stored before bodies
        were kept, or whose fetch failed): evidence only, the outcomes stay as decided."""
        kinds = [k.value for k in _BODY_KINDS]
        wanted = await self.store.receipts.bodiless(self.mailbox, kinds, BODY_TRIES, BACKFILL)
        bodies = await self._bodies(wanted)
        await self.store.receipts.keep_bodies(
            self.mailbox, bodies.items(), [i for i in wanted if i not in bodies]
        )
        self.summary.backfilled = len(bodies)

    async def _bodies(self, inbox_ids: Sequence[int]) -> dict[int, str]:
        """``GET /inbox/{id}`` of each id, a few at a time: inbox id -> body, for those
        the vendor gave."""
        slots = asyncio.Semaphore(BODY_FETCHES)
        found: dict[int, str] = {}

        async def fetch(inbox_id: int) -> None:
            async with slots:
                self.summary.bodies += 1
                try:
                    found[inbox_id] = (await self.client.message(inbox_id)).body
                except ApiError as exc:  # deleted since, unreadable, the vendor failing
                    log.warning("the body of message %s could not be fetched: %s", inbox_id, exc)

        await asyncio.gather(*(fetch(i) for i in inbox_ids))
        return found

    async def _write_moves(
        self,
        batch: ReceiptBatch,
        before: Iterable[Tracked],
        after: dict[int, Tracked],
        now: datetime,
    ) -> None:
        moves = [(b, after[b.id]) for b in before if after[b.id] != b]
        for b, a in moves:
            check_move(b.state, a.state)
        await batch.move(moves, now)
        for b, a in moves:
            self._before.setdefault(b.id, b.state)
            self._after[b.id] = a.state

    async def _match_orphans(self) -> None:
        now = self.clock()
        async with self.store.receipts.batch() as batch:
            found = await batch.known_orphans(self.mailbox, recheck=FUTURE)
            if not found:
                return
            first = {t.id: t for _, t in found}
            current = dict(first)
            ties, doubts = [], []
            for receipt, tracked in found:
                kind = Kind(receipt.kind)
                target = current[tracked.id]
                facts = _facts(receipt.body) if receipt.body is not None else None
                why = suspicion(
                    kind,
                    receipt.sender,
                    receipt.subject,
                    receipt.date_utc,
                    facts,
                    target,
                    self.trusted,
                    now,
                )
                if why is not None:
                    if why != receipt.suspicious:  # new doubt (one checked again stays)
                        doubts.append((receipt, why))
                    continue
                final = (
                    receipt.final
                    if receipt.final is not None
                    else is_final(kind, None, receipt.date_utc, posted_at(target))
                )
                current[target.id] = advance(
                    target, kind, final, receipt.date_utc or now, receipt.error
                )
                ties.append((receipt.inbox_id, target.id, final))
            await batch.attach(self.mailbox, ties)
            await batch.distrust(self.mailbox, [(r.inbox_id, why) for r, why in doubts])
            await self._write_moves(batch, first.values(), current, now)
        tied = {inbox_id for inbox_id, _, _ in ties}
        self.summary.orphans_matched += sum(
            1 for r, _ in found if Kind(r.kind) in RECEIPT_KINDS and r.inbox_id in tied
        )
        self.summary.suspicious += [
            Suspicious(r.inbox_id, r.sender, r.subject, why) for r, why in doubts
        ]

    async def _expire(self) -> None:
        now = self.clock()  # the vendor's: 24 hours after its acceptance (posted_at)
        async with self.store.receipts.batch() as batch:
            expired = await batch.expire(self.mailbox, now - EXPIRE_AFTER, NO_RECEIPT, now)
        for rid in expired:
            self._before.setdefault(rid, State.SENT)  # it was sent or accepted: not expired
            self._after[rid] = EXPIRY.target


async def read_mailbox(
    store: Store,
    client: PecMassivaClient,
    *,
    trusted: frozenset[str] | None = None,
    purge_archived: bool = False,
    max_pages: int = MAX_PAGES,
    page_fetches: int = PAGE_FETCHES,
) -> tuple[Summary, Purge]:
    """Reconcile ``client``'s mailbox as ``massiva reconcile`` and ``massiva run`` do:
    receipts dated on the vendor's clock, claims on ours (massiva send's); then, the
    receipts it read committed, purge what is kept (when ``purge_archived``) and read the
    quota (:mod:`massiva.purge`). Raises :class:`~massiva.lease.LeaseBusy` when another
    reconciler holds the mailbox."""
    mailbox = client.username
    summary = await Reconciler(
        store,
        client,
        mailbox,
        clock=client.vendor_clock.now,  # the receipts' clock: see the module
        claims_clock=utcnow,  # massiva send's, as it records its claims
        trusted=trusted,
        max_pages=max_pages,
        page_fetches=page_fetches,
    ).run()
    return summary, await purge(store, client, mailbox, enabled=purge_archived)


async def reconcile(
    store: Store,
    client: PecMassivaClient,
    mailbox: str,
    *,
    clock: Clock = utcnow,
    grace: timedelta = DEFAULT_GRACE,
    trusted: frozenset[str] | None = None,
) -> Summary:
    """Reconcile ``mailbox`` once (see the module's doc); ``client`` is its PEC Massiva
    client, ``trusted`` who writes its receipts (default: its provider's
    ``posta-certificata@``), ``clock`` the vendor's time. Raises
    :class:`~massiva.lease.LeaseBusy` when another reconciler holds it."""
    return await Reconciler(
        store,
        client,
        mailbox,
        clock=clock,
        grace=grace,
        trusted=trusted,
    ).run()
