"""``massiva simulator``: the built-in simulator of both vendor APIs, on loopback."""

from __future__ import annotations

import math
from typing import Any, Literal

import click

from massiva.simulator.server import LOOPBACK_HOSTS


class FiniteRange(click.FloatRange):
    """A ``FloatRange`` that also refuses ``nan`` and ``inf``."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    type=click.Choice(sorted(LOOPBACK_HOSTS)),
    help="Loopback address to bind (the simulator never listens on a network).",
)
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="TCP port to listen on.",
)
@click.option(
    "--clock-speed",
    default=1.0,
    show_default=True,
    type=FiniteRange(min=0, max=1e6),
    help="Simulated seconds per real second (60: receipts due in an hour come in a minute;"
    " 7200: a day in 12 seconds; 0: a frozen clock). Every answer's Date header tells the"
    " simulated time, and massiva reconcile keeps time by it as by the vendor's.",
)
@click.option(
    "--inbox-order",
    type=click.Choice(["newest_first", "oldest_first"]),
    default="newest_first",
    show_default=True,
    help="Order of GET /inbox pages (the vendor does not document its own).",
)
@click.option(
    "--send-rate",
    default=1.0,
    show_default=True,
    type=FiniteRange(min=0),
    help="POST /send requests a second per mailbox before a 429; 0 lifts the limit.",
)
@click.option(
    "--daily-limit",
    default=3500,
    show_default=True,
    type=click.IntRange(min=1),
    help="Recipients a Rome day.",
)
@click.option(
    "--monthly-limit",
    default=30000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Recipients a Rome month.",
)
def simulator(
    host: str,
    port: int,
    clock_speed: float,
    inbox_order: Literal["newest_first", "oldest_first"],
    send_rate: float,
    daily_limit: int,
    monthly_limit: int,
) -> None:
    """Serve the built-in simulator of both vendor APIs on loopback.

    It accepts any bearer token and has one active mailbox ready to send:
    demo@pecmassiva.com, password demo. Admin view: /_simulator/.

    Example:

    \b
        massiva simulator --port 8080 &
        curl -s -X POST http://127.0.0.1:8080/send \\
          -H 'Authorization: Bearer any' -H 'Content-Type: application/json' \\
          -d '{"recipient": "mario.rossi@legalmail.it", "subject": "Prova",
               "body": "<p>Ciao</p>", "username": "demo@pecmassiva.com",
               "password": "demo"}'
        curl -s http://127.0.0.1:8080/inbox -H 'Authorization: Bearer any' \\
          -H 'x-username: demo@pecmassiva.com' -H 'x-password: demo'
    """
    from massiva.simulator import SimClock, SimulatorSettings, serve

    settings = SimulatorSettings(
        inbox_order=inbox_order,
        send_rate=send_rate or None,
        daily_limit=daily_limit,
        monthly_limit=monthly_limit,
    )
    click.echo(
        f"massiva simulator on http://{host}:{port} (any bearer token; mailbox "
        "demo@pecmassiva.com, password demo). No real PEC is ever sent. Ctrl+C stops it."
    )
    serve(settings, SimClock(speed=clock_speed), host=host, port=port)
