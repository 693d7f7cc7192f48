"""Evidence bundles (massiva/evidence/): a campaign really sent to the simulator and its
receipts really read, then bundled; what the zip holds is checked against the database,
the archive and the campaign's own files."""

from __future__ import annotations

import asyncio
import hashlib
import html
import json
import re
import subprocess
import zipfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from massiva.api import ApiSession, PecMassivaClient
from massiva.archive import Archive
from massiva.campaign import load_spec
from massiva.evidence import Bundled, NotInCampaign, make_bundle, verify_bundle
from massiva.loaded import UnknownCampaign
from massiva.loading import load_campaign
from massiva.quota import Plan
from massiva.reconcile import reconcile
from massiva.schedule import Schedule
from massiva.sender import Box, Sender, SendOptions
from massiva.simulator import SimClock, Simulator
from massiva.store import Store
from tests.conftest import BASE_URL, START, TOKEN
from tests.contract import ContractTransport
from tests.db import connect
from tests.test_report_support import write_folder
from tests.test_sender import MAILBOX

PROVIDER = "posta-certificata@pecmassiva.com"
INFORMATIVA = b"%PDF-1.4 informativa per tutti\n"
BIG = b"%PDF-1.4 grande\n".ljust(1_200_000, b"x")  # over 1 MB: kept once at the root
SMALL = b"%PDF-1.4 fattura di Luca\n"
ROWS = [
    ("anna@legalmail.it", "Anna", "C0001"),
    ("luca@legalmail.it", "Luca", "C0002"),
    ("fail.bianchi@legalmail.it", "Bianchi", "C0003"),
]
SIGNER = "CN=PEC MASSIVA simulatore - posta-certificata@pecmassiva.com"


@dataclass
class Sent:
    """The campaign sent, and what a test needs to bundle it."""

    store: Store
    folder: Path


@pytest.fixture
async def sent(store: Store, demo: PecMassivaClient, clock: SimClock, tmp_path: Path) -> Sent:
    """Three recipients sent and their receipts read (bodies kept): Anna and Luca
    delivered, Bianchi failed; a shared attachment, Anna's own over 1 MB, Luca's small."""
    folder = write_folder(
        tmp_path / "campagna",
        ROWS,
        extra='attachments = ["informativa.pdf"]\nattachment_column = "allegato"\n',
        files={
            "informativa.pdf": INFORMATIVA,
            "allegati/C0001.pdf": BIG,
            "allegati/C0002.pdf": SMALL,
            "allegati/C0003.pdf": b"%PDF-1.4 per Bianchi\n",
        },
    )
    spec = load_spec(folder)
    await load_campaign(store, spec)
    campaign = await store.campaigns.get(spec.name)
    assert campaign is not None
    progress = await Sender(
        store, demo, campaign, spec, SendOptions(rate=None), clock=clock.now
    ).run()
    assert progress.stopped == "done"
    clock.advance(600)
    await reconcile(store, demo, MAILBOX, clock=clock.now)
    return Sent(store, folder)


async def bundle(
    sent: Sent, tmp_path: Path, *, only: Sequence[str] = (), now: datetime | None = None
) -> tuple[Bundled, dict[str, bytes]]:
    """The bundle of campaign "prova", and every file in it."""
    done = await make_bundle(sent.store, "prova", tmp_path / "prove.zip", only=only, now=now)
    with zipfile.ZipFile(done.path) as zf:
        return done, {name: zf.read(name) for name in zf.namelist()}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def recorded(store: Store, address: str) -> dict[str, object]:
    """What the sender recorded of the post to ``address`` (recipient.sent_content)."""
    with connect(store) as conn:
        (content,) = conn.execute(
            "SELECT sent_content FROM recipient WHERE address = ?", (address,)
        ).fetchone()
    found: dict[str, object] = json.loads(content)
    return found


def page(files: dict[str, bytes], folder: str) -> str:
    """A recipient's attestazione, as text."""
    return files[f"{folder}/attestazione.html"].decode("utf-8")


async def test_each_folder_holds_what_was_sent_byte_exact_with_every_hash(
    sent: Sent, tmp_path: Path
) -> None:
    done, files = await bundle(sent, tmp_path)

    luca = recorded(sent.store, "luca@legalmail.it")
    subject = files["0003-luca@legalmail.it/oggetto.txt"]
    body = files["0003-luca@legalmail.it/corpo.html"]
    assert (subject, sha(subject)) == (b"Avviso C0002", luca["subject"])
    assert body.decode("utf-8") == "<p>Gentile Luca</p>"
    assert sha(body) == luca["body"]
    assert files["0003-luca@legalmail.it/allegati/C0002.pdf"] == SMALL
    assert luca["attachments"] == [
        ["informativa.pdf", sha(INFORMATIVA), len(INFORMATIVA)],
        ["C0002.pdf", sha(SMALL), len(SMALL)],
    ]
    text = page(files, "0003-luca@legalmail.it")
    for digest in (luca["subject"], luca["body"], sha(INFORMATIVA), sha(SMALL)):
        assert f'<span class="hash">{digest}</span>' in text or f">{digest}<" in text
    assert (done.recipients, done.not_recorded, done.not_archived) == (3, 0, 0)


async def test_a_shared_attachment_and_a_big_one_are_kept_once_at_the_root(
    sent: Sent, tmp_path: Path
) -> None:
    _, files = await bundle(sent, tmp_path)

    shared = f"allegati/{sha(INFORMATIVA)}-informativa.pdf"
    big = f"allegati/{sha(BIG)}-C0001.pdf"
    assert (files[shared], files[big]) == (INFORMATIVA, BIG)
    assert [n for n in files if n.endswith("informativa.pdf")] == [shared]
    assert not any(n.startswith("0002-anna@legalmail.it/allegati/") for n in files)
    manifest = json.loads(files["manifest.json"])
    anna = manifest["recipients"][0]
    assert [a["path"] for a in anna["sent"]["attachments"]] == [shared, big]
    assert f"../{big}" in page(files, "0002-anna@legalmail.it")


async def test_every_receipt_is_kept_as_received_with_its_signature_verdict(
    sent: Sent, tmp_path: Path
) -> None:
    _, files = await bundle(sent, tmp_path)

    with connect(sent.store) as conn:
        kept = conn.execute(
            "SELECT x.inbox_id, x.kind, x.body, x.body_sha256 FROM receipt x"
            " JOIN recipient r ON r.id = x.recipient_id WHERE r.address = 'anna@legalmail.it'"
            " AND x.body IS NOT NULL AND x.kind = 'delivered'"
        ).fetchall()
    ((inbox_id, _, body, body_sha256),) = kept
    received = files[f"0002-anna@legalmail.it/ricevute/{inbox_id}-avvenuta-consegna.eml"]
    assert received == body.encode("utf-8")
    assert sha(received) == body_sha256
    text = html.unescape(page(files, "0002-anna@legalmail.it"))
    assert f"firma integra, firmatario 1.2.840.113549.1.9.1={PROVIDER},{SIGNER}" in text
    assert "certificato valido fino al 01/01/2030" in text


async def test_a_certificate_expired_since_is_said_and_a_changed_body_is_not_intact(
    sent: Sent, tmp_path: Path
) -> None:
    with connect(sent.store) as conn:
        conn.execute(
            "UPDATE receipt SET body = replace(body, 'consegnato nella', 'consegnato NELLA')"
            " WHERE kind = 'delivered' AND recipient_id ="
            " (SELECT id FROM recipient WHERE address = 'luca@legalmail.it')"
        )

    _, files = await bundle(sent, tmp_path, now=datetime(2031, 1, 1, tzinfo=UTC))

    anna = html.unescape(page(files, "0002-anna@legalmail.it"))
    luca = html.unescape(page(files, "0003-luca@legalmail.it"))
    assert "certificato scaduto il 01/01/2030" in anna
    assert "firma NON integra: il contenuto non corrisponde alla firma" in luca
    assert "il corpo conservato NON corrisponde all'impronta registrata alla ricezione" in luca


async def test_an_unsigned_body_or_no_openssl_is_said_plainly(
    sent: Sent, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with connect(sent.store) as conn:
        conn.execute(
            "UPDATE receipt SET body = 'X-Ricevuta: avvenuta-consegna\n\nConsegnato.'"
            " WHERE kind = 'delivered' AND recipient_id ="
            " (SELECT id FROM recipient WHERE address = 'luca@legalmail.it')"
        )
    monkeypatch.setenv("PATH", "")

    _, files = await bundle(sent, tmp_path)

    anna = html.unescape(page(files, "0002-anna@legalmail.it"))
    luca = html.unescape(page(files, "0003-luca@legalmail.it"))
    assert "firma non verificata: openssl non è installato su questo computer" in anna
    assert "non firmata: il corpo conservato non ha una firma S/MIME" in luca


async def test_times_are_in_rome_with_the_offset_and_a_failure_has_its_reason_and_code(
    sent: Sent, tmp_path: Path
) -> None:
    _, files = await bundle(sent, tmp_path)

    anna = page(files, "0002-anna@legalmail.it")
    bianchi = html.unescape(page(files, "0004-fail.bianchi@legalmail.it"))
    assert START.hour == 8  # 09:00 in Rome, in winter
    assert '<th>Invio</th><td class="when">10/03/2026 09:00:00 (UTC+01:00)</td>' in anna
    assert "<th>Esito</th><td>non consegnato</td>" in bianchi
    assert "<th>Codice</th><td>5.1.1</td>" in bianchi
    assert "5.1.1 - pecmassiva.com - indirizzo non valido" in bianchi
    assert any(
        n.startswith("0004-fail.bianchi@legalmail.it/ricevute/")
        and n.endswith("-errore-consegna.eml")
        for n in files
    )


async def test_a_receipt_without_its_body_is_listed_with_its_subject_and_date(
    sent: Sent, tmp_path: Path
) -> None:
    with connect(sent.store) as conn:
        inbox_id, subject = conn.execute(
            "SELECT x.inbox_id, x.subject FROM receipt x JOIN recipient r"
            " ON r.id = x.recipient_id WHERE r.address = 'anna@legalmail.it'"
            " AND x.kind = 'accepted'"
        ).fetchone()
        # Gone from the mailbox before reconcile could keep its body.
        conn.execute(
            "UPDATE receipt SET body = NULL, body_sha256 = NULL WHERE inbox_id = ?", (inbox_id,)
        )

    done, files = await bundle(sent, tmp_path)

    text = html.unescape(page(files, "0002-anna@legalmail.it"))
    receipts = text[text.index("<h2>Ricevute</h2>") :]
    row = receipts[receipts.index(f"<td>{inbox_id}</td>") :].split("</tr>")[0]
    assert "ricevuta di accettazione" in row
    assert "10/03/2026" in row and "(UTC+01:00)" in row
    assert f"corpo non disponibile</span><br>oggetto: {subject}" in row
    assert not any(n.startswith(f"0002-anna@legalmail.it/ricevute/{inbox_id}-") for n in files)
    assert done.bodiless == 1


async def test_a_post_sent_before_hashes_were_kept_says_so_plainly(
    sent: Sent, tmp_path: Path
) -> None:
    with connect(sent.store) as conn:
        conn.execute("UPDATE recipient SET sent_content = NULL WHERE address = 'luca@legalmail.it'")

    done, files = await bundle(sent, tmp_path)
    accepted = _receipt_id(sent.store, "luca@legalmail.it", "accepted")
    delivered = _receipt_id(sent.store, "luca@legalmail.it")

    text = html.unescape(page(files, "0003-luca@legalmail.it"))
    assert "Impronte di quanto inviato non registrate" in text
    assert sorted(n for n in files if n.startswith("0003-luca@legalmail.it/")) == [
        "0003-luca@legalmail.it/attestazione.html",
        "0003-luca@legalmail.it/oggetto.txt",
        f"0003-luca@legalmail.it/ricevute/{accepted}-accettazione.eml",
        f"0003-luca@legalmail.it/ricevute/{delivered}-avvenuta-consegna.eml",
    ]
    assert json.loads(files["manifest.json"])["recipients"][1]["sent"] is None
    assert done.not_recorded == 1


async def test_a_file_the_archive_lost_is_said_never_invented(sent: Sent, tmp_path: Path) -> None:
    body = recorded(sent.store, "luca@legalmail.it")["body"]
    assert isinstance(body, str)
    Archive(sent.store.archive_dir).path(body).unlink()

    done, files = await bundle(sent, tmp_path)

    assert "0003-luca@legalmail.it/corpo.html" not in files
    text = html.unescape(page(files, "0003-luca@legalmail.it"))
    assert "Non in questa raccolta: il corpo (non conservato integro nell'archivio" in text
    assert f'{body}</td><td>non nota</td><td class="hash">non in questa raccolta' in text
    assert done.not_archived == 1
    assert verify_bundle(done.path).ok


async def test_a_message_that_failed_a_check_is_listed_apart_never_as_proof(
    sent: Sent,
    tmp_path: Path,
    simulator: Simulator,
    store: Store,
    demo: PecMassivaClient,
    clock: SimClock,
) -> None:
    luca = next(s for s in simulator.sends if s.recipients == ("luca@legalmail.it",))
    forged = f"CONSEGNA: Altro {luca.message_id}"
    simulator.inject_message(MAILBOX, subject=forged, sender=PROVIDER, recipient=MAILBOX)
    await reconcile(store, demo, MAILBOX, clock=clock.now)

    done, files = await bundle(sent, tmp_path)

    text = html.unescape(page(files, "0003-luca@legalmail.it"))
    proof, doubtful = text.split("Messaggi non attendibili (non costituiscono prova)")
    assert forged not in proof
    assert "non attendibile: its subject does not quote the subject that was sent" in doubtful
    assert f"{forged}<br>da: {PROVIDER}" in doubtful
    assert done.doubtful == 1
    receipts = json.loads(files["manifest.json"])["recipients"][1]["receipts"]
    assert [r["suspicious"] is not None for r in receipts] == [False, False, True]


async def test_the_page_shows_text_from_outside_as_text(
    store: Store, demo: PecMassivaClient, clock: SimClock, tmp_path: Path
) -> None:
    folder = write_folder(tmp_path / "c", [("anna@legalmail.it", "<b>Anna</b>", "<i>1</i>")])
    spec = load_spec(folder)
    await load_campaign(store, spec)
    campaign = await store.campaigns.get("prova")
    assert campaign is not None
    await Sender(store, demo, campaign, spec, SendOptions(rate=None), clock=clock.now).run()

    done = await make_bundle(store, "prova", tmp_path / "p.zip")

    with zipfile.ZipFile(done.path) as zf:
        text = zf.read("0002-anna@legalmail.it/attestazione.html").decode()
        subject = zf.read("0002-anna@legalmail.it/oggetto.txt")
    assert subject == b"Avviso <i>1</i>"  # the subject as sent, byte for byte
    assert "<td>Avviso &lt;i&gt;1&lt;/i&gt;</td>" in text
    assert "<i>" not in text


async def test_recipients_narrow_the_bundle_and_an_address_it_lacks_is_refused(
    sent: Sent, tmp_path: Path
) -> None:
    _, files = await bundle(sent, tmp_path, only=[" Luca@Legalmail.it "])
    accepted = _receipt_id(sent.store, "luca@legalmail.it", "accepted")
    delivered = _receipt_id(sent.store, "luca@legalmail.it")

    assert sorted(files) == [
        "0003-luca@legalmail.it/allegati/C0002.pdf",
        "0003-luca@legalmail.it/allegati/informativa.pdf",  # shared by no one else here
        "0003-luca@legalmail.it/attestazione.html",
        "0003-luca@legalmail.it/corpo.html",
        "0003-luca@legalmail.it/oggetto.txt",
        f"0003-luca@legalmail.it/ricevute/{accepted}-accettazione.eml",
        f"0003-luca@legalmail.it/ricevute/{delivered}-avvenuta-consegna.eml",
        "SHA256SUMS",
        "manifest.json",
    ]
    with pytest.raises(
        NotInCampaign, match=re.escape("campaign 'prova' has no recipient at x@pec.it")
    ):
        await make_bundle(sent.store, "prova", tmp_path / "altro.zip", only=["x@pec.it"])
    with pytest.raises(UnknownCampaign, match="no campaign called 'nessuna'"):
        await make_bundle(sent.store, "nessuna", tmp_path / "altro.zip")
    assert not (tmp_path / "altro.zip").exists()


async def test_sha256sum_checks_every_file_of_the_bundle_unzipped(
    sent: Sent, tmp_path: Path
) -> None:
    done, files = await bundle(sent, tmp_path)
    out = tmp_path / "unzipped"
    with zipfile.ZipFile(done.path) as zf:
        zf.extractall(out)

    checked = await asyncio.to_thread(
        subprocess.run,
        ["sha256sum", "-c", "--strict", "SHA256SUMS"],
        cwd=out,
        capture_output=True,
        text=True,
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr
    lines = checked.stdout.splitlines()
    assert len(lines) == len(files) - 1 == done.files - 1
    assert all(line.endswith(": OK") for line in lines)


def _receipt_id(store: Store, address: str, kind: str = "delivered") -> int:
    with connect(store) as conn:
        (inbox_id,) = conn.execute(
            "SELECT x.inbox_id FROM receipt x JOIN recipient r ON r.id = x.recipient_id"
            " WHERE r.address = ? AND x.kind = ?",
            (address, kind),
        ).fetchone()
    return int(inbox_id)


SECOND = "secondo@pecmassiva.com"


async def test_each_page_names_the_box_that_sent_it_and_its_receipts_come_from_that_box(
    store: Store,
    demo: PecMassivaClient,
    contract: ContractTransport,
    simulator: Simulator,
    clock: SimClock,
    tmp_path: Path,
) -> None:
    """A pool of two: the demo box may send 2 a day, the second 1; of four recipients the
    last stays pending, and the campaign's deadline passes before the bundle."""
    simulator.add_mailbox(SECOND, "pw-secondo")
    rows = [*ROWS, ("dora@legalmail.it", "Dora", "C0004")]
    folder = write_folder(tmp_path / "pool", rows)
    toml = folder / "campaign.toml"
    toml.write_text(
        toml.read_text(encoding="utf-8").replace(
            f'mailbox = "{MAILBOX}"', f'mailboxes = ["{MAILBOX}", "{SECOND}"]'
        ),
        encoding="utf-8",
    )
    spec = load_spec(folder)
    await load_campaign(store, spec)
    campaign = await store.campaigns.get("prova")
    assert campaign is not None
    async with ApiSession(BASE_URL, TOKEN, transport=contract) as api:
        second = PecMassivaClient(api, SECOND, "pw-secondo")
        pool = [Box(demo, Plan(daily=2), None), Box(second, Plan(daily=1), None)]
        await Sender(store, pool, campaign, spec, SendOptions(), clock=clock.now).run()
        clock.advance(600)
        await reconcile(store, demo, MAILBOX, clock=clock.now)
        # Two forged messages naming the second box's post, one in each box: only the
        # one in the box that sent it is about that post.
        with connect(store) as conn:
            address, message_id = conn.execute(
                "SELECT address, message_id FROM recipient WHERE mailbox = ?", (SECOND,)
            ).fetchone()
            late = Schedule(not_after=START).to_json()  # long past when bundled
            conn.execute("UPDATE campaign SET schedule = ?", (late,))
        for box in (MAILBOX, SECOND):
            simulator.inject_message(
                box, subject=f"CONSEGNA: {box} {message_id}", sender=PROVIDER, recipient=box
            )
        await reconcile(store, demo, MAILBOX, clock=clock.now)
        await reconcile(store, second, SECOND, clock=clock.now)

    done = await make_bundle(store, "prova", tmp_path / "p.zip")

    with zipfile.ZipFile(done.path) as zf:
        files = {name: zf.read(name) for name in zf.namelist()}
    manifest = json.loads(files["manifest.json"])
    assert (manifest["mailbox"], manifest["mailboxes"]) == (MAILBOX, [MAILBOX, SECOND])
    with connect(store) as conn:
        stored = dict(conn.execute("SELECT address, mailbox FROM recipient"))
    listed = {r["address"]: r for r in manifest["recipients"]}
    assert {a: r["mailbox"] for a, r in listed.items()} == stored
    assert Counter(stored.values()) == {MAILBOX: 2, SECOND: 1, None: 1}
    for entry in manifest["recipients"]:
        text = html.unescape(page(files, entry["folder"]))
        box = entry["mailbox"] or "nessuna: il messaggio non è stato inviato"
        assert f"<th>Casella mittente</th><td>{box}</td>" in text
    # The pending one, past the deadline: its outcome says so (its state stays pending).
    assert listed["dora@legalmail.it"]["state"] == "pending"
    dora = html.unescape(page(files, listed["dora@legalmail.it"]["folder"]))
    assert "<th>Esito</th><td>non inviato entro la scadenza</td>" in dora
    # The untrusted message kept with the second box's post is the one in that box.
    doubtful = [r for r in listed[address]["receipts"] if r["suspicious"]]
    assert [r["subject"] for r in doubtful] == [f"CONSEGNA: {SECOND} {message_id}"]
    assert verify_bundle(done.path).ok
