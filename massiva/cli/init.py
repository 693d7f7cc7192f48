"""``massiva init``: a new working folder, ready for the simulator."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from massiva.cli.context import EXIT_INPUT, fail
from massiva.cli.output import emit_json, json_option
from massiva.cli.text import printable
from massiva.starter import CAMPAIGN_FOLDER, EXAMPLE_PASSWORD_ENV, FilesExist, create


@click.command()
@click.argument(
    "folder", default=".", type=click.Path(file_okay=False, path_type=Path), required=False
)
@json_option
def init(folder: Path, as_json: bool) -> None:
    """Start a working folder: massiva.toml, the shared templates, an example campaign.

    FOLDER (default: the working folder; created if missing) gets a commented
    massiva.toml pointing at the built-in simulator, templates/ (the shared
    layouts campaigns extend, and the HTML report's page) and a copy of the
    example campaign in campaigns/example/. A file already there is never
    overwritten: init names them and writes nothing (exit 2).

    Example:

    \b
        massiva init avvisi && cd avvisi
        massiva campaign check campaigns/example
    """
    folder = folder.absolute()
    try:
        started = create(folder)
    except FilesExist as exc:
        fail(str(exc), EXIT_INPUT, as_json=as_json, existing=[str(p) for p in exc.existing])
    except OSError as exc:
        fail(f"{exc.filename}: cannot be written ({exc.strerror})", EXIT_INPUT, as_json=as_json)
    campaign = CAMPAIGN_FOLDER.as_posix()
    steps = [
        (f"massiva campaign check {campaign}", "every row checked; nothing is sent"),
        ("massiva simulator --port 8080 &", "the vendor's APIs, simulated here"),
        (f"export OPENAPI_TOKEN=any {EXAMPLE_PASSWORD_ENV}=demo", "for the simulator"),
    ]
    then = [
        f"massiva campaign load {campaign} && massiva send {started.campaign_name}",
        f"massiva reconcile && massiva report {started.campaign_name} --format html",
    ]
    if as_json:
        emit_json(
            {
                "folder": str(folder),
                "written": [str(path) for path in started.written],
                "next": [command for command, _ in steps],
                "then": then,
            }
        )
        return
    click.echo(f"Wrote {len(started.written)} files in {printable(str(folder))}:")
    click.echo("  massiva.toml        settings: the built-in simulator, the shared templates")
    click.echo("  templates/          the shared layouts and the HTML report's page")
    click.echo(f"  {campaign + '/':<19} an example campaign: copy it to start your own")
    click.echo("\nNext:")
    if folder != Path.cwd():
        click.echo(f"  cd {printable(shlex.quote(str(folder)))}")
    width = max(len(command) for command, _ in steps)
    for command, why in steps:
        click.echo(f"  {command:<{width}}  # {why}")
    click.echo("Then load and send it, read its receipts (they come within two minutes) and")
    click.echo("write its report:")
    for command in then:
        click.echo(f"  {command}")
