"""The one PDF the vendor wants to activate a box: the signed form + the identity document.

For PECMASSIVA and DOMICILIODIGITALE boxes ``PATCH /pec/{id}/attivazione`` takes a single
PDF. :func:`merge_pdfs` checks every input first and refuses them all at once, so a user
fixes every file in one go.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from pypdf import PdfReader, PdfWriter

#: Magic numbers of the images people most often pass instead of a PDF.
_IMAGES = {b"\xff\xd8\xff": "a JPEG image", b"\x89PNG": "a PNG image"}


class DocumentError(ValueError):
    """Some documents cannot be used; ``problems`` names each file and its fix."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def merge_pdfs(paths: Sequence[Path]) -> bytes:
    """Merge the PDF files at ``paths``, in order, into one PDF and return its bytes.

    Raises :class:`DocumentError` listing every file that is missing, empty, not a PDF,
    unreadable or password-protected.
    """
    writer = PdfWriter()
    for reader in _readers(paths):
        writer.append(reader)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def read_pdfs(paths: Sequence[Path]) -> list[bytes]:
    """The bytes of each PDF file at ``paths``, after the same checks as :func:`merge_pdfs`."""
    _readers(paths)
    return [path.read_bytes() for path in paths]


def _readers(paths: Sequence[Path]) -> list[PdfReader]:
    if not paths:
        raise DocumentError(
            ["no documents given; give the signed activation form and the identity document"]
        )
    readers: list[PdfReader] = []
    problems: list[str] = []
    for path in paths:
        try:
            readers.append(_open(path))
        except DocumentError as exc:
            problems += exc.problems
    if problems:
        raise DocumentError(problems)
    return readers


def page_count(data: bytes) -> int:
    """The number of pages of the PDF ``data``; :class:`DocumentError` if it is not one."""
    try:
        return len(PdfReader(io.BytesIO(data)).pages)
    except Exception as exc:  # pypdf raises many types on damaged input
        raise DocumentError([f"not a readable PDF ({exc})"]) from None


def _open(path: Path) -> PdfReader:
    """A reader of the PDF at ``path``, or :class:`DocumentError` saying how to fix it."""
    if not path.exists():
        raise DocumentError([f"{path} does not exist: check the path"])
    if not path.is_file():
        raise DocumentError([f"{path} is not a file: give the PDF inside it"])
    with path.open("rb") as file:
        head = file.read(5)
    if not head:
        raise DocumentError([f"{path} is empty (0 bytes): scan or export it again"])
    if head != b"%PDF-":
        kind = next((f" ({name})" for magic, name in _IMAGES.items() if head.startswith(magic)), "")
        raise DocumentError(
            [f"{path} is not a PDF{kind}: convert it to PDF first (e.g. print to PDF)"]
        )
    try:
        reader = PdfReader(path)
        encrypted = reader.is_encrypted
        pages = 0 if encrypted else len(reader.pages)
    except Exception as exc:  # pypdf raises many types on damaged input
        raise DocumentError(
            [f"{path} cannot be read as a PDF ({exc}): export or scan it to PDF again"]
        ) from None
    if encrypted:
        raise DocumentError(
            [f"{path} is password-protected: remove the password (e.g. print it to a new PDF)"]
        )
    if pages == 0:
        raise DocumentError([f"{path} has no pages: export or scan it to PDF again"])
    return reader
