"""A recipients file with nobody to send to: empty, a header alone, or every row rejected.
Each is said plainly (exit 2, the file named), nothing is loaded, and a check writes no
header-only rejects.csv (one an earlier check left is removed, and the check says so)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from massiva.campaign import CampaignError, check, csv_hash, load_spec
from massiva.loading import LoadError, load_campaign
from massiva.store import Store
from tests.cli import Invoke, on
from tests.test_campaign_support import write_campaign

EMPTY = (
    "destinatari.csv: the file is empty; write the header row naming the columns"
    " (e.g. pec;nome;cognome) and one row per recipient under it"
)
HEADER_ONLY = (
    "destinatari.csv: the file has no recipients, only the header (row 1); add one row per"
    " recipient under it"
)


@pytest.fixture
def massiva(invoke: Invoke, database: Path | str) -> Invoke:
    """``massiva ...`` on the test's database, on each engine."""
    return on(database, invoke)


@pytest.mark.parametrize(("text", "problem"), [("", EMPTY), ("pec;nome\n", HEADER_ONLY)])
@pytest.mark.parametrize("command", ["check", "load"])
def test_an_empty_or_header_only_file_is_said_plainly_and_loads_nothing(
    massiva: Invoke, tmp_path: Path, text: str, problem: str, command: str
) -> None:
    folder = write_campaign(tmp_path / "c", csv=text)

    result = massiva("campaign", command, str(folder))
    as_json = massiva("campaign", command, str(folder), "--json")
    listed = massiva("campaign", "list", "--json")

    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == f"Error: nothing was sent; fix these first:\n  - {problem}\n"
    assert json.loads(as_json.stdout)["error"]["problems"] == [problem]
    assert json.loads(listed.stdout) == []
    assert not (folder / "rejects.csv").exists()


async def test_load_refuses_a_campaign_with_no_row_to_send_and_creates_nothing(
    store: Store, tmp_path: Path
) -> None:
    broken = load_spec(write_campaign(tmp_path / "c", csv="pec;nome\nrotto@;A\n"))

    with pytest.raises(LoadError) as error:
        await load_campaign(store, broken)

    assert str(error.value) == (
        "no row of destinatari.csv can be sent (1 rejected, 0 duplicates), so campaign"
        f" 'prova' was not created: massiva campaign check {broken.folder} says what is"
        " wrong with each row"
    )
    assert await store.campaigns.all() == []


async def test_a_loaded_campaign_refuses_a_new_file_with_no_row_to_send(
    store: Store, tmp_path: Path
) -> None:
    folder = write_campaign(tmp_path / "c", csv="pec;nome\na@pec.it;Anna\n")
    await load_campaign(store, load_spec(folder))
    write_campaign(tmp_path / "c", csv="pec;nome\nrotto@;A\n")

    with pytest.raises(LoadError, match="so campaign 'prova' was not changed"):
        await load_campaign(store, load_spec(folder))

    campaign = await store.campaigns.get("prova")
    assert campaign is not None
    counts = await store.campaigns.counts(campaign.id)
    assert (counts["pending"], sum(counts.values())) == (1, 1)
    assert campaign.csv_hash != csv_hash(folder / "destinatari.csv")  # the old file's, kept


def test_load_from_the_command_line_exits_2_when_every_row_is_rejected(
    massiva: Invoke, tmp_path: Path
) -> None:
    folder = write_campaign(tmp_path / "c", csv="pec;nome\nrotto@;A\nanche rotto;B\n")

    result = massiva("campaign", "load", str(folder))

    assert result.exit_code == 2
    assert result.stderr == (
        "Error: nothing was sent: no row of destinatari.csv can be sent (2 rejected, 0"
        f" duplicates), so campaign 'prova' was not created: massiva campaign check"
        f" {folder.resolve()} says what is wrong with each row\n"
    )
    assert json.loads(massiva("campaign", "list", "--json").stdout) == []


def test_a_clean_check_writes_no_rejects_file_and_removes_an_earlier_one(
    invoke: Invoke, tmp_path: Path
) -> None:
    folder = write_campaign(tmp_path / "c", csv="pec;nome\nrotto@;A\na@pec.it;;\n")
    first = invoke("campaign", "check", str(folder))
    written = {p.name for p in folder.iterdir()}
    write_campaign(tmp_path / "c", csv="pec;nome\na@pec.it;Anna\n")

    clean = invoke("campaign", "check", str(folder))
    again = json.loads(invoke("campaign", "check", str(folder), "--json").stdout)

    assert first.exit_code == clean.exit_code == 0
    assert {"rejects.csv", "warnings.csv"} <= written
    assert not (folder / "rejects.csv").exists()
    assert not (folder / "warnings.csv").exists()
    assert clean.stdout.splitlines()[1:3] == [
        f"{folder / 'rejects.csv'}, left by an earlier check, was removed: this check found"
        " nothing to put in it.",
        f"{folder / 'warnings.csv'}, left by an earlier check, was removed: this check found"
        " nothing to put in it.",
    ]
    assert (again["rejects_file"], again["warnings_file"], again["removed"]) == (None, None, [])


def test_the_library_check_writes_no_file_with_nothing_in_it(tmp_path: Path) -> None:
    spec = load_spec(write_campaign(tmp_path / "c", csv="pec;nome\na@pec.it;Anna\n"))
    rejects, warnings = tmp_path / "scarti.csv", tmp_path / "avvisi.csv"

    summary = check(spec, rejects_csv=rejects, warnings_csv=warnings)

    assert (summary.rejects_file, summary.warnings_file, summary.removed) == (None, None, [])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


def test_a_header_only_file_is_no_problem_for_the_header_checks_first(tmp_path: Path) -> None:
    spec = load_spec(write_campaign(tmp_path / "c", csv="PEC;nome\n"))

    with pytest.raises(CampaignError) as error:
        check(spec)

    assert len(error.value.problems) == 1  # the header is wrong: that is what to fix first
    assert error.value.problems[0].startswith(
        'destinatari.csv, row 1 (the header): no column "pec"'
    )
