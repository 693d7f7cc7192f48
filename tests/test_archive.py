"""The archive: files kept byte-exact under their SHA-256, once each."""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

import pytest

from massiva.archive import Archive


def test_a_file_is_kept_once_under_its_hash_and_read_back_byte_exact(tmp_path: Path) -> None:
    archive = Archive.beside(tmp_path / "massiva.db")
    data = bytes(range(256)) * 5000  # over a megabyte: read and written in parts

    first = archive.put_file(io.BytesIO(data))
    second = archive.put(data)

    assert first == second == hashlib.sha256(data).hexdigest()
    assert archive.path(first) == tmp_path / "massiva.db.archive" / "sha256" / first[:2] / first
    assert archive.path(first).read_bytes() == data
    kept = [p for p in (tmp_path / "massiva.db.archive").rglob("*") if p.is_file()]
    assert kept == [archive.path(first)]  # one copy, no temporary left behind
    assert archive.intact(first)


def test_a_changed_or_missing_file_is_not_intact(tmp_path: Path) -> None:
    archive = Archive(tmp_path / "a")
    digest = archive.put(b"%PDF-1.7 informativa")
    archive.path(digest).write_bytes(b"%PDF-1.7 informativa!")

    assert not archive.intact(digest)
    assert not archive.intact("0" * 64)


def test_a_name_that_is_no_hash_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=re.escape("not a SHA-256 in hex: '../../etc/passwd'")):
        Archive(tmp_path).path("../../etc/passwd")


def test_a_failed_read_leaves_nothing(tmp_path: Path) -> None:
    class Broken(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            raise OSError("disk gone")

    archive = Archive(tmp_path / "a")
    with pytest.raises(OSError, match="disk gone"):
        archive.put_file(Broken())

    assert [p for p in (tmp_path / "a").rglob("*") if p.is_file()] == []
