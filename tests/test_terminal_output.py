"""Data on the terminal is shown, never obeyed: rich markup in a CSV cell or a vendor's
answer is printed as it is, and terminal escape sequences are printed escaped."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from starlette.applications import Starlette

from massiva.cli.output import table
from massiva.cli.text import printable
from massiva.simulator import Simulator
from massiva.times import ROME
from tests.cli import Invoke, cli
from tests.test_files_safety import campaign
from tests.test_sender import make_campaign, pec_addresses

#: An OSC 8 hyperlink: on a terminal, "link" would open http://evil.
HYPERLINK = "\x1b]8;;http://evil\x1b\\link"
HYPERLINK_SHOWN = "\\x1b]8;;http://evil\\x1b\\link"
CSV = (
    "pec;nome\n"
    "[/bold]@pec.it;Mario\n"
    f'"{HYPERLINK}@pec.it";Luigi\n'
    "[link=http://evil]x[/link]@pec.it;Anna\n"
    f'rossi@pec.it;"{HYPERLINK} [link=http://evil]x[/link]"\n'
    ":warning:@pec.it;Emoji\n"
    "csi\x9b2J@pec.it;C1\n"
)
#: The same rows with plain mistakes instead: the command must behave the same.
PLAIN_CSV = (
    "pec;nome\nuno;Mario\ndue;Luigi\ntre;Anna\nrossi@pec.it;Rossi\nquattro;Emoji\ncinque;C1\n"
)


def no_raw_controls(text: str) -> bool:
    return not any(char in text for char in "\x1b\x9b\r\x07")


def test_printable_escapes_every_control_but_tab_and_newline() -> None:
    assert printable("a\tb\nc") == "a\tb\nc"
    assert printable(HYPERLINK) == HYPERLINK_SHOWN
    assert printable("over\rwrite") == "over\\rwrite"
    assert (
        printable("\x00\x07\x08\x7f\x80\x9b\x9f\xa0é€")
        == "\\x00\\x07\\x08\\x7f\\x80\\x9b\\x9f\xa0é€"
    )
    assert printable("[bold]x[/bold] :warning:") == "[bold]x[/bold] :warning:"  # not markup here


def test_a_table_shows_markup_emoji_codes_and_escapes_as_text(
    capsys: pytest.CaptureFixture[str],
) -> None:
    table(
        "Title [bold]x[/bold]",
        ["a", "b"],
        [["[/bold]@pec.it", f":warning: {HYPERLINK}"], ["[link=http://evil]x[/link]", "a\rb"]],
    )

    out = capsys.readouterr().out
    lines = [line.strip("│ ").rstrip() for line in out.splitlines()]
    assert lines[0] == "Title [bold]x[/bold]"
    assert f"[/bold]@pec.it             │ :warning: {HYPERLINK_SHOWN}" in lines
    assert "[link=http://evil]x[/link] │ a\\rb" in lines
    assert no_raw_controls(out) and "⚠" not in out


def test_check_prints_markup_and_escape_sequences_literally(invoke: Invoke, tmp_path: Path) -> None:
    folder = campaign(tmp_path / "c", CSV)

    result = invoke("campaign", "check", str(folder))
    plain = invoke("campaign", "check", str(campaign(tmp_path / "plain", PLAIN_CSV)))
    found = json.loads(invoke("campaign", "check", str(folder), "--json").stdout)

    assert (result.exit_code, plain.exit_code) == (0, 0)  # as for any bad row: no crash
    assert (
        result.stdout.splitlines()[0]
        == plain.stdout.splitlines()[0]
        == ("prova: 6 rows, 1 valid, 5 rejected, 0 duplicates.")
    )
    assert [r["row"] for r in found["rejects"]] == [2, 3, 4, 6, 7]
    for reject in found["rejects"]:
        assert printable(reject["reason"]) in result.stdout
    assert f'invalid address "{HYPERLINK_SHOWN}@pec.it"' in result.stdout
    assert 'invalid address "[/bold]@pec.it"' in result.stdout
    assert 'invalid address "[link=http://evil]x[/link]@pec.it"' in result.stdout
    assert 'invalid address ":warning:@pec.it"' in result.stdout
    assert 'invalid address "csi\\x9b2J@pec.it"' in result.stdout
    assert no_raw_controls(result.stdout + result.stderr)


def test_check_json_escapes_c1_controls_too(invoke: Invoke, tmp_path: Path) -> None:
    result = invoke("campaign", "check", str(campaign(tmp_path / "c", CSV)), "--json")

    assert result.exit_code == 0
    assert no_raw_controls(result.stdout)
    assert "\\u009b" in result.stdout and "\\u001b" in result.stdout
    reasons = [r["reason"] for r in json.loads(result.stdout)["rejects"]]
    assert any("\x9b" in reason for reason in reasons)  # the same data, decoded


def test_preview_shows_the_fields_escaped(invoke: Invoke, tmp_path: Path) -> None:
    folder = campaign(tmp_path / "c", CSV)

    shown = invoke("campaign", "preview", str(folder), "--row", "5")
    refused = invoke("campaign", "preview", str(folder), "--row", "3")

    assert shown.exit_code == 0, shown.output
    name = f"{HYPERLINK_SHOWN} [link=http://evil]x[/link]"
    assert f"Subject:     Avviso {name}\n" in shown.stdout
    assert f"<p>Gentile {name}</p>\n" in shown.stdout
    assert refused.exit_code == 2
    assert refused.stderr.startswith(
        f'Error: row 3 cannot be sent: pec: invalid address "{HYPERLINK_SHOWN}@pec.it"'
    )
    assert no_raw_controls(shown.stdout + refused.stderr)


def test_vendor_text_is_shown_escaped(invoke: Invoke, app: Starlette) -> None:
    simulator: Simulator = app.state.simulator
    box_id, record = next(iter(simulator.caselle.items()))
    record["casella_pec"] = f"[/bold]{HYPERLINK}@pecmassiva.com"

    status = invoke("mailbox", "status", box_id)
    listed = invoke("mailbox", "list")

    for result in (status, listed):
        assert result.exit_code == 0, result.output
        assert f"[/bold]{HYPERLINK_SHOWN}@pecmassiva.com" in result.stdout
        assert no_raw_controls(result.stdout)


def frames(stderr: str) -> list[str]:
    """The progress bar as it was drawn, frame by frame (each redraw starts with a
    carriage return), without its colours."""
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", stderr)
    return [frame.strip() for frame in plain.split("\r") if frame.strip()]


ON_A_TERMINAL = {"TTY_COMPATIBLE": "1", "COLUMNS": "220"}  # rich's own switch


def rome_day() -> str:
    """A pattern of today's Rome date as the progress shows it (a run may cross midnight)."""
    days = {datetime.now(ROME) - timedelta(seconds=s) for s in (0, 30)}
    return "(" + "|".join(f"{day:%d/%m}" for day in days) + ")"


def test_the_send_bar_knows_its_total_and_its_end_from_the_first_frame(
    invoke: Invoke, tmp_path: Path
) -> None:
    invoke("campaign", "load", str(make_campaign(tmp_path / "c", pec_addresses(6))))

    result = invoke("send", "prova", "--rate", "2", env=ON_A_TERMINAL)

    assert result.exit_code == 0, result.output
    drawn = frames(result.stderr)
    today = rome_day()
    assert re.fullmatch(
        r"sending ━+ 0/6 sent 0  accepted 0  rejected 0  unknown 0"
        rf"  allowance left 100 on {today}  done in 0:00:03",
        drawn[0],
    ), drawn[0]
    assert re.fullmatch(
        r"sending ━+ 6/6 sent 6  accepted 0  rejected 0  unknown 0  \d\.\d\d sent/s"
        rf"  allowance left 94 on {today}",
        drawn[-1],
    ), drawn[-1]
    assert all(re.search(r" \d/6 sent", frame) for frame in drawn), drawn  # never "/?"
    assert result.stdout.startswith("prova: every recipient has been posted.\n")


def test_the_send_bar_says_when_the_allowance_will_stop_the_run(
    app: Starlette, tmp_path: Path
) -> None:
    invoke = cli(app, tmp_path, mailbox="daily_limit = 3\n")
    invoke("campaign", "load", str(make_campaign(tmp_path / "c", pec_addresses(6))))

    result = invoke("send", "prova", "--rate", "2", env=ON_A_TERMINAL)

    drawn = frames(result.stderr)
    assert re.search(
        rf"0/6 .* allowance left 3 on {rome_day()}  allowance spent in 0:00:02, then it stops$",
        drawn[0],
    ), drawn[0]
    assert " 3/6 " in drawn[-1] and "allowance left 0 on" in drawn[-1]
    assert result.exit_code == 7


def test_off_a_terminal_send_prints_a_line_every_few_seconds_on_the_runs_clock(
    invoke: Invoke, tmp_path: Path
) -> None:
    invoke("campaign", "load", str(make_campaign(tmp_path / "c", pec_addresses(2))))

    before = datetime.now(ROME).replace(microsecond=0)
    result = invoke("send", "prova", "--rate", "2", env={"TTY_COMPATIBLE": "0"})

    assert result.exit_code == 0, result.output
    first = result.stderr.splitlines()[0]
    stamp, _, line = first.partition("  ")
    at = datetime.fromisoformat(stamp)
    assert before <= at <= datetime.now(ROME)
    assert line == (
        "prova: sent 0  accepted 0  rejected 0  unknown 0  allowance left 100 on "
        f"{at:%d/%m}  done in 0:00:01"
    )
    assert no_raw_controls(result.stderr)
