"""``massiva send`` and ``massiva campaign pause|resume|cancel``."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from datetime import timedelta

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from massiva import loaded
from massiva.api import ApiError, AuthenticationError
from massiva.cli.context import (
    EXIT_CONFIG,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    Env,
    fail,
    pass_env,
    run,
)
from massiva.cli.output import emit_json, json_option
from massiva.cli.text import printable
from massiva.lease import DEFAULT_TTL, LeaseBusy
from massiva.quota import Plan
from massiva.sender import Progress as SendProgress
from massiva.sender import SendAborted, Sender, SendOptions
from massiva.times import show, utcnow


class SendDisplay:
    """A progress bar on a terminal (from the first progress report on); a line every few
    seconds otherwise; nothing when ``quiet``."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.terminal = sys.stderr.isatty() and not quiet
        self.last_line = 0.0
        self.started = time.monotonic()
        self.bar: Progress | None = None
        self.task: TaskID | None = None

    def update(self, p: SendProgress) -> None:
        """Show ``p``."""
        done = p.sent + p.rejected + p.unknown
        rate = p.posted / max(time.monotonic() - self.started, 1e-9)
        detail = printable(
            f"sent {p.sent}  accepted {p.accepted}  rejected {p.rejected}  unknown {p.unknown}"
            f"  {rate:.2f}/s  allowance left {p.allowance_left}" + (f"  {p.note}" if p.note else "")
        )
        if self.terminal:
            if self.bar is None:
                self.bar = Progress(
                    TextColumn("[bold]{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TextColumn("{task.fields[detail]}", markup=False),
                    TimeRemainingColumn(),
                    console=Console(stderr=True),
                )
                self.task = self.bar.add_task("sending", total=p.pending or None, detail="")
                self.bar.start()
            assert self.task is not None
            self.bar.update(self.task, completed=done, detail=detail)
        elif not self.quiet and time.monotonic() - self.last_line >= 5:
            self.last_line = time.monotonic()
            click.echo(f"{show(utcnow())}  {p.campaign}: {detail}", err=True)

    def close(self) -> None:
        """Stop the bar (leaving its last state on screen)."""
        if self.bar is not None:
            self.bar.stop()


@click.command()
@click.argument("name")
@click.option("--wait", is_flag=True, help="When an allowance is spent, sleep until it renews.")
@click.option(
    "--max",
    "max_recipients",
    type=click.IntRange(min=1),
    help="Send to at most this many recipients, then stop.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0.01),
    help="POST /send a second (default: the mailbox's send_rate, 1).",
)
@click.option(
    "--grace",
    default=1800.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds after which an unknown post with no receipt is sent again.",
)
@click.option(
    "--lease-ttl",
    default=DEFAULT_TTL.total_seconds(),
    show_default=True,
    type=click.FloatRange(min=1),
    help="Seconds the mailbox stays this run's after its last renewal: a sender that"
    " dies or is frozen longer loses it, and posts nothing more.",
)
@json_option
@pass_env
@run
async def send(
    env: Env,
    name: str,
    wait: bool,
    max_recipients: int | None,
    rate: float | None,
    grace: float,
    lease_ttl: float,
    as_json: bool,
) -> None:
    """Send campaign NAME: one certified message per recipient, at the provider's pace.

    Each recipient is posted once: a crash, a kill, a restart or a second
    `massiva send` never posts anyone twice, and never skips anyone. When the
    day's or month's allowance is spent the run stops and says when it can go
    on (or, with --wait, sleeps until then). Ctrl+C finishes the requests in
    flight and stops cleanly; run the same command to go on.

    Exit 0 when the run ended as asked (all sent, --max reached, allowance
    spent, paused), 1 when another sender holds the mailbox, 3 when the vendor
    refuses the credentials, 4 when it cannot be reached.

    Example:

    \b
        massiva campaign load campaigns/example
        massiva send esempio-avvisi-2026 --wait
    """
    config = env.config
    async with env.store() as store:
        campaign = await loaded.find(store, name)
        spec = loaded.as_loaded(campaign, shared_templates=config.templates)
        box = config.mailbox(campaign.mailbox)
        options = SendOptions(
            plan=Plan(box.daily_limit, box.monthly_limit),
            rate=rate or box.send_rate,
            max_recipients=max_recipients,
            wait=wait,
            grace=timedelta(seconds=grace),
            lease_ttl=timedelta(seconds=lease_ttl),
            trusted=box.trusted,
        )
        display = SendDisplay(quiet=as_json)
        async with env.mailbox_client(campaign.mailbox) as client:
            sender = Sender(store, client, campaign, spec, options, on_progress=display.update)
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, sender.stop)
            try:
                progress = await sender.run()
            except SendAborted as aborted:
                cause = aborted.__cause__
                fail(
                    f"sending stopped: {aborted}; the recipients not yet sent are still"
                    f" pending: fix this and run massiva send {name} again",
                    EXIT_CONFIG
                    if isinstance(cause, AuthenticationError)
                    else EXIT_UNREACHABLE
                    if isinstance(cause, ApiError)
                    else EXIT_REFUSED,
                    as_json=as_json,
                )
            except LeaseBusy as busy:
                fail(
                    f"another massiva send is sending from {campaign.mailbox} ({busy.holder});"
                    " it stops by itself when done, or its lease lapses a minute after it dies",
                    EXIT_REFUSED,
                    as_json=as_json,
                )
            finally:
                display.close()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)
        counts = await store.campaigns.counts(campaign.id)
    _summary(progress, counts, as_json)


def _summary(p: SendProgress, counts: dict[str, int], as_json: bool) -> None:
    why = {
        "done": "every recipient has been posted",
        "max": "--max reached",
        "allowance": "the allowance is spent"
        + (f"; sending can go on from {show(p.renews_at)}" if p.renews_at else ""),
        "paused": "the campaign is paused (massiva campaign resume)",
        "cancelled": "the campaign is cancelled",
        "interrupted": "interrupted; run the same command to go on",
    }.get(p.stopped, p.stopped)
    if as_json:
        emit_json(
            {
                "campaign": p.campaign,
                "stopped": p.stopped,
                "posted": p.posted,
                "sent": p.sent,
                "rejected": p.rejected,
                "unknown": p.unknown,
                "adopted": p.resolution.adopted,
                "requeued": p.resolution.requeued,
                "renews_at": p.renews_at.isoformat() if p.renews_at else None,
                "counts": counts,
            }
        )
        return
    click.echo(f"{p.campaign}: {why}.")
    click.echo(
        f"This run: {p.sent} sent, {p.rejected} rejected, {p.unknown} unknown"
        f" ({p.resolution.adopted} earlier unknowns found sent,"
        f" {p.resolution.requeued} sent again)."
    )
    click.echo("Campaign: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v) + ".")
    if p.unknown:
        click.echo(
            f"{p.unknown} recipient(s) may or may not have been sent: the next send or"
            " reconcile looks for their receipts, and sends them again only if none came.",
        )


def _state_command(verb: str, doc: str) -> click.Command:
    @click.command(name=verb, help=doc)
    @click.argument("name")
    @json_option
    @pass_env
    @run
    async def command(env: Env, name: str, as_json: bool) -> None:
        async with env.store() as store:
            campaign = await loaded.set_state(store, name, verb)
        if as_json:
            emit_json({"campaign": name, "state": campaign.state})
        else:
            click.echo(f"Campaign {name!r} is now {campaign.state}.")

    return command


pause = _state_command(
    "pause",
    """Pause campaign NAME: a running send stops after the requests in flight.

    Example:

    \b
        massiva campaign pause esempio-avvisi-2026
    """,
)
resume = _state_command(
    "resume",
    """Resume campaign NAME; then run massiva send again.

    Example:

    \b
        massiva campaign resume esempio-avvisi-2026 && massiva send esempio-avvisi-2026
    """,
)
cancel = _state_command(
    "cancel",
    """Cancel campaign NAME for good: nothing more is sent (receipts still count).

    Example:

    \b
        massiva campaign cancel esempio-avvisi-2026
    """,
)
