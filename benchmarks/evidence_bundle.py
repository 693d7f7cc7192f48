"""The evidence bundle of a campaign of N recipients (default 2,000), beside a bare zip.

A campaign is really sent to the in-process simulator (a shared 200 kB attachment and a
20 kB one per recipient, both incompressible as real PDFs are; 2% of the addresses fail)
and its receipts read with their bodies, as ``massiva send`` and ``massiva reconcile`` do.
Then, each in its own process so that each peak RSS is its own:
  - bare: the same files (subject, body and attachments from the archive, every receipt
    body kept) written into a zip with zipfile alone: no hash, no signature check, no
    page, no index;
  - massiva: ``massiva evidence NAME`` as the library does it (every file hashed, every
    receipt's signature checked with openssl, an Italian page a recipient, manifest.json
    and SHA256SUMS), and then ``massiva evidence verify`` of the bundle.
The signature checks dominate: openssl takes tens of milliseconds a receipt, so the
script also prints one check's cost and the cores they share.

Run: python benchmarks/evidence_bundle.py [--recipients 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
import zipfile
from contextlib import closing
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from massiva.api import ApiSession, PecMassivaClient
from massiva.archive import Archive
from massiva.campaign import load_spec
from massiva.evidence.bundle import CHECKS
from massiva.loading import load_campaign
from massiva.reconcile import reconcile
from massiva.sender import Sender, SendOptions
from massiva.simulator import SimClock, SimulatorSettings, create_app
from massiva.times import utcnow

NAME = "prove-2026"
MAILBOX, PASSWORD = "demo@pecmassiva.com", "demo"


def campaign_folder(folder: Path, n: int) -> Path:
    """A campaign of ``n`` recipients with a shared attachment and one each."""
    (folder / "allegati").mkdir(parents=True)
    (folder / "campaign.toml").write_text(
        f'name = "{NAME}"\nmailbox = "{MAILBOX}"\n'
        'subject = "Avviso di pagamento {{ codice }}"\n'
        'body = "<p>Gentile {{ nome }}, in allegato la fattura {{ codice }}.</p>"\n'
        'recipients = "destinatari.csv"\naddress_column = "pec"\n'
        'attachments = ["informativa.pdf"]\nattachment_column = "allegato"\n',
        encoding="utf-8",
    )
    # Random bytes after the header: a real PDF's streams are compressed already.
    (folder / "informativa.pdf").write_bytes(b"%PDF-1.4\n" + os.urandom(200_000))
    rows = ["pec;nome;codice;allegato"]
    for i in range(n):
        who = f"fail.utente{i:05d}" if i % 50 == 49 else f"utente{i:05d}"
        pdf = f"allegati/F{i:05d}.pdf"
        (folder / pdf).write_bytes(b"%PDF-1.4\n" + os.urandom(20_000))
        rows.append(f"{who}@legalmail.it;Utente {i};F{i:05d};{pdf}")
    (folder / "destinatari.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


async def send_and_reconcile(db: Path, folder: Path) -> None:
    """Send the campaign to the in-process simulator, then read its receipts."""
    from massiva.store import Store

    clock = SimClock(start=utcnow(), speed=0)
    app = create_app(SimulatorSettings(send_rate=None), clock=clock)
    spec = load_spec(folder)
    transport = httpx.ASGITransport(app=app)
    async with (
        await Store.open(db) as store,
        ApiSession("http://sim", "x", transport=transport) as session,
    ):
        client = PecMassivaClient(session, MAILBOX, PASSWORD)
        await load_campaign(store, spec)
        campaign = await store.campaigns.get(NAME)
        assert campaign is not None
        options = SendOptions(rate=None)
        progress = await Sender(store, client, campaign, spec, options, clock=clock.now).run()
        assert progress.stopped == "done", progress.stopped
        clock.advance(600)
        while (await reconcile(store, client, MAILBOX, clock=clock.now)).backfilled:
            pass  # bodies fetched late: until every one is kept


def bare(db: Path, out: Path) -> int:
    """The same files zipped with zipfile alone; the number of files."""
    archive = Archive.beside(db)
    files, shared = 0, set()
    with (
        closing(sqlite3.connect(db)) as conn,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf,
    ):
        for rid, row, address, subject, content in conn.execute(
            "SELECT id, row, address, subject, sent_content FROM recipient ORDER BY id"
        ).fetchall():
            folder = f"{row:04d}-{address}"
            sent = json.loads(content)
            zf.writestr(f"{folder}/oggetto.txt", subject.encode())
            zf.write(archive.path(sent["body"]), f"{folder}/corpo.html")
            files += 2
            for name, digest, _ in sent["attachments"]:
                if name == "informativa.pdf":
                    if digest in shared:
                        continue
                    shared.add(digest)
                    zf.write(archive.path(digest), f"allegati/{digest}-{name}")
                else:
                    zf.write(archive.path(digest), f"{folder}/allegati/{Path(name).name}")
                files += 1
            for inbox_id, kind, body in conn.execute(
                "SELECT inbox_id, kind, body FROM receipt WHERE recipient_id = ?"
                " AND body IS NOT NULL ORDER BY inbox_id",
                (rid,),
            ):
                zf.writestr(f"{folder}/ricevute/{inbox_id}-{kind}.eml", body.encode())
                files += 1
    return files


def ours(db: Path, out: Path) -> int:
    """``massiva evidence NAME -o out``; the number of files."""
    from massiva.evidence import make_bundle
    from massiva.store import Store

    async def run() -> int:
        async with await Store.open(db) as store:
            return (await make_bundle(store, NAME, out)).files

    return asyncio.run(run())


def verify(db: Path, out: Path) -> int:
    """``massiva evidence verify`` of the bundle massiva wrote (``out`` is not written);
    the number of files."""
    from massiva.evidence import verify_bundle

    verdict = verify_bundle(db.with_name("massiva.zip"))
    assert verdict.ok, verdict.problems
    return verdict.files


def child(kind: str, db: Path) -> None:
    out = db.with_name(f"{kind}.zip")
    run = {"bare": bare, "massiva": ours, "verify": verify}[kind]
    started = time.perf_counter()
    files = run(db, out)
    elapsed = time.perf_counter() - started
    size = (out if out.exists() else db.with_name("massiva.zip")).stat().st_size
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "files": files,
                "seconds": elapsed,
                "bytes": size,
                "peak_mb": usage.ru_maxrss / 1024,
                "cpu": usage.ru_utime + usage.ru_stime,
                # openssl's runs (the signature checks)
                "children_cpu": resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime,
            }
        )
    )


def measure(kind: str, db: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(db)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, float] = json.loads(out)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=2000)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "massiva.db"
        started = time.perf_counter()
        folder = campaign_folder(Path(tmp) / "campagna", args.recipients)
        asyncio.run(send_and_reconcile(db, folder))
        with closing(sqlite3.connect(db)) as conn:
            receipts, bodies = conn.execute(
                "SELECT count(*), count(body) FROM receipt WHERE recipient_id IS NOT NULL"
            ).fetchone()
        print(
            f"sent {args.recipients:,} recipients, read {receipts:,} receipts ({bodies:,} with"
            f" their body) in {time.perf_counter() - started:.1f} s"
        )
        baseline = measure("bare", db)
        bundled = measure("massiva", db)
        checked = measure("verify", db)
    print(f"{'':44} {'files':>7} {'MB':>7} {'wall s':>7} {'CPU s':>7} {'peak RSS':>9}")
    for label, m in (
        ("bare: zipfile alone", baseline),
        ("massiva evidence NAME", bundled),
        ("massiva evidence verify", checked),
    ):
        cpu = m["cpu"] + m["children_cpu"]
        print(
            f"{label:44} {m['files']:7,.0f} {m['bytes'] / 1e6:7.1f} {m['seconds']:7.1f}"
            f" {cpu:7.1f} {m['peak_mb']:6.0f} MB"
        )
    print(
        f"massiva evidence: {bundled['seconds'] / baseline['seconds']:.1f} x the bare zip's time,"
        f" {bundled['bytes'] / baseline['bytes']:.2f} x its size; openssl (one run per receipt"
        f" body, {CHECKS} at a time) took {bundled['children_cpu']:.1f} s of CPU,"
        f" {bundled['children_cpu'] / max(bodies, 1) * 1000:.0f} ms a receipt"
    )


if __name__ == "__main__":
    main()
