"""``massiva mailbox ...`` and ``massiva quota``: the PECMASSIVA box the sender uses."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from massiva.api import Mailbox
from massiva.cli.context import EXIT_INPUT, EXIT_REFUSED, Env, fail, pass_env, run
from massiva.cli.output import (
    MAILBOX_COLUMNS,
    confirm,
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
from massiva.provisioning.service import NotKnown, Provisioner
from massiva.purge import NEARLY_FULL
from massiva.times import rome_today, show, show_date, utcnow

#: A box, by its id or by its address (looked up: see Provisioner.box_id).
mailbox_ref = click.argument("box", metavar="BOX")


async def _box_id(provisioning: Provisioner, box: str, as_json: bool) -> str:
    """The id of ``box`` (an id or an address); exit 2 when no box, or several, have it."""
    try:
        return await provisioning.box_id(box)
    except NotKnown as exc:
        fail(str(exc), EXIT_INPUT, as_json=as_json)


@click.group()
def mailbox() -> None:
    """Set up the PECMASSIVA mailbox the sender uses, step by step.

    The order: check an address, register it, download the activation form,
    sign it, upload it with your identity document, wait until it is active.
    A box is named by its address or by its id (mailbox list shows both).

    Example:

    \b
        massiva mailbox check ufficio@pecmassiva.com
        massiva mailbox register --applicant richiedente.toml
        massiva mailbox form ufficio@pecmassiva.com -o modulo.pdf
        massiva mailbox activate ufficio@pecmassiva.com modulo-firmato.pdf carta-identita.pdf
        massiva mailbox wait ufficio@pecmassiva.com
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
        codice_fiscale_richiedente = "BNCGLI80A41H501C"
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
        f"Registered. Next: massiva mailbox form {printable(box.address)} -o modulo.pdf, sign"
        f" it, then massiva mailbox activate {printable(box.address)} modulo-firmato.pdf"
        " documento.pdf",
    )


@mailbox.command()
@mailbox_ref
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
async def form(env: Env, box: str, output: Path, as_json: bool) -> None:
    """Download the activation form of BOX (its address or id), to print, sign and upload.

    Example:

    \b
        massiva mailbox form ufficio@pecmassiva.com -o modulo.pdf
    """
    try:
        check_target(output)  # before the download: a link there is refused at once
    except TargetRefused as exc:
        fail(printable(str(exc)), EXIT_INPUT, as_json=as_json)
    async with env.provisioner() as provisioning:
        box_id = await _box_id(provisioning, box, as_json)
        pdf = await provisioning.pec.activation_form(box_id)
    _save(output, pdf, as_json)
    if as_json:
        emit_json({"id": box_id, "output": str(output), "bytes": len(pdf)})
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
@mailbox_ref
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@json_option
@pass_env
@run
async def activate(env: Env, box: str, files: tuple[Path, ...], as_json: bool) -> None:
    """Upload the signed activation form and the identity document of BOX.

    Give the PDF files in order (form first). A PECMASSIVA box takes one PDF:
    the files are merged into it. Files that are not PDFs are refused before
    anything is sent.

    Example:

    \b
        massiva mailbox activate ufficio@pecmassiva.com modulo-firmato.pdf carta-identita.pdf
    """
    async with env.provisioner() as provisioning:
        found = await provisioning.activate(await _box_id(provisioning, box, as_json), list(files))
    print_mailbox(
        found, as_json, f"Documents uploaded. Next: massiva mailbox wait {printable(found.address)}"
    )


@mailbox.command()
@mailbox_ref
@json_option
@pass_env
@run
async def status(env: Env, box: str, as_json: bool) -> None:
    """Show BOX (its address or id) as the vendor sees it now.

    States: registrata (registered), in_evasione (documents under review),
    evasa (active), documenti_errati (upload again), revocata, chiusa,
    registrazione_annullata.

    Example:

    \b
        massiva mailbox status ufficio@pecmassiva.com
        massiva mailbox status 6045fdee3a716847a978a471 --json
    """
    async with env.provisioner() as provisioning:
        found = await provisioning.status(await _box_id(provisioning, box, as_json))
    print_mailbox(found, as_json)


@mailbox.command()
@mailbox_ref
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
async def wait(env: Env, box: str, patience: float, interval: float, as_json: bool) -> None:
    """Wait until BOX is active (exit 0), or fails (exit 1), or --timeout (exit 5).

    Progress goes to stderr, one line per check. The last check is made when
    the timeout is up, however long the pause before it had grown.

    Example:

    \b
        massiva mailbox wait ufficio@pecmassiva.com --timeout 7200
    """

    def progress(box: Mailbox, elapsed: float) -> None:
        shown = printable(f"{box.address}: {box.state}")
        click.echo(f"{show(utcnow())}  {shown} ({elapsed:.0f} s)", err=True)

    async with env.provisioner() as provisioning:
        found = await provisioning.wait(
            await _box_id(provisioning, box, as_json),
            patience=patience,
            interval=interval,
            on_poll=progress,
        )
    print_mailbox(
        found, as_json, f"{printable(found.address)} is active until {show_date(found.expires)}."
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
@mailbox_ref
@years_option
@yes_option
@json_option
@pass_env
@run
async def renew(env: Env, box: str, years: int, yes: bool, as_json: bool) -> None:
    """Renew BOX for --years: the vendor charges for it, so it asks first.

    Example:

    \b
        massiva mailbox renew ufficio@pecmassiva.com --years 2
        massiva mailbox renew 6045fdee3a716847a978a471 --years 1 --yes
    """
    confirm(
        f"renew mailbox {box} for {years} year{'s' * (years > 1)}, which the vendor charges",
        yes=yes,
        as_json=as_json,
    )
    async with env.provisioner() as provisioning:
        found = await provisioning.renew(await _box_id(provisioning, box, as_json), years)
    print_mailbox(
        found,
        as_json,
        f"Renewed: {printable(found.address)} now expires on {show_date(found.expires)}.",
    )


@mailbox.command()
@mailbox_ref
@yes_option
@json_option
@pass_env
@run
async def revoke(env: Env, box: str, yes: bool, as_json: bool) -> None:
    """Revoke BOX: it stops sending and receiving, for good. It asks first.

    Example:

    \b
        massiva mailbox revoke ufficio@pecmassiva.com
        massiva mailbox revoke 6045fdee3a716847a978a471 --yes
    """
    confirm(
        f"revoke mailbox {box}: it stops sending and receiving, for good",
        yes=yes,
        as_json=as_json,
    )
    async with env.provisioner() as provisioning:
        found = await provisioning.revoke(await _box_id(provisioning, box, as_json))
    print_mailbox(found, as_json, f"Revoked {printable(found.address)}.")


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
    if used.fraction > NEARLY_FULL:
        click.echo(
            "Warning: the mailbox is filling up, and a full mailbox refuses new mail;"
            " purge_archived = true in massiva.toml frees it of the receipts massiva has"
            " kept (massiva reconcile --help)",
            err=True,
        )
