"""``massiva recipient ADDRESS``: one person's history across campaigns."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from massiva.campaign import addresses
from massiva.cli.context import EXIT_INPUT, Env, fail, pass_env, run
from massiva.cli.output import emit_json, json_option
from massiva.cli.text import printable
from massiva.lifecycle import State
from massiva.report.rows import rome, rome_iso
from massiva.store.receipts import ReceiptRow
from massiva.store.reports import Sending
from massiva.times import show, utcnow


@click.command()
@click.argument("address")
@json_option
@pass_env
@run
async def recipient(env: Env, address: str, as_json: bool) -> None:
    """Show what was sent to ADDRESS, in every campaign, and what came of it.

    The question a clerk is asked: "did Mr Rossi get our notice, and when?".
    For each campaign that wrote to the address: the mailbox that sent it (or
    "not sent yet"; pending past the campaign's deadline: "not sent by the
    deadline"), the subject, the state, the message id, when it was sent,
    accepted and delivered (or why not), and every receipt kept, with its date
    and its id in the mailbox. Times are Europe/Rome with the offset. Exit 1
    when no campaign wrote to it.

    Example:

    \b
        massiva recipient mario.rossi@legalmail.it
        massiva recipient mario.rossi@legalmail.it --json
    """
    wanted = addresses.normalise(address)
    wrong = addresses.problem(wanted)
    if wrong:
        fail(f"{printable(address)} is not an address: {wrong}", EXIT_INPUT, as_json=as_json)
    now = utcnow()
    async with env.store() as store:
        history = await store.reports.history(wanted)
        found = [(s, await store.receipts.of_recipient(s.id)) for s in history]
    if as_json:
        emit_json({"address": wanted, "sendings": [_as_json(s, r, now) for s, r in found]})
    else:
        _print(wanted, found, now)
    if not found:
        raise SystemExit(1)


def _late(sending: Sending, now: datetime) -> bool:
    """Whether ``sending`` is pending in a campaign past its deadline: never to be sent."""
    return sending.state == State.PENDING and sending.schedule.past_deadline(now)


def _as_json(sending: Sending, receipts: list[ReceiptRow], now: datetime) -> dict[str, Any]:
    return {
        "campaign": sending.campaign,
        "mailbox": sending.mailbox or None,
        "row": sending.row,
        "subject": sending.subject,
        "state": sending.state,
        "not_sent_by_deadline": _late(sending, now),
        "message_id": sending.message_id or None,
        "sent_at": rome(sending.sent_at) or None,
        "accepted_at": rome(sending.accepted_at) or None,
        "delivered_at": rome(sending.delivered_at) or None,
        "failed_at": rome(sending.failed_at) or None,
        "reason": sending.reason or None,
        "receipts": [
            {
                "inbox_id": r.inbox_id,
                "kind": r.kind,
                "subject": r.subject,
                "date": rome_iso(r.date_utc) if r.date_utc else None,
                "error": r.error,
                "suspicious": r.suspicious,
            }
            for r in receipts
        ],
    }


def _print(address: str, found: list[tuple[Sending, list[ReceiptRow]]], now: datetime) -> None:
    if not found:
        click.echo(f"No campaign has written to {printable(address)}.")
        return
    click.echo(f"{printable(address)}: {len(found)} sending(s).")
    for sending, receipts in found:
        click.echo("")
        source = f"from {printable(sending.mailbox)}" if sending.mailbox else "not sent yet"
        state = f"{sending.state}, not sent by the deadline" if _late(sending, now) else ""
        click.echo(
            f"{printable(sending.campaign)} (row {sending.row}, {source}): {state or sending.state}"
        )
        lines = [
            ("subject", printable(sending.subject)),
            ("message id", printable(sending.message_id)),
            ("sent", rome(sending.sent_at)),
            ("accepted", rome(sending.accepted_at)),
            ("delivered", rome(sending.delivered_at)),
            ("failed", rome(sending.failed_at)),
            ("reason", printable(sending.reason)),
        ]
        for label, value in lines:
            if value:
                click.echo(f"  {label:<11}{value}")
        for r in receipts:
            when = show(r.date_utc) if r.date_utc else printable(r.date_raw)
            doubt = f" (not trusted: {printable(r.suspicious)})" if r.suspicious else ""
            click.echo(f"  receipt    #{r.inbox_id} {r.kind}, {when}{doubt}")
