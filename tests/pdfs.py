"""Real PDF files for tests, made with pypdf."""

from __future__ import annotations

import io

from pypdf import PdfWriter


def pdf(pages: int = 1) -> bytes:
    """A valid PDF of ``pages`` blank A4 pages."""
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=595, height=842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
