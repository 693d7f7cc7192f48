"""Big files are rendered by worker processes: what they find is what one process finds,
in the same order, and a worker that dies is reported, not taken for a clean check."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
from pathlib import Path

import pytest

from massiva.campaign import CampaignError, CampaignSpec, check, validate, validation
from massiva.workers import WorkerFailed, command, environment
from tests.test_campaign_support import load

ROWS = [
    "a@pec.it;Anna;31/03/2026;",
    "non-un-indirizzo;Bruno;31/03/2026;",
    "A@PEC.IT;Anna di nuovo;31/03/2026;",  # a duplicate of row 2
    "c@pec.it;Carla;30/02/2026;",  # no such date: the data filter fails
    "d@pec.it;Dario;31/03/2026;manca.pdf",  # no such attachment
    ";;;",  # blank
    "e@pec.it;Elena;31/03/2026;fattura.pdf",
    "f@pec.it;Fabio;31/03/2026;../fuori.pdf",  # outside the folder
] * 7  # 56 rows: many chunks of 3, over 2 workers


def campaign(folder: Path, rows: list[str]) -> CampaignSpec:
    numbered = [row.replace("@", f"{i}@", 1) if i >= 8 else row for i, row in enumerate(rows)]
    return load(
        folder,
        csv="pec;nome;scadenza;allegato\n" + "\n".join(numbered) + "\n",
        subject="Avviso per {{ nome }}",
        body="<p>Gentile {{ nome }}, entro il {{ scadenza | data }}</p>",
        extra='attachment_column = "allegato"\n',
        files={"fattura.pdf": b"%PDF-1.4 fattura\n%%EOF\n"},
    )


def test_worker_processes_find_what_one_process_finds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(validation, "CHUNK", 3)
    spec = campaign(tmp_path / "c", ROWS)

    alone = list(validate(spec, workers=0))
    shared = list(validate(spec, workers=2))

    assert shared == alone
    assert len(alone) == 49  # the 7 blank rows are not recipients
    reasons = {type(item).__name__ + ":" + getattr(item, "column", "") for item in alone}
    assert reasons == {"Recipient:", "Reject:pec", "Reject:scadenza", "Reject:allegato"}
    assert check(spec, workers=2) == check(spec, workers=0)


def test_a_broken_row_stops_the_check_after_the_rows_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(validation, "CHUNK", 3)
    rows = [f"r{i}@pec.it;N{i};31/03/2026;" for i in range(10)]
    rows.append('x@pec.it;"' + "y" * 140_000)  # a quote never closed: a csv.Error
    spec = campaign(tmp_path / "c", rows)

    for workers in (0, 2):
        seen: list[int] = []
        with pytest.raises(CampaignError, match="row 12: a cell longer than"):
            seen.extend(item.row for item in validate(spec, workers=workers))
        assert seen == list(range(2, 12)), workers


def workers_of(parent: int) -> list[int]:
    """The pids of ``parent``'s worker processes (massiva.campaign.worker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue  # it ended meanwhile
            if f"\nPPid:\t{parent}\n" in status and b"massiva.campaign.worker" in command:
                found.append(int(entry.name))
    return found


def test_a_worker_that_dies_is_an_error_not_a_short_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(validation, "CHUNK", 3)
    spec = campaign(tmp_path / "c", [f"r{i}@pec.it;N{i};31/03/2026;" for i in range(60)])
    rows = validate(spec, workers=2)
    first = next(rows)
    killed = workers_of(os.getpid())
    for pid in killed:
        os.kill(pid, signal.SIGKILL)

    with pytest.raises(WorkerFailed, match="a worker process was killed by SIGKILL"):
        list(rows)
    assert first.row == 2 and len(killed) == 2
    assert workers_of(os.getpid()) == []  # none left behind


def test_a_worker_whose_input_is_cut_short_exits_instead_of_hanging() -> None:
    cut = pickle.dumps(("a campaign", "its header" * 100))[:-10]  # its parent died mid-write

    done = subprocess.run(
        command("massiva.campaign.worker"),
        input=cut,
        capture_output=True,
        timeout=60,
        env=environment(),
        check=False,
    )

    assert done.returncode == 1
    assert b"pickle data was truncated" in done.stderr
