"""A database named by URL: whether it is PostgreSQL's, and how to show it to people.

Kept apart from :mod:`massiva.store.postgres` so that reading the configuration does not
load the PostgreSQL driver.
"""

from __future__ import annotations

import re


def is_url(target: object) -> bool:
    """Whether ``target`` names a PostgreSQL database (not a SQLite file)."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def masked(url: str) -> str:
    """``url`` with its password (in the user part, or a ``password=`` parameter)
    replaced by ``***``."""
    # Up to the last "@": a password may hold "/", "?" or "#" unencoded.
    url = re.sub(r"^(\w+://[^:/@?#]*):.*@", r"\1:***@", url)
    return re.sub(r"(password=)[^&\s]*", r"\1***", url, flags=re.IGNORECASE)


def without_password(url: str) -> str:
    """``url`` with no password at all (neither in the user part nor a ``password=``
    parameter): the URL to write in massiva.toml, the password left to PGPASSWORD,
    ~/.pgpass or a service file."""
    url = re.sub(r"^(\w+://[^:/@?#]*):[^@/?#]*@", r"\1@", url)
    url = re.sub(r"([?&])password=[^&\s]*&?", r"\1", url, flags=re.IGNORECASE)
    return url.rstrip("?&")
