"""``massiva db``: the database itself (moving it to PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.progress import Progress

from massiva.cli.context import EXIT_REFUSED, Env, fail, pass_env, run
from massiva.cli.output import console, emit_json, json_option, table
from massiva.config import ConfigError
from massiva.dburl import is_url, masked, without_password
from massiva.store import Store
from massiva.store.copy import Copied, CopyError, copy_database


@click.group()
def db() -> None:
    """The database: SQLite's file by default, or a shared PostgreSQL.

    Choose it with [database] in massiva.toml (path = "massiva.db", or
    url = "postgresql://massiva@db.example/massiva"), MASSIVA_DATABASE_URL, or
    --db. A PostgreSQL password never goes in massiva.toml: put it in
    PGPASSWORD, ~/.pgpass or a service file, which PostgreSQL's client reads.
    """


@db.command()
@click.option(
    "--to",
    "url",
    required=True,
    metavar="URL",
    help="The PostgreSQL database to copy into (postgresql://USER@HOST/NAME); it must be"
    " empty (a new database: massiva creates the tables).",
)
@json_option
@pass_env
@run
async def copy(env: Env, url: str, as_json: bool) -> None:
    """Copy this SQLite database into PostgreSQL, and check every table's count.

    Everything is copied in one transaction (all of it, or nothing), ids kept:
    campaigns and their pools, recipients with their states and message ids and
    what each post carried, receipts with their bodies and SHA-256, allowance
    counters, the reconciler's cursors, settlements, provisioning. Then the rows
    of each table are counted on both sides; a difference is an exit 1. The
    archive of bodies and attachments as sent stays where it is (every host
    must reach it: a shared folder). Stop massiva send, run and reconcile first;
    the SQLite file is only read.

    Exit 0 when copied and counted alike, 1 when refused (the target holds data,
    a sender is running) or the counts differ, 3 for a bad URL, 4 when
    PostgreSQL cannot be reached.

    Example:

    \b
        export PGPASSWORD=...          # or ~/.pgpass, or a service file
        massiva db copy --to postgresql://massiva@db.example/massiva

    then, in massiva.toml:

    \b
        [database]
        url = "postgresql://massiva@db.example/massiva"
    """
    config = env.config
    source = config.store_target()
    if is_url(source):
        raise ConfigError(
            f"the database to copy from is already PostgreSQL ({masked(str(source))}):"
            " name the SQLite file with --db FILE"
        )
    if not is_url(url):
        raise ConfigError(f"--to must be a postgresql:// URL, not {masked(url)!r}")
    if not Path(source).exists():
        raise ConfigError(f"{source}: no such database file to copy")
    archive = config.archive_dir()
    async with (
        await Store.open(source, archive_dir=archive) as sqlite,
        await Store.open(url, archive_dir=archive) as postgresql,
    ):
        try:
            shown_on = console()
            if as_json or not shown_on.is_terminal:
                # Off a terminal a transient bar leaves only a blank line behind.
                copied = await copy_database(sqlite, postgresql)
            else:
                with Progress(console=shown_on, transient=True) as bar:
                    task = bar.add_task("copying", total=None)

                    def shown(name: str, rows: int) -> None:
                        bar.update(task, description=f"{name}: {rows:,} rows")

                    copied = await copy_database(sqlite, postgresql, shown)
        except CopyError as exc:
            fail(f"nothing was copied: {exc}", EXIT_REFUSED, as_json=as_json)
        target = postgresql.where
    differ = [c for c in copied if c.source != c.target]
    if as_json:
        emit_json(_json(copied, target, archive))
    else:
        click.echo(f"From: {source}\nInto: {target}")
        table(
            "Rows copied, counted on both sides",
            ["table", "SQLite", "PostgreSQL", ""],
            [
                [c.table, f"{c.source:,}", f"{c.target:,}", "DIFFERS" if c in differ else "✓"]
                for c in copied
            ],
        )
    if differ:
        names = ", ".join(c.table for c in differ)
        fail(f"the counts differ in {names}: do not use the copy", EXIT_REFUSED, as_json=as_json)
    if not as_json:
        # The URL as massiva.toml takes it: without the password (the file refuses one),
        # not masked either (a literal *** would be read as the password).
        click.echo(
            "Now use it: in massiva.toml, in place of [database] path:\n\n"
            f'    [database]\n    url = "{without_password(url)}"\n'
            f'    archive = "{archive.resolve()}"'
        )
        if without_password(url) != url:
            click.echo(
                "\nKeep the password out of massiva.toml: put it in PGPASSWORD, ~/.pgpass"
                " or a service file, which PostgreSQL's client reads."
            )


def _json(copied: list[Copied], target: str, archive: Path) -> dict[str, Any]:
    return {
        "target": target,
        "archive": str(archive),
        "tables": {c.table: {"sqlite": c.source, "postgresql": c.target} for c in copied},
        "verified": all(c.source == c.target for c in copied),
    }
