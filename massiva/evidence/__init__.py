"""Evidence a law office can file: a campaign's bundle, and checking one.

:func:`make_bundle` writes one zip of a campaign (or some of its recipients): for each
recipient, what was sent (subject, body, attachments, every SHA-256), every receipt as
received and a printable page in Italian, with ``manifest.json`` and ``SHA256SUMS`` over
every file (``massiva/evidence/bundle.py`` shows the layout). :func:`verify_bundle`
recomputes every hash of a bundle and names each file that differs.
"""

from __future__ import annotations

from massiva.evidence.bundle import Bundled, EvidenceError, NotInCampaign, make_bundle
from massiva.evidence.verify import BundleUnreadable, Problem, Verdict, verify_bundle

__all__ = [
    "BundleUnreadable",
    "Bundled",
    "EvidenceError",
    "NotInCampaign",
    "Problem",
    "Verdict",
    "make_bundle",
    "verify_bundle",
]
