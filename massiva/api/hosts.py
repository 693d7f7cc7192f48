"""The vendor's base URLs: production, and the sandbox on the ``test.`` hosts.

The product page (seed 004) writes the sending endpoints under ``pec.openapi.it``; the
vendor's OpenAPI spec puts them on ``ws.pecmassiva.com``. We follow the spec, and both
base URLs are configuration.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Hosts:
    """Base URLs of the PEC (provisioning) API and the PEC Massiva (sending) API."""

    pec: str
    sending: str


PRODUCTION = Hosts(pec="https://pec.openapi.it", sending="https://ws.pecmassiva.com")
SANDBOX = Hosts(pec="https://test.pec.openapi.it", sending="https://test.ws.pecmassiva.com")
