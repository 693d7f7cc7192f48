"""The archive: files kept byte-exact by their SHA-256, one copy each, beside the database.

What was sent is proof of content: a short ("breve") delivery receipt carries only the
hashes of the attachments, so the originals must be kept exactly. Each file is stored
once under its own hash (``massiva.db.archive/sha256/ab/abcdef...``), however many
recipients it went to. A file is written under a temporary name, synced to disk and
renamed: once :meth:`Archive.put_file` returns, it is there whole, a crash or not.

Everything here reads and writes files: from async code, call it in a thread.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from contextlib import suppress
from io import BytesIO
from pathlib import Path
from typing import BinaryIO

_CHUNK = 1 << 20


class ArchiveError(Exception):
    """The archive cannot keep a file (a full disk, no permission): nothing may be sent
    whose proof cannot be kept."""


class Archive:
    """Content-addressed files under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def beside(cls, database: Path) -> Archive:
        """The archive of the database at ``database``: ``<database>.archive``."""
        return cls(database.with_name(database.name + ".archive"))

    def path(self, digest: str) -> Path:
        """Where the file of SHA-256 ``digest`` (hex) is kept."""
        if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise ValueError(f"not a SHA-256 in hex: {digest!r}")
        return self.root / "sha256" / digest[:2] / digest

    def has(self, digest: str) -> bool:
        """Whether the file of ``digest`` is kept."""
        return self.path(digest).is_file()

    def put_file(self, source: BinaryIO) -> str:
        """Keep the bytes read from ``source`` (to its end); return their SHA-256."""
        folder = self.root / "sha256"
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f".{secrets.token_hex(8)}.partial"
        sha = hashlib.sha256()
        try:
            with open(temporary, "xb") as out:
                while chunk := source.read(_CHUNK):
                    sha.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            digest = sha.hexdigest()
            target = self.path(digest)
            if target.is_file():
                os.unlink(temporary)  # kept already: one copy each
                return digest
            target.parent.mkdir(exist_ok=True)
            os.replace(temporary, target)
            _sync_folder(target.parent)  # the name is on disk too, before anyone relies on it
            return digest
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(temporary)
            raise

    def put(self, data: bytes) -> str:
        """Keep ``data``; return its SHA-256."""
        digest = hashlib.sha256(data).hexdigest()
        if not self.has(digest):
            self.put_file(BytesIO(data))
        return digest

    def intact(self, digest: str) -> bool:
        """Whether the file of ``digest`` is kept and still hashes to it."""
        try:
            with open(self.path(digest), "rb") as file:
                return sha256_of(file) == digest
        except FileNotFoundError:
            return False


def sha256_of(source: BinaryIO) -> str:
    """The SHA-256 (hex) of what ``source`` holds, read in parts."""
    sha = hashlib.sha256()
    while chunk := source.read(_CHUNK):
        sha.update(chunk)
    return sha.hexdigest()


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
