"""The HTML report's charts, as inline SVG: no script and no external file, so the page
stays one file that prints as it shows. Every text put in a chart is escaped."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import NamedTuple

from markupsafe import Markup, escape

from massiva.report.summary import Summary, Timeline
from massiva.report.words import number

#: One colour per category of recipient, shared by the summary cards, the chart's legend
#: and the failure reasons' bars, so that one colour always means one thing.
COLOURS = {
    "total": "#555555",
    "delivered": "#2e7d32",
    "accepted": "#1a4d8f",
    "sent": "#5b8fd1",
    "failed": "#c62828",
    "expired": "#6d4c41",
    "rejected": "#ef6c00",
    "unknown": "#b8860b",
    "not_sent": "#9e9e9e",
    "deadline": "#7b1fa2",
}
OTHER_COLOUR = "#757575"
GRID_COLOUR = "#dddddd"
TEXT_COLOUR = "#333333"
#: Room, in SVG units, between two dates on the time axis.
LABEL_SPACE = 110
#: Characters of a failure reason shown beside its bar (all of it is in the tooltip).
REASON_CHARS = 110


class Series(NamedTuple):
    """A line of the timeline and its legend: a category of the summary cards (``key``,
    as the card's ``data-card``), its name and count as the card shows them."""

    key: str
    label: str
    shown: str  # the count, as the card writes it
    colour: str


def _scale(peak: int) -> tuple[int, int]:
    """A round top for an axis reaching ``peak``, and the step of about four ticks."""
    if peak <= 0:
        return 1, 1
    raw = peak / 4
    magnitude = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    step = max(1, int(step))
    return math.ceil(peak / step) * step, step


def _label(moment: datetime, unit: str) -> str:
    return moment.strftime("%d/%m/%Y" if unit == "day" else "%d/%m %H:%M")


def timeline_chart(
    timeline: Timeline,
    delivered: Series,
    failed: Series,
    *,
    title: str,
    empty: str,
    lang: str,
    width: int = 760,
    height: int = 280,
) -> Markup:
    """Deliveries and failures so far, as two rising lines over Rome time, with a
    legend naming them as their cards do."""
    left, right, top, bottom = 64, 24, 40, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    buckets = timeline.buckets
    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}"'
        f' width="100%" role="img" aria-labelledby="timeline-title">',
        f'<title id="timeline-title">{escape(title)}</title>',
    ]
    if not buckets:
        parts.append(
            f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="{TEXT_COLOUR}">'
            f"{escape(empty)}</text></svg>"
        )
        return Markup("".join(parts))  # noqa: S704 - built from escaped parts only
    done = failures = 0
    cumulative: list[tuple[datetime, int, int]] = [(buckets[0].start, 0, 0)]
    for bucket in buckets:
        done += bucket.delivered
        failures += bucket.failed
        cumulative.append((bucket.end, done, failures))
    t0, t1 = buckets[0].start.timestamp(), buckets[-1].end.timestamp()
    peak, step = _scale(max(done, failures))

    def x(moment: datetime) -> float:
        return left + (moment.timestamp() - t0) / (t1 - t0) * plot_w

    def y(value: int) -> float:
        return top + plot_h - value / peak * plot_h

    for tick in range(0, peak + 1, step):
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y(tick):.1f}" y2="{y(tick):.1f}"'
            f' stroke="{GRID_COLOUR}"/><text x="{left - 8}" y="{y(tick) + 4:.1f}"'
            f' text-anchor="end" font-size="12" fill="{TEXT_COLOUR}">{number(tick, lang)}</text>'
        )
    # About five dates along the axis, each a bucket boundary, never crowding the last.
    moments = [buckets[0].start, *(b.end for b in buckets)]
    ticks: list[int] = []
    for i in range(5):
        target = t0 + (t1 - t0) * i / 4
        nearest = min(range(len(moments)), key=lambda k: abs(moments[k].timestamp() - target))
        if not ticks or x(moments[nearest]) - x(moments[ticks[-1]]) >= LABEL_SPACE:
            ticks.append(nearest)
    if ticks[-1] != len(moments) - 1:
        if len(ticks) > 1 and x(moments[-1]) - x(moments[ticks[-1]]) < LABEL_SPACE:
            ticks.pop()
        ticks.append(len(moments) - 1)
    for nth, index in enumerate(ticks):
        anchor = "start" if nth == 0 else "end" if index == len(moments) - 1 else "middle"
        parts.append(
            f'<line x1="{x(moments[index]):.1f}" x2="{x(moments[index]):.1f}"'
            f' y1="{top + plot_h}" y2="{top + plot_h + 5}" stroke="{TEXT_COLOUR}"/>'
            f'<text x="{x(moments[index]):.1f}" y="{top + plot_h + 20}" text-anchor="{anchor}"'
            f' font-size="12" fill="{TEXT_COLOUR}">'
            f"{escape(_label(moments[index], timeline.unit))}</text>"
        )
    at = left
    for index, series in enumerate((delivered, failed), 1):
        points = " ".join(
            f"{x(moment):.1f},{y(values[index - 1]):.1f}" for moment, *values in cumulative
        )
        legend = f"{series.label} ({series.shown})"
        parts.append(
            f'<polyline class="series-{series.key}" fill="none" stroke="{series.colour}"'
            f' stroke-width="2.5" points="{points}"><title>{escape(legend)}</title></polyline>'
            f'<g class="legend" data-card="{series.key}">'
            f'<rect x="{at}" y="10" width="14" height="14" fill="{series.colour}"/>'
            f'<text x="{at + 20}" y="22" font-size="13" fill="{TEXT_COLOUR}">'
            f"{escape(legend)}</text></g>"
        )
        at += 20 + 8 * len(legend) + 24  # about 8 units a character at this size
    parts.append(
        f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}" stroke="{TEXT_COLOUR}"/>'
        f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}"'
        f' stroke="{TEXT_COLOUR}"/></svg>'
    )
    return Markup("".join(parts))  # noqa: S704 - built from escaped parts only


def reasons_chart(
    summary: Summary,
    state_names: Mapping[str, str],
    *,
    no_reason: str,
    other_reasons: str,
    title: str,
    empty: str,
    lang: str,
    width: int = 760,
) -> Markup:
    """The failure reasons, most frequent first, as horizontal bars with their counts,
    each in its state's colour (:data:`COLOURS`), labelled with ``state_names``."""
    items = [
        (f"{state_names[r.state]}: {r.reason or no_reason}", r.count, COLOURS[r.state])
        for r in summary.reasons
    ]
    if summary.other_reasons:
        items.append((other_reasons, summary.other_reasons, OTHER_COLOUR))
    item_h, bar_h, count_w = 40, 14, 90
    height = max(1, len(items)) * item_h + 8
    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}"'
        f' width="100%" role="img" aria-labelledby="reasons-title">',
        f'<title id="reasons-title">{escape(title)}</title>',
    ]
    if not items:
        parts.append(f'<text x="0" y="24" fill="{TEXT_COLOUR}">{escape(empty)}</text></svg>')
        return Markup("".join(parts))  # noqa: S704 - built from escaped parts only
    peak = max(count for _, count, _ in items)
    for index, (label, count, colour) in enumerate(items):
        top = index * item_h + 4
        shown = label if len(label) <= REASON_CHARS else label[: REASON_CHARS - 1] + "…"
        bar = max(2.0, count / peak * (width - count_w))
        parts.append(
            f'<g class="reason"><title>{escape(label)}: {number(count, lang)}</title>'
            f'<text x="0" y="{top + 12}" font-size="12" fill="{TEXT_COLOUR}">{escape(shown)}</text>'
            f'<rect x="0" y="{top + 18}" width="{bar:.1f}" height="{bar_h}" fill="{colour}"/>'
            f'<text x="{bar + 6:.1f}" y="{top + 30}" font-size="12" font-weight="bold"'
            f' fill="{TEXT_COLOUR}">{number(count, lang)}</text></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - built from escaped parts only
