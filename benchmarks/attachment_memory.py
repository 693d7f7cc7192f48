"""Peak memory of `massiva send` with a large shared attachment, beside a bare baseline.

A campaign of ``--recipients`` rows (200 by default) shares one ``--mb`` MB attachment
(40 by default). `massiva campaign load`, then `massiva send` at 100 posts a second,
runs as a subprocess against a ``massiva simulator`` process on loopback with its pace
check lifted (``--send-rate 0``); every post must be accepted. Its peak resident memory
(``ru_maxrss`` of that one process, from ``os.wait4``) is printed beside the bare
baseline, measured the same way in the same run: a Python process that reads the file
and base64-encodes it once (what any sender must hold at least once).

Target: ours under 300 MB, and not growing with the recipients (try ``--recipients 12``).
The figures are printed, never asserted.

Run: python benchmarks/attachment_memory.py [--recipients 200] [--mb 40]
(to measure another checkout of massiva: PYTHONPATH=/that/checkout python ...)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from send_pace import served

MAILBOX, PASSWORD = "demo@pecmassiva.com", "demo"
RATE = 100.0  # posts a second: the pace is not what is measured
TARGET_MB = 300

BARE = """
import base64, sys
with open(sys.argv[1], "rb") as file:
    data = file.read()
encoded = base64.b64encode(data)
"""


def peak_mb(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    """Run ``command``; its peak RSS in MB (of that process alone) and its output."""
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        output = out.read().decode(errors="replace")
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {process.returncode}:\n{output}")
    return usage.ru_maxrss / 1024, output  # ru_maxrss is in KiB on Linux


def write_campaign(folder: Path, recipients: int, mb: int) -> Path:
    """A campaign whose every message carries one ``mb`` MB PDF; its attachment's path."""
    folder.mkdir()
    attachment = folder / "allegato.pdf"
    with attachment.open("wb") as file:
        file.write(b"%PDF-1.4\n")
        for _ in range(mb):  # incompressible, like a scanned document
            file.write(os.urandom(2**20))
    (folder / "campaign.toml").write_text(
        f'name = "memoria"\nmailbox = "{MAILBOX}"\nsubject = "Avviso {{{{ codice }}}}"\n'
        'body = "<p>Gentile {{ nome }}</p>"\nrecipients = "destinatari.csv"\n'
        'address_column = "pec"\nattachments = ["allegato.pdf"]\n',
        encoding="utf-8",
    )
    rows = [f"utente{i:03d}@legalmail.it;Utente {i};C{i:04d}" for i in range(recipients)]
    (folder / "destinatari.csv").write_text(
        "pec;nome;codice\n" + "\n".join(rows) + "\n", encoding="utf-8"
    )
    return attachment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=200, help="rows of the campaign")
    parser.add_argument("--mb", type=int, default=40, help="size of the shared attachment")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        attachment = write_campaign(root / "campagna", args.recipients, args.mb)
        (root / "massiva.toml").write_text(
            f'[database]\npath = "massiva.db"\n\n[mailboxes."{MAILBOX}"]\n'
            f'password_env = "MASSIVA_PASSWORD"\nsend_rate = {RATE}\n',
            encoding="utf-8",
        )
        env = {**os.environ, "OPENAPI_TOKEN": "x", "MASSIVA_PASSWORD": PASSWORD}
        bare, _ = peak_mb([sys.executable, "-c", BARE, str(attachment)], root, env)
        with served("--send-rate", "0") as sim:
            since = httpx.get(f"{sim.url}/_simulator/requests").json()["next"]
            massiva = [sys.executable, "-m", "massiva", "--api-url", sim.url]
            massiva += ["--sending-url", sim.url]
            peak_mb([*massiva, "campaign", "load", "campagna"], root, env)
            started = time.monotonic()
            ours, output = peak_mb([*massiva, "send", "memoria", "--json"], root, env)
            took = time.monotonic() - started
            answer = httpx.get(f"{sim.url}/_simulator/requests", params={"since": since})
            sends = [r for r in answer.json()["requests"] if r["path"] == "/send"]
        accepted = sum(r["status"] == 201 for r in sends)
        if accepted != args.recipients:
            raise SystemExit(f"{accepted} of {args.recipients} posts accepted:\n{output}")
    print(
        f"{args.mb} MB shared attachment to {args.recipients} recipients"
        f" ({accepted} posts accepted in {took:.0f} s)"
    )
    print(
        f"peak RSS: massiva send {ours:.0f} MB, bare read + base64 once {bare:.0f} MB"
        f" (ratio {ours / bare:.1f}); target < {TARGET_MB} MB"
    )


if __name__ == "__main__":
    main()
