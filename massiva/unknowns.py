"""Settling recipients whose post may or may not have left (state ``unknown``).

A timeout, a 5xx or a dropped connection after ``POST /send`` left, or a sender killed
between its claim and its answer, leaves a recipient ``unknown``. It is never posted
again blindly: its mailbox is searched for the proof receipts (an acceptance, or a
refusal after receipt) of the same subject, and each receipt's body is read for whom it
is about. A receipt is matched to a recipient only by the recipient fields of its
``daticert.xml`` (``destinatari``, ``consegna``), compared as whole addresses; never by
an address "appearing somewhere" in it (every acceptance names the sending mailbox too,
and ``brien@x.it`` appears inside ``o'brien@x.it``).

For each unknown recipient, one of:

- **adopt**: exactly one receipt of no recipient yet names its address, alone, and no
  other unsettled recipient of that subject waits at that address: it is ``sent`` under
  that receipt's message id;
- **ambiguous**: receipts name its address but cannot be told apart (several receipts,
  several waiting rows, or a receipt naming several addresses): nothing is decided; it
  stays ``unknown``, flagged for an operator (``massiva unknowns``), and from then on
  is neither adopted nor sent again by itself;
- **requeue**: no receipt names it, the grace period has passed (the provider
  acknowledges a sending within seconds) and no operator was asked: the post provably
  left nothing, and it goes back to ``pending``;
- **wait**: no receipt yet, still within the grace period.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from massiva.api import BadAnswer, NotFound, PecMassivaClient
from massiva.receipts import (
    Kind,
    certifiers,
    certifying_address,
    classify,
    normalise,
    parse_body,
    same_address,
)
from massiva.store import Store, Unknown

DEFAULT_GRACE = timedelta(minutes=30)
# Receipts that prove a sending happened (an acceptance, or a refusal after receipt).
_PROOF = frozenset({Kind.ACCEPTED, Kind.NOT_ACCEPTED, Kind.VIRUS})
# A search reads at most this many pages of one subject (a vendor paging without end).
MAX_SEARCH_PAGES = 2000


class Decision(enum.StrEnum):
    """What the search says of one unknown recipient."""

    ADOPT = "adopt"
    AMBIGUOUS = "ambiguous"
    REQUEUE = "requeue"
    WAIT = "wait"


@dataclass(frozen=True)
class Candidate:
    """A proof receipt of a sending titled as an unknown recipient's, of no recipient yet."""

    inbox_id: int
    message_id: str
    kind: Kind
    date: str
    names: tuple[str, ...]  # the recipients its daticert names, normalised


@dataclass(frozen=True)
class Verdict:
    """One unknown recipient, the receipts that name it, and what follows."""

    unknown: Unknown
    candidates: tuple[Candidate, ...]
    decision: Decision
    why: str


@dataclass
class Resolution:
    """What a pass over the unknown recipients did."""

    adopted: int = 0  # receipt found: sent, with its message id
    requeued: int = 0  # no receipt after the grace period: pending again
    waiting: int = 0  # no receipt yet, still within the grace period
    ambiguous: int = 0  # receipts that cannot be told apart: for an operator


async def _candidates(
    client: PecMassivaClient, store: Store, subject: str, trusted: frozenset[str]
) -> list[Candidate]:
    """Proof receipts of sendings titled ``subject``, from the provider's certifying
    sender (``trusted``), whose message id no recipient has, each with the recipients
    its body names."""
    found: dict[str, tuple[int, Kind, str, bool]] = {}  # id -> inbox id, kind, date, trusted
    page, pages, seen = 1, 1, None
    while page <= min(pages, MAX_SEARCH_PAGES):
        result = await client.inbox(page=page, q=subject)
        ids = [item.id for item in result.items]
        if not ids or ids == seen:  # an empty or a repeated page: the end, whatever it says
            break
        seen = ids
        for item in result.items:
            parsed = classify(item.subject)
            token = parsed.token
            if parsed.kind in _PROOF and token and parsed.is_about(subject, token):
                # One from another sender proves nothing, but may be the vendor's own
                # (a certifying sender not configured): it is read as naming nobody,
                # which keeps the recipients of this subject from being sent again.
                is_trusted = certifying_address(item.sender) in trusted
                found.setdefault(token, (item.id, parsed.kind, item.date, is_trusted))
        pages, page = result.pages, page + 1
    taken = await store.outbox.message_ids_taken(list(found))
    candidates = []
    for message_id, (inbox_id, kind, date, is_trusted) in found.items():
        if message_id in taken:
            continue
        if not is_trusted:
            candidates.append(Candidate(inbox_id, message_id, kind, date, ()))
            continue
        try:
            body = parse_body((await client.message(inbox_id)).body)
        except (NotFound, BadAnswer):  # gone since the page was read, or unreadable: anyone's
            candidates.append(Candidate(inbox_id, message_id, kind, date, ()))
            continue
        if body.kind(kind) is not None and body.kind(kind) not in _PROOF:
            continue  # the body says it is something else
        if body.message_id not in (None, message_id):
            continue  # the daticert is another sending's
        names = {same_address(a) for a in (*body.destinatari, body.consegna or "") if a.strip()}
        candidates.append(Candidate(inbox_id, message_id, kind, date, tuple(sorted(names))))
    return candidates


async def examine(
    store: Store,
    client: PecMassivaClient,
    mailbox: str,
    *,
    now: datetime,
    grace: timedelta = DEFAULT_GRACE,
    campaign: str | None = None,
    trusted: frozenset[str] | None = None,
) -> list[Verdict]:
    """What the mailbox's inbox says of each ``unknown`` recipient of ``mailbox`` (of
    ``campaign``, if named); nothing is changed. One search per distinct subject;
    ``trusted`` writes the mailbox's receipts (default: its provider's
    ``posta-certificata@``)."""
    trusted = trusted or certifiers(mailbox)
    # Receipts quote a subject whatever its case and spacing: unknowns whose subjects
    # differ only so compete for the same receipts, and are decided together.
    by_subject: dict[str, list[Unknown]] = defaultdict(list)
    for unknown in await store.outbox.unknowns(mailbox):
        by_subject[_key(unknown.subject)].append(unknown)
    in_flight = await store.outbox.in_flight(mailbox)
    verdicts = []
    for key, waiting in by_subject.items():
        if campaign is not None and all(u.campaign != campaign for u in waiting):
            continue
        candidates: dict[str, Candidate] = {}
        for subject in dict.fromkeys(u.subject for u in waiting):  # each spelling, once
            for found in await _candidates(client, store, subject, trusted):
                candidates.setdefault(found.message_id, found)
        # A post in flight to the same address may be the one a receipt answers.
        rivals = {same_address(a) for a, s in in_flight if _key(s) == key}
        receipts = list(candidates.values())
        for unknown in waiting:
            if campaign is None or unknown.campaign == campaign:
                verdicts.append(_verdict(unknown, waiting, rivals, receipts, now, grace))
    return verdicts


def _key(subject: str) -> str:
    return normalise(subject).casefold()


def _verdict(
    unknown: Unknown,
    waiting: Sequence[Unknown],
    rivals: set[str],
    candidates: Sequence[Candidate],
    now: datetime,
    grace: timedelta,
) -> Verdict:
    address = same_address(unknown.address)
    if unknown.reason is not None:  # flagged for an operator: only an operator decides
        return Verdict(unknown, (), Decision.AMBIGUOUS, unknown.reason)
    naming = tuple(c for c in candidates if address in c.names)
    unread = tuple(c for c in candidates if not c.names)
    if address in rivals:
        why = "a post to the same address is in flight: decided at the next search"
        return Verdict(unknown, naming, Decision.WAIT, why)
    rows = sum(1 for u in waiting if same_address(u.address) == address)
    if len(naming) == 1 and rows == 1 and naming[0].names == (address,):
        return Verdict(unknown, naming, Decision.ADOPT, f"receipt {naming[0].inbox_id}")
    if naming or unread:
        ids = ", ".join(str(c.inbox_id) for c in naming or unread)
        why = (
            f"{len(naming)} receipt(s) (inbox ids {ids}) name {unknown.address},"
            f" for {rows} unsettled recipient(s) at that address"
            if naming
            else f"receipt(s) of this subject could not be read (inbox ids {ids}):"
            " one may be its own"
        )
        return Verdict(unknown, naming or unread, Decision.AMBIGUOUS, why)
    if now - unknown.claimed_at >= grace:
        return Verdict(unknown, naming, Decision.REQUEUE, "no receipt after the grace period")
    return Verdict(unknown, naming, Decision.WAIT, "no receipt yet")


async def resolve_unknowns(
    store: Store,
    client: PecMassivaClient,
    mailbox: str,
    *,
    now: datetime,
    grace: timedelta = DEFAULT_GRACE,
    trusted: frozenset[str] | None = None,
) -> Resolution:
    """Search the mailbox for every ``unknown`` recipient of ``mailbox`` and settle what
    the inbox proves (see the module's doc)."""
    resolution = Resolution()
    for verdict in await examine(store, client, mailbox, now=now, grace=grace, trusted=trusted):
        unknown = verdict.unknown
        if verdict.decision is Decision.ADOPT:
            if await store.outbox.adopt(unknown.id, verdict.candidates[0].message_id, now):
                resolution.adopted += 1
        elif verdict.decision is Decision.AMBIGUOUS:
            if unknown.reason is None:
                await store.outbox.flag(unknown.id, f"ambiguous: {verdict.why}")
            resolution.ambiguous += 1
        elif verdict.decision is Decision.REQUEUE:
            if await store.outbox.requeue(unknown.id, now):
                resolution.requeued += 1
        else:
            resolution.waiting += 1
    return resolution
