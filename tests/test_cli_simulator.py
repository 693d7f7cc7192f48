"""``massiva simulator --port P`` serves both APIs; curl can send at once."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.test_api_session import free_port

SEND = {
    "recipient": "mario.rossi@legalmail.it",
    "subject": "Invio di prova pec massiva",
    "body": "<p>Salve</p>",
    "username": "demo@pecmassiva.com",
    "password": "demo",
}


def wait_for_port(process: subprocess.Popen[str] | subprocess.Popen[bytes], port: int) -> None:
    """Wait until ``process`` listens on ``port`` (fail the test if it dies or hangs)."""
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"the simulator did not start: {process.communicate()[0]!r}")
            time.sleep(0.1)


@pytest.fixture
def served() -> Iterator[str]:
    """``massiva simulator`` in a subprocess; yields its base URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "massiva", "simulator", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    wait_for_port(process, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        assert process.stdout is not None
        process.stdout.close()


def curl(*args: str) -> tuple[int, dict[str, object]]:
    """Run curl; return the HTTP status and the JSON body."""
    out = subprocess.run(
        ["curl", "-s", "-w", "\n%{http_code}", "-H", "Authorization: Bearer any-token", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    body, _, status = out.rpartition("\n")
    return int(status), json.loads(body)


def test_curl_sends_and_the_acceptance_is_in_the_inbox(served: str) -> None:
    status, sent = curl(
        "-X",
        "POST",
        f"{served}/send",
        "-H",
        "Content-Type: application/json",
        "-d",
        json.dumps(SEND),
    )
    assert status == 201
    assert sent["success"] is True and sent["sent"] == 1
    message_id = sent["message_id"]

    status, inbox = curl(
        f"{served}/inbox", "-H", "x-username: demo@pecmassiva.com", "-H", "x-password: demo"
    )

    assert status == 200
    subjects = [m["object"] for m in inbox["data"]]  # type: ignore[attr-defined]
    assert f"ACCETTAZIONE: Invio di prova pec massiva {message_id}" in subjects


def test_without_a_token_curl_is_refused(served: str) -> None:
    out = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"{served}/inbox"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    assert out == "401"
