"""``massiva run``: the service, until SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from datetime import timedelta

import click

from massiva.cli.context import Env, pass_env, run
from massiva.cli.send import grace_option, lease_ttl_option
from massiva.metrics import Metrics
from massiva.reconcile import PAGE_FETCHES
from massiva.sender import SendOptions
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
@grace_option
@lease_ttl_option
@pass_env
@run
async def run_service(
    env: Env, look_every: float, page_fetches: int, grace: float, lease_ttl: float
) -> None:
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

    On a PostgreSQL database ([database] url), several hosts may run it at
    once: each mailbox is sent from by one of them at a time (its lease, held
    by an instance id unique to the process and host), and each recipient is
    claimed by one sender; when a host dies, the others take its mailboxes
    over once their leases lapse (--lease-ttl), and search the inbox for the
    posts it left unanswered before sending on. Keep the hosts' clocks in sync
    (NTP): a lease's expiry is a time.

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
            options=SendOptions(
                grace=timedelta(seconds=grace), lease_ttl=timedelta(seconds=lease_ttl)
            ),
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
