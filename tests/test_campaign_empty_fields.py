"""A merge field the templates print, empty in a row: a warning with its rows (grouped on
the screen, every one in warnings.csv), or with ``strict_empty = true`` a reject."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from massiva.campaign import CampaignSpec, Renderer, check, load_spec, validate, validation
from massiva.campaign.validation import EmptyField, Recipient, Reject
from tests.cli import Invoke
from tests.test_campaign_support import load, write_campaign

SUBJECT = "Avviso {{ codice }}"
BODY = "<p>Gentile {{ nome }} {{ cognome }},</p>"
NOTICE = (
    '"cognome" is empty: the body template prints nothing in its place; fill it in '
    "(strict_empty = true in campaign.toml makes such a row a reject)"
)


def campaign(folder: Path, rows: list[str], extra: str = "") -> CampaignSpec:
    return load(
        folder,
        csv="pec;nome;cognome;codice\n" + "\n".join(rows) + "\n",
        subject=SUBJECT,
        body=BODY,
        extra=extra,
    )


def read_csv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as file:
        return list(csv.reader(file, delimiter=";"))


def test_the_fields_each_template_prints_are_found_through_extends_and_include(
    tmp_path: Path,
) -> None:
    folder = write_campaign(
        tmp_path,
        csv="pec;nome;cognome;codice;note;titolo;ufficio;firmatario\na@pec.it;A;B;C;;;U;F\n",
        subject="Avviso {{ codice }}{{ ' (' ~ note ~ ')' if note else '' }}",
        body="",
        extra='body_file = "corpo.html"\n',
        files={
            "corpo.html": '{% extends "base.html" %}{% set saluto = "Gentile" %}'
            "{% block testo %}{{ saluto }} {{ nome }} {{ titolo|default('') }}"
            "{% if cognome %}{{ cognome }}{% endif %}{% endblock %}",
            "base.html": "<h1>{{ ufficio }}</h1>{% block testo %}{% endblock %}"
            '{% include "firma.html" %}',
            "firma.html": "<p>{{ firmatario }}</p>",
        },
    )
    toml = folder / "campaign.toml"
    toml.write_text(toml.read_text().replace('body = ""\n', ""), encoding="utf-8")
    spec = load_spec(folder)

    renderer = Renderer(spec)

    # cognome and note are tested, titolo defaulted, saluto set: a template's own business
    assert renderer.printed == {"subject": {"codice"}, "body": {"nome", "ufficio", "firmatario"}}
    assert renderer.variables["body"] == {"nome", "cognome", "ufficio", "firmatario"}


def test_check_warns_of_each_empty_printed_field_and_still_sends_the_row(tmp_path: Path) -> None:
    spec = campaign(
        tmp_path / "c",
        [
            "a@pec.it;Niccolò;;C1",
            "b@pec.it;Bruno;Bianchi;C2",
            "c@pec.it;;;C3",
            "d@pec.it;Dario;;C4",
        ],
    )
    warnings, rejects = tmp_path / "avvisi.csv", tmp_path / "scarti.csv"

    summary = check(spec, rejects_csv=rejects, warnings_csv=warnings)
    found = [item for item in validate(spec) if isinstance(item, Recipient)]

    assert (summary.valid, summary.rejected) == (4, 0)
    assert [r.empty for r in found] == [("cognome",), (), ("cognome", "nome"), ("cognome",)]
    assert summary.empty == {
        "cognome": EmptyField("cognome", ("body",), 3, [2, 4, 5]),
        "nome": EmptyField("nome", ("body",), 1, [4]),
    }
    assert (summary.warnings_file, summary.rejects_file) == (warnings, None)
    assert not rejects.exists()
    assert read_csv(warnings) == [
        ["row", "column", "warning"],
        ["2", "cognome", NOTICE],
        ["4", "cognome", NOTICE],
        ["4", "nome", NOTICE.replace('"cognome"', '"nome"')],
        ["5", "cognome", NOTICE],
    ]


def test_a_field_in_subject_and_body_names_both(tmp_path: Path) -> None:
    spec = load(
        tmp_path,
        csv="pec;nome\na@pec.it;\n",
        subject="Avviso per {{ nome }}!",
        body="<p>Gentile {{ nome }}</p>",
    )

    summary = check(spec, warnings_csv=tmp_path / "w.csv")

    assert summary.empty == {"nome": EmptyField("nome", ("subject", "body"), 1, [2])}
    assert read_csv(tmp_path / "w.csv")[1] == [
        "2",
        "nome",
        '"nome" is empty: the subject and body templates print nothing in its place; fill '
        "it in (strict_empty = true in campaign.toml makes such a row a reject)",
    ]


def test_strict_empty_makes_the_row_a_reject_naming_the_fields(tmp_path: Path) -> None:
    spec = campaign(
        tmp_path / "c",
        ["a@pec.it;Niccolò;;C1", "b@pec.it;Bruno;Bianchi;C2", "c@pec.it;;;C3"],
        extra="strict_empty = true\n",
    )

    items = list(validate(spec))
    summary = check(spec, warnings_csv=tmp_path / "w.csv")

    assert items[0] == Reject(
        2,
        "cognome",
        '"cognome" is empty, and the body template prints it (strict_empty = true); fill it'
        " in, or set strict_empty = false in campaign.toml to send the row as it is",
    )
    assert isinstance(items[1], Recipient)
    assert items[2] == Reject(
        4,
        "cognome",
        '"cognome" and "nome" are empty, and the body template prints them (strict_empty ='
        " true); fill them in, or set strict_empty = false in campaign.toml to send the row"
        " as it is",
    )
    assert (summary.valid, summary.rejected, summary.empty) == (1, 2, {})
    assert summary.warnings_file is None


def test_ten_thousand_rows_with_an_empty_field_make_one_line_and_a_full_file(
    invoke: Invoke, tmp_path: Path
) -> None:
    rows = [f"u{i}@pec.it;Nome {i};;C{i}" for i in range(10_000)]
    folder = campaign(tmp_path / "c", rows).folder

    result = invoke("campaign", "check", str(folder))
    report = json.loads(invoke("campaign", "check", str(folder), "--json").stdout)

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[:3] == [
        "prova: 10000 rows, 10000 valid, 0 rejected, 0 duplicates.",
        'Warning: "cognome" is empty in 10,000 rows (2, 3, 4, 5, 6, 7, 8, 9, 10, 11 and'
        " 9,990 more), and the body template prints it. Fill it in, or set strict_empty ="
        " true in campaign.toml to reject such rows.",
        f"All warnings are in {folder / 'warnings.csv'}.",
    ]
    assert len(read_csv(folder / "warnings.csv")) == 10_001
    assert report["empty_fields"] == [
        {
            "column": "cognome",
            "templates": ["body"],
            "rows": 10_000,
            "first_rows": list(range(2, 2 + validation.MAX_REJECTS_KEPT)),
        }
    ]
    assert report["warnings_file"] == str(folder / "warnings.csv")
    assert report["rejects_file"] is None


def test_check_with_strict_empty_exits_1_when_no_row_is_left(
    invoke: Invoke, tmp_path: Path
) -> None:
    folder = campaign(tmp_path / "c", ["a@pec.it;Anna;;C1"], extra="strict_empty = true\n").folder

    result = invoke("campaign", "check", str(folder))

    assert result.exit_code == 1
    assert "prova: 1 rows, 0 valid, 1 rejected, 0 duplicates." in result.stdout
    assert read_csv(folder / "rejects.csv")[1][:2] == ["2", "cognome"]
    assert not (folder / "warnings.csv").exists()


@pytest.mark.parametrize("workers", [0, 2])
def test_worker_processes_carry_the_warnings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    monkeypatch.setattr(validation, "CHUNK", 2)
    rows = [f"u{i}@pec.it;Nome {i};{'' if i % 3 else 'R'};C{i}" for i in range(9)]
    spec = campaign(
        tmp_path / "c", [*rows, "u1@pec.it;Altro;X;D1"], extra='key_columns = ["codice"]\n'
    )

    found = list(validate(spec, workers=workers))

    assert found == list(validate(spec, workers=0))
    assert [r.row for r in found if isinstance(r, Recipient) and r.empty] == [3, 4, 6, 7, 9, 10]
    assert [r.same_address for r in found if isinstance(r, Recipient)][-1] is not None
