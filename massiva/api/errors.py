"""One exception hierarchy for both vendor APIs.

Every error carries what a user needs to act on it (HTTP status, the vendor's numeric
error code, the vendor's message, the request line) and never a token or password: every
text built from the vendor's answer or from a lower layer's exception passes through
:func:`redact` before it is stored on the exception.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from urllib.parse import quote, quote_plus


def _spellings(secret: str) -> set[str]:
    """The ways a lower layer may write ``secret`` in a message: as is, escaped as in a
    ``repr`` of the text or of its bytes (h11: ``Illegal header value b'pw\\r'``), as in
    JSON, and percent-encoded."""
    return {
        secret,
        repr(secret)[1:-1],
        repr(secret.encode("utf-8", "surrogatepass"))[2:-1],
        secret.encode("unicode_escape").decode("ascii"),
        json.dumps(secret)[1:-1],
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
    }


def redact(text: str, secrets: Iterable[str]) -> str:
    """Return ``text`` with every non-empty secret replaced by ``***``, in every spelling
    a lower layer may use for it (escaped, JSON, percent-encoded)."""
    spellings = {spelling for s in secrets if s for spelling in _spellings(s)}
    for spelling in sorted(spellings, key=len, reverse=True):
        text = text.replace(spelling, "***")
    return text


class ApiError(Exception):
    """A vendor API call failed.

    ``status`` is the HTTP status (None when no answer came back), ``code`` the vendor's
    numeric error code (PEC API only), ``message`` the vendor's or our explanation.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str,
        path: str,
        status: int | None = None,
        code: int | None = None,
    ) -> None:
        self.message = message
        self.method = method
        self.path = path
        self.status = status
        self.code = code
        super().__init__(self._describe())

    def _describe(self) -> str:
        where = f"{self.method} {self.path}".strip()
        if self.status is None:
            return f"{where}: {self.message}" if where else self.message
        vendor = f", vendor error {self.code}" if self.code is not None else ""
        return f"{where}: HTTP {self.status}{vendor}: {self.message}"


class InvalidRequest(ApiError):
    """The vendor refused the request as invalid (HTTP 400, 406, 428): fix the input."""


class AuthenticationError(ApiError):
    """HTTP 401: the Openapi token, or the mailbox username/password, was refused."""


class InsufficientCredit(ApiError):
    """HTTP 402: the Openapi wallet cannot pay for this operation."""


class NotFound(ApiError):
    """HTTP 404: no such mailbox, domain, message or sending."""


class RateLimited(ApiError):
    """HTTP 429: slow down, or an allowance is spent; ``retry_after`` seconds if told."""

    def __init__(
        self,
        message: str,
        *,
        method: str,
        path: str,
        status: int | None = 429,
        code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, method=method, path=path, status=status, code=code)


class ServerError(ApiError):
    """HTTP 5xx on a request that is safe to repeat, after the retries ran out."""


class ApiConnectionError(ApiError):
    """No answer: the vendor could not be reached (after retries, where retrying is safe).

    For a request that changes something, this is raised only when the request
    certainly never left (the connection was never made).
    """


class UnsendableRequest(ApiConnectionError):
    """The request could not be sent at all, so nothing left and repeating cannot help:
    the base URL is not an ``http://`` or ``https://`` URL, or a header value (the token, a
    mailbox password) holds a character HTTP does not allow. Fix the configuration.
    """


class OutcomeUnknown(ApiError):
    """A request that changes something may have reached the vendor, but no clear answer came
    back (timeout, dropped connection, HTTP 5xx).

    Never repeat such a request blindly: for ``POST /send`` look for its receipts first.
    """
