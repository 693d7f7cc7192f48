"""A hostile or broken vendor, on a real loopback socket: every answer that is not what
its API documents is a one-line error naming the endpoint (exit 4 from the command line,
JSON under ``--json``), never a traceback, never a wait without end, never a body held
whole whatever its size. A change the vendor may have carried out is an unknown outcome.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import time
import traceback
import tracemalloc
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from massiva.api import (
    ApiConnectionError,
    ApiError,
    ApiSession,
    BadAnswer,
    OutcomeUnknown,
    PecMassivaClient,
    RateLimited,
    RetryPolicy,
    ServerError,
)
from massiva.cli import main
from massiva.cli.context import Env
from massiva.simulator import running_server
from tests.conftest import MAILBOX, PASSWORD, TOKEN, Sleeps
from tests.db import connect

RECIPIENT = "mario.rossi@legalmail.it"
Answer = Callable[[], Response]
DOCUMENTED = "the vendor's answer is not what its API documents"
MAY_HAVE = "the request may have been carried out"


class Vendor:
    """A fake vendor: each ``(method, path)`` gets the answer a test sets (404 if none)."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str], Answer] = {}
        self.requests: list[tuple[str, str]] = []
        self.app = Starlette(
            routes=[Route("/{path:path}", self._endpoint, methods=["GET", "POST", "DELETE"])]
        )

    def answer(self, method: str, path: str, answer: Answer) -> None:
        self.answers[(method, path)] = answer

    def json(self, method: str, path: str, body: str, status: int = 200, **headers: str) -> None:
        """Answer ``body``, as written (it need not be JSON), as application/json."""
        self.answer(
            method,
            path,
            lambda: Response(body, status, headers=headers, media_type="application/json"),
        )

    async def _endpoint(self, request: Request) -> Response:
        key = (request.method, request.url.path)
        self.requests.append(key)
        await request.body()
        answer = self.answers.get(key)
        if answer is None:
            return JSONResponse({"success": False, "message": "Not found"}, 404)
        return answer()


@pytest.fixture
def vendor() -> Vendor:
    return Vendor()


@pytest.fixture
def server(vendor: Vendor) -> Iterator[str]:
    """The fake vendor on 127.0.0.1; yields its base URL."""
    with running_server(vendor.app) as base_url:
        yield base_url


@asynccontextmanager
async def mailbox(
    base_url: str, sleeps: Sleeps, *, password: str = PASSWORD, deadline: float = 30.0
) -> AsyncIterator[PecMassivaClient]:
    """The test mailbox's client on ``base_url``: two tries for a read, no real waits."""
    async with ApiSession(
        base_url, TOKEN, retry=RetryPolicy(attempts=2), sleep=sleeps, deadline=deadline
    ) as session:
        yield PecMassivaClient(session, MAILBOX, password)


def page(data: object, total: object = 1, n_of_pages: object = 1) -> str:
    """An inbox page; ``data`` and the counts as given (Python's json writes NaN and
    Infinity as JavaScript does, as a broken vendor might)."""
    body = {"data": data, "success": True, "message": "", "total": total, "page": 1}
    return json.dumps({**body, "n_of_pages": n_of_pages})


def item(inbox_id: object, subject: str = "CONSEGNA: Avviso 2026031009000011") -> dict[str, object]:
    return {
        "id": inbox_id,
        "sender": "posta-certificata@pecmassiva.com",
        "recipient": MAILBOX,
        "date": "Tue, 10 Mar 2026 09:00:05 +0100",
        "object": subject,
    }


def one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text and "\r" not in text
    return text


# -- POST /send: the vendor said "created", or may have: never an error that drops it ---

TRUNCATED = '{"success": true, "sent": 1, "message": "", "message_id": "20260310'
HTML_PAGE = "<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>"


NO_ID = "message_id is not a string of at most 64 digits (it is"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (TRUNCATED, "its body is not JSON"),
        (HTML_PAGE, "its body is not JSON"),
        ('[{"message_id": "2026031009000011"}]', "its body is not a JSON object (it is a list)"),
        ("", "its body is empty"),
        ('{"success": true, "sent": 1}', f"{NO_ID} null)"),
        ('{"message_id": "abc"}', f"{NO_ID} text)"),
        ('{"message_id": 1e30}', f"{NO_ID} a number with a fraction)"),
        ('{"message_id": 1000000000000000000000000000000}', f"{NO_ID} out of range)"),
        (
            '{"message_id": ' + "[" * 100_000 + "]" * 100_000 + "}",
            "its body is JSON nested too deeply",
        ),
    ],
    ids=["truncated", "html", "array", "empty", "no-id", "id-abc", "id-float", "id-huge", "deep"],
)
async def test_a_201_that_cannot_be_read_is_an_unknown_outcome(
    vendor: Vendor, server: str, sleeps: Sleeps, body: str, reason: str
) -> None:
    vendor.json("POST", "/send", body, status=201)
    async with mailbox(server, sleeps) as box:
        with pytest.raises(OutcomeUnknown) as raised:
            await box.send(RECIPIENT, "Avviso", "Corpo")

    assert one_line(raised.value) == f"POST /send: HTTP 201: {DOCUMENTED} ({reason}); {MAY_HAVE}"
    assert raised.value.status == 201
    assert vendor.requests == [("POST", "/send")]  # never posted twice


async def test_a_201_with_a_numeric_message_id_is_a_sending(
    vendor: Vendor, server: str, sleeps: Sleeps
) -> None:
    vendor.json("POST", "/send", '{"message_id": 2026031009000011, "sent": "x"}', status=201)
    async with mailbox(server, sleeps) as box:
        result = await box.send(RECIPIENT, "Avviso", "Corpo")

    assert (result.message_id, result.sent) == ("2026031009000011", 0)


async def test_a_redirect_to_a_send_is_an_unknown_outcome_and_not_followed(
    vendor: Vendor, server: str, sleeps: Sleeps
) -> None:
    vendor.answer(
        "POST", "/send", lambda: Response(status_code=302, headers={"Location": "/login"})
    )
    vendor.json("POST", "/login", '{"message_id": "1"}', status=201)
    async with mailbox(server, sleeps) as box:
        with pytest.raises(OutcomeUnknown) as raised:
            await box.send(RECIPIENT, "Avviso", "Corpo")

    assert one_line(raised.value) == (
        f"POST /send: HTTP 302: {DOCUMENTED} (a redirect to /login); {MAY_HAVE}"
    )
    assert vendor.requests == [("POST", "/send")]


@pytest.mark.parametrize(
    ("header", "retry_after"),
    [
        ("1e308", None),
        ("inf", None),
        ("-Infinity", None),
        ("NaN", None),
        ("-5", None),
        ("Fri, 31 Dec 9999 23:59:59 GMT", None),
        ("not a date", None),
        ("120", 120.0),
        ("Tue, 10 Mar 2026 09:00:00 GMT", 0.0),  # past: now
    ],
)
async def test_a_nonsense_retry_after_is_unknown_never_infinite(
    vendor: Vendor, server: str, sleeps: Sleeps, header: str, retry_after: float | None
) -> None:
    vendor.json("POST", "/send", '{"message": "Too many requests"}', 429, **{"Retry-After": header})
    vendor.json("GET", "/inbox", '{"message": "Too many requests"}', 429, **{"Retry-After": header})
    async with mailbox(server, sleeps) as box:
        with pytest.raises(RateLimited) as send:
            await box.send(RECIPIENT, "Avviso", "Corpo")
        with pytest.raises(RateLimited) as read:
            await box.inbox()

    assert one_line(send.value) == "POST /send: HTTP 429: Too many requests"
    assert send.value.retry_after == retry_after
    assert read.value.retry_after == retry_after
    if retry_after is not None and retry_after >= 30:  # past the call's 30 s deadline
        assert sleeps.waits == []
    else:
        (wait,) = sleeps.waits  # the read's one retry, after a short, finite wait
        assert 0 <= wait <= 1


# -- GET /inbox: a bad page is an error; a bad entry is skipped, the others kept ---------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('{"data": [{"id": 1, "object": "CONSEGNA', "its body is not JSON"),
        ("null", "its body is not a JSON object (it is null)"),
        (page([item(1)])[:-1] + "]", "its body is not JSON"),
        ("[" + page([item(1)]) + "]", "its body is not a JSON object (it is a list)"),
        ('{"data": ' + "[" * 100_000 + "]" * 100_000 + "}", "its body is JSON nested too deeply"),
        (page({"id": 1}), "data is not a list (it is an object)"),
        (
            page([], n_of_pages=float("inf")),
            "n_of_pages is not a whole number, 0 or more (it is infinite)",
        ),
        (
            page([], n_of_pages=float("nan")),
            "n_of_pages is not a whole number, 0 or more (it is NaN)",
        ),
        (page([], total=-1), "total is not a whole number, 0 or more (it is out of range)"),
        (page([], total=10**30), "total is not a whole number, 0 or more (it is out of range)"),
        (page([], total="many"), "total is not a whole number, 0 or more (it is text)"),
        (HTML_PAGE, "its body is not JSON"),
    ],
    ids=[
        "malformed",
        "null",
        "unclosed",
        "array",
        "deep",
        "data-object",
        "pages-infinite",
        "pages-nan",
        "total-negative",
        "total-huge",
        "total-text",
        "html",
    ],
)
async def test_a_page_that_is_not_what_the_api_documents_is_a_bad_answer(
    vendor: Vendor, server: str, sleeps: Sleeps, body: str, reason: str
) -> None:
    vendor.json("GET", "/inbox", body)
    async with mailbox(server, sleeps) as box:
        with pytest.raises(BadAnswer) as raised:
            await box.inbox()

    assert one_line(raised.value) == f"GET /inbox: {DOCUMENTED} ({reason})"
    assert isinstance(raised.value, ServerError)  # exit 4: the vendor's fault
    assert vendor.requests == [("GET", "/inbox")]  # nonsense is not asked for again


async def test_bad_entries_of_a_page_are_skipped_and_said_the_others_kept(
    vendor: Vendor, server: str, sleeps: Sleeps
) -> None:
    entries: list[object] = [
        item(10**30),
        item(float("nan")),
        item("abc"),
        item(7),
        item(1.5),
        item(True),
        item(0),
        item("12"),
        item(7),  # again
        "CONSEGNA",
        {**item(13), "object": {"nested": ["x"]}},
        item(2**63 - 1),
    ]
    vendor.json("GET", "/inbox", page(entries, total=12, n_of_pages=1.0))
    async with mailbox(server, sleeps) as box:
        found = await box.inbox()

    assert [i.id for i in found.items] == [7, 12, 2**63 - 1]
    id_problem = "id is not a whole number from 1 to 2**63-1 (it is"
    assert found.skipped == [
        f"entry 1: {id_problem} out of range)",
        f"entry 2: {id_problem} NaN)",
        f"entry 3: {id_problem} text)",
        f"entry 5: {id_problem} a number with a fraction)",
        f"entry 6: {id_problem} a boolean)",
        f"entry 7: {id_problem} out of range)",
        "entry 9: id 7 repeats entry 4",
        "entry 10: it is not a JSON object (it is text)",
        "entry 11: object is not text (it is an object)",
    ]
    assert (found.total, found.pages, found.size) == (12, 1, 12)


@pytest.mark.parametrize(
    ("date", "kept"),
    [
        ("Tue, 10 Mar 2026 09:00:05 +0100", True),
        ("Mon, 01 Jan 1900 00:00:00 +0100", False),
        ("Fri, 31 Dec 9999 23:59:59 -0500", False),
        ("Tue, 10 Mar 2126 09:00:05 +0100", False),
        ("Tue, 10 Mar 2026 09:00:05 +9999", False),
        ("ieri", True),  # no date at all: read as none
    ],
)
async def test_a_date_out_of_a_sane_window_is_no_date(
    vendor: Vendor, server: str, sleeps: Sleeps, date: str, kept: bool
) -> None:
    vendor.json("GET", "/inbox", page([{**item(5), "date": date}]))
    vendor.json("GET", "/inbox/5", json.dumps({"data": {**item(5), "date": date, "body": "x"}}))
    async with mailbox(server, sleeps) as box:
        (found,) = (await box.inbox()).items
        message = await box.message(5)

    assert found.date == message.date == (date if kept else "")


# -- GET /inbox/{id}, GET /send/{code}, GET /quota --------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('{"data": "CONSEGNA"}', "data is not a JSON object (it is text)"),
        ('{"success": true}', "data is not a JSON object (it is null)"),
        ('{"data": {"body": ["a", 1]}}', "body is not text (it is a list)"),
        ('{"data": {"object": NaN}}', "object is not text (it is NaN)"),
        ("[]", "its body is not a JSON object (it is a list)"),
    ],
)
async def test_a_message_that_is_not_an_object_of_texts_is_a_bad_answer(
    vendor: Vendor, server: str, sleeps: Sleeps, body: str, reason: str
) -> None:
    vendor.json("GET", "/inbox/5", body)
    async with mailbox(server, sleeps) as box:
        with pytest.raises(BadAnswer) as raised:
            await box.message(5)

    assert one_line(raised.value) == f"GET /inbox/5: {DOCUMENTED} ({reason})"


async def test_bad_receipts_of_a_sending_are_skipped_the_others_kept(
    vendor: Vendor, server: str, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    good = {"sender": "posta-certificata@pecmassiva.com", "object": "CONSEGNA: Avviso 123"}
    vendor.json("GET", "/send/123", json.dumps({"data": [good, 42, {"object": [1]}]}))
    vendor.json("GET", "/send/456", '{"data": {"object": "CONSEGNA"}}')
    async with mailbox(server, sleeps) as box:
        (receipt,) = await box.send_status("123")
        with pytest.raises(BadAnswer) as raised:
            await box.send_status("456")

    assert receipt.subject == "CONSEGNA: Avviso 123"
    left_out = "GET /send/123: an entry was left out: entry"
    assert [r.getMessage() for r in caplog.records if r.name == "massiva.api"] == [
        f"{left_out} 2: it is not a JSON object (it is a whole number)",
        f"{left_out} 3: object is not text (it is a list)",
    ]
    assert (
        str(raised.value) == f"GET /send/456: {DOCUMENTED} (data is not a list (it is an object))"
    )


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ('{"usage": NaN, "limit": 1048576}', "usage is not a finite number, 0 or more (it is NaN)"),
        (
            '{"usage": 1, "limit": Infinity}',
            "limit is not a finite number, 0 or more (it is infinite)",
        ),
        (
            '{"usage": -1, "limit": 10}',
            "usage is not a finite number, 0 or more (it is out of range)",
        ),
        ('{"usage": "1", "limit": 10}', "usage is not a finite number, 0 or more (it is text)"),
        ("[1, 2]", "data is not a JSON object (it is a list)"),
    ],
)
async def test_a_quota_that_is_no_finite_numbers_is_a_bad_answer(
    vendor: Vendor, server: str, sleeps: Sleeps, data: str, reason: str
) -> None:
    vendor.json("GET", "/quota/INBOX", f'{{"data": {data}}}')
    async with mailbox(server, sleeps) as box:
        with pytest.raises(BadAnswer) as raised:
            await box.quota()

    assert one_line(raised.value) == f"GET /quota/INBOX: {DOCUMENTED} ({reason})"


async def test_a_redirect_on_a_read_is_a_bad_answer_and_not_followed(
    vendor: Vendor, server: str, sleeps: Sleeps
) -> None:
    vendor.answer(
        "GET",
        "/inbox",
        lambda: Response(status_code=301, headers={"Location": f"https://x.test/?p={PASSWORD}"}),
    )
    async with mailbox(server, sleeps) as box:
        with pytest.raises(BadAnswer) as raised:
            await box.inbox()

    assert one_line(raised.value) == (
        f"GET /inbox: HTTP 301: {DOCUMENTED} (a redirect to https://x.test/?p=***)"
    )
    assert vendor.requests == [("GET", "/inbox")]


# -- size and time: bounded -----------------------------------------------------------


@pytest.mark.parametrize("declared", [False, True], ids=["chunked", "content-length"])
async def test_a_50_mb_page_fails_at_the_cap_without_being_held(
    vendor: Vendor, server: str, sleeps: Sleeps, declared: bool
) -> None:
    chunk = b" " * 2**16
    chunks = 50 * 2**20 // len(chunk)

    async def huge_page() -> AsyncIterator[bytes]:
        yield b'{"data": ['
        for _ in range(chunks):
            yield chunk
        yield b"]}"

    length = {"Content-Length": str(len(b'{"data": []}') + chunks * len(chunk))}
    vendor.answer(
        "GET",
        "/inbox",
        lambda: StreamingResponse(
            huge_page(), media_type="application/json", headers=length if declared else None
        ),
    )
    tracemalloc.start()
    try:
        async with mailbox(server, sleeps) as box:
            with pytest.raises(BadAnswer) as raised:
                await box.inbox()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert one_line(raised.value) == f"GET /inbox: {DOCUMENTED} (its body is larger than 20 MiB)"
    # The cap's 20 MiB and its copy at most, not the 50 MB (the server thread counts, too).
    assert peak < 36 * 2**20


async def test_the_cap_is_configurable_and_a_send_past_it_is_unknown(
    vendor: Vendor, server: str, sleeps: Sleeps
) -> None:
    vendor.json("POST", "/send", json.dumps({"message_id": "1", "message": "x" * 2000}), 201)
    async with ApiSession(server, TOKEN, sleep=sleeps, max_body=1000) as session:
        with pytest.raises(OutcomeUnknown) as raised:
            await PecMassivaClient(session, MAILBOX, PASSWORD).send(RECIPIENT, "A", "C")

    assert str(raised.value) == (
        f"POST /send: HTTP 201: {DOCUMENTED} (its body is larger than 1000 bytes); {MAY_HAVE}"
    )


class RawServer:
    """A raw HTTP server on 127.0.0.1 that reads each request's head, then writes
    ``answer`` one byte every 0.5 s (each read comes in time: only a total deadline stops
    it), and holds the connection open until the client closes it. ``answer`` empty: it
    accepts the connection and never answers."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.connections = 0
        self.url = ""
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        await reader.readuntil(b"\r\n\r\n")
        for byte in self.answer:
            if writer.is_closing() or reader.at_eof():
                return
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.5)
        await reader.read()  # until the client hangs up

    def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._handlers.add(asyncio.ensure_future(self._serve(reader, writer)))

    @asynccontextmanager
    async def running(self) -> AsyncIterator[RawServer]:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        try:
            yield self
        finally:
            server.close()
            for task in self._handlers:
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            for writer in self._writers:
                writer.close()
                await asyncio.gather(writer.wait_closed(), return_exceptions=True)
            await server.wait_closed()


TRICKLE = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{"'
SLACK = 15.0  # generous: the machine is shared; only there to stop a hang


async def test_a_trickling_server_fails_within_the_deadline(sleeps: Sleeps) -> None:
    deadline = 2.0
    async with (
        RawServer(TRICKLE).running() as server,
        mailbox(server.url, sleeps, deadline=deadline) as box,
    ):
        started = time.monotonic()
        with pytest.raises(OutcomeUnknown) as send:
            await box.send(RECIPIENT, "Avviso", "Corpo")
        send_took = time.monotonic() - started

        started = time.monotonic()
        with pytest.raises(ApiConnectionError) as read:
            await box.inbox()
        read_took = time.monotonic() - started

    assert one_line(send.value) == f"POST /send: the vendor did not answer within 2 s; {MAY_HAVE}"
    assert send_took < deadline + SLACK
    # The first try used the whole deadline: none other could start.
    assert one_line(read.value) == "GET /inbox: the vendor did not answer within 2 s"
    assert read_took < deadline + SLACK
    assert sleeps.waits == []
    assert server.connections == 2


async def test_a_vendor_that_never_answers_is_given_up_on_within_the_deadline(
    sleeps: Sleeps,
) -> None:
    async with (
        RawServer(b"").running() as server,
        mailbox(server.url, sleeps, deadline=2.0) as box,
    ):
        started = time.monotonic()
        with pytest.raises(OutcomeUnknown) as send:
            await box.send(RECIPIENT, "Avviso", "Corpo")
        took = time.monotonic() - started

    assert str(send.value) == f"POST /send: the vendor did not answer within 2 s; {MAY_HAVE}"
    assert send.value.status is None
    assert server.connections == 1  # a change is never repeated once it may have left
    assert took < 2.0 + SLACK


async def test_the_retries_of_a_read_end_with_the_calls_deadline(sleeps: Sleeps) -> None:
    """Each try is cut by the read timeout (0.5 s); the tries and their waits stop at the
    call's deadline (3 s), long before the policy's 50 tries."""
    async with (
        RawServer(b"").running() as server,
        ApiSession(
            server.url,
            TOKEN,
            timeout=httpx.Timeout(5.0, read=0.5),
            retry=RetryPolicy(attempts=50, backoff=0.1, max_backoff=0.2),
            sleep=asyncio.sleep,
            deadline=3.0,
        ) as session,
    ):
        started = time.monotonic()
        with pytest.raises(ApiConnectionError) as read:
            await PecMassivaClient(session, MAILBOX, PASSWORD).inbox()
        took = time.monotonic() - started

    found = re.fullmatch(
        r"GET /inbox: the vendor did not answer within 3 s \((\d+) tries\)", str(read.value)
    )
    assert found, str(read.value)
    tries = int(found[1])
    assert tries == server.connections
    # 0.5 s of silence a try, at most 0.2 s between tries: no more fit in 3 s.
    assert 2 <= tries <= 3.0 / 0.5
    assert took < 3.0 + SLACK


# -- redaction: every spelling, before the cut ----------------------------------------

HTML_PASSWORD = "pw<Xy7'sEcReT&\"41c0de"


def spellings(secret: str) -> list[str]:
    """``secret`` as is and as HTML escapers write it."""
    return [
        secret,
        html.escape(secret),
        html.escape(secret, quote=False),
        html.escape(secret).replace("&#x27;", "&#39;").replace("&quot;", "&#34;"),
        html.escape(secret).replace("&#x27;", "&#039;"),
    ]


def shown(error: ApiError) -> list[str]:
    return [str(error), repr(error), error.message, *traceback.format_exception(error)]


@pytest.mark.parametrize("password", [PASSWORD, HTML_PASSWORD], ids=["plain", "html-chars"])
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_an_error_body_is_redacted_in_every_spelling_before_it_is_cut(
    vendor: Vendor, server: str, sleeps: Sleeps, password: str, method: str
) -> None:
    body = "x" * 490 + password + " " + "y" * 100  # the cut at 500 falls in the password
    echo = "<p>Login failed for " + "".join(spellings(password)) + "</p>" + "z" * 600
    path = "/send" if method == "POST" else "/inbox"
    vendor.answer(method, path, lambda: Response(body, 500, media_type="text/plain"))
    vendor.answer("GET", "/quota/INBOX", lambda: Response(echo, 400, media_type="text/html"))
    async with mailbox(server, sleeps, password=password) as box:
        with pytest.raises(ApiError) as cut:
            await (box.send(RECIPIENT, "A", "C") if method == "POST" else box.inbox())
        with pytest.raises(ApiError) as escaped:
            await box.quota()

    assert isinstance(cut.value, OutcomeUnknown if method == "POST" else ServerError)
    assert cut.value.message.startswith("x" * 490 + "*** yyy")
    assert len(escaped.value.message) <= 500 and escaped.value.message.endswith("...")
    assert escaped.value.message.startswith("<p>Login failed for ***")
    for text in (*shown(cut.value), *shown(escaped.value)):
        one_line_text = text.replace("\n", " ")
        for spelling in spellings(password):
            for end in range(6, len(spelling) + 1):
                assert spelling[:end] not in one_line_text


async def test_an_error_message_is_one_line(vendor: Vendor, server: str, sleeps: Sleeps) -> None:
    vendor.json("GET", "/quota/INBOX", '{"message": "bad\\r\\nmailbox\\u2028name"}', 400)
    async with mailbox(server, sleeps) as box:
        with pytest.raises(ApiError) as raised:
            await box.quota()

    assert str(raised.value) == "GET /quota/INBOX: HTTP 400: bad  mailbox name"


# -- the command line: exit 4, one line, JSON under --json -----------------------------


def reconcile(server: str, tmp_path: Path, *args: str) -> Result:
    config = tmp_path / "massiva.toml"
    config.write_text(f'[mailboxes."{MAILBOX}"]\npassword_env = "BOX_PW"\n', encoding="utf-8")
    return CliRunner().invoke(
        main,
        [
            *("--config", str(config), "--db", str(tmp_path / "massiva.db")),
            *("--api-url", server, "--sending-url", server),
            *("reconcile", "--mailbox", MAILBOX, *args),
        ],
        obj=Env(),
        env={"OPENAPI_TOKEN": TOKEN, "BOX_PW": PASSWORD},
        catch_exceptions=False,
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            page([item(1)], n_of_pages=float("inf")),
            "n_of_pages is not a whole number, 0 or more (it is infinite)",
        ),
        ("[" * 100_000, "its body is JSON nested too deeply"),
        ("null", "its body is not a JSON object (it is null)"),
    ],
    ids=["pages-infinite", "deep", "null"],
)
def test_reconcile_on_a_bad_page_exits_4_with_json(
    vendor: Vendor, server: str, tmp_path: Path, body: str, reason: str
) -> None:
    vendor.json("GET", "/inbox", body)

    result = reconcile(server, tmp_path, "--json")
    plain = reconcile(server, tmp_path)

    message = f"GET /inbox: {DOCUMENTED} ({reason})"
    assert result.exit_code == 4, result.output
    error = json.loads(result.stdout)["error"]
    assert (error["message"], error["exit_code"]) == (message, 4)
    assert plain.exit_code == 4
    assert plain.stderr == f"Error: {message}\n"
    assert plain.stdout == f"{MAILBOX}: not reconciled: {message}\n"


def test_reconcile_keeps_the_good_messages_of_a_page_with_bad_ids(
    vendor: Vendor, server: str, tmp_path: Path
) -> None:
    entries = [item("abc"), item(float("nan")), item(10**30), item(41), item(42)]
    vendor.json("GET", "/inbox", page(entries, total=5))

    first = reconcile(server, tmp_path, "--json")
    entries.append(item("xyz"))
    entries.append(item(43))
    vendor.json("GET", "/inbox", page(entries, total=7))
    second = reconcile(server, tmp_path, "--json")

    assert (first.exit_code, second.exit_code) == (0, 0), first.output + second.output
    with connect(tmp_path / "massiva.db") as db:
        stored = [row[0] for row in db.execute("SELECT inbox_id FROM receipt ORDER BY inbox_id")]
    assert stored == [41, 42, 43]  # no id collapsed to 0, none taken for one stored
    (report,) = json.loads(first.output)["mailboxes"]
    assert report["entries_left_out"] == 3  # said, not silently dropped
