"""``massiva evidence NAME`` and ``massiva evidence verify FILE`` from the command line, on
the example campaign really sent to the simulator and its receipts read."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import pytest
from starlette.applications import Starlette

from tests.cli import ROOT, Invoke, cli, on, real_clock_app
from tests.db import connect

NAME = "esempio-avvisi-2026"
MARIO = "0002-mario.rossi@legalmail.it"


@pytest.fixture
def app() -> Starlette:
    return real_clock_app()


@pytest.fixture
def invoke(app: Starlette, tmp_path: Path, database: Path | str) -> Invoke:
    """``massiva ...`` on the test's database, on each engine."""
    return on(database, cli(app, tmp_path, mailbox="send_rate = 100.0\n"))


@pytest.fixture
def sent(invoke: Invoke, tmp_path: Path, app: Starlette, database: Path | str) -> Path | str:
    """The example campaign (twelve recipients) sent and its receipts read; the
    database (a SQLite file or a PostgreSQL URL)."""
    folder = shutil.copytree(ROOT / "campaigns" / "example", tmp_path / "example")
    assert invoke("campaign", "load", str(folder)).exit_code == 0
    assert invoke("send", NAME).exit_code == 0
    app.state.simulator.clock.advance(600)
    assert invoke("reconcile").exit_code == 0
    return database


@pytest.fixture
def bundled(invoke: Invoke, sent: Path | str, tmp_path: Path) -> Path:
    """The example campaign's bundle."""
    result = invoke("evidence", NAME, "-o", str(tmp_path / "prove.zip"))
    assert result.exit_code == 0, result.output
    return tmp_path / "prove.zip"


def entries(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def rewrite(path: Path, files: dict[str, bytes]) -> None:
    """Write the zip at ``path`` again, holding ``files``."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_the_example_campaign_makes_a_bundle_that_verify_accepts(
    invoke: Invoke, sent: Path | str, tmp_path: Path
) -> None:
    made = invoke("evidence", NAME, "-o", str(tmp_path / "prove.zip"))
    checked = invoke("evidence", "verify", str(tmp_path / "prove.zip"))

    files = entries(tmp_path / "prove.zip")
    assert made.exit_code == 0, made.output
    assert made.stdout.splitlines() == [
        f"{NAME}: 12 recipients, {len(files)} files,"
        f" {(tmp_path / 'prove.zip').stat().st_size:,} bytes written to {tmp_path / 'prove.zip'}.",
        f"Check it: massiva evidence verify {tmp_path / 'prove.zip'}",
    ]
    assert (checked.exit_code, checked.stdout) == (
        0,
        f"OK: {tmp_path / 'prove.zip'}: {len(files)} files, each as SHA256SUMS and"
        " manifest.json list it.\n",
    )


def test_every_delivered_recipient_has_its_delivery_receipt_and_the_hashes_of_what_was_sent(
    sent: Path | str, bundled: Path
) -> None:
    files = entries(bundled)
    manifest = json.loads(files["manifest.json"])
    with connect(sent) as conn:
        delivered = {
            address: json.loads(content)
            for address, content in conn.execute(
                "SELECT address, sent_content FROM recipient WHERE state = 'delivered'"
            )
        }
    assert len(delivered) >= 9

    shown = {r["address"]: r for r in manifest["recipients"] if r["state"] == "delivered"}
    assert shown.keys() == delivered.keys()
    for address, recorded in delivered.items():
        recipient = shown[address]
        (receipt,) = [r for r in recipient["receipts"] if r["kind"] == "delivered"]
        assert receipt["path"].endswith("-avvenuta-consegna.eml")
        assert sha(files[receipt["path"]]) == receipt["sha256"]
        assert receipt["signature"]["intact"] is True
        sent_hashes = recipient["sent"]
        assert (sent_hashes["subject"], sent_hashes["body"]) == (
            recorded["subject"],
            recorded["body"],
        )
        folder = recipient["folder"]
        assert sha(files[f"{folder}/oggetto.txt"]) == recorded["subject"]
        assert sha(files[f"{folder}/corpo.html"]) == recorded["body"]
        for (_, digest, size), attachment in zip(
            recorded["attachments"], sent_hashes["attachments"], strict=True
        ):
            data = files[attachment["path"]]
            assert (sha(data), len(data)) == (digest, size)
        page = files[f"{folder}/attestazione.html"].decode()
        for digest in (recorded["subject"], recorded["body"], receipt["sha256"]):
            assert digest in page
    mario = files[f"{MARIO}/allegati/fattura-CL-0001.pdf"]
    assert mario == (ROOT / "campaigns/example/allegati/fattura-CL-0001.pdf").read_bytes()


def test_one_byte_changed_in_one_file_is_caught_by_name(invoke: Invoke, bundled: Path) -> None:
    files = entries(bundled)
    receipt = next(n for n in files if n.startswith(f"{MARIO}/ricevute/"))
    changed = bytearray(files[receipt])
    changed[200] ^= 0x01
    was = sha(files[receipt])
    rewrite(bundled, {**files, receipt: bytes(changed)})

    result = invoke("evidence", "verify", str(bundled))

    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{bundled}: NOT as it was made; 1 problem(s):",
        f"  changed     {receipt}: its SHA-256 is {sha(bytes(changed))}; SHA256SUMS and"
        f" manifest.json say {was}",
    ]


def test_a_byte_damaged_in_the_zip_itself_is_caught_by_name(invoke: Invoke, bundled: Path) -> None:
    with zipfile.ZipFile(bundled) as zf:
        info = zf.getinfo(f"{MARIO}/attestazione.html")
    raw = bytearray(bundled.read_bytes())
    raw[info.header_offset + 30 + len(info.filename.encode()) + 40] ^= 0xFF
    bundled.write_bytes(bytes(raw))

    result = invoke("evidence", "verify", str(bundled), "--json")

    assert result.exit_code == 1
    problems = json.loads(result.stdout)["problems"]
    assert [(p["path"], p["problem"]) for p in problems] == [(info.filename, "damaged")]


def test_a_file_removed_is_caught_by_name(invoke: Invoke, bundled: Path) -> None:
    files = entries(bundled)
    removed = f"{MARIO}/corpo.html"
    rewrite(bundled, {n: d for n, d in files.items() if n != removed})

    result = invoke("evidence", "verify", str(bundled), "--json")

    assert result.exit_code == 1
    verdict = json.loads(result.stdout)
    assert (verdict["ok"], verdict["files"]) == (False, len(files) - 1)
    assert verdict["problems"] == [
        {
            "path": removed,
            "problem": "missing",
            "detail": "listed in SHA256SUMS and manifest.json, not in the zip",
        }
    ]


def test_a_file_added_is_caught_by_name(invoke: Invoke, bundled: Path) -> None:
    added = f"{MARIO}/ricevute/99-avvenuta-consegna.eml"
    rewrite(bundled, {**entries(bundled), added: b"X-Ricevuta: avvenuta-consegna\n\nfalsa"})

    result = invoke("evidence", "verify", str(bundled))

    assert result.exit_code == 1
    assert result.stdout.splitlines()[1:] == [
        f"  not listed  {added}: in the zip, not in SHA256SUMS nor manifest.json"
    ]


def test_a_file_that_is_no_zip_is_refused(invoke: Invoke, tmp_path: Path) -> None:
    (tmp_path / "prove.zip").write_bytes(b"not a zip")

    result = invoke("evidence", "verify", str(tmp_path / "prove.zip"))

    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {tmp_path / 'prove.zip'} is not a readable zip file")


def test_recipient_narrows_the_bundle_to_that_person(
    invoke: Invoke, sent: Path | str, tmp_path: Path
) -> None:
    result = invoke(
        "evidence", NAME, "--recipient", "Mario.Rossi@legalmail.it", "-o", str(tmp_path / "m.zip")
    )

    assert result.exit_code == 0, result.output
    folders = {name.split("/")[0] for name in entries(tmp_path / "m.zip")}
    assert folders == {MARIO, "manifest.json", "SHA256SUMS"}
    assert invoke("evidence", "verify", str(tmp_path / "m.zip")).exit_code == 0


def test_an_address_the_campaign_lacks_exits_1_and_a_bad_one_2(
    invoke: Invoke, sent: Path | str, tmp_path: Path
) -> None:
    lacking = invoke("evidence", NAME, "--recipient", "nessuno@pec.it")
    bad = invoke("evidence", NAME, "--recipient", "nessuno@")

    assert (lacking.exit_code, lacking.stderr) == (
        1,
        f"Error: campaign '{NAME}' has no recipient at nessuno@pec.it: see massiva report {NAME}\n",
    )
    assert (bad.exit_code, bad.stderr) == (
        2,
        "Error: --recipient nessuno@ is not an address: no domain\n",
    )
    assert not list(tmp_path.glob("*.zip"))


def test_a_campaign_that_does_not_exist_exits_1_with_the_usual_message(
    invoke: Invoke, tmp_path: Path
) -> None:
    result = invoke("evidence", "nessuna", "-o", str(tmp_path / "p.zip"))

    assert (result.exit_code, result.stderr) == (
        1,
        "Error: no campaign called 'nessuna': see massiva campaign list\n",
    )
    assert not (tmp_path / "p.zip").exists()


def test_the_bundle_is_never_written_through_a_symbolic_link(
    invoke: Invoke, sent: Path | str, tmp_path: Path
) -> None:
    victim = tmp_path / "importante.txt"
    victim.write_text("da non toccare", encoding="utf-8")
    (tmp_path / "prove.zip").symlink_to(victim)

    result = invoke("evidence", NAME, "-o", str(tmp_path / "prove.zip"))

    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {tmp_path / 'prove.zip'} is a symbolic link: massiva does not write through"
        " links; remove it and run again (or give another -o)\n"
    )
    assert victim.read_text(encoding="utf-8") == "da non toccare"
    assert not list(tmp_path.glob(".prove.zip.*"))


def test_bundle_is_the_default_command_and_can_be_named(
    invoke: Invoke, sent: Path | str, tmp_path: Path
) -> None:
    named = invoke("evidence", "bundle", NAME, "-o", str(tmp_path / "a.zip"), "--json")
    default = invoke("evidence", NAME, "-o", str(tmp_path / "b.zip"), "--json")

    assert named.exit_code == default.exit_code == 0
    first, second = json.loads(named.stdout), json.loads(default.stdout)
    assert first["recipients"] == second["recipients"] == 12
    assert first["files"] == second["files"] == len(entries(tmp_path / "a.zip"))
    assert first["receipts_without_body"] == 0  # reconcile keeps every receipt's body
