"""Resolving recipients whose post may or may not have left (state ``unknown``).

A timeout, a 5xx or a dropped connection after ``POST /send`` left, or a sender killed
between its claim and its answer, leaves a recipient ``unknown``. It is never posted
again blindly. Its mailbox is searched for a receipt of the same subject that names the
same recipient: found, the recipient is ``sent`` under that receipt's message id; not
found once the grace period has passed (the provider acknowledges a sending within
seconds), the post provably left nothing, and the recipient goes back to ``pending``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from massiva.api import PecMassivaClient
from massiva.receipts import Kind, classify
from massiva.store import Store, Unknown

DEFAULT_GRACE = timedelta(minutes=30)
# Receipts that prove a sending happened (an acceptance, or a refusal after receipt).
_PROOF = frozenset({Kind.ACCEPTED, Kind.NOT_ACCEPTED, Kind.VIRUS})


@dataclass
class Resolution:
    """What a pass over the unknown recipients did."""

    adopted: int = 0  # receipt found: sent, with its message id
    requeued: int = 0  # no receipt after the grace period: pending again
    waiting: int = 0  # no receipt yet, still within the grace period


def _names(body: str, address: str) -> bool:
    """True if ``body`` names ``address`` as a whole address, not inside a longer one."""
    return re.search(rf"(?<![\w.+-]){re.escape(address)}(?![\w-]|\.\w)", body) is not None


async def _candidates(client: PecMassivaClient, subject: str) -> dict[str, int]:
    """Proof receipts of sendings titled ``subject``: message id -> inbox id."""
    found: dict[str, int] = {}
    page, pages = 1, 1
    while page <= pages:
        result = await client.inbox(page=page, q=subject)
        for item in result.items:
            parsed = classify(item.subject)
            token = parsed.token
            if parsed.kind in _PROOF and token and parsed.is_about(subject, token):
                found.setdefault(token, item.id)
        pages, page = result.pages, page + 1
    return found


async def resolve_unknowns(
    store: Store,
    client: PecMassivaClient,
    mailbox: str,
    *,
    now: datetime,
    grace: timedelta = DEFAULT_GRACE,
) -> Resolution:
    """Search the mailbox for every ``unknown`` recipient of ``mailbox`` and settle it.

    One search per distinct subject; a receipt's body is fetched only when its message id
    is tied to no recipient yet, to learn whom it names.
    """
    resolution = Resolution()
    by_subject: dict[str, list[Unknown]] = defaultdict(list)
    for unknown in await store.outbox.unknowns(mailbox):
        by_subject[unknown.subject].append(unknown)
    for subject, waiting in by_subject.items():
        await _settle(store, client, mailbox, subject, waiting, now, grace, resolution)
    return resolution


async def _settle(
    store: Store,
    client: PecMassivaClient,
    mailbox: str,
    subject: str,
    waiting: Sequence[Unknown],
    now: datetime,
    grace: timedelta,
    resolution: Resolution,
) -> None:
    # The same address may wait in two campaigns of the mailbox: oldest claim first.
    left: dict[str, list[Unknown]] = defaultdict(list)
    for unknown in sorted(waiting, key=lambda u: u.claimed_at):
        left[unknown.address].append(unknown)
    for message_id, inbox_id in (await _candidates(client, subject)).items():
        if not left:
            break
        if await store.outbox.message_id_taken(message_id):
            continue
        body = (await client.message(inbox_id)).body.casefold()
        for address in [a for a in left if _names(body, a)]:
            found = left[address].pop(0)
            if not left[address]:
                del left[address]
            await store.outbox.mark_sent(found.id, message_id, found.claimed_at)
            resolution.adopted += 1
            break  # one sending per recipient: the next candidate for the next one
    for unknown in (u for rows in left.values() for u in rows):
        if now - unknown.claimed_at < grace:
            resolution.waiting += 1
            continue
        await store.outbox.release(unknown.id, now, states=("unknown",))
        resolution.requeued += 1
