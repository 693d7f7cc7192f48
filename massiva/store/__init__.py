"""The one place that owns SQL: the SQLite schema, its migrations and every query.

Open it with ``async with await Store.open(path) as store``; the queries are grouped by
what they are about (``store.provisioning``, ``store.campaigns``, ``store.outbox``).
No secret is ever stored here.
"""

from __future__ import annotations

from pathlib import Path

import aiosqlite

from massiva.store.campaigns import STATES, CampaignQueries, CampaignRow, NewRecipient
from massiva.store.database import Database
from massiva.store.evidence import EvidenceQueries
from massiva.store.outbox import Claimed, LeaseLost, OutboxQueries, Stopped, Unknown
from massiva.store.provisioning import DomainRow, MailboxRow, ProvisioningQueries
from massiva.store.purge import PurgeQueries
from massiva.store.receipts import Cursor, ReceiptBatch, ReceiptQueries, ReceiptRow, Tracked
from massiva.store.reports import ReportQueries


class Store(Database):
    """An open massiva database, with its queries grouped by subject."""

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        super().__init__(db, path)
        self.provisioning = ProvisioningQueries(self)
        self.campaigns = CampaignQueries(self)
        self.outbox = OutboxQueries(self)
        self.receipts = ReceiptQueries(self)
        self.reports = ReportQueries(self)
        self.purge = PurgeQueries(self)
        self.evidence = EvidenceQueries(self)

    @classmethod
    async def open(cls, path: Path) -> Store:
        """Open (creating and migrating as needed) the database at ``path``."""
        return cls(await cls.connect(path), path)


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
    "Unknown",
]
