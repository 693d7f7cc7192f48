"""Checking an evidence bundle: every file's SHA-256 recomputed against both indexes.

A bundle is whole when ``SHA256SUMS`` lists every file but itself, ``manifest.json``
every file but the two indexes, each with the SHA-256 (and, in the manifest, the size)
the file has now, and no file is listed that is not there. Anything else is a problem
named by its file. The files are read in parts; ``manifest.json`` is read whole (a
few kB a recipient).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from massiva.evidence.sums import MANIFEST, SUMS, read_sums

_CHUNK = 1 << 20


class BundleUnreadable(ValueError):
    """The file is not a zip, or its index of files cannot be read."""


@dataclass(frozen=True)
class Problem:
    """What is wrong with one file of a bundle. ``kind``: ``changed`` (its SHA-256 or
    size is not the one listed), ``missing`` (listed, not there), ``not listed`` (there,
    listed nowhere), ``damaged`` (the zip cannot give its bytes back), ``twice`` (two
    entries of one name), ``unreadable`` (an index that cannot be read)."""

    path: str
    kind: str
    detail: str


@dataclass(frozen=True)
class Verdict:
    """A bundle checked: how many files, and what is wrong (nothing: it is whole)."""

    path: Path
    files: int
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        """Whether every file is as both indexes say."""
        return not self.problems


def verify_bundle(path: Path) -> Verdict:
    """Check the bundle at ``path``. Raises :class:`BundleUnreadable` when it is no zip."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BundleUnreadable(f"{path} is not a readable zip file ({exc})") from None
    problems: list[Problem] = []
    with zf:
        entries = [info for info in zf.infolist() if not info.is_dir()]
        names = [info.filename for info in entries]
        for name in sorted({n for n in names if names.count(n) > 1}):
            problems.append(Problem(name, "twice", "the zip holds two files of this name"))
        actual: dict[str, tuple[str, int]] = {}
        damaged: set[str] = set()
        for info in entries:
            try:
                actual[info.filename] = _digest(zf, info)
            except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
                damaged.add(info.filename)
                problems.append(Problem(info.filename, "damaged", f"cannot be read: {exc}"))
        sums = _sums(zf, actual, problems)
        manifest = _manifest(zf, actual, problems)
    findings: list[_Finding] = []
    if sums is not None:
        findings += _compare(SUMS, sums, actual, {SUMS})
    if manifest is not None:
        findings += _compare(MANIFEST, manifest, actual, {SUMS, MANIFEST})
    problems += _described([f for f in findings if f.path not in damaged], actual)
    return Verdict(path, len(entries), tuple(sorted(problems, key=lambda p: (p.path, p.kind))))


class _Finding(NamedTuple):
    """What one index says wrongly of one file (``listed``: the SHA-256 it lists)."""

    path: str
    kind: str
    source: str  # the index that says it: SHA256SUMS or manifest.json
    listed: str | None


def _digest(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[str, int]:
    sha, size = hashlib.sha256(), 0
    with zf.open(info) as file:
        while chunk := file.read(_CHUNK):
            sha.update(chunk)
            size += len(chunk)
    return sha.hexdigest(), size


def _sums(
    zf: zipfile.ZipFile, actual: dict[str, tuple[str, int]], problems: list[Problem]
) -> dict[str, tuple[str, int | None]] | None:
    """What SHA256SUMS lists (path -> (SHA-256, no size)); None when it is not there or
    not readable (a problem says so)."""
    if SUMS not in actual:
        problems.append(Problem(SUMS, "missing", "the bundle's list of SHA-256 is not there"))
        return None
    try:
        text = zf.read(SUMS).decode("utf-8")
    except UnicodeDecodeError:
        problems.append(Problem(SUMS, "unreadable", "not UTF-8 text"))
        return None
    found, wrong = read_sums(text)
    problems.extend(Problem(SUMS, "unreadable", f"cannot read {line}") for line in wrong)
    return {path: (digest, None) for path, digest in found.items()}


def _manifest(
    zf: zipfile.ZipFile, actual: dict[str, tuple[str, int]], problems: list[Problem]
) -> dict[str, tuple[str, int | None]] | None:
    """The files manifest.json lists (path -> (SHA-256, size)); None when it is not
    there or not readable (a problem says so)."""
    if MANIFEST not in actual:
        problems.append(Problem(MANIFEST, "missing", "the bundle's manifest is not there"))
        return None
    try:
        data = json.loads(zf.read(MANIFEST))
        listed: list[Any] = list(data["files"])
        for recipient in data["recipients"]:
            listed += recipient["files"]
        return {str(f["path"]): (str(f["sha256"]), int(f["size"])) for f in listed}
    except (ValueError, KeyError, TypeError) as exc:
        problems.append(Problem(MANIFEST, "unreadable", f"not a manifest massiva wrote ({exc})"))
        return None


def _compare(
    index: str,
    listed: dict[str, tuple[str, int | None]],
    actual: dict[str, tuple[str, int]],
    itself: set[str],
) -> list[_Finding]:
    """Every file ``index`` lists against the zip's, and the zip's against it."""
    found: list[_Finding] = []
    for path, (digest, size) in listed.items():
        if path not in actual:
            found.append(_Finding(path, "missing", index, digest))
        elif actual[path][0] != digest or size not in (None, actual[path][1]):
            found.append(_Finding(path, "changed", index, digest))
    found += [
        _Finding(path, "not listed", index, None)
        for path in actual
        if path not in listed and path not in itself
    ]
    return found


def _described(findings: list[_Finding], actual: dict[str, tuple[str, int]]) -> list[Problem]:
    """One problem a file and kind, saying which indexes disagree with the zip."""
    grouped: dict[tuple[str, str], list[_Finding]] = {}
    for finding in findings:
        grouped.setdefault((finding.path, finding.kind), []).append(finding)
    problems = []
    for (path, kind), group in grouped.items():
        indexes = " and ".join(f.source for f in group)
        if kind == "missing":
            detail = f"listed in {indexes}, not in the zip"
        elif kind == "not listed":
            detail = f"in the zip, not in {' nor '.join(f.source for f in group)}"
        else:
            says = "; ".join(f"{f.source} says {f.listed}" for f in group)
            if len({f.listed for f in group}) == 1:
                verb = "says" if len(group) == 1 else "say"
                says = f"{indexes} {verb} {group[0].listed}"
            detail = f"its SHA-256 is {actual[path][0]}; {says}"
        problems.append(Problem(path, kind, detail))
    return problems
