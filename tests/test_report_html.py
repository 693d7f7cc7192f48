"""The HTML report, opened in headless Chromium: what a user looks at, and what a
printer prints, is there.

Chromium is Debian's ``chromium`` package (.ci/run installs it); without it these tests
fail, saying how to install it.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest
from pypdf import PdfReader
from starlette.applications import Starlette

from massiva.report import as_html, open_report, output_file
from massiva.report.as_html import write_html
from massiva.report.errors import ReportError
from massiva.report.words import LANGUAGES, STATE_NAMES, WORDS
from massiva.simulator import SimClock, SimulatorSettings, create_app
from massiva.store import Store
from tests.cli import Invoke, cli, on
from tests.conftest import START
from tests.db import connect
from tests.test_report import SECOND, claimed_by, pool_cli, send_pooled
from tests.test_report_support import (
    FAILED_REASON,
    FORMULA,
    archive_of,
    browse,
    finished_campaign,
    ok,
    people,
    send_all,
    settle,
    write_folder,
)
from tests.test_sender import MAILBOX

#: A time as the report shows it: Europe/Rome, ISO 8601 with the offset.
TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d"


@dataclass
class Element:
    """An element of the page: its tag, attributes, text, and the section it is in."""

    tag: str
    attrs: dict[str, str]
    text: str
    section: str
    children: list[Element] = field(default_factory=list)

    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())


class Page(HTMLParser):
    """A page's elements, with their text (whitespace collapsed), in document order."""

    EMPTY = ("wbr", "rect", "line", "polyline", "meta", "br")

    def __init__(self, markup: str) -> None:
        super().__init__()
        self.elements: list[Element] = []
        self._open: list[Element] = []
        self._text: list[list[str]] = []
        self.feed(markup)

    def _section(self) -> str:
        ids = [e.attrs.get("id", "") for e in self._open if e.tag == "section"]
        return ids[-1] if ids else ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs}, "", self._section())
        if self._open:
            self._open[-1].children.append(element)
        if tag in self.EMPTY:
            self.elements.append(element)
            return
        self._open.append(element)
        self._text.append([])

    def handle_endtag(self, tag: str) -> None:
        if not self._open or self._open[-1].tag != tag:
            return
        element = self._open.pop()
        element.text = " ".join("".join(self._text.pop()).split())
        if self._text:
            self._text[-1].append(" " + element.text + " ")
        self.elements.append(element)

    def handle_data(self, data: str) -> None:
        if self._text:
            self._text[-1].append(data)

    def all(self, tag: str, cls: str = "") -> list[Element]:
        found = [e for e in self.elements if e.tag == tag and (not cls or cls in e.classes())]
        return sorted(found, key=self.elements.index)

    def one(self, tag: str, cls: str = "", **attrs: str) -> Element:
        (found,) = [
            e
            for e in self.all(tag, cls)
            if all(e.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]
        return found

    @property
    def cards(self) -> dict[str, Element]:
        return {e.attrs["data-card"]: e for e in self.all("div", "card")}

    @property
    def svg_texts(self) -> list[str]:
        return [e.text for e in self.all("text")]

    def rows(self, section: str) -> list[str]:
        """The text of each recipient's row in a section's table."""
        return [e.text for e in self.all("tr") if e.section == section and "td" in _tags(e)]

    def header(self, section: str) -> list[str]:
        (row,) = [e for e in self.all("tr") if e.section == section and "th" in _tags(e)]
        return [c.text for c in row.children if c.tag == "th"]


def _tags(element: Element) -> set[str]:
    return {child.tag for child in element.children}


@pytest.fixture
def app() -> Starlette:
    return create_app(SimulatorSettings(send_rate=None), clock=SimClock(start=START, speed=0))


@pytest.fixture
def invoke(app: Starlette, tmp_path: Path, database: Path | str) -> Invoke:
    return on(database, cli(app, tmp_path))


@pytest.fixture
def sent(invoke: Invoke, tmp_path: Path, database: Path | str) -> Path | str:
    """A campaign of 10, sent and settled (see settle): five still without an outcome;
    returns the database (file or URL)."""
    send_all(invoke, write_folder(tmp_path / "c", people(10)))
    settle(database)
    return database


def report_page(invoke: Invoke, tmp_path: Path, *args: str, name: str = "prova") -> Path:
    """The HTML report of campaign ``name`` with ``args``, written to a file."""
    page = tmp_path / "report.html"
    ok(invoke("report", name, "--format", "html", "-o", str(page), *args))
    return page


def test_in_italian_chromium_shows_the_counts_a_failed_reason_and_the_chart(
    invoke: Invoke, sent: Path | str, tmp_path: Path
) -> None:
    page = report_page(invoke, tmp_path)

    raw = page.read_text(encoding="utf-8")
    dom = Page(browse(page, tmp_path, "--dump-dom").stdout)
    # One self-contained file: nothing to fetch, nothing to run.
    assert not re.search(r"<script|<link|<img|<iframe|\bsrc=|\bhref=|url\(|@import", raw)
    assert not dom.all("script") and not dom.all("a")
    assert dom.one("html").attrs["lang"] == "it"
    assert dom.one("h1").text == "Rapporto di consegna: prova"
    assert "Casella mittente: demo@pecmassiva.com" in dom.one("p", "meta").text
    assert "Finestra di invio: in qualsiasi momento" in dom.one("p", "meta").text
    assert not dom.rows("by-mailbox")  # one mailbox: its counts are the campaign's
    # Not finished: it says how many still wait, and shows those on their way.
    assert dom.one("p", "banner").text == (
        "Campagna in corso: 5 su 10 destinatari ancora senza esito."
    )
    cards = {key: card.text for key, card in dom.cards.items()}
    assert cards == {
        "total": "Destinatari 10 nella campagna",
        "delivered": "Consegnati 2 20,0% dei destinatari",
        "accepted": "Accettati 1 in attesa della ricevuta di consegna",
        "sent": "Inviati 3 in attesa delle ricevute",
        "failed": "Mancata consegna 1 non accettati o non consegnati",
        "expired": "Scaduti 1 nessuna ricevuta finale entro 24 ore",
        "rejected": "Rifiutati 1 rifiutati dal fornitore: non inviati",
        "unknown": "Esito incerto 1 forse partiti, forse no",
        "not_sent": "Da inviare 0 non ancora inviati",
    }
    # The chart: two lines that rise, named as their cards.
    assert "Consegnati (2)" in dom.svg_texts and "Mancata consegna (1)" in dom.svg_texts
    for series in ("series-delivered", "series-failed"):
        heights = {
            point.split(",")[1] for point in dom.one("polyline", series).attrs["points"].split()
        }
        assert len(heights) >= 2, series
    # The failure reasons, as bars, and the failed recipient's row with its reason and code.
    assert f"mancata consegna: {FAILED_REASON}" in dom.svg_texts
    assert dom.header("everyone") == [
        "Riga",
        "Indirizzo",
        "codice",
        "nome",
        "Casella",
        "Oggetto",
        "Stato",
        "ID messaggio",
        "Invio",
        "Accettazione",
        "Consegna",
        "Errore",
        "Codice",
        "Motivo",
        "ID ricevute",
    ]
    (failed,) = [row for row in dom.rows("everyone") if "utente001@legalmail.it" in row]
    assert " demo@pecmassiva.com Avviso C0001 mancata consegna " in f" {failed} "
    assert f"2026-03-10T10:15:00+01:00 5.2.2 {FAILED_REASON} 103" in failed
    # The formula is text; every recipient is in the table, those needing attention first.
    (formula,) = [row for row in dom.rows("everyone") if "utente002@legalmail.it" in row]
    assert FORMULA in formula
    assert len(dom.rows("everyone")) == 10
    attention = [re.search(r"utente\d+", row)[0] for row in dom.rows("attention")]  # type: ignore[index]
    assert attention == ["utente001", "utente003", "utente005", "utente006"]
    # No English left on the page (the data aside).
    text = dom.one("body").text.replace(FAILED_REASON, "")
    for english in ("Delivered", "Recipients", "Summary", "Reason", "awaiting", "Failed"):
        assert english not in text


def test_with_lang_en_every_word_is_english(
    invoke: Invoke, sent: Path | str, tmp_path: Path
) -> None:
    page = report_page(invoke, tmp_path, "--lang", "en")

    dom = Page(page.read_text(encoding="utf-8"))

    assert dom.one("html").attrs["lang"] == "en"
    assert dom.one("h1").text == "Delivery report: prova"
    assert dom.one("p", "banner").text == (
        "Campaign in progress: 5 of 10 recipients still without an outcome."
    )
    assert dom.cards["delivered"].text == "Delivered 2 20.0% of the recipients"
    assert dom.cards["failed"].text == "Failed 1 not accepted or not delivered"
    assert "Delivered (2)" in dom.svg_texts and "Failed (1)" in dom.svg_texts
    assert f"failed: {FAILED_REASON}" in dom.svg_texts
    assert dom.header("attention")[4:] == [
        "Mailbox",
        "Subject",
        "State",
        "Message id",
        "Sent",
        "Accepted",
        "Delivered",
        "Failed",
        "Code",
        "Reason",
        "Receipt ids",
    ]
    (failed,) = [row for row in dom.rows("everyone") if "utente001@legalmail.it" in row]
    assert " failed " in failed
    assert "Consegnati" not in dom.one("body").text


def test_both_languages_have_every_word() -> None:
    assert set(WORDS) == set(STATE_NAMES) == set(LANGUAGES)
    assert WORDS["it"].keys() == WORDS["en"].keys()
    assert STATE_NAMES["it"].keys() == STATE_NAMES["en"].keys()


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_chart_legend_agrees_with_the_cards(
    invoke: Invoke, sent: Path | str, tmp_path: Path, lang: str
) -> None:
    dom = Page(report_page(invoke, tmp_path, "--lang", lang).read_text(encoding="utf-8"))

    legends = dom.all("g", "legend")
    assert [legend.attrs["data-card"] for legend in legends] == ["delivered", "failed"]
    for legend in legends:
        card = dom.cards[legend.attrs["data-card"]]
        label = card.children[0].text
        value = card.children[1].text
        (rect,) = [child for child in legend.children if child.tag == "rect"]
        assert legend.text == f"{label} ({value})"  # the same category, the same count
        assert rect.attrs["fill"] == card.attrs["data-colour"]  # the same colour
        assert f"border-left-color: {rect.attrs['fill']}" in card.attrs["style"]
        line = dom.one("polyline", f"series-{legend.attrs['data-card']}")
        assert line.attrs["stroke"] == rect.attrs["fill"]
    # The failure reasons' bars are in their cards' colours too.
    failed_bar = next(g for g in dom.all("g", "reason") if FAILED_REASON in g.text)
    (rect,) = [child for child in failed_bar.children if child.tag == "rect"]
    assert rect.attrs["fill"] == dom.cards["failed"].attrs["data-colour"]
    # Each card its own colour: one colour, one category.
    colours = [card.attrs["data-colour"] for card in dom.cards.values()]
    assert len(set(colours)) == len(colours)


def test_a_finished_campaign_is_shown_as_finished(
    invoke: Invoke, tmp_path: Path, database: Path | str
) -> None:
    finished_campaign(database, 300, archive_dir=archive_of(tmp_path))

    dom = Page(report_page(invoke, tmp_path, "--key", "codice", name="grande").read_text("utf-8"))

    assert dom.one("p", "banner").text == "Campagna conclusa: ogni destinatario ha il suo esito."
    assert "Stato: conclusa" in dom.one("p", "meta").text
    assert "finished" in dom.one("body").classes()
    # Only outcomes: nothing looks on its way.
    assert list(dom.cards) == ["total", "delivered", "failed", "expired", "rejected"]
    assert dom.cards["delivered"].text == "Consegnati 279 93,0% dei destinatari"
    assert [legend.text for legend in dom.all("g", "legend")] == [
        "Consegnati (279)",
        "Mancata consegna (12)",
    ]


def test_a_paused_campaign_says_so_and_how_many_wait(
    invoke: Invoke, sent: Path | str, tmp_path: Path
) -> None:
    ok(invoke("campaign", "pause", "prova"))

    dom = Page(report_page(invoke, tmp_path).read_text(encoding="utf-8"))

    assert dom.one("p", "banner").text == (
        "Campagna in pausa: 5 su 10 destinatari ancora senza esito."
    )
    assert "open" in dom.one("body").classes()


#: Measures, once the page is laid out, on how many lines each table cell's text lies;
#: added to a copy of the page (the report itself runs no script).
MEASURE = """
<script>
const lines = {};
for (const cell of document.querySelectorAll("td")) {
  if (!cell.textContent.trim()) continue;
  const range = document.createRange();
  range.selectNodeContents(cell);
  const tops = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
  const kind = cell.className.split(" ")[0] || "other";
  (lines[kind] = lines[kind] || []).push(tops.size);
}
document.body.setAttribute("data-lines", JSON.stringify(lines));
</script>
"""


@pytest.mark.parametrize("width", [700, 1280])
def test_a_time_never_wraps_inside_its_value_on_screen(
    invoke: Invoke, sent: Path | str, tmp_path: Path, width: int
) -> None:
    page = report_page(invoke, tmp_path)
    measured = tmp_path / "measured.html"
    measured.write_text(
        page.read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>"),
        encoding="utf-8",
    )

    dom = Page(browse(measured, tmp_path, f"--window-size={width},900", "--dump-dom").stdout)

    lines = json.loads(dom.one("body").attrs["data-lines"])
    assert len(lines["time"]) == 17 + 6  # every time of both tables
    assert set(lines["time"]) == {1}, lines["time"]
    if width == 700:  # a width that does wrap what may wrap: the measure sees it
        assert max(lines["reason"]) > 1, lines["reason"]


def test_printed_a_campaign_of_2000_is_its_summary_on_a_few_pages(
    invoke: Invoke, tmp_path: Path, database: Path | str
) -> None:
    finished_campaign(database, 2000, archive_dir=archive_of(tmp_path))
    page = report_page(invoke, tmp_path, "--key", "codice", name="grande")
    pdf = tmp_path / "report.pdf"

    browse(page, tmp_path, f"--print-to-pdf={pdf}", "--no-pdf-header-footer")

    reader = PdfReader(pdf)
    pages = [sheet.extract_text() for sheet in reader.pages]
    text = "\n".join(pages)
    first = reader.pages[0]
    assert float(first.mediabox.width) > float(first.mediabox.height)  # A4 landscape
    # Measured: 5 pages (the summary on the first, then the 140 needing attention).
    assert len(pages) <= 5, len(pages)
    for words in ("Rapporto di consegna: grande", "Consegnati", "Consegnati (1.860)"):
        assert words in pages[0]
    assert "Perché alcuni destinatari non sono stati raggiunti" in pages[0]
    assert "l'elenco di tutti i destinatari" in pages[0]  # where the full list is
    assert "massiva report grande --format html --full-table" in pages[0]
    # Every recipient needing attention is printed, one line each; nobody else.
    attention = {f"cliente.{n:05d}@legalmail.it" for n in range(2000) if n % 100 >= 93}
    printed = set(re.findall(r"cliente\.\d{5}@legalmail\.it", text))
    assert printed == attention
    assert len(re.findall(r"^\d+ cliente\.\d{5}@legalmail\.it ", text, re.MULTILINE)) == 140
    # The screen still has the table of every recipient.
    assert page.read_text(encoding="utf-8").count("cliente.00000") == 1
    # No time is cut over two lines.
    assert len(re.findall(TIMESTAMP, text)) == len(re.findall(r"\d{4}-\d\d-\d\dT", text)) > 240


def test_with_full_table_the_print_has_every_recipient(
    invoke: Invoke, tmp_path: Path, database: Path | str
) -> None:
    finished_campaign(database, 300, archive_dir=archive_of(tmp_path))
    page = report_page(invoke, tmp_path, "--key", "codice", "--full-table", name="grande")
    pdf = tmp_path / "report.pdf"

    browse(page, tmp_path, f"--print-to-pdf={pdf}", "--no-pdf-header-footer")

    text = "\n".join(sheet.extract_text() for sheet in PdfReader(pdf).pages)
    printed = {re.sub(r"\s", "", a) for a in re.findall(r"cliente\.\d{5}\s?@legalmail\.it", text)}
    assert len(printed) == 300
    assert "--full-table" not in text  # nothing left out, nothing to say
    assert "Tutti i destinatari" in text
    # Every time whole, even in the widest table.
    starts = len(re.findall(r"\d{4}-\d\d-\d\dT", text))
    assert len(re.findall(TIMESTAMP, text)) == starts >= 300 + 297 + 279 + 15


def test_data_is_escaped_never_markup(invoke: Invoke, sent: Path | str, tmp_path: Path) -> None:
    with connect(sent) as conn:
        conn.execute(
            "UPDATE recipient SET reason = '<script>alert(1)</script><b>x</b>',"
            " subject = '<i>oggetto</i>' WHERE state = 'failed'"
        )
    page = report_page(invoke, tmp_path)

    dom = Page(browse(page, tmp_path, "--dump-dom").stdout)

    assert not dom.all("script") and not dom.all("b") and not dom.all("i")
    assert any("<script>alert(1)</script><b>x</b>" in row for row in dom.rows("everyone"))
    assert any("<i>oggetto</i>" in row for row in dom.rows("everyone"))


def test_a_big_campaign_lists_the_first_recipients_and_says_where_the_rest_are(
    invoke: Invoke, sent: Path | str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(as_html, "ALL_ROWS", 5)
    monkeypatch.setattr(as_html, "ATTENTION_ROWS", 2)
    monkeypatch.setattr(as_html, "FIRST_ROWS", 3)
    page = tmp_path / "r.html"

    result = ok(invoke("report", "prova", "--format", "html", "-o", str(page)))

    dom = Page(page.read_text(encoding="utf-8"))
    assert "4 of 10 recipients written" in result.stdout  # two needing attention, 3 first
    (notice,) = [p.text for p in dom.all("p", "notice") if p.attrs.get("id") == "partial-list"]
    assert notice.startswith("La tabella elenca i primi 3 dei 10 destinatari")
    assert "massiva report prova --format xlsx" in notice
    assert [h.text for h in dom.all("h2") if h.section in ("attention", "first")] == [
        "Destinatari da verificare",
        "I primi 3 destinatari",
    ]
    assert dom.one("section", id="attention").children[1].text == (
        "Mancata consegna, rifiutati, scaduti o con esito incerto, nell'ordine del file:"
        " i primi 2 di 4."
    )
    listed = [
        re.search(r"utente\d+", row)[0]  # type: ignore[index]
        for row in dom.rows("attention") + dom.rows("first")
    ]
    # Failed, expired (of the four needing attention), then the first three of the file.
    assert listed == ["utente001", "utente003", "utente000", "utente001", "utente002"]
    assert dom.cards["total"].text.startswith("Destinatari 10 ")  # the cards count them all


def test_before_any_receipt_the_charts_say_so(invoke: Invoke, tmp_path: Path) -> None:
    ok(invoke("campaign", "load", str(write_folder(tmp_path / "c", people(3)))))

    dom = Page(report_page(invoke, tmp_path).read_text(encoding="utf-8"))

    assert "Nessuna ricevuta di consegna o di mancata consegna, per ora." in dom.svg_texts
    assert "Nessun destinatario con mancata consegna, rifiutato o scaduto." in dom.svg_texts
    assert dom.cards["not_sent"].text == "Da inviare 3 non ancora inviati"
    assert dom.one("p", "banner").text == (
        "Campagna in corso: 3 su 3 destinatari ancora senza esito."
    )
    assert dom.one("section", id="attention").children[1].text == (
        "Nessun destinatario da verificare."
    )


def test_a_report_template_written_for_another_version_is_named(
    tmp_path: Path, database: Path | str
) -> None:
    finished_campaign(database, 3, archive_dir=archive_of(tmp_path))
    mine = tmp_path / "templates"
    mine.mkdir()
    (mine / "report.html").write_text("<h1>{{ labels }}</h1>", encoding="utf-8")

    async def write() -> None:
        async with await Store.open(database, archive_dir=archive_of(tmp_path)) as store:
            report, _ = await open_report(store, "grande", key_columns=())
            with output_file(tmp_path / "r.html") as out:
                await write_html(report, out, templates=mine)

    with pytest.raises(ReportError) as raised:
        asyncio.run(write())

    assert str(raised.value) == (
        f"the HTML report's template {mine / 'report.html'} asks for something massiva"
        " does not give ('labels' is undefined): it was written for another version of"
        " massiva; delete it to use the one massiva ships, or start again from that one"
    )
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("lang", LANGUAGES)
def test_a_pool_past_its_deadline_names_each_box_and_the_unsent(
    app: Starlette, tmp_path: Path, database: Path | str, lang: str
) -> None:
    invoke = pool_cli(app, tmp_path, database)
    db = send_pooled(invoke, tmp_path, database)
    boxes = claimed_by(db)

    page = report_page(invoke, tmp_path, "--lang", lang)

    dom = Page(browse(page, tmp_path, "--dump-dom").stdout)
    meta = dom.one("p", "meta").text
    it = lang == "it"
    pool = f"{MAILBOX}, {SECOND}"
    assert (f"Caselle mittenti: {pool}" if it else f"Sending mailboxes: {pool}") in meta
    assert (
        "Finestra di invio: entro il 10/03/2026 18:00 +01:00"
        if it
        else "Sending window: until 10/03/2026 18:00 +01:00"
    ) in meta
    assert dom.one("p", "banner").text == (
        "Campagna in corso: 5 su 12 destinatari ancora senza esito. Scadenza superata: 2"
        " destinatari non inviati entro la scadenza (non saranno inviati)."
        if it
        else "Campaign in progress: 5 of 12 recipients still without an outcome. Deadline"
        " passed: 2 recipients not sent by the deadline (they will not be sent)."
    )
    assert dom.cards["deadline"].text == (
        "Non inviati entro la scadenza 2 scadenza superata: non saranno inviati"
        if it
        else "Not sent by the deadline 2 the deadline passed: never sent"
    )
    assert dom.cards["not_sent"].text == (
        "Da inviare 0 non ancora inviati" if it else "Not yet sent 0 pending"
    )

    # What each box sent: settle delivered rows 2 and 4, failed 3, expired 5, rejected 7.
    def sent_by(box: str, rows: set[int]) -> int:
        return sum(1 for row, b in boxes.items() if b == box and row in rows)

    assert dom.rows("by-mailbox") == [
        f"{box} {total} {sent_by(box, {2, 4})} {sent_by(box, {3, 5, 7})}"
        for box, total in ((MAILBOX, 6), (SECOND, 4))
    ]
    # Each row names its box; the unsent read as not sent by the deadline, needing attention.
    label = "non inviato entro la scadenza" if it else "not sent by the deadline"
    rows = dom.rows("everyone")
    for row in rows:
        number = int(row.split()[0])
        assert f" {boxes[number]} " in f" {row} " if boxes[number] else label in row
    unsent = [row for row in rows if label in row]
    assert [row.split()[:2] for row in unsent] == [
        ["12", "utente010@legalmail.it"],
        ["13", "utente011@legalmail.it"],
    ]
    assert all("pending" not in row and "da inviare" not in row for row in unsent)
    attention = [row.split()[0] for row in dom.rows("attention")]
    assert attention == ["3", "5", "7", "8", "12", "13"]
