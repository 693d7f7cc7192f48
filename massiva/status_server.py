"""``/healthz`` and ``/metrics`` of ``massiva run``, on a loopback address only.

A deliberately small HTTP/1.1 server on :func:`asyncio.start_server`: one request per
connection, answered with ``Connection: close``. Not uvicorn: ``uvicorn.Server.serve()``
installs its own SIGINT and SIGTERM handlers, and the service's own SIGTERM handling
(finish the posts in flight, release the leases) must stay the one that runs.

The request head is read with a size limit and a timeout and parsed strictly: a request
line of exactly ``METHOD SP /path SP HTTP/1.0|1.1``, header lines of ``name: value``
(``Host`` required in HTTP/1.1). A body is never read. Answers:

- ``GET /healthz``: 200 ``{"status": "ok", ...detail}`` or 503
  ``{"status": "failing", ...detail}`` (JSON), from the ``health`` callable;
- ``GET /metrics``: 200, the Prometheus text exposition;
- ``HEAD`` of either: the same head, no body;
- another method on either path: 405 (with ``Allow: GET, HEAD``); another path: 404;
- a head too large: 431; one not sent in time: 408; one that is not HTTP/1.x: 400.

Anything else on the address is refused at start: the status endpoints are for this
machine only (they name mailboxes and campaigns); a reverse proxy in front exposes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from http import HTTPStatus

from massiva.metrics import Metrics

log = logging.getLogger("massiva.status")

#: What ``/metrics`` says it serves: the Prometheus text format 0.0.4, which
#: ``generate_latest`` writes (prometheus_client's CONTENT_TYPE_LATEST names 1.0.0 in
#: recent versions; the bytes are the same for names like ours).
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: The largest request head read (request line and headers); a scraper sends ~200 bytes.
HEAD_LIMIT = 8 * 1024
#: Seconds a client has to send its request head.
HEAD_TIMEOUT = 5.0
#: Seconds a client has to take the answer.
WRITE_TIMEOUT = 10.0
#: Seconds the rest of what a client sends is read and dropped after the answer.
LINGER = 2.0

_REQUEST_LINE = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+) (/[!-~]*) HTTP/1\.([01])")
_HEADER_LINE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+:[ \t]*[^\r\n]*")
_PATHS = ("/healthz", "/metrics")


@dataclass(frozen=True)
class Health:
    """The service's health as ``/healthz`` shows it; ``detail`` must be JSON-writable
    (anything else is written as its ``str``)."""

    ok: bool
    detail: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if "status" in self.detail:
            raise ValueError("'status' is /healthz's own key: name the detail otherwise")


@dataclass(frozen=True)
class StatusServer:
    """A running status server: where it listens."""

    host: str
    port: int

    @property
    def url(self) -> str:
        """The server's base URL (an IPv6 host in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def check_loopback(host: str) -> None:
    """Raise ValueError unless ``host`` is a loopback IP address (127.0.0.0/8 or ::1)."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(
            f"status address {host!r} is not a loopback IP address (127.0.0.1 or ::1): the "
            "status endpoints are for this machine only; put a reverse proxy in front to "
            "expose them"
        )


@contextlib.asynccontextmanager
async def serve_status(
    host: str,
    port: int,
    metrics: Metrics,
    health: Callable[[], Health],
    *,
    head_timeout: float = HEAD_TIMEOUT,
) -> AsyncIterator[StatusServer]:
    """Serve ``/healthz`` and ``/metrics`` on ``host:port`` while the block runs.

    ``port`` 0 picks a free port (``server.port`` says which). ``host`` must be a loopback
    IP address (ValueError otherwise). A client has ``head_timeout`` seconds to send its
    request head. On leaving, the listener is closed and any request still being answered
    is cut.
    """
    check_loopback(host)
    # Every connection being answered, so that leaving can cut them: from Python 3.12 on,
    # ``wait_closed`` waits for every connection, and a silent client would hold it.
    handlers: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # a connection is always handled in a task
        handlers[task] = writer
        try:
            await _handle(reader, writer, metrics, health, head_timeout)
        finally:
            del handlers[task]

    server = await asyncio.start_server(on_connection, host, port, limit=HEAD_LIMIT)
    bound = server.sockets[0].getsockname()
    status = StatusServer(host=host, port=int(bound[1]))
    log.info("status endpoints on %s (/healthz, /metrics)", status.url)
    try:
        yield status
    finally:
        server.close()
        # Aborting a connection ends its reads with end-of-file and its writes with an
        # error: each handler then finishes on its own (a cancelled one would be logged
        # as an error by asyncio's streams on Python 3.11).
        for writer in handlers.values():
            writer.transport.abort()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


async def _handle(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    metrics: Metrics,
    health: Callable[[], Health],
    head_timeout: float,
) -> None:
    try:
        try:
            async with asyncio.timeout(head_timeout):
                head = await reader.readuntil(b"\r\n\r\n")
        except TimeoutError:
            answer = _plain(HTTPStatus.REQUEST_TIMEOUT)
        except asyncio.LimitOverrunError:
            answer = _plain(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
        except asyncio.IncompleteReadError:
            return  # the client went away before asking anything
        else:
            try:
                answer = _answer(head, metrics, health)
            except Exception:
                log.exception("answering a status request failed")
                answer = _plain(HTTPStatus.INTERNAL_SERVER_ERROR)
        async with asyncio.timeout(WRITE_TIMEOUT):
            writer.write(answer)
            await writer.drain()
        # Take in what the client may still be sending (a head past the limit, a body)
        # before closing: closing over unread bytes resets the connection, and the
        # client could lose the answer.
        writer.write_eof()
        async with asyncio.timeout(LINGER):
            while await reader.read(HEAD_LIMIT):
                pass
    except (ConnectionError, TimeoutError):
        pass  # the client stopped listening: nothing to tell it
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, TimeoutError):
            async with asyncio.timeout(WRITE_TIMEOUT):
                await writer.wait_closed()


def _answer(head: bytes, metrics: Metrics, health: Callable[[], Health]) -> bytes:
    """The whole answer (head and body) to one request head."""
    request_line, *header_lines = head[:-4].split(b"\r\n")
    line = _REQUEST_LINE.fullmatch(request_line)
    if line is None or not all(_HEADER_LINE.fullmatch(h) for h in header_lines):
        return _plain(HTTPStatus.BAD_REQUEST)
    method, target, minor = line.group(1), line.group(2), line.group(3)
    with_body = method != b"HEAD"
    names = {h.split(b":", 1)[0].lower() for h in header_lines}
    if minor == b"1" and b"host" not in names:
        return _plain(HTTPStatus.BAD_REQUEST, with_body=with_body)
    path = target.split(b"?", 1)[0].decode("ascii")
    if path not in _PATHS:
        return _plain(HTTPStatus.NOT_FOUND, with_body=with_body)
    if method not in (b"GET", b"HEAD"):
        return _plain(HTTPStatus.METHOD_NOT_ALLOWED, {"Allow": "GET, HEAD"})
    if path == "/metrics":
        status, content_type, body = HTTPStatus.OK, METRICS_CONTENT_TYPE, metrics.render()
    else:
        status, body = _health(health)
        content_type = "application/json"
    return _response(status, content_type, body, with_body=with_body)


def _health(health: Callable[[], Health]) -> tuple[HTTPStatus, bytes]:
    try:
        now = health()
    except Exception:
        log.exception("the health check raised")
        now = Health(ok=False, detail={"error": "the health check raised: see the log"})
    document: dict[str, object] = {"status": "ok" if now.ok else "failing", **now.detail}
    status = HTTPStatus.OK if now.ok else HTTPStatus.SERVICE_UNAVAILABLE
    return status, json.dumps(document, default=str).encode()


def _plain(
    status: HTTPStatus, headers: dict[str, str] | None = None, *, with_body: bool = True
) -> bytes:
    body = f"{status.value} {status.phrase}\n".encode()
    return _response(
        status, "text/plain; charset=utf-8", body, with_body=with_body, headers=headers
    )


def _response(
    status: HTTPStatus,
    content_type: str,
    body: bytes,
    *,
    with_body: bool = True,
    headers: dict[str, str] | None = None,
) -> bytes:
    lines = [
        f"HTTP/1.1 {status.value} {status.phrase}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Cache-Control: no-store",
        "X-Content-Type-Options: nosniff",
        "Connection: close",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
    return head + body if with_body else head
