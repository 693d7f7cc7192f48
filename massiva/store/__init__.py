"""The one place that owns SQL: the schema on both engines, its migrations and every query.

Open it with ``async with await Store.open(target) as store``: ``target`` is a SQLite
file's path, or a ``postgresql://`` URL. The queries are grouped by what they are about
(``store.provisioning``, ``store.campaigns``, ``store.outbox``). No secret is ever stored
here.
"""

from __future__ import annotations

from pathlib import Path

from massiva.dburl import is_url, masked
from massiva.store.campaigns import STATES, CampaignQueries, CampaignRow, NewRecipient
from massiva.store.database import Database, SqliteDatabase, Unavailable
from massiva.store.evidence import EvidenceQueries
from massiva.store.outbox import Claimed, LeaseLost, OutboxQueries, Stopped, Unknown
from massiva.store.provisioning import DomainRow, MailboxRow, ProvisioningQueries
from massiva.store.purge import PurgeQueries
from massiva.store.receipts import Cursor, ReceiptBatch, ReceiptQueries, ReceiptRow, Tracked
from massiva.store.reports import ReportQueries


class Store:
    """An open massiva database, with its queries grouped by subject.

    ``engine`` is ``"sqlite"`` or ``"postgresql"``; ``where`` names the database for
    people (a URL with its password masked); ``archive_dir`` holds the bodies and
    attachments as sent.
    """

    def __init__(self, database: Database) -> None:
        self.database = database
        self.engine = database.engine
        self.where = database.where
        self.archive_dir = database.archive_dir
        self.provisioning = ProvisioningQueries(database)
        self.campaigns = CampaignQueries(database)
        self.outbox = OutboxQueries(database)
        self.receipts = ReceiptQueries(database)
        self.reports = ReportQueries(database)
        self.purge = PurgeQueries(database)
        self.evidence = EvidenceQueries(database)

    @classmethod
    async def open(cls, target: Path | str, *, archive_dir: Path | None = None) -> Store:
        """Open (creating and migrating as needed) the database ``target``: a SQLite
        file's path, or a ``postgresql://`` URL. ``archive_dir`` keeps the bodies and
        attachments as sent: beside a SQLite file by default; required for a URL (a
        folder the hosts that send share)."""
        if is_url(target):
            if archive_dir is None:
                raise ValueError("a PostgreSQL store needs the folder of its archive")
            from massiva.store.postgres import PostgresDatabase  # the driver, when used

            return cls(await PostgresDatabase.open(str(target), archive_dir))
        path = Path(target)
        return cls(SqliteDatabase(await SqliteDatabase.connect(path), path, archive_dir))

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection(s)."""
        await self.database.close()


__all__ = [
    "STATES",
    "CampaignRow",
    "Claimed",
    "Cursor",
    "DomainRow",
    "LeaseLost",
    "MailboxRow",
    "NewRecipient",
    "ReceiptBatch",
    "ReceiptRow",
    "Stopped",
    "Store",
    "Tracked",
    "Unavailable",
    "Unknown",
    "masked",
]
