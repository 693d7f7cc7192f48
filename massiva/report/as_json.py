"""The report as JSON: one document, streamed (the recipients array is written as it is
read, so a million recipients take no more memory than ten).

The keys are stable: a version may gain keys, but ``version`` changes before one is
renamed or removed::

    {
      "format": "massiva-report",
      "version": 1,
      "generated_at": "2026-03-10T10:00:00+01:00",     Europe/Rome, ISO 8601
      "campaign": {"name", "mailbox",                   the first of the pool
                   "mailboxes": ["a@pecmassiva.com", "b@pecmassiva.com"],   the pool
                   "schedule": "Mon-Fri 09:00-18:00 Europe/Rome, until ...",  or null
                   "past_deadline": false,
                   "folder", "state", "loaded_at"},
      "key_columns": ["codice_cliente"],
      "counts": {"pending": 0, "sending": 0, "sent": 0, "accepted": 0, "delivered": 0,
                 "failed": 0, "rejected": 0, "unknown": 0, "expired": 0},
      "total": 0,
      "not_sent_by_deadline": 0,                        pending, once past the deadline
      "mailboxes": [{"mailbox": "a@pecmassiva.com", "recipients": 5,   claimed by it
                     "counts": {"pending": 0, ...}}, ...],             each of the pool
      "failure_reasons": [{"state": "failed", "reason": "...", "count": 1}, ...],
      "other_failure_reasons": 0,                       failures not in that list
      "recipients": [
        {"row": 2, "address": "...", "keys": {"codice_cliente": "C001"},
         "mailbox": "a@pecmassiva.com", "subject": "...",   the box that sent it, as sent
         "state": "delivered", "message_id": "...", "sent_at": "...",
         "accepted_at": "...", "delivered_at": "...", "failed_at": null,
         "failure_code": null,                              "5.1.1" for a failure
         "reason": null, "receipt_ids": [101, 102]},
        ...
      ]
    }

A recipient's ``mailbox`` is the one of the pool that claimed it (null while none has). A
pending recipient of a campaign past its deadline is still ``pending``; its ``reason``
says "not sent by the deadline". Times are Europe/Rome ISO 8601 with the offset, or null
when it did not happen; values are exactly as stored (no formula guard: JSON is not
opened by spreadsheets).
"""

from __future__ import annotations

import io
import json
from typing import Any, BinaryIO

from massiva.report.rows import Report, rome_iso
from massiva.report.summary import Summary
from massiva.schedule import ALWAYS


def _head(report: Report, summary: Summary) -> dict[str, Any]:
    campaign = report.campaign
    return {
        "format": "massiva-report",
        "version": 1,
        "generated_at": rome_iso(report.generated_at),
        "campaign": {
            "name": campaign.name,
            "mailbox": campaign.mailbox,
            "mailboxes": list(report.mailboxes),
            "schedule": None if campaign.schedule == ALWAYS else campaign.schedule.describe("en"),
            "past_deadline": report.late,
            "folder": campaign.folder,
            "state": campaign.state,
            "loaded_at": rome_iso(campaign.created_at),
        },
        "key_columns": list(report.key_columns),
        "counts": summary.counts,
        "total": summary.total,
        "not_sent_by_deadline": report.not_sent_by_deadline,
        "mailboxes": [
            {"mailbox": box.mailbox, "recipients": box.total, "counts": box.counts}
            for box in summary.mailboxes
        ],
        "failure_reasons": [
            {"state": r.state, "reason": r.reason, "count": r.count} for r in summary.reasons
        ],
        "other_failure_reasons": summary.other_reasons,
    }


async def write_json(report: Report, out: BinaryIO) -> int:
    """Write ``report`` to ``out`` as JSON (see the module's docstring); returns the
    number of recipients written."""
    text = io.TextIOWrapper(out, encoding="utf-8", newline="\n")
    try:
        head = json.dumps(_head(report, await report.summary()), ensure_ascii=False, indent=2)
        # The head is a complete object: reopen it to append the streamed array.
        text.write(head[: head.rindex("}")].rstrip() + ',\n  "recipients": [')
        keys, written = report.key_columns, 0
        async for batch in report.rows():
            text.write(
                "".join(
                    ("\n    " if written + i == 0 else ",\n    ")
                    + json.dumps(row.as_json(keys), ensure_ascii=False)
                    for i, row in enumerate(batch)
                )
            )
            written += len(batch)
        text.write("\n  ]\n}\n" if written else "]\n}\n")
        text.flush()
    finally:
        text.detach()
    return written
