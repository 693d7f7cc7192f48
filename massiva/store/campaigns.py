"""Campaigns and their outbox: loading recipients, and counting them by state."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from massiva.lifecycle import State
from massiva.schedule import ALWAYS, Schedule
from massiva.store.database import Database, Engine
from massiva.times import from_db, to_db, utcnow

#: Every state a recipient can be in, in the lifecycle's order (massiva/lifecycle.py).
STATES: tuple[str, ...] = tuple(State)


@dataclass(frozen=True)
class CampaignRow:
    """A loaded campaign. ``mailboxes``: the pool it sends from (``mailbox`` is the
    first); ``identity``: the key columns that, with the address, tell its recipients
    apart (none: the address alone); ``schedule``: when its messages may leave."""

    id: int
    name: str
    folder: str
    mailbox: str
    subject: str
    body: str
    content_hash: str
    csv_hash: str
    state: str
    created_at: datetime
    identity: tuple[str, ...] = ()
    mailboxes: tuple[str, ...] = ()
    schedule: Schedule = ALWAYS


@dataclass(frozen=True)
class NewRecipient:
    """A validated recipient to put in the outbox; ``key_values`` are its values of the
    campaign's identity columns (with its address, what makes it one recipient)."""

    row: int
    address: str
    fields: Mapping[str, str]
    subject: str
    attachment: str | None
    key_values: tuple[str, ...] = ()


_COLUMNS = (
    "id, name, folder, mailbox, subject, body, content_hash, csv_hash, state, created_at,"
    " identity, schedule, "
)
# The pool, as a JSON array in campaign.toml's order ("[]" for none: PostgreSQL's
# json_agg of no rows is NULL, SQLite's json_group_array an empty array).
_CAMPAIGN_COLUMNS: dict[Engine, str] = {
    "sqlite": _COLUMNS + "(SELECT json_group_array(mailbox) FROM (SELECT mailbox FROM"  # noqa: S608 - constants
    " campaign_pool WHERE campaign_id = campaign.id ORDER BY position))",
    "postgresql": _COLUMNS  # noqa: S608 - constants
    + "(SELECT coalesce(CAST(json_agg(mailbox ORDER BY position) AS TEXT), '[]')"
    " FROM campaign_pool WHERE campaign_id = campaign.id)",
}


def _campaign(r: Sequence[object]) -> CampaignRow:
    t = [str(v) for v in r]
    identity = tuple(json.loads(t[10]))
    schedule = Schedule.from_json(t[11])
    mailboxes = tuple(json.loads(t[12]))
    return CampaignRow(
        int(t[0]),
        t[1],
        t[2],
        t[3],
        t[4],
        t[5],
        t[6],
        t[7],
        t[8],
        from_db(t[9]),
        identity,
        mailboxes,
        schedule,
    )


# The batch travels as one JSON array bound once: SQLite reads it in C without Python's
# lock, so a load goes on reading the next rows meanwhile (executemany would take the
# lock back for every row); PostgreSQL takes it in one trip. ``fields`` and
# ``key_values`` are stored as the engine's JSON functions give them: the text, compact
# and with non-ASCII as is, as json.dumps(ensure_ascii=False) writes it; the same values
# always give the same text, which the UNIQUE constraint compares. ``WHERE true``:
# without it SQLite would read ON CONFLICT as a join's ON.
_ADD_RECIPIENTS: dict[Engine, str] = {
    "sqlite": """
INSERT INTO recipient (campaign_id, row, address, fields, subject, attachment, key_values,
                       updated_at)
SELECT :campaign, json_extract(value, '$[0]'), json_extract(value, '$[1]'),
       json_extract(value, '$[2]'), json_extract(value, '$[3]'),
       json_extract(value, '$[4]'), json_extract(value, '$[5]'), :now
FROM json_each(:rows) WHERE true
ON CONFLICT (campaign_id, address, key_values) DO NOTHING
""",
    "postgresql": """
INSERT INTO recipient (campaign_id, row, address, fields, subject, attachment, key_values,
                       updated_at)
SELECT :campaign, CAST(value ->> 0 AS INTEGER), value ->> 1, CAST(value -> 2 AS TEXT),
       value ->> 3, value ->> 4, CAST(value -> 5 AS TEXT), :now
FROM json_array_elements(CAST(:rows AS json)) AS value
ON CONFLICT (campaign_id, address, key_values) DO NOTHING
""",
}


class CampaignQueries:
    """The ``campaign`` and ``recipient`` tables, as far as loading and counting go."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._columns = _CAMPAIGN_COLUMNS[database.engine]

    async def get(self, name: str) -> CampaignRow | None:
        """The campaign called ``name``, if loaded."""
        cursor = await self._database.db.execute(
            f"SELECT {self._columns} FROM campaign WHERE name = ?",  # noqa: S608 - constant
            (name,),
        )
        row = await cursor.fetchone()
        return _campaign(row) if row else None

    async def all(self) -> list[CampaignRow]:
        """Every campaign, oldest first."""
        cursor = await self._database.db.execute(
            f"SELECT {self._columns} FROM campaign ORDER BY created_at, id"  # noqa: S608
        )
        return [_campaign(r) for r in await cursor.fetchall()]

    async def create(
        self,
        *,
        name: str,
        folder: str,
        mailboxes: Sequence[str],
        subject: str,
        body: str,
        content_hash: str,
        csv_hash: str,
        identity: Sequence[str] = (),
        schedule: Schedule = ALWAYS,
    ) -> CampaignRow:
        """Record a new campaign sending from the pool ``mailboxes`` (its recipients come
        with :meth:`add_recipients`); ``identity``: the key columns that, with the
        address, tell its recipients apart."""
        now = to_db(utcnow())
        columns = json.dumps(list(identity), ensure_ascii=False)
        async with self._database.transaction() as db:
            cursor = await db.execute(
                "INSERT INTO campaign (name, folder, mailbox, subject, body, content_hash,"
                " csv_hash, identity, schedule, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    name,
                    folder,
                    mailboxes[0],
                    subject,
                    body,
                    content_hash,
                    csv_hash,
                    columns,
                    schedule.to_json(),
                    now,
                    now,
                ),
            )
            campaign_id = int(cursor.rows[0][0])
            await db.executemany(
                "INSERT INTO campaign_pool (campaign_id, mailbox, position) VALUES (?, ?, ?)",
                [(campaign_id, box, i) for i, box in enumerate(mailboxes)],
            )
        created = await self.get(name)
        assert created is not None
        return created

    async def set_pool(
        self, campaign_id: int, mailboxes: Sequence[str], schedule: Schedule
    ) -> None:
        """Send from ``mailboxes`` and by ``schedule`` from now on (campaign.toml changed
        them). A running sender reads the schedule again within seconds; the pool, when
        it starts."""
        async with self._database.transaction() as db:
            await db.execute(
                "UPDATE campaign SET mailbox = ?, schedule = ?, updated_at = ? WHERE id = ?",
                (mailboxes[0], schedule.to_json(), to_db(utcnow()), campaign_id),
            )
            await db.execute("DELETE FROM campaign_pool WHERE campaign_id = ?", (campaign_id,))
            await db.executemany(
                "INSERT INTO campaign_pool (campaign_id, mailbox, position) VALUES (?, ?, ?)",
                [(campaign_id, box, i) for i, box in enumerate(mailboxes)],
            )

    async def sent_from(self, campaign_id: int) -> dict[str, int]:
        """How many of the campaign's recipients each mailbox has claimed."""
        rows = await self._database.db.execute_fetchall(
            "SELECT mailbox, count(*) FROM recipient WHERE campaign_id = ?"
            " AND mailbox IS NOT NULL GROUP BY mailbox",
            (campaign_id,),
        )
        return {str(box): int(n) for box, n in rows}

    async def set_csv_hash(self, campaign_id: int, csv_hash: str) -> None:
        """Remember which recipients file was loaded last."""
        async with self._database.transaction() as db:
            await db.execute(
                "UPDATE campaign SET csv_hash = ?, updated_at = ? WHERE id = ?",
                (csv_hash, to_db(utcnow()), campaign_id),
            )

    async def add_recipients(self, campaign_id: int, batch: Sequence[NewRecipient]) -> int:
        """Add a batch in one statement; recipients already in the campaign (the same
        address and key values) are left as they are. Returns how many were new."""
        rows = json.dumps(
            [[r.row, r.address, r.fields, r.subject, r.attachment, r.key_values] for r in batch],
            ensure_ascii=False,
            separators=(",", ":"),
        )
        async with self._database.writing() as db:
            cursor = await db.execute(
                _ADD_RECIPIENTS[self._database.engine],
                {"campaign": campaign_id, "now": to_db(utcnow()), "rows": rows},
            )
            return cursor.rowcount

    async def accepted(self, campaign_id: int) -> int:
        """Recipients whose acceptance or delivery receipt came (for a progress display)."""
        rows = await self._database.db.execute_fetchall(
            "SELECT count(*) FROM recipient WHERE campaign_id = ? AND state IN (?, ?)",
            (campaign_id, State.ACCEPTED, State.DELIVERED),
        )
        return int(next(iter(rows))[0])

    async def counts(self, campaign_id: int) -> dict[str, int]:
        """How many recipients are in each state (every state present, zeros included)."""
        # One trip to the connection's thread: other tasks share the connection.
        rows = await self._database.db.execute_fetchall(
            "SELECT state, count(*) FROM recipient WHERE campaign_id = ? GROUP BY state",
            (campaign_id,),
        )
        counts = dict.fromkeys(STATES, 0)
        counts.update({str(state): int(n) for state, n in rows})
        return counts
