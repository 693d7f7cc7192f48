"""``massiva mailbox ...`` and ``massiva quota``: the PECMASSIVA box the sender uses."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from massiva.api import Mailbox
from massiva.cli.context import EXIT_INPUT, EXIT_REFUSED, Env, fail, pass_env, run
from massiva.cli.output import (
    MAILBOX_COLUMNS,
    confirm_revocation,
    emit_json,
    json_option,
    mailbox_json,
    mailbox_rows,
    print_mailbox,
    table,
    years_option,
    yes_option,
)
from massiva.cli.text import printable
from massiva.files import TargetRefused, atomic_write, check_target
from massiva.provisioning.applicant import load_applicant, validate_applicant
from massiva.times import rome_today, show, show_date, utcnow

mailbox_id = click.argument("mailbox_id", metavar="ID")


@click.group()
def mailbox() -> None:
    """Set up the PECMASSIVA mailbox the sender uses, step by step.

    The order: check an address, register it, download the activation form,
    sign it, upload it with your identity document, wait until it is active.

    Example:

    \b
        massiva mailbox check ufficio@pecmassiva.com
        massiva mailbox register --applicant richiedente.toml
        massiva mailbox form ID -o modulo.pdf
        massiva mailbox activate ID modulo-firmato.pdf carta-identita.pdf
        massiva mailbox wait ID
    """


@mailbox.command()
@click.argument("address")
@json_option
@pass_env
@run
async def check(env: Env, address: str, as_json: bool) -> None:
    """Tell whether ADDRESS is free to register (exit 1 when it is taken).

    Example:

    \b
        massiva mailbox check ufficio@pecmassiva.com
    """
    async with env.provisioner() as provisioning:
        available = await provisioning.pec.is_available(address)
    if as_json:
        emit_json({"address": address, "available": available})
    else:
        click.echo(f"{printable(address)} is {'available' if available else 'already taken'}.")
    if not available:
        sys.exit(EXIT_REFUSED)


@mailbox.command()
@click.option(
    "--applicant",
    "applicant_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="TOML or JSON file with the applicant's data (the fields of POST /pec).",
)
@json_option
@pass_env
@run
async def register(env: Env, applicant_file: Path, as_json: bool) -> None:
    """Register a new PECMASSIVA box for the applicant in a TOML or JSON file.

    The file is checked first: every problem is listed at once, with the field
    and how to fix it, and nothing is sent until all are fixed.

    Example:

    \b
        massiva mailbox register --applicant richiedente.toml

    richiedente.toml:

    \b
        casella_pec = "ufficio@pecmassiva.com"
        tipo_cliente = "PS"
        nome_richiedente = "Giulia"
        cognome_richiedente = "Bianchi"
        email = "giulia@studiobianchi.it"
        telefono = "0548798569"
        codice_fiscale_richiedente = "BNCGLI80A41H501U"
        data_nascita_richiedente = "01/01/1980"
        sesso_richiedente = "F"
        nazione_nascita_richiedente = "IT"
        indirizzo_titolare = "via Verdi 20"
        comune_titolare = "Roma"
        cap_titolare = "00042"
        nazione_titolare = "IT"
        provincia_titolare = "RM"
    """
    config = env.config
    body = validate_applicant(
        load_applicant(applicant_file), own_domains=config.own_domains, sandbox=config.sandbox
    )
    async with env.provisioner() as provisioning:
        box = await provisioning.register(body)
    print_mailbox(
        box,
        as_json,
        f"Registered. Next: massiva mailbox form {printable(box.id)} -o modulo.pdf, sign it,"
        f" then massiva mailbox activate {printable(box.id)} modulo-firmato.pdf documento.pdf",
    )


@mailbox.command()
@mailbox_id
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Where to save the PDF.",
)
@json_option
@pass_env
@run
async def form(env: Env, mailbox_id: str, output: Path, as_json: bool) -> None:
    """Download the activation form of box ID, to print, sign and upload.

    Example:

    \b
        massiva mailbox form 6045fdee3a716847a978a471 -o modulo.pdf
    """
    try:
        check_target(output)  # before the download: a link there is refused at once
    except TargetRefused as exc:
        fail(printable(str(exc)), EXIT_INPUT, as_json=as_json)
    async with env.provisioner() as provisioning:
        pdf = await provisioning.pec.activation_form(mailbox_id)
    _save(output, pdf, as_json)
    if as_json:
        emit_json({"id": mailbox_id, "output": str(output), "bytes": len(pdf)})
    else:
        click.echo(f"Saved the activation form to {printable(str(output))} ({len(pdf):,} bytes).")


def _save(output: Path, data: bytes, as_json: bool) -> None:
    """Write ``data`` to ``output`` whole, never through a link; exit 2 if it cannot be."""
    try:
        with atomic_write(output) as out:
            out.write(data)
    except TargetRefused as exc:
        fail(printable(str(exc)), EXIT_INPUT, as_json=as_json)
    except OSError as exc:
        fail(
            printable(f"{output} cannot be written ({exc.strerror}); give another -o"),
            EXIT_INPUT,
            as_json=as_json,
        )


@mailbox.command()
@mailbox_id
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@json_option
@pass_env
@run
async def activate(env: Env, mailbox_id: str, files: tuple[Path, ...], as_json: bool) -> None:
    """Upload the signed activation form and the identity document of box ID.

    Give the PDF files in order (form first). A PECMASSIVA box takes one PDF:
    the files are merged into it. Files that are not PDFs are refused before
    anything is sent.

    Example:

    \b
        massiva mailbox activate 6045fdee3a716847a978a471 modulo-firmato.pdf carta-identita.pdf
    """
    async with env.provisioner() as provisioning:
        box = await provisioning.activate(mailbox_id, list(files))
    print_mailbox(
        box, as_json, f"Documents uploaded. Next: massiva mailbox wait {printable(box.id)}"
    )


@mailbox.command()
@mailbox_id
@json_option
@pass_env
@run
async def status(env: Env, mailbox_id: str, as_json: bool) -> None:
    """Show box ID as the vendor sees it now.

    States: registrata (registered), in_evasione (documents under review),
    evasa (active), documenti_errati (upload again), revocata, chiusa,
    registrazione_annullata.

    Example:

    \b
        massiva mailbox status 6045fdee3a716847a978a471
    """
    async with env.provisioner() as provisioning:
        box = await provisioning.status(mailbox_id)
    print_mailbox(box, as_json)


@mailbox.command()
@mailbox_id
@click.option(
    "--timeout",
    "patience",
    default=24 * 3600.0,
    show_default=True,
    help="Give up after this many seconds (exit 5).",
)
@click.option(
    "--interval",
    default=10.0,
    show_default=True,
    help="Seconds between the first checks; they grow up to 5 minutes.",
)
@json_option
@pass_env
@run
async def wait(env: Env, mailbox_id: str, patience: float, interval: float, as_json: bool) -> None:
    """Wait until box ID is active (exit 0), or fails (exit 1), or --timeout (exit 5).

    Progress goes to stderr, one line per check.

    Example:

    \b
        massiva mailbox wait 6045fdee3a716847a978a471 --timeout 7200
    """

    def progress(box: Mailbox, elapsed: float) -> None:
        shown = printable(f"{box.address}: {box.state}")
        click.echo(f"{show(utcnow())}  {shown} ({elapsed:.0f} s)", err=True)

    async with env.provisioner() as provisioning:
        box = await provisioning.wait(
            mailbox_id, patience=patience, interval=interval, on_poll=progress
        )
    print_mailbox(
        box, as_json, f"{printable(box.address)} is active until {show_date(box.expires)}."
    )


@mailbox.command(name="list")
@click.option("--local", is_flag=True, help="Show what the database recorded; no request.")
@json_option
@pass_env
@run
async def list_(env: Env, local: bool, as_json: bool) -> None:
    """List the account's boxes with their expiry; warns under 30 days.

    Example:

    \b
        massiva mailbox list
        massiva mailbox list --local --json
    """
    today = rome_today()
    if local:
        async with env.store() as store:
            rows = await store.provisioning.mailboxes()
        boxes = [Mailbox(r.id, r.address, r.box_type, r.state, r.expires, "", {}) for r in rows]
    else:
        async with env.provisioner() as provisioning:
            boxes = await provisioning.mailboxes()
    if as_json:
        emit_json([mailbox_json(box, today) for box in boxes])
    else:
        table("Mailboxes", MAILBOX_COLUMNS, mailbox_rows(boxes, today))


@mailbox.command()
@mailbox_id
@years_option
@json_option
@pass_env
@run
async def renew(env: Env, mailbox_id: str, years: int, as_json: bool) -> None:
    """Renew box ID for --years (the vendor charges for it).

    Example:

    \b
        massiva mailbox renew 6045fdee3a716847a978a471 --years 2
    """
    async with env.provisioner() as provisioning:
        box = await provisioning.renew(mailbox_id, years)
    print_mailbox(
        box,
        as_json,
        f"Renewed: {printable(box.address)} now expires on {show_date(box.expires)}.",
    )


@mailbox.command()
@mailbox_id
@yes_option
@json_option
@pass_env
@run
async def revoke(env: Env, mailbox_id: str, yes: bool, as_json: bool) -> None:
    """Revoke box ID: it stops sending and receiving.

    Example:

    \b
        massiva mailbox revoke 6045fdee3a716847a978a471 --yes
    """
    confirm_revocation(
        f"Revoke mailbox {mailbox_id}? It cannot send after this", yes=yes, as_json=as_json
    )
    async with env.provisioner() as provisioning:
        box = await provisioning.revoke(mailbox_id)
    print_mailbox(box, as_json, f"Revoked {printable(box.address)}.")


@click.command()
@click.option(
    "--mailbox", "address", help="The sending mailbox (default: the only one configured)."
)
@json_option
@pass_env
@run
async def quota(env: Env, address: str | None, as_json: bool) -> None:
    """Show the storage used by a sending mailbox (receipts carry attachments and fill it).

    Example:

    \b
        MASSIVA_PASSWORD_UFFICIO=... massiva quota --mailbox ufficio@pecmassiva.com
    """
    address = address or env.config.default_mailbox()
    async with env.mailbox_client(address) as client:
        used = await client.quota()
    if as_json:
        emit_json(
            {
                "mailbox": address,
                "usage": used.usage,
                "limit": used.limit,
                "fraction": round(used.fraction, 4),
            }
        )
        return
    click.echo(
        f"{printable(address)}: {used.usage:,.0f} of {used.limit:,.0f} KiB used"
        f" ({used.fraction:.0%})."
    )
    if used.fraction >= 0.8:
        click.echo(
            "Warning: the mailbox is filling up; delete old receipts you have archived"
            " (DELETE /send/{code}) before it refuses new mail.",
            err=True,
        )
