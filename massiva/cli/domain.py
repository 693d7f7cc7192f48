"""``massiva domain ...``: an own certified domain (Flat plan) for the sending boxes."""

from __future__ import annotations

import click

from massiva.cli.context import Env, pass_env, run
from massiva.cli.output import (
    DOMAIN_COLUMNS,
    confirm_revocation,
    domain_json,
    domain_rows,
    emit_json,
    json_option,
    print_domain,
    table,
    years_option,
    yes_option,
)
from massiva.cli.text import printable

domain_id = click.argument("domain_id", metavar="ID")


@click.group()
def domain() -> None:
    """Certify an own domain, so the sending box can be you@pec.yourdomain.it.

    Once the domain is certified (state evaso), list it under [domains] own in
    massiva.toml and register boxes on it.

    Example:

    \b
        massiva domain add pec.studiobianchi.it --provider infocert
        massiva domain status ID
    """


@domain.command()
@click.argument("name")
@click.option(
    "--provider",
    required=True,
    type=click.Choice(["infocert", "namirial"]),
    help="The certified-mail provider that will host the domain.",
)
@years_option
@click.option(
    "--mailboxes",
    default=1,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="How many boxes to buy on the domain.",
)
@json_option
@pass_env
@run
async def add(
    env: Env, name: str, provider: str, years: int, mailboxes: int, as_json: bool
) -> None:
    """Order the certification of the domain NAME.

    Example:

    \b
        massiva domain add pec.studiobianchi.it --provider infocert --years 1
    """
    async with env.provisioner() as provisioning:
        found = await provisioning.add_domain(name, provider, years, mailboxes)
    print_domain(
        found, as_json, f"Ordered. Follow it with: massiva domain status {printable(found.id)}"
    )


@domain.command(name="list")
@json_option
@pass_env
@run
async def list_(env: Env, as_json: bool) -> None:
    """List the account's own domains.

    Example:

    \b
        massiva domain list --json
    """
    async with env.provisioner() as provisioning:
        found = await provisioning.domains()
    if as_json:
        emit_json([domain_json(d) for d in found])
    else:
        table("Domains", DOMAIN_COLUMNS, domain_rows(found))


@domain.command()
@domain_id
@json_option
@pass_env
@run
async def status(env: Env, domain_id: str, as_json: bool) -> None:
    """Show the domain ID as the vendor sees it now (registrato, evaso, revocato).

    Example:

    \b
        massiva domain status 69806bcce09fb76c6b0fef0b
    """
    async with env.provisioner() as provisioning:
        found = await provisioning.domain(domain_id)
    print_domain(found, as_json)


@domain.command()
@domain_id
@years_option
@json_option
@pass_env
@run
async def renew(env: Env, domain_id: str, years: int, as_json: bool) -> None:
    """Renew the domain ID for --years (the vendor charges for it).

    Example:

    \b
        massiva domain renew 69806bcce09fb76c6b0fef0b --years 2
    """
    async with env.provisioner() as provisioning:
        found = await provisioning.renew_domain(domain_id, years)
    print_domain(found, as_json)


@domain.command()
@domain_id
@yes_option
@json_option
@pass_env
@run
async def revoke(env: Env, domain_id: str, yes: bool, as_json: bool) -> None:
    """Revoke the domain ID and every box on it.

    Example:

    \b
        massiva domain revoke 69806bcce09fb76c6b0fef0b --yes
    """
    confirm_revocation(
        f"Revoke domain {domain_id} and all its mailboxes?", yes=yes, as_json=as_json
    )
    async with env.provisioner() as provisioning:
        found = await provisioning.revoke_domain(domain_id)
    print_domain(found, as_json, f"Revoked {printable(found.domain)} and its mailboxes.")
