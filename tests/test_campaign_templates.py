"""Templates: sandboxed, strict, autoescaped, compiled once; the Italian filters."""

from __future__ import annotations

import os
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from massiva.campaign import CampaignError, Renderer, RenderError, check, load_spec
from massiva.campaign.templates import data, importo
from tests.test_campaign_support import load, outcome, write_campaign

NOT_CODE = "templates are data, not code"


@pytest.mark.parametrize(
    ("body", "name"),
    [
        ("{{ ''.__class__.__mro__ }}", "__class__"),
        ("{{ nome.__class__ }}", "__class__"),
        ("{{ ''['__class__'] }}", "__class__"),
        ("{{ nome|attr('__class__') }}", "__class__"),
        ("{{ nome[('_' ~ '_class_' ~ '_')] }}", "__class__"),
        ("{{ cycler.__init__.__globals__ }}", "__globals__"),
        ("{{ lipsum.__globals__['os'].popen('id').read() }}", "__globals__"),
        ("{{ self._TemplateReference__context }}", "_TemplateReference__context"),
        ("{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}", "__base__"),
    ],
)
def test_templates_reaching_python_internals_are_refused_up_front(
    tmp_path: Path, body: str, name: str
) -> None:
    spec = load(tmp_path, body=body)
    with pytest.raises(CampaignError) as error:
        Renderer(spec)
    assert f'body template, line 1: {NOT_CODE}: "{name}" is not allowed' in str(error.value)


def test_the_subject_and_included_templates_are_scanned_too(tmp_path: Path) -> None:
    spec = load(
        tmp_path,
        subject="{{ nome.__class__ }}",
        body="{% include 'parti/firma.html' %}",
        files={"parti/firma.html": "<p>\n{{ ''.__class__ }}</p>"},
    )
    with pytest.raises(CampaignError) as error:
        Renderer(spec)
    assert error.value.problems == [
        f'subject template, line 1: {NOT_CODE}: "__class__" is not allowed; use only the CSV '
        "columns, plain Jinja and the data/importo filters",
        f'template "parti/firma.html" (used by the body template), line 2: {NOT_CODE}: '
        '"__class__" is not allowed; use only the CSV columns, plain Jinja and the '
        "data/importo filters",
    ]


@pytest.mark.parametrize(
    ("body", "refused"),
    [
        ("{{ nome|attr(campo) }}", "access to attribute '__class__' of 'str' object"),
        ("{{ '{0.__class__}'.format(nome) }}", "access to attribute '__class__' of 'str' object"),
        ("{{ [].append(1) }}", "access to attribute 'append' of 'list' object"),
        ("{{ dict.mro() }}", "access to attribute 'mro' of 'type' object"),
    ],
)
def test_what_the_sandbox_stops_while_rendering_rejects_the_row(
    tmp_path: Path, body: str, refused: str
) -> None:
    spec = load(tmp_path, csv="pec;nome;campo\na@pec.it;Anna;__class__\n", body=body)
    assert outcome(spec) == [(2, "", f"{NOT_CODE}: {refused} is not allowed in body template")]


def test_an_undefined_variable_names_its_row(tmp_path: Path) -> None:
    spec = load(
        tmp_path,
        csv="pec;nome;importi\na@pec.it;Anna;10\nbad;Bruno;20\nc@pec.it;Carla;30\n",
        body="<p>{{ nome }}: {{ importo }}</p>",
    )
    assert outcome(spec) == [
        (2, "importo", 'undefined variable "importo" in body template'),
        (3, "pec", 'invalid address "bad" (no "@")'),
        (4, "importo", 'undefined variable "importo" in body template'),
    ]


def test_check_reports_a_variable_no_column_holds_once(tmp_path: Path) -> None:
    spec = load(
        tmp_path,
        csv="pec;nome;importi\na@pec.it;Anna;10\n",
        subject="Avviso {{ numero }} per {{ nome }}",
        body="<p>{{ importo }} {{ numero }}</p>",
    )
    with pytest.raises(CampaignError) as error:
        check(spec)
    assert error.value.problems == [
        'subject and body templates use "numero", but destinatari.csv has no such column; '
        'add the column, or fix the name in the template (did you mean "nome"?)',
        'body template uses "importo", but destinatari.csv has no such column; add the '
        'column, or fix the name in the template (did you mean "importi"?)',
    ]


def test_variables_set_or_defaulted_in_templates_are_not_columns(tmp_path: Path) -> None:
    spec = load(
        tmp_path,
        body=(
            "{% set saluto = 'Gentile' %}{{ saluto }} {{ nome }} {{ titolo|default('') }}"
            "{% for x in [1] %}{{ x }}{{ loop.index }}{% endfor %}{% if ente is defined %}"
            "{{ ente }}{% endif %}{{ range(1)|list }}"
        ),
    )
    renderer = Renderer(spec)
    assert renderer.variables == {"subject": {"nome"}, "body": {"nome"}}
    assert check(spec).valid == 1
    assert renderer.render({"nome": "Anna"})[1] == "Gentile Anna 11[0]"


def test_the_body_is_autoescaped_and_the_subject_is_not(tmp_path: Path) -> None:
    spec = load(tmp_path)
    subject, body = Renderer(spec).render({"nome": "<b>Anna & Co</b>"})
    assert subject == "Avviso per <b>Anna & Co</b>"
    assert body == "<p>Gentile &lt;b&gt;Anna &amp; Co&lt;/b&gt;</p>"


def test_a_line_break_in_a_cell_used_by_the_subject_rejects_the_row(tmp_path: Path) -> None:
    csv = 'pec;nome\na@pec.it;"Anna\nMaria"\nb@pec.it;Bruno\n'
    spec = load(tmp_path, csv=csv)
    assert outcome(spec) == [
        (
            2,
            "nome",
            'the subject would break across lines: "nome" holds a line break; '
            "remove it from the cell",
        ),
        (3, "b@pec.it", ""),
    ]


def test_a_subject_template_with_a_line_break_is_refused(tmp_path: Path) -> None:
    spec = load(tmp_path, subject="Avviso\nper {{ nome }}")
    with pytest.raises(CampaignError) as error:
        Renderer(spec)
    assert str(error.value) == (
        "subject template, line 1: a line break; a subject is one line, write it on one line"
    )


def test_an_empty_subject_rejects_the_row(tmp_path: Path) -> None:
    spec = load(tmp_path, csv="pec;nome\na@pec.it;\n", subject="{{ nome }}")
    assert outcome(spec) == [
        (2, "", "the subject is empty for this row; fill in the cells it uses")
    ]


def test_a_syntax_error_gives_the_file_and_line(tmp_path: Path) -> None:
    folder = write_campaign(
        tmp_path,
        body="",
        files={"corpo.html": "<p>Gentile\n{{ nome }</p>\n"},
    )
    toml = (folder / "campaign.toml").read_text().replace('body = ""', 'body_file = "corpo.html"')
    (folder / "campaign.toml").write_text(toml)
    with pytest.raises(CampaignError) as error:
        Renderer(load_spec(folder))
    assert (
        str(error.value)
        == "body template (corpo.html), line 2: unexpected '}'; fix the syntax there"
    )


def test_an_unknown_filter_points_at_the_italian_ones(tmp_path: Path) -> None:
    spec = load(tmp_path, body="{{ nome|date }}")
    with pytest.raises(
        CampaignError, match="the filters for dates and amounts are data and importo"
    ):
        Renderer(spec)


def test_extends_and_include_resolve_in_the_folder_then_the_shared_templates(
    tmp_path: Path,
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "base.html").write_text(
        "<main>{% block c %}{% endblock %}{% include 'firma.html' %}</main>"
    )
    (shared / "firma.html").write_text("<p>Ufficio</p>")
    folder = write_campaign(
        tmp_path / "c",
        body="{% extends 'base.html' %}{% block c %}Gentile {{ nome }}{% endblock %}",
        files={"firma.html": "<p>Studio {{ nome }}</p>"},  # the campaign's own wins
    )
    spec = load_spec(folder, shared_templates=shared)
    assert (
        Renderer(spec).render({"nome": "Anna"})[1] == "<main>Gentile Anna<p>Studio Anna</p></main>"
    )


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("{% include '../fuori.html' %}", '"../fuori.html" goes outside the campaign folder'),
        ("{% include 'link.html' %}", '"link.html" leads outside the campaign folder'),
        ("{% extends 'manca.html' %}", '"manca.html" is not in the campaign folder'),
    ],
)
def test_templates_outside_the_allowed_folders_are_refused(
    tmp_path: Path, body: str, says: str
) -> None:
    (tmp_path / "fuori.html").write_text("secret")
    folder = write_campaign(tmp_path / "c", body=body)
    os.symlink(tmp_path / "fuori.html", folder / "link.html")
    with pytest.raises(CampaignError, match=says):
        Renderer(load_spec(folder))


def test_render_error_carries_variable_and_template(tmp_path: Path) -> None:
    renderer = Renderer(load(tmp_path, body="{{ scadenza|data }}"))
    with pytest.raises(RenderError) as error:
        renderer.render({"nome": "Anna", "scadenza": "domani"})
    assert (error.value.variable, error.value.template) == ("scadenza", "body")
    assert error.value.message == (
        '"domani" is not a date (data filter on "scadenza" in body template); '
        "write it as dd/mm/yyyy, e.g. 31/03/2026"
    )


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("2026-03-31", "31/03/2026"),
        ("2026-03-31 10:20:30", "31/03/2026"),
        ("2026-03-31T10:20", "31/03/2026"),
        ("31/03/2026", "31/03/2026"),
        ("31-03-2026", "31/03/2026"),
        ("31.03.2026", "31/03/2026"),
        ("1/3/2026", "01/03/2026"),
        (" 29/02/2028 ", "29/02/2028"),
        (date(2026, 3, 31), "31/03/2026"),
        (datetime(2026, 3, 31, 23, 59), "31/03/2026"),
    ],
)
def test_data_filter(value: object, shown: str) -> None:
    assert data(value) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("1234.56", "1.234,56 €"),
        ("1234,56", "1.234,56 €"),
        ("1.234,56", "1.234,56 €"),
        ("1,234.56", "1.234,56 €"),
        ("1.234.567,891", "1.234.567,89 €"),
        ("1.234.567", "1.234.567,00 €"),
        ("1234567,895", "1.234.567,90 €"),
        ("0,125", "0,13 €"),
        ("12,5", "12,50 €"),
        ("-1234,5", "-1.234,50 €"),
        ("€ 10", "10,00 €"),
        ("10 EUR", "10,00 €"),
        ("999", "999,00 €"),
        (1234, "1.234,00 €"),
        (0.1 + 0.2, "0,30 €"),
        (Decimal("1234.565"), "1.234,57 €"),
        (-0.001, "0,00 €"),
    ],
)
def test_importo_filter(value: object, shown: str) -> None:
    assert importo(value) == shown


def test_importo_without_the_symbol(tmp_path: Path) -> None:
    renderer = Renderer(load(tmp_path, body="{{ nome|importo(simbolo=False) }}"))
    assert renderer.render({"nome": "1234,5"})[1] == "1.234,50"


@pytest.mark.parametrize(
    ("template", "value", "reason"),
    [
        (
            "{{ scadenza|data }}",
            "31/02/2026",
            '"31/02/2026" is not a real calendar date (data filter on "scadenza" in body '
            "template); check the day and the month",
        ),
        (
            "{{ scadenza|data }}",
            "31/03/26",
            '"31/03/26" has a two-digit year (data filter on "scadenza" in body template); '
            "write the year in full, e.g. 31/03/2026",
        ),
        (
            "{{ scadenza|data }}",
            "",
            'an empty value is not a date (data filter on "scadenza" in body template); '
            "write it as dd/mm/yyyy, e.g. 31/03/2026",
        ),
        (
            "{{ scadenza|importo }}",
            "1.234",
            '"1.234" is ambiguous (1.234,00 € or 1,234 €?) (importo filter on "scadenza" in '
            "body template); write the amount with a decimal comma and no thousands "
            "separator, e.g. 1234,00",
        ),
        (
            "{{ scadenza|importo }}",
            "12.34.5",
            '"12.34.5" is not an amount (importo filter on "scadenza" in body template); '
            "write it like 1234,56 or 1.234,56",
        ),
        (
            "{{ scadenza|importo }}",
            "dieci",
            '"dieci" is not an amount (importo filter on "scadenza" in body template); '
            "write it like 1234,56 or 1.234,56",
        ),
    ],
)
def test_a_value_a_filter_cannot_read_rejects_the_row_naming_the_variable(
    tmp_path: Path, template: str, value: str, reason: str
) -> None:
    spec = load(tmp_path, csv=f"pec;scadenza\na@pec.it;{value}\n", subject="Avviso", body=template)
    assert outcome(spec) == [(2, "scadenza", reason)]


def test_the_variable_a_filter_refused_is_told_apart_among_several(tmp_path: Path) -> None:
    spec = load(
        tmp_path,
        csv="pec;emessa;scadenza\na@pec.it;01/03/2026;30/02/2026\n",
        subject="Avviso del {{ emessa|data }}",
        body="<p>{{ emessa|data }} - {{ scadenza|trim|data }}</p>",
    )
    [(row, column, reason)] = outcome(spec)
    assert (row, column) == (2, "scadenza")
    assert reason.startswith('"30/02/2026" is not a real calendar date (data filter on "scadenza"')


def test_templates_are_compiled_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from jinja2 import Environment

    spec = load(
        tmp_path,
        body="{% extends 'base.html' %}{% block c %}{{ nome }}{% endblock %}",
        files={"base.html": "<div>{% block c %}{% endblock %}</div>"},
    )
    renderer = Renderer(spec)
    compiled: list[str] = []
    real_compile = Environment.compile

    def counting_compile(self: Environment, *args: Any, **kwargs: Any) -> Any:
        compiled.append(str(args[:1]))
        return real_compile(self, *args, **kwargs)

    monkeypatch.setattr(Environment, "compile", counting_compile)
    for name in ("Anna", "Bruno", "Carla"):
        assert renderer.render({"nome": name})[1] == f"<div>{name}</div>"
    assert compiled == []
