"""How the command line prints: human tables (rich) by default, JSON for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import date
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from massiva.api import Domain, Mailbox
from massiva.provisioning.service import expires_soon
from massiva.times import show_date


def console() -> Console:
    """A console on the current stdout (so click's CliRunner captures it); wide when not
    on a terminal, so that a table in a pipe or a log keeps each row on one line."""
    width = None if sys.stdout.isatty() else 160
    return Console(file=sys.stdout, highlight=False, width=width)


def emit_json(value: Any) -> None:
    """Print ``value`` as JSON: stable keys, dates in ISO 8601."""
    click.echo(json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, default=str))


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print a table for people."""
    grid = Table(title=title, title_justify="left")
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in rows:
        grid.add_row(*row)
    console().print(grid)


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
