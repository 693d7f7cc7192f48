"""Recipient addresses: trimmed, lower-cased and syntax-checked, with the reason when not.

The syntax is RFC 5322's dot-atom on both sides of the ``@`` (no quoted local parts, no
comments, no IP literals), ASCII only as PEC providers require, a domain with at least
one dot and a top-level domain of letters (or ``xn--``), at most 64 characters before the
``@`` and 254 in all. Valid addresses cost one precompiled ``fullmatch``; the reason is
worked out only for the invalid ones.
"""

from __future__ import annotations

import re

_ATEXT = r"a-z0-9!#$%&'*+/=?^_`{|}~\-"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
ADDRESS = re.compile(
    rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*@(?:{_LABEL}\.)+(?:[a-z]{{2,63}}|xn--[a-z0-9-]{{1,59}})"
)
_LOCAL_CHAR = re.compile(rf"[^{_ATEXT}.]")
_DOMAIN_CHAR = re.compile(r"[^a-z0-9.-]")
_LABEL_RE = re.compile(_LABEL)
_TLD = re.compile(r"[a-z]{2,63}|xn--[a-z0-9-]{1,59}")


def normalise(text: str) -> str:
    """The address as compared and sent: trimmed and lower-cased."""
    return text.strip().lower()


def is_valid(address: str) -> bool:
    """True if the normalised ``address`` is a usable address."""
    return len(address) <= 254 and ADDRESS.fullmatch(address) is not None and _short_local(address)


def _short_local(address: str) -> bool:
    return address.index("@") <= 64


def problem(address: str) -> str | None:
    """Why the normalised ``address`` is not usable, in a few words; None if it is."""
    if is_valid(address):
        return None
    if not address:
        return "empty"
    if "<" in address or ">" in address or address.startswith("mailto:"):
        return 'write only the address, without a name, "<>" or "mailto:"'
    if address.count("@") > 1 and any(sep in address for sep in ",; \t"):
        return "more than one address; put each recipient on a row of its own"
    if any(char.isspace() for char in address):
        return "contains a space"
    if "@" not in address:
        return 'no "@"'
    if address.count("@") > 1:
        return 'more than one "@"'
    local, domain = address.split("@")
    if not local:
        return 'nothing before the "@"'
    if not domain:
        return "no domain"
    for char in address:
        if not char.isascii():
            return (
                f'contains "{char}": a PEC address holds only unaccented letters, digits and . _ -'
            )
    return _local_problem(local) or _domain_problem(domain) or _length_problem(address)


def _local_problem(local: str) -> str | None:
    bad = _LOCAL_CHAR.search(local)
    if bad:
        return f'"{bad.group()}" is not allowed before the "@"'
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return 'a dot at the start or end of the part before the "@", or two dots in a row'
    if len(local) > 64:
        return f'{len(local)} characters before the "@", at most 64 are allowed'
    return None


def _domain_problem(domain: str) -> str | None:
    bad = _DOMAIN_CHAR.search(domain)
    if bad:
        return f'"{bad.group()}" is not allowed in the domain "{domain}"'
    if "." not in domain:
        return f'the domain "{domain}" has no dot (e.g. {domain}.it)'
    labels = domain.split(".")
    if "" in labels:
        return (
            f'the domain "{domain}" has an empty part (a dot at the start or end, or two in a row)'
        )
    for label in labels:
        if not _LABEL_RE.fullmatch(label):
            return f'"{label}" in the domain "{domain}" starts or ends with "-", or is too long'
    if not _TLD.fullmatch(labels[-1]):
        return f'the domain "{domain}" does not end in a top-level domain such as .it or .com'
    return None


def _length_problem(address: str) -> str | None:
    if len(address) > 254:
        return f"{len(address)} characters, at most 254 are allowed"
    return "not a valid address"
