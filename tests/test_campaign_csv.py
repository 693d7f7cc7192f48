"""The recipients CSV as people export it: every shape, with exact rows and reasons."""

from __future__ import annotations

from pathlib import Path

import pytest

from massiva.campaign import CampaignError, check, load_spec, read_layout, validate
from massiva.campaign.recipients import DuplicateIndex, column_letter, sniff_delimiter
from tests.test_campaign_support import load, outcome, recipients, write_campaign


def test_semicolon_is_sniffed_even_with_decimal_commas(tmp_path: Path) -> None:
    spec = load(tmp_path, csv="pec;nome;importo\nmario.rossi@pec.it;Mario;1234,56\n")
    [one] = recipients(spec)
    assert (one.row, one.address) == (2, "mario.rossi@pec.it")
    assert one.fields == {"pec": "mario.rossi@pec.it", "nome": "Mario", "importo": "1234,56"}
    assert read_layout(spec).delimiter == ";"


def test_comma_is_sniffed_with_a_quoted_comma_inside_a_cell(tmp_path: Path) -> None:
    spec = load(tmp_path, csv='pec,nome,importo\nmario.rossi@pec.it,Mario,"1.234,56"\n')
    [one] = recipients(spec)
    assert one.fields["importo"] == "1.234,56"
    assert read_layout(spec).delimiter == ","


def test_tab_is_sniffed(tmp_path: Path) -> None:
    spec = load(tmp_path, csv="pec\tnome\tcitta\nmario.rossi@pec.it\tMario\tSan Marco; Roma\n")
    [one] = recipients(spec)
    assert one.fields == {"pec": "mario.rossi@pec.it", "nome": "Mario", "citta": "San Marco; Roma"}


def test_sniffing_prefers_the_delimiter_the_rows_repeat() -> None:
    assert sniff_delimiter("a;b;c\n1;2,5;3\n4;5,5;6\n") == ";"
    assert sniff_delimiter("a,b,c\n1,2;5,3\n") == ","
    assert sniff_delimiter("pec\nmario@pec.it\n") == ","


def test_delimiter_and_encoding_set_in_campaign_toml_win(tmp_path: Path) -> None:
    data = "pec|nome\nn.bianchi@pec.it|Niccolò\n".encode("cp1252")
    spec = load(tmp_path, csv=data, extra='[csv]\nencoding = "windows-1252"\ndelimiter = "|"\n')
    [one] = recipients(spec)
    assert one.fields["nome"] == "Niccolò"
    assert (spec.encoding, spec.delimiter) == ("cp1252", "|")


def test_utf8_without_bom(tmp_path: Path) -> None:
    spec = load(tmp_path, csv="pec;nome\nn.bianchi@pec.it;Niccolò\n")
    assert recipients(spec)[0].fields["nome"] == "Niccolò"
    assert check(spec).encoding == "utf-8"


def test_utf8_with_bom_keeps_the_first_header_clean(tmp_path: Path) -> None:
    spec = load(tmp_path, csv="\ufeffpec;nome\nn.bianchi@pec.it;Niccolò\n")
    [one] = recipients(spec)
    assert list(one.fields) == ["pec", "nome"]
    assert one.fields["nome"] == "Niccolò"
    assert check(spec).encoding == "utf-8-sig"


def test_windows_1252_round_trips_accents(tmp_path: Path) -> None:
    text = (
        "pec;nome;comune\r\n"
        "n.bianchi@pec.it;Niccolò;Città di Castello\r\n"
        "l.dangelo@pec.it;Ludovica D'Angelo;Forlì €\r\n"
    )
    spec = load(tmp_path, csv=text.encode("cp1252"))
    found = recipients(spec)
    assert [r.fields["nome"] for r in found] == ["Niccolò", "Ludovica D'Angelo"]
    assert [r.fields["comune"] for r in found] == ["Città di Castello", "Forlì €"]
    assert check(spec).encoding == "cp1252"


def test_the_whole_file_decides_the_encoding_not_its_first_kilobytes(tmp_path: Path) -> None:
    plain = "".join(f"utente{i}@pec.it;Mario\n" for i in range(5000))  # ~100 KB of ASCII
    text = f"pec;nome\n{plain}n.bianchi@pec.it;Niccolò\n"
    cp1252 = load(tmp_path / "a", csv=text.encode("cp1252"))
    assert recipients(cp1252)[-1].fields["nome"] == "Niccolò"
    utf8 = load(tmp_path / "b", csv=text.encode("utf-8"))
    assert recipients(utf8)[-1].fields["nome"] == "Niccolò"
    assert recipients(utf8)[-1].row == 5002


def test_a_file_neither_utf8_nor_windows_1252_is_refused(tmp_path: Path) -> None:
    spec = load(tmp_path, csv=b"pec;nome\nmario@pec.it;Mario\n\x81\xc3(;x\n")
    with pytest.raises(CampaignError) as error:
        check(spec)
    assert str(error.value) == (
        "destinatari.csv: neither UTF-8 (line 3 is not) nor Windows-1252 (line 3 is not); "
        'save it as "CSV UTF-8" (Excel: File > Save As; LibreOffice: character set UTF-8), '
        "or set [csv] encoding in campaign.toml"
    )


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ("pec;nome\n".encode("utf-16"), "UTF-16 text"),
        (b"PK\x03\x04rest-of-a-zip", "an Excel workbook, not CSV"),
        (b"pec;nome\nmario@pec.it;Ma\x00rio\n", "line 2: a NUL byte"),
    ],
)
def test_files_that_are_not_text_csv_are_refused(tmp_path: Path, data: bytes, says: str) -> None:
    spec = load(tmp_path, csv=data)
    with pytest.raises(CampaignError, match=says):
        check(spec)


def test_an_explicit_encoding_the_file_does_not_have_names_the_line(tmp_path: Path) -> None:
    data = "pec;nome\nmario@pec.it;Mario\nn.bianchi@pec.it;Niccolò\n".encode("cp1252")
    spec = load(tmp_path, csv=data, extra='[csv]\nencoding = "utf-8"\n')
    with pytest.raises(CampaignError) as error:
        check(spec)
    assert str(error.value).startswith("destinatari.csv, line 3: not valid utf-8")


def test_crlf_line_endings(tmp_path: Path) -> None:
    spec = load(tmp_path, csv="pec;nome\r\na@pec.it;Anna\r\nb@pec.it;Bruno\r\n")
    assert outcome(spec) == [(2, "a@pec.it", ""), (3, "b@pec.it", "")]
    assert recipients(spec)[1].fields["nome"] == "Bruno"


def test_a_quoted_cell_with_line_breaks_is_one_row(tmp_path: Path) -> None:
    text = (
        "pec;nome;note\r\n"
        'a@pec.it;Anna;"prima riga\r\nseconda riga\r\nterza"\r\n'
        "b@pec.it;Bruno;x\r\n"
        "bad-address;Carla;y\r\n"
    )
    spec = load(tmp_path, csv=text)
    assert outcome(spec) == [
        (2, "a@pec.it", ""),
        (3, "b@pec.it", ""),
        (4, "pec", 'invalid address "bad-address" (no "@")'),
    ]
    assert recipients(spec)[0].fields["note"] == "prima riga\r\nseconda riga\r\nterza"


def test_blank_lines_are_skipped_but_counted_as_rows(tmp_path: Path) -> None:
    text = "pec;nome\na@pec.it;Anna\n\nb@pec.it;Bruno\n;\n  ;  \nbad;Carla\n"
    spec = load(tmp_path, csv=text)
    assert outcome(spec) == [
        (2, "a@pec.it", ""),
        (4, "b@pec.it", ""),
        (7, "pec", 'invalid address "bad" (no "@")'),
    ]
    summary = check(spec)
    assert (summary.rows, summary.valid, summary.rejected) == (3, 2, 1)


def test_blank_lines_before_the_header_move_it_down(tmp_path: Path) -> None:
    spec = load(tmp_path, csv="\n\npec;nome\na@pec.it;Anna\n")
    assert read_layout(spec).header_row == 3
    assert outcome(spec) == [(4, "a@pec.it", "")]


def test_trailing_empty_columns_are_ignored(tmp_path: Path) -> None:
    spec = load(tmp_path, csv="pec;nome;;\na@pec.it;Anna;;\nb@pec.it;Bruno\nc@pec.it;Carla;;;;\n")
    found = recipients(spec)
    assert [r.row for r in found] == [2, 3, 4]
    assert all(list(r.fields) == ["pec", "nome"] for r in found)


def test_cells_are_trimmed(tmp_path: Path) -> None:
    spec = load(tmp_path, csv="pec ; nome \n  Mario.Rossi@PEC.it ;  Mario  \n")
    [one] = recipients(spec)
    assert one.address == "mario.rossi@pec.it"
    assert one.fields == {"pec": "Mario.Rossi@PEC.it", "nome": "Mario"}


def test_short_and_long_rows_are_rejected_with_the_reason(tmp_path: Path) -> None:
    text = (
        "pec;nome;cognome\n"
        "a@pec.it;Anna\n"
        "b@pec.it;Bruno;Bianchi;Via Roma;3\n"
        "c@pec.it;Carla;Conti;;\n"
    )
    spec = load(tmp_path, csv=text)
    assert outcome(spec) == [
        (
            2,
            "",
            'the row has 2 cells, the header has 3 (nothing for "cognome"); '
            'check this row for a missing ";"',
        ),
        (
            3,
            "",
            'the row has 5 cells, the header has 3 (extra values "Via Roma", "3"); '
            'a value holding a ";" must be in quotes ("Via Roma; 3"), or delete the extra cells',
        ),
        (4, "c@pec.it", ""),
    ]


def test_a_quote_never_closed_is_pointed_at(tmp_path: Path) -> None:
    text = 'pec;nome;cognome\na@pec.it;"Anna;Rossi\nb@pec.it;Bruno;Bianchi\n'
    spec = load(tmp_path, csv=text)
    assert outcome(spec) == [
        (
            2,
            "",
            'the row has 2 cells, the header has 3 (nothing for "cognome"); '
            'check this row for a quote (") opened in a cell and never closed',
        )
    ]


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        ("mario.rossi@", 'invalid address "mario.rossi@" (no domain)'),
        ("mario.rossi.pec.it", 'invalid address "mario.rossi.pec.it" (no "@")'),
        ("mario rossi@pec.it", 'invalid address "mario rossi@pec.it" (contains a space)'),
        ("a@b@pec.it", 'invalid address "a@b@pec.it" (more than one "@")'),
        ("@pec.it", 'invalid address "@pec.it" (nothing before the "@")'),
        ("mario@pec", 'invalid address "mario@pec" (the domain "pec" has no dot (e.g. pec.it))'),
        (
            "mario@pec..it",
            'invalid address "mario@pec..it" (the domain "pec..it" has an empty part '
            "(a dot at the start or end, or two in a row))",
        ),
        (
            "mario@-pec.it",
            'invalid address "mario@-pec.it" ("-pec" in the domain "-pec.it" starts or ends '
            'with "-", or is too long)',
        ),
        (
            "mario@pec.i",
            'invalid address "mario@pec.i" (the domain "pec.i" does not end in a top-level '
            "domain such as .it or .com)",
        ),
        (
            "mario@pec_it.it",
            'invalid address "mario@pec_it.it" ("_" is not allowed in the domain "pec_it.it")',
        ),
        (
            "mario..rossi@pec.it",
            'invalid address "mario..rossi@pec.it" (a dot at the start or end of the part '
            'before the "@", or two dots in a row)',
        ),
        (
            "mario(x)@pec.it",
            'invalid address "mario(x)@pec.it" ("(" is not allowed before the "@")',
        ),
        (
            "niccolò@pec.it",
            'invalid address "niccolò@pec.it" (contains "ò": a PEC address holds only '
            "unaccented letters, digits and . _ -)",
        ),
        (
            "Mario Rossi <mario@pec.it>",
            'invalid address "Mario Rossi <mario@pec.it>" (write only the address, without a '
            'name, "<>" or "mailto:")',
        ),
        (
            "a@pec.it, b@pec.it",
            'invalid address "a@pec.it, b@pec.it" (more than one address; put each recipient '
            "on a row of its own)",
        ),
        ("", 'no address: the "pec" cell is empty'),
    ],
)
def test_bad_addresses_say_what_is_wrong(tmp_path: Path, cell: str, reason: str) -> None:
    spec = load(tmp_path, csv=f'pec;nome\n"{cell}";Mario\nok@pec.it;Anna\n')
    assert outcome(spec) == [(2, "pec", reason), (3, "ok@pec.it", "")]


@pytest.mark.parametrize(
    "address",
    [
        "mario.rossi@pec.it",
        "d'angelo@legalmail.it",
        "m+r_x-y@sub.domain.pec.it",
        "a@b.co",
        "info@xn--citt-7na.it",
        f"{'a' * 64}@pec.it",
    ],
)
def test_good_addresses_pass(tmp_path: Path, address: str) -> None:
    spec = load(tmp_path, csv=f'pec;nome\n"{address}";Mario\n')
    assert outcome(spec) == [(2, address, "")]


def test_duplicates_ignore_case_and_spaces(tmp_path: Path) -> None:
    text = (
        "pec;nome\n"
        "Mario.Rossi@PEC.it;Mario\n"
        "anna@pec.it;Anna\n"
        "  mario.rossi@pec.it  ;Mario di nuovo\n"
        "MARIO.ROSSI@pec.IT;Mario ancora\n"
        "ANNA@pec.it;Anna\n"
    )
    spec = load(tmp_path, csv=text)
    items = outcome(spec)
    assert items == [
        (2, "mario.rossi@pec.it", ""),
        (3, "anna@pec.it", ""),
        (4, "pec", "duplicate of row 2"),
        (5, "pec", "duplicate of row 2"),
        (6, "pec", "duplicate of row 3"),
    ]
    summary = check(spec)
    assert (summary.rows, summary.valid, summary.rejected, summary.duplicates) == (5, 2, 0, 3)
    assert all(reject.duplicate for reject in summary.rejects)


def test_a_rejected_first_row_still_makes_the_later_ones_duplicates(tmp_path: Path) -> None:
    text = "pec;scadenza\nmario@pec.it;31/02/2026\nmario@pec.it;31/03/2026\n"
    spec = load(tmp_path, csv=text, subject="Avviso", body="<p>{{ scadenza|data }}</p>")
    rows = outcome(spec)
    assert rows[1] == (3, "pec", "duplicate of row 2")
    assert rows[0][:2] == (2, "scadenza")


def test_duplicate_index_grows_and_remembers_first_rows() -> None:
    index = DuplicateIndex()
    for i in range(5000):
        assert index.first(f"u{i}@pec.it", i + 2) == i + 2
    assert len(index) == 5000
    assert index.first("u4321@pec.it", 9999) == 4323
    assert index.first("u0@pec.it", 9999) == 2


def test_duplicate_index_with_key_columns_tells_which_differ_and_finds_repeats() -> None:
    index = DuplicateIndex(width=2)
    for i in range(3000):  # it grows, and keeps each first row's values
        assert index.look(f"u{i}@pec.it", i + 2, (f"C{i}", "X")) == (i + 2, i + 2, ())
    assert index.look("u7@pec.it", 5000, ("C7", "X")) == (9, 9, ())
    assert index.look("u7@pec.it", 5001, ("C7", "Y")) == (9, 5001, (1,))
    assert index.look("u7@pec.it", 5002, ("D7", "Y")) == (9, 5002, (0, 1))
    assert index.look("u7@pec.it", 5003, ("C7", "Y")) == (9, 5001, (1,))
    assert index.look("u8@pec.it", 5004, ("C7", "Y")) == (10, 5004, (0, 1))
    assert len(index) == 3000


def test_missing_address_column_suggests_the_closest_header(tmp_path: Path) -> None:
    spec = load(tmp_path, csv="PEC;nome\nmario@pec.it;Mario\n")
    with pytest.raises(CampaignError) as error:
        check(spec)
    assert str(error.value) == (
        'destinatari.csv, row 1 (the header): no column "pec" (the address_column of '
        'campaign.toml); did you mean "PEC"? Rename the column or change address_column'
    )


def test_missing_address_column_without_a_close_header_lists_the_columns(tmp_path: Path) -> None:
    spec = load(tmp_path, csv="indirizzo;nome\nmario@pec.it;Mario\n")
    with pytest.raises(CampaignError, match='the columns are "indirizzo", "nome"'):
        check(spec)


def test_a_file_without_header_row_is_recognised(tmp_path: Path) -> None:
    spec = load(tmp_path, csv="mario@pec.it;Mario\nanna@pec.it;Anna\n")
    with pytest.raises(CampaignError, match="the first row looks like a recipient, not a header"):
        check(spec)


def test_header_problems_are_listed_all_at_once(tmp_path: Path) -> None:
    spec = load(
        tmp_path,
        csv="pec;nome;;nome;cognome;cognome\nmario@pec.it;Mario;x;Mario;R;R\n",
        extra='attachment_column = "allegato"\nkey_columns = ["codice"]\n',
    )
    with pytest.raises(CampaignError) as error:
        check(spec)
    where = "destinatari.csv, row 1 (the header)"
    assert error.value.problems == [
        f"{where}: column C has no name; name it or delete the column",
        f'{where}: "nome" names columns B and D; each column needs its own name, '
        "rename all but one",
        f'{where}: "cognome" names columns E and F; each column needs its own name, '
        "rename all but one",
        f'{where}: no column "allegato" (the attachment_column of campaign.toml); the columns '
        'are "pec", "nome", "cognome"; add the column or change attachment_column',
        f'{where}: no column "codice" (the key_columns of campaign.toml); the columns '
        'are "pec", "nome", "cognome"; add the column or change key_columns',
    ]


@pytest.mark.parametrize("text", ["", "\n\n", "\r\n \r\n"])
def test_an_empty_file_is_called_empty(tmp_path: Path, text: str) -> None:
    spec = load(tmp_path, csv=text)
    with pytest.raises(CampaignError) as error:
        check(spec)
    assert error.value.problems == [
        "destinatari.csv: the file is empty; write the header row naming the columns "
        "(e.g. pec;nome;cognome) and one row per recipient under it"
    ]


@pytest.mark.parametrize("text", ["pec;nome\n", "\npec;nome\n;\n\n", "pec;nome"])
def test_a_header_without_rows_has_no_recipients(tmp_path: Path, text: str) -> None:
    spec = load(tmp_path, csv=text)
    row = 2 if text.startswith("\n") else 1
    message = (
        f"destinatari.csv: the file has no recipients, only the header (row {row}); "
        "add one row per recipient under it"
    )
    for run in (check, validate):
        with pytest.raises(CampaignError) as error:
            run(spec)
        assert error.value.problems == [message]


def test_column_letters_are_spreadsheet_ones() -> None:
    assert [column_letter(i) for i in (0, 1, 25, 26, 27, 701, 702)] == [
        "A",
        "B",
        "Z",
        "AA",
        "AB",
        "ZZ",
        "AAA",
    ]


def test_validate_streams_rows_lazily(tmp_path: Path) -> None:
    """The first row comes out before the rest of a large file is parsed."""
    body = "".join(f"u{i}@pec.it;N\n" for i in range(20000))
    folder = write_campaign(tmp_path, csv=f"pec;nome\n{body}")
    from massiva.campaign import validate

    items = validate(load_spec(folder))
    first = next(items)
    assert first.row == 2
    items.close()  # type: ignore[attr-defined]


def test_a_runaway_quote_in_a_big_file_stops_with_its_row(tmp_path: Path) -> None:
    text = 'pec;nome\na@pec.it;Anna\nb@pec.it;"Bruno\n' + "x" * 140_000 + "\n"
    spec = load(tmp_path, csv=text)
    with pytest.raises(CampaignError) as error:
        check(spec)
    assert str(error.value) == (
        'destinatari.csv, row 3: a cell longer than 131,072 characters, usually a quote (") '
        "that is never closed; check the quotes from this row on"
    )
