"""``massiva send`` and ``massiva campaign pause|resume|cancel``."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from datetime import timedelta

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from massiva import loaded
from massiva.api import ApiError, AuthenticationError, PecMassivaClient
from massiva.cli.context import (
    EXIT_ALLOWANCE,
    EXIT_CONFIG,
    EXIT_REFUSED,
    EXIT_SIGNAL,
    EXIT_STOPPED,
    EXIT_UNREACHABLE,
    Env,
    fail,
    pass_env,
    run,
)
from massiva.cli.output import confirm, emit_json, json_option, yes_option
from massiva.cli.text import printable
from massiva.config import Config
from massiva.lease import DEFAULT_TTL, LeaseBusy
from massiva.lifecycle import State
from massiva.quota import Plan
from massiva.sender import Box, SendAborted, Sender, SendOptions
from massiva.sender import Progress as SendProgress
from massiva.times import ROME, show, utcnow
from massiva.unknowns import DEFAULT_GRACE


def _duration(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))


def _progress_line(p: SendProgress) -> str:
    """What a send has done so far, in one line: the counts, the pace the provider took,
    the allowance left (on the run's clock, the Rome day it counts) and when it ends."""
    parts = [
        f"sent {p.sent}",
        f"accepted {p.accepted}",
        f"rejected {p.rejected}",
        f"unknown {p.unknown}",
    ]
    pace = p.pace()
    if pace is not None:
        parts.append(f"{pace:.2f} sent/s")
    day = f" on {p.at.astimezone(ROME):%d/%m}" if p.at else ""
    parts.append(f"allowance left {p.allowance_left:,}{day}")
    eta = p.eta()
    if eta is not None and eta.why == "done":
        parts.append(f"done in {_duration(eta.seconds)}")
    elif eta is not None:
        then = "waits for it to renew" if p.wait else "stops"
        parts.append(f"allowance spent in {_duration(eta.seconds)}, then it {then}")
    if p.note:
        parts.append(p.note)
    return printable("  ".join(parts))


class SendDisplay:
    """A progress bar on a terminal, a line every few seconds otherwise, nothing when
    ``quiet``. The bar starts at the first report, which knows the total, and ends at
    :meth:`close`, leaving its last state on screen; reports after that are not shown.

    A terminal is what rich says it is (``TTY_COMPATIBLE=0`` or ``1`` overrides it).
    """

    def __init__(self, quiet: bool) -> None:
        self.console = Console(stderr=True)
        self.quiet = quiet
        self.terminal = self.console.is_terminal and not quiet
        self.last_line = 0.0
        self.bar: Progress | None = None
        self.task: TaskID | None = None
        self.closed = False

    def update(self, p: SendProgress) -> None:
        """Show ``p``."""
        if self.quiet or self.closed:
            return
        line = _progress_line(p)
        if not self.terminal:
            if time.monotonic() - self.last_line >= 5:
                self.last_line = time.monotonic()
                click.echo(f"{show(p.at or utcnow())}  {p.campaign}: {line}", err=True)
            return
        if self.bar is None:
            self.bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[detail]}", markup=False),
                console=self.console,
            )
            self.task = self.bar.add_task("sending", total=p.to_send, completed=p.done, detail=line)
            self.bar.start()
        else:
            assert self.task is not None
            self.bar.update(self.task, total=p.to_send, completed=p.done, detail=line)

    def close(self) -> None:
        """End the bar, if one started: its last state stays on screen, and what is
        printed next goes below it."""
        if self.bar is not None:
            self.bar.stop()
            self.closed = True


#: ``--grace`` of send and run.
grace_option = click.option(
    "--grace",
    default=DEFAULT_GRACE.total_seconds(),
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds after which a post of unknown outcome that left no trace in the inbox"
    " is sent again.",
)
#: ``--lease-ttl`` of send and run.
lease_ttl_option = click.option(
    "--lease-ttl",
    default=DEFAULT_TTL.total_seconds(),
    show_default=True,
    type=click.FloatRange(min=1),
    help="Seconds a mailbox stays this process's after its last renewal: a sender that"
    " dies or is frozen longer loses it, and posts nothing more; another process (or,"
    " on PostgreSQL, another host) takes it over after this long, never sooner.",
)


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
@grace_option
@lease_ttl_option
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
    on (or, with --wait, sleeps until then). Ctrl+C or SIGTERM finishes the
    requests in flight and stops cleanly; run the same command to go on.

    \b
    Exit codes:
      0    nothing left to send (nothing pending, no outcome unknown),
           or --max reached
      1    another sender holds the mailbox, or the campaign is unknown
      2    the campaign's folder changed since it was loaded
      3    the vendor refuses the credentials
      4    the vendor cannot be reached, or some posts' outcome is unknown
           (the next send or reconcile settles them from the receipts)
      6    the campaign is paused or cancelled, outside its sending window
           (without --wait), or past its deadline
      7    an allowance is spent (the message says when it renews)
      130  stopped by Ctrl+C (SIGINT); 143 by SIGTERM

    Example:

    \b
        massiva campaign load campaigns/example
        massiva send esempio-avvisi-2026 --wait
    """
    config = env.config
    async with env.store() as store:
        campaign = await loaded.find(store, name)
        spec = loaded.as_loaded(campaign, shared_templates=config.templates, pools=config.pools)
        options = SendOptions(
            max_recipients=max_recipients,
            wait=wait,
            grace=timedelta(seconds=grace),
            lease_ttl=timedelta(seconds=lease_ttl),
        )
        display = SendDisplay(quiet=as_json)
        caught: list[int] = []  # the signals that stopped the run
        async with env.mailbox_clients(campaign.mailboxes) as clients:
            boxes = [pool_box(config, client, rate) for client in clients]
            sender = Sender(store, boxes, campaign, spec, options, on_progress=display.update)

            def interrupt(signum: int) -> None:
                caught.append(signum)
                sender.stop()

            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, interrupt, sig)
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
                    f"another massiva send is sending from {busy.name.removeprefix('send:')}"
                    f" ({busy.holder}); it stops by itself when done, or its lease lapses a"
                    " minute after it dies",
                    EXIT_REFUSED,
                    as_json=as_json,
                )
            finally:
                display.close()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)
        counts = await store.campaigns.counts(campaign.id)
    signum = caught[0] if caught else None
    code = exit_code(progress, counts, signum)
    _summary(progress, counts, signum, code, as_json)
    if code:
        sys.exit(code)


def pool_box(config: Config, client: PecMassivaClient, rate: float | None = None) -> Box:
    """A mailbox of a pool as massiva.toml sets it up: allowances, pace (``rate``
    overrides it), certifying senders."""
    box = config.mailbox(client.username)
    return Box(client, Plan(box.daily_limit, box.monthly_limit), rate or box.send_rate, box.trusted)


def _unsettled(counts: dict[str, int]) -> int:
    """Recipients whose post may or may not have left."""
    return counts[State.UNKNOWN] + counts[State.SENDING]


def exit_code(p: SendProgress, counts: dict[str, int], signum: int | None) -> int:
    """How a send ended, for scripts: 0 only when nothing is left to send (or --max was
    reached with every outcome known)."""
    if signum is not None:
        return EXIT_SIGNAL + signum
    if p.stopped in ("paused", "cancelled", "window", "deadline"):
        return EXIT_STOPPED
    if p.stopped == "allowance":
        return EXIT_ALLOWANCE
    if _unsettled(counts) or (p.stopped == "done" and counts[State.PENDING]):
        return EXIT_UNREACHABLE
    return 0


def _summary(
    p: SendProgress, counts: dict[str, int], signum: int | None, code: int, as_json: bool
) -> None:
    unsettled = _unsettled(counts)
    why = {
        "done": "every recipient has been posted"
        if not unsettled and not counts[State.PENDING]
        else "nothing more can be posted now",
        "max": "--max reached",
        "allowance": "the allowance is spent"
        + (f"; sending can go on from {show(p.renews_at)}" if p.renews_at else ""),
        "paused": "the campaign is paused (massiva campaign resume)",
        "cancelled": "the campaign is cancelled",
        "window": "outside the campaign's sending window"
        + (f"; it opens {show(p.opens_at)} (or use --wait)" if p.opens_at else ""),
        "deadline": "the campaign's deadline has passed: the recipients not yet sent"
        " never will be (massiva report lists them as not sent by the deadline)",
        "interrupted": f"stopped by {signal.Signals(signum).name if signum else 'a signal'}"
        " after the requests in flight; run the same command to go on",
    }.get(p.stopped, p.stopped)
    if as_json:
        emit_json(
            {
                "campaign": p.campaign,
                "stopped": p.stopped,
                "exit_code": code,
                "posted": p.posted,
                "sent": p.sent,
                "rejected": p.rejected,
                "unknown": p.unknown,
                "adopted": p.resolution.adopted,
                "requeued": p.resolution.requeued,
                "renews_at": p.renews_at.isoformat() if p.renews_at else None,
                "opens_at": p.opens_at.isoformat() if p.opens_at else None,
                "mailboxes_stopped": p.box_stops,
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
    for address, why in p.box_stops.items():
        click.echo(f"{address} stopped alone (the others went on): {printable(why)}")
    click.echo("Campaign: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v) + ".")
    if unsettled:
        click.echo(
            f"{unsettled} recipient(s) may or may not have been sent: the next send or"
            " reconcile looks for their receipts, and sends them again only if none came.",
        )


def _state_command(verb: str, doc: str, asks: str = "") -> click.Command:
    """``massiva campaign VERB NAME``; ``asks``: what it asks to confirm first (with --yes)."""

    @click.command(name=verb, help=doc)
    @click.argument("name")
    @json_option
    @pass_env
    @run
    async def command(env: Env, name: str, as_json: bool, yes: bool = False) -> None:
        if asks:
            confirm(asks.format(name=name), yes=yes, as_json=as_json)
        async with env.store() as store:
            campaign = await loaded.set_state(store, name, verb)
        if as_json:
            emit_json({"campaign": name, "state": campaign.state})
        else:
            click.echo(f"Campaign {name!r} is now {campaign.state}.")

    return yes_option(command) if asks else command


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
    It cannot be undone, so it asks first.

    Example:

    \b
        massiva campaign cancel esempio-avvisi-2026
        massiva campaign cancel esempio-avvisi-2026 --yes
    """,
    asks="cancel campaign {name} for good: its recipients not yet sent never will be",
)
