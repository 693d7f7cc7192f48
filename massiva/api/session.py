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

Every call has a total deadline, every try and every wait between tries included
(connect, send and every read of the answer: a server trickling a byte at a time, or
one that accepts the connection and never answers, cannot hold it longer), and no try
is begun that could not start before it runs out. The answer has a size cap, enforced
while it streams in: what runs past either is not waited for, nor held. A run-out
deadline, like a timeout, is an unknown outcome for a change; the error says what
happened ("the vendor did not answer within 120 s"). A body past the cap, a redirect,
or a body that is not the JSON the API documents raise
:class:`~massiva.api.errors.BadAnswer` for a read and
:class:`~massiva.api.errors.OutcomeUnknown` for a change: the vendor answered, so it may
well have carried the change out (a 201 to ``POST /send`` means it did).

A request that cannot be sent at all (a base URL that is not http(s), a token or password
that no HTTP header can carry) raises :class:`~massiva.api.errors.UnsendableRequest` at
once, whatever ``repeat`` says: nothing left, and trying again cannot help. Header values
are checked here, before httpx sees them: httpcore's debug log would quote the value.

Every message built here passes through :func:`~massiva.api.errors.redact`: a lower
layer's exception may quote a header value (h11: ``Illegal header value b'...'``).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json as jsonlib
import logging
import math
import random
import time
import unicodedata
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Self, TypeVar, cast
from urllib.parse import quote

import httpx

from massiva.api.errors import (
    ApiConnectionError,
    ApiError,
    AuthenticationError,
    BadAnswer,
    InsufficientCredit,
    InvalidRequest,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    ServerError,
    UnsendableRequest,
    redact,
    vendor_text,
)
from massiva.api.models import MAX_ID, Malformed
from massiva.api.vendor_clock import VendorClock

log = logging.getLogger("massiva.api")

# Long enough for a 100 MB attachment on a slow uplink; short enough that a hung
# connection is noticed. Every request has all four phases bounded.
DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=120.0, pool=30.0)
# Small pools: httpcore's bookkeeping grows with the square of the pool (measured: at
# 100 in flight it spends most of its time on it).
DEFAULT_LIMITS = httpx.Limits(max_connections=20, max_keepalive_connections=20)
#: Seconds one call may take in all: every try, its answer and the waits between tries
#: (the per-phase timeouts above restart at every byte: alone they let a trickling
#: server hold a request for ever, and retries multiply them).
DEFAULT_DEADLINE = 120.0
#: Bytes per second a request's own body is given on top of the deadline: a 100 MB
#: attachment on a 1 Mbit/s uplink still has time to leave.
UPLOAD_RATE = 125_000
#: The largest answer read (decoded): an inbox page is a few KiB, a message with its
#: receipts' attachments a few MiB.
DEFAULT_MAX_BODY = 20 * 2**20
#: Of an error's body only its message is wanted: the rest is not read.
MAX_ERROR_BODY = 64 * 2**10
#: A Retry-After beyond this is nonsense (an allowance renews by tomorrow): unknown.
SANE_RETRY_AFTER = 7 * 86400.0
# Headers that describe the body as it came over the wire, not as it is kept (decoded).
_WIRE_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})

Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")


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
        if retry_after is not None and math.isfinite(retry_after):
            return min(max(retry_after, 0.0), self.max_retry_after)
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
    """Bearer-authenticated JSON calls to one vendor base URL.

    ``deadline`` bounds each call in all, retries and their waits included (plus one
    second per ``UPLOAD_RATE`` bytes of the request's body); ``max_body`` bounds the
    answer's body, decoded.
    """

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
        deadline: float = DEFAULT_DEADLINE,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        self._secrets = tuple(s for s in (token, *secrets) if s)
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._deadline = deadline
        self._max_body = max_body
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
        #: The vendor's clock, as the ``Date`` of its answers tells it.
        self.vendor_clock = VendorClock()

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

    async def call(
        self,
        method: str,
        path: str,
        parse: Callable[[Any], T],
        *,
        repeat: Repeat,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        json_parts: Sequence[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> T:
        """:meth:`request`, then its JSON body through ``parse``.

        A body that is not JSON, or that ``parse`` finds malformed
        (:class:`~massiva.api.models.Malformed`), raises
        :class:`~massiva.api.errors.BadAnswer` for a read and
        :class:`~massiva.api.errors.OutcomeUnknown` for a change (see :func:`unreadable`).
        """
        response = await self.request(
            method,
            path,
            repeat=repeat,
            params=params,
            json=json,
            json_parts=json_parts,
            headers=headers,
        )
        try:
            return parse(json_body(response))
        except Malformed as exc:
            raise unreadable(
                str(exc), method=method, path=path, repeat=repeat, status=response.status_code
            ) from None

    async def request(
        self,
        method: str,
        path: str,
        *,
        repeat: Repeat,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        json_parts: Sequence[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request; return the response, its body read, when its status is 2xx.

        The body is ``json``, encoded here, or ``json_parts``: a JSON body already
        encoded, whose parts are sent one after the other and never joined (a part
        that many requests share, such as an attachment, stays one object in memory).

        Raises an :class:`~massiva.api.errors.ApiError` subclass otherwise: a redirect or
        a body past ``max_body`` is :class:`~massiva.api.errors.BadAnswer` (a read) or
        :class:`~massiva.api.errors.OutcomeUnknown` (a change).
        """
        self._check_headers(method, path, headers)
        loop = asyncio.get_running_loop()
        end = loop.time() + self._deadline  # the whole call's, every try and wait in it
        upload = 0.0  # seconds the request's body adds to it
        attempt = 0
        while True:
            attempt += 1
            started = time.perf_counter()
            answer: httpx.Response | None = None
            timed_out = False  # this try's failure, if any, is a timeout
            try:
                request = self._build(method, path, params, json, json_parts, headers)
                upload = int(request.headers.get("content-length", 0)) / UPLOAD_RATE
                async with asyncio.timeout_at(end + upload):
                    answer = await self._client.send(request, stream=True)
                    response, whole = await self._read(request, answer)
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
            except (httpx.TransportError, TimeoutError) as exc:
                timed_out = isinstance(exc, TimeoutError | httpx.TimeoutException)
                if isinstance(exc, TimeoutError):  # the call's deadline ran out
                    reason = self._late(answer is not None, self._deadline + upload, attempt)
                else:
                    reason = self._no_answer(exc, answer is not None)
                if repeat is Repeat.IF_NOT_SENT:
                    raise OutcomeUnknown(
                        f"{reason}; the request may have been carried out",
                        method=method,
                        path=path,
                    ) from self._safe_cause(exc)
                failure = ApiConnectionError(reason, method=method, path=path)
                retry_after = None
            except httpx.DecodingError:  # a compressed body that does not decompress
                raise unreadable(
                    "its body cannot be decoded", method=method, path=path, repeat=repeat
                ) from None
            else:
                self.vendor_clock.saw(response.headers.get("date"))
                elapsed = (time.perf_counter() - started) * 1000
                status = response.status_code
                log.debug("%s %s -> %s in %.0f ms", method, path, status, elapsed)
                if status < 300:
                    if not whole:
                        raise unreadable(
                            f"its body is larger than {_size(self._max_body)}",
                            method=method,
                            path=path,
                            repeat=repeat,
                            status=status,
                        )
                    return response
                if status < 400:
                    raise self._redirect(method, path, response, repeat)
                failure = self._error(method, path, response, repeat)
                retryable = isinstance(failure, ServerError | RateLimited)
                if not retryable or repeat is Repeat.IF_NOT_SENT:
                    raise failure
                retry_after = failure.retry_after if isinstance(failure, RateLimited) else None
            if attempt >= self._retry.attempts:
                raise failure
            wait = self._retry.delay(attempt, retry_after)
            if loop.time() + wait >= end + upload:  # no other try could start in time
                if timed_out:  # the deadline, not the last try's timeout, is what ended it
                    late = self._late(answer is not None, self._deadline + upload, attempt)
                    raise ApiConnectionError(late, method=method, path=path)
                raise failure
            log.warning(
                "%s; retrying in %.1f s (try %d of %d)",
                failure,
                wait,
                attempt + 1,
                self._retry.attempts,
            )
            await self._sleep(wait)

    def _build(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        json: Any,
        json_parts: Sequence[bytes] | None,
        headers: Mapping[str, str] | None,
    ) -> httpx.Request:
        """The request to send, its body given as ``json`` or as ``json_parts``."""
        if json_parts is None:
            return self._client.build_request(
                method, path, params=params, json=json, headers=headers
            )
        length = sum(len(part) for part in json_parts)
        body_headers = {"Content-Type": "application/json", "Content-Length": str(length)}
        return self._client.build_request(
            method,
            path,
            params=params,
            content=_stream(json_parts),
            headers={**(headers or {}), **body_headers},
        )

    async def _read(
        self, request: httpx.Request, response: httpx.Response
    ) -> tuple[httpx.Response, bool]:
        """Read the body of ``response``, the streamed answer to ``request`` (none for a
        redirect: it is refused unread; an error's, up to ``MAX_ERROR_BODY``); True with
        the response if the whole body was read, False if it runs past the cap (the rest
        is never read)."""
        try:
            status = response.status_code
            if 300 <= status < 400:
                return response, True
            if status < 400 and _declared_size(response) <= self._max_body:
                # The usual answer: its length declared, not compressed, so what is held
                # is what it declares (h11 refuses a byte more); read as is, no copy.
                await response.aread()
                return response, True
            if status < 400:
                body, whole = await _read_body(response, self._max_body, partial=False)
            else:  # only its message is wanted: the start is enough
                body, whole = await _read_body(response, MAX_ERROR_BODY, partial=True)
        finally:
            await response.aclose()
        headers = [
            (k, v) for k, v in response.headers.multi_items() if k.lower() not in _WIRE_HEADERS
        ]
        return (
            httpx.Response(
                status,
                headers=headers,
                content=body,
                request=request,
                extensions=response.extensions,
            ),
            whole,
        )

    def _redirect(
        self, method: str, path: str, response: httpx.Response, repeat: Repeat
    ) -> ApiError:
        """A 3xx: the vendor's API never redirects, and one is never followed (it would
        carry the token elsewhere)."""
        location = response.headers.get("location", "")
        to = f" to {vendor_text(location, self._secrets, 200)}" if location else ""
        return unreadable(
            f"a redirect{to}",
            method=method,
            path=path,
            repeat=repeat,
            status=response.status_code,
        )

    def _check_headers(self, method: str, path: str, headers: Mapping[str, str] | None) -> None:
        """UnsendableRequest, naming the header and never its value, if HTTP cannot carry
        one of this request's header values."""
        fault = self._own_header_fault or (_header_fault(headers.items()) if headers else None)
        if fault is not None:
            raise UnsendableRequest(f"{fault}; nothing was sent", method=method, path=path)

    def _redact(self, text: str) -> str:
        return redact(text, self._secrets)

    def _detail(self, exc: BaseException) -> str:
        """``Type: text`` of a lower layer's exception (``Type`` when it has no text),
        secrets redacted."""
        text = str(exc)
        return self._redact(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)

    @staticmethod
    def _late(answered: bool, allowed: float, tries: int) -> str:
        """What happened when the call's deadline (``allowed`` seconds) ran out over
        ``tries`` tries; ``answered``: the last try's answer had begun (its head came)."""
        what = "the vendor's answer did not complete" if answered else "the vendor did not answer"
        return f"{what} within {_seconds(allowed)} s" + (f" ({tries} tries)" if tries > 1 else "")

    def _no_answer(self, exc: httpx.TransportError, answered: bool) -> str:
        """What happened when the connection raised ``exc`` before a whole answer came;
        ``answered``: its head had come."""
        timeout = self._client.timeout
        if isinstance(exc, httpx.ReadTimeout) and timeout.read is not None:
            if answered:
                return f"the vendor's answer stopped: nothing came for {_seconds(timeout.read)} s"
            return f"the vendor did not answer within {_seconds(timeout.read)} s"
        if isinstance(exc, httpx.WriteTimeout) and timeout.write is not None:
            return f"the vendor took none of the request for {_seconds(timeout.write)} s"
        return f"no complete answer ({self._detail(exc)})"

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
        message, code = _vendor_message(response, self._secrets)
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


def unreadable(
    reason: str, *, method: str, path: str, repeat: Repeat, status: int | None = None
) -> ApiError:
    """The error for an answer that is not what the API documents (``reason`` says what,
    quoting none of it).

    A read raises :class:`~massiva.api.errors.BadAnswer`. A change raises
    :class:`~massiva.api.errors.OutcomeUnknown`: the vendor answered, so it may well have
    carried the change out (a 201 to ``POST /send`` whose body cannot be read still says
    "created": the message is looked for among the receipts, never posted again).
    """
    if repeat is Repeat.IF_NOT_SENT:
        return OutcomeUnknown(
            f"the vendor's answer is not what its API documents ({reason});"
            " the request may have been carried out",
            method=method,
            path=path,
            status=status,
        )
    return BadAnswer(reason, method=method, path=path, status=status)


def json_body(response: httpx.Response) -> Any:
    """The response's body parsed as JSON; :class:`~massiva.api.models.Malformed` when
    it is empty, not JSON, or nested too deeply to parse."""
    if not response.content:
        raise Malformed("its body is empty")
    try:
        return jsonlib.loads(response.content)
    except RecursionError:  # deep nesting: json recurses once per level
        raise Malformed("its body is JSON nested too deeply") from None
    except ValueError:  # UnicodeDecodeError included
        raise Malformed("its body is not JSON") from None


async def _stream(parts: Sequence[bytes]) -> AsyncIterator[bytes]:
    """``parts`` one after the other, as a request body httpx streams (never joined)."""
    for part in parts:
        yield part


def _declared_size(response: httpx.Response) -> float:
    """The body's size as its headers declare it, when it is sent uncompressed; infinite
    when unknown (chunked, compressed, or a Content-Length that is no number)."""
    length = response.headers.get("content-length", "")
    if "content-encoding" in response.headers or not (length.isascii() and length.isdigit()):
        return math.inf
    return int(length)


def _seconds(value: float) -> str:
    """A number of seconds for a message: 120, 2.5."""
    return f"{round(value, 1):g}"


def _size(limit: int) -> str:
    return f"{limit / 2**20:g} MiB" if limit >= 2**20 else f"{limit} bytes"


async def _read_body(response: httpx.Response, limit: int, *, partial: bool) -> tuple[bytes, bool]:
    """The body, decoded, and True; or, when it runs past ``limit`` bytes, False with its
    first ``limit`` bytes if ``partial``, else with nothing. What lies past the limit is
    never read: memory stays bounded by the cap."""
    body = bytearray()
    # An async generator (httpx types it as an iterator): closed here, not when collected.
    stream = cast("AsyncGenerator[bytes, None]", response.aiter_bytes())
    async with contextlib.aclosing(stream) as chunks:
        async for chunk in chunks:
            if len(body) + len(chunk) > limit:
                return (bytes(body + chunk[: limit - len(body)]) if partial else b""), False
            body += chunk
    return bytes(body), True


def _vendor_message(response: httpx.Response, secrets: Iterable[str]) -> tuple[str, int | None]:
    """The vendor's explanation and error code, from a JSON or plain-text error body: one
    line, every secret redacted (in every spelling), then cut to 500 characters."""
    fallback = vendor_text(response.reason_phrase, secrets) or f"HTTP {response.status_code}"
    try:
        body = json_body(response)
    except Malformed:
        return vendor_text(response.text, secrets) or fallback, None
    if not isinstance(body, dict):
        return fallback, None
    message, code = body.get("message"), body.get("error")
    if isinstance(message, int | float) and not isinstance(message, bool):
        message = str(message)
    # Anything but text or a number is no explanation (and repr of a deep list recurses).
    text = vendor_text(message, secrets) if isinstance(message, str) else ""
    if not (isinstance(code, int) and not isinstance(code, bool) and abs(code) <= MAX_ID):
        code = None
    return text or fallback, code


def _retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds, given as a number or an HTTP date: always a finite
    number from 0 to ``SANE_RETRY_AFTER``, or None (absent, or nonsense: NaN, infinite,
    negative, beyond a week, unreadable)."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if not (0.0 <= seconds <= SANE_RETRY_AFTER):  # False for NaN, too
        return None
    return seconds
