"""The report as one HTML page: self-contained (styles and charts inline, no script, no
external file), printable, rendered from ``templates/report.html`` with Jinja
(autoescaped: a recipient's data can never become markup).

A page cannot hold a million rows and stay usable, so its table is bounded:

- up to :data:`ALL_ROWS` recipients, it lists every one, in file order;
- beyond that it lists the recipients that need attention (failed, rejected, expired,
  unknown), up to :data:`ATTENTION_ROWS` of them, then the first :data:`FIRST_ROWS`
  recipients of the file, and says so, naming the export that holds every recipient
  (``massiva report NAME --format xlsx``, or csv or json).

The summary cards, the chart and the failure reasons always count every recipient.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound

from massiva.lifecycle import NEEDS_ATTENTION, State, ordered
from massiva.report.charts import reasons_chart, timeline_chart
from massiva.report.errors import ReportError
from massiva.report.rows import COLUMNS_AFTER_KEYS, Report, ReportRow, rome_iso
from massiva.resources import TEMPLATES

TEMPLATE = "report.html"
ALL_ROWS = 10_000
ATTENTION_ROWS = 5_000
FIRST_ROWS = 1_000
ATTENTION_STATES: tuple[str, ...] = ordered(NEEDS_ATTENTION)
_LABELS = {
    "state": "State",
    "message_id": "Message id",
    "sent_at": "Sent",
    "accepted_at": "Accepted",
    "delivered_at": "Delivered",
    "failed_at": "Failed",
    "reason": "Reason",
    "receipt_ids": "Receipt ids",
}


@dataclass(frozen=True)
class Card:
    """A summary figure: ``tone`` colours it (good, wait, bad, none)."""

    label: str
    value: int
    note: str
    tone: str


@dataclass(frozen=True)
class Section:
    """A table of recipients, with what it lists."""

    title: str
    note: str
    rows: list[ReportRow]


def _percent(part: int, whole: int) -> str:
    return f"{part / whole:.1%} of the recipients" if whole else ""


def cards(report: Report) -> list[Card]:
    """The summary cards: every recipient counted, by what happened to it."""
    counts, total = report.counts, report.total
    return [
        Card("Recipients", total, "in the campaign", "none"),
        Card(
            "Delivered", counts[State.DELIVERED], _percent(counts[State.DELIVERED], total), "good"
        ),
        Card("Accepted", counts[State.ACCEPTED], "awaiting the delivery receipt", "wait"),
        Card("Sent", counts[State.SENT], "awaiting the receipts", "wait"),
        Card("Failed", counts[State.FAILED], "not accepted or not delivered", "bad"),
        Card("Expired", counts[State.EXPIRED], "no final receipt within 24 hours", "bad"),
        Card("Rejected", counts[State.REJECTED], "refused by the provider: not sent", "bad"),
        Card("Unknown", counts[State.UNKNOWN], "may or may not have left", "wait"),
        Card("Not yet sent", counts[State.PENDING] + counts[State.SENDING], "pending", "none"),
    ]


async def _collect(report: Report, states: Sequence[str], limit: int) -> list[ReportRow]:
    rows: list[ReportRow] = []
    async for batch in report.rows(states=states, limit=limit):
        rows += batch
    return rows


async def sections(report: Report) -> tuple[list[Section], int]:
    """The page's tables (bounded: see the module's docstring) and how many rows they
    hold in all."""
    if report.total <= ALL_ROWS:
        everyone = await _collect(report, (), ALL_ROWS)
        note = "Every recipient, in the order of the file."
        return [Section("Recipients", note, everyone)], len(everyone)
    attention = await _collect(report, ATTENTION_STATES, ATTENTION_ROWS)
    needing = sum(report.counts[s] for s in ATTENTION_STATES)
    first = await _collect(report, (), FIRST_ROWS)
    listed = (
        f"all {needing:,} of them"
        if needing <= ATTENTION_ROWS
        else f"the first {ATTENTION_ROWS:,} of {needing:,}"
    )
    return [
        Section(
            "Recipients needing attention",
            f"Failed, rejected, expired or unknown, in the order of the file: {listed}.",
            attention,
        ),
        Section(
            f"The first {FIRST_ROWS:,} recipients",
            "In the order of the file, whatever their state.",
            first,
        ),
    ], len(attention) + len(first)


def environment(templates: Path | None) -> Environment:
    """The Jinja environment of the report: ``templates`` (the configured shared templates
    folder, where a report.html of one's own wins) then the ones massiva ships."""
    folders = list(dict.fromkeys(str(folder) for folder in (templates, TEMPLATES) if folder))
    return Environment(
        loader=FileSystemLoader(folders),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


async def write_html(report: Report, out: BinaryIO, *, templates: Path | None = None) -> int:
    """Write ``report`` to ``out`` as one HTML page (see the module's docstring); returns
    the number of recipients its tables list."""
    env = environment(templates)
    try:
        template = env.get_template(TEMPLATE)
    except TemplateNotFound:
        assert isinstance(env.loader, FileSystemLoader)
        where = " nor in ".join(str(folder) for folder in env.loader.searchpath)
        raise ReportError(
            f"the HTML report's template {TEMPLATE} is not in {where}; massiva ships one,"
            " so this installation is incomplete: install massiva again"
        ) from None
    summary = await report.summary()  # first: read as near the counts as can be
    tables, listed = await sections(report)
    page = template.generate(
        campaign=report.campaign,
        generated_at=rome_iso(report.generated_at),
        loaded_at=rome_iso(report.campaign.created_at),
        summary=summary,
        cards=cards(report),
        timeline_svg=timeline_chart(summary.timeline),
        reasons_svg=reasons_chart(summary),
        key_columns=report.key_columns,
        labels=[_LABELS[column] for column in COLUMNS_AFTER_KEYS],
        sections=tables,
        listed=listed,
        complete=listed == summary.total,
    )
    for chunk in page:
        out.write(chunk.encode("utf-8"))
    return listed
