"""Notifications of ``massiva run``: an HTTP POST when a campaign finishes or stops.

:class:`Notifier` posts one JSON document per event::

    {"event": "campaign.finished", "at": "2026-03-10T08:00:00+00:00", ...payload}

with the headers ``Content-Type: application/json``, ``User-Agent: massiva/<version>``,
``X-Massiva-Event``, ``X-Massiva-Delivery`` (one id per notification, the same on every
try: deliveries are at least once, a receiver drops a repeat by it),
``X-Massiva-Timestamp`` (Unix seconds of this try) and, with a secret,
``X-Massiva-Signature: sha256=<hex>``: the HMAC-SHA256, keyed with the secret, of
``f"{timestamp}.".encode() + body``. The timestamp is signed so that a captured request
cannot be replayed later: a receiver checks the signature with :func:`verify` (or the
ten lines in docs/deploy.md) and refuses a timestamp older than a few minutes.

A try that fails for a reason that may pass (no connection, a timeout, HTTP 5xx or 429)
is repeated after 1, 2, 4, 8... seconds (at most :data:`MAX_BACKOFF`), or after the
receiver's ``Retry-After`` up to :data:`MAX_RETRY_AFTER`; any other answer but 2xx (a
4xx: the receiver refuses it; a redirect: the URL is wrong) ends it at once. A
notification is never worth stopping a campaign: :meth:`Notifier.notify` never raises
for a failed delivery, it returns False and logs a warning naming the URL without its
query string or userinfo, never the secret (httpx's own log line of each request is
rewritten the same way). A token in the URL's path (some chat services put one there)
is logged as it is: the HMAC secret belongs in ``webhook_secret_env``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit, urlunsplit

import httpx

from massiva import __version__
from massiva.times import utcnow

log = logging.getLogger("massiva.webhook")

#: Seconds one try may take in all (connect, send, the answer's head), by default.
TIMEOUT = 10.0
#: The longest wait between two tries of the exponential backoff.
MAX_BACKOFF = 60.0
#: The longest ``Retry-After`` honoured (a longer one is waited this long).
MAX_RETRY_AFTER = 300.0
#: How old a signed timestamp :func:`verify` accepts by default, in seconds.
MAX_AGE = 300.0
#: The events massiva run sends.
CAMPAIGN_FINISHED = "campaign.finished"
CAMPAIGN_STOPPED = "campaign.stopped"
MAILBOX_STOPPED = "mailbox.stopped"
EVENTS: tuple[str, ...] = (CAMPAIGN_FINISHED, CAMPAIGN_STOPPED, MAILBOX_STOPPED)
_RESERVED = ("event", "at")

Sleep = Callable[[float], Awaitable[None]]


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Massiva-Signature`` value of ``body`` sent at ``timestamp`` (Unix seconds)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def verify(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    max_age: float | None = MAX_AGE,
    now: float | None = None,
) -> bool:
    """Whether a notification is genuine: ``signature`` (``X-Massiva-Signature``)
    is the HMAC of ``timestamp`` (``X-Massiva-Timestamp``) and the raw ``body`` under
    ``secret``, and the timestamp is at most ``max_age`` seconds from ``now`` (None: not
    checked). Compared in constant time."""
    if not timestamp.isascii() or not timestamp.isdigit():
        return False
    if max_age is not None:
        moment = time.time() if now is None else now
        if abs(moment - int(timestamp)) > max_age:
            return False
    expected = sign(secret, timestamp, body).encode()
    return hmac.compare_digest(expected, signature.encode("utf-8", "replace"))


def safe_url(url: str) -> str:
    """``url`` as it may be logged: no userinfo, query string or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class _HideUrls(logging.Filter):
    """Writes the webhook URLs in httpx's own log lines ("HTTP Request: POST <url>") as
    :func:`safe_url` does: their userinfo or query string may hold a token."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: dict[str, str] = {}

    def hide(self, url: str) -> None:
        shown = safe_url(url)
        if shown != url:
            self.urls[url] = shown
            self.urls[str(httpx.URL(url))] = shown

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and self.urls:
            record.args = tuple(
                self.urls.get(str(arg), arg) if isinstance(arg, httpx.URL) else arg
                for arg in record.args
            )
        return True


_HIDDEN = _HideUrls()
logging.getLogger("httpx").addFilter(_HIDDEN)


def _retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (a number or an HTTP date), or None if absent or nonsense."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


class Notifier:
    """Posts events to one webhook URL, signed when ``secret`` is set.

    ``tries`` counts every attempt, the first included. ``client`` is used as given (its
    owner closes it); without one, each notification opens and closes its own. ``sleep``
    waits between tries (tests record the waits instead). ``timeout``: seconds one try
    may take in all.
    """

    def __init__(
        self,
        url: str,
        secret: str | None,
        *,
        tries: int = 5,
        client: httpx.AsyncClient | None = None,
        sleep: Sleep = asyncio.sleep,
        timeout: float = TIMEOUT,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"webhook URL {safe_url(url)!r} is not an http:// or https:// URL with a host"
            )
        if secret == "":
            raise ValueError("the webhook secret is empty: give one, or None to send unsigned")
        if tries < 1:
            raise ValueError(f"tries must be >= 1, not {tries}")
        _HIDDEN.hide(url)
        self.url = url
        self._secret = secret
        self.tries = tries
        self._client = client
        self._sleep = sleep
        self.timeout = timeout

    def __repr__(self) -> str:
        signed = "signed" if self._secret is not None else "unsigned"
        return f"Notifier({safe_url(self.url)!r}, {signed}, tries={self.tries})"

    async def notify(self, event: str, payload: Mapping[str, object]) -> bool:
        """Post ``event`` with ``payload``; True once the receiver answered 2xx.

        Never raises for a failed delivery (False, and a warning in the log). An event not
        in EVENTS, or a payload holding ``event`` or ``at``, is a mistake of the caller:
        ValueError.
        """
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r}: expected one of {', '.join(EVENTS)}")
        taken = [key for key in _RESERVED if key in payload]
        if taken:
            raise ValueError(f"the payload may not set {', '.join(taken)}: the notifier does")
        document = {"event": event, "at": utcnow().isoformat(timespec="seconds"), **payload}
        body = json.dumps(document, ensure_ascii=False, default=str).encode()
        delivery = str(uuid.uuid4())
        if self._client is not None:
            return await self._deliver(self._client, event, delivery, body)
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            return await self._deliver(client, event, delivery, body)

    async def _deliver(
        self, client: httpx.AsyncClient, event: str, delivery: str, body: bytes
    ) -> bool:
        problem = ""
        for attempt in range(1, self.tries + 1):
            wait: float | None = min(2.0 ** (attempt - 1), MAX_BACKOFF)
            try:
                # One deadline for the whole try: httpx's timeouts restart at every byte.
                async with (
                    asyncio.timeout(self.timeout),
                    client.stream(
                        "POST",
                        self.url,
                        content=body,
                        headers=self._headers(event, delivery, body),
                        timeout=self.timeout,
                    ) as response,
                ):
                    status = response.status_code
                    if response.is_success:
                        log.info("webhook %s delivered to %s", event, safe_url(self.url))
                        return True
                    problem = f"HTTP {status}"
                    if status == 429 or status >= 500:
                        told = _retry_after(response)
                        wait = wait if told is None else told
                    else:
                        wait = None  # the receiver refuses it: trying again cannot help
            except TimeoutError:
                problem = f"no answer within {self.timeout:g} s"
            except httpx.TransportError as exc:
                # The class only: an exception's text may quote the URL with its query.
                problem = type(exc).__name__
            if wait is None or attempt == self.tries:
                break
            log.info(
                "webhook %s to %s: %s on try %d of %d; trying again in %g s",
                event,
                safe_url(self.url),
                problem,
                attempt,
                self.tries,
                wait,
            )
            await self._sleep(wait)
        log.warning(
            "webhook %s to %s not delivered after %d %s: %s",
            event,
            safe_url(self.url),
            attempt,
            "try" if attempt == 1 else "tries",
            problem,
        )
        return False

    def _headers(self, event: str, delivery: str, body: bytes) -> dict[str, str]:
        # A fresh timestamp on every try: a receiver's freshness window counts from the
        # try it receives, not from the first one.
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"massiva/{__version__}",
            "X-Massiva-Event": event,
            "X-Massiva-Delivery": delivery,
            "X-Massiva-Timestamp": timestamp,
        }
        if self._secret is not None:
            headers["X-Massiva-Signature"] = sign(self._secret, timestamp, body)
        return headers
