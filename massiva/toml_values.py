"""How a value read from a TOML file is named in a message about it: the value as
written, and what kind of value it is ("a list", "a date-time", ...)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime, time


def shown(value: object) -> str:
    """``value`` as JSON writes it (dates as their text)."""
    return json.dumps(value, ensure_ascii=False, default=str)


def kind_of(value: object) -> str:
    """What kind of TOML value ``value`` is, with its article: "a list", "a date"."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, time):
        return "a time of day with no date"
    if isinstance(value, datetime):
        return "a date-time"
    if isinstance(value, date):
        return "a date"
    return type(value).__name__
