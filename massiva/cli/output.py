"""How the command line prints: human tables (rich) by default, JSON for scripts; and
the options and the confirmation every command shares.

Data printed for people (a CSV cell, a vendor's answer) goes through :func:`printable`,
so that a terminal escape sequence in it is shown, not obeyed; tables take it as plain
text, so that ``[bold]`` in an address is shown as it is, not read as rich markup.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import date
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from massiva.api import Domain, Mailbox
from massiva.cli.context import EXIT_INPUT, EXIT_REFUSED, fail
from massiva.cli.text import json_text, printable
from massiva.provisioning.service import expires_soon
from massiva.times import rome_today, show_date

#: ``--json`` of every command: print JSON for scripts (errors too).
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
#: ``--years`` of registrations and renewals (the vendor charges for each year).
years_option = click.option(
    "--years", default=1, show_default=True, type=click.IntRange(1, 10), help="1 to 10 years."
)
#: ``--yes`` of the commands that ask first (see :func:`confirm`).
yes_option = click.option(
    "--yes",
    is_flag=True,
    help="Do it without asking (needed without a terminal: scripts, cron).",
)


#: Control characters as people should see them: C0 (but tab and newline), DEL and C1.
#: ESC starts a terminal escape sequence (colours, a hidden link, a changed title), CR
#: overwrites the line already printed, and a C1 control is ESC on some terminals.
def console() -> Console:
    """A console on the current stdout (so click's CliRunner captures it); wide when not
    on a terminal, so that a table in a pipe or a log keeps each row on one line.

    Print data only as :class:`~rich.text.Text` (see :func:`table`): a string would be
    read as markup, and ``[/bold]`` in an address would end the command. No emoji codes
    either: ``:warning:`` in a cell stays text.
    """
    width = None if sys.stdout.isatty() else 160
    return Console(file=sys.stdout, highlight=False, width=width, emoji=False)


def emit_json(value: Any) -> None:
    """Print ``value`` as JSON: stable keys, dates in ISO 8601; control characters
    escaped (``\\u001b``), so the JSON is safe on a terminal and decodes to the same data."""
    click.echo(json_text(value, indent=2))


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print a table for people: the title, headers and cells as plain text (no rich
    markup), their control characters shown by :func:`printable`."""
    grid = Table(title=_plain(title), title_justify="left")
    for column in columns:
        grid.add_column(_plain(column), overflow="fold")
    for row in rows:
        grid.add_row(*map(_plain, row))
    console().print(grid)


def _plain(text: str) -> Text:
    return Text(printable(text))


def mailbox_json(box: Mailbox, today: date) -> dict[str, Any]:
    """A mailbox for ``--json``."""
    return {
        "id": box.id,
        "address": box.address,
        "type": box.box_type,
        "state": box.state,
        "expires": box.expires.isoformat() if box.expires else None,
        "expires_soon": expires_soon(box.expires, today),
    }


def mailbox_rows(boxes: Sequence[Mailbox], today: date) -> list[list[str]]:
    """Mailboxes as table rows, flagging those that expire within 30 days."""
    rows = []
    for box in boxes:
        expiry = show_date(box.expires)
        if expires_soon(box.expires, today):
            expiry += " ⚠ renew soon"
        rows.append([box.id, box.address, box.box_type, box.state, expiry])
    return rows


MAILBOX_COLUMNS = ("id", "address", "type", "state", "expires")


def domain_json(found: Domain) -> dict[str, Any]:
    """An own domain for ``--json``."""
    return {
        "id": found.id,
        "domain": found.domain,
        "provider": found.provider,
        "state": found.state,
        "expires": found.expires.isoformat() if found.expires else None,
    }


DOMAIN_COLUMNS = ("id", "domain", "provider", "state", "expires")


def domain_rows(domains: Sequence[Domain]) -> list[list[str]]:
    """Own domains as table rows."""
    return [[d.id, d.domain, d.provider, d.state, show_date(d.expires)] for d in domains]


def print_mailbox(box: Mailbox, as_json: bool, note: str = "") -> None:
    """One mailbox: a JSON object, or a one-row table and ``note`` for people."""
    today = rome_today()
    if as_json:
        emit_json(mailbox_json(box, today))
        return
    table("Mailbox", MAILBOX_COLUMNS, mailbox_rows([box], today))
    if note:
        click.echo(note)


def print_domain(found: Domain, as_json: bool, note: str = "") -> None:
    """One own domain: a JSON object, or a one-row table and ``note`` for people."""
    if as_json:
        emit_json(domain_json(found))
        return
    table("Domain", DOMAIN_COLUMNS, domain_rows([found]))
    if note:
        click.echo(note)


def confirm(action: str, *, yes: bool, as_json: bool) -> None:
    """Go on only if the user agrees to ``action`` (a clause: "revoke mailbox X: it stops
    sending and receiving"): ``--yes``, or "y" to the question asked on a terminal.

    Without a terminal and without ``--yes`` (cron, a script, a pipe) the command refuses
    with exit 2 instead of waiting for an answer nobody can give; a "no" ends it with
    exit 1. The question goes to stderr, so that ``--json`` output stays JSON.
    """
    if yes:
        return
    if not sys.stdin.isatty():
        fail(
            f"not done: this would {action}; add --yes to confirm (there is no terminal to ask on)",
            EXIT_INPUT,
            as_json=as_json,
        )
    if not click.confirm(printable(f"This will {action}. Go on?"), err=True):
        fail("not done: you answered no", EXIT_REFUSED, as_json=as_json)
