"""The one HTTP plumbing layer under both vendor clients.

An :class:`ApiSession` owns an ``httpx.AsyncClient`` for one base URL: bearer auth,
timeouts that are always set, retries with backoff where repeating is safe, and the
mapping of failures to :mod:`massiva.api.errors`. The ``transport`` argument is the seam
that lets tests and the demo talk to the in-process simulator
(``httpx.ASGITransport``) instead of the network.

Repeating a request is safe in two cases only:

- ``Repeat.ALWAYS`` (reads): connect errors, timeouts, dropped connections, HTTP 5xx and
  429 are retried with exponential backoff, honouring ``Retry-After``;
- ``Repeat.IF_NOT_SENT`` (anything that changes state: ``POST /send``, registrations,
  renewals that are charged, revocations): retried only when the request certainly never
  left (the connection could not be made, or no pooled connection was free). Any later
  failure raises :class:`~massiva.api.errors.OutcomeUnknown`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
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
    redact,
)

log = logging.getLogger("massiva.api")

# Long enough for a 100 MB attachment on a slow uplink; short enough that a hung
# connection is noticed. Every request has all four phases bounded.
DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=120.0, pool=30.0)
# Small pools: httpcore's bookkeeping grows with the square of the pool (PERFORMANCE.md).
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
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
            limits=DEFAULT_LIMITS,
            transport=transport,
            follow_redirects=False,
        )

    @property
    def base_url(self) -> str:
        """The vendor base URL this session talks to."""
        return str(self._client.base_url)

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
        attempt = 0
        while True:
            attempt += 1
            started = time.perf_counter()
            try:
                response = await self._client.request(
                    method, path, params=params, json=json, headers=headers
                )
            except _NOT_SENT as exc:
                failure: ApiError = ApiConnectionError(
                    f"could not connect to {self.base_url} ({type(exc).__name__}: {exc})",
                    method=method,
                    path=path,
                )
                retry_after = None
            except httpx.TransportError as exc:
                reason = f"no complete answer ({type(exc).__name__}: {exc})"
                if repeat is Repeat.IF_NOT_SENT:
                    raise OutcomeUnknown(
                        f"{reason}; the request may have been carried out",
                        method=method,
                        path=path,
                    ) from exc
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
