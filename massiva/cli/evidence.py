"""``massiva evidence NAME`` (a campaign's evidence bundle) and ``massiva evidence verify``."""

from __future__ import annotations

from pathlib import Path

import click

from massiva.campaign import addresses
from massiva.cli.context import EXIT_INPUT, EXIT_REFUSED, Env, fail, pass_env, run
from massiva.cli.output import emit_json, json_option
from massiva.cli.text import printable
from massiva.evidence import (
    BundleUnreadable,
    EvidenceError,
    NotInCampaign,
    make_bundle,
    verify_bundle,
)


class _BundleByDefault(click.Group):
    """A group whose first word, when it is none of its commands, is the campaign of
    ``bundle``: ``massiva evidence NAME`` is ``massiva evidence bundle NAME``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["bundle", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_BundleByDefault)
def evidence() -> None:
    """Evidence a law office can file: a campaign's bundle, and checking one.

    massiva evidence NAME writes the bundle of campaign NAME (it is short for
    massiva evidence bundle NAME: use that for a campaign called "bundle" or
    "verify"); massiva evidence verify FILE recomputes every hash of one.

    Example:

    \b
        massiva evidence esempio-avvisi-2026 -o prove.zip
        massiva evidence verify prove.zip
    """


@evidence.command()
@click.argument("name")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The zip to write (default: NAME-evidence.zip here).",
)
@click.option(
    "--recipient",
    "recipients",
    multiple=True,
    metavar="ADDRESS",
    help="Only this recipient (repeat it for more; default: every recipient).",
)
@json_option
@pass_env
@run
async def bundle(
    env: Env, name: str, output: Path | None, recipients: tuple[str, ...], as_json: bool
) -> None:
    """Write the evidence bundle of campaign NAME: one zip to file.

    For each recipient a folder, named by its spreadsheet row and address
    (0002-mario.rossi@legalmail.it/), holding what was sent (oggetto.txt,
    corpo.html, the attachments; one shared by several recipients, or over
    1 MB, once in allegati/ at the root, named by its SHA-256), every receipt
    as received (ricevute/<inbox id>-<tipo>.eml) and attestazione.html: a
    printable page in Italian with the times (Europe/Rome, with the offset),
    the message id, each receipt with its signature's verdict, and every
    SHA-256 of what was sent. Messages that failed massiva's checks are in
    non-attendibili/, listed as such, never as proof. manifest.json says what
    every file is; SHA256SUMS lists every file's SHA-256 (sha256sum -c
    SHA256SUMS checks them, as does massiva evidence verify).

    The zip appears whole or not at all, and never through a symbolic link.

    Example:

    \b
        massiva evidence esempio-avvisi-2026 -o prove.zip
        massiva evidence esempio-avvisi-2026 --recipient mario.rossi@legalmail.it
        massiva evidence verify prove.zip
    """
    wanted = [addresses.normalise(a) for a in recipients]
    for address, given in zip(wanted, recipients, strict=True):
        wrong = addresses.problem(address)
        if wrong:
            fail(
                f"--recipient {printable(given)} is not an address: {wrong}",
                EXIT_INPUT,
                as_json=as_json,
            )
    target = output or Path(f"{name}-evidence.zip")
    try:
        async with env.store() as store:
            done = await make_bundle(store, name, target, only=wanted)
    except NotInCampaign as exc:
        fail(str(exc), EXIT_REFUSED, as_json=as_json)
    except EvidenceError as exc:
        fail(str(exc), EXIT_INPUT, as_json=as_json)
    except OSError as exc:  # the disk is full, the folder went away...
        fail(
            f"the bundle could not be written to {target} ({exc.strerror}); nothing was left"
            " there: free some space or give another -o",
            EXIT_INPUT,
            as_json=as_json,
        )
    if as_json:
        emit_json(
            {
                "campaign": done.campaign,
                "file": str(done.path),
                "recipients": done.recipients,
                "files": done.files,
                "bytes": done.size,
                "not_recorded": done.not_recorded,
                "not_archived": done.not_archived,
                "receipts_without_body": done.bodiless,
                "not_trusted": done.doubtful,
            }
        )
        return
    click.echo(
        f"{printable(done.campaign)}: {done.recipients:,} recipients, {done.files:,} files,"
        f" {done.size:,} bytes written to {printable(str(done.path))}."
    )
    notes = [
        (done.not_recorded, "sent before massiva kept what it sent: their pages say so"),
        (done.not_archived, "bodies or attachments not in the archive: their pages say so"),
        (
            done.bodiless,
            "receipts kept without their body (not fetched yet, or gone from the mailbox"
            ' before it was): listed with subject and date as "corpo non disponibile"',
        ),
        (done.doubtful, "messages not trusted: listed apart, never as proof"),
    ]
    for count, what in notes:
        if count:
            click.echo(f"Note: {count:,} {what}.")
    click.echo(f"Check it: massiva evidence verify {printable(str(done.path))}")


@evidence.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option
def verify(file: Path, as_json: bool) -> None:
    """Check an evidence bundle: recompute every file's SHA-256.

    Each file must be as SHA256SUMS and manifest.json list it, each listed
    file there, and no file unlisted. Says OK (exit 0), or names each file
    that differs, is missing or was added (exit 1).

    Example:

    \b
        massiva evidence verify esempio-avvisi-2026-evidence.zip
        massiva evidence verify prove.zip --json
    """
    try:
        verdict = verify_bundle(file)
    except BundleUnreadable as exc:
        fail(str(exc), EXIT_REFUSED, as_json=as_json)
    if as_json:
        emit_json(
            {
                "file": str(file),
                "ok": verdict.ok,
                "files": verdict.files,
                "problems": [
                    {"path": p.path, "problem": p.kind, "detail": p.detail}
                    for p in verdict.problems
                ],
            }
        )
    elif verdict.ok:
        click.echo(
            f"OK: {printable(str(file))}: {verdict.files:,} files, each as SHA256SUMS and"
            " manifest.json list it."
        )
    else:
        count = len(verdict.problems)
        click.echo(f"{printable(str(file))}: NOT as it was made; {count:,} problem(s):")
        for problem in verdict.problems:
            click.echo(
                f"  {problem.kind:<11} {printable(problem.path)}: {printable(problem.detail)}"
            )
    if not verdict.ok:
        raise SystemExit(EXIT_REFUSED)
