"""One exception hierarchy for both vendor APIs.

Every error carries what a user needs to act on it (HTTP status, the vendor's numeric
error code, the vendor's message, the request line) and never a token or password:
vendor text passes through :func:`redact` before it is stored on the exception.
"""

from __future__ import annotations

from collections.abc import Iterable


def redact(text: str, secrets: Iterable[str]) -> str:
    """Return ``text`` with every non-empty secret replaced by ``***``."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
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
        where = f"{self.method} {self.path}"
        if self.status is None:
            return f"{where}: {self.message}"
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


class OutcomeUnknown(ApiError):
    """A request that changes something may have reached the vendor, but no clear answer came
    back (timeout, dropped connection, HTTP 5xx).

    Never repeat such a request blindly: for ``POST /send`` look for its receipts first.
    """
