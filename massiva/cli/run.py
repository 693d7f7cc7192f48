"""``massiva run``: the service, until SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator

import click

from massiva.cli.context import Env, pass_env, run
from massiva.metrics import Metrics
from massiva.reconcile import PAGE_FETCHES
from massiva.service import LOOK_EVERY, Service
from massiva.status_server import StatusServer, serve_status
from massiva.webhook import Notifier


@click.command(name="run")
@click.option(
    "--look-every",
    default=LOOK_EVERY,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds between looks at the database for campaigns to send.",
)
@click.option(
    "--page-fetches",
    default=PAGE_FETCHES,
    show_default=True,
    type=click.IntRange(min=1),
    help="Inbox pages fetched at once when a reconcile finds many new ones.",
)
@pass_env
@run
async def run_service(env: Env, look_every: float, page_fetches: int) -> None:
    """Run unattended until SIGTERM: send every active campaign from its pool of
    mailboxes, by its schedule, and read every mailbox's receipts periodically.

    Campaigns loaded, paused, resumed or cancelled while it runs are seen within
    --look-every seconds. Each mailbox keeps its own pace, allowances and
    lease, and rests until its allowance renews or a window of its campaigns
    opens; one whose password is refused stops alone. Receipts are read from
    each mailbox every [service] reconcile_every seconds (900 by default).

    Health and metrics are served on loopback ([service] status, default
    127.0.0.1:9464): /healthz, and /metrics in Prometheus' text format. With
    [service] webhook_url set, a campaign that finishes or stops, and a
    mailbox that stops, are notified with an HMAC-SHA256 signature (the key in
    the variable [service] webhook_secret_env names). docs/deploy.md has a
    systemd unit and a Dockerfile.

    SIGTERM or Ctrl+C finishes the requests in flight, records their answers,
    releases the mailboxes and exits 0. Restarting never posts anyone twice.

    Example:

    \b
        massiva run
        curl -s http://127.0.0.1:9464/metrics | grep massiva_posts_total
    """
    config = env.config
    service_config = config.service
    secret = service_config.webhook_secret()
    notifier = None
    if service_config.webhook_url:
        notifier = Notifier(service_config.webhook_url, secret)
    metrics = Metrics()
    token = config.token()
    async with env.store() as store:
        service = Service(
            store,
            config,
            lambda: env.sending_session(token),
            metrics=metrics,
            notifier=notifier,
            look_every=look_every,
            page_fetches=page_fetches,
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, service.stop)
        try:
            async with _status(
                service_config.status_host, service_config.status_port, metrics, service
            ) as server:
                where = f"; health and metrics at {server.url}" if server else ""
                click.echo(f"massiva run: sending and reconciling{where}", err=True)
                await service.run()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
    click.echo("massiva run: stopped; the requests in flight were finished", err=True)


@contextlib.asynccontextmanager
async def _status(
    host: str, port: int | None, metrics: Metrics, service: Service
) -> AsyncIterator[StatusServer | None]:
    if port is None:
        yield None
        return
    async with serve_status(host, port, metrics, service.health) as server:
        yield server
