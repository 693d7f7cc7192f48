"""The ``massiva`` command line: it parses and prints; the library decides."""

from __future__ import annotations

from pathlib import Path

import click

from massiva import __version__
from massiva.cli.campaign import campaign
from massiva.cli.context import Env
from massiva.cli.db import db
from massiva.cli.demo import demo
from massiva.cli.domain import domain
from massiva.cli.evidence import evidence
from massiva.cli.init import init
from massiva.cli.mailbox import mailbox, quota
from massiva.cli.recipient import recipient
from massiva.cli.reconcile import reconcile
from massiva.cli.report import report, retry, status
from massiva.cli.run import run_service
from massiva.cli.send import cancel, pause, resume, send
from massiva.cli.simulator import simulator
from massiva.cli.unknowns import unknowns
from massiva.dburl import is_url


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="massiva")
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Configuration file (default: massiva.toml in the working folder, if any).",
)
@click.option("--sandbox", is_flag=True, help="Use the vendor's test hosts (test.*).")
@click.option("--api-url", help="Base URL of the PEC (provisioning) API, e.g. a simulator.")
@click.option("--sending-url", help="Base URL of the PEC Massiva (sending) API.")
@click.option(
    "--db",
    "database",
    metavar="FILE|URL",
    help="SQLite database file, or a postgresql:// URL (default: $MASSIVA_DATABASE_URL,"
    " else [database] url or path in massiva.toml, else massiva.db beside massiva.toml"
    " or here). Keep a PostgreSQL password out of the URL: PGPASSWORD, ~/.pgpass or a"
    " service file.",
)
@click.pass_context
def main(
    ctx: click.Context,
    config_path: Path | None,
    sandbox: bool,
    api_url: str | None,
    sending_url: str | None,
    database: str | None,
) -> None:
    """Bulk certified e-mail (PEC) through Openapi's PEC Massiva API.

    Secrets come from the environment only: the Openapi token from
    OPENAPI_TOKEN, each mailbox's password from the variable massiva.toml
    names (default MASSIVA_PASSWORD_<LOCAL PART>). Every command has --help
    with an example. Every call to the vendor gives up within 2 minutes,
    retries included (plus a second per 125 kB uploaded): a vendor that never
    answers is an exit 4, never a wait without end.

    \b
    Exit codes:
      0    done (send: nothing left to send)
      1    refused or failed
      2    bad input
      3    configuration missing or wrong
      4    vendor or database unreachable, or an outcome unknown
      5    timed out
      6    send: the campaign is paused or cancelled
      7    send: an allowance is spent
      8    reconcile: done, but a mailbox is over 80% full (purge_archived)
      130  stopped by Ctrl+C (SIGINT); 143 by SIGTERM
    """
    env = ctx.ensure_object(Env)
    env.config_path = config_path
    env.sandbox = sandbox
    env.api_url = api_url
    env.sending_url = sending_url
    env.database = database if database is None or is_url(database) else Path(database)


main.add_command(init)
main.add_command(demo)
main.add_command(mailbox)
main.add_command(campaign)
main.add_command(send)
for command in (pause, resume, cancel):
    campaign.add_command(command)
main.add_command(domain)
main.add_command(quota)
main.add_command(simulator)
main.add_command(reconcile)
main.add_command(unknowns)
main.add_command(recipient)
main.add_command(report)
main.add_command(evidence)
main.add_command(status)
main.add_command(run_service)
main.add_command(db)
campaign.add_command(retry)
