"""The report as one HTML page: self-contained (styles and charts inline, no script, no
external file), printable, rendered from ``templates/report.html`` with Jinja
(autoescaped: a recipient's data can never become markup), in Italian by default
(``lang="en"``: English; every word is in :mod:`massiva.report.words`).

The page, in order: the campaign (its pool of mailboxes and its schedule), and whether it
is finished (no recipient still waiting for its outcome) or how many still wait; a card
per category of recipient (a finished campaign shows only the outcomes); deliveries and
failures over time, whose legend names its lines as their cards do, with their counts
and colours; the failure reasons; what each mailbox sent (a pool of more than one); the
recipients needing attention (failed, rejected, expired, unknown), up to
:data:`ATTENTION_ROWS`; then the table of recipients: every one up to :data:`ALL_ROWS`,
beyond that the first :data:`FIRST_ROWS`, and the page says which export holds them all.

Once a campaign's deadline has passed, its pending recipients are "not sent by the
deadline" (a label: their state stays pending): an outcome, with its card, its label in
the tables, and a place among the recipients needing attention.

Printed, the page is its summary: everything but that last table, which is printed only
when asked for (``full_table``: ``massiva report NAME --format html --full-table``); the
printed page says where the full list is. The cards, the chart and the reasons always
count every recipient.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound, UndefinedError

from massiva.lifecycle import NEEDS_ATTENTION, OPEN, State, ordered
from massiva.report.charts import COLOURS, Series, reasons_chart, timeline_chart
from massiva.report.errors import ReportError
from massiva.report.rows import Report, ReportRow, rome_iso
from massiva.report.words import LANGUAGES, STATE_NAMES, WORDS, number, percent
from massiva.resources import TEMPLATES

TEMPLATE = "report.html"
ALL_ROWS = 10_000
ATTENTION_ROWS = 5_000
FIRST_ROWS = 1_000
ATTENTION_STATES: tuple[str, ...] = ordered(NEEDS_ATTENTION)
#: The cards' categories, in order, and the states each counts.
CATEGORIES: dict[str, tuple[State, ...]] = {
    "delivered": (State.DELIVERED,),
    "accepted": (State.ACCEPTED,),
    "sent": (State.SENT,),
    "failed": (State.FAILED,),
    "expired": (State.EXPIRED,),
    "rejected": (State.REJECTED,),
    "unknown": (State.UNKNOWN,),
    "not_sent": (State.PENDING, State.SENDING),
}


@dataclass(frozen=True)
class Card:
    """A summary figure: a category of recipient (``key``, or ``total``), its name, how
    many (``value``, and as the page writes it), what it means, its colour."""

    key: str
    label: str
    value: int
    shown: str
    note: str
    colour: str


@dataclass(frozen=True)
class Section:
    """A table of recipients, with what it lists; ``printed`` False: on screen only."""

    key: str
    title: str
    note: str
    rows: list[ReportRow]
    printed: bool


def waiting(report: Report) -> frozenset[State]:
    """The states whose recipients still wait for their outcome: pending, being sent,
    sent or accepted without a final receipt, or of unknown outcome; past the deadline a
    pending recipient has its outcome (not sent by the deadline)."""
    return OPEN - {State.PENDING} if report.late else OPEN


def finished(report: Report) -> bool:
    """True when no recipient waits for its outcome (see :func:`waiting`)."""
    return not any(report.counts[state] for state in waiting(report))


def categories(report: Report) -> dict[str, tuple[State, ...]]:
    """The cards' categories: :data:`CATEGORIES`, and past the deadline the pending
    recipients apart, as not sent by the deadline."""
    if not report.late:
        return CATEGORIES
    return {**CATEGORIES, "not_sent": (State.SENDING,), "deadline": (State.PENDING,)}


def attention_states(report: Report) -> tuple[str, ...]:
    """The states of the recipients needing attention (past the deadline, the pending
    ones too: someone must send them another way)."""
    return (*ATTENTION_STATES, State.PENDING) if report.late else ATTENTION_STATES


def cards(report: Report, lang: str) -> list[Card]:
    """The summary cards: every recipient counted, by what happened to it. A finished
    campaign has only outcomes: the categories of recipients still on their way are
    left out (they are all zero)."""
    words, counts, total = WORDS[lang], report.counts, report.total
    done, still = finished(report), waiting(report)
    found = [
        Card(
            "total",
            words["card_total"],
            total,
            number(total, lang),
            words["card_total_note"],
            COLOURS["total"],
        )
    ]
    for key, states in categories(report).items():
        if done and any(state in still for state in states):
            continue
        value = sum(counts[state] for state in states)
        note = words[f"card_{key}_note"].format(percent=percent(value, total, lang))
        found.append(
            Card(key, words[f"card_{key}"], value, number(value, lang), note, COLOURS[key])
        )
    return found


async def _collect(report: Report, states: Sequence[str], limit: int) -> list[ReportRow]:
    rows: list[ReportRow] = []
    async for batch in report.rows(states=states, limit=limit, labelled=False):
        rows += batch
    return rows


async def sections(report: Report, lang: str, full_table: bool) -> tuple[list[Section], int]:
    """The page's tables (bounded: see the module's docstring) and how many recipients
    they list in all."""
    words = WORDS[lang]
    states = attention_states(report)
    attention = await _collect(report, states, ATTENTION_ROWS)
    needing = sum(report.counts[s] for s in states)
    listed = (
        words["attention_all"].format(count=number(needing, lang))
        if needing <= ATTENTION_ROWS
        else words["attention_first"].format(
            limit=number(ATTENTION_ROWS, lang), count=number(needing, lang)
        )
    )
    first = Section(
        "attention",
        words["attention"],
        words["attention_note_late" if report.late else "attention_note"].format(listed=listed)
        if needing
        else words["attention_none"],
        attention,
        printed=True,
    )
    if report.total <= ALL_ROWS:
        rows = await _collect(report, (), ALL_ROWS)
        table = Section("everyone", words["everyone"], words["everyone_note"], rows, full_table)
    else:
        rows = await _collect(report, (), FIRST_ROWS)
        title = words["first"].format(count=number(FIRST_ROWS, lang))
        table = Section("first", title, words["first_note"], rows, full_table)
    return [first, table], len({r.row for r in attention} | {r.row for r in rows})


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


async def write_html(
    report: Report,
    out: BinaryIO,
    *,
    templates: Path | None = None,
    lang: str = "it",
    full_table: bool = False,
) -> int:
    """Write ``report`` to ``out`` as one HTML page in ``lang`` (see the module's
    docstring; ``full_table``: print the table of recipients too); returns the number of
    recipients its tables list."""
    if lang not in LANGUAGES:
        raise ReportError(f"no report language {lang!r}; use one of {', '.join(LANGUAGES)}")
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
    words, names = WORDS[lang], STATE_NAMES[lang]
    summary = await report.summary()  # first: read as near the counts as can be
    tables, listed = await sections(report, lang, full_table)
    shown = cards(report, lang)
    by_key = {card.key: card for card in shown}
    done = finished(report)
    status = words["finished" if done else report.campaign.state]
    still = sum(report.counts[state] for state in waiting(report))
    banner = (
        words["banner_finished"]
        if done
        else words["banner_open"].format(
            status=status, open=number(still, lang), total=number(report.total, lang)
        )
    )
    if report.not_sent_by_deadline:
        late = words["banner_late"].format(count=number(report.not_sent_by_deadline, lang))
        banner = f"{banner} {late}"
    campaign = report.campaign
    try:
        for chunk in template.generate(
            lang=lang,
            t=words,
            title=words["title"].format(name=report.campaign.name),
            campaign=report.campaign,
            status=status,
            finished=done,
            banner=banner,
            mailboxes=report.mailboxes,
            schedule=campaign.schedule.describe(lang),
            by_mailbox=[
                (
                    box.mailbox,
                    number(box.total, lang),
                    number(box.counts[State.DELIVERED], lang),
                    number(box.not_through, lang),
                )
                for box in summary.mailboxes
            ],
            late=report.late,
            generated_at=rome_iso(report.generated_at),
            loaded_at=rome_iso(report.campaign.created_at),
            cards=shown,
            timeline_svg=timeline_chart(
                summary.timeline,
                *(
                    Series(key, by_key[key].label, by_key[key].shown, by_key[key].colour)
                    for key in ("delivered", "failed")
                ),
                title=words["timeline_chart"],
                empty=words["timeline_empty"],
                lang=lang,
            ),
            reasons_svg=reasons_chart(
                summary,
                names,
                no_reason=words["no_reason"],
                other_reasons=words["other_reasons"],
                title=words["reasons"],
                empty=words["reasons_empty"],
                lang=lang,
            ),
            not_through=words["reasons_count"].format(count=number(summary.not_through, lang)),
            key_columns=report.key_columns,
            states=names,
            pending=str(State.PENDING),
            sections=tables,
            complete=report.total <= ALL_ROWS,
            partial=words["partial"].format(
                listed=number(FIRST_ROWS, lang), total=number(report.total, lang)
            ),
            full_table=full_table,
            footer=words["footer"].format(at=rome_iso(report.generated_at)),
        ):
            out.write(chunk.encode("utf-8"))
    except UndefinedError as exc:
        raise ReportError(
            f"the HTML report's template {template.filename} asks for something massiva"
            f" does not give ({exc.message}): it was written for another version of"
            " massiva; delete it to use the one massiva ships, or start again from that one"
        ) from None
    return listed
