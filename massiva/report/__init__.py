"""Delivery reports: for every recipient of a campaign, what happened and when.

One row model (:class:`ReportRow`) and four formats: CSV (:mod:`.as_csv`), XLSX
(:mod:`.as_xlsx`), JSON (:mod:`.as_json`) and one HTML page (:mod:`.as_html`). Rows are read from
the database in batches and written as they come, so memory stays bounded however
large the campaign. Typical use::

    report = await open_report(store, "avvisi-marzo-2026")
    with output_file(Path("avvisi.xlsx")) as out:
        await export(report, "xlsx", out)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from massiva.files import TargetRefused, atomic_write, check_target
from massiva.loaded import find
from massiva.report.errors import ReportError
from massiva.report.rows import Report, ReportRow
from massiva.store import Store
from massiva.times import utcnow

FORMATS = ("csv", "xlsx", "json", "html")


async def open_report(
    store: Store,
    name: str,
    *,
    key_columns: tuple[str, ...] | None = None,
    shared_templates: Path | None = None,
    pools: Mapping[str, tuple[str, ...]] | None = None,
) -> tuple[Report, list[str]]:
    """The report of campaign ``name`` and notes for the user (things it could not do).

    The key columns are ``key_columns`` if given, else those of the campaign's
    campaign.toml (read with massiva.toml's ``pools``, which its ``pool`` may name); if
    that file cannot be read the report has none, and a note says so.
    Raises :class:`ReportError` for an unknown campaign or a key column its recipients
    lack.
    """
    from massiva.campaign import CampaignError, load_spec  # see export()

    campaign = await find(store, name)
    notes: list[str] = []
    if key_columns is None:
        try:
            key_columns = load_spec(
                Path(campaign.folder), shared_templates=shared_templates, pools=pools
            ).key_columns
        except CampaignError as exc:
            key_columns = ()
            notes.append(
                f"the key columns could not be read from {campaign.folder} ({exc.problems[0]});"
                " the report shows none: name them with --key COLUMN"
            )
    known = await store.reports.columns(campaign.id)
    for column in key_columns:
        if known is not None and column not in known:
            raise ReportError(
                f"campaign {name!r} has no column {column!r}; its columns are"
                f" {', '.join(known)}: fix --key, or key_columns in"
                f" {campaign.folder}/campaign.toml"
            )
    counts = await store.campaigns.counts(campaign.id)
    return Report(store, campaign, key_columns, counts, utcnow()), notes


async def export(
    report: Report,
    fmt: str,
    out: BinaryIO,
    *,
    excel: bool = False,
    templates: Path | None = None,
    lang: str = "it",
    full_table: bool = False,
) -> int:
    """Write ``report`` to ``out`` in ``fmt`` (one of :data:`FORMATS`); returns the
    number of recipients written. ``excel`` is for CSV; ``templates`` (the shared
    templates folder), ``lang`` (the page's language) and ``full_table`` (print every
    recipient's row too) for HTML."""
    # Each format's module (and library) is imported when asked for: a CSV export's
    # worker processes (massiva.report.csv_part) start in a third of the time.
    if fmt == "csv":
        from massiva.report.as_csv import write_csv

        return await write_csv(report, out, excel=excel)
    if fmt == "xlsx":
        from massiva.report.as_xlsx import write_xlsx

        return await write_xlsx(report, out)
    if fmt == "json":
        from massiva.report.as_json import write_json

        return await write_json(report, out)
    if fmt == "html":
        from massiva.report.as_html import write_html

        return await write_html(report, out, templates=templates, lang=lang, full_table=full_table)
    raise ReportError(f"no report format {fmt!r}; use one of {', '.join(FORMATS)}")


@contextmanager
def output_file(path: Path) -> Iterator[BinaryIO]:
    """``path`` opened for writing, appearing whole or not at all (written beside it
    under a temporary name, then renamed; on an error nothing is left), never through a
    symbolic link (:func:`massiva.files.atomic_write`)."""
    try:
        check_target(path)
    except TargetRefused as exc:
        raise ReportError(f"{exc} (or give another -o)") from None
    folder = path.absolute().parent
    if not folder.is_dir():
        raise ReportError(f"{folder}: no such folder; create it, or give another -o")
    with atomic_write(path) as file:
        yield file


__all__ = [
    "FORMATS",
    "Report",
    "ReportError",
    "ReportRow",
    "export",
    "open_report",
    "output_file",
]
