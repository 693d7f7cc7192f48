"""``massiva reconcile``: read the mailboxes' receipts, move each recipient to its outcome."""

from __future__ import annotations

import sys
from typing import Any

import click

from massiva.api import ApiError
from massiva.cli.context import Env, pass_env, run
from massiva.cli.output import emit_json, json_option
from massiva.cli.text import printable
from massiva.config import ConfigError
from massiva.lease import LeaseBusy
from massiva.purge import Purge
from massiva.reconcile import MAX_PAGES, PAGE_FETCHES, Summary, read_mailbox

#: Done, but a mailbox is over 80% full (see --help).
EXIT_NEARLY_FULL = 8


@click.command()
@click.option(
    "--mailbox",
    "address",
    metavar="ADDRESS",
    help="Reconcile this mailbox only (default: every mailbox of every campaign's pool).",
)
@click.option(
    "--max-pages",
    default=MAX_PAGES,
    show_default=True,
    type=click.IntRange(min=1),
    help="Read at most this many inbox pages a run (a vendor that pages without end is not"
    " followed; the next run reads every page again).",
)
@click.option(
    "--page-fetches",
    default=PAGE_FETCHES,
    show_default=True,
    type=click.IntRange(min=1),
    help="Inbox pages fetched at once when many are new (a quiet run still reads one).",
)
@json_option
@pass_env
@run
async def reconcile(
    env: Env, address: str | None, max_pages: int, page_fetches: int, as_json: bool
) -> None:
    """Read the receipts in the mailboxes and move each recipient to its outcome.

    Every new message of the inbox is stored once, and every final receipt's
    body is kept as received, with its SHA-256, as evidence (its X-Ricevuta and
    daticert.xml win over the subject; a body that cannot be fetched now is
    fetched by a later run); each recipient moves forward
    only (sent, accepted, then delivered or failed, with the reason kept); those
    with no final receipt 24 hours after sending become expired (no delivery
    receipt: the usual fate of a non-PEC address). Those 24 hours, like the
    receipts' dates, are on the vendor's clock, as its answers' Date header
    tells it: the simulator's, when it runs fast. Receipts of no known sending
    are kept as orphans. Only the pages that can hold new messages are read, so
    a run with nothing new costs two or three requests (its quota's included):
    run it from cron. A second
    reconcile on the same mailbox says so and exits 0; it runs safely beside
    massiva send.

    With purge_archived = true for a mailbox in massiva.toml (off by default),
    each sending at its outcome (delivered, failed) whose messages are all kept
    in the database (its acceptance's body is fetched first), their bodies
    checked against their SHA-256, is then deleted from the mailbox (DELETE
    /send/{code}): the database becomes their only copy, so back it up. A
    recipient still awaiting a receipt is never purged.
    Last, the mailbox's quota is read: above 80% of its limit a warning names
    the setting, because a full mailbox refuses mail.

    Exit 0 when done (or skipped), 3 when a password or the token is missing or
    refused, 4 when the vendor cannot be reached (the other mailboxes are
    reconciled all the same), 8 when done but a mailbox is over 80% full.

    Example:

    \b
        massiva reconcile
        massiva reconcile --mailbox ufficio@pecmassiva.com --json
        massiva campaign status avvisi-esempio

    Freeing the mailbox of what the database keeps, in massiva.toml:

    \b
        [mailboxes."ufficio@pecmassiva.com"]
        purge_archived = true

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
                settings = env.config.mailbox(mailbox)
                async with env.mailbox_client(mailbox) as client:
                    summary, purged = await read_mailbox(
                        store,
                        client,
                        trusted=settings.trusted,
                        purge_archived=settings.purge_archived,
                        max_pages=max_pages,
                        page_fetches=page_fetches,
                    )
                reports.append(_report(summary, purged))
                if purged.failure is not None:
                    failures.append(purged.failure)
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
    if any(r.get("quota") and r["quota"]["nearly_full"] for r in reports):
        sys.exit(EXIT_NEARLY_FULL)


def _report(s: Summary, p: Purge) -> dict[str, Any]:
    quota = None
    if p.quota is not None:
        quota = {
            "usage": p.quota.usage,
            "limit": p.quota.limit,
            "fraction": round(p.quota.fraction, 4),
            "nearly_full": p.nearly_full,
            "warning": p.warning,
        }
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
        "bodies": {"backfilled": s.backfilled, "missing": s.bodies_missing},
        "purge": {
            "enabled": p.enabled,
            "purged": p.purged,
            "waiting": p.waiting,
            "held": [
                {"address": h.address, "message_id": h.message_id, "why": h.why} for h in p.held
            ],
            "postponed": p.postponed,
            "error": str(p.failure) if p.failure is not None else None,
        },
        "quota": quota,
        "quota_error": p.quota_error,
        "requests": {
            "inbox": s.pages,
            "bodies": s.bodies + p.fetches,
            "deletes": p.deletes,
            "quota": int(p.quota is not None),
            "total": s.requests + p.fetches + p.deletes + int(p.quota is not None),
        },
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
        bodies = r["bodies"]
        if bodies["backfilled"] or bodies["missing"]:
            parts.append(
                f"receipt bodies: {bodies['backfilled']} kept late,"
                f" {bodies['missing']} not yet (fetched again next run)"
            )
        parts += _purge_parts(r["purge"])
        if r["quota_error"]:
            parts.append(f"quota not read: {printable(r['quota_error'])}")
        scan = ", every page read" if r["full_scan"] else ""
        parts.append(f"{_plural(r['requests']['total'], 'request')}{scan}")
        click.echo(f"{r['mailbox']}: " + "; ".join(parts) + ".")
        for d in r["suspicious"]:
            subject = printable(repr(d["subject"]))
            click.echo(f"  not trusted: inbox {d['inbox_id']} {subject}: {d['why']}")
        for h in r["purge"]["held"]:
            address = printable(h["address"])
            click.echo(f"  not purged: {address} (message {h['message_id']}): {h['why']}")
        if r["quota"] and r["quota"]["warning"]:
            click.echo(f"  warning: {printable(r['quota']['warning'])}.")


def _purge_parts(p: dict[str, Any]) -> list[str]:
    """What the purge did, for the summary line: nothing when it had nothing to do."""
    parts = []
    if p["purged"]:
        parts.append(f"{_plural(p['purged'], 'sending')} purged from the mailbox")
    if p["waiting"]:
        waiting = _plural(p["waiting"], "sending")
        parts.append(f"{waiting} to purge once every receipt's body is kept")
    if p["postponed"]:
        parts.append("purge postponed: the database could not be synced to disk (busy)")
    if p["error"]:
        parts.append(f"purge stopped: {printable(p['error'])}")
    return parts
