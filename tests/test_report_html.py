"""The HTML report, opened in headless Chromium: what a user looks at is there.

Chromium is Debian's ``chromium`` package (.ci/run installs it); without it these tests
fail, saying how to install it.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from pypdf import PdfReader
from starlette.applications import Starlette

from massiva.report import as_html
from massiva.simulator import SimClock, SimulatorSettings, create_app
from tests.cli import Invoke, cli
from tests.conftest import START
from tests.db import connect
from tests.test_report_support import (
    FAILED_REASON,
    FORMULA,
    browse,
    ok,
    people,
    send_all,
    settle,
    write_folder,
)


class Page(HTMLParser):
    """The text of a page by element: cards, table rows, SVG texts and polylines."""

    def __init__(self, markup: str) -> None:
        super().__init__()
        self.stack: list[tuple[str, dict[str, str]]] = []
        self.cards: dict[str, str] = {}
        self.rows: list[str] = []
        self.svg_texts: list[str] = []
        self.polylines: dict[str, str] = {}
        self.tags: set[str] = set()
        self.notices: list[str] = []
        self.headings: list[str] = []
        self._text: dict[int, list[str]] = {}
        self.feed(markup)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        self.tags.add(tag)
        if tag == "polyline":
            self.polylines[found.get("class", "")] = found.get("points", "")
        if tag in ("wbr", "rect", "line", "polyline", "meta", "br"):
            return  # empty elements
        self.stack.append((tag, found))
        self._text[len(self.stack)] = []

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1][0] != tag:
            return
        depth = len(self.stack)
        name, found = self.stack.pop()
        text = " ".join("".join(self._text.pop(depth)).split())
        if depth - 1 in self._text:
            self._text[depth - 1].append(" " + text + " ")
        if "data-card" in found:
            self.cards[found["data-card"]] = text
        elif name == "tr":
            self.rows.append(text)
        elif name == "text" and any(t == "svg" for t, _ in self.stack):
            self.svg_texts.append(text)
        elif "notice" in found.get("class", ""):
            self.notices.append(text)
        elif name == "h2":
            self.headings.append(text)

    def handle_data(self, data: str) -> None:
        if self.stack:
            self._text[len(self.stack)].append(data)


@pytest.fixture
def app() -> Starlette:
    return create_app(SimulatorSettings(send_rate=None), clock=SimClock(start=START, speed=0))


@pytest.fixture
def invoke(app: Starlette, tmp_path: Path) -> Invoke:
    return cli(app, tmp_path)


@pytest.fixture
def page(invoke: Invoke, tmp_path: Path) -> Path:
    """The HTML report of a campaign of 10, sent and settled."""
    send_all(invoke, write_folder(tmp_path / "c", people(10)))
    settle(tmp_path / "massiva.db")
    ok(invoke("report", "prova", "--format", "html", "-o", str(tmp_path / "report.html")))
    return tmp_path / "report.html"


def test_chromium_shows_the_counts_a_failed_reason_and_the_chart(
    page: Path, tmp_path: Path
) -> None:
    raw = page.read_text(encoding="utf-8")
    dom = Page(browse(page, tmp_path, "--dump-dom").stdout)

    # One self-contained file: nothing to fetch, nothing to run.
    assert not re.search(r"<script|<link|<img|<iframe|\bsrc=|\bhref=|url\(|@import", raw)
    assert "script" not in dom.tags and "a" not in dom.tags
    # The summary cards count every recipient.
    assert dom.cards["recipients"].startswith("Recipients 10 ")
    assert dom.cards["delivered"] == "Delivered 2 20.0% of the recipients"
    assert dom.cards["failed"].startswith("Failed 1 ")
    assert dom.cards["expired"].startswith("Expired 1 ")
    assert dom.cards["rejected"].startswith("Rejected 1 ")
    assert dom.cards["unknown"].startswith("Unknown 1 ")
    assert dom.cards["sent"].startswith("Sent 3 ")
    # The chart: two lines that rise, labelled with their totals.
    assert "svg" in dom.tags
    assert "Accepted (5)" in dom.svg_texts and "Delivered (2)" in dom.svg_texts
    for series in ("series-accepted", "series-delivered"):
        heights = {point.split(",")[1] for point in dom.polylines[series].split()}
        assert len(heights) >= 2, dom.polylines
    # The failure reasons, as bars, and the failed recipient's row with its reason.
    assert f"failed: {FAILED_REASON}" in dom.svg_texts
    (failed,) = [row for row in dom.rows if "utente001@legalmail.it" in row]
    assert " failed " in failed and FAILED_REASON in failed
    assert "2026-03-10T10:15:00+01:00" in failed  # Rome time, with the offset
    # The formula is text, and every recipient is listed.
    (formula,) = [row for row in dom.rows if "utente002@legalmail.it" in row]
    assert FORMULA in formula
    assert len([row for row in dom.rows if "@legalmail.it" in row]) == 10
    assert not dom.notices  # nothing left out


def test_it_prints_on_landscape_pages(page: Path, tmp_path: Path) -> None:
    pdf = tmp_path / "report.pdf"

    browse(page, tmp_path, f"--print-to-pdf={pdf}", "--no-pdf-header-footer")

    reader = PdfReader(pdf)
    first = reader.pages[0]
    assert float(first.mediabox.width) > float(first.mediabox.height)  # A4 landscape
    text = " ".join(page.extract_text() for page in reader.pages)
    assert "Delivery report: prova" in text
    assert "Mancata consegna" in text


def test_data_is_escaped_never_markup(invoke: Invoke, tmp_path: Path) -> None:
    send_all(invoke, write_folder(tmp_path / "c", people(10)))
    settle(tmp_path / "massiva.db")
    with connect(tmp_path / "massiva.db") as conn:
        conn.execute(
            "UPDATE recipient SET reason = '<script>alert(1)</script><b>x</b>'"
            " WHERE state = 'failed'"
        )
    ok(invoke("report", "prova", "--format", "html", "-o", str(tmp_path / "r.html")))

    dom = Page(browse(tmp_path / "r.html", tmp_path, "--dump-dom").stdout)

    assert "script" not in dom.tags and "b" not in dom.tags
    assert any("<script>alert(1)</script><b>x</b>" in row for row in dom.rows)


def test_a_big_campaign_lists_those_needing_attention_and_says_where_the_rest_are(
    invoke: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(as_html, "ALL_ROWS", 5)
    monkeypatch.setattr(as_html, "ATTENTION_ROWS", 2)
    monkeypatch.setattr(as_html, "FIRST_ROWS", 3)
    send_all(invoke, write_folder(tmp_path / "c", people(10)))
    settle(tmp_path / "massiva.db")

    result = ok(invoke("report", "prova", "--format", "html", "-o", str(tmp_path / "r.html")))

    dom = Page((tmp_path / "r.html").read_text(encoding="utf-8"))
    assert "5 of 10 recipients written" in result.stdout
    (notice,) = dom.notices
    assert notice.startswith("This page lists 5 of the 10 recipients")
    assert "massiva report prova --format xlsx" in notice
    assert "Recipients needing attention" in dom.headings
    assert "The first 3 recipients" in dom.headings
    listed = [re.search(r"utente\d+", row)[0] for row in dom.rows if "@" in row]  # type: ignore[index]
    # Failed, expired (of the four needing attention), then the first three of the file.
    assert listed == ["utente001", "utente003", "utente000", "utente001", "utente002"]
    assert dom.cards["recipients"].startswith("Recipients 10 ")  # the cards count them all


def test_before_any_receipt_the_chart_says_so(invoke: Invoke, tmp_path: Path) -> None:
    ok(invoke("campaign", "load", str(write_folder(tmp_path / "c", people(3)))))

    ok(invoke("report", "prova", "--format", "html", "-o", str(tmp_path / "r.html")))

    dom = Page((tmp_path / "r.html").read_text(encoding="utf-8"))
    assert "No acceptance or delivery receipt yet." in dom.svg_texts
    assert "No recipient failed, was rejected or expired." in dom.svg_texts
    assert dom.cards["not yet sent"].startswith("Not yet sent 3 ")
