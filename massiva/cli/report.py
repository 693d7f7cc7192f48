"""``massiva report``, ``massiva status`` and ``massiva campaign retry``."""

from __future__ import annotations

import os
import sys
from functools import partial
from pathlib import Path
from typing import NoReturn

import click

from massiva.cli.context import EXIT_INPUT, EXIT_REFUSED, Env, fail, pass_env, run
from massiva.cli.output import emit_json, json_option, table
from massiva.cli.text import printable
from massiva.report import FORMATS, ReportError, export, open_report, output_file
from massiva.report.errors import NothingToRetry
from massiva.report.rows import rome_iso
from massiva.report.status import CampaignStatus, overview
from massiva.report.words import LANGUAGES
from massiva.retry import RETRY_STATES, write_follow_up
from massiva.schedule import ALWAYS
from massiva.store import STATES
from massiva.times import show, utcnow

STDOUT = Path("-")


def _failure(exc: ReportError, as_json: bool) -> NoReturn:
    code = EXIT_REFUSED if isinstance(exc, NothingToRetry) else EXIT_INPUT
    fail(str(exc), code, as_json=as_json)


def _shown(path: Path) -> str:
    """``path`` relative to the working folder when inside it, for messages to copy."""
    relative = os.path.relpath(path)
    return path.as_posix() if relative.startswith("..") else Path(relative).as_posix()


def report_format(fmt: str | None, output: Path | None) -> str:
    """The format to write: ``fmt`` if given, else the one the extension of ``output``
    names (csv without a file, or to standard output). Raises ValueError, saying how to
    fix it, when the extension names no format massiva writes, or another than ``fmt``."""
    if output is None or output == STDOUT:
        return fmt or "csv"
    suffix = output.suffix.lower()
    known = ", ".join(f".{f}" for f in FORMATS[:-1]) + f" or .{FORMATS[-1]}"
    if suffix and suffix[1:] not in FORMATS:
        raise ValueError(
            f"-o {_shown(output)}: massiva does not write {suffix} files; end the name in"
            f" {known} (the report's format follows it)"
        )
    if not suffix and fmt is None:
        raise ValueError(
            f"-o {_shown(output)} has no extension to tell the format by: end the name in"
            f" {known}, or give --format"
        )
    if suffix and fmt is not None and suffix[1:] != fmt:
        raise ValueError(
            f"-o {_shown(output)} says {suffix[1:].upper()}, but --format asks for"
            f" {fmt.upper()}: name it {output.stem}.{fmt}, or drop --format"
        )
    return fmt or suffix[1:]


def default_output(name: str, fmt: str, excel: bool) -> Path:
    """The file a report goes to without -o: the CSV for Excel has its own name, so
    that it never replaces the plain CSV."""
    return Path(f"{name}-report{'-excel' if excel else ''}.{fmt}")


@click.command()
@click.argument("name")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    help="csv, xlsx, json or html (default: the extension of -o, else csv).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The file to write, ending in .csv, .xlsx, .json or .html (default:"
    " NAME-report.FORMAT here, NAME-report-excel.csv with --excel); - for standard output.",
)
@click.option("--excel", is_flag=True, help="CSV for Excel: ;-separated, with a UTF-8 BOM.")
@click.option(
    "--key",
    "keys",
    multiple=True,
    metavar="COLUMN",
    help="A CSV column to show beside the address (repeat it; default: the key_columns"
    " of campaign.toml).",
)
@click.option(
    "--lang",
    type=click.Choice(LANGUAGES),
    help="The HTML page's language: it (Italian, the default) or en (English).",
)
@click.option(
    "--full-table",
    is_flag=True,
    help="HTML: print the table of recipients too (a printed page is otherwise the summary"
    " and the recipients needing attention; the screen always shows the table).",
)
@json_option
@pass_env
@run
async def report(
    env: Env,
    name: str,
    fmt: str | None,
    output: Path | None,
    excel: bool,
    keys: tuple[str, ...],
    lang: str | None,
    full_table: bool,
    as_json: bool,
) -> None:
    """Write the delivery report of campaign NAME: one row per recipient.

    Each row: the spreadsheet row, the address, the key columns, the mailbox
    of the campaign's pool that sent it (empty while unsent), the subject as
    sent, the state, the message id, the sent, accepted, delivered and failed
    times (Europe/Rome), the failure code (5.1.1, 5.4.1...: the receipt's), the
    failure reason and the receipts' inbox ids. Once the campaign's deadline
    has passed, a pending recipient's reason is "not sent by the deadline"
    (it stays pending). XLSX, JSON and HTML open with the pool, the schedule
    and what each mailbox sent. CSV and JSON write times as ISO 8601 with the offset; XLSX as
    date-time cells in Rome local time, under a bold header with filters,
    after a Summary sheet. CSV and XLSX cells cannot run as formulas: in CSV
    one starting with = + - @ gets a leading '.

    HTML is one page, in Italian (--lang en: English): whether the campaign
    is finished, a card per outcome, deliveries and failures over time, the
    failure reasons, the recipients needing attention, then the table of
    recipients (every one up to 10,000; beyond that the first 1,000, and the
    page says so). Printed, it is the summary and the recipients needing
    attention, one line each (a 2,000-recipient campaign: 5 pages), and says
    where the full list is; --full-table prints the table too.

    The format follows the extension of -o (.csv, .xlsx, .json, .html); a name
    with another extension, or one that contradicts --format, is refused.
    Without -o the file is NAME-report.FORMAT here (NAME-report-excel.csv with
    --excel, so that it never replaces the plain CSV).

    Example:

    \b
        massiva report esempio-avvisi-2026 -o esito.xlsx
        massiva report esempio-avvisi-2026 --excel
        massiva report esempio-avvisi-2026 --format html
        massiva report esempio-avvisi-2026 -o esito.html --lang en
        massiva report esempio-avvisi-2026 -o esito.html --full-table
    """
    try:
        fmt = report_format(fmt, output)
    except ValueError as exc:
        fail(str(exc), EXIT_INPUT, as_json=as_json)
    if excel and fmt != "csv":
        fail(
            f"--excel is for CSV, not {fmt}: drop --excel or use --format csv",
            EXIT_INPUT,
            as_json=as_json,
        )
    for option, given in (("--lang", lang is not None), ("--full-table", full_table)):
        if given and fmt != "html":
            fail(
                f"{option} is for HTML, not {fmt}: drop {option} or use --format html",
                EXIT_INPUT,
                as_json=as_json,
            )
    to_stdout = output == STDOUT
    if to_stdout and (fmt == "xlsx" or as_json):
        why = "XLSX is not text" if fmt == "xlsx" else "--json prints its summary there"
        fail(
            f"-o - writes the report to standard output, but {why}: give -o FILE",
            EXIT_INPUT,
            as_json=as_json,
        )
    target = output or default_output(name, fmt, excel)
    try:
        async with env.store() as store:
            found, notes = await open_report(
                store,
                name,
                key_columns=keys or None,
                shared_templates=env.config.templates,
                pools=env.config.pools,
            )
            write = partial(
                export,
                found,
                fmt,
                excel=excel,
                templates=env.config.templates,
                lang=lang or "it",
                full_table=full_table,
            )
            if to_stdout:
                sys.stdout.flush()
                written = await write(sys.stdout.buffer)
                sys.stdout.buffer.flush()
            else:
                with output_file(target) as out:
                    written = await write(out)
    except ReportError as exc:
        _failure(exc, as_json)
    except OSError as exc:  # the disk is full, the file went away...
        fail(
            f"the report could not be written to {_shown(target)} ({exc.strerror}); nothing"
            " was left there: free some space or give another -o",
            EXIT_INPUT,
            as_json=as_json,
        )
    for note in notes:
        click.echo(f"Note: {printable(note)}", err=True)
    total = found.total
    if as_json:
        emit_json(
            {
                "campaign": name,
                "format": fmt,
                "file": str(target),
                "recipients": total,
                "rows_written": written,
                "counts": found.counts,
                "notes": notes,
            }
        )
        return
    where = "standard output" if to_stdout else _shown(target)
    listed = f"{written:,} of {total:,} recipients" if written != total else f"{total:,} recipients"
    click.echo(
        f"{name}: {listed} written to {where} ({fmt.upper()}"
        + (", for Excel" if excel else "")
        + ")."
        + (" Every recipient is in --format csv, xlsx or json." if written != total else ""),
        err=to_stdout,
    )


@click.command()
@json_option
@pass_env
@run
async def status(env: Env, as_json: bool) -> None:
    """Show every campaign's recipients per state and every mailbox's allowances.

    Each campaign with the mailboxes it sends from (its pool) and when it may
    send (its schedule; past its deadline, how many it did not send by it).
    For each sending mailbox (configured in massiva.toml or in a campaign's
    pool): recipients counted today and this month (Europe/Rome days and
    months, as the provider counts them), its limits, and when each allowance
    renews.

    Example:

    \b
        massiva status
        massiva status --json
    """
    now = utcnow()
    async with env.store() as store:
        found = await overview(store, env.config, now)
    if as_json:
        emit_json(
            {
                "at": rome_iso(found.at),
                "campaigns": [
                    {
                        "campaign": c.name,
                        "mailbox": c.mailbox,
                        "mailboxes": list(c.mailboxes),
                        "schedule": None if c.schedule == ALWAYS else c.schedule.describe("en"),
                        "past_deadline": c.late,
                        "not_sent_by_deadline": c.not_sent_by_deadline,
                        "state": c.state,
                        "loaded_at": rome_iso(c.created_at),
                        "counts": c.counts,
                        "total": c.total,
                    }
                    for c in found.campaigns
                ],
                "mailboxes": [
                    {
                        "mailbox": m.address,
                        "today": {
                            "used": m.usage.day,
                            "limit": m.plan.daily,
                            "renews_at": rome_iso(m.day_renews),
                        },
                        "this_month": {
                            "used": m.usage.month,
                            "limit": m.plan.monthly,
                            "renews_at": rome_iso(m.month_renews),
                        },
                        "can_send_now": m.room,
                        "spent_until": rome_iso(m.blocked_until) if m.blocked_until else None,
                        "suspicious": [
                            {
                                "inbox_id": r.inbox_id,
                                "sender": r.sender,
                                "subject": r.subject,
                                "why": r.suspicious,
                            }
                            for r in m.suspicious
                        ],
                    }
                    for m in found.mailboxes
                ],
            }
        )
        return
    if found.campaigns:
        table(
            "Campaigns",
            ("campaign", "state", "recipients", *STATES),
            [
                [c.name, c.state, f"{c.total:,}", *(f"{c.counts[s]:,}" for s in STATES)]
                for c in found.campaigns
            ],
        )
        # A table of its own: beside the counts, addresses and schedules would fold.
        table(
            "Sending from, and when",
            ("campaign", "mailboxes", "schedule"),
            [[c.name, "\n".join(c.mailboxes), _schedule(c)] for c in found.campaigns],
        )
    else:
        click.echo("No campaign loaded yet: see massiva campaign load --help.")
    if not found.mailboxes:
        click.echo("No mailbox configured or used: add one to massiva.toml under [mailboxes].")
        return
    table(
        f"Allowances at {show(found.at)} (Europe/Rome)",
        ("mailbox", "used today", "renews", "used this month", "renews", "can send now"),
        [
            [
                m.address,
                f"{m.usage.day:,} of {m.plan.daily:,}",
                show(m.day_renews),
                f"{m.usage.month:,} of {m.plan.monthly:,}",
                show(m.month_renews),
                f"{m.room:,}" if m.blocked_until is None else f"0 until {show(m.blocked_until)}",
            ]
            for m in found.mailboxes
        ],
    )
    doubts = [(m.address, r) for m in found.mailboxes for r in m.suspicious]
    if doubts:
        table(
            "Messages that look like receipts and are not trusted (they moved nobody)",
            ("mailbox", "inbox id", "sender", "subject", "why"),
            [[a, str(r.inbox_id), r.sender, r.subject, r.suspicious or ""] for a, r in doubts],
        )


def _schedule(campaign: CampaignStatus) -> str:
    """When the campaign may send, and how many it did not send by a passed deadline."""
    shown = campaign.schedule.describe("en")
    if campaign.late:
        shown += f" (deadline passed: {campaign.not_sent_by_deadline:,} not sent by it)"
    return shown


@click.command()
@click.argument("name")
@click.option(
    "--failed", is_flag=True, help="Retry the failed ones (not accepted, or not delivered)."
)
@click.option("--expired", is_flag=True, help="Retry the expired ones (no final receipt in 24 h).")
@json_option
@pass_env
@run
async def retry(env: Env, name: str, failed: bool, expired: bool, as_json: bool) -> None:
    """Write a follow-up of campaign NAME with its failed or expired recipients.

    The follow-up is a new campaign folder beside the original (FOLDER-retry-1,
    then -retry-2...), named NAME-retry-N, with the same templates and
    attachments and a CSV of just those recipients with their original fields.
    Recipients already in another loaded follow-up are left out. Nothing is
    loaded or sent: check it, load it and send it as any campaign.

    Example:

    \b
        massiva campaign retry esempio-avvisi-2026 --failed --expired
        massiva campaign check campaigns/example-retry-1
        massiva campaign load campaigns/example-retry-1
        massiva send esempio-avvisi-2026-retry-1
    """
    states = [s for s, wanted in zip(RETRY_STATES, (failed, expired), strict=True) if wanted]
    if not states:
        fail(
            "say which recipients to retry: --failed, --expired, or both",
            EXIT_INPUT,
            as_json=as_json,
        )
    try:
        async with env.store() as store:
            done = await write_follow_up(
                store, name, states, shared_templates=env.config.templates, pools=env.config.pools
            )
    except ReportError as exc:
        _failure(exc, as_json)
    folder = _shown(done.folder)
    commands = [
        f"massiva campaign check {folder}",
        f"massiva campaign load {folder}",
        f"massiva send {done.name}",
    ]
    if as_json:
        emit_json(
            {
                "campaign": done.source,
                "follow_up": done.name,
                "folder": str(done.folder),
                "recipients_file": str(done.recipients_file),
                "counts": done.counts,
                "recipients": done.recipients,
                "left_out": done.left_out,
                "earlier_follow_ups": list(done.earlier),
                "templates": list(done.templates),
                "attachments": list(done.attachments),
                "recipient_attachments": done.recipient_attachments,
                "next": commands,
            }
        )
        return
    by_state = ", ".join(f"{n:,} {s}" for s, n in done.counts.items())
    copied = [*done.templates, *done.attachments]
    if done.recipient_attachments:
        copied.append(f"{done.recipient_attachments:,} recipients' own attachments")
    click.echo(f"Wrote the follow-up campaign {done.name} in {folder}/:")
    click.echo(f"  {'campaign.toml':<18} the settings of {done.source}, named {done.name}")
    click.echo(
        f"  {done.recipients_file.name:<18} {done.recipients:,} recipients ({by_state}),"
        " with their original fields"
    )
    click.echo(f"  {'copied':<18} {'; '.join(copied) or 'nothing else (inline templates)'}")
    if done.left_out:
        click.echo(
            f"Left out {done.left_out:,} already in {', '.join(done.earlier)}"
            " (retry that campaign for them)."
        )
    click.echo("Next:")
    for command in commands:
        click.echo(f"  {command}")
