"""``massiva send`` killed with SIGKILL at random moments, and run twice at once, against
the simulator in another process on loopback: every recipient is posted exactly once, by
the simulator's own count.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.db import connect
from tests.test_api_session import free_port
from tests.test_cli_simulator import wait_for_port
from tests.test_sender import make_campaign, pec_addresses

RECIPIENTS = 150
GRACE = "2"  # seconds before an unknown post with no receipt is sent again


@pytest.fixture
def simulator_url() -> Iterator[str]:
    """``massiva simulator`` in its own process, pacing lifted (the sender still paces)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "massiva", "simulator", "--port", str(port), "--send-rate", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(process, port)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


class Massiva:
    """Runs ``massiva`` commands on one database, against the simulator."""

    def __init__(self, tmp_path: Path, url: str) -> None:
        self.config = tmp_path / "massiva.toml"
        self.config.write_text(
            '[database]\npath = "massiva.db"\n'
            '[mailboxes."demo@pecmassiva.com"]\npassword_env = "DEMO_PASSWORD"\n',
            encoding="utf-8",
        )
        self.args = [
            sys.executable,
            "-m",
            "massiva",
            "--config",
            str(self.config),
            "--api-url",
            url,
            "--sending-url",
            url,
        ]
        self.env = {**os.environ, "OPENAPI_TOKEN": "any-token", "DEMO_PASSWORD": "demo"}

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*self.args, *args],
            env=self.env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.args, *args], env=self.env, text=True, capture_output=True, timeout=120
        )

    def counts(self) -> dict[str, int]:
        result = self.run("campaign", "status", "prova", "--json")
        assert result.returncode == 0, result.stderr
        counts: dict[str, int] = json.loads(result.stdout)["counts"]
        return counts


def claimed(tmp_path: Path) -> int:
    """Recipients that have left ``pending`` (read from another connection)."""
    with connect(tmp_path / "massiva.db") as db:
        count: int = db.execute(
            "SELECT count(*) FROM recipient WHERE state != 'pending'"
        ).fetchone()[0]
    return count


def posts(url: str) -> dict[str, int]:
    found: dict[str, int] = httpx.get(f"{url}/_simulator/posts").json()["posts"]
    return found


def finish(massiva: Massiva) -> None:
    """Run ``send`` to the end: unknown posts wait out their grace period."""
    for _ in range(20):
        result = massiva.run("send", "prova", "--rate", "50", "--grace", GRACE)
        assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
        counts = massiva.counts()
        if counts["pending"] == counts["unknown"] == counts["sending"] == 0:
            return
        time.sleep(float(GRACE) + 0.2)
    pytest.fail(f"recipients left unsent: {massiva.counts()}")


def test_sigkill_at_random_moments_never_posts_a_recipient_twice(
    tmp_path: Path, simulator_url: str
) -> None:
    folder = make_campaign(tmp_path / "campagna", pec_addresses(RECIPIENTS))
    massiva = Massiva(tmp_path, simulator_url)
    assert massiva.run("campaign", "load", str(folder)).returncode == 0
    chance = random.Random(20261122)

    kills = orphans = 0
    while kills < 20:
        before = claimed(tmp_path)
        process = massiva.start("send", "prova", "--rate", "8", "--grace", GRACE)
        # Kill mid-send: once this run has claimed someone (start-up time varies with the
        # machine's load), at a random moment within the next few posts.
        deadline = time.monotonic() + 60
        while claimed(tmp_path) == before and process.poll() is None:
            assert time.monotonic() < deadline, "the sender never claimed anyone"
            time.sleep(0.02)
        time.sleep(chance.uniform(0.0, 0.4))
        if process.poll() is not None:
            process.communicate()
            break  # it finished before the kill: nothing left to send
        process.send_signal(signal.SIGKILL)
        process.communicate()
        kills += 1
        with connect(tmp_path / "massiva.db") as db:  # claimed, answer never read
            orphans += db.execute(
                "SELECT count(*) FROM recipient WHERE state = 'sending'"
            ).fetchone()[0]
    finish(massiva)

    counted = posts(simulator_url)
    assert kills >= 20, f"only {kills} kills landed before the campaign was all sent"
    assert orphans > 0, "no kill landed between a claim and its answer"
    assert counted == dict.fromkeys(pec_addresses(RECIPIENTS), 1)
    assert massiva.counts()["sent"] == RECIPIENTS


def test_two_senders_started_at_once_never_post_a_recipient_twice(
    tmp_path: Path, simulator_url: str
) -> None:
    folder = make_campaign(tmp_path / "campagna", pec_addresses(10))
    massiva = Massiva(tmp_path, simulator_url)
    assert massiva.run("campaign", "load", str(folder)).returncode == 0

    both = [massiva.start("send", "prova", "--rate", "20") for _ in range(2)]
    outcomes = [(p.wait(timeout=120), p.communicate()[1]) for p in both]
    finish(massiva)

    assert posts(simulator_url) == dict.fromkeys(pec_addresses(10), 1)
    for code, stderr in outcomes:
        assert code == 0 or (code == 1 and "another massiva send" in stderr), stderr
