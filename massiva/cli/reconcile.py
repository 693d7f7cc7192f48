"""``massiva reconcile``: read the mailboxes' receipts, move each recipient to its outcome."""

from __future__ import annotations

from typing import Any

import click

from massiva.api import ApiError
from massiva.cli.context import Env, pass_env, run
from massiva.cli.output import emit_json, json_option
from massiva.cli.text import printable
from massiva.config import ConfigError
from massiva.lease import LeaseBusy
from massiva.reconcile import MAX_PAGES, Reconciler, Summary


@click.command()
@click.option(
    "--mailbox",
    "address",
    metavar="ADDRESS",
    help="Reconcile this mailbox only (default: every mailbox that has campaigns).",
)
@click.option(
    "--fetch-bodies",
    is_flag=True,
    help="Also fetch each final receipt's body (one request each) and keep it as evidence;"
    " its X-Ricevuta header and daticert.xml win over the subject.",
)
@click.option(
    "--max-pages",
    default=MAX_PAGES,
    show_default=True,
    type=click.IntRange(min=1),
    help="Read at most this many inbox pages a run (a vendor that pages without end is not"
    " followed; the next run reads every page again).",
)
@json_option
@pass_env
@run
async def reconcile(
    env: Env, address: str | None, fetch_bodies: bool, max_pages: int, as_json: bool
) -> None:
    """Read the receipts in the mailboxes and move each recipient to its outcome.

    Every new message of the inbox is stored once; each recipient moves forward
    only (sent, accepted, then delivered or failed, with the reason kept); those
    with no final receipt 24 hours after sending become expired (no delivery
    receipt: the usual fate of a non-PEC address). Those 24 hours, like the
    receipts' dates, are on the vendor's clock, as its answers' Date header
    tells it: the simulator's, when it runs fast. Receipts of no known sending
    are kept as orphans. Only the pages that can hold new messages are read, so
    a run with nothing new costs one or two requests: run it from cron. A second
    reconcile on the same mailbox says so and exits 0; it runs safely beside
    massiva send.

    Exit 0 when done (or skipped), 3 when a password or the token is missing or
    refused, 4 when the vendor cannot be reached; the other mailboxes are
    reconciled all the same.

    Example:

    \b
        massiva reconcile
        massiva reconcile --mailbox ufficio@pecmassiva.com --json
        massiva campaign status avvisi-esempio

    From cron, every five minutes (the passwords in the crontab's environment):

    \b
        */5 * * * * cd /srv/pec && massiva reconcile >> reconcile.log 2>&1
    """
    async with env.store() as store:
        if address:
            mailboxes = [env.config.mailbox(address).address]
        else:
            mailboxes = await store.receipts.mailboxes()
        reports: list[dict[str, Any]] = []
        failures: list[Exception] = []
        for mailbox in mailboxes:
            try:
                async with env.mailbox_client(mailbox) as client:
                    summary = await Reconciler(
                        store,
                        client,
                        mailbox,
                        clock=client.vendor_clock.now,  # the receipts' clock: see the module
                        fetch_bodies=fetch_bodies,
                        trusted=env.config.mailbox(mailbox).trusted,
                        max_pages=max_pages,
                    ).run()
                reports.append(_report(summary))
            except LeaseBusy as busy:
                reports.append(
                    {"mailbox": mailbox, "skipped": f"another reconcile is running ({busy.holder})"}
                )
            except (ApiError, ConfigError) as exc:
                # Reconcile the other mailboxes before reporting it (and exiting non-zero).
                failures.append(exc)
                reports.append({"mailbox": mailbox, "error": str(exc)})
    if as_json and not failures:
        emit_json({"mailboxes": reports})
    elif not as_json:
        _print(reports)
    if failures:
        raise failures[0]


def _report(s: Summary) -> dict[str, Any]:
    return {
        "mailbox": s.mailbox,
        "receipts": dict(sorted(s.receipts.items())),
        "moved": dict(sorted(s.moved.items())),
        "orphans": [
            {
                "inbox_id": o.inbox_id,
                "kind": o.kind,
                "subject": o.subject,
                "date": o.date.isoformat() if o.date else None,
            }
            for o in s.orphans
        ],
        "orphans_matched": s.orphans_matched,
        "orphans_total": s.orphans_total,
        "suspicious": [
            {"inbox_id": d.inbox_id, "sender": d.sender, "subject": d.subject, "why": d.why}
            for d in s.suspicious
        ],
        "suspicious_total": s.suspicious_total,
        "page_limit": s.page_limit,
        "entries_left_out": s.skipped,
        "unknowns": {
            "adopted": s.unknowns.adopted,
            "requeued": s.unknowns.requeued,
            "waiting": s.unknowns.waiting,
            "ambiguous": s.unknowns.ambiguous,
        },
        "requests": {"inbox": s.pages, "bodies": s.bodies, "total": s.requests},
        "full_scan": s.full_scan,
    }


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{kind} {n}" for kind, n in counts.items())


def _print(reports: list[dict[str, Any]]) -> None:
    if not reports:
        click.echo("No campaign has been loaded: no mailbox to reconcile.")
    for r in reports:
        if "skipped" in r:
            click.echo(f"{r['mailbox']}: skipped, {r['skipped']}.")
            continue
        if "error" in r:
            click.echo(f"{r['mailbox']}: not reconciled: {printable(r['error'])}")
            continue
        parts = []
        new = sum(r["receipts"].values())
        parts.append(
            f"{_plural(new, 'new message')} ({_counts(r['receipts'])})" if new else "nothing new"
        )
        if r["moved"]:
            parts.append(f"recipients now {_counts(r['moved'])}")
        if r["orphans"] or r["orphans_matched"]:
            orphans = _plural(len(r["orphans"]), "new orphan receipt")
            parts.append(
                f"{orphans}, {r['orphans_matched']} matched ({r['orphans_total']} unmatched in all)"
            )
        unknowns = r["unknowns"]
        if any(unknowns.values()):
            parts.append(
                f"unknown posts: {unknowns['adopted']} found sent, {unknowns['requeued']}"
                f" to send again, {unknowns['waiting']} still waiting,"
                f" {unknowns['ambiguous']} ambiguous (massiva unknowns NAME)"
            )
        if r["suspicious"]:
            parts.append(
                f"{_plural(len(r['suspicious']), 'message')} not trusted as receipts, moving"
                f" nobody ({r['suspicious_total']} in all; massiva status lists them)"
            )
        if r["entries_left_out"]:
            parts.append(
                f"inbox entries left out: {r['entries_left_out']}, not what the vendor's API"
                " documents (logged)"
            )
        scan = ", every page read" if r["full_scan"] else ""
        parts.append(f"{_plural(r['requests']['total'], 'request')}{scan}")
        click.echo(f"{r['mailbox']}: " + "; ".join(parts) + ".")
        for d in r["suspicious"]:
            subject = printable(repr(d["subject"]))
            click.echo(f"  not trusted: inbox {d['inbox_id']} {subject}: {d['why']}")
