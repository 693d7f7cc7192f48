"""The schema on both engines: append-only migrations, numbered alike on each.

A released migration is never edited; a change is a new script at the end of
:data:`MIGRATIONS` (SQLite, numbered by ``PRAGMA user_version``) AND of
:data:`POSTGRESQL_MIGRATIONS` (numbered in the table ``schema_version``), reaching the
same version with the same tables, columns, constraints, indexes and triggers
(tests/test_schema_engines.py compares them). Each script runs in its own write
transaction, so two processes opening an old database at once migrate it once.

PostgreSQL came at version 10: its first script builds the schema SQLite's first ten
left, in PostgreSQL's words (identity keys, PL/pgSQL triggers).
"""

from __future__ import annotations

import sqlite3
from typing import Any

import aiosqlite
import psycopg

MIGRATIONS: tuple[str, ...] = (
    # 1: provisioning
    """
    CREATE TABLE mailbox (
        id          TEXT PRIMARY KEY,   -- the vendor's id
        address     TEXT NOT NULL,
        box_type    TEXT NOT NULL,
        state       TEXT NOT NULL,
        expires     TEXT,               -- ISO date
        updated_at  TEXT NOT NULL       -- UTC, ISO 8601
    );
    CREATE INDEX mailbox_address ON mailbox (address);
    CREATE TABLE domain (
        id          TEXT PRIMARY KEY,
        domain      TEXT NOT NULL,
        provider    TEXT NOT NULL,
        state       TEXT NOT NULL,
        expires     TEXT,
        updated_at  TEXT NOT NULL
    );
    """,
    # 2: campaigns and their outbox, one row per recipient
    """
    CREATE TABLE campaign (
        id            INTEGER PRIMARY KEY,
        name          TEXT NOT NULL UNIQUE,
        folder        TEXT NOT NULL,
        mailbox       TEXT NOT NULL,
        subject       TEXT NOT NULL,    -- the templates as loaded: what was checked is sent
        body          TEXT NOT NULL,
        content_hash  TEXT NOT NULL,    -- templates + shared attachments
        csv_hash      TEXT NOT NULL,    -- the recipients file last loaded
        state         TEXT NOT NULL DEFAULT 'active'
                      CHECK (state IN ('active', 'paused', 'cancelled')),
        created_at    TEXT NOT NULL,
        updated_at    TEXT NOT NULL
    );
    CREATE TABLE recipient (
        id            INTEGER PRIMARY KEY,
        campaign_id   INTEGER NOT NULL REFERENCES campaign (id),
        row           INTEGER NOT NULL, -- the spreadsheet row it came from
        address       TEXT NOT NULL,
        fields        TEXT NOT NULL,    -- JSON object of the CSV row
        subject       TEXT NOT NULL,    -- rendered: receipts quote it
        attachment    TEXT,             -- per-recipient file, relative to the folder
        state         TEXT NOT NULL DEFAULT 'pending' CHECK (state IN (
                          'pending', 'sending', 'sent', 'accepted', 'delivered',
                          'failed', 'rejected', 'unknown', 'expired')),
        message_id    TEXT,
        reason        TEXT,             -- why it failed or was rejected
        claimed_at    TEXT,
        allowance_day    TEXT,          -- the allowance windows its claim was counted in
        allowance_month  TEXT,
        sent_at       TEXT,
        accepted_at   TEXT,
        delivered_at  TEXT,
        failed_at     TEXT,
        updated_at    TEXT NOT NULL,
        UNIQUE (campaign_id, address)
    );
    CREATE INDEX recipient_state ON recipient (campaign_id, state, id);
    CREATE INDEX recipient_message ON recipient (message_id) WHERE message_id IS NOT NULL;
    """,
    # 3: sending: allowances counted per recipient, and leases (one sender per mailbox)
    """
    CREATE TABLE allowance (
        mailbox  TEXT NOT NULL,
        period   TEXT NOT NULL,         -- a Europe/Rome day 'D2026-03-10' or month 'M2026-03'
        used     INTEGER NOT NULL CHECK (used >= 0),
        PRIMARY KEY (mailbox, period)
    );
    CREATE TABLE lease (
        name        TEXT PRIMARY KEY,   -- 'send:<mailbox>', 'reconcile:<mailbox>'
        holder      TEXT NOT NULL,
        expires_at  TEXT NOT NULL       -- UTC: a dead holder's lease lapses then
    );
    -- The database itself keeps the count: a claim (pending -> sending) counts the
    -- recipient in its day and month, in the same statement; a move that proves nothing
    -- was sent (back to pending, or rejected by the provider) gives it back.
    CREATE TRIGGER allowance_reserve AFTER UPDATE OF state ON recipient
    WHEN OLD.state = 'pending' AND NEW.state = 'sending'
    BEGIN
        INSERT OR IGNORE INTO allowance (mailbox, period, used)
            SELECT mailbox, NEW.allowance_day, 0 FROM campaign WHERE id = NEW.campaign_id
            UNION ALL
            SELECT mailbox, NEW.allowance_month, 0 FROM campaign WHERE id = NEW.campaign_id;
        UPDATE allowance SET used = used + 1
            WHERE mailbox = (SELECT mailbox FROM campaign WHERE id = NEW.campaign_id)
            AND period IN (NEW.allowance_day, NEW.allowance_month);
    END;
    CREATE TRIGGER allowance_refund AFTER UPDATE OF state ON recipient
    WHEN OLD.state IN ('sending', 'unknown') AND NEW.state IN ('pending', 'rejected')
    BEGIN
        UPDATE allowance SET used = used - 1
            WHERE mailbox = (SELECT mailbox FROM campaign WHERE id = NEW.campaign_id)
            AND period IN (OLD.allowance_day, OLD.allowance_month);
    END;
    """,
    # 4: receipts, each stored once (keyed by the inbox id), and the reconciler's cursor
    """
    CREATE TABLE receipt (
        id            INTEGER PRIMARY KEY,
        mailbox       TEXT NOT NULL,
        inbox_id      INTEGER NOT NULL,   -- the vendor's id in that mailbox's inbox
        kind          TEXT NOT NULL,      -- massiva.receipts.Kind; the body's word wins
        final         INTEGER,            -- 1 final, 0 not; NULL: a delivery-time notice
                                          -- of no known sending (undecided)
        message_id    TEXT,               -- the sending it names (trailing token or msgid)
        recipient_id  INTEGER REFERENCES recipient (id),  -- NULL: an orphan
        sender        TEXT NOT NULL,
        recipient     TEXT NOT NULL,
        subject       TEXT NOT NULL,
        date_raw      TEXT NOT NULL,      -- as the vendor wrote it (RFC 2822)
        date_utc      TEXT,               -- UTC ISO 8601; NULL when date_raw is no date
        date_offset   TEXT,               -- the original offset, e.g. '+0200'
        body          TEXT,               -- kept as evidence (reconcile --fetch-bodies)
        error         TEXT,               -- why delivery failed, for a failure
        seen_at       TEXT NOT NULL,
        UNIQUE (mailbox, inbox_id)
    );
    CREATE INDEX receipt_recipient ON receipt (recipient_id) WHERE recipient_id IS NOT NULL;
    CREATE INDEX receipt_orphan ON receipt (mailbox, message_id) WHERE recipient_id IS NULL;
    CREATE INDEX campaign_mailbox ON campaign (mailbox);
    CREATE INDEX recipient_address ON recipient (address);
    -- Where the last reconcile of a mailbox stopped reading (massiva/reconcile.py).
    CREATE TABLE inbox_cursor (
        mailbox     TEXT PRIMARY KEY,
        page_order  TEXT CHECK (page_order IN ('newest_first', 'oldest_first')),
                                          -- NULL: not known (yet), read every page
        last_id     INTEGER,              -- the highest inbox id read
        position    INTEGER,              -- its place in the inbox, from the oldest
        page_size   INTEGER,              -- messages a page, as last seen
        total       INTEGER NOT NULL,     -- messages in the inbox, as last seen
        rescan      INTEGER NOT NULL DEFAULT 0,  -- 1: read every page next time
        updated_at  TEXT NOT NULL
    );
    """,
    # 5: a recipient's receipts in inbox order straight from the index (reports list
    # their ids ascending without sorting each recipient's few)
    """
    DROP INDEX receipt_recipient;
    CREATE INDEX receipt_recipient ON receipt (recipient_id, inbox_id)
        WHERE recipient_id IS NOT NULL;
    """,
    # 6: whose claim a `sending` row is (a sender that lost its lease moves only its
    # own), and the operators' decisions on unknown posts (massiva unknowns --settle)
    """
    ALTER TABLE recipient ADD COLUMN claimed_by TEXT;  -- the lease holder that claimed it
    CREATE TABLE settlement (
        id            INTEGER PRIMARY KEY,
        recipient_id  INTEGER NOT NULL REFERENCES recipient (id),
        decision      TEXT NOT NULL CHECK (decision IN ('sent', 'resend')),
        message_id    TEXT,               -- the sending it was settled as, for 'sent'
        decided_by    TEXT NOT NULL,      -- who (the operator's login, or --by)
        decided_at    TEXT NOT NULL       -- UTC
    );
    CREATE INDEX settlement_recipient ON settlement (recipient_id);
    """,
    # 7: a message that looks like a receipt but fails a check (not from the provider's
    # certifying sender, a subject that does not quote the one sent, a date before the
    # post or in the future, a daticert naming someone else): kept, moving nothing
    """
    ALTER TABLE receipt ADD COLUMN suspicious TEXT;  -- why it is not trusted; NULL: trusted
    CREATE INDEX receipt_suspicious ON receipt (mailbox, inbox_id) WHERE suspicious IS NOT NULL;
    """,
    # 8: a recipient is its address AND, with dedupe = "address+keys" in campaign.toml,
    # the values of the campaign's key columns: two notices to one address (another
    # codice_cliente) are two recipients. SQLite changes a UNIQUE constraint only by
    # building the table anew: copied, dropped, renamed, its indexes and triggers made
    # again as they were (migrate() turns foreign keys off meanwhile and checks them
    # before committing). The campaigns and rows loaded before keep the address alone.
    """
    ALTER TABLE campaign ADD COLUMN identity TEXT NOT NULL DEFAULT '[]';
        -- JSON list: the key columns that, with the address, tell recipients apart
    CREATE TABLE recipient_new (
        id            INTEGER PRIMARY KEY,
        campaign_id   INTEGER NOT NULL REFERENCES campaign (id),
        row           INTEGER NOT NULL, -- the spreadsheet row it came from
        address       TEXT NOT NULL,
        fields        TEXT NOT NULL,    -- JSON object of the CSV row
        subject       TEXT NOT NULL,    -- rendered: receipts quote it
        attachment    TEXT,             -- per-recipient file, relative to the folder
        state         TEXT NOT NULL DEFAULT 'pending' CHECK (state IN (
                          'pending', 'sending', 'sent', 'accepted', 'delivered',
                          'failed', 'rejected', 'unknown', 'expired')),
        message_id    TEXT,
        reason        TEXT,             -- why it failed or was rejected
        claimed_at    TEXT,
        allowance_day    TEXT,          -- the allowance windows its claim was counted in
        allowance_month  TEXT,
        sent_at       TEXT,
        accepted_at   TEXT,
        delivered_at  TEXT,
        failed_at     TEXT,
        updated_at    TEXT NOT NULL,
        claimed_by    TEXT,             -- the lease holder that claimed it
        key_values    TEXT NOT NULL DEFAULT '[]',  -- JSON list: its values of the
                                        -- campaign's identity columns
        UNIQUE (campaign_id, address, key_values)
    );
    INSERT INTO recipient_new (id, campaign_id, row, address, fields, subject, attachment,
        state, message_id, reason, claimed_at, allowance_day, allowance_month, sent_at,
        accepted_at, delivered_at, failed_at, updated_at, claimed_by)
    SELECT id, campaign_id, row, address, fields, subject, attachment,
        state, message_id, reason, claimed_at, allowance_day, allowance_month, sent_at,
        accepted_at, delivered_at, failed_at, updated_at, claimed_by
    FROM recipient;
    DROP TABLE recipient;
    ALTER TABLE recipient_new RENAME TO recipient;
    CREATE INDEX recipient_state ON recipient (campaign_id, state, id);
    CREATE INDEX recipient_message ON recipient (message_id) WHERE message_id IS NOT NULL;
    CREATE INDEX recipient_address ON recipient (address);
    CREATE TRIGGER allowance_reserve AFTER UPDATE OF state ON recipient
    WHEN OLD.state = 'pending' AND NEW.state = 'sending'
    BEGIN
        INSERT OR IGNORE INTO allowance (mailbox, period, used)
            SELECT mailbox, NEW.allowance_day, 0 FROM campaign WHERE id = NEW.campaign_id
            UNION ALL
            SELECT mailbox, NEW.allowance_month, 0 FROM campaign WHERE id = NEW.campaign_id;
        UPDATE allowance SET used = used + 1
            WHERE mailbox = (SELECT mailbox FROM campaign WHERE id = NEW.campaign_id)
            AND period IN (NEW.allowance_day, NEW.allowance_month);
    END;
    CREATE TRIGGER allowance_refund AFTER UPDATE OF state ON recipient
    WHEN OLD.state IN ('sending', 'unknown') AND NEW.state IN ('pending', 'rejected')
    BEGIN
        UPDATE allowance SET used = used - 1
            WHERE mailbox = (SELECT mailbox FROM campaign WHERE id = NEW.campaign_id)
            AND period IN (OLD.allowance_day, OLD.allowance_month);
    END;
    """,
    # 9: evidence. What each post carried, recorded before its request leaves (so a post of
    # unknown outcome keeps what was attempted): JSON {"subject": sha256, "body": sha256,
    # "attachments": [[name, sha256, size], ...]}; the body and the attachments themselves
    # are in the archive beside the database (massiva/archive.py). Each receipt body's
    # SHA-256 as kept, and the failed tries to fetch it (the next reconcile tries again).
    # When DELETE /send/{code} freed the mailbox of a sending's receipts (purge_archived).
    """
    ALTER TABLE recipient ADD COLUMN sent_content TEXT;
    ALTER TABLE recipient ADD COLUMN purged_at TEXT;
    ALTER TABLE receipt ADD COLUMN body_sha256 TEXT;
    ALTER TABLE receipt ADD COLUMN body_tries INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX receipt_bodiless ON receipt (mailbox, inbox_id)
        WHERE body IS NULL AND recipient_id IS NOT NULL;
    """,
    # 10: volume. A campaign sends from a pool of mailboxes (campaign_pool, in the
    # order campaign.toml lists them; campaign.mailbox stays the first); each recipient
    # records the mailbox that claimed it, and its allowance is counted in that mailbox.
    # A campaign's schedule (massiva/schedule.py) as JSON: '{}' sends at any time.
    """
    CREATE TABLE campaign_pool (
        campaign_id  INTEGER NOT NULL REFERENCES campaign (id),
        mailbox      TEXT NOT NULL,
        position     INTEGER NOT NULL,
        PRIMARY KEY (campaign_id, mailbox)
    );
    INSERT INTO campaign_pool (campaign_id, mailbox, position)
        SELECT id, mailbox, 0 FROM campaign;
    ALTER TABLE campaign ADD COLUMN schedule TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE recipient ADD COLUMN mailbox TEXT;  -- the mailbox of its latest claim
    UPDATE recipient SET mailbox = (SELECT mailbox FROM campaign WHERE id = recipient.campaign_id)
        WHERE state <> 'pending';
    CREATE INDEX recipient_mailbox ON recipient (mailbox, state) WHERE mailbox IS NOT NULL;
    DROP TRIGGER allowance_reserve;
    DROP TRIGGER allowance_refund;
    CREATE TRIGGER allowance_reserve AFTER UPDATE OF state ON recipient
    WHEN OLD.state = 'pending' AND NEW.state = 'sending'
    BEGIN
        SELECT RAISE(ABORT, 'a claim must name its mailbox') WHERE NEW.mailbox IS NULL;
        INSERT OR IGNORE INTO allowance (mailbox, period, used)
            VALUES (NEW.mailbox, NEW.allowance_day, 0), (NEW.mailbox, NEW.allowance_month, 0);
        UPDATE allowance SET used = used + 1
            WHERE mailbox = NEW.mailbox AND period IN (NEW.allowance_day, NEW.allowance_month);
    END;
    CREATE TRIGGER allowance_refund AFTER UPDATE OF state ON recipient
    WHEN OLD.state IN ('sending', 'unknown') AND NEW.state IN ('pending', 'rejected')
    BEGIN
        UPDATE allowance SET used = used - 1
            WHERE mailbox = OLD.mailbox AND period IN (OLD.allowance_day, OLD.allowance_month);
    END;
    """,
)


_POSTGRESQL_10 = """
CREATE TABLE mailbox (
    id          TEXT PRIMARY KEY,
    address     TEXT NOT NULL,
    box_type    TEXT NOT NULL,
    state       TEXT NOT NULL,
    expires     TEXT,
    updated_at  TEXT NOT NULL
);
CREATE INDEX mailbox_address ON mailbox (address);
CREATE TABLE domain (
    id          TEXT PRIMARY KEY,
    domain      TEXT NOT NULL,
    provider    TEXT NOT NULL,
    state       TEXT NOT NULL,
    expires     TEXT,
    updated_at  TEXT NOT NULL
);
CREATE TABLE campaign (
    id            BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    folder        TEXT NOT NULL,
    mailbox       TEXT NOT NULL,
    subject       TEXT NOT NULL,
    body          TEXT NOT NULL,
    content_hash  TEXT NOT NULL,
    csv_hash      TEXT NOT NULL,
    state         TEXT NOT NULL DEFAULT 'active'
                  CHECK (state IN ('active', 'paused', 'cancelled')),
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    identity      TEXT NOT NULL DEFAULT '[]',
    schedule      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX campaign_mailbox ON campaign (mailbox);
CREATE TABLE campaign_pool (
    campaign_id  BIGINT NOT NULL REFERENCES campaign (id),
    mailbox      TEXT NOT NULL,
    position     INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, mailbox)
);
CREATE TABLE recipient (
    id            BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    campaign_id   BIGINT NOT NULL REFERENCES campaign (id),
    row           INTEGER NOT NULL,
    address       TEXT NOT NULL,
    fields        TEXT NOT NULL,
    subject       TEXT NOT NULL,
    attachment    TEXT,
    state         TEXT NOT NULL DEFAULT 'pending' CHECK (state IN (
                      'pending', 'sending', 'sent', 'accepted', 'delivered',
                      'failed', 'rejected', 'unknown', 'expired')),
    message_id    TEXT,
    reason        TEXT,
    claimed_at    TEXT,
    allowance_day    TEXT,
    allowance_month  TEXT,
    sent_at       TEXT,
    accepted_at   TEXT,
    delivered_at  TEXT,
    failed_at     TEXT,
    updated_at    TEXT NOT NULL,
    claimed_by    TEXT,
    key_values    TEXT NOT NULL DEFAULT '[]',
    sent_content  TEXT,
    purged_at     TEXT,
    mailbox       TEXT,
    UNIQUE (campaign_id, address, key_values)
);
CREATE INDEX recipient_state ON recipient (campaign_id, state, id);
CREATE INDEX recipient_message ON recipient (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX recipient_address ON recipient (address);
CREATE INDEX recipient_mailbox ON recipient (mailbox, state) WHERE mailbox IS NOT NULL;
CREATE TABLE allowance (
    mailbox  TEXT NOT NULL,
    period   TEXT NOT NULL,
    used     INTEGER NOT NULL CHECK (used >= 0),
    PRIMARY KEY (mailbox, period)
);
CREATE TABLE lease (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);
-- The allowance count of SQLite's migration 10, row by row (a window it does not name,
-- NULL, is not counted: SQLite's INSERT OR IGNORE skips it too).
CREATE FUNCTION allowance_reserve() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.mailbox IS NULL THEN
        RAISE EXCEPTION 'a claim must name its mailbox';
    END IF;
    INSERT INTO allowance (mailbox, period, used)
        SELECT NEW.mailbox, period, 0
        FROM unnest(ARRAY[NEW.allowance_day, NEW.allowance_month]) AS period
        WHERE period IS NOT NULL
        ON CONFLICT DO NOTHING;
    UPDATE allowance SET used = used + 1
        WHERE mailbox = NEW.mailbox AND period IN (NEW.allowance_day, NEW.allowance_month);
    RETURN NULL;
END $$;
CREATE TRIGGER allowance_reserve AFTER UPDATE OF state ON recipient FOR EACH ROW
    WHEN (OLD.state = 'pending' AND NEW.state = 'sending')
    EXECUTE FUNCTION allowance_reserve();
CREATE FUNCTION allowance_refund() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE allowance SET used = used - 1
        WHERE mailbox = OLD.mailbox AND period IN (OLD.allowance_day, OLD.allowance_month);
    RETURN NULL;
END $$;
CREATE TRIGGER allowance_refund AFTER UPDATE OF state ON recipient FOR EACH ROW
    WHEN (OLD.state IN ('sending', 'unknown') AND NEW.state IN ('pending', 'rejected'))
    EXECUTE FUNCTION allowance_refund();
CREATE TABLE receipt (
    id            BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    mailbox       TEXT NOT NULL,
    inbox_id      BIGINT NOT NULL,
    kind          TEXT NOT NULL,
    final         INTEGER,
    message_id    TEXT,
    recipient_id  BIGINT REFERENCES recipient (id),
    sender        TEXT NOT NULL,
    recipient     TEXT NOT NULL,
    subject       TEXT NOT NULL,
    date_raw      TEXT NOT NULL,
    date_utc      TEXT,
    date_offset   TEXT,
    body          TEXT,
    error         TEXT,
    seen_at       TEXT NOT NULL,
    suspicious    TEXT,
    body_sha256   TEXT,
    body_tries    INTEGER NOT NULL DEFAULT 0,
    UNIQUE (mailbox, inbox_id)
);
CREATE INDEX receipt_recipient ON receipt (recipient_id, inbox_id)
    WHERE recipient_id IS NOT NULL;
CREATE INDEX receipt_orphan ON receipt (mailbox, message_id) WHERE recipient_id IS NULL;
CREATE INDEX receipt_suspicious ON receipt (mailbox, inbox_id) WHERE suspicious IS NOT NULL;
CREATE INDEX receipt_bodiless ON receipt (mailbox, inbox_id)
    WHERE body IS NULL AND recipient_id IS NOT NULL;
CREATE TABLE inbox_cursor (
    mailbox     TEXT PRIMARY KEY,
    page_order  TEXT CHECK (page_order IN ('newest_first', 'oldest_first')),
    last_id     BIGINT,
    position    BIGINT,
    page_size   INTEGER,
    total       BIGINT NOT NULL,
    rescan      INTEGER NOT NULL DEFAULT 0,
    updated_at  TEXT NOT NULL
);
CREATE TABLE settlement (
    id            BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    recipient_id  BIGINT NOT NULL REFERENCES recipient (id),
    decision      TEXT NOT NULL CHECK (decision IN ('sent', 'resend')),
    message_id    TEXT,
    decided_by    TEXT NOT NULL,
    decided_at    TEXT NOT NULL
);
CREATE INDEX settlement_recipient ON settlement (recipient_id);
"""

#: PostgreSQL's migrations: (the version each reaches, its script).
POSTGRESQL_MIGRATIONS: tuple[tuple[int, str], ...] = ((10, _POSTGRESQL_10),)

# Any one number, the same in every massiva: the lock two processes migrating at once
# take turns on.
_MIGRATION_LOCK = 0x6D617373  # "mass"


async def migrate_postgresql(conn: psycopg.AsyncConnection[Any]) -> None:
    """Apply the migrations this PostgreSQL database lacks, each in its own transaction,
    taking turns with any other process doing the same (an advisory lock)."""
    for version, script in POSTGRESQL_MIGRATIONS:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER)")
            cursor = await conn.execute("SELECT max(version) FROM schema_version")
            row = await cursor.fetchone()
            if row and row[0] is not None and int(row[0]) >= version:
                continue
            await conn.execute(script)
            await conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))


async def postgresql_version(conn: psycopg.AsyncConnection[Any]) -> int:
    """The schema version of a PostgreSQL database (0: none yet)."""
    cursor = await conn.execute("SELECT to_regclass('schema_version') IS NOT NULL")
    row = await cursor.fetchone()
    if not row or not row[0]:
        return 0
    cursor = await conn.execute("SELECT coalesce(max(version), 0) FROM schema_version")
    row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def migrate_sqlite(db: aiosqlite.Connection) -> None:
    """Apply the migrations this database lacks, each in its own write transaction.

    Foreign keys are off while migrating (a table built anew is dropped while others
    refer to it; SQLite's own recipe) and checked before each migration commits; they
    are as they were when it returns.
    """
    cursor = await db.execute("PRAGMA foreign_keys")
    row = await cursor.fetchone()
    enforced = bool(row and row[0])
    # The pragma does nothing inside a transaction: it is set between them.
    await db.execute("PRAGMA foreign_keys = OFF")
    try:
        while await _migrate_one(db):
            pass
    finally:
        await db.execute(f"PRAGMA foreign_keys = {'ON' if enforced else 'OFF'}")


async def _migrate_one(db: aiosqlite.Connection) -> bool:
    """Apply the next migration the database lacks; False when it lacks none."""
    await db.execute("BEGIN IMMEDIATE")
    try:
        cursor = await db.execute("PRAGMA user_version")
        row = await cursor.fetchone()
        version = int(row[0]) if row else 0
        if version >= len(MIGRATIONS):
            await db.execute("COMMIT")
            return False
        for statement in _statements(MIGRATIONS[version]):
            await db.execute(statement)
        broken = list(await db.execute_fetchall("PRAGMA foreign_key_check"))
        if broken:
            raise sqlite3.IntegrityError(
                f"migration {version + 1} would break {len(broken)} foreign key(s),"
                f" the first in table {broken[0][0]}"
            )
        await db.execute(f"PRAGMA user_version = {version + 1}")
        await db.execute("COMMIT")
        return True
    except BaseException:
        await db.execute("ROLLBACK")
        raise


def _statements(script: str) -> list[str]:
    """The statements of ``script``, split where SQLite itself says one is complete (a
    ``;`` in a comment or a string does not end one). executescript() would COMMIT the
    open transaction, so the migration runs them one by one."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        raise ValueError(f"an incomplete statement ends a migration: {buffer.strip()[:80]}")
    return statements
