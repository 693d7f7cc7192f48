"""The outbox as the sender drives it: leases, the claim with its allowance count, and
every move of a recipient through ``sending`` and ``unknown``.

The claim is the heart of the crash safety (docs/architecture.md, invariants 1, 3 and 4):
in ONE statement, so atomically, it checks that the caller still holds the mailbox's
lease and that the campaign is active, marks the next pending recipient ``sending``
(owned by the caller, ``claimed_by``) and (by trigger) counts it in the day and the
month. Only after that commit does its request leave.

Every move here is one of :mod:`massiva.lifecycle`'s transitions, written by
:func:`_move_sql` with that transition's guard: a row moves only from a state the
transition allows. The sender's own moves out of ``sending`` also require that the row is
still its claim, so a sender that lost its lease (frozen, then woken) never moves a row
another sender has claimed since.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from massiva.lifecycle import (
    ADOPTED,
    CLAIM,
    GIVEN_BACK,
    NO_ANSWER,
    POSTED,
    REFUSED,
    REQUEUED,
    SETTLED_RESEND,
    SETTLED_SENT,
    State,
    Transition,
)
from massiva.store.database import Connection, Database, Engine
from massiva.times import from_db, to_db


class LeaseLost(Exception):
    """The lease this process relied on lapsed or was taken: stop sending at once."""


@dataclass(frozen=True)
class Claimed:
    """A recipient claimed for sending: it is ``sending``, counted, and this sender's."""

    id: int
    campaign_id: int
    row: int
    address: str
    fields: dict[str, str]
    subject: str
    attachment: str | None


@dataclass(frozen=True)
class Unknown:
    """A recipient whose post may or may not have left."""

    id: int
    campaign: str
    row: int
    address: str
    subject: str
    claimed_at: datetime
    reason: str | None  # why it waits for an operator, if it does


@dataclass(frozen=True)
class Stopped:
    """Nothing was claimed: ``why`` is 'done', 'paused', 'cancelled' or 'allowance'."""

    why: str
    day_used: int = 0
    month_used: int = 0


def _move_sql(transition: Transition, assignments: str = "", guard: str = "") -> str:
    """The ``UPDATE`` that makes ``transition`` on the row ``:id``: its target state and
    ``assignments`` set, only from the states it allows (and where ``guard`` holds)."""
    sets = f"state = '{transition.target}', updated_at = :now" + (
        f", {assignments}" if assignments else ""
    )
    where = f"id = :id AND {transition.sql_guard()}" + (f" AND {guard}" if guard else "")
    return f"UPDATE recipient SET {sets} WHERE {where}"  # noqa: S608 - constants only


async def _usage(db: Connection, mailbox: str, day: str, month: str) -> tuple[int, int]:
    rows = await db.execute_fetchall(
        "SELECT period, used FROM allowance WHERE mailbox = ? AND period IN (?, ?)",
        (mailbox, day, month),
    )
    used = {str(p): int(u) for p, u in rows}
    return used.get(day, 0), used.get(month, 0)


def _claim_sql(engine: Engine) -> str:
    """The claim: ONE statement. The triggers of schema migration 10 count it in the
    allowance windows it names, atomically with it. It claims nothing when either window
    is full, when the caller no longer holds the lease, or when the campaign is not
    active.

    SQLite runs it alone (one writer at a time). PostgreSQL runs statements at once,
    each reading the database as it was when it began, so there the claim locks what it
    relies on: claimers of other mailboxes (other hosts) take the same campaign's rows
    at once, each locking the row it picks and skipping those locked by others (SKIP
    LOCKED), its state checked again on the row as locked; the lease and the campaign
    rows are locked too (FOR SHARE), so a lease taken over or a pause under way is
    waited for and read as committed, never read as it was before. The allowance rows
    need no lock: only claims add to them, and a mailbox's claims are its lease
    holder's, one at a time. PostgreSQL checks those conditions before it picks a row
    (they do not depend on it): a claim refused locks no recipient."""
    postgresql = engine == "postgresql"
    share = " FOR SHARE" if postgresql else ""
    if postgresql:
        # The bounds are ``campaign_id = :campaign AND state = 'pending'`` written so
        # that only the (campaign_id, state, id) index gives their order: with the
        # equalities, PostgreSQL's planner may walk the primary key instead, past every
        # row claimed before (a claim's cost would grow with the campaign's progress).
        (pending,) = CLAIM.sources
        first = f"""
    SELECT id FROM recipient
    WHERE (campaign_id, state, id) > (:campaign, '{pending}', 0)
      AND (campaign_id, state, id) < (:campaign, '{pending}', 9223372036854775807)
    ORDER BY campaign_id, state, id LIMIT 1 FOR UPDATE SKIP LOCKED"""  # noqa: S608 - constants
    else:
        first = f"""
    SELECT id FROM recipient WHERE campaign_id = :campaign AND {CLAIM.sql_guard()}
    ORDER BY id LIMIT 1"""  # noqa: S608 - constants
    return f"""
UPDATE recipient
SET state = '{CLAIM.target}', claimed_at = :now, claimed_by = :holder, updated_at = :now,
    allowance_day = :day, allowance_month = :month, mailbox = :mailbox
WHERE id = ({first})
  AND {CLAIM.sql_guard()}
  AND coalesce((SELECT used FROM allowance WHERE mailbox = :mailbox AND period = :day), 0)
      < :daily
  AND coalesce((SELECT used FROM allowance WHERE mailbox = :mailbox AND period = :month), 0)
      < :monthly
  AND EXISTS (SELECT 1 FROM lease WHERE name = :lease AND holder = :holder
              AND expires_at > :wall{share})
  AND EXISTS (SELECT 1 FROM campaign WHERE id = :campaign AND state = 'active'{share})
RETURNING id, row, address, fields, subject, attachment
"""  # noqa: S608 - constants only


_CLAIM = {engine: _claim_sql(engine) for engine in ("sqlite", "postgresql")}
# The sender's moves out of its own claim.
_MINE = "claimed_by = :holder"
# A 201 is the truth for this sender's own claim, and for a row left unknown (a late
# answer); never for a row another sender has claimed since. A message id is one
# recipient's: written nowhere else, whoever came first.
_FREE_ID = "NOT EXISTS (SELECT 1 FROM recipient WHERE message_id = :message_id)"
_MARK_SENT = _move_sql(
    POSTED,
    "message_id = :message_id, sent_at = :sent_at, reason = NULL",
    f"(state = '{State.UNKNOWN}' OR claimed_by = :holder) AND {_FREE_ID}",
)
_MARK_UNKNOWN = _move_sql(NO_ANSWER, guard=_MINE)
# What a post carries, written by its claim's holder before the request leaves.
_RECORD_CONTENT = f"UPDATE recipient SET sent_content = :content WHERE id = :id AND {_MINE}"  # noqa: S608
_MARK_REJECTED = _move_sql(REFUSED, "reason = :reason, failed_at = :now", _MINE)
_GIVE_BACK = _move_sql(GIVEN_BACK, "claimed_at = NULL, claimed_by = NULL", _MINE)
# Settling unknowns: a search's verdicts, and an operator's.
# An adoption, decided from a search, holds at the moment it is written: the id is still
# no one's, and no post to the same address from this mailbox is in flight (its 201 may
# be the one that names that receipt).
_ADOPT = _move_sql(
    ADOPTED,
    "message_id = :message_id, sent_at = claimed_at",
    f"reason IS NULL AND {_FREE_ID} AND NOT EXISTS (SELECT 1 FROM recipient r"  # noqa: S608
    f" WHERE r.state = '{State.SENDING}' AND r.address = recipient.address"
    " AND r.mailbox = recipient.mailbox)",
)
_REQUEUE = _move_sql(REQUEUED, "claimed_at = NULL, claimed_by = NULL", "reason IS NULL")
_FLAG = f"UPDATE recipient SET reason = :reason WHERE id = :id AND state = '{State.UNKNOWN}'"  # noqa: S608
# Rows a dead sender left claimed: it may have posted them (the lease condition is added).
_ORPHANED = (
    f"UPDATE recipient SET state = '{NO_ANSWER.target}', updated_at = ?"  # noqa: S608
    f" WHERE {NO_ANSWER.sql_guard()}"
    " AND mailbox = ?"
)
_SETTLE_SENT = _move_sql(
    SETTLED_SENT, "message_id = :message_id, sent_at = claimed_at, reason = NULL", _FREE_ID
)
_SETTLE_RESEND = _move_sql(SETTLED_RESEND, "claimed_at = NULL, claimed_by = NULL, reason = NULL")
# PostgreSQL: the lock on one message id, held until the writing transaction commits
# (the first key names these locks; the second is the id's hash).
_LOCK_ID = "SELECT pg_advisory_xact_lock(1835102067, hashtext(:message_id))"


class OutboxQueries:
    """Leases, claims and the moves of a recipient through ``sending`` and ``unknown``."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def _write(self, sql: str, params: dict[str, Any]) -> int:
        """One writing statement, committed at once; how many rows it changed."""
        async with self._database.writing() as db:
            cursor = await db.execute(sql, params)
            return cursor.rowcount

    async def _write_id(self, sql: str, params: dict[str, Any]) -> int:
        """A statement writing ``params['message_id']`` to a recipient only where no
        recipient has it (``_FREE_ID``); how many rows it changed.

        SQLite runs writes one at a time. A PostgreSQL statement reads the database as
        it was when it began: two recording one id at once (a vendor that gave it to two
        posts) would each find it free and both write it. There they take turns on a
        lock on the id, held until the write commits; the next reads what it wrote."""
        if self._database.engine != "postgresql":
            return await self._write(sql, params)
        async with self._database.transaction() as db:
            await db.execute(_LOCK_ID, params)
            cursor = await db.execute(sql, params)
            return cursor.rowcount

    # -- leases ------------------------------------------------------------------------

    async def acquire_lease(
        self,
        name: str,
        holder: str,
        ttl: timedelta,
        now: datetime,
        *,
        dead: Sequence[str] = (),
    ) -> str | None:
        """Take the lease ``name`` for ``holder``; return the current holder if it is taken
        and has not lapsed, unless it is one of the ``dead`` holders."""
        # One statement, so two processes taking it at once cannot both win: the row
        # is written only where the lease is free (lapsed, the caller's, or a dead
        # holder's), and it is locked while that is decided.
        dead_ones = f" OR lease.holder IN ({', '.join('?' for _ in dead)})" if dead else ""
        sql = (
            "INSERT INTO lease (name, holder, expires_at) VALUES (?, ?, ?)"  # noqa: S608 - placeholders only
            " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
            " expires_at = excluded.expires_at"
            f" WHERE lease.holder = excluded.holder OR lease.expires_at <= ?{dead_ones}"
            " RETURNING holder"
        )
        params = (name, holder, to_db(now + ttl), to_db(now), *dead)
        for _ in range(3):  # a holder that leaves between the two statements: again
            async with self._database.writing() as db:
                if (await db.execute(sql, params)).rows:
                    return None
            rows = await self._database.db.execute_fetchall(
                "SELECT holder FROM lease WHERE name = ?", (name,)
            )
            if rows:
                return str(rows[0][0])
        raise LeaseLost(f"the lease {name!r} kept changing hands")

    async def renew_lease(self, name: str, holder: str, ttl: timedelta, now: datetime) -> bool:
        """Extend a lease ``holder`` still holds, unlapsed at ``now``; False otherwise.

        A lapse is always a loss: while it lapsed, another process may have acted as if
        the holder were dead (a reconciler turns a dead sender's claims ``unknown``).
        """
        async with self._database.transaction() as db:
            cursor = await db.execute(
                "UPDATE lease SET expires_at = ? WHERE name = ? AND holder = ? AND expires_at > ?",
                (to_db(now + ttl), name, holder, to_db(now)),
            )
            return cursor.rowcount == 1

    async def release_lease(self, name: str, holder: str) -> None:
        """Give a lease back (only if still held by ``holder``)."""
        async with self._database.transaction() as db:
            await db.execute("DELETE FROM lease WHERE name = ? AND holder = ?", (name, holder))

    async def lease_holder(self, name: str, wall: datetime) -> str | None:
        """Who holds the lease ``name`` unexpired at ``wall`` (real time), if anyone."""
        rows = await self._database.db.execute_fetchall(
            "SELECT holder FROM lease WHERE name = ? AND expires_at > ?", (name, to_db(wall))
        )
        found = list(rows)
        return str(found[0][0]) if found else None

    # -- the claim ---------------------------------------------------------------------

    async def claim(
        self,
        campaign_id: int,
        *,
        mailbox: str,
        lease: str,
        holder: str,
        day: str,
        month: str,
        daily_limit: int,
        monthly_limit: int,
        now: datetime,
        wall: datetime,
    ) -> Claimed | Stopped:
        """Claim the next pending recipient for ``holder`` and count it in the allowances,
        atomically.

        ``now`` places the claim in the allowance windows (the run's clock, which tests
        move); ``wall`` is the real time the lease's expiry is read against. Returns the
        claimed recipient or, when there is none, why; raises :class:`LeaseLost` if
        ``holder`` no longer holds ``lease``.
        """
        params = {
            "now": to_db(now),
            "wall": to_db(wall),
            "day": day,
            "month": month,
            "campaign": campaign_id,
            "lease": lease,
            "holder": holder,
            "mailbox": mailbox,
            "daily": daily_limit,
            "monthly": monthly_limit,
        }
        async with self._database.writing() as db:
            rows = await db.execute_fetchall(_CLAIM[self._database.engine], params)
        if rows:
            found = rows[0]
            return Claimed(
                id=int(found[0]),
                campaign_id=campaign_id,
                row=int(found[1]),
                address=str(found[2]),
                fields=json.loads(found[3]),
                subject=str(found[4]),
                attachment=found[5],
            )
        return await self._why_not(params, daily_limit, monthly_limit)

    async def _why_not(
        self, params: dict[str, Any], daily_limit: int, monthly_limit: int
    ) -> Stopped:
        db = self._database.db
        held = await db.execute_fetchall(
            "SELECT 1 FROM lease WHERE name = :lease AND holder = :holder AND expires_at > :wall",
            params,
        )
        if not list(held):
            raise LeaseLost(f"the lease {params['lease']!r} is no longer held by this process")
        state = list(
            await db.execute_fetchall("SELECT state FROM campaign WHERE id = :campaign", params)
        )
        if not state or state[0][0] != "active":
            return Stopped(str(state[0][0]) if state else "cancelled")
        day_used, month_used = await _usage(db, params["mailbox"], params["day"], params["month"])
        if day_used >= daily_limit or month_used >= monthly_limit:
            return Stopped("allowance", day_used, month_used)
        return Stopped("done", day_used, month_used)

    async def usage(self, mailbox: str, day: str, month: str) -> tuple[int, int]:
        """Recipients counted in the day and the month windows."""
        return await _usage(self._database.db, mailbox, day, month)

    # -- outcomes of a post ------------------------------------------------------------

    async def mark_sent(
        self, recipient_id: int, holder: str, message_id: str, sent_at: datetime
    ) -> bool:
        """201: the vendor took it; ``message_id`` ties its receipts to it. Also after
        ``unknown``: a late answer is the truth, whoever holds the lease now. False when
        nothing was written: the row is another sender's claim now, or the vendor gave
        that message id to another recipient too (the caller says so loudly)."""
        return (
            await self._write_id(
                _MARK_SENT,
                {
                    "id": recipient_id,
                    "holder": holder,
                    "message_id": message_id,
                    "sent_at": to_db(sent_at),
                    "now": to_db(sent_at),
                },
            )
            == 1
        )

    async def record_content(self, recipient_id: int, holder: str, content: str) -> bool:
        """What the post of this claim carries (``sent_content``: hashes as JSON),
        written before its request leaves. False when the claim is no longer
        ``holder``'s: then nothing may leave."""
        return (
            await self._write(
                _RECORD_CONTENT,
                {"id": recipient_id, "holder": holder, "content": content},
            )
            == 1
        )

    async def mark_unknown(self, recipient_id: int, holder: str, now: datetime) -> None:
        """No clear answer: it may have left. Never resent before a search of the inbox."""
        await self._write(_MARK_UNKNOWN, {"id": recipient_id, "holder": holder, "now": to_db(now)})

    async def mark_rejected(
        self, recipient_id: int, holder: str, reason: str, now: datetime
    ) -> None:
        """400: the vendor refused it and sent nothing; its allowance is given back."""
        await self._write(
            _MARK_REJECTED,
            {"id": recipient_id, "holder": holder, "reason": reason, "now": to_db(now)},
        )

    async def give_back(self, recipient_id: int, holder: str, now: datetime) -> bool:
        """Back to ``pending`` with its allowance: the post certainly did not leave
        (refused for pace or allowance, never connected, lease lost before it left).
        False if the row is no longer this holder's claim."""
        changed = await self._write(
            _GIVE_BACK, {"id": recipient_id, "holder": holder, "now": to_db(now)}
        )
        return changed == 1

    # -- unknowns ----------------------------------------------------------------------

    async def orphaned_sends(
        self,
        mailbox: str,
        now: datetime,
        *,
        unless_held: str | None = None,
        wall: datetime | None = None,
        dead: Sequence[str] = (),
    ) -> int:
        """Rows left ``sending`` by a sender that died become ``unknown``. Call it while
        holding the mailbox's send lease, or name that lease as ``unless_held``: then
        nothing moves if, at that moment, a holder other than the ``dead`` ones holds it
        unexpired at ``wall`` (real time); a sender starting meanwhile is never raced."""
        sql = _ORPHANED
        params: list[Any] = [to_db(now), mailbox]
        if unless_held is not None:
            others = f" AND holder NOT IN ({', '.join('?' for _ in dead)})" if dead else ""
            sql += (
                " AND NOT EXISTS (SELECT 1 FROM lease WHERE name = ? AND expires_at > ?"  # noqa: S608 - placeholders only
                f"{others})"
            )
            params += [unless_held, to_db(wall or now), *dead]
        async with self._database.writing() as db:
            cursor = await db.execute(sql, params)
            return cursor.rowcount

    async def unknowns(self, mailbox: str, campaign: str | None = None) -> list[Unknown]:
        """The mailbox's recipients whose post may or may not have left (of one
        campaign, if named), in claim order."""
        rows = await self._database.db.execute_fetchall(
            "SELECT r.id, c.name, r.row, r.address, r.subject, r.claimed_at, r.reason"
            " FROM recipient r JOIN campaign c ON c.id = r.campaign_id"
            " WHERE r.mailbox = ? AND r.state = ? AND (CAST(? AS TEXT) IS NULL OR c.name = ?)"
            " ORDER BY r.claimed_at, r.id",
            (mailbox, State.UNKNOWN, campaign, campaign),
        )
        return [
            Unknown(int(i), str(n), int(w), str(a), str(s), from_db(str(c)), r)
            for i, n, w, a, s, c, r in rows
        ]

    async def in_flight(self, mailbox: str) -> list[tuple[str, str]]:
        """The (address, subject) of each of the mailbox's ``sending`` recipients."""
        rows = await self._database.db.execute_fetchall(
            "SELECT address, subject FROM recipient WHERE mailbox = ? AND state = ?",
            (mailbox, State.SENDING),
        )
        return [(str(a), str(s)) for a, s in rows]

    async def message_ids_taken(
        self, message_ids: Sequence[str], *, other_than: int | None = None
    ) -> set[str]:
        """Which of ``message_ids`` are already tied to a recipient (other than the one
        ``other_than`` names)."""
        if not message_ids:
            return set()
        marks = ", ".join("?" for _ in message_ids)
        # SQLite before 3.39 knows no IS DISTINCT FROM; PostgreSQL no IS NOT <value>.
        other = {"sqlite": "IS NOT", "postgresql": "IS DISTINCT FROM"}[self._database.engine]
        rows = await self._database.db.execute_fetchall(
            "SELECT DISTINCT message_id FROM recipient"  # noqa: S608 - placeholders only
            f" WHERE message_id IN ({marks}) AND id {other} ?",
            (*message_ids, other_than),
        )
        return {str(row[0]) for row in rows}

    async def adopt(self, recipient_id: int, message_id: str, now: datetime) -> bool:
        """An ``unknown`` recipient was sent after all: ``message_id`` is the one proof
        receipt found for it. Its post's time is taken as its claim's."""
        params = {"id": recipient_id, "message_id": message_id, "now": to_db(now)}
        return await self._write_id(_ADOPT, params) == 1

    async def requeue(self, recipient_id: int, now: datetime) -> bool:
        """An ``unknown`` recipient's post provably left nothing: ``pending`` again, its
        allowance given back. Never one flagged for an operator."""
        return await self._write(_REQUEUE, {"id": recipient_id, "now": to_db(now)}) == 1

    async def flag(self, recipient_id: int, reason: str) -> None:
        """Keep an ``unknown`` recipient for an operator (``massiva unknowns``): nothing
        settles it by itself any more."""
        await self._write(_FLAG, {"id": recipient_id, "reason": reason})

    async def settle(
        self,
        recipient_id: int,
        *,
        message_id: str | None,
        decided_by: str,
        now: datetime,
    ) -> bool:
        """An operator's decision on an ``unknown`` recipient: sent as ``message_id``, or
        (``None``) to be posted again. Recorded with who and when; False if the
        recipient was no longer ``unknown``."""
        params = {"id": recipient_id, "message_id": message_id, "now": to_db(now)}
        async with self._database.transaction() as db:
            if message_id is not None and self._database.engine == "postgresql":
                await db.execute(_LOCK_ID, params)  # as _write_id: one id's writers take turns
            sql = _SETTLE_RESEND if message_id is None else _SETTLE_SENT
            cursor = await db.execute(sql, params)
            if cursor.rowcount != 1:
                return False
            await db.execute(
                "INSERT INTO settlement (recipient_id, decision, message_id, decided_by,"
                " decided_at) VALUES (?, ?, ?, ?, ?)",
                (
                    recipient_id,
                    "resend" if message_id is None else "sent",
                    message_id,
                    decided_by,
                    to_db(now),
                ),
            )
        return True

    async def set_campaign_state(self, campaign_id: int, state: str, now: datetime) -> bool:
        """Pause, resume or cancel a campaign (the sender checks at every claim); False
        for a cancelled one, which stays cancelled."""
        sql = "UPDATE campaign SET state = ?, updated_at = ? WHERE id = ? AND state != ?"
        async with self._database.writing() as db:
            cursor = await db.execute(sql, (state, to_db(now), campaign_id, "cancelled"))
            return cursor.rowcount == 1
