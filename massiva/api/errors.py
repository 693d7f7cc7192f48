"""One exception hierarchy for both vendor APIs.

Every error carries what a user needs to act on it (HTTP status, the vendor's numeric
error code, the vendor's message, the request line) and never a token or password: every
text built from the vendor's answer or from a lower layer's exception passes through
:func:`redact` before it is stored on the exception.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

#: The most of a vendor's text an error keeps (cut only after every secret is redacted).
MAX_MESSAGE = 500

# How HTML escapers write the quotes: Python's html.escape, markupsafe (Jinja), PHP's
# htmlspecialchars (the vendor runs PHP), and the XML entity.
_DOUBLE_QUOTES = ('"', "&quot;", "&#34;", "&#034;", "&#x22;")
_SINGLE_QUOTES = ("'", "&#x27;", "&#39;", "&#039;", "&apos;")


def _html_spellings(secret: str) -> set[str]:
    """``secret`` as an HTML page may echo it, every quote style included."""
    base = secret.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    doubles = _DOUBLE_QUOTES if '"' in secret else _DOUBLE_QUOTES[:1]
    singles = _SINGLE_QUOTES if "'" in secret else _SINGLE_QUOTES[:1]
    return {
        base.replace('"', double).replace("'", single)
        for double, single in itertools.product(doubles, singles)
    }


def _spellings(secret: str) -> set[str]:
    """The ways a lower layer or the vendor may write ``secret`` in a message: as is,
    escaped as in a ``repr`` of the text or of its bytes (h11: ``Illegal header value
    b'pw\\r'``), as in JSON, percent-encoded, and HTML-escaped."""
    return {
        secret,
        repr(secret)[1:-1],
        repr(secret.encode("utf-8", "surrogatepass"))[2:-1],
        secret.encode("unicode_escape").decode("ascii"),
        json.dumps(secret)[1:-1],
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
        *_html_spellings(secret),
    }


def redact(text: str, secrets: Iterable[str]) -> str:
    """Return ``text`` with every non-empty secret replaced by ``***``, in every spelling
    a lower layer may use for it (escaped, JSON, percent-encoded, HTML-escaped).

    Redact the whole text before cutting it short: a cut can split a secret, and the
    half left is no longer recognised (see :func:`vendor_text`).
    """
    spellings = {spelling for s in secrets if s for spelling in _spellings(s)}
    for spelling in sorted(spellings, key=len, reverse=True):
        text = text.replace(spelling, "***")
    return text


# Control characters and Unicode line breaks, each to one space.
_ONE_LINE = str.maketrans({c: " " for c in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)})


def one_line(text: str) -> str:
    """``text`` with every control character (line breaks, tabs) made a space, one for
    one: an error is one line, whatever the vendor wrote."""
    return text.translate(_ONE_LINE)


def encodable(text: str) -> str:
    """``text`` with any lone surrogate (JSON lets a vendor write ``\\ud800``) replaced by
    ``?``: such a string cannot be stored, printed or logged as UTF-8."""
    if text.isascii():
        return text
    return text.encode("utf-8", "replace").decode("utf-8")


def vendor_text(text: str, secrets: Iterable[str], limit: int = MAX_MESSAGE) -> str:
    """What an error may keep of a text the vendor wrote: one line, every secret redacted
    in every spelling, and only then cut to ``limit`` characters."""
    secrets = tuple(secrets)
    text = encodable(text)
    # Before and after the line breaks go: a secret may hold a control character (one
    # read from a Windows file) or a space where the vendor wrote a line break.
    text = redact(one_line(redact(text, secrets)), secrets).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
    back (timeout, dropped connection, the deadline ran out, HTTP 5xx, a redirect, or a
    success whose body cannot be read: a 201 to ``POST /send`` that is not JSON or names
    no message id means the vendor created the message, so it may have gone).

    Never repeat such a request blindly: for ``POST /send`` look for its receipts first.
    """


class BadAnswer(ServerError):
    """The vendor answered a request that is safe to repeat, but not as its API documents:
    a body that is not JSON or is too large, a redirect, a page whose counts are not whole
    numbers, a message that is not an object.

    A fault on the vendor's side like a 5xx (hence a :class:`ServerError`: the command line
    exits 4). ``reason`` says what was wrong without quoting the answer (it may echo a
    secret). A request that changes something raises :class:`OutcomeUnknown` instead.
    """

    def __init__(self, reason: str, *, method: str, path: str, status: int | None = None) -> None:
        self.reason = reason
        super().__init__(
            f"the vendor's answer is not what its API documents ({reason})",
            method=method,
            path=path,
            status=status,
        )

    def _describe(self) -> str:
        # A success status says nothing (the body is what is wrong); a redirect's does.
        if self.status is None or 200 <= self.status < 300:
            return f"{self.method} {self.path}: {self.message}"
        return super()._describe()
