"""Webhook notifications against a real HTTP receiver on loopback: what arrives, how it
is signed, when it is tried again, and that the secret reaches no log line."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest

from massiva import __version__
from massiva.webhook import MAX_RETRY_AFTER, Notifier, safe_url, sign, verify
from tests.conftest import Sleeps

SECRET = "whsec-Kp4sEcReT-77aa1e"
TOKEN_IN_QUERY = "qtok-Vb2sEcReT-0c1d"
PAYLOAD = {"campaign": "avvisi", "counts": {"delivered": 40, "failed": 2}}


@dataclass
class Received:
    """One request as the receiver read it."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A tiny HTTP/1.1 receiver: answers each request with the next scripted answer
    (the last one repeats), and keeps what it received."""

    answers: list[tuple[int, dict[str, str]]] = field(default_factory=lambda: [(200, {})])
    received: list[Received] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/massiva"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
        method, target, _ = request_line.split(" ")
        headers = {}
        for line in lines:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.received.append(Received(method, target, headers, body))
        status, extra = self.answers[min(len(self.received), len(self.answers)) - 1]
        answer = [f"HTTP/1.1 {status} X", "Content-Length: 0", "Connection: close"]
        answer += [f"{name}: {value}" for name, value in extra.items()]
        writer.write(("\r\n".join(answer) + "\r\n\r\n").encode())
        await writer.drain()
        writer.close()
        await writer.wait_closed()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    receiver.port = server.sockets[0].getsockname()[1]
    async with server:
        yield receiver


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as http:
        yield http


def notifier(
    url: str,
    client: httpx.AsyncClient,
    sleeps: Sleeps,
    *,
    secret: str | None = SECRET,
    tries: int = 5,
    timeout: float = 10.0,
) -> Notifier:
    return Notifier(url, secret, tries=tries, client=client, sleep=sleeps, timeout=timeout)


async def test_a_signed_notification_arrives_and_verifies(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    sent = await notifier(receiver.url, client, Sleeps()).notify("campaign.finished", PAYLOAD)
    assert sent is True
    [request] = receiver.received
    assert (request.method, request.target) == ("POST", "/hooks/massiva")
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == f"massiva/{__version__}"
    assert request.headers["x-massiva-event"] == "campaign.finished"
    document = json.loads(request.body)
    assert list(document) == ["event", "at", "campaign", "counts"]
    assert document["event"] == "campaign.finished"
    assert document["at"].endswith("+00:00")
    assert {k: document[k] for k in PAYLOAD} == PAYLOAD
    timestamp = request.headers["x-massiva-timestamp"]
    assert abs(int(timestamp) - time.time()) < 3600  # Unix seconds, not milliseconds
    signature = request.headers["x-massiva-signature"]
    assert signature.startswith("sha256=")
    assert verify(SECRET, timestamp, request.body, signature)
    assert not verify("another-secret", timestamp, request.body, signature)
    assert not verify(SECRET, timestamp, request.body + b" ", signature)
    assert not verify(SECRET, str(int(timestamp) + 1), request.body, signature)


async def test_verify_refuses_an_old_or_malformed_timestamp() -> None:
    body = b'{"event": "campaign.stopped"}'
    timestamp = "1773129600"
    signature = sign(SECRET, timestamp, body)
    assert verify(SECRET, timestamp, body, signature, now=1773129600 + 300)
    assert not verify(SECRET, timestamp, body, signature, now=1773129600 + 301)  # a replay
    assert verify(SECRET, timestamp, body, signature, max_age=None)
    assert not verify(SECRET, "1773129600.0", body, signature, max_age=None)
    assert not verify(SECRET, timestamp, body, "sha256=é", max_age=None)


async def test_without_a_secret_nothing_is_signed(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    hook = notifier(receiver.url, client, Sleeps(), secret=None)
    assert await hook.notify("mailbox.stopped", {"mailbox": "a@pec.it", "reason": "x"})
    [request] = receiver.received
    assert "x-massiva-signature" not in request.headers
    assert "x-massiva-timestamp" in request.headers


async def test_a_503_is_tried_again_with_backoff_until_it_is_taken(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    receiver.answers = [(503, {}), (503, {}), (204, {})]
    sleeps = Sleeps()
    assert await notifier(receiver.url, client, sleeps).notify("campaign.finished", PAYLOAD)
    assert sleeps.waits == [1.0, 2.0]
    assert len(receiver.received) == 3
    # The same notification each time, each try signed afresh.
    assert len({r.body for r in receiver.received}) == 1
    assert len({r.headers["x-massiva-delivery"] for r in receiver.received}) == 1
    for request in receiver.received:
        headers = request.headers
        assert verify(
            SECRET, headers["x-massiva-timestamp"], request.body, headers["x-massiva-signature"]
        )


async def test_a_429_waits_as_long_as_retry_after_says_within_reason(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    receiver.answers = [(429, {"Retry-After": "7"}), (429, {"Retry-After": "86400"}), (200, {})]
    sleeps = Sleeps()
    assert await notifier(receiver.url, client, sleeps).notify("campaign.finished", PAYLOAD)
    assert sleeps.waits == [7.0, MAX_RETRY_AFTER]


async def test_a_400_is_not_tried_again(
    receiver: Receiver, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.answers = [(400, {}), (200, {})]
    sleeps = Sleeps()
    with caplog.at_level(logging.WARNING, logger="massiva.webhook"):
        sent = await notifier(receiver.url, client, sleeps).notify("campaign.finished", PAYLOAD)
    assert sent is False
    assert len(receiver.received) == 1
    assert sleeps.waits == []
    assert caplog.messages == [
        f"webhook campaign.finished to {receiver.url} not delivered after 1 try: HTTP 400"
    ]


async def test_it_gives_up_after_its_tries_and_never_logs_a_secret(
    receiver: Receiver, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.answers = [(500, {})]
    url = f"http://hook:{TOKEN_IN_QUERY}@127.0.0.1:{receiver.port}/hooks/massiva?t={TOKEN_IN_QUERY}"
    sleeps = Sleeps()
    hook = notifier(url, client, sleeps, tries=3)
    with caplog.at_level(logging.DEBUG):
        sent = await hook.notify("campaign.stopped", {"campaign": "avvisi", "reason": "x"})
    assert sent is False
    assert len(receiver.received) == 3
    assert receiver.received[0].target == f"/hooks/massiva?t={TOKEN_IN_QUERY}"
    assert sleeps.waits == [1.0, 2.0]
    assert caplog.records[-1].levelno == logging.WARNING
    assert caplog.records[-1].getMessage() == (
        f"webhook campaign.stopped to {receiver.url} not delivered after 3 tries: HTTP 500"
    )
    # httpx's own line of each request too (logged at INFO: a service may well show it).
    assert f"HTTP Request: POST {receiver.url} " in caplog.text
    assert SECRET not in caplog.text
    assert TOKEN_IN_QUERY not in caplog.text
    assert SECRET not in repr(hook)
    assert TOKEN_IN_QUERY not in repr(hook)


async def test_no_connection_is_tried_again_then_given_up(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    # A port that was free a moment ago: nothing listens there.
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    sleeps = Sleeps()
    url = f"http://127.0.0.1:{port}/hook"
    with caplog.at_level(logging.WARNING, logger="massiva.webhook"):
        sent = await notifier(url, client, sleeps).notify("campaign.finished", PAYLOAD)
    assert sent is False
    assert sleeps.waits == [1.0, 2.0, 4.0, 8.0]
    assert caplog.messages == [
        f"webhook campaign.finished to {url} not delivered after 5 tries: ConnectError"
    ]


async def test_a_receiver_that_never_answers_is_a_timeout_tried_again(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    held: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # reads nothing, answers nothing

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook"
    sleeps = Sleeps()
    async with server:
        with caplog.at_level(logging.WARNING, logger="massiva.webhook"):
            hook = notifier(url, client, sleeps, tries=2, timeout=0.2)
            sent = await hook.notify("campaign.finished", PAYLOAD)
        for writer in held:
            writer.close()
    assert sent is False
    assert len(held) == 2
    assert sleeps.waits == [1.0]
    assert caplog.messages[-1].endswith("not delivered after 2 tries: no answer within 0.2 s")


async def test_without_a_client_it_opens_its_own(receiver: Receiver) -> None:
    hook = Notifier(receiver.url, SECRET)
    assert await hook.notify("campaign.finished", PAYLOAD)
    assert len(receiver.received) == 1


@pytest.mark.parametrize(
    ("url", "secret", "tries", "message"),
    [
        (
            "ftp://u:pw@hooks.example.it/x?k=1",
            None,
            5,
            "webhook URL 'ftp://hooks.example.it/x' is not an http:// or https:// URL with a host",
        ),
        (
            "https:///massiva",
            None,
            5,
            "webhook URL 'https:///massiva' is not an http:// or https:// URL with a host",
        ),
        (
            "https://hooks.example.it/x",
            "",
            5,
            "the webhook secret is empty: give one, or None to send unsigned",
        ),
        ("https://hooks.example.it/x", None, 0, "tries must be >= 1, not 0"),
    ],
)
def test_a_notifier_that_cannot_work_is_refused(
    url: str, secret: str | None, tries: int, message: str
) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Notifier(url, secret, tries=tries)


async def test_an_unknown_event_or_a_payload_taking_the_notifiers_keys_is_refused(
    receiver: Receiver,
) -> None:
    hook = Notifier(receiver.url, SECRET)
    with pytest.raises(ValueError, match=r"^unknown event 'campaign.done': expected one of "):
        await hook.notify("campaign.done", PAYLOAD)
    with pytest.raises(ValueError, match=r"^the payload may not set at: the notifier does$"):
        await hook.notify("campaign.finished", {"at": "yesterday"})
    assert receiver.received == []


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://u:pw@hooks.example.it:8443/a/b?token=x#frag",
            "https://hooks.example.it:8443/a/b",
        ),
        ("http://[::1]:9000/h?x=1", "http://[::1]:9000/h"),
        ("https://hooks.example.it", "https://hooks.example.it"),
    ],
)
def test_safe_url_keeps_no_userinfo_query_or_fragment(url: str, shown: str) -> None:
    assert safe_url(url) == shown
