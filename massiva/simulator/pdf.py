"""Tiny real PDFs for the vendor's forms, and the check of uploaded ones."""

from __future__ import annotations

import io
import warnings

from pypdf import PdfReader


def _escape(text: str) -> bytes:
    # Standard 14 fonts use WinAnsi: Latin-1 covers Italian; anything else becomes '?'.
    raw = text.encode("latin-1", "replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def make_pdf(title: str, lines: list[str]) -> bytes:
    """A valid one-page A4 PDF showing ``title`` and ``lines`` in Helvetica."""
    text = [b"BT /F1 16 Tf 56 780 Td (" + _escape(title) + b") Tj ET"]
    for row, line in enumerate(lines):
        y = 740 - 20 * row
        text.append(b"BT /F1 11 Tf 56 %d Td (" % y + _escape(line) + b") Tj ET")
    content = b"\n".join(text)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def pdf_pages(data: bytes) -> int | None:
    """The number of pages of ``data``, or None if it is not a readable PDF."""
    if not data.startswith(b"%PDF"):
        return None
    try:
        with warnings.catch_warnings():
            # pypdf warns about repairable damage; a client's upload is not our test run.
            warnings.simplefilter("ignore")
            return len(PdfReader(io.BytesIO(data)).pages)
    except Exception:  # pypdf raises many exception types on garbage: all mean "not a PDF"
        return None
