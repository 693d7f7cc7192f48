"""``massiva demo``: the whole job on the built-in simulator, with nothing to configure."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import click

from massiva.cli.context import EXIT_SIGNAL, EXIT_TIMEOUT, Env, pass_env, run
from massiva.cli.send import SendDisplay
from massiva.demo import EXAMPLE, DemoResult, run_demo
from massiva.lifecycle import OPEN

ON_THE_SIMULATOR = (
    "This ran on the built-in simulator: no real PEC was sent, nothing left this machine."
)


@click.command()
@click.option(
    "--out",
    default=Path("demo-out"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the reports, the forms and the demo's database.",
)
@pass_env
@run
async def demo(env: Env, out: Path) -> None:
    """Run the whole job on the built-in simulator, in under a minute.

    It provisions a PECMASSIVA box (check, register, form, activate, wait),
    checks and loads campaigns/example, sends it at the provider's pace,
    reconciles the receipts until every recipient has its outcome (the
    simulator's clock runs two hours a second), and writes the CSV and HTML
    reports. Nothing is configured and nothing real is sent.

    Exit 0 when every recipient has its outcome, 5 when the receipts did not
    all come in time, 130 when stopped by Ctrl+C (143 by SIGTERM).

    Example:

    \b
        massiva demo --out demo-out
        xdg-open demo-out/report.html
    """
    if not EXAMPLE.is_dir():
        raise click.UsageError(
            f"the example campaign is not at {EXAMPLE}: this massiva installation is"
            " incomplete; install massiva again"
        )
    click.echo(
        "massiva demo: everything below runs on the built-in simulator; no real PEC is sent.\n"
    )
    display = SendDisplay(quiet=False)

    def say(line: str) -> None:
        display.close()  # the sending bar ends before the lines after it
        click.echo(line)

    try:
        result = await _interruptible(run_demo(out, say=say, on_progress=display.update))
    except Interrupted as stopped:
        display.close()
        click.echo(
            f"\nmassiva demo: stopped by {signal.Signals(stopped.signum).name}; nothing real"
            " was sent. Run it again to start over.",
            err=True,
        )
        sys.exit(EXIT_SIGNAL + stopped.signum)
    finally:
        display.close()
    click.echo("")
    click.echo(
        "Outcome: "
        + ", ".join(f"{state} {n}" for state, n in result.counts.items() if n)
        + f" ({result.seconds:.0f} s)."
    )
    for path in result.reports:
        click.echo(f"Report: {path}")
    click.echo(ON_THE_SIMULATOR)
    if any(result.counts[state] for state in OPEN):
        click.echo("Error: not every recipient had its outcome in time.", err=True)
        sys.exit(EXIT_TIMEOUT)


class Interrupted(Exception):
    """Ctrl+C or SIGTERM stopped the demo."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


async def _interruptible(job: Coroutine[Any, Any, DemoResult]) -> DemoResult:
    """``job``, cancelled by Ctrl+C or SIGTERM (raising :class:`Interrupted`): what it
    holds is closed as it unwinds, and nothing of the demo is worth finishing."""
    task = asyncio.ensure_future(job)
    caught: list[int] = []

    def interrupt(signum: int) -> None:
        caught.append(signum)
        task.cancel()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupt, sig)
    try:
        return await task
    except asyncio.CancelledError:
        if not caught:
            raise
        raise Interrupted(caught[0]) from None
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
