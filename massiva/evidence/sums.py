"""A bundle's two indexes: ``manifest.json`` (what each file is) and ``SHA256SUMS``.

``SHA256SUMS`` is in the format of GNU ``sha256sum`` (``<hex>  <path>``, one a line), so
that ``sha256sum -c SHA256SUMS``, run in the unzipped folder, checks every file with no
massiva at hand. A bundle's paths hold no newline nor backslash (see
:func:`massiva.evidence.bundle.safe_name`), the two characters ``sha256sum`` would escape.
"""

from __future__ import annotations

import re

MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"
_LINE = re.compile(r"([0-9a-f]{64}) [ *](.+)")


def sums_line(path: str, digest: str) -> str:
    """One line of ``SHA256SUMS``, its newline included."""
    return f"{digest}  {path}\n"


def read_sums(text: str) -> tuple[dict[str, str], list[str]]:
    """What a ``SHA256SUMS`` says: path -> SHA-256, and the lines it cannot read (with
    their number, for people)."""
    found: dict[str, str] = {}
    wrong: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        match = _LINE.fullmatch(line)
        if match is None or match.group(2) in found:
            wrong.append(f"line {number}: {line[:120]!r}")
        else:
            found[match.group(2)] = match.group(1)
    return found, wrong
