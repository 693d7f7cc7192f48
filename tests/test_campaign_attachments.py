"""Attachments: inside the folder, checked by type and size, read one message at a time."""

from __future__ import annotations

import base64
import builtins
import os
import re
from pathlib import Path
from typing import Any

import pytest

from massiva.campaign import CampaignError, check, load_spec, message_attachments
from massiva.campaign.filetypes import HEAD
from tests.test_campaign_support import outcome, recipients, write_campaign

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "campaigns" / "example"
PDF = b"%PDF-1.4\n" + b"x" * 100


def pdf(size: int) -> bytes:
    """A PDF's first bytes, padded to ``size`` bytes."""
    return b"%PDF-1.4\n".ljust(size, b"x")


def campaign(tmp_path: Path, rows: str, *, extra: str = "", **files: bytes) -> Path:
    return write_campaign(
        tmp_path,
        csv="pec;nome;allegato\n" + rows,
        extra='attachment_column = "allegato"\n' + extra,
        files={name.replace("__", "/"): content for name, content in files.items()},
    )


def test_per_recipient_attachments_are_checked(tmp_path: Path) -> None:
    (tmp_path / "x.pdf").write_bytes(PDF)
    folder = campaign(
        tmp_path / "c",
        "a@pec.it;Anna;allegati/a.pdf\n"
        "b@pec.it;Bruno;\n"
        "c@pec.it;Carla;fatture/123.pdf\n"
        "d@pec.it;Dario;../x.pdf\n"
        "e@pec.it;Elena;/etc/passwd\n"
        "f@pec.it;Fabio;C:\\Users\\x.pdf\n"
        "g@pec.it;Gino;allegati\n"
        "h@pec.it;Ugo;allegati\\a.pdf\n"
        "i@pec.it;Ida;link.pdf\n"
        "l@pec.it;Lea;vuoto.pdf\n",
        allegati__a_pdf=PDF,
        vuoto_pdf=b"",
    )
    os.rename(folder / "allegati" / "a_pdf", folder / "allegati" / "a.pdf")
    os.rename(folder / "vuoto_pdf", folder / "vuoto.pdf")
    os.symlink(tmp_path / "x.pdf", folder / "link.pdf")
    spec = load_spec(folder)
    column = "allegato"
    absolute = (
        "is an absolute path; write the name of a file inside the campaign folder, relative "
        "to it (e.g. allegati/avviso.pdf)"
    )
    assert outcome(spec) == [
        (2, "a@pec.it", ""),
        (3, "b@pec.it", ""),
        (4, column, 'attachment "fatture/123.pdf" not found in the campaign folder'),
        (
            5,
            column,
            'attachment "../x.pdf" goes outside the campaign folder (".."); move the file into '
            "the folder and write its name relative to the folder",
        ),
        (6, column, f'attachment "/etc/passwd" {absolute}'),
        (7, column, f'attachment "C:\\Users\\x.pdf" {absolute}'),
        (8, column, 'attachment "allegati" is a folder, not a file'),
        (9, "h@pec.it", ""),
        (
            10,
            column,
            'attachment "link.pdf" leads outside the campaign folder through a symbolic link; '
            "copy the file into the folder instead",
        ),
        (11, column, 'attachment "vuoto.pdf" is empty (0 bytes); replace it with the real file'),
    ]
    found = recipients(spec)
    assert [r.attachment for r in found] == ["allegati/a.pdf", None, "allegati/a.pdf"]


def test_the_message_size_counts_attachments_as_sent(tmp_path: Path) -> None:
    # 0.002 MB = 2097 bytes. Shared 600 bytes -> 800 base64; a.pdf 900 -> 1200; b.pdf 1200 -> 1600.
    folder = campaign(
        tmp_path,
        "a@pec.it;Anna;a.pdf\nb@pec.it;Bruno;b.pdf\nc@pec.it;Carla;\n",
        extra='attachments = ["info.pdf"]\n[limits]\nmax_message_mb = 0.002\n',
        info_pdf=pdf(600),
        a_pdf=pdf(900),
        b_pdf=pdf(1200),
    )
    for name in ("info", "a", "b"):
        os.rename(folder / f"{name}_pdf", folder / f"{name}.pdf")
    spec = load_spec(folder)
    assert outcome(spec) == [
        (2, "a@pec.it", ""),
        (
            3,
            "allegato",
            "message too big: 2.4 KB as sent, over the limit of 2.0 KB (body 20 bytes, shared "
            'attachments 600 bytes, "b.pdf" 1.2 KB; attachments travel base64-encoded, a third '
            "larger); send a smaller file",
        ),
        (4, "c@pec.it", ""),
    ]


def test_shared_attachments_alone_over_the_limit_stop_the_check(tmp_path: Path) -> None:
    folder = campaign(
        tmp_path,
        "a@pec.it;Anna;\n",
        extra='attachments = ["info.pdf"]\n[limits]\nmax_message_mb = 0.001\n',
        info_pdf=pdf(1000),
    )
    os.rename(folder / "info_pdf", folder / "info.pdf")
    with pytest.raises(CampaignError) as error:
        check(load_spec(folder))
    assert str(error.value) == (
        "campaign.toml, attachments: 1000 bytes of shared attachments, 1.3 KB as sent "
        "(base64-encoded), exceed the 1.0 KB a message may carry; make them smaller or raise "
        "[limits] max_message_mb if your plan allows it"
    )


def test_a_shared_attachment_removed_after_loading_is_reported(tmp_path: Path) -> None:
    folder = campaign(
        tmp_path, "a@pec.it;Anna;\n", extra='attachments = ["info.pdf"]\n', info_pdf=PDF
    )
    os.rename(folder / "info_pdf", folder / "info.pdf")
    spec = load_spec(folder)
    (folder / "info.pdf").unlink()
    with pytest.raises(
        CampaignError, match=re.escape('"info.pdf" is no longer in the campaign folder')
    ):
        check(spec)


def test_message_attachments_encode_shared_ones_once(tmp_path: Path) -> None:
    folder = campaign(
        tmp_path,
        "a@pec.it;Anna;allegati/a.pdf\nb@pec.it;Bruno;\n",
        extra='attachments = ["informativa.pdf"]\n',
        informativa_pdf=PDF,
        allegati__a_pdf=b"%PDF-1.4 per Anna",
    )
    os.rename(folder / "informativa_pdf", folder / "informativa.pdf")
    os.rename(folder / "allegati" / "a_pdf", folder / "allegati" / "a.pdf")
    spec = load_spec(folder)
    anna, bruno = recipients(spec)
    first = message_attachments(spec, anna.attachment)
    assert [a.name for a in first] == ["informativa.pdf", "a.pdf"]
    assert first[0].file == "data:application/pdf;base64," + base64.b64encode(PDF).decode()
    assert first[1].file.endswith(base64.b64encode(b"%PDF-1.4 per Anna").decode())
    (folder / "informativa.pdf").write_bytes(b"changed")  # already encoded: not read again
    second = message_attachments(spec, bruno.attachment)
    assert second == first[:1]
    assert second[0] is first[0]
    (folder / "allegati" / "a.pdf").write_bytes(b"%PDF new")  # read for every message
    assert message_attachments(spec, anna.attachment)[1].file.endswith(
        base64.b64encode(b"%PDF new").decode()
    )


def test_message_attachments_refuse_names_outside_the_folder(tmp_path: Path) -> None:
    spec = load_spec(campaign(tmp_path, "a@pec.it;Anna;\n"))
    with pytest.raises(CampaignError, match=re.escape('attachment "../x.pdf" goes outside')):
        message_attachments(spec, "../x.pdf")
    with pytest.raises(CampaignError, match=re.escape('attachment "manca.pdf" cannot be read')):
        message_attachments(spec, "manca.pdf")
    assert message_attachments(spec, None) == []


def test_check_reads_only_the_first_bytes_of_each_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = campaign(
        tmp_path,
        "a@pec.it;Anna;a.pdf\nb@pec.it;Bruno;./a.pdf\nc@pec.it;Carla;a.pdf\n",
        extra='attachments = ["i.pdf"]\n',
        a_pdf=pdf(50_000),
        i_pdf=pdf(50_000),
    )
    os.rename(folder / "a_pdf", folder / "a.pdf")
    os.rename(folder / "i_pdf", folder / "i.pdf")
    spec = load_spec(folder)
    reads: list[tuple[str, int]] = []

    class Counted:
        """A file that notes what is read of it."""

        def __init__(self, file: Any, name: str) -> None:
            self.file, self.name = file, name

        def __enter__(self) -> Counted:
            return self

        def __exit__(self, *exc: object) -> None:
            self.file.close()

        def read(self, size: int = -1) -> bytes:
            reads.append((self.name, size))
            data: bytes = self.file.read(size)
            return data

    real_fdopen, real_open = os.fdopen, builtins.open

    def counted(opened: Any, fd: int) -> Any:
        name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        return Counted(opened, name) if name.endswith(".pdf") else opened

    def spy_fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
        return counted(real_fdopen(fd, *args, **kwargs), fd)

    def spy_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        opened = real_open(file, *args, **kwargs)
        return counted(opened, opened.fileno())

    monkeypatch.setattr(os, "fdopen", spy_fdopen)
    monkeypatch.setattr(builtins, "open", spy_open)
    assert check(spec).valid == 3
    assert sorted(reads) == [("a.pdf", HEAD), ("i.pdf", HEAD)]


def test_a_file_that_is_not_what_its_name_says_is_a_reject_naming_it(tmp_path: Path) -> None:
    folder = write_campaign(
        tmp_path,
        csv="pec;nome;allegato\n"
        "a@pec.it;Anna;avviso-a.pdf\n"
        "b@pec.it;Bruno;lettera.docx\n"
        "c@pec.it;Carla;setup.exe\n"
        "d@pec.it;Dario;fattura.pdf\n"
        "e@pec.it;Elena;disegno.dwg\n"
        "f@pec.it;Fabio;avviso-f.pdf\n",
        extra='attachment_column = "allegato"\n',
        files={
            "avviso-a.pdf": "Gentile Anna,\n",
            "lettera.docx": "Gentile Bruno,\n",
            "setup.exe": PDF,
            "fattura.pdf": b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 56,
            "disegno.dwg": b"AC1032\x00\x00",
            "avviso-f.pdf": PDF,
        },
    )
    mismatch = "attach the right file, or give it the extension of its type"
    program = "programs are never sent; attach a document (a PDF, say)"
    found = outcome(load_spec(folder))
    assert found[:4] == [
        (
            2,
            "allegato",
            'attachment "avviso-a.pdf" is named .pdf but is not a PDF document (its content'
            f" is text); {mismatch}",
        ),
        (
            3,
            "allegato",
            'attachment "lettera.docx" is named .docx but is not a Word, Excel or PowerPoint'
            f" document (its content is text); {mismatch}",
        ),
        (4, "allegato", f'attachment "setup.exe" is a program (.exe): {program}'),
        (5, "allegato", f'attachment "fattura.pdf" is a Windows program: {program}'),
    ]
    assert found[4][:2] == (6, "allegato")
    assert found[4][2].startswith('attachment "disegno.dwg" is a .dwg file, a type massiva')
    assert found[5] == (7, "f@pec.it", "")


def test_a_shared_attachment_that_is_not_what_its_name_says_stops_the_check(
    tmp_path: Path,
) -> None:
    folder = write_campaign(
        tmp_path,
        extra='attachments = ["informativa.pdf", "istruzioni.txt"]\n',
        files={"informativa.pdf": "Informativa\n", "istruzioni.txt": "#!/bin/sh\n"},
    )
    with pytest.raises(CampaignError) as error:
        check(load_spec(folder))
    assert error.value.problems == [
        'campaign.toml, attachments: "informativa.pdf" is named .pdf but is not a PDF document'
        " (its content is text); attach the right file, or give it the extension of its type",
        'campaign.toml, attachments: "istruzioni.txt" is a script: programs are never sent;'
        " attach a document (a PDF, say)",
    ]


def test_a_file_replaced_by_a_program_after_the_check_is_not_sent(tmp_path: Path) -> None:
    folder = campaign(tmp_path, "a@pec.it;Anna;allegati/a.pdf\n", allegati__a_pdf=PDF)
    os.rename(folder / "allegati" / "a_pdf", folder / "allegati" / "a.pdf")
    spec = load_spec(folder)
    (anna,) = recipients(spec)
    (folder / "allegati" / "a.pdf").write_bytes(b"\x7fELF\x02\x01\x01\x00")
    with pytest.raises(CampaignError) as error:
        message_attachments(spec, anna.attachment)
    assert str(error.value) == (
        'attachment "allegati/a.pdf" is a Linux program: programs are never sent;'
        " attach a document (a PDF, say)"
    )


def test_the_example_campaigns_files_pass() -> None:
    spec = load_spec(EXAMPLE, shared_templates=ROOT / "templates")
    assert check(spec).rejected == 0
    sent = {a.name for row in recipients(spec) for a in message_attachments(spec, row.attachment)}
    assert sent == {"informativa.pdf", "fattura-CL-0001.pdf", "fattura-CL-0004.pdf"}
