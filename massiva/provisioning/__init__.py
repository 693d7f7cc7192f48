"""Provisioning a certified mailbox: the applicant's data and the activation documents.

``applicant`` loads and checks the body of ``POST /pec``; ``documents`` makes the single
PDF (signed form + identity document) that ``PATCH /pec/{id}/attivazione`` wants.
"""

from massiva.provisioning.applicant import (
    ApplicantError,
    FieldError,
    load_applicant,
    validate_applicant,
)
from massiva.provisioning.documents import DocumentError, merge_pdfs, page_count, read_pdfs

__all__ = [
    "ApplicantError",
    "DocumentError",
    "FieldError",
    "load_applicant",
    "merge_pdfs",
    "page_count",
    "read_pdfs",
    "validate_applicant",
]
