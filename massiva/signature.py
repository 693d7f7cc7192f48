"""A receipt's S/MIME signature: is the content intact, and who signed it.

PEC providers sign every receipt (``multipart/signed``, ``smime.p7s``). The signature is
checked with ``openssl cms`` where openssl is installed: "intact" means the signature
matches the content and the certificate it carries; whether that certificate belongs to
an accredited provider is a question for AgID's list of providers, which massiva does
not hold, so the signer's name is given for a person to judge. A certificate that has
expired since is said plainly: it was the provider's then, it is out of date now.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509

#: openssl's answer to one receipt never takes this long; a hung one is given up on.
TIMEOUT_SECONDS = 30.0
_SIGNATURE_TYPES = {"application/pkcs7-signature", "application/x-pkcs7-signature"}


@dataclass(frozen=True)
class Signature:
    """What a receipt's signature proves."""

    intact: bool | None  # None: not signed, or it cannot be checked here
    signer: str | None = None  # the signing certificate's subject
    valid_until: datetime | None = None  # UTC
    why: str = ""  # for people, when it is not intact or cannot be checked

    def expired(self, now: datetime) -> bool:
        """Whether the signing certificate is out of date at ``now``."""
        return self.valid_until is not None and self.valid_until < now


def is_signed(body: str) -> bool:
    """Whether ``body`` is an S/MIME-signed message (``multipart/signed``)."""
    message = email.message_from_string(body, policy=email.policy.compat32)
    protocol = message.get_param("protocol")
    return (
        message.get_content_type() == "multipart/signed"
        and isinstance(protocol, str)
        and protocol.lower() in _SIGNATURE_TYPES
    )


def check(body: str) -> Signature:
    """Check the signature of a receipt's body (as stored: byte-exact as received)."""
    if not is_signed(body):
        return Signature(None, why="not signed (no S/MIME signature in the body kept)")
    openssl = shutil.which("openssl")
    if openssl is None:
        return Signature(None, why="openssl is not installed here: the signature was not checked")
    with tempfile.TemporaryDirectory(prefix="massiva-signature-") as folder:
        signer_file = Path(folder) / "signer.pem"
        # S/MIME signs the canonical form of its content: lines end in CRLF.
        canonical = body.replace("\r\n", "\n").replace("\n", "\r\n")
        try:
            done = subprocess.run(  # noqa: S603 - a fixed command, the body on stdin
                [
                    openssl,
                    "cms",
                    "-verify",
                    "-noverify",  # the chain: AgID's list is not here (see the module)
                    "-signer",
                    str(signer_file),
                    "-out",
                    str(Path(folder) / "content"),
                ],
                input=canonical.encode("utf-8", "surrogateescape"),
                capture_output=True,
                timeout=TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return Signature(None, why="openssl did not answer: the signature was not checked")
        except OSError as exc:
            return Signature(None, why=f"openssl could not be run ({exc.strerror}): not checked")
        if done.returncode != 0 or not signer_file.exists():
            return Signature(False, why="the signature does not match the content")
        try:
            certificate = x509.load_pem_x509_certificate(signer_file.read_bytes())
        except ValueError:  # openssl took it; a certificate this library cannot read
            return Signature(True, why="intact; its signer's certificate cannot be read here")
    return Signature(
        True,
        signer=certificate.subject.rfc4514_string(),
        valid_until=certificate.not_valid_after_utc,
    )
