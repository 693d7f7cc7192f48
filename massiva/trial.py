"""Test sends (``massiva campaign test``): one rendered message to a test address,
recorded like any other.

A test send is a real certified message: it counts against the mailbox's allowance and
its receipts come back to the mailbox. So it is not posted on the side: each one is a
campaign of its own, named ``NAME:prova-N`` (a colon is never in a campaign's own
name), holding one recipient, the test address, with the chosen row's fields and the
subject prefixed ``[PROVA]``. It is then sent by the same :class:`~massiva.sender.Sender`
as everything else (claim, allowance, pace, the mailbox's lease, unknown outcomes), and
``massiva reconcile`` gives its receipts to it, never to the orphans.
"""

from __future__ import annotations

import re

from massiva.campaign import CampaignSpec, Recipient
from massiva.store import CampaignRow, NewRecipient, Store

PREFIX = "[PROVA] "


async def record_test(
    store: Store, spec: CampaignSpec, recipient: Recipient, to: str
) -> CampaignRow:
    """A new test campaign of ``spec``: ``recipient``'s message, to the address ``to``.

    Returns the campaign, its one recipient ``pending``: send it as any campaign."""
    taken = re.compile(re.escape(spec.name) + r":prova-(\d+)")
    numbers = [int(m[1]) for c in await store.campaigns.all() if (m := taken.fullmatch(c.name))]
    campaign = await store.campaigns.create(
        name=f"{spec.name}:prova-{max(numbers, default=0) + 1}",
        folder=str(spec.folder),
        mailboxes=spec.mailboxes[:1],
        subject=spec.subject,
        body=spec.body,
        content_hash=spec.content_hash(),
        csv_hash="",  # no recipients file: the one row is the test address
    )
    row = NewRecipient(
        recipient.row, to, recipient.fields, PREFIX + recipient.subject, recipient.attachment
    )
    await store.campaigns.add_recipients(campaign.id, [row])
    return campaign
