"""``massiva demo``: the whole job on the built-in simulator, with nothing to configure."""

from __future__ import annotations

from pathlib import Path

import click

from massiva.cli.context import Env, pass_env, run
from massiva.cli.send import SendDisplay
from massiva.demo import EXAMPLE, run_demo

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

    Example:

    \b
        massiva demo --out demo-out
        xdg-open demo-out/report.html
    """
    if not EXAMPLE.is_dir():
        raise click.UsageError(
            f"the example campaign is not at {EXAMPLE}: run the demo from a clone of the"
            " massiva repository (pip install -e .)"
        )
    click.echo(
        "massiva demo: everything below runs on the built-in simulator; no real PEC is sent.\n"
    )
    display = SendDisplay(quiet=False)
    try:
        result = await run_demo(out, say=click.echo, on_progress=display.update)
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
