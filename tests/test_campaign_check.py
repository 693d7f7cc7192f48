"""check(): counts, the rejects file, progress; and the example campaign checks clean."""

from __future__ import annotations

import csv
import re
from datetime import UTC, date, datetime, time
from pathlib import Path

import pytest

from massiva.campaign import (
    CampaignError,
    Recipient,
    Renderer,
    check,
    load_spec,
    message_attachments,
    preflight,
    validate,
    validation,
)
from massiva.cli.campaign import Estimate, estimate
from massiva.quota import Plan
from massiva.schedule import ALWAYS, Schedule
from tests.test_campaign_support import load

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "campaigns" / "example"
SHARED = ROOT / "templates"


def test_the_example_campaign_checks_clean() -> None:
    spec = load_spec(EXAMPLE, shared_templates=SHARED)
    summary = check(spec)
    assert (summary.rows, summary.valid, summary.rejected, summary.duplicates) == (12, 12, 0, 0)
    assert (summary.empty, summary.same_address) == ({}, 0)  # "{% if allegato %}" is tested
    assert (summary.encoding, summary.delimiter) == ("utf-8", ";")
    found = [item for item in validate(spec) if isinstance(item, Recipient)]
    addresses = [r.address for r in found]
    assert "fail.mario.bianchi@legalmail.it" in addresses
    assert any(a.endswith("@gmail.com") for a in addresses)
    assert any(a.startswith("late") for a in addresses)
    names = {r.fields["nome"] for r in found} | {r.fields["cognome"] for r in found}
    assert {"Niccolò", "D'Angelo"} <= names
    assert "Città di Castello" in {r.fields["comune"] for r in found}
    with_files = [r for r in found if r.attachment]
    assert len(with_files) >= 2
    renderer = Renderer(spec)
    subject, body = renderer.render(with_files[0].fields)
    assert subject == "Avviso di pagamento CL-0001 - scadenza 31/03/2026"
    assert "1.234,56 €" in body and "<h1" in body and "Gentile Mario Rossi" in body
    assert 800 < len(body.encode()) < 2000
    files = message_attachments(spec, with_files[0].attachment)
    assert [f.name for f in files] == ["informativa.pdf", "fattura-CL-0001.pdf"]
    assert all(f.file.startswith("data:application/pdf;base64,JVBERi0") for f in files)


def test_the_example_pdfs_are_real_and_small() -> None:
    for path in [EXAMPLE / "informativa.pdf", *sorted((EXAMPLE / "allegati").glob("*.pdf"))]:
        data = path.read_bytes()
        assert data.startswith(b"%PDF-1.") and data.rstrip().endswith(b"%%EOF")
        assert len(data) < 8192


def test_the_example_needs_the_shared_layout() -> None:
    with pytest.raises(
        CampaignError, match=re.escape('"pec_base.html" is not in the campaign folder')
    ):
        check(load_spec(EXAMPLE))


def test_rejects_go_to_a_csv_file_all_of_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(validation, "MAX_REJECTS_KEPT", 2)
    spec = load(
        tmp_path / "c",
        csv="pec;nome\nuno;A\na@pec.it;Anna\ndue@;B\nA@pec.it;Anna\ntre;C\n",
    )
    seen: list[int] = []
    out = tmp_path / "scarti.csv"
    summary = check(spec, rejects_csv=out, on_row=seen.append)
    assert (summary.rows, summary.valid, summary.rejected, summary.duplicates) == (5, 1, 3, 1)
    assert [(r.row, r.column) for r in summary.rejects] == [(2, "pec"), (4, "pec")]
    assert seen == [1, 2, 3, 4, 5]
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfrow;column;reason\r\n")
    with out.open(encoding="utf-8-sig", newline="") as file:
        rows = list(csv.reader(file, delimiter=";"))
    assert rows == [
        ["row", "column", "reason"],
        ["2", "pec", 'invalid address "uno" (no "@")'],
        ["4", "pec", 'invalid address "due@" (no domain)'],
        ["5", "pec", "duplicate of row 3"],
        ["6", "pec", 'invalid address "tre" (no "@")'],
    ]


def test_preflight_lists_file_and_template_problems_together(tmp_path: Path) -> None:
    spec = load(tmp_path, csv="PEC;nome\na@pec.it;A\n", body="{{ nome }")
    with pytest.raises(CampaignError) as error:
        preflight(spec)
    assert len(error.value.problems) == 2
    assert error.value.problems[0].startswith(
        'destinatari.csv, row 1 (the header): no column "pec"'
    )
    assert error.value.problems[1].startswith("body template, line 1: unexpected '}'")


def test_validate_raises_campaign_errors_at_once(tmp_path: Path) -> None:
    spec = load(tmp_path, csv="PEC;nome\na@pec.it;A\n")
    with pytest.raises(CampaignError):
        validate(spec)


# How long a pool takes, by massiva campaign check's estimate. 4 December 2026 is a Friday.
FRIDAY = date(2026, 12, 4)
POOL_PLAN = Plan(daily=7000, monthly=60000)  # two boxes of 3,500 a day and 30,000 a month


def test_without_a_schedule_the_estimate_is_the_pools_allowances() -> None:
    found = estimate(15_000, POOL_PLAN, 2.0, ALWAYS, FRIDAY)

    assert found == Estimate(days=3, unscheduled=3, left=0)  # 7,000 + 7,000 + 1,000
    assert not found.limited


def test_weekdays_only_wait_out_the_weekend() -> None:
    weekdays = Schedule(days=frozenset(range(5)))

    found = estimate(15_000, POOL_PLAN, 2.0, weekdays, FRIDAY)

    # Friday 7,000; Saturday and Sunday nothing; Monday 7,000; Tuesday 1,000.
    assert found == Estimate(days=5, unscheduled=3, left=0)
    assert found.limited


def test_a_short_window_at_the_pace_sends_fewer_than_the_allowance() -> None:
    hour = Schedule(hours=(time(9), time(10)))

    found = estimate(15_000, POOL_PLAN, 0.5, hour, FRIDAY)

    assert found == Estimate(days=9, unscheduled=3, left=0)  # 1,800 a day (3,600 s x 0.5)


def test_the_deadline_leaves_the_rest_unsent() -> None:
    two_days = Schedule(not_after=datetime(2026, 12, 5, 23, 0, tzinfo=UTC))  # Sunday 00:00

    found = estimate(20_000, POOL_PLAN, 2.0, two_days, FRIDAY)

    assert found == Estimate(days=2, unscheduled=3, left=6_000)
    assert found.limited


def test_the_month_of_a_pool_runs_out_before_its_days() -> None:
    far = Schedule(not_after=datetime(2030, 1, 1, tzinfo=UTC))  # never in the way

    found = estimate(70_000, POOL_PLAN, 2.0, far, date(2026, 12, 24))

    # 8 days of December hold 56,000 (under 60,000); January goes on: 2 more days.
    assert found == Estimate(days=10, unscheduled=10, left=0)
