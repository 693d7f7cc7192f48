"""The queries behind reports, ``massiva status`` and follow-up campaigns.

Everything here reads; nothing writes. Recipients are streamed in id order (the order
they were loaded, so the spreadsheet's) in batches, never all at once: a campaign of a
million recipients exports in bounded memory. Times come out as stored (UTC, ISO 8601);
showing them in Europe/Rome is the report's job.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from massiva.lifecycle import UNSUCCESSFUL, State, ordered
from massiva.schedule import Schedule
from massiva.store.database import Database, Engine

#: Recipients a batch: big enough that a round trip to SQLite's thread is rare, small
#: enough that a batch is a few MB at most.
BATCH = 2_000

#: Past any recipient id (SQLite's largest integer).
_LAST_ID = 2**63 - 1

#: The states whose recipients did not get through (their reason says why).
FAILED_STATES: tuple[str, ...] = ordered(UNSUCCESSFUL)


class ReportRecord(NamedTuple):
    """One recipient as a report reads it: ``mailbox`` the one that claimed it ('' while
    never claimed), ``subject`` as sent (rendered when loaded), times as stored (UTC ISO
    8601, None when it did not happen), ``receipts`` the inbox ids of its receipts,
    ascending, separated by spaces, ``keys`` the values of the key columns asked for. A
    text that does not exist (no message id, no reason, no receipt, no such column in its
    CSV row) is ''."""

    id: int
    row: int
    address: str
    mailbox: str
    subject: str
    state: str
    message_id: str
    sent_at: str | None
    accepted_at: str | None
    delivered_at: str | None
    failed_at: str | None
    reason: str
    receipts: str
    keys: tuple[str, ...]


class Candidate(NamedTuple):
    """A recipient for a follow-up: its state, CSV fields (JSON) and own attachment."""

    id: int
    state: str
    fields: str
    attachment: str | None


class Sending(NamedTuple):
    """One recipient row of one campaign, for a person's history: ``mailbox`` the one
    that claimed it ('' while never claimed), times as stored (UTC, ISO 8601), None when
    it did not happen; a missing text is ''. ``schedule``: the campaign's."""

    id: int
    campaign: str
    mailbox: str
    row: int
    address: str
    subject: str
    state: str
    message_id: str
    sent_at: str | None
    accepted_at: str | None
    delivered_at: str | None
    failed_at: str | None
    reason: str
    schedule: Schedule


@dataclass(frozen=True)
class ReasonCount:
    """How many recipients in ``state`` share ``reason`` ('' when none was given)."""

    state: str
    reason: str
    count: int


@dataclass(frozen=True)
class HourCount:
    """Deliveries and failures (recipients now delivered or failed, by the time of their
    final receipt) in one UTC hour (``hour`` as ``2026-03-10T08``)."""

    hour: str
    delivered: int
    failed: int


# ``+r.campaign_id`` keeps SQLite off the (campaign_id, state, id) index: through it, each
# batch would sort every remaining recipient of the campaign by id; walking the primary
# key from the last id read costs one step a row instead. The receipt ids are asked for
# in order (SQLite does not promise group_concat's otherwise); the (recipient_id,
# inbox_id) index of migration 5 gives them in that order, with no sort per recipient.
# A missing text is '' from here (coalesce, in C): the CSV export's hot loop has no None
# to test for.
_RECIPIENTS = """
SELECT r.id, r.row, r.address, coalesce(r.mailbox, ''), r.subject, r.state,
       coalesce(r.message_id, ''), r.sent_at,
       r.accepted_at, r.delivered_at, r.failed_at, coalesce(r.reason, ''),
       coalesce(({receipt_ids}), ''){keys}
FROM recipient r
WHERE +r.campaign_id = ? AND r.id > ? AND r.id <= ? {states}
ORDER BY r.id
LIMIT ?
"""
# A recipient's receipt ids, ascending, in one text.
_RECEIPT_IDS: dict[Engine, str] = {
    "sqlite": "SELECT group_concat(inbox_id, ' ') FROM"
    " (SELECT x.inbox_id FROM receipt x WHERE x.recipient_id = r.id ORDER BY x.inbox_id)",
    "postgresql": "SELECT string_agg(CAST(x.inbox_id AS TEXT), ' ' ORDER BY x.inbox_id)"
    " FROM receipt x WHERE x.recipient_id = r.id",
}
# One CSV column's value from the fields JSON, named by the parameter.
_KEY: dict[Engine, str] = {
    "sqlite": ", coalesce(json_extract(r.fields, ?), '')",
    "postgresql": ", coalesce(CAST(r.fields AS json) ->> ?, '')",
}
# Ties in order of state and reason by their bytes, as SQLite compares text: a
# PostgreSQL database's collation (Italian, say) would order them otherwise, and a report
# must read the same on both engines.
_REASONS_ORDER: dict[Engine, str] = {
    "sqlite": "ORDER BY n DESC, 1, 2",
    "postgresql": 'ORDER BY n DESC, state COLLATE "C", coalesce(reason, \'\') COLLATE "C"',
}
_CANDIDATES = """
SELECT r.id, r.state, r.fields, r.attachment
FROM recipient r
WHERE +r.campaign_id = ? AND r.id > ? AND r.state IN ({states}){excluded}
ORDER BY r.id
LIMIT ?
"""


#: Where the key values (or the fields JSON) start in a row of _RECIPIENTS.
_KEYS_AT = len(ReportRecord._fields) - 1


def _plain(key: str) -> bool:
    """True if ``key`` is written in the fields JSON as it is, so a JSON path can name it:
    CampaignQueries.add_recipients writes non-ASCII as is, and escapes only ``"``, ``\\``
    and control characters (which a path cannot match)."""
    return not any(char in '"\\' or char < " " for char in key)


def _marks(values: Collection[object]) -> str:
    return ", ".join("?" for _ in values)


def _with_keys(row: Sequence[Any], keys: Sequence[str]) -> ReportRecord:
    """A record whose key values are read from its fields JSON in Python (for a key that
    a JSON path cannot name)."""
    fields = json.loads(row[_KEYS_AT])
    return ReportRecord._make((*row[:_KEYS_AT], tuple(fields.get(key, "") for key in keys)))


class ReportQueries:
    """Reading a campaign's recipients for reports, status and follow-ups."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def recipients(
        self,
        campaign_id: int,
        *,
        keys: Sequence[str] = (),
        states: Collection[str] = (),
        limit: int | None = None,
        ids: tuple[int, int] = (0, _LAST_ID),
        batch: int = BATCH,
    ) -> AsyncIterator[list[ReportRecord]]:
        """The campaign's recipients in id order, ``batch`` at a time, with the values of
        the CSV columns ``keys``; only those in ``states`` if given, at most ``limit``,
        and only ids ``first < id <= last`` for ``ids=(first, last)`` (see
        :meth:`id_ranges`)."""
        engine = self._database.engine
        in_sql = engine == "postgresql" or all(_plain(key) for key in keys)
        sql = _RECIPIENTS.format(
            receipt_ids=_RECEIPT_IDS[engine],
            keys="".join(_KEY[engine] for _ in keys) if in_sql else ", r.fields",
            states=f"AND r.state IN ({_marks(states)})" if states else "",
        )
        if not in_sql:
            paths = []
        elif engine == "postgresql":  # ->> names a key as it is
            paths = list(keys)
        else:
            paths = [f'$."{key}"' for key in keys]
        (after, last), left = ids, limit
        while left is None or left > 0:
            size = batch if left is None else min(batch, left)
            rows = list(
                await self._database.db.execute_fetchall(
                    sql, (*paths, campaign_id, after, last, *states, size)
                )
            )
            if not rows:
                return
            if in_sql:
                yield [ReportRecord._make((*row[:_KEYS_AT], row[_KEYS_AT:])) for row in rows]
            else:
                yield [_with_keys(row, keys) for row in rows]
            if len(rows) < size:
                return
            after = rows[-1][0]
            if left is not None:
                left -= len(rows)

    async def id_ranges(self, campaign_id: int, parts: int) -> list[tuple[int, int]]:
        """The campaign's recipients cut into at most ``parts`` id ranges ``(first,
        last)`` of about as many recipients each, in order: ``first < id <= last``."""
        rows = await self._database.db.execute_fetchall(
            "SELECT min(id), max(id) FROM recipient WHERE campaign_id = ?", (campaign_id,)
        )
        low, high = next(iter(rows))
        if low is None:
            return []
        # A campaign's ids are consecutive unless it was loaded in several goes while
        # another was: cutting the id span evenly is then still right, only less even.
        step = -(-(high - low + 1) // max(parts, 1))
        return [(first - 1, min(first - 1 + step, high)) for first in range(low, high + 1, step)]

    async def columns(self, campaign_id: int) -> list[str] | None:
        """The CSV columns of the campaign's recipients (as one of them has them); None
        for a campaign without recipients."""
        rows = list(
            await self._database.db.execute_fetchall(
                "SELECT fields FROM recipient WHERE campaign_id = ? LIMIT 1", (campaign_id,)
            )
        )
        return list(json.loads(rows[0][0])) if rows else None

    async def counts(self) -> dict[int, dict[str, int]]:
        """Recipients per state of every campaign (campaign id -> state -> count; states
        with no recipient are absent)."""
        rows = await self._database.db.execute_fetchall(
            "SELECT campaign_id, state, count(*) FROM recipient GROUP BY campaign_id, state"
        )
        found: dict[int, dict[str, int]] = {}
        for campaign_id, state, count in rows:
            found.setdefault(int(campaign_id), {})[str(state)] = int(count)
        return found

    async def by_mailbox(self, campaign_id: int) -> dict[str, dict[str, int]]:
        """The campaign's recipients per mailbox that claimed them, per state (states
        with no recipient are absent; never-claimed recipients are not counted)."""
        rows = await self._database.db.execute_fetchall(
            "SELECT mailbox, state, count(*) FROM recipient WHERE campaign_id = ?"
            " AND mailbox IS NOT NULL GROUP BY mailbox, state",
            (campaign_id,),
        )
        found: dict[str, dict[str, int]] = {}
        for mailbox, state, count in rows:
            found.setdefault(str(mailbox), {})[str(state)] = int(count)
        return found

    async def hours(self, campaign_id: int) -> list[HourCount]:
        """Deliveries and failures per UTC hour, oldest first (hours with neither are
        absent), counting the recipients delivered or failed now, so that they add up to
        those states' counts. A Rome hour is a UTC hour (the offsets are whole hours)."""
        rows = await self._database.db.execute_fetchall(
            "SELECT state, substr(CASE state WHEN ? THEN delivered_at ELSE failed_at END, 1, 13),"
            " count(*) FROM recipient WHERE campaign_id = ? AND state IN (?, ?) GROUP BY 1, 2",
            (State.DELIVERED, campaign_id, State.DELIVERED, State.FAILED),
        )
        counted: dict[str, dict[str, int]] = {State.DELIVERED: {}, State.FAILED: {}}
        for state, hour, count in rows:
            if hour is not None:
                counted[state][hour] = int(count)
        delivered, failed = counted[State.DELIVERED], counted[State.FAILED]
        return [
            HourCount(str(hour), delivered.get(hour, 0), failed.get(hour, 0))
            for hour in sorted(delivered.keys() | failed.keys())
        ]

    async def reasons(
        self, campaign_id: int, states: Collection[str], limit: int
    ) -> list[ReasonCount]:
        """The ``limit`` most frequent (state, reason) pairs of the recipients in
        ``states``, most frequent first."""
        rows = await self._database.db.execute_fetchall(
            "SELECT state, coalesce(reason, ''), count(*) AS n FROM recipient"  # noqa: S608 - constants
            f" WHERE campaign_id = ? AND state IN ({_marks(states)})"
            f" GROUP BY 1, 2 {_REASONS_ORDER[self._database.engine]} LIMIT ?",
            (campaign_id, *states, limit),
        )
        return [ReasonCount(str(s), str(r), int(n)) for s, r, n in rows]

    async def named_from(self, prefix: str) -> dict[str, int]:
        """The campaigns whose name starts with ``prefix``: name -> id."""
        rows = await self._database.db.execute_fetchall(
            "SELECT name, id FROM campaign WHERE substr(name, 1, ?) = ?", (len(prefix), prefix)
        )
        return {str(name): int(i) for name, i in rows}

    async def retry_candidates(
        self, campaign_id: int, states: Collection[str], *, not_in: Collection[int] = ()
    ) -> AsyncIterator[list[Candidate]]:
        """The campaign's recipients in ``states``, in id order, leaving out those (the
        same address and key values) that a campaign of ``not_in`` (its earlier
        follow-ups) already holds."""
        excluded = ""
        if not_in:
            excluded = (
                " AND NOT EXISTS (SELECT 1 FROM recipient o"  # noqa: S608 - placeholders only
                " JOIN campaign oc ON oc.id = o.campaign_id"
                f" WHERE o.address = r.address AND o.campaign_id IN ({_marks(not_in)})"
                # Key values tell two notices to one address apart only when both
                # campaigns chose the same key columns; otherwise the address decides.
                " AND (o.key_values = r.key_values OR oc.identity !="
                " (SELECT identity FROM campaign WHERE id = r.campaign_id)))"
            )
        sql = _CANDIDATES.format(states=_marks(states), excluded=excluded)
        after = 0
        while True:
            rows = await self._database.db.execute_fetchall(
                sql, (campaign_id, after, *states, *not_in, BATCH)
            )
            found = [Candidate._make(row) for row in rows]
            if not found:
                return
            yield found
            after = found[-1].id

    async def history(self, address: str) -> list[Sending]:
        """Every campaign's row for ``address`` (as stored: trimmed, lower-case), oldest
        campaign first."""
        rows = await self._database.db.execute_fetchall(
            "SELECT r.id, c.name, coalesce(r.mailbox, ''), r.row, r.address, r.subject,"
            " r.state, coalesce(r.message_id, ''), r.sent_at, r.accepted_at, r.delivered_at,"
            " r.failed_at, coalesce(r.reason, ''), c.schedule"
            " FROM recipient r JOIN campaign c ON c.id = r.campaign_id"
            " WHERE r.address = ? ORDER BY c.created_at, c.id, r.id",
            (address,),
        )
        return [Sending._make((*row[:-1], Schedule.from_json(row[-1]))) for row in rows]

    async def count_in(self, campaign_id: int, states: Collection[str]) -> int:
        """How many of the campaign's recipients are in ``states``."""
        rows = await self._database.db.execute_fetchall(
            "SELECT count(*) FROM recipient"  # noqa: S608 - constants
            f" WHERE campaign_id = ? AND state IN ({_marks(states)})",
            (campaign_id, *states),
        )
        return int(next(iter(rows))[0])
