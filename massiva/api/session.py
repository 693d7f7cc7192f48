"""The one HTTP plumbing layer under both vendor clients.

An :class:`ApiSession` owns an ``httpx.AsyncClient`` for one base URL: bearer auth,
timeouts that are always set, retries with backoff where repeating is safe, and the
mapping of failures to :mod:`massiva.api.errors`. The ``transport`` argument is the seam
that lets tests and the demo talk to the in-process simulator
(``httpx.ASGITransport``) instead of the network.

Repeating a request is safe in two cases only:

- ``Repeat.ALWAYS`` (reads): connect errors, timeouts, dropped connections, HTTP 5xx and
  429 are retried with exponential backoff, honouring ``Retry-After``;
- ``Repeat.IF_NOT_SENT`` (anything that changes state or is charged: ``POST /send``,
  registrations, renewals, the domain check, revocations): retried only when the request
  certainly never left (the connection could not be made, or no pooled connection was
  free). Any later failure raises :class:`~massiva.api.errors.OutcomeUnknown`.

A request that cannot be sent at all (a base URL that is not http(s), a token or password
that no HTTP header can carry) raises :class:`~massiva.api.errors.UnsendableRequest` at
once, whatever ``repeat`` says: nothing left, and trying again cannot help. Header values
are checked here, before httpx sees them: httpcore's debug log would quote the value.

Every message built here passes through :func:`~massiva.api.errors.redact`: a lower
layer's exception may quote a header value (h11: ``Illegal header value b'...'``).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
import unicodedata
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx

from massiva.api.errors import (
    ApiConnectionError,
    ApiError,
    AuthenticationError,
    InsufficientCredit,
    InvalidRequest,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    ServerError,
    UnsendableRequest,
    redact,
)

log = logging.getLogger("massiva.api")

# Long enough for a 100 MB attachment on a slow uplink; short enough that a hung
# connection is noticed. Every request has all four phases bounded.
DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=120.0, pool=30.0)
# Small pools: httpcore's bookkeeping grows with the square of the pool (measured: at
# 100 in flight it spends most of its time on it).
DEFAULT_LIMITS = httpx.Limits(max_connections=20, max_keepalive_connections=20)

Sleep = Callable[[float], Awaitable[None]]


def segment(value: str | int) -> str:
    """``value`` quoted as one URL path segment (an id or address can hold no ``/``)."""
    return quote(str(value), safe="@+")


class Repeat(enum.Enum):
    """When a failed request may be sent again (see the module docstring)."""

    ALWAYS = "always"
    IF_NOT_SENT = "if-not-sent"


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a request is repeated where that is safe."""

    attempts: int = 5
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 300.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before try ``attempt + 1`` (``attempt`` counts from 1)."""
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        base = min(self.backoff * 2.0 ** (attempt - 1), self.max_backoff)
        return base * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not crypto


# Errors raised before any byte of the request can have reached the server.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Errors raised while building or checking the request, before any connection: sending
# it again would fail the same way.
_UNSENDABLE = (
    httpx.UnsupportedProtocol,
    httpx.InvalidURL,
    httpx.LocalProtocolError,
    UnicodeEncodeError,
)
# What the value of a header is, for the message when it cannot be sent (never the value).
_HEADER_ROLES = {
    "authorization": "the Openapi token",
    "x-password": "the mailbox password",
    "x-username": "the mailbox username",
}


def _header_problem(value: str) -> str | None:
    """Why HTTP cannot carry ``value`` as a header value (None if it can)."""
    if value.isascii() and value.isprintable() and value == value.strip(" "):
        return None  # the usual case, decided in C: this runs for every request
    if any(unicodedata.category(c) == "Cc" and c != "\t" for c in value):
        return "a control character (read from a file with Windows line endings?)"
    if value != value.strip(" \t"):
        return "a space at either end"
    if not value.isascii():
        return "a character outside ASCII"
    return None


def _header_fault(headers: Iterable[tuple[str, str]]) -> str | None:
    """What is wrong with the first header whose value HTTP cannot carry, naming the
    header and never its value (None if all can be sent)."""
    for name, value in headers:
        problem = _header_problem(value)
        if problem is not None:
            role = _HEADER_ROLES.get(name.lower())
            return f"invalid header value: {name}{f' ({role})' if role else ''} holds {problem}"
    return None


class ApiSession:
    """Bearer-authenticated JSON calls to one vendor base URL."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        secrets: Iterable[str] = (),
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._secrets = tuple(s for s in (token, *secrets) if s)
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        default_headers = {"Accept": "application/json"}
        if token:  # none rather than "Bearer ", which is not a valid header value
            default_headers["Authorization"] = f"Bearer {token}"
        try:
            self._client = httpx.AsyncClient(
                base_url=base_url,
                headers=default_headers,
                timeout=timeout,
                limits=DEFAULT_LIMITS,
                transport=transport,
                follow_redirects=False,
            )
        except (httpx.InvalidURL, UnicodeEncodeError) as exc:
            raise UnsendableRequest(
                self._unsendable(exc, base_url), method="", path=""
            ) from self._safe_cause(exc)
        # The session's own headers never change: checked once, reported at every request.
        self._own_header_fault = _header_fault(self._client.headers.items())
        self._base_url = str(self._client.base_url)

    @property
    def base_url(self) -> str:
        """The vendor base URL this session talks to."""
        return self._base_url

    def add_secret(self, secret: str) -> None:
        """Also redact ``secret`` (a mailbox password) from every error message."""
        if secret:
            self._secrets = (*self._secrets, secret)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        repeat: Repeat,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request; return the response when its status is below 400.

        Raises an :class:`~massiva.api.errors.ApiError` subclass otherwise.
        """
        self._check_headers(method, path, headers)
        attempt = 0
        while True:
            attempt += 1
            started = time.perf_counter()
            try:
                response = await self._client.request(
                    method, path, params=params, json=json, headers=headers
                )
            except _UNSENDABLE as exc:
                raise UnsendableRequest(
                    self._unsendable(exc, self.base_url), method=method, path=path
                ) from self._safe_cause(exc)
            except _NOT_SENT as exc:
                failure: ApiError = ApiConnectionError(
                    f"could not connect to {self._redact(self.base_url)} ({self._detail(exc)})",
                    method=method,
                    path=path,
                )
                retry_after = None
            except httpx.TransportError as exc:
                reason = f"no complete answer ({self._detail(exc)})"
                if repeat is Repeat.IF_NOT_SENT:
                    raise OutcomeUnknown(
                        f"{reason}; the request may have been carried out",
                        method=method,
                        path=path,
                    ) from self._safe_cause(exc)
                failure = ApiConnectionError(reason, method=method, path=path)
                retry_after = None
            else:
                elapsed = (time.perf_counter() - started) * 1000
                log.debug("%s %s -> %s in %.0f ms", method, path, response.status_code, elapsed)
                if response.status_code < 400:
                    return response
                failure = self._error(method, path, response, repeat)
                retryable = isinstance(failure, ServerError | RateLimited)
                if not retryable or repeat is Repeat.IF_NOT_SENT:
                    raise failure
                retry_after = failure.retry_after if isinstance(failure, RateLimited) else None
            if attempt >= self._retry.attempts:
                raise failure
            wait = self._retry.delay(attempt, retry_after)
            log.warning(
                "%s; retrying in %.1f s (try %d of %d)",
                failure,
                wait,
                attempt + 1,
                self._retry.attempts,
            )
            await self._sleep(wait)

    def _check_headers(self, method: str, path: str, headers: Mapping[str, str] | None) -> None:
        """UnsendableRequest, naming the header and never its value, if HTTP cannot carry
        one of this request's header values."""
        fault = self._own_header_fault or (_header_fault(headers.items()) if headers else None)
        if fault is not None:
            raise UnsendableRequest(f"{fault}; nothing was sent", method=method, path=path)

    def _redact(self, text: str) -> str:
        return redact(text, self._secrets)

    def _detail(self, exc: BaseException) -> str:
        """``Type: text`` of a lower layer's exception, secrets redacted."""
        return self._redact(f"{type(exc).__name__}: {exc}")

    def _safe_cause(self, exc: BaseException) -> BaseException | None:
        """``exc`` to chain to our error, or None when its chain quotes a secret (a
        traceback prints every exception of the chain)."""
        seen: BaseException | None = exc
        visited: set[int] = set()
        while seen is not None and id(seen) not in visited:
            visited.add(id(seen))
            text = str(seen)
            if self._redact(text) != text:
                return None
            seen = seen.__cause__ or seen.__context__
        return exc

    def _unsendable(self, exc: BaseException, url: str) -> str:
        """Why a request could not be sent, and what to fix."""
        if isinstance(exc, UnicodeEncodeError):
            # Its text quotes the character: a piece of the secret, so only say where.
            detail = f"UnicodeEncodeError: {exc.encoding} cannot encode a character"
            what = "a value HTTP cannot carry (a token or password with a character outside ASCII?)"
        elif isinstance(exc, httpx.LocalProtocolError):
            detail = self._detail(exc)
            what = (
                "invalid header value (a token or password with a control character,"
                " or a space at either end?)"
            )
        else:
            detail = self._detail(exc)
            what = f"invalid URL {self._redact(url)!r} (it must start with http:// or https://)"
        return f"{what}; nothing was sent ({detail})"

    def _error(self, method: str, path: str, response: httpx.Response, repeat: Repeat) -> ApiError:
        status = response.status_code
        message, code = _vendor_message(response)
        message = redact(message, self._secrets)
        kw: dict[str, Any] = {"method": method, "path": path, "status": status, "code": code}
        if status >= 500:
            if repeat is Repeat.IF_NOT_SENT:
                return OutcomeUnknown(f"{message} (the request may have been carried out)", **kw)
            return ServerError(message, **kw)
        if status == 429:
            return RateLimited(message, retry_after=_retry_after(response), **kw)
        cls = {401: AuthenticationError, 402: InsufficientCredit, 404: NotFound}.get(status)
        if cls is None:
            cls = InvalidRequest if status in (400, 406, 409, 422, 428) else ApiError
        return cls(message, **kw)


def _vendor_message(response: httpx.Response) -> tuple[str, int | None]:
    """The vendor's explanation and error code, from a JSON or plain-text error body."""
    fallback = response.reason_phrase or f"HTTP {response.status_code}"
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return (text[:500] or fallback), None
    if not isinstance(body, dict):
        return fallback, None
    message = body.get("message")
    code = body.get("error")
    return (
        str(message) if message else fallback,
        code if isinstance(code, int) and not isinstance(code, bool) else None,
    )


def _retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds, whether given as a number or an HTTP date."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
