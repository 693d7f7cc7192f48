"""A shared attachment is read and encoded once: every request refers to that encoding.

The peak memory itself is measured by ``benchmarks/attachment_memory.py``; these tests
prove the design it rests on, on the bytes that really leave for the simulator.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from starlette.applications import Starlette

from massiva.api import ApiSession, Attachment, PecMassivaClient, RetryPolicy
from massiva.campaign import load_spec
from massiva.campaign.attachments import encoded_size
from massiva.loading import load_campaign
from massiva.sender import Sender, SendOptions
from massiva.simulator import SimClock, Simulator
from massiva.store import Store
from tests.conftest import BASE_URL, TOKEN
from tests.contract import ContractTransport
from tests.test_sender import make_campaign, pec_addresses

# Several pieces of the encoding (1 MiB each) and a shorter last one.
SIZE = 3 * 2**20 + 2**19


class _Recorded(httpx.AsyncByteStream):
    """A request body that notes each part as it is read from it."""

    def __init__(self, stream: httpx.AsyncByteStream, parts: list[bytes]) -> None:
        self._stream, self._parts = stream, parts

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._stream:
            self._parts.append(part)
            yield part


class Recorder(httpx.AsyncBaseTransport):
    """Delegates to ``inner``, keeping the parts of each ``POST /send`` body as they leave
    (the objects themselves, not copies)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.bodies: list[list[bytes]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/send":
            assert isinstance(request.stream, httpx.AsyncByteStream)
            self.bodies.append([])
            request.stream = _Recorded(request.stream, self.bodies[-1])
        return await self.inner.handle_async_request(request)


async def test_the_posts_of_a_campaign_refer_to_one_encoding_of_its_shared_attachment(
    store: Store, app: Starlette, simulator: Simulator, clock: SimClock, tmp_path: Path
) -> None:
    folder = make_campaign(tmp_path / "campagna", pec_addresses(3))
    content = b"%PDF-1.4\n" + os.urandom(SIZE - 9)
    (folder / "informativa.pdf").write_bytes(content)
    with (folder / "campaign.toml").open("a", encoding="utf-8") as toml:
        toml.write('attachments = ["informativa.pdf"]\n')
    spec = load_spec(folder)
    await load_campaign(store, spec)
    campaign = await store.campaigns.get(spec.name)
    assert campaign is not None
    recorder = Recorder(ContractTransport(httpx.ASGITransport(app=app)))

    async with ApiSession(
        BASE_URL, TOKEN, transport=recorder, retry=RetryPolicy(attempts=1)
    ) as session:
        box = PecMassivaClient(session, "demo@pecmassiva.com", "demo")
        options = SendOptions(rate=None)
        progress = await Sender(store, box, campaign, spec, options, clock=clock.now).run()

    assert progress.sent == 3
    assert [send.attachments for send in simulator.sends] == [(("informativa.pdf", SIZE),)] * 3
    first, *others = recorder.bodies
    # The attachment's encoding: the large parts (the message's own fields are small).
    encoding = [part for part in first if len(part) > 4096]
    assert sum(len(part) for part in encoding) == encoded_size(SIZE)
    for body in others:
        assert all(any(part is theirs for theirs in body) for part in encoding)


async def test_the_body_sent_in_parts_is_the_json_the_vendor_documents(
    app: Starlette, simulator: Simulator
) -> None:
    content = os.urandom(2**20 + 5)  # two pieces, the last padded
    files = [
        Attachment.from_bytes('Fattura n°1 "saldo".pdf', content),
        Attachment.from_bytes("nota.txt", "Città".encode()),
    ]
    recorder = Recorder(ContractTransport(httpx.ASGITransport(app=app)))
    async with ApiSession(BASE_URL, TOKEN, transport=recorder) as session:
        box = PecMassivaClient(session, "demo@pecmassiva.com", "demo")
        await box.send(["a@pec.it", "b@pec.it"], "Avviso è", "<p>Gentile</p>", attachments=files)

    (body,) = recorder.bodies
    assert json.loads(b"".join(body)) == {
        "sender": "demo@pecmassiva.com",
        "recipient": ["a@pec.it", "b@pec.it"],
        "subject": "Avviso è",
        "body": "<p>Gentile</p>",
        "username": "demo@pecmassiva.com",
        "password": "demo",
        "attachments": [
            {
                "name": 'Fattura n°1 "saldo".pdf',
                "file": "data:application/pdf;base64," + base64.b64encode(content).decode(),
            },
            {"name": "nota.txt", "file": "data:text/plain;base64,Q2l0dMOg"},
        ],
    }
    assert simulator.sends[0].attachments == (
        ('Fattura n°1 "saldo".pdf', len(content)),
        ("nota.txt", len("Città".encode())),
    )
