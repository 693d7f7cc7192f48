"""What was sent is kept: every post's subject, body and attachments by SHA-256 with its
recipient, written before the request leaves, and the body and attachments byte-exact in
the archive beside the database, one copy of each file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from massiva.api import PecMassivaClient
from massiva.archive import Archive, ArchiveError
from massiva.campaign import Renderer, load_spec, message_attachments
from massiva.loading import load_campaign
from massiva.sender import Sender, SendOptions
from massiva.simulator import Fault, SimClock, Simulator
from massiva.store import Store
from tests.db import connect
from tests.test_sender import make_campaign, pec_addresses

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def send(
    store: Store, demo: PecMassivaClient, clock: SimClock, folder: Path, addresses: list[str]
) -> None:
    """A campaign with a shared PDF and a PDF per recipient, loaded and sent."""
    make_campaign(folder, addresses)
    (folder / "informativa.pdf").write_bytes(PDF)
    (folder / "allegati").mkdir()
    with (folder / "destinatari.csv").open("r+", encoding="utf-8") as csv:
        lines = csv.read().splitlines()
        csv.seek(0)
        csv.write(lines[0] + ";allegato\n")
        for i, line in enumerate(lines[1:]):
            (folder / "allegati" / f"{i}.pdf").write_bytes(PDF + f"n. {i}".encode())
            csv.write(f"{line};allegati/{i}.pdf\n")
    with (folder / "campaign.toml").open("a", encoding="utf-8") as toml:
        toml.write('attachments = ["informativa.pdf"]\nattachment_column = "allegato"\n')
    spec = load_spec(folder)
    await load_campaign(store, spec)
    campaign = await store.campaigns.get(spec.name)
    assert campaign is not None
    await Sender(store, demo, campaign, spec, SendOptions(rate=None), clock=clock.now).run()


def kept(db: Store) -> dict[str, tuple[str, str, dict[str, object] | None, str, str]]:
    """address -> (state, subject, sent_content, fields, message id)."""
    with connect(db) as conn:
        rows = conn.execute(
            "SELECT address, state, subject, sent_content, fields, message_id FROM recipient"
        ).fetchall()
    return {a: (st, su, json.loads(c) if c else None, f, m) for a, st, su, c, f, m in rows}


async def test_every_post_keeps_the_hashes_of_what_it_carried_and_the_archive_the_bytes(
    store: Store, demo: PecMassivaClient, clock: SimClock, simulator: Simulator, tmp_path: Path
) -> None:
    await send(store, demo, clock, tmp_path / "c", pec_addresses(3))

    archive = Archive(store.archive_dir)
    received = {s.recipients[0]: s for s in simulator.sends}
    for i, (address, (state, subject, content, _, message_id)) in enumerate(
        sorted(kept(store).items())
    ):
        assert state == "sent" and content is not None
        posted = received[address]
        assert posted.message_id == message_id
        assert content["subject"] == sha(posted.subject.encode()) == sha(subject.encode())
        assert archive.path(str(content["body"])).read_bytes() == posted.body.encode()
        mine = PDF + f"n. {i}".encode()
        assert content["attachments"] == [
            ["informativa.pdf", sha(PDF), len(PDF)],
            [f"{i}.pdf", sha(mine), len(mine)],
        ]
        for _, digest, _ in content["attachments"]:  # type: ignore[union-attr]
            assert archive.intact(digest)
    files = sorted(p.name for p in archive.root.rglob("*") if p.is_file())
    # One copy of the shared PDF, one of each recipient's, one of each body.
    assert len(files) == 1 + 3 + 3
    assert files.count(sha(PDF)) == 1


async def test_a_sent_body_renders_again_to_the_same_hash(
    store: Store, demo: PecMassivaClient, clock: SimClock, tmp_path: Path
) -> None:
    await send(store, demo, clock, tmp_path / "c", pec_addresses(2))

    renderer = Renderer(load_spec(tmp_path / "c"))
    for _, _, content, fields, _ in kept(store).values():
        assert content is not None
        assert sha(renderer.body(json.loads(fields)).encode()) == content["body"]


async def test_a_post_of_unknown_outcome_keeps_what_was_attempted(
    store: Store, demo: PecMassivaClient, clock: SimClock, simulator: Simulator, tmp_path: Path
) -> None:
    simulator.add_fault(Fault(path="/send", method="POST", kind="drop_before_record"))

    await send(store, demo, clock, tmp_path / "c", pec_addresses(1))

    ((state, subject, content, _, _),) = kept(store).values()
    assert (state, simulator.sends) == ("unknown", [])
    assert content is not None and content["subject"] == sha(subject.encode())


async def test_nothing_leaves_whose_proof_cannot_be_kept(
    store: Store, demo: PecMassivaClient, clock: SimClock, simulator: Simulator, tmp_path: Path
) -> None:
    store.archive_dir.write_text("a file where the archive should be")

    with pytest.raises(ArchiveError, match=r"the archive .*massiva\.db\.archive cannot keep"):
        await send(store, demo, clock, tmp_path / "c", pec_addresses(2))

    assert simulator.sends == []
    assert {state for state, *_ in kept(store).values()} == {"pending"}


def test_shared_attachments_read_for_a_preview_are_still_kept_when_sent(tmp_path: Path) -> None:
    folder = make_campaign(tmp_path / "c", pec_addresses(1))
    (folder / "informativa.pdf").write_bytes(PDF)
    with (folder / "campaign.toml").open("a", encoding="utf-8") as toml:
        toml.write('attachments = ["informativa.pdf"]\n')
    spec = load_spec(folder)
    archive = Archive(tmp_path / "archivio")

    message_attachments(spec, None)  # a preview: nothing kept
    (sent,) = message_attachments(spec, None, archive)

    assert archive.path(sent.sha256).read_bytes() == PDF
