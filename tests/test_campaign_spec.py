"""campaign.toml: every problem listed at once, paths kept inside the folder, hashes."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest

from massiva.campaign import CampaignError, csv_hash, load_spec
from tests.test_campaign_support import load, write_campaign


def write_toml(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "campaign.toml").write_text(text, encoding="utf-8")
    return folder


def test_a_good_spec_is_normalised(tmp_path: Path) -> None:
    folder = write_campaign(
        tmp_path,
        extra=(
            'attachments = ["informativa.pdf"]\nattachment_column = "allegato"\n'
            'key_columns = ["codice", "codice"]\n[csv]\nencoding = "Windows-1252"\n'
            'delimiter = "tab"\n[limits]\nmax_message_mb = 25\n'
        ),
        files={"informativa.pdf": b"%PDF-1.4 x"},
    )
    spec = load_spec(folder)
    real = Path(os.path.realpath(folder))
    assert spec.folder == real
    assert spec.mailbox == "ufficio@pecmassiva.com"
    assert spec.recipients == real / "destinatari.csv"
    assert spec.attachments == (real / "informativa.pdf",)
    assert (spec.attachment_column, spec.key_columns) == ("allegato", ("codice",))
    assert (spec.encoding, spec.delimiter) == ("cp1252", "\t")
    assert spec.max_message_bytes == 25 * 1024 * 1024
    assert (spec.subject_file, spec.body_file) == (None, None)


def test_defaults(tmp_path: Path) -> None:
    spec = load(tmp_path)
    assert spec.attachments == ()
    assert (spec.attachment_column, spec.encoding, spec.delimiter) == (None, None, None)
    assert spec.key_columns == ()
    assert spec.max_message_bytes == 100 * 1024 * 1024
    assert (spec.dedupe, spec.strict_empty, spec.identity) == ("address+keys", False, ())


def test_dedupe_decides_what_makes_a_recipient(tmp_path: Path) -> None:
    keys = 'key_columns = ["codice", "pratica"]\n'
    by_keys = load(tmp_path / "a", extra=keys)
    by_address = load(tmp_path / "b", extra=keys + 'dedupe = "address"\nstrict_empty = true\n')

    assert (by_keys.dedupe, by_keys.identity) == ("address+keys", ("codice", "pratica"))
    assert (by_address.dedupe, by_address.identity) == ("address", ())
    assert by_address.strict_empty is True


def test_dedupe_and_strict_empty_mistakes_say_how_to_fix(tmp_path: Path) -> None:
    folder = write_campaign(tmp_path / "a", extra='dedupe = "keys"\nstrict_empty = "yes"\n')
    no_keys = write_campaign(tmp_path / "b", extra='dedupe = "address+keys"\nstrict_empty = 1\n')

    with pytest.raises(CampaignError) as error:
        load_spec(folder)
    with pytest.raises(CampaignError) as second:
        load_spec(no_keys)

    where = folder / "campaign.toml"
    assert error.value.problems == [
        f'{where}, dedupe: "keys" is not a way to find duplicates; write "address+keys" (a '
        "duplicate has the address and the key_columns of an earlier row: the default) or "
        '"address" (one message an address)',
        f'{where}, strict_empty: "yes" is text; write strict_empty = true or strict_empty = false',
    ]
    where = no_keys / "campaign.toml"
    assert second.value.problems == [
        f'{where}, dedupe: "address+keys" compares the key_columns too, and there are none; '
        'add key_columns = ["codice_cliente"] (the columns that tell two notices to one '
        "address apart), or remove dedupe",
        f"{where}, strict_empty: 1 is a number; write strict_empty = true or strict_empty = false",
    ]


def test_every_problem_of_campaign_toml_is_listed_at_once(tmp_path: Path) -> None:
    (tmp_path / "fuori.csv").write_text("pec\n")
    folder = write_toml(
        tmp_path / "c",
        'name = "Avvisi Marzo"\n'
        'mailbox = "ufficio@pec"\n'
        'subject = "Avviso"\n'
        'subject_file = "oggetto.txt"\n'
        'recipients = "../fuori.csv"\n'
        "address_column = 3\n"
        'attachments = ["manca.pdf", "/etc/passwd"]\n'
        'attachement_column = "allegato"\n'
        "[csv]\n"
        'encoding = "latin-99"\n'
        'delimiter = "ab"\n'
        "[limits]\n"
        "max_message_mb = -1\n",
    )
    with pytest.raises(CampaignError) as error:
        load_spec(folder)
    where = f"{folder / 'campaign.toml'}"
    assert error.value.problems == [
        f"{where}, attachement_column: unknown key; did you mean attachment_column?",
        f'{where}, name: "Avvisi Marzo" may hold only lower-case letters, digits, "-", "_" '
        'and "."; write e.g. "avvisi-marzo"',
        f'{where}, mailbox: "ufficio@pec" is not a mailbox address (the domain "pec" has no '
        "dot (e.g. pec.it)); write the sending box, e.g. ufficio@pecmassiva.com",
        f"{where}, subject_file: both subject and subject_file are set; keep only one of the two",
        f'{where}, body: missing; add body = "..." (a Jinja template) or body_file = '
        '"corpo.html" (a file in the campaign folder)',
        f'{where}, recipients: "../fuori.csv" goes outside the campaign folder (".."); move the '
        "file into the folder and write its name relative to the folder",
        f"{where}, address_column: 3 is a number, not text; write it in quotes",
        f'{where}, attachments: "manca.pdf" not found in the campaign folder; put it there or '
        "fix the name",
        f'{where}, attachments: "/etc/passwd" is an absolute path; write the name of a file '
        "inside the campaign folder, relative to it (e.g. allegati/avviso.pdf)",
        f'{where}, csv.encoding: "latin-99" is not a known encoding; write "utf-8" or '
        '"windows-1252", or remove the key to have it detected',
        f'{where}, csv.delimiter: "ab" is not a delimiter; write ";", "," or "\\t" (tab), or '
        "remove the key to have it sniffed",
        f"{where}, limits.max_message_mb: -1 is not a positive number of MB; write e.g. "
        "max_message_mb = 100",
    ]
    assert str(error.value) == "\n".join(error.value.problems)


def test_required_keys_missing(tmp_path: Path) -> None:
    folder = write_toml(tmp_path, "")
    with pytest.raises(CampaignError) as error:
        load_spec(folder)
    keys = [problem.split(": ")[0].rsplit(", ", 1)[1] for problem in error.value.problems]
    assert keys == ["name", "mailbox", "subject", "body", "recipients", "address_column"]


def test_invalid_toml_gives_line_and_column(tmp_path: Path) -> None:
    folder = write_toml(tmp_path, 'name = "x"\nmailbox = \n')
    with pytest.raises(CampaignError) as error:
        load_spec(folder)
    assert str(error.value).startswith(
        f"{folder / 'campaign.toml'}: line 2, column 11: invalid TOML"
    )


def test_missing_folder_or_file(tmp_path: Path) -> None:
    with pytest.raises(CampaignError, match="no such folder"):
        load_spec(tmp_path / "manca")
    with pytest.raises(CampaignError, match=r"campaign.toml: not found; create it"):
        load_spec(tmp_path)


def test_a_symlink_leading_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "segreto.csv").write_text("pec\n")
    folder = write_campaign(tmp_path / "c")
    (folder / "destinatari.csv").unlink()
    os.symlink(tmp_path / "segreto.csv", folder / "destinatari.csv")
    with pytest.raises(
        CampaignError, match="leads outside the campaign folder through a symbolic link"
    ):
        load_spec(folder)


def test_a_symlink_inside_the_folder_is_fine(tmp_path: Path) -> None:
    folder = write_campaign(tmp_path, files={"dati/lista.csv": "pec;nome\na@pec.it;A\n"})
    (folder / "destinatari.csv").unlink()
    os.symlink(folder / "dati" / "lista.csv", folder / "destinatari.csv")
    assert load_spec(folder).recipients == Path(os.path.realpath(folder / "dati" / "lista.csv"))


def test_template_files_come_from_the_folder_then_the_shared_templates(tmp_path: Path) -> None:
    shared = tmp_path / "templates"
    shared.mkdir()
    (shared / "corpo.html").write_text("<p>condiviso</p>")
    (shared / "oggetto.txt").write_text("Oggetto condiviso\n")
    folder = write_toml(
        tmp_path / "c",
        'name = "x"\nmailbox = "a@pec.it"\nsubject_file = "oggetto.txt"\n'
        'body_file = "corpo.html"\nrecipients = "d.csv"\naddress_column = "pec"\n',
    )
    (folder / "d.csv").write_text("pec\n")
    spec = load_spec(folder, shared_templates=shared)
    assert (spec.subject, spec.body) == ("Oggetto condiviso", "<p>condiviso</p>")
    assert spec.body_file == Path(os.path.realpath(shared / "corpo.html"))
    (folder / "corpo.html").write_text("<p>proprio</p>")
    assert load_spec(folder, shared_templates=shared).body == "<p>proprio</p>"
    with pytest.raises(CampaignError) as error:
        load_spec(folder)  # without the shared folder
    assert str(error.value) == (
        f'{folder / "campaign.toml"}, subject_file: "oggetto.txt" is not in the campaign'
        " folder and no shared templates folder is set; create it, fix the name, or set"
        " [campaigns] templates in massiva.toml (`massiva init` writes a massiva.toml and a"
        " templates/ folder with the layouts massiva ships)"
    )


def test_a_template_file_that_is_not_utf8(tmp_path: Path) -> None:
    folder = write_toml(
        tmp_path,
        'name = "x"\nmailbox = "a@pec.it"\nsubject = "s"\nbody_file = "corpo.html"\n'
        'recipients = "d.csv"\naddress_column = "pec"\n',
    )
    (folder / "d.csv").write_text("pec\n")
    (folder / "corpo.html").write_bytes("<p>Città</p>".encode("cp1252"))
    with pytest.raises(
        CampaignError, match=re.escape('"corpo.html" is not UTF-8 text; save it as UTF-8')
    ):
        load_spec(folder)


def test_content_hash_covers_templates_layouts_and_shared_attachments_not_the_csv(
    tmp_path: Path,
) -> None:
    folder = write_campaign(
        tmp_path,
        body="{% extends 'base.html' %}{% block c %}{{ nome }}{% endblock %}",
        extra='attachments = ["info.pdf"]\n',
        files={"info.pdf": b"%PDF-1 uno", "base.html": "<div>{% block c %}{% endblock %}</div>"},
    )
    first = load_spec(folder).content_hash()
    assert len(first) == 64
    (folder / "destinatari.csv").write_text("pec;nome\naltro@pec.it;Altro\n")
    assert load_spec(folder).content_hash() == first
    (folder / "info.pdf").write_bytes(b"%PDF-1 due")
    second = load_spec(folder).content_hash()
    assert second != first
    (folder / "base.html").write_text("<main>{% block c %}{% endblock %}</main>")
    assert load_spec(folder).content_hash() not in (first, second)


def test_csv_hash_is_the_sha256_of_the_file(tmp_path: Path) -> None:
    spec = load(tmp_path)
    data = spec.recipients.read_bytes()
    assert csv_hash(spec.recipients) == hashlib.sha256(data).hexdigest()
