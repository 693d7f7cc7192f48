"""``massiva demo`` runs the whole job on the simulator and writes the reports."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from click.testing import CliRunner

from massiva.cli import main


def test_the_demo_runs_to_the_end_and_its_report_has_every_outcome(tmp_path: Path) -> None:
    out = tmp_path / "demo-out"

    result = CliRunner().invoke(main, ["demo", "--out", str(out)], catch_exceptions=False)

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(
        "massiva demo: everything below runs on the built-in simulator; no real PEC is sent."
    )
    assert result.stdout.rstrip().endswith(
        "This ran on the built-in simulator: no real PEC was sent, nothing left this machine."
    )
    assert "Active (evasa)" in result.stdout
    with (out / "report.csv").open(encoding="utf-8-sig", newline="") as file:
        rows = list(csv.DictReader(file))
    states = Counter(row["state"] for row in rows)
    assert states == {"delivered": 10, "failed": 1, "expired": 1}
    by_address = {row["address"]: row for row in rows}
    assert by_address["fail.mario.bianchi@legalmail.it"]["reason"]
    assert by_address["giorgia.russo@gmail.com"]["state"] == "expired"
    assert all(row["sent_at"] <= row["accepted_at"] for row in rows if row["accepted_at"])
    assert "<svg" in (out / "report.html").read_text(encoding="utf-8")
