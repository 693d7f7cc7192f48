"""Text from outside (a CSV cell, a vendor's answer) made safe to print: a terminal obeys
the escape sequences in what it is shown, and JSON leaves some of them raw."""

from __future__ import annotations

import json
from typing import Any

_SHOWN = {
    code: f"\\x{code:02x}"
    for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))
    if code not in (9, 10)
}
_SHOWN[ord("\r")] = "\\r"
#: In JSON, C1 controls and DEL (which json.dumps leaves raw) as \u escapes: the same data.
_JSON_ESCAPED = {code: f"\\u{code:04x}" for code in (0x7F, *range(0x80, 0xA0))}


def printable(text: str) -> str:
    """``text`` with its control characters shown escaped (ESC as ``\\x1b``, CR as ``\\r``,
    other controls as ``\\xNN``); tabs and newlines stay. For any data printed to a
    terminal: a terminal obeys an escape sequence, so one in a CSV cell or a vendor's
    answer could recolour, hide or rewrite what massiva prints."""
    return text.translate(_SHOWN)


def json_text(value: Any, *, indent: int | None = None) -> str:
    """``value`` as JSON: stable keys, non-ASCII kept, dates as strings, control characters
    escaped (``\\u001b``), so it is safe on a terminal and decodes to the same data."""
    text = json.dumps(value, ensure_ascii=False, indent=indent, sort_keys=True, default=str)
    return text.translate(_JSON_ESCAPED)
