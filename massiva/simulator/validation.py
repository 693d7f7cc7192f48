"""Checks of client input shared by the endpoints: addresses, ids, dates, documents."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import date, datetime
from typing import Any

# The local part: RFC 5322's atext and dots, as mail systems accept it.
_EMAIL = re.compile(
    r"^[a-z0-9!#$%&'*+/=?^_`{|}~.-]+@(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,63}$"
)
_DOMAIN = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")
_DATA_URI = re.compile(r"^data:[^,]*;base64,", re.IGNORECASE)
_DDMMYYYY = re.compile(r"^\d{2}/\d{2}/\d{4}$")
#: The longest registration or renewal, in years.
MAX_YEARS = 10


def is_email(address: str) -> bool:
    """Loose syntax check of an e-mail address (case-insensitive)."""
    return len(address) <= 254 and _EMAIL.match(address.lower()) is not None


def is_domain(domain: str) -> bool:
    """Syntax check of a domain name (case-insensitive)."""
    return len(domain) <= 253 and _DOMAIN.match(domain.lower()) is not None


def is_object_id(value: str) -> bool:
    """True for a 24 lowercase hex digit id, the shape of every PEC API id."""
    return _OBJECT_ID.match(value) is not None


def parse_ddmmyyyy(value: object) -> date | None:
    """The date in a ``dd/mm/yyyy`` string, or None if it is not one."""
    if not isinstance(value, str) or not _DDMMYYYY.match(value):
        return None
    try:
        return datetime.strptime(value, "%d/%m/%Y").date()
    except ValueError:
        return None


def decode_base64(value: str) -> bytes | None:
    """Plain base64 or a ``data:<mime>;base64,`` URI (both are seen) -> bytes, or None."""
    value = "".join(_DATA_URI.sub("", value.strip(), count=1).split())
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def decode_documents(value: object) -> list[bytes] | None:
    """``documenti``: one base64 string or a list of them -> the files, or None if invalid."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        return None
    files = [decode_base64(item) for item in items]
    if any(not data for data in files):
        return None
    return [data for data in files if data]


def parse_years(value: object) -> int | None:
    """``anni`` (registrations and renewals): a whole number of years 1..10, as a JSON
    integer or a query string of ASCII digits; None when it is anything else."""
    if isinstance(value, str):
        value = int(value) if value.isascii() and value.isdigit() else None
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 1 <= value <= MAX_YEARS else None


def is_missing(value: object) -> bool:
    """Absent, null, blank or empty: the vendor's "<field> required"."""
    if isinstance(value, str):
        return not value.strip()
    return value is None or value == [] or value == {}


def parse_callback(value: object) -> dict[str, Any] | None:
    """A normalised ``callback`` object (method POST, data {} by default), or None if bad."""
    if not isinstance(value, dict):
        return None
    callback: dict[str, Any] = {}
    for key in ("url", "field"):
        if key in value:
            if not isinstance(value[key], str):
                return None
            callback[key] = value[key]
    method = value.get("method", "POST")
    if not isinstance(method, str) or method.upper() not in ("POST", "JSON"):
        return None
    callback["method"] = method.upper()
    data = value.get("data", {})
    if not isinstance(data, dict):
        return None
    callback["data"] = data
    return callback
