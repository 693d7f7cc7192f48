"""/healthz and /metrics over a real loopback socket: httpx as a scraper would ask, and raw
sockets for what httpx would never send."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import AsyncIterator, Callable
from types import FrameType

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from massiva.metrics import Metrics
from massiva.status_server import (
    HEAD_LIMIT,
    Health,
    StatusServer,
    serve_status,
)

MAILBOX = "ufficio@pecmassiva.com"
REFUSED = (
    "is not a loopback IP address (127.0.0.1 or ::1): the status endpoints are for this "
    "machine only; put a reverse proxy in front to expose them"
)


class Service:
    """What a service would hand the server: its metrics and a health it can change."""

    def __init__(self) -> None:
        self.metrics = Metrics()
        self.health = Health(ok=True, detail={"mailboxes": 2, "campaigns": ["avvisi"]})

    def __call__(self) -> Health:
        return self.health


@pytest.fixture
def service() -> Service:
    return Service()


@pytest.fixture
async def server(service: Service) -> AsyncIterator[StatusServer]:
    async with serve_status("127.0.0.1", 0, service.metrics, service) as running:
        yield running


@pytest.fixture
async def client(server: StatusServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, trust_env=False) as http:
        yield http


async def raw(server: StatusServer, data: bytes) -> bytes:
    """Send ``data`` as it is and read the whole answer, to the server's close."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(data)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    return answer


async def test_metrics_serves_the_text_exposition(
    service: Service, client: httpx.AsyncClient
) -> None:
    service.metrics.post(MAILBOX, "sent")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert response.headers["connection"] == "close"
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    sent = [s for s in families["massiva_posts"].samples if s.labels["outcome"] == "sent"]
    assert [(s.labels["mailbox"], s.value) for s in sent] == [(MAILBOX, 1.0)]


async def test_metrics_shows_each_scrape_the_figures_of_the_moment(
    service: Service, client: httpx.AsyncClient
) -> None:
    service.metrics.unknowns(MAILBOX, 3)
    assert (
        f'massiva_unknowns_waiting{{mailbox="{MAILBOX}"}} 3.0'
        in (await client.get("/metrics")).text
    )
    service.metrics.unknowns(MAILBOX, 0)
    assert (
        f'massiva_unknowns_waiting{{mailbox="{MAILBOX}"}} 0.0'
        in (await client.get("/metrics")).text
    )


async def test_healthz_ok_answers_200_with_the_detail(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"status": "ok", "mailboxes": 2, "campaigns": ["avvisi"]}


async def test_healthz_failing_answers_503(service: Service, client: httpx.AsyncClient) -> None:
    service.health = Health(ok=False, detail={"reconcile": "no success for 3600 s"})
    response = await client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "failing", "reconcile": "no success for 3600 s"}


async def test_a_health_check_that_raises_is_failing_and_logged(
    client: httpx.AsyncClient, service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> Health:
        raise RuntimeError("database is locked")

    async with serve_status("127.0.0.1", 0, service.metrics, broken) as other:
        with caplog.at_level(logging.ERROR, logger="massiva.status"):
            response = await client.get(f"{other.url}/healthz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "failing",
        "error": "the health check raised: see the log",
    }
    assert "database is locked" in caplog.text


def test_health_detail_may_not_take_the_status_key() -> None:
    with pytest.raises(ValueError, match=r"^'status' is /healthz's own key: name the detail"):
        Health(ok=True, detail={"status": "fine"})


async def test_head_gives_the_head_without_the_body(client: httpx.AsyncClient) -> None:
    get = await client.get("/metrics")
    head = await client.head("/metrics")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"]


async def test_a_query_string_is_ignored(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz?verbose=1")).status_code == 200


async def test_another_path_is_404_and_another_method_405(client: httpx.AsyncClient) -> None:
    missing = await client.get("/")
    assert missing.status_code == 404
    assert missing.text == "404 Not Found\n"
    assert (await client.get("/metrics/")).status_code == 404
    post = await client.post("/metrics", content=b"x" * 100)
    assert post.status_code == 405
    assert post.headers["allow"] == "GET, HEAD"
    assert (await client.delete("/healthz")).status_code == 405


@pytest.mark.parametrize(
    "request_head",
    [
        b"GET /metrics\r\n\r\n",  # HTTP/0.9
        b"GET /metrics HTTP/2.0\r\nHost: x\r\n\r\n",
        b"GET  /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET http://127.0.0.1/metrics HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\n\r\n",  # HTTP/1.1 without Host
        b"GET /metrics HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost x\r\n\r\n",
        b"G\x00T /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
)
async def test_a_request_head_that_is_not_strict_http_1_is_400(
    server: StatusServer, request_head: bytes
) -> None:
    answer = await raw(server, request_head)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"\r\nConnection: close\r\n" in answer


async def test_http_1_0_needs_no_host(server: StatusServer) -> None:
    answer = await raw(server, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answer.endswith(b'{"status": "ok", "mailboxes": 2, "campaigns": ["avvisi"]}')


async def test_a_head_past_the_limit_is_431(server: StatusServer) -> None:
    big = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Filler: " + b"a" * HEAD_LIMIT + b"\r\n\r\n"
    answer = await raw(server, big)
    assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")


async def test_a_head_not_sent_in_time_is_408(service: Service) -> None:
    async with serve_status("127.0.0.1", 0, service.metrics, service, head_timeout=0.2) as slow:
        answer = await raw(slow, b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # never finished
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")


async def test_leaving_cuts_open_connections_and_stops_listening(service: Service) -> None:
    async with asyncio.timeout(60):  # a guard against hanging, not a measure
        async with serve_status(
            "127.0.0.1", 0, service.metrics, service, head_timeout=3600
        ) as server:
            reader, writer = await asyncio.open_connection(server.host, server.port)
            writer.write(b"GET /metrics HTTP/1.1\r\n")  # and then nothing: the server waits
            await writer.drain()
            await asyncio.sleep(0)
        # Leaving did not wait the hour out: the half-asked connection was cut, unanswered.
        try:
            rest = await reader.read()
        except ConnectionResetError:
            rest = b""
        assert rest == b""
    writer.close()
    with pytest.raises(OSError, match="Connect call failed"):
        await asyncio.open_connection(server.host, server.port)


async def test_port_zero_picks_a_free_port(service: Service) -> None:
    async with (
        serve_status("127.0.0.1", 0, service.metrics, service) as first,
        serve_status("127.0.0.1", 0, service.metrics, service) as second,
    ):
        assert first.port > 0
        assert second.port > 0
        assert first.port != second.port


async def test_ipv6_loopback_is_served(service: Service) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("this machine has no IPv6 loopback (::1)")
    async with (
        serve_status("::1", 0, service.metrics, service) as server,
        httpx.AsyncClient(trust_env=False) as http,
    ):
        assert server.url == f"http://[::1]:{server.port}"
        assert (await http.get(f"{server.url}/healthz")).status_code == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "localhost", "example.it", ""])
async def test_a_host_that_is_not_loopback_is_refused(service: Service, host: str) -> None:
    with pytest.raises(ValueError, match=r"^status address ") as refused:
        async with serve_status(host, 0, service.metrics, service):
            pytest.fail("a server started on a non-loopback address")
    assert str(refused.value) == f"status address {host!r} {REFUSED}"


async def test_serving_leaves_the_services_sigterm_handler_alone(service: Service) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise AssertionError("never delivered in this test")

    previous: Callable[[int, FrameType | None], object] | int | None = signal.signal(
        signal.SIGTERM, handler
    )
    sigint = signal.getsignal(signal.SIGINT)
    try:
        async with serve_status("127.0.0.1", 0, service.metrics, service) as server:
            async with httpx.AsyncClient(trust_env=False) as http:
                await http.get(f"{server.url}/metrics")
            assert signal.getsignal(signal.SIGTERM) is handler
            assert signal.getsignal(signal.SIGINT) is sigint
    finally:
        signal.signal(signal.SIGTERM, previous)
