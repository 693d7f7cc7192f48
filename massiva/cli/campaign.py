"""``massiva campaign ...``: check, preview, test-send and load a campaign folder."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import click

from massiva import loaded
from massiva.campaign import (
    CampaignSpec,
    CheckSummary,
    Recipient,
    Renderer,
    addresses,
    check,
    load_spec,
    message_attachments,
    validate,
)
from massiva.cli.context import (
    EXIT_ALLOWANCE,
    EXIT_INPUT,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    Env,
    fail,
    pass_env,
    run,
)
from massiva.cli.output import emit_json, json_option, table
from massiva.cli.text import printable
from massiva.files import TargetRefused, atomic_write
from massiva.lease import LeaseBusy
from massiva.lifecycle import State
from massiva.loading import load_campaign
from massiva.quota import Plan, cost_eur, days_needed, next_day
from massiva.schedule import ALWAYS, Schedule
from massiva.sender import Sender, SendOptions
from massiva.store import STATES
from massiva.times import ROME, rome_today, show, utcnow
from massiva.trial import record_test

folder_argument = click.argument(
    "folder", type=click.Path(exists=True, file_okay=False, path_type=Path)
)


def _spec(env: Env, folder: Path) -> CampaignSpec:
    return load_spec(folder, shared_templates=env.config.templates, pools=env.config.pools)


def _schedule_json(schedule: Schedule) -> str | None:
    """A schedule for --json: its description, None when it allows any time."""
    return None if schedule == ALWAYS else schedule.describe("en")


@dataclass(frozen=True)
class Estimate:
    """How long sending takes from a pool: ``days`` Rome calendar days from the first
    (the one it starts on included), ``unscheduled`` what it would take without the
    schedule, and ``left`` the recipients the deadline would leave unsent."""

    days: int
    unscheduled: int
    left: int

    @property
    def limited(self) -> bool:
        """Whether the schedule makes sending take longer, or leaves some unsent."""
        return self.days > self.unscheduled or self.left > 0


#: Days an estimate looks ahead at most (a campaign of years is not one to plan by day).
_HORIZON = 3 * 366


def _open_seconds(schedule: Schedule, start: datetime, end: datetime) -> float:
    """Seconds the schedule is open between ``start`` and ``end``."""
    total, moment = 0.0, schedule.next_open(start)
    while moment is not None and moment < end:
        closes = min(schedule.closes_at(moment) or end, end)
        total += (closes - moment).total_seconds()
        moment = schedule.next_open(closes) if closes < end else None
    return total


def estimate(count: int, plan: Plan, rate: float, schedule: Schedule, start: date) -> Estimate:
    """Rome days, from ``start``, that sending ``count`` recipients takes at ``plan``'s
    allowances (a pool's: each box's added up) and ``rate`` posts a second (the pool's
    paces added up), within ``schedule``. A rough estimate: every box is taken to send
    its share in the same windows, and a day as the window's length at the pace."""
    unscheduled = days_needed(count, plan, start)
    if schedule == ALWAYS or count <= 0:
        return Estimate(unscheduled, unscheduled, 0)
    left, month_used, day = count, 0, start
    for offset in range(_HORIZON):
        day = start + timedelta(days=offset)
        if offset and day.day == 1:
            month_used = 0
        opens = datetime.combine(day, time(0), tzinfo=ROME).astimezone(UTC)
        closes = next_day(opens)
        if schedule.next_open(opens) is None:  # past the deadline: nothing more leaves
            return Estimate(max(offset, 1), unscheduled, left)
        paced = int(_open_seconds(schedule, opens, closes) * rate)
        sent = max(0, min(left, plan.daily, plan.monthly - month_used, paced))
        left -= sent
        month_used += sent
        if left == 0:
            return Estimate(offset + 1, unscheduled, 0)
    return Estimate(_HORIZON, unscheduled, 0)


def _pick(spec: CampaignSpec, row: int | None) -> Recipient:
    """The recipient at spreadsheet row ``row`` (the first valid one by default)."""
    for item in validate(spec):
        if row is not None and item.row != row:
            continue
        if isinstance(item, Recipient):
            return item
        message = f"row {item.row} cannot be sent: {item.column}: {item.reason}"
        fail(printable(message.replace(": :", ":")), EXIT_INPUT)
    fail(f"no row {row} in {spec.recipients}" if row else "no valid recipient", EXIT_INPUT)


@click.group()
def campaign() -> None:
    """Check, preview, test and load a campaign folder, then follow it.

    A campaign folder holds campaign.toml, the recipients CSV, the subject and
    body templates and the attachments; copy campaigns/example/ to start.

    Example:

    \b
        massiva campaign check campaigns/example
        massiva campaign preview campaigns/example --row 2
        massiva campaign test campaigns/example --to me@pecmassiva.com
        massiva campaign load campaigns/example
        massiva campaign status esempio-avvisi-2026
    """


@campaign.command(name="check")
@folder_argument
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write every rejected row here (row, column, reason). Default: FOLDER/rejects.csv.",
)
@click.option(
    "--warnings",
    "warnings_to",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write every warning here (row, column, warning). Default: FOLDER/warnings.csv.",
)
@json_option
@pass_env
@run
async def check_(
    env: Env, folder: Path, rejects: Path | None, warnings_to: Path | None, as_json: bool
) -> None:
    """Check every row of the campaign in FOLDER before anything is sent.

    Every row is rendered, so a missing field or a bad address is found here,
    never half-way through a send. Warnings (sent all the same): a merge field
    the templates print that is empty in a row, and rows that share an address
    but not their key columns. Each file is written only when there is
    something to put in it (one left by an earlier check is removed). Exit 1
    when no row can be sent. Last, about how many days sending takes from the
    whole pool (its mailboxes' allowances and paces added up), and whether the
    schedule stretches it or its deadline would leave some unsent (a rough
    estimate).

    Example:

    \b
        massiva campaign check campaigns/example --json
    """
    spec = _spec(env, folder)
    rejects_csv = rejects or folder / "rejects.csv"
    warnings_csv = warnings_to or folder / "warnings.csv"
    for path, option in ((rejects_csv, "--rejects"), (warnings_csv, "--warnings")):
        if not path.parent.is_dir():
            where = printable(str(path.parent))
            fail(
                f"{where}: no such folder; create it, or give another {option}",
                EXIT_INPUT,
                as_json=as_json,
            )
    try:
        summary = check(spec, rejects_csv=rejects_csv, warnings_csv=warnings_csv)
    except TargetRefused as exc:
        fail(printable(str(exc)), EXIT_INPUT, as_json=as_json)
    boxes = [env.config.mailbox(address) for address in spec.mailboxes]
    pool = Plan(sum(b.daily_limit for b in boxes), sum(b.monthly_limit for b in boxes))
    rate = sum(b.send_rate for b in boxes)
    found = estimate(summary.valid, pool, rate, spec.schedule, rome_today())
    report = {
        "campaign": spec.name,
        "mailbox": spec.mailbox,
        "mailboxes": list(spec.mailboxes),
        "schedule": _schedule_json(spec.schedule),
        "rows": summary.rows,
        "valid": summary.valid,
        "rejected": summary.rejected,
        "duplicates": summary.duplicates,
        "rejects": [
            {"row": r.row, "column": r.column, "reason": r.reason} for r in summary.rejects
        ],
        "rejects_file": _path(summary.rejects_file),
        "dedupe": spec.dedupe,
        "strict_empty": spec.strict_empty,
        "empty_fields": [
            {
                "column": e.column,
                "templates": list(e.templates),
                "rows": e.rows,
                "first_rows": e.first_rows,
            }
            for e in summary.empty.values()
        ],
        "same_address": {
            "rows": summary.same_address,
            "sent": spec.dedupe == "address+keys",
            "first": [
                {
                    "row": s.row,
                    "address": s.address,
                    "first_row": s.first_row,
                    "differs": list(s.differs),
                }
                for s in summary.same_address_rows
            ],
        },
        "warnings_file": _path(summary.warnings_file),
        "removed": [str(path) for path in summary.removed],
        "days_needed": found.days,
        "days_needed_without_schedule": found.unscheduled,
        "schedule_limits": found.limited,
        "not_sent_by_deadline": found.left,
        "daily_limit": pool.daily,
        "monthly_limit": pool.monthly,
        "cost_eur_standard_plan": cost_eur(summary.valid),
    }
    if as_json:
        emit_json(report)
    else:
        click.echo(
            f"{spec.name}: {summary.rows} rows, {summary.valid} valid, {summary.rejected}"
            f" rejected, {summary.duplicates} duplicates."
        )
        if summary.rejects:
            table(
                "Rejected rows",
                ("row", "column", "reason"),
                [[str(r.row), r.column, r.reason] for r in summary.rejects[:50]],
            )
            click.echo(f"All rejected rows are in {printable(str(rejects_csv))}.")
        for line in _warnings(summary, spec):
            click.echo(printable(line))
        if summary.warnings_file:
            click.echo(f"All warnings are in {printable(str(summary.warnings_file))}.")
        for path in summary.removed:
            click.echo(
                f"{printable(str(path))}, left by an earlier check, was removed:"
                " this check found nothing to put in it."
            )
        click.echo(_estimate_line(spec, pool, found, summary.valid))
    if summary.valid == 0:
        sys.exit(EXIT_REFUSED)


def _estimate_line(spec: CampaignSpec, pool: Plan, found: Estimate, valid: int) -> str:
    """How long sending takes and what it costs, for people."""
    boxes = spec.mailboxes
    source = (
        f"from {boxes[0]}"
        if len(boxes) == 1
        else f"from the {len(boxes)} mailboxes of the pool ({', '.join(boxes)}), their"
        " allowances added up"
    )
    line = (
        f"Sending needs {found.days} day(s) at {pool.daily} recipients a day and"
        f" {pool.monthly} a month {source}"
    )
    if found.limited:
        line += (
            f"; the schedule ({spec.schedule.describe('en')}) limits it (without it:"
            f" {found.unscheduled} day(s))"
        )
        if found.left:
            line += f", and about {found.left} would not be sent by the deadline"
        line += "; a rough estimate"
    elif spec.schedule != ALWAYS:
        line += f", within the schedule ({spec.schedule.describe('en')})"
    return f"{line}; on the Standard plan it costs {cost_eur(valid):.2f} EUR."


#: How many rows a warning names on the screen (the warnings file has them all).
ROWS_SHOWN = 10


def _path(path: Path | None) -> str | None:
    return None if path is None else str(path)


def _rows(items: Sequence[str], total: int) -> str:
    """``row 15``, ``2 rows (3, 9)``, ``10,000 rows (2, 3, ..., 11 and 9,990 more)``."""
    if total == 1:
        return f"row {items[0]}"
    shown = ", ".join(items[:ROWS_SHOWN])
    more = f" and {total - ROWS_SHOWN:,} more" if total > ROWS_SHOWN else ""
    return f"{total:,} rows ({shown}{more})"


def _warnings(summary: CheckSummary, spec: CampaignSpec) -> list[str]:
    """One line a warning, each naming its first rows (10,000 rows make one line)."""
    lines = []
    for empty in summary.empty.values():
        many = len(empty.templates) > 1
        lines.append(
            f'Warning: "{empty.column}" is empty in'
            f" {_rows([str(n) for n in empty.first_rows], empty.rows)}, and the"
            f" {' and '.join(empty.templates)} template{'s' if many else ''}"
            f" print{'' if many else 's'} it. Fill it in, or set strict_empty = true in"
            " campaign.toml to reject such rows."
        )
    if summary.same_address:
        rows = _rows(
            [
                f"{s.row}" if summary.same_address == 1 else f"{s.row} as {s.first_row}"
                for s in summary.same_address_rows
            ],
            summary.same_address,
        )
        if summary.same_address == 1:
            first = summary.same_address_rows[0]
            rows += f" has the address of row {first.first_row} ({first.address}) with another"
            rows += f" {', '.join(first.differs)}"
        else:
            rows += " have the address of an earlier row with other key columns"
        if spec.dedupe == "address+keys":
            lines.append(
                f"Warning: {rows}: each is sent, one message a row. Delete a row that is a mistake."
            )
        else:
            lines.append(
                f'Warning: {rows}: not sent, as dedupe = "address" sends one message an'
                ' address. Set dedupe = "address+keys" in campaign.toml to send each.'
            )
    return lines


@campaign.command()
@folder_argument
@click.option("--row", type=int, help="Spreadsheet row of the recipient (default: the first).")
@click.option(
    "--html-out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the rendered HTML body here, to open in a browser.",
)
@pass_env
@run
async def preview(env: Env, folder: Path, row: int | None, html_out: Path | None) -> None:
    """Show the message one recipient of the campaign in FOLDER will get.

    Example:

    \b
        massiva campaign preview campaigns/example --row 3 --html-out anteprima.html
    """
    spec = _spec(env, folder)
    recipient = _pick(spec, row)
    subject, body = Renderer(spec).render(recipient.fields)
    click.echo(f"Row:         {recipient.row}")
    click.echo(f"From:        {spec.mailbox}")
    if len(spec.mailboxes) > 1:
        click.echo(
            f"Pool:        {', '.join(spec.mailboxes)} (each recipient is sent from one of them)"
        )
    if spec.schedule != ALWAYS:
        click.echo(f"Schedule:    {spec.schedule.describe('en')}")
    click.echo(f"To:          {printable(recipient.address)}")
    click.echo(f"Subject:     {printable(subject)}")
    for attachment in message_attachments(spec, recipient.attachment):
        click.echo(f"Attachment:  {printable(attachment.name)}")
    click.echo("")
    click.echo(printable(body))
    if html_out:
        try:
            with atomic_write(html_out, encoding="utf-8") as out:
                out.write(body)
        except TargetRefused as exc:
            fail(printable(str(exc)), EXIT_INPUT)
        except OSError as exc:
            where = printable(str(html_out))
            fail(f"{where} cannot be written ({exc.strerror}); give another --html-out", EXIT_INPUT)
        click.echo(f"\nThe HTML body is in {html_out}.")


@campaign.command()
@folder_argument
@click.option("--to", "to", required=True, help="The test address that gets the message.")
@click.option("--row", type=int, help="Spreadsheet row whose fields fill the message.")
@json_option
@pass_env
@run
async def test(env: Env, folder: Path, to: str, row: int | None, as_json: bool) -> None:
    """Send ONE rendered message of the campaign in FOLDER to a test address.

    The subject starts with [PROVA]. It is a real certified message, so it is
    recorded as one: a campaign of its own, NAME:prova-N, sent like any other
    (it counts against the mailbox's allowance, waits for the mailbox's pace
    and lease) and followed by `massiva reconcile` (its receipts are its own,
    see `massiva campaign status NAME:prova-N`).

    Example:

    \b
        massiva campaign test campaigns/example --to me@pecmassiva.com --row 2
    """
    address = addresses.normalise(to)
    wrong = addresses.problem(address)
    if wrong:
        fail(f"--to {printable(to)}: {wrong}", EXIT_INPUT, as_json=as_json)
    spec = _spec(env, folder)
    recipient = _pick(spec, row)
    box = env.config.mailbox(spec.mailbox)
    options = SendOptions(
        plan=Plan(box.daily_limit, box.monthly_limit),
        rate=box.send_rate,
        max_recipients=1,
        trusted=box.trusted,
    )
    async with env.store() as store:
        campaign = await record_test(store, spec, recipient, address)
        async with env.mailbox_client(spec.mailbox) as client:
            try:
                progress = await Sender(store, client, campaign, spec, options).run()
            except LeaseBusy as busy:
                fail(
                    f"another massiva send is sending from {spec.mailbox} ({busy.holder}):"
                    f" the test is recorded as {campaign.name}; send it with"
                    f" massiva send {campaign.name} once the other run ends",
                    EXIT_REFUSED,
                    as_json=as_json,
                )
        records = [r async for rows in store.reports.recipients(campaign.id) for r in rows]
        sent = records[0]  # the test address, the campaign's one recipient
    if as_json:
        emit_json(
            {
                "campaign": campaign.name,
                "to": address,
                "row": recipient.row,
                "state": sent.state,
                "message_id": sent.message_id or None,
                "reason": sent.reason or None,
            }
        )
    elif sent.message_id:
        click.echo(
            f"Sent row {recipient.row}'s message to {printable(address)}: message id"
            f" {printable(sent.message_id)}, recorded as campaign {campaign.name}. Its"
            " receipts will arrive in the mailbox: massiva reconcile, then"
            f" massiva campaign status {campaign.name}."
        )
    else:
        why = {
            State.PENDING: "not sent: the allowance is spent"
            + (f" until {show(progress.renews_at)}" if progress.renews_at else ""),
            State.UNKNOWN: "of unknown outcome: the vendor did not answer"
            " (the next send or reconcile looks for its receipt)",
        }.get(State(sent.state), f"{sent.state}: {sent.reason}")
        click.echo(
            printable(
                f"Row {recipient.row}'s message to {address} is {why}; recorded as campaign"
                f" {campaign.name} (massiva send {campaign.name} to go on)."
            )
        )
    if not sent.message_id:
        sys.exit(
            {State.PENDING: EXIT_ALLOWANCE, State.UNKNOWN: EXIT_UNREACHABLE}.get(
                State(sent.state), EXIT_REFUSED
            )
        )


@campaign.command()
@folder_argument
@json_option
@pass_env
@run
async def load(env: Env, folder: Path, as_json: bool) -> None:
    """Check the campaign in FOLDER and put its valid recipients in the outbox.

    Loading again adds nothing; if the CSV changed, only the new recipients
    are added (those already loaded are left as they are). A folder with no
    row that can be sent is refused (exit 2).

    Example:

    \b
        massiva campaign load campaigns/example
    """
    spec = _spec(env, folder)
    async with env.store() as store:
        result = await load_campaign(store, spec, say=lambda m: click.echo(m, err=True))
    if as_json:
        emit_json(
            {
                "campaign": result.name,
                "created": result.created,
                "unchanged": result.unchanged,
                "valid": result.valid,
                "rejected": result.rejected,
                "duplicates": result.duplicates,
                "added": result.added,
                "already_loaded": result.already_loaded,
                "empty_fields": result.empty,
                "same_address": result.same_address,
            }
        )
    elif result.unchanged:
        click.echo(f"{result.name}: already loaded from this file; nothing to add.")
    else:
        click.echo(
            f"{result.name}: {result.added} recipients added to the outbox"
            f" ({result.already_loaded} already there, {result.rejected} rejected,"
            f" {result.duplicates} duplicates; see massiva campaign check)."
        )
        if result.empty or result.same_address:
            click.echo(
                f"Warnings: {result.empty} with an empty merge field, {result.same_address}"
                " at the address of an earlier row; massiva campaign check lists them."
            )


@campaign.command(name="list")
@json_option
@pass_env
@run
async def list_(env: Env, as_json: bool) -> None:
    """List the loaded campaigns with their recipients per state.

    Example:

    \b
        massiva campaign list
    """
    async with env.store() as store:
        rows = [(c, await store.campaigns.counts(c.id)) for c in await store.campaigns.all()]
    if as_json:
        emit_json(
            [
                {
                    "campaign": c.name,
                    "mailbox": c.mailbox,
                    "mailboxes": list(c.mailboxes),
                    "schedule": _schedule_json(c.schedule),
                    "state": c.state,
                    "created": c.created_at.isoformat(),
                    "counts": counts,
                    "total": sum(counts.values()),
                }
                for c, counts in rows
            ]
        )
        return
    table(
        "Campaigns",
        ("campaign", "mailboxes", "schedule", "state", "loaded", "recipients", "by state"),
        [
            [
                c.name,
                "\n".join(c.mailboxes),
                c.schedule.describe("en"),
                c.state,
                show(c.created_at),
                str(sum(counts.values())),
                ", ".join(f"{k} {v}" for k, v in counts.items() if v),
            ]
            for c, counts in rows
        ],
    )


@campaign.command()
@click.argument("name")
@json_option
@pass_env
@run
async def status(env: Env, name: str, as_json: bool) -> None:
    """Show how many recipients of campaign NAME are in each state.

    Example:

    \b
        massiva campaign status esempio-avvisi-2026 --json
    """
    async with env.store() as store:
        found = await loaded.find(store, name)
        counts = await store.campaigns.counts(found.id)
        sent_from = await store.campaigns.sent_from(found.id)
    late = found.schedule.past_deadline(utcnow())
    not_sent = counts[State.PENDING] if late else 0
    if as_json:
        emit_json(
            {
                "campaign": name,
                "state": found.state,
                "mailbox": found.mailbox,
                "mailboxes": list(found.mailboxes),
                "schedule": _schedule_json(found.schedule),
                "past_deadline": late,
                "not_sent_by_deadline": not_sent,
                "sent_from": {box: sent_from.get(box, 0) for box in found.mailboxes},
                "counts": counts,
                "total": sum(counts.values()),
            }
        )
        return
    table(
        f"{name} ({found.state})",
        ("state", "recipients"),
        [[state, str(counts[state])] for state in STATES] + [["total", str(sum(counts.values()))]],
    )
    click.echo(f"Schedule: {found.schedule.describe('en')}.")
    if late:
        click.echo(f"The deadline has passed: {not_sent} recipient(s) not sent by the deadline.")
    click.echo(
        "Sent from: " + ", ".join(f"{box} {sent_from.get(box, 0)}" for box in found.mailboxes) + "."
    )
