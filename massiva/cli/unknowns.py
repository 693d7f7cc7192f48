"""``massiva unknowns``: the posts of unknown outcome, what the inbox says of each, and an
operator's decision on one."""

from __future__ import annotations

import getpass
from datetime import timedelta

import click

from massiva import loaded
from massiva.cli.context import EXIT_INPUT, EXIT_REFUSED, Env, fail, pass_env, run
from massiva.cli.output import emit_json, json_option, table
from massiva.cli.text import printable
from massiva.receipts import same_address
from massiva.store import CampaignRow, Store
from massiva.times import show, utcnow
from massiva.unknowns import DEFAULT_GRACE, Verdict, examine


@click.command()
@click.argument("name")
@click.option(
    "--settle",
    "address",
    metavar="ADDRESS",
    help="Decide for this recipient (with --as-sent or --resend).",
)
@click.option(
    "--as-sent",
    "message_id",
    metavar="MESSAGE_ID",
    help="It was sent: this is its message id (its receipts will be tied to it).",
)
@click.option("--resend", is_flag=True, help="It was not sent: post it again.")
@click.option(
    "--row",
    type=int,
    help="The spreadsheet row to settle, when several unknown rows share the address"
    " (two notices to one address).",
)
@click.option(
    "--by",
    "decided_by",
    metavar="WHO",
    help="Who decides, as recorded (default: your login name).",
)
@json_option
@pass_env
@run
async def unknowns(
    env: Env,
    name: str,
    address: str | None,
    message_id: str | None,
    resend: bool,
    row: int | None,
    decided_by: str | None,
    as_json: bool,
) -> None:
    """List campaign NAME's recipients whose post may or may not have left.

    A timeout, a dropped connection or a crash mid-post leaves a recipient
    unknown. massiva send and massiva reconcile search the mailbox for its
    acceptance: found, it is sent under that message id; not found after the
    grace period, it is sent again. When receipts cannot be told apart (two
    campaigns with the same subject to the same address, say), nothing is
    decided: the recipient waits here, with the receipts found, for you.

    Settle one with --settle ADDRESS and either --as-sent MESSAGE_ID (it left:
    the receipt's message id) or --resend (it did not: the next massiva send
    posts it); --row N picks the row when several unknown rows share the
    address. The decision is recorded with who made it and when.

    Exit 0 when done, 1 when the recipient is not unknown or the message id is
    another recipient's, 2 for a bad combination of options.

    Example:

    \b
        massiva unknowns esempio-avvisi-2026
        massiva unknowns esempio-avvisi-2026 --settle mario.rossi@legalmail.it \\
            --as-sent 2026031010000012
    """
    if address is None and (message_id is not None or resend or row is not None):
        fail("--as-sent, --resend and --row need --settle ADDRESS", EXIT_INPUT, as_json=as_json)
    if address is not None and (message_id is None) == (not resend):
        fail(
            "say what happened to it: --as-sent MESSAGE_ID or --resend", EXIT_INPUT, as_json=as_json
        )
    if message_id is not None and not (message_id.isascii() and message_id.isdigit()):
        fail(
            f"{message_id!r} is no message id: the vendor's ids are numbers, as the receipts"
            " show them (e.g. 2026031010000012)",
            EXIT_INPUT,
            as_json=as_json,
        )
    async with env.store() as store:
        campaign = await loaded.find(store, name)
        if address is not None:
            await _settle(store, campaign, address, row, message_id, decided_by, as_json)
            return
        verdicts = []
        async with env.mailbox_clients(campaign.mailboxes) as clients:
            for client in clients:  # each post is searched for where it was sent from
                verdicts += await examine(
                    store,
                    client,
                    client.username,
                    now=utcnow(),
                    grace=DEFAULT_GRACE,
                    campaign=name,
                    trusted=env.config.mailbox(client.username).trusted,
                )
    _print(name, verdicts, as_json)


async def _settle(
    store: Store,
    campaign: CampaignRow,
    address: str,
    row: int | None,
    message_id: str | None,
    decided_by: str | None,
    as_json: bool,
) -> None:
    waiting = [
        u
        for mailbox in campaign.mailboxes
        for u in await store.outbox.unknowns(mailbox, campaign.name)
        if same_address(u.address) == same_address(address) and row in (None, u.row)
    ]
    if not waiting:
        fail(
            f"{address}{f' (row {row})' if row is not None else ''} is not an unknown"
            f" recipient of campaign {campaign.name!r}: see massiva unknowns {campaign.name}",
            EXIT_REFUSED,
            as_json=as_json,
        )
    if len(waiting) > 1:
        rows = ", ".join(str(u.row) for u in waiting)
        fail(
            f"{address} is unknown in rows {rows} of campaign {campaign.name!r} (two"
            " notices to one address): say which with --row N",
            EXIT_INPUT,
            as_json=as_json,
        )
    if message_id is not None and await store.outbox.message_ids_taken([message_id]):
        fail(
            f"message {message_id} is already another recipient's: check the id",
            EXIT_REFUSED,
            as_json=as_json,
        )
    who = decided_by or getpass.getuser()
    unknown = waiting[0]
    if not await store.outbox.settle(
        unknown.id, message_id=message_id, decided_by=who, now=utcnow()
    ):
        fail(
            f"{address} was settled meanwhile, or message {message_id} became another"
            f" recipient's: see massiva unknowns {campaign.name}",
            EXIT_REFUSED,
            as_json=as_json,
        )
    decision = f"sent as message {message_id}" if message_id else "to be sent again"
    if as_json:
        emit_json(
            {
                "campaign": campaign.name,
                "address": unknown.address,
                "row": unknown.row,
                "decision": "sent" if message_id else "resend",
                "message_id": message_id,
                "decided_by": who,
            }
        )
    else:
        click.echo(printable(f"{unknown.address}: {decision} (decided by {who})."))


def _print(name: str, verdicts: list[Verdict], as_json: bool) -> None:
    if as_json:
        emit_json(
            {
                "campaign": name,
                "unknowns": [
                    {
                        "row": v.unknown.row,
                        "address": v.unknown.address,
                        "claimed_at": v.unknown.claimed_at.isoformat(),
                        "decision": str(v.decision),
                        "why": v.why,
                        "candidates": [
                            {
                                "inbox_id": c.inbox_id,
                                "message_id": c.message_id,
                                "kind": str(c.kind),
                                "date": c.date,
                                "names": list(c.names),
                            }
                            for c in v.candidates
                        ],
                    }
                    for v in verdicts
                ],
            }
        )
        return
    if not verdicts:
        click.echo(f"Campaign {name!r} has no recipient of unknown outcome.")
        return
    table(
        f"Campaign {name}: recipients of unknown outcome",
        ("row", "address", "claimed at", "next", "receipts found"),
        [
            [
                str(v.unknown.row),
                v.unknown.address,
                show(v.unknown.claimed_at),
                f"{v.decision}: {v.why}",
                ", ".join(f"{c.inbox_id} (message {c.message_id})" for c in v.candidates) or "-",
            ]
            for v in verdicts
        ],
    )
    grace = int(DEFAULT_GRACE / timedelta(minutes=1))
    click.echo(
        "adopt and requeue happen at the next massiva send or reconcile (requeue after"
        f" {grace} minutes without a receipt); settle an ambiguous one with"
        f" massiva unknowns {name} --settle ADDRESS --as-sent MESSAGE_ID | --resend"
    )
