"""``massiva init``: a working folder for the simulator, and never a file overwritten;
a copied campaign finds the shared layout, or is told where to put it."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from massiva.cli import main
from massiva.config import load_config
from massiva.resources import EXAMPLE_CAMPAIGN, TEMPLATES
from massiva.starter import CONFIG_TEXT


def run_cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def files(folder: Path) -> dict[str, bytes]:
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in folder.rglob("*")
        if path.is_file()
    }


def test_init_writes_the_settings_the_templates_and_the_example(tmp_path: Path) -> None:
    folder = tmp_path / "avvisi"

    result = run_cli("init", str(folder))

    assert result.exit_code == 0, result.output
    written = files(folder)
    assert written.pop("massiva.toml") == CONFIG_TEXT.encode()
    shipped = {f"templates/{name}": data for name, data in files(TEMPLATES).items()}
    shipped |= {f"campaigns/example/{name}": data for name, data in files(EXAMPLE_CAMPAIGN).items()}
    assert written == shipped
    assert {"templates/pec_base.html", "templates/report.html"} <= set(written)
    assert "campaigns/example/campaign.toml" in written
    assert result.output.startswith(f"Wrote {len(shipped) + 1} files in {folder}:\n")
    assert (
        "Next:\n"
        f"  cd {folder}\n"
        "  massiva campaign check campaigns/example             "
        "# every row checked; nothing is sent\n"
        "  massiva simulator --port 8080 &                      "
        "# the vendor's APIs, simulated here\n"
        "  export OPENAPI_TOKEN=any MASSIVA_PASSWORD_DEMO=demo  # for the simulator\n"
    ) in result.output
    assert result.output.endswith(
        "  massiva campaign load campaigns/example && massiva send esempio-avvisi-2026\n"
        "  massiva reconcile && massiva report esempio-avvisi-2026 --format html\n"
    )


def test_the_written_settings_load_and_point_at_the_simulator(tmp_path: Path) -> None:
    assert run_cli("init", str(tmp_path)).exit_code == 0

    config = load_config(tmp_path / "massiva.toml")

    assert (config.pec_url, config.sending_url) == ("http://127.0.0.1:8080",) * 2
    assert config.token_env == "OPENAPI_TOKEN"
    assert config.database == tmp_path / "massiva.db"
    assert config.templates == tmp_path / "templates"
    box = config.mailbox("demo@pecmassiva.com")
    assert (box.password_env, box.daily_limit, box.monthly_limit, box.send_rate) == (
        "MASSIVA_PASSWORD_DEMO",
        3500,
        30000,
        1.0,
    )
    assert config.default_mailbox() == "demo@pecmassiva.com"
    assert config.password("demo@pecmassiva.com", {"MASSIVA_PASSWORD_DEMO": "demo"}) == "demo"


def test_the_settings_shown_in_comments_are_valid_too(tmp_path: Path) -> None:
    # Every commented-out setting is one a reader may switch on: it must load.
    switched_on = re.sub(r"(?m)^# (\[|\w+ = )", r"\1", CONFIG_TEXT)
    assert switched_on.count("\n#") < CONFIG_TEXT.count("\n#") - 3
    (tmp_path / "templates").mkdir()
    (tmp_path / "massiva.toml").write_text(switched_on, encoding="utf-8")

    config = load_config(tmp_path / "massiva.toml")

    assert config.sandbox
    assert config.own_domains == ("pec.studio.it",)
    assert config.mailbox("demo@pecmassiva.com").certifying_senders == (
        "posta-certificata@pecmassiva.com",
    )


def test_the_example_checks_in_the_new_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run_cli("init", str(tmp_path)).exit_code == 0
    monkeypatch.chdir(tmp_path)

    result = run_cli("campaign", "check", "campaigns/example")

    assert result.exit_code == 0, result.output
    assert result.output.startswith("esempio-avvisi-2026: ")


def test_init_overwrites_nothing_and_names_what_is_there(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "massiva.toml").write_text("# mine\n", encoding="utf-8")
    (tmp_path / "templates" / "report.html").write_text("mine", encoding="utf-8")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.html"
    (tmp_path / "templates" / "pec_base.html").symlink_to(outside)  # dangling: not followed
    before = files(tmp_path)

    result = run_cli("init", str(tmp_path))

    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {tmp_path} already has massiva.toml, templates/pec_base.html,"
        " templates/report.html; nothing was written: move them away, or run massiva init"
        " in another folder\n"
    )
    assert files(tmp_path) == before
    assert not (tmp_path / "campaigns").exists()
    assert not os.path.lexists(outside)


def test_init_json(tmp_path: Path) -> None:
    result = run_cli("init", "--json", str(tmp_path))

    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["folder"] == str(tmp_path)
    assert set(answer["written"]) == set(files(tmp_path))
    assert answer["next"] == [
        "massiva campaign check campaigns/example",
        "massiva simulator --port 8080 &",
        "export OPENAPI_TOKEN=any MASSIVA_PASSWORD_DEMO=demo",
    ]

    again = run_cli("init", "--json", str(tmp_path))

    assert again.exit_code == 2
    error = json.loads(again.stdout)["error"]
    assert (error["exit_code"], sorted(error["existing"])) == (2, sorted(answer["written"]))


def test_a_copied_example_finds_the_shipped_layout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No massiva.toml, no templates/: the layouts massiva ships are the default.
    shutil.copytree(EXAMPLE_CAMPAIGN, tmp_path / "mine")
    monkeypatch.chdir(tmp_path)

    result = run_cli("campaign", "check", "mine")

    assert result.exit_code == 0, result.output


def test_a_shared_folder_without_the_layout_names_the_setting_and_init(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(EXAMPLE_CAMPAIGN, tmp_path / "mine")
    (tmp_path / "layouts").mkdir()
    (tmp_path / "massiva.toml").write_text('[campaigns]\ntemplates = "layouts"\n')
    monkeypatch.chdir(tmp_path)

    result = run_cli("campaign", "check", "mine")

    assert result.exit_code == 2
    layouts = os.path.realpath(tmp_path / "layouts")
    assert result.stderr == (
        "Error: nothing was sent; fix these first:\n"
        '  - body template (corpo.html): "pec_base.html" is not in the campaign folder nor in'
        f" the shared templates folder {layouts} ([campaigns] templates in massiva.toml);"
        " create it or fix the name (`massiva init` writes a massiva.toml and a templates/"
        " folder with the layouts massiva ships)\n"
    )


def test_a_shared_folder_that_is_not_there_names_init(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(EXAMPLE_CAMPAIGN, tmp_path / "mine")
    (tmp_path / "massiva.toml").write_text('[campaigns]\ntemplates = "layouts"\n')
    monkeypatch.chdir(tmp_path)

    result = run_cli("campaign", "check", "mine")

    assert result.exit_code == 3
    assert result.stderr == (
        f"Error: {tmp_path / 'massiva.toml'}:\n"
        f"  - campaigns.templates: {tmp_path / 'layouts'} is not a folder; create it, or run"
        " `massiva init` in a new folder for a copy of the shipped templates\n"
    )
