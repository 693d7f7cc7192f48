"""The simulator's certifier: the key and certificate that sign its receipts (S/MIME).

A real PEC provider signs every receipt with a certificate of its own; the simulator
makes one per process, self-signed, named as the simulator, valid for ten years from
2020, so that a receipt's signature can be checked as a real one is.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

#: The name in the simulator's certificate.
SIGNER = "PEC MASSIVA simulatore - posta-certificata@pecmassiva.com"


@functools.cache
def _certifier() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "IT"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "massiva simulator"),
            x509.NameAttribute(NameOID.COMMON_NAME, SIGNER),
            x509.NameAttribute(NameOID.EMAIL_ADDRESS, "posta-certificata@pecmassiva.com"),
        ]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime(2020, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2030, 1, 1, tzinfo=UTC))
        .sign(key, hashes.SHA256())
    )
    return key, certificate


def certificate_pem() -> bytes:
    """The simulator's certificate (PEM): what a test trusts to check a signature."""
    return _certifier()[1].public_bytes(serialization.Encoding.PEM)


def sign(content: bytes) -> bytes:
    """A detached S/MIME signature (DER) of ``content``, the signed part's bytes in
    their canonical form (CRLF line ends)."""
    key, certificate = _certifier()
    return (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(content)
        .add_signer(certificate, key, hashes.SHA256())
        .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature])
    )
