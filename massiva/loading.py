"""Loading a checked campaign into the outbox: one row per valid recipient.

Loading is idempotent: the same folder loaded twice adds nothing; a recipients file
whose content changed adds only the recipients the campaign does not have yet (those it
has are left as they are: they may already have been sent). A recipient is its address
and, with ``dedupe = "address+keys"``, its values of the key columns
(:attr:`CampaignSpec.identity`); the campaign keeps what made a recipient when it was
first loaded, and refuses a folder that would count them otherwise. A load cut short is
finished by loading again. A folder with no row that can be sent is refused: no
campaign is created for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from massiva.campaign import CampaignSpec, Recipient, csv_hash, preflight, validate
from massiva.store import CampaignRow, NewRecipient, Store

BATCH = 5_000


class LoadError(ValueError):
    """The folder cannot be loaded into the campaign of the same name."""


@dataclass
class LoadResult:
    """What a load did."""

    name: str
    created: bool
    unchanged: bool  # same recipients file as last time: nothing was read
    rows: int = 0
    valid: int = 0
    rejected: int = 0
    duplicates: int = 0
    added: int = 0
    empty: int = 0  # valid rows where a merge field the templates print is empty
    same_address: int = 0  # valid rows at an address an earlier row has (other key values)

    @property
    def already_loaded(self) -> int:
        """Valid recipients the campaign had already."""
        return self.valid - self.added


async def load_campaign(
    store: Store,
    spec: CampaignSpec,
    *,
    say: Callable[[str], None] = lambda message: None,
    on_row: Callable[[int], None] = lambda row: None,
) -> LoadResult:
    """Validate ``spec``'s recipients and add the valid ones to its campaign's outbox.

    The campaign is created with its first valid recipient: raises :class:`LoadError`,
    having created nothing, if no row can be sent.
    """
    preflight(spec)  # a template variable no column holds: one error, not a reject a row
    digest = csv_hash(spec.recipients)
    campaign = await store.campaigns.get(spec.name)
    if campaign is None:
        result = LoadResult(spec.name, created=True, unchanged=False)
    else:
        await _repool(store, campaign, spec, say)
        if campaign.content_hash != spec.content_hash():
            raise LoadError(
                f"the templates or shared attachments of campaign {spec.name!r} changed"
                " since it was loaded, and some messages may have gone with the old ones:"
                " give the campaign a new name to send the new version"
            )
        if campaign.csv_hash == digest:
            return LoadResult(spec.name, created=False, unchanged=True)
        if campaign.identity != spec.identity:
            raise LoadError(_identity_changed(spec, campaign.identity))
        if campaign.csv_hash:
            say(
                f"The recipients file changed since campaign {spec.name!r} was loaded:"
                " adding only the recipients it does not have yet."
            )
        result = LoadResult(spec.name, created=False, unchanged=False)

    batch: list[NewRecipient] = []
    # One batch is written while the next is read: SQLite works in its own thread.
    writing: asyncio.Task[int] | None = None

    async def write(batch: list[NewRecipient]) -> asyncio.Task[int]:
        nonlocal campaign
        if writing is not None:
            result.added += await writing
        if campaign is None:
            campaign = await store.campaigns.create(
                name=spec.name,
                folder=str(spec.folder),
                mailboxes=spec.mailboxes,
                subject=spec.subject,
                body=spec.body,
                content_hash=spec.content_hash(),
                csv_hash="",  # set when every row is in
                identity=spec.identity,
                schedule=spec.schedule,
            )
        task = asyncio.create_task(store.campaigns.add_recipients(campaign.id, batch))
        await asyncio.sleep(0)  # it starts: the statement is handed to SQLite's thread
        return task

    identity = spec.identity
    try:
        for item in validate(spec):
            result.rows += 1
            on_row(item.row)
            if isinstance(item, Recipient):
                result.valid += 1
                result.empty += bool(item.empty)
                result.same_address += item.same_address is not None
                keys = tuple(item.fields[column] for column in identity)
                batch.append(
                    NewRecipient(
                        item.row, item.address, item.fields, item.subject, item.attachment, keys
                    )
                )
                if len(batch) >= BATCH:
                    writing = await write(batch)
                    batch = []
            elif item.duplicate:
                result.duplicates += 1
            else:
                result.rejected += 1
        if batch:
            writing = await write(batch)
        if writing is not None:
            result.added += await writing
            writing = None
    except BaseException as exc:
        if writing is not None:  # stopped early (a broken row): the write under way ends
            await asyncio.wait({writing})
            failed = None if writing.cancelled() else writing.exception()
            if failed is not None and failed is not exc:
                exc.add_note(f"writing the rows read before it failed too: {failed!r}")
        raise
    if campaign is None or not result.valid:
        raise LoadError(
            f"no row of {spec.recipients.name} can be sent ({result.rejected} rejected,"
            f" {result.duplicates} duplicates), so campaign {spec.name!r} was not"
            f" {'created' if result.created else 'changed'}: massiva campaign check"
            f" {spec.folder} says what is wrong with each row"
        )
    await store.campaigns.set_csv_hash(campaign.id, digest)
    return result


async def _repool(
    store: Store, campaign: CampaignRow, spec: CampaignSpec, say: Callable[[str], None]
) -> None:
    """campaign.toml's pool and schedule, loaded again, replace the campaign's. A mailbox
    leaves the pool only if it claimed none of its recipients: the receipts of those it
    sent come to it, and reconcile reads it for them."""
    if campaign.mailboxes == spec.mailboxes and campaign.schedule == spec.schedule:
        return
    used = await store.campaigns.sent_from(campaign.id)
    kept = [box for box in campaign.mailboxes if box not in spec.mailboxes and used.get(box)]
    if kept:
        raise LoadError(
            f"campaign.toml no longer lists {', '.join(kept)}, which sent recipients of"
            f" campaign {spec.name!r} ({sum(used[b] for b in kept)}): keep it in the pool"
            " (its receipts come to it and are read from it)"
        )
    await store.campaigns.set_pool(campaign.id, spec.mailboxes, spec.schedule)
    if campaign.mailboxes != spec.mailboxes:
        say(f"Campaign {spec.name!r} now sends from {', '.join(spec.mailboxes)}.")
    if campaign.schedule != spec.schedule:
        say(f"Campaign {spec.name!r} now sends {spec.schedule.describe()}.")


def _identity_changed(spec: CampaignSpec, loaded: tuple[str, ...]) -> str:
    def told_apart(columns: tuple[str, ...]) -> str:
        if not columns:
            return "by the address alone"
        return "by the address and " + ", ".join(columns)

    fix = "give the campaign a new name"
    if not loaded and spec.dedupe == "address+keys":  # loaded before dedupe, or with "address"
        fix = 'set dedupe = "address" in campaign.toml to go on with it, or ' + fix
    return (
        f"campaign {spec.name!r} was loaded with its recipients told apart"
        f" {told_apart(loaded)}, and campaign.toml now tells them apart"
        f" {told_apart(spec.identity)} (dedupe and key_columns): loading the changed"
        f" recipients file could send someone a second message; {fix}"
    )
