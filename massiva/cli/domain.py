"""``massiva domain ...``: an own certified domain (Flat plan) for the sending boxes."""

from __future__ import annotations

import click

from massiva.cli.context import EXIT_INPUT, Env, fail, pass_env, run
from massiva.cli.output import (
    DOMAIN_COLUMNS,
    confirm,
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
from massiva.provisioning.service import NotKnown, Provisioner
from massiva.times import show_date

#: A domain, by its id or by its name (looked up: see Provisioner.domain_id).
domain_ref = click.argument("domain", metavar="DOMAIN")


async def _domain_id(provisioning: Provisioner, domain: str, as_json: bool) -> str:
    """The id of ``domain`` (an id or a name); exit 2 when no domain, or several, have it."""
    try:
        return await provisioning.domain_id(domain)
    except NotKnown as exc:
        fail(str(exc), EXIT_INPUT, as_json=as_json)


@click.group()
def domain() -> None:
    """Certify an own domain, so the sending box can be you@pec.yourdomain.it.

    Once the domain is certified (state evaso), list it under [domains] own in
    massiva.toml and register boxes on it. A domain is named by its name or by
    its id (domain list shows both).

    Example:

    \b
        massiva domain add pec.studiobianchi.it --provider infocert
        massiva domain status pec.studiobianchi.it
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
        found, as_json, f"Ordered. Follow it with: massiva domain status {printable(found.domain)}"
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
@domain_ref
@json_option
@pass_env
@run
async def status(env: Env, domain: str, as_json: bool) -> None:
    """Show DOMAIN as the vendor sees it now (registrato, evaso, revocato).

    Example:

    \b
        massiva domain status pec.studiobianchi.it
        massiva domain status 69806bcce09fb76c6b0fef0b --json
    """
    async with env.provisioner() as provisioning:
        found = await provisioning.domain(await _domain_id(provisioning, domain, as_json))
    print_domain(found, as_json)


@domain.command()
@domain_ref
@years_option
@yes_option
@json_option
@pass_env
@run
async def renew(env: Env, domain: str, years: int, yes: bool, as_json: bool) -> None:
    """Renew DOMAIN for --years: the vendor charges for it, so it asks first.

    Example:

    \b
        massiva domain renew pec.studiobianchi.it --years 2
        massiva domain renew 69806bcce09fb76c6b0fef0b --years 1 --yes
    """
    confirm(
        f"renew domain {domain} for {years} year{'s' * (years > 1)}, which the vendor charges",
        yes=yes,
        as_json=as_json,
    )
    async with env.provisioner() as provisioning:
        found = await provisioning.renew_domain(
            await _domain_id(provisioning, domain, as_json), years
        )
    print_domain(
        found,
        as_json,
        f"Renewed: {printable(found.domain)} now expires on {show_date(found.expires)}.",
    )


@domain.command()
@domain_ref
@yes_option
@json_option
@pass_env
@run
async def revoke(env: Env, domain: str, yes: bool, as_json: bool) -> None:
    """Revoke DOMAIN and every box on it, for good. It asks first.

    Example:

    \b
        massiva domain revoke pec.studiobianchi.it
        massiva domain revoke 69806bcce09fb76c6b0fef0b --yes
    """
    confirm(f"revoke domain {domain} and every mailbox on it, for good", yes=yes, as_json=as_json)
    async with env.provisioner() as provisioning:
        found = await provisioning.revoke_domain(await _domain_id(provisioning, domain, as_json))
    print_domain(found, as_json, f"Revoked {printable(found.domain)} and its mailboxes.")
