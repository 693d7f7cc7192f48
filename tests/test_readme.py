"""The README is tested: its tour runs as written on a real simulator, and it names every
command (sqlite-utils tests its documentation the same way).

The tour is the ``sh`` blocks that follow a ``<!-- tour -->`` line, in order, and the one
after ``<!-- tour: simulator -->``, which starts the simulator. The simulator runs as a
real subprocess; the tour runs as one bash script (``set -euo pipefail``) in a new folder
laid out as the root of a clone (``campaigns/``, ``templates/``), with none of massiva's
variables in its environment but those the tour exports. Only the port is changed, from
the README's 8080 to a free one. A command that fails names its line in README.md.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from massiva.cli import main
from tests.test_cli_docs import commands

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TOUR, SIMULATOR = "<!-- tour -->", "<!-- tour: simulator -->"
PORT = "8080"  # the README's port, replaced by a free one
#: The tour sends twelve messages at the provider's pace and waits a simulated day.
TOUR_TIMEOUT = 300


@dataclass(frozen=True)
class Block:
    """A code block of README.md: the line of its first command, and its text."""

    line: int
    text: str


def marked(marker: str) -> list[Block]:
    """The ``sh`` blocks that follow a line holding just ``marker``, in order."""
    lines = README.read_text(encoding="utf-8").splitlines()
    found = []
    for number, line in enumerate(lines):
        if line.strip() != marker:
            continue
        assert lines[number + 1] == "```sh", (
            f"README.md:{number + 1}: {marker} is not before a sh block"
        )
        end = lines.index("```", number + 2)
        found.append(Block(number + 3, "\n".join(lines[number + 2 : end])))
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def environment() -> dict[str, str]:
    """This environment without massiva's variables, with this Python's ``massiva``
    first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAPI_", "MASSIVA_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[str]:
    """The README's simulator command, on a free port; yields the port."""
    (block,) = marked(SIMULATOR)
    port = str(free_port())
    command = shlex.split(block.text.replace(PORT, port))
    log = (tmp_path / "simulator.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment())
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/_simulator/clock", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, (tmp_path / "simulator.log").read_text()
                assert time.monotonic() < deadline, "the simulator did not start"
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(10)
        log.close()


def tour_script(port: str) -> tuple[str, list[int]]:
    """The tour as one bash script, and the README line of each of its lines (0: none)."""
    script = [
        "set -euo pipefail",
        """trap 'echo "tour failed at script line $LINENO: $BASH_COMMAND" >&2' ERR""",
    ]
    origin = [0, 0]
    for block in marked(TOUR):
        for offset, line in enumerate(block.text.replace(PORT, port).splitlines()):
            script.append(line)
            origin.append(block.line + offset)
    return "\n".join(script) + "\n", origin


def massiva(folder: Path, *args: str) -> Any:
    """``massiva ARGS --json`` in ``folder``, with the tour's variables; its JSON."""
    done = subprocess.run(
        ["massiva", *args, "--json"],
        cwd=folder,
        env={**environment(), "OPENAPI_TOKEN": "any", "MASSIVA_PASSWORD_DEMO": "demo"},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def test_the_tour_runs_as_written_on_the_simulator(simulator: str, tmp_path: Path) -> None:
    folder = tmp_path / "tour"
    for part in ("campaigns", "templates"):
        shutil.copytree(ROOT / part, folder / part)
    script, origin = tour_script(simulator)
    (tmp_path / "tour.sh").write_text(script, encoding="utf-8")

    done = subprocess.run(
        ["bash", str(tmp_path / "tour.sh")],
        cwd=folder,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=TOUR_TIMEOUT,
    )

    failed = re.search(r"tour failed at script line (\d+): (.*)", done.stderr)
    where = f"README.md:{origin[int(failed.group(1)) - 1]}: {failed.group(2)}" if failed else ""
    assert done.returncode == 0, f"{where}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    # The tour's story, as its comments tell it: one recipient expired after a day.
    status = massiva(folder, "campaign", "status", "esempio-avvisi-2026")
    counts = {k: v for k, v in status["counts"].items() if v}
    assert counts == {"delivered": 10, "failed": 1, "expired": 1}
    giorgia = {
        s["campaign"]: s
        for s in massiva(folder, "recipient", "giorgia.russo@gmail.com")["sendings"]
    }
    assert giorgia["esempio-avvisi-2026"]["state"] == "expired"
    assert [r["kind"] for r in giorgia["esempio-avvisi-2026"]["receipts"]] == ["accepted"]
    assert (
        giorgia["esempio-avvisi-2026-retry-1"]["state"] == "pending"
    )  # in the cancelled follow-up
    retry = massiva(folder, "campaign", "status", "esempio-avvisi-2026-retry-1")
    assert (retry["state"], retry["total"]) == ("cancelled", 2)
    assert (folder / "modulo.pdf").read_bytes().startswith(b"%PDF")
    assert (folder / "esito.xlsx").read_bytes().startswith(b"PK")
    # The evidence bundle the tour wrote: every delivered recipient's delivery receipt in it.
    with zipfile.ZipFile(folder / "prove.zip") as bundle:
        names = bundle.namelist()
    assert sum("/ricevute/" in n and n.endswith("-avvenuta-consegna.eml") for n in names) == 10
    assert len(list(folder.glob("*.html"))) == 1
    boxes = {b["address"]: b["state"] for b in massiva(folder, "mailbox", "list", "--local")}
    assert boxes["ufficio@pecmassiva.com"] == "revocata"


@pytest.mark.parametrize("path", commands(main), ids=" ".join)
def test_the_readme_names_every_command(path: tuple[str, ...]) -> None:
    named = re.compile(r"\bmassiva\s+" + r"\s+".join(map(re.escape, path)) + r"\b")
    assert named.search(README.read_text(encoding="utf-8")), (
        f"README.md never names `massiva {' '.join(path)}`: add it to 'Every command'"
    )
