"""``massiva demo`` runs the whole job on the simulator and writes the reports; on a
terminal, as a user sees it: a progress bar that knows its total and ends before the
lines after it, and Ctrl+C or SIGTERM that stop it with 130 or 143."""

from __future__ import annotations

import csv
import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections import Counter
from pathlib import Path

import pytest

COLOURS = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def on_a_terminal(
    args: list[str], cwd: Path, *, stop_when: str = "", signum: int = 0
) -> tuple[int, str]:
    """Run ``massiva ARGS`` on a pseudo-terminal 200 columns wide; its exit code and the
    screen as written (stdout and stderr together, as a user sees them). With
    ``stop_when``, send ``signum`` as soon as that text is on the screen."""
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("TTY_COMPATIBLE", "FORCE_COLOR")}
    process = subprocess.Popen(
        [sys.executable, "-m", "massiva", *args],
        cwd=cwd,
        env=env,
        stdin=child,
        stdout=child,
        stderr=child,
    )
    os.close(child)
    screen = b""
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline:
            if select.select([main], [], [], 0.1)[0]:
                try:
                    data = os.read(main, 65536)
                except OSError:  # the terminal closed: the process and its children ended
                    break
                if not data:
                    break
                screen += data
            if stop_when and stop_when.encode() in screen:
                process.send_signal(signum)
                stop_when = ""
        return process.wait(timeout=30), screen.decode()
    finally:
        os.close(main)
        if process.poll() is None:
            process.kill()
            process.wait()


def frames(screen: str) -> list[str]:
    """The screen's lines and redrawn lines, without colours."""
    return [line.strip() for line in re.split(r"\r\n|\r|\n", COLOURS.sub("", screen))]


def test_the_demo_runs_to_the_end_and_its_report_has_every_outcome(tmp_path: Path) -> None:
    out = tmp_path / "demo-out"

    code, screen = on_a_terminal(["demo", "--out", str(out)], tmp_path)

    assert code == 0, screen
    lines = frames(screen)
    assert lines[0] == (
        "massiva demo: everything below runs on the built-in simulator; no real PEC is sent."
    )
    assert [line for line in lines if line][-1] == (
        "This ran on the built-in simulator: no real PEC was sent, nothing left this machine."
    )
    assert "Active (evasa) until" in screen
    # The bar: its total from the first frame, one Rome day's allowance going only down,
    # and it ends (finalised, the cursor back) before the lines after it.
    bar = [i for i, line in enumerate(lines) if line.startswith("sending ")]
    summary = lines.index("12 sent, 0 rejected.")
    assert bar and bar[-1] < summary
    assert re.fullmatch(r"sending ━+ +0/12 sent 0 .* done in 0:00:1\d", lines[bar[0]])
    assert re.fullmatch(r"sending ━+ +12/12 sent 12 .*", lines[bar[-1]])
    assert all(re.search(r" \d+/12 sent", lines[i]) for i in bar)
    assert not any("sending ━" in line for line in lines[summary:])
    assert screen.index("\x1b[?25h") > screen.rindex("sending")
    allowance = [
        re.search(r"allowance left ([\d,]+) on (\d\d/\d\d)", lines[i]).groups()  # type: ignore[union-attr]
        for i in bar
    ]
    for day in {day for _, day in allowance}:
        lefts = [int(left.replace(",", "")) for left, d in allowance if d == day]
        assert lefts == sorted(lefts, reverse=True), allowance
    with (out / "report.csv").open(encoding="utf-8-sig", newline="") as file:
        rows = list(csv.DictReader(file))
    states = Counter(row["state"] for row in rows)
    assert states == {"delivered": 10, "failed": 1, "expired": 1}
    by_address = {row["address"]: row for row in rows}
    assert by_address["fail.mario.bianchi@legalmail.it"]["reason"]
    assert by_address["giorgia.russo@gmail.com"]["state"] == "expired"
    assert all(row["sent_at"] <= row["accepted_at"] for row in rows if row["accepted_at"])
    assert "<svg" in (out / "report.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_or_sigterm_stop_the_demo_with_130_or_143(tmp_path: Path, signum: int) -> None:
    code, screen = on_a_terminal(
        ["demo", "--out", str(tmp_path / "demo-out")], tmp_path, stop_when="1/12", signum=signum
    )

    name = signal.Signals(signum).name
    assert code == 128 + signum, screen
    assert [line for line in frames(screen) if line][-1] == (
        f"massiva demo: stopped by {name}; nothing real was sent. Run it again to start over."
    )
    assert "Traceback" not in screen
    assert screen.rindex("\x1b[?25h") > screen.rindex("sending")  # the cursor is back
