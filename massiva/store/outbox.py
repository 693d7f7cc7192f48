"""The outbox as the sender drives it: leases, the claim with its allowance reservation,
and every move of a recipient through ``sending``.

The claim is the heart of the crash safety (ARCHITECTURE.md, invariants 1, 3 and 4): in
ONE statement, so atomically, it checks that the caller still holds the mailbox's lease
and that the campaign is active, marks the next pending recipients ``sending`` (as many
as asked and as the allowances have room for: one at the provider's pace of one a
second) and (by trigger) counts each in the day and the month. Only after that commit
do their requests leave.

The claim and the moves that answer a post (sent, unknown, rejected, back to pending),
the writes of every post, run on the database's inline connection
(:meth:`Database.inline`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiosqlite

from massiva.store.database import Database
from massiva.times import from_db, to_db


@dataclass
class _Sent:
    """A 201 to record (see OutboxQueries.mark_sent)."""

    id: int
    message_id: str
    at: str
    recorded: asyncio.Future[None]  # done once its row is committed, or failed


class LeaseLost(Exception):
    """The lease this process relied on lapsed or was taken: stop sending at once."""


@dataclass(frozen=True)
class Claimed:
    """A recipient claimed for sending: it is ``sending`` and counted."""

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
    address: str
    subject: str
    claimed_at: datetime


@dataclass(frozen=True)
class Stopped:
    """Nothing was claimed: ``why`` is 'done', 'paused', 'cancelled' or 'allowance'."""

    why: str
    day_used: int = 0
    month_used: int = 0


async def _usage(db: aiosqlite.Connection, mailbox: str, day: str, month: str) -> tuple[int, int]:
    rows = await db.execute_fetchall(
        "SELECT period, used FROM allowance WHERE mailbox = ? AND period IN (?, ?)",
        (mailbox, day, month),
    )
    used = {str(p): int(u) for p, u in rows}
    return used.get(day, 0), used.get(month, 0)


# One statement, so one round trip: the triggers of schema migration 3 count each claim
# in the allowance windows it names, atomically with it. It claims at most :limit rows,
# and never more than either window has room for: max(0, ...) because SQLite reads a
# negative LIMIT as no limit at all.
_CLAIM = """
UPDATE recipient
SET state = 'sending', claimed_at = :now, updated_at = :now,
    allowance_day = :day, allowance_month = :month
WHERE id IN (
    SELECT id FROM recipient WHERE campaign_id = :campaign AND state = 'pending'
    ORDER BY id
    LIMIT max(0, min(
        :limit,
        :daily - coalesce((SELECT used FROM allowance
                           WHERE mailbox = :mailbox AND period = :day), 0),
        :monthly - coalesce((SELECT used FROM allowance
                             WHERE mailbox = :mailbox AND period = :month), 0))))
  AND EXISTS (SELECT 1 FROM lease WHERE name = :lease AND holder = :holder
              AND expires_at > :wall)
  AND EXISTS (SELECT 1 FROM campaign WHERE id = :campaign AND state = 'active')
RETURNING id, row, address, fields, subject, attachment
"""


class OutboxQueries:
    """Leases, claims and the sender's state moves."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._sent: list[_Sent] = []  # posts taken (201) and not yet written
        self._recorder: asyncio.Task[None] | None = None  # writing them, if running

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
        async with self._database.transaction() as db:
            cursor = await db.execute(
                "SELECT holder, expires_at FROM lease WHERE name = ?", (name,)
            )
            row = await cursor.fetchone()
            if row and row[0] != holder and from_db(row[1]) > now and row[0] not in dead:
                return str(row[0])
            await db.execute(
                "INSERT INTO lease (name, holder, expires_at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
                " expires_at = excluded.expires_at",
                (name, holder, to_db(now + ttl)),
            )
        return None

    async def renew_lease(self, name: str, holder: str, ttl: timedelta, now: datetime) -> bool:
        """Extend a lease ``holder`` still holds; False if another process took it.

        A lease that lapsed but that nobody took is still ``holder``'s: whoever takes a
        lapsed lease writes its own name over it.
        """
        async with self._database.transaction() as db:
            cursor = await db.execute(
                "UPDATE lease SET expires_at = ? WHERE name = ? AND holder = ?",
                (to_db(now + ttl), name, holder),
            )
            return cursor.rowcount == 1

    async def release_lease(self, name: str, holder: str) -> None:
        """Give a lease back (only if still held by ``holder``)."""
        async with self._database.transaction() as db:
            await db.execute("DELETE FROM lease WHERE name = ? AND holder = ?", (name, holder))

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
        limit: int = 1,
    ) -> list[Claimed] | Stopped:
        """Claim the next pending recipients, at most ``limit``, and count them in the
        allowances, atomically: all of them or none.

        ``now`` places the claims in the allowance windows (the run's clock, which tests
        move); ``wall`` is the real time the lease's expiry is read against. Returns the
        claimed in id order, or, when there is none, why; raises :class:`LeaseLost` if
        the caller no longer holds ``lease``.
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
            "limit": limit,
        }
        rows = await self._database.inline(_CLAIM, params)
        if rows:
            return sorted(
                (
                    Claimed(
                        id=int(found[0]),
                        campaign_id=campaign_id,
                        row=int(found[1]),
                        address=str(found[2]),
                        fields=json.loads(found[3]),
                        subject=str(found[4]),
                        attachment=found[5],
                    )
                    for found in rows
                ),
                key=lambda claimed: claimed.id,
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

    async def mark_sent(self, recipient_id: int, message_id: str, now: datetime) -> None:
        """201: the vendor took it; ``message_id`` ties its receipts to it. Returns once
        this row is committed; raises if its write failed (the row stays ``sending``).

        The calls of one turn of the event loop are written together, in one statement
        (a group commit): under load one write records many posts, at one a second each
        is written at once. A caller cancelled meanwhile does not take its row out.
        """
        sent = _Sent(
            recipient_id, message_id, to_db(now), asyncio.get_running_loop().create_future()
        )
        self._sent.append(sent)
        if self._recorder is None or self._recorder.done():
            # It starts at the loop's next turn: the other answers of this one join.
            self._recorder = asyncio.create_task(self._record_sent())
        await sent.recorded

    async def _record_sent(self) -> None:
        while self._sent:
            group, self._sent = self._sent, []
            try:
                await self._write_sent(group)
            except BaseException as exc:
                for sent in group:
                    if sent.recorded.done():  # its caller was cancelled
                        continue
                    if isinstance(exc, Exception):
                        sent.recorded.set_exception(exc)
                    else:
                        sent.recorded.cancel()
                if not isinstance(exc, Exception):
                    raise
            else:
                for sent in group:
                    if not sent.recorded.done():
                        sent.recorded.set_result(None)

    async def _write_sent(self, group: list[_Sent]) -> None:
        rows = ", ".join("(?, ?, ?)" for _ in group)
        await self._database.inline(
            "UPDATE recipient SET state = 'sent', message_id = v.column2,"  # noqa: S608 - placeholders only
            " sent_at = v.column3, updated_at = v.column3"
            f" FROM (VALUES {rows}) AS v"
            " WHERE recipient.id = v.column1 AND recipient.state IN ('sending', 'unknown')",
            [value for sent in group for value in (sent.id, sent.message_id, sent.at)],
        )

    async def mark_unknown(self, recipient_id: int, now: datetime) -> None:
        """No clear answer: it may have left. Never resent before a search of the inbox."""
        await self._move(recipient_id, ("sending",), "state = 'unknown'", (), now)

    async def mark_rejected(self, recipient_id: int, reason: str, now: datetime) -> None:
        """400: the vendor refused it and sent nothing; its allowance is given back."""
        await self._move(
            recipient_id,
            ("sending",),
            "state = 'rejected', reason = ?, failed_at = ?",
            (reason, to_db(now)),
            now,
        )

    async def release(
        self, recipient_id: int, now: datetime, *, states: Sequence[str] = ("sending",)
    ) -> None:
        """Back to ``pending`` with the allowance given back: the post certainly did not
        happen (refused for pace or allowance, never connected, or proven by a search)."""
        await self._move(recipient_id, states, "state = 'pending', claimed_at = NULL", (), now)

    async def _move(
        self,
        recipient_id: int,
        from_states: Sequence[str],
        assignments: str,
        values: Sequence[Any],
        now: datetime,
    ) -> None:
        marks = ", ".join("?" for _ in from_states)
        await self._database.inline(
            f"UPDATE recipient SET {assignments}, updated_at = ?"  # noqa: S608 - constants
            f" WHERE id = ? AND state IN ({marks})",
            (*values, to_db(now), recipient_id, *from_states),
        )

    # -- after a crash -----------------------------------------------------------------

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
        sql = (
            "UPDATE recipient SET state = 'unknown', updated_at = ? WHERE state = 'sending'"
            " AND campaign_id IN (SELECT id FROM campaign WHERE mailbox = ?)"
        )
        params: list[Any] = [to_db(now), mailbox]
        if unless_held is not None:
            sql += (
                " AND NOT EXISTS (SELECT 1 FROM lease WHERE name = ? AND expires_at > ?"  # noqa: S608 - placeholders only
                f" AND holder NOT IN ({', '.join('?' for _ in dead)}))"
            )
            params += [unless_held, to_db(wall or now), *dead]
        async with self._database.writing() as db:
            cursor = await db.execute(sql, params)
            return cursor.rowcount

    async def lease_holder(self, name: str, wall: datetime) -> str | None:
        """Who holds the lease ``name`` unexpired at ``wall`` (real time), if anyone."""
        rows = await self._database.db.execute_fetchall(
            "SELECT holder FROM lease WHERE name = ? AND expires_at > ?", (name, to_db(wall))
        )
        found = list(rows)
        return str(found[0][0]) if found else None

    async def unknowns(self, mailbox: str) -> list[Unknown]:
        """The mailbox's recipients whose post may or may not have left."""
        cursor = await self._database.db.execute(
            "SELECT r.id, r.address, r.subject, r.claimed_at FROM recipient r"
            " JOIN campaign c ON c.id = r.campaign_id"
            " WHERE c.mailbox = ? AND r.state = 'unknown' ORDER BY r.id",
            (mailbox,),
        )
        return [
            Unknown(int(i), str(a), str(s), from_db(str(c)))
            for i, a, s, c in await cursor.fetchall()
        ]

    async def message_id_taken(self, message_id: str) -> bool:
        """True if ``message_id`` is already tied to a recipient."""
        cursor = await self._database.db.execute(
            "SELECT 1 FROM recipient WHERE message_id = ? LIMIT 1", (message_id,)
        )
        return await cursor.fetchone() is not None

    async def set_campaign_state(self, campaign_id: int, state: str, now: datetime) -> None:
        """Pause, resume or cancel a campaign (the sender checks at every claim)."""
        async with self._database.transaction() as db:
            await db.execute(
                "UPDATE campaign SET state = ?, updated_at = ? WHERE id = ?",
                (state, to_db(now), campaign_id),
            )
