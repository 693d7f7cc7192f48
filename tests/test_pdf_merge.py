"""The single activation PDF: form + identity document, and every bad file refused at once."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter

from massiva.provisioning import DocumentError, merge_pdfs, page_count
from tests.pdfs import pdf


def sized_pdf(*widths: int) -> bytes:
    """A PDF with one blank page per width, so the order of pages can be told."""
    writer = PdfWriter()
    for width in widths:
        writer.add_blank_page(width=width, height=842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_merge_keeps_every_page_in_order(tmp_path: Path) -> None:
    form = tmp_path / "modulo_firmato.pdf"
    form.write_bytes(sized_pdf(501, 502))
    identity = tmp_path / "carta_identita.pdf"
    identity.write_bytes(sized_pdf(503))

    merged = merge_pdfs([form, identity])

    assert merged.startswith(b"%PDF-")
    assert page_count(merged) == page_count(form.read_bytes()) + page_count(identity.read_bytes())
    widths = [int(page.mediabox.width) for page in PdfReader(io.BytesIO(merged)).pages]
    assert widths == [501, 502, 503]


def test_every_bad_file_is_reported_at_once(tmp_path: Path) -> None:
    good = tmp_path / "modulo.pdf"
    good.write_bytes(pdf(2))
    missing = tmp_path / "missing.pdf"
    scan = tmp_path / "scan.jpg"
    scan.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF")
    empty = tmp_path / "empty.pdf"
    empty.write_bytes(b"")
    notes = tmp_path / "notes.pdf"
    notes.write_text("not a pdf", encoding="utf-8")

    with pytest.raises(DocumentError) as caught:
        merge_pdfs([good, missing, scan, empty, notes])

    assert str(caught.value) == "\n".join(
        [
            f"{missing} does not exist: check the path",
            f"{scan} is not a PDF (a JPEG image): convert it to PDF first (e.g. print to PDF)",
            f"{empty} is empty (0 bytes): scan or export it again",
            f"{notes} is not a PDF: convert it to PDF first (e.g. print to PDF)",
        ]
    )


def test_damaged_and_password_protected_pdfs_are_refused(tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.pdf"
    damaged.write_bytes(b"%PDF-1.7\ngarbage\n")
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    writer.encrypt("secret")
    locked = tmp_path / "locked.pdf"
    with locked.open("wb") as file:
        writer.write(file)

    with pytest.raises(DocumentError) as caught:
        merge_pdfs([damaged, locked, tmp_path])

    first, second, third = caught.value.problems
    # The middle is pypdf's own words, which vary between its versions.
    assert first.startswith(f"{damaged} cannot be read as a PDF (")
    assert first.endswith("): export or scan it to PDF again")
    assert second == (
        f"{locked} is password-protected: remove the password (e.g. print it to a new PDF)"
    )
    assert third == f"{tmp_path} is not a file: give the PDF inside it"


def test_nothing_to_merge() -> None:
    with pytest.raises(DocumentError) as caught:
        merge_pdfs([])
    assert str(caught.value) == (
        "no documents given; give the signed activation form and the identity document"
    )


def test_page_count_of_something_else() -> None:
    assert page_count(pdf(3)) == 3
    with pytest.raises(DocumentError, match=r"^not a readable PDF \("):
        page_count(b"hello")
