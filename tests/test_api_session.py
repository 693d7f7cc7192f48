"""The HTTP plumbing: retries where repeating is safe, never where it is not.

Pacing, timeouts and dropped connections depend on a real socket, so those tests run the
simulator with uvicorn on loopback.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import traceback
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
from starlette.applications import Starlette

from massiva.api import (
    ApiConnectionError,
    ApiError,
    ApiSession,
    BadAnswer,
    OutcomeUnknown,
    PecMassivaClient,
    RateLimited,
    Repeat,
    RetryPolicy,
    ServerError,
    UnsendableRequest,
)
from massiva.simulator import Fault, Simulator, running_server
from tests.conftest import BASE_URL, MAILBOX, PASSWORD, TOKEN, Sleeps
from tests.contract import ContractTransport

RECIPIENT = "mario.rossi@legalmail.it"


def calls(simulator: Simulator, method: str, path: str) -> int:
    """How many requests the simulator received on ``method path``."""
    return sum(1 for r in simulator.requests if (r.method, r.path) == (method, path))


@pytest.fixture
def server(app: Starlette) -> Iterator[str]:
    """The simulator on a real loopback socket; yields its base URL."""
    with running_server(app) as base_url:
        yield base_url


@asynccontextmanager
async def socket_box(
    base_url: str, sleeps: Sleeps, read_timeout: float = 5.0
) -> AsyncIterator[PecMassivaClient]:
    """The test mailbox's client over a real socket."""
    async with ApiSession(
        base_url,
        TOKEN,
        timeout=httpx.Timeout(5.0, read=read_timeout),
        retry=RetryPolicy(attempts=3),
        sleep=sleeps,
    ) as session:
        yield PecMassivaClient(session, MAILBOX, PASSWORD)


async def test_reads_are_retried_on_server_errors(
    box: PecMassivaClient, simulator: Simulator, contract: ContractTransport, sleeps: Sleeps
) -> None:
    contract.undocumented.add(503)
    simulator.add_fault(Fault(path="/inbox", method="GET", kind="status", status=503, times=2))

    page = await box.inbox()

    assert page.page == 1
    assert calls(simulator, "GET", "/inbox") == 3
    assert len(sleeps.waits) == 2
    assert 0.25 <= sleeps.waits[0] <= 0.5 <= sleeps.waits[1] <= 1.0  # backoff doubles, jittered


async def test_reads_honour_retry_after(
    box: PecMassivaClient, simulator: Simulator, sleeps: Sleeps
) -> None:
    simulator.settings.fault_retry_after = 7
    simulator.add_fault(Fault(path="/inbox", method="GET", kind="rate_limit", times=1))

    await box.inbox()

    assert sleeps.waits == [7.0]


async def test_reads_give_up_after_the_last_attempt(
    box: PecMassivaClient, simulator: Simulator, contract: ContractTransport
) -> None:
    contract.undocumented.add(502)
    simulator.add_fault(Fault(path="/inbox", method="GET", kind="status", status=502, times=9))

    with pytest.raises(ServerError) as raised:
        await box.inbox()

    assert raised.value.status == 502
    assert calls(simulator, "GET", "/inbox") == 3


async def test_send_is_not_repeated_after_a_server_error(
    box: PecMassivaClient, simulator: Simulator, sleeps: Sleeps
) -> None:
    simulator.add_fault(Fault(path="/send", method="POST", kind="status", status=500, times=1))

    with pytest.raises(OutcomeUnknown) as raised:
        await box.send(RECIPIENT, "Oggetto", "Corpo")

    assert raised.value.status == 500
    assert "may have been carried out" in str(raised.value)
    assert calls(simulator, "POST", "/send") == 1
    assert sleeps.waits == []


async def test_send_refused_for_pace_says_when_to_retry(
    box: PecMassivaClient, simulator: Simulator, sleeps: Sleeps
) -> None:
    simulator.settings.send_rate = 1.0
    await box.send(RECIPIENT, "Primo", "Corpo")

    with pytest.raises(RateLimited) as raised:
        await box.send(RECIPIENT, "Secondo", "Corpo")

    assert raised.value.retry_after == 1.0
    assert simulator.post_counts() == {RECIPIENT: 1}
    assert sleeps.waits == []


class FailsToConnect(httpx.AsyncBaseTransport):
    """A network that refuses the first ``failures`` connections."""

    def __init__(self, inner: httpx.AsyncBaseTransport, failures: int) -> None:
        self.inner = inner
        self.failures = failures

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.failures:
            self.failures -= 1
            raise httpx.ConnectError("connection refused", request=request)
        return await self.inner.handle_async_request(request)


async def test_send_is_repeated_when_it_never_left(
    contract: ContractTransport, simulator: Simulator, sleeps: Sleeps
) -> None:
    async with ApiSession(
        "http://simulator.test", TOKEN, transport=FailsToConnect(contract, 1), sleep=sleeps
    ) as session:
        result = await PecMassivaClient(session, MAILBOX, PASSWORD).send(RECIPIENT, "O", "C")

    assert result.sent == 1
    assert simulator.post_counts() == {RECIPIENT: 1}
    assert len(sleeps.waits) == 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_unreachable_vendor_is_a_connection_error(sleeps: Sleeps) -> None:
    async with socket_box(f"http://127.0.0.1:{free_port()}", sleeps) as box:
        with pytest.raises(ApiConnectionError) as raised:
            await box.send(RECIPIENT, "Oggetto", "Corpo")

    assert "could not connect" in str(raised.value)
    assert len(sleeps.waits) == 2  # three attempts


async def test_dropped_connection_after_the_send_is_an_unknown_outcome(
    server: str, simulator: Simulator, sleeps: Sleeps
) -> None:
    simulator.add_fault(Fault(path="/send", method="POST", kind="drop_after_record"))
    async with socket_box(server, sleeps) as box:
        with pytest.raises(OutcomeUnknown):
            await box.send(RECIPIENT, "Oggetto", "Corpo")

    assert simulator.post_counts() == {RECIPIENT: 1}
    assert calls(simulator, "POST", "/send") == 1


async def test_timeouts_make_a_send_unknown_and_a_read_retried(
    server: str, simulator: Simulator, sleeps: Sleeps
) -> None:
    simulator.add_fault(Fault(path="/send", method="POST", kind="slow", delay=0.6))
    simulator.add_fault(Fault(path="/inbox", method="GET", kind="slow", delay=0.6))
    async with socket_box(server, sleeps, read_timeout=0.2) as box:
        with pytest.raises(OutcomeUnknown) as raised:
            await box.send(RECIPIENT, "Oggetto", "Corpo")
        page = await box.inbox()

    assert str(raised.value) == (
        "POST /send: the vendor did not answer within 0.2 s; the request may have been carried out"
    )
    assert page.page == 1
    # The vendor carried the send out after the client gave up: hence "unknown".
    for _ in range(60):
        if simulator.post_counts():
            break
        await asyncio.sleep(0.05)
    assert simulator.post_counts() == {RECIPIENT: 1}
    assert calls(simulator, "POST", "/send") == 1
    assert calls(simulator, "GET", "/inbox") == 2


@pytest.mark.parametrize(
    ("base_url", "detail"),
    [
        ("htps://simulator.test", "unsupported protocol 'htps://'"),
        ("127.0.0.1:8080", "missing an 'http://' or 'https://' protocol"),
    ],
    ids=["htps", "no-scheme"],
)
async def test_a_mistyped_url_is_never_sent_nor_retried(
    sleeps: Sleeps, base_url: str, detail: str
) -> None:
    async with ApiSession(base_url, TOKEN, sleep=sleeps) as session:
        box = PecMassivaClient(session, MAILBOX, PASSWORD)
        with pytest.raises(UnsendableRequest) as send:
            await box.send(RECIPIENT, "Oggetto", "Corpo")
        with pytest.raises(UnsendableRequest) as read:
            await box.inbox()

    for raised in (send, read):
        assert raised.value.message.startswith("invalid URL ")
        assert "nothing was sent" in raised.value.message and detail in raised.value.message
    assert sleeps.waits == []


def test_a_malformed_url_is_refused_when_the_session_is_made() -> None:
    with pytest.raises(UnsendableRequest) as raised:
        ApiSession("http://[::1", TOKEN)
    assert str(raised.value).startswith("invalid URL 'http://[::1'")


CONTROL = "a control character (read from a file with Windows line endings?)"


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        (PASSWORD + "\r", f"x-password (the mailbox password) holds {CONTROL}"),
        (PASSWORD + "\n", f"x-password (the mailbox password) holds {CONTROL}"),
        (" " + PASSWORD, "x-password (the mailbox password) holds a space at either end"),
        (PASSWORD + "è", "x-password (the mailbox password) holds a character outside ASCII"),
    ],
    ids=["cr", "lf", "leading-space", "non-ascii"],
)
async def test_a_password_no_header_can_carry_is_never_sent(
    contract: ContractTransport, simulator: Simulator, sleeps: Sleeps, password: str, problem: str
) -> None:
    async with ApiSession(BASE_URL, TOKEN, transport=contract, sleep=sleeps) as session:
        with pytest.raises(UnsendableRequest) as raised:
            await PecMassivaClient(session, MAILBOX, password).quota()

    assert raised.value.message == f"invalid header value: {problem}; nothing was sent"
    assert simulator.requests == [] and sleeps.waits == []


class Fails(httpx.AsyncBaseTransport):
    """A transport that raises ``error`` on every request."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError(f"refused for {PASSWORD!r}"),  # retried, then given up
        httpx.RemoteProtocolError(f"bad answer to {PASSWORD.encode()!r}"),  # a send: unknown
        httpx.ReadError(f"reset after Bearer {TOKEN}"),
        httpx.LocalProtocolError(f"Illegal header value {(PASSWORD + chr(0)).encode()!r}"),
    ],
    ids=lambda error: type(error).__name__,
)
async def test_transport_errors_are_redacted(sleeps: Sleeps, error: Exception) -> None:
    async with ApiSession(BASE_URL, TOKEN, transport=Fails(error), sleep=sleeps) as session:
        with pytest.raises(ApiError) as raised:
            await PecMassivaClient(session, MAILBOX, PASSWORD).send(RECIPIENT, "O", "C")

    shown = [str(raised.value), *traceback.format_exception(raised.value)]
    assert "***" in str(raised.value)
    for text in shown:
        assert PASSWORD not in text and TOKEN not in text


class Records(httpx.AsyncBaseTransport):
    """Answers 200 to every request and keeps the URLs it was asked for."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(str(request.url))
        return httpx.Response(200, json={})


@pytest.mark.parametrize("base_url", ["http://sim", "http://sim/api/v1", "http://sim/api/v1/"])
async def test_requests_reach_the_url_plain_httpx_would_build(base_url: str) -> None:
    # The URL must be the one httpx builds from the base URL and the path: a path
    # quoted, relative, absolute or with a query reaches the vendor as written.
    paths = ["/send", "/send/ab%20c", "/inbox/12", "/quota/a@b+c", "inbox", "/pec?skip=0"]
    paths += ["http://elsewhere.test/modulo.pdf", "/send", "/inbox/12"]  # the last: again
    transport = Records()
    async with (
        ApiSession(base_url, TOKEN, transport=transport) as session,
        httpx.AsyncClient(base_url=base_url) as plain,
    ):
        for path in paths:
            await session.request("GET", path, repeat=Repeat.ALWAYS)
        await session.request("GET", "/inbox", repeat=Repeat.ALWAYS, params={"page": 2})
        expected = [str(plain.build_request("GET", path).url) for path in paths]
        expected.append(str(plain.build_request("GET", "/inbox", params={"page": 2}).url))
    assert transport.urls == expected
    assert transport.urls[0] == base_url.rstrip("/") + "/send"


@pytest.mark.parametrize("retry_after", [float("inf"), float("nan"), -1.0, 1e308, None])
def test_a_retry_wait_is_always_finite_and_bounded(retry_after: float | None) -> None:
    policy = RetryPolicy()
    for attempt in (1, 5, 60):
        wait = policy.delay(attempt, retry_after)
        assert 0 <= wait <= policy.max_retry_after


class Compressed(httpx.AsyncBaseTransport):
    """Answers ``body`` as a gzip-encoded 200 (streamed, as the network gives it)."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
            stream=httpx.ByteStream(self.body),
        )


async def test_a_compressed_answer_is_read_decoded_and_a_broken_one_is_a_bad_answer() -> None:
    async with ApiSession(BASE_URL, TOKEN, transport=Compressed(gzip.compress(b"[1]"))) as good:
        response = await good.request("GET", "/inbox", repeat=Repeat.ALWAYS)
    async with ApiSession(BASE_URL, TOKEN, transport=Compressed(b"not gzip")) as broken:
        with pytest.raises(BadAnswer) as raised:
            await broken.request("GET", "/inbox", repeat=Repeat.ALWAYS)

    assert response.json() == [1]
    assert "content-encoding" not in response.headers  # what is kept is decoded
    assert str(raised.value) == (
        "GET /inbox: the vendor's answer is not what its API documents (its body cannot be decoded)"
    )
